#!/usr/bin/env python3.11
"""Build the injection filter's CALIBRATION set: benign texts shaped like tool outputs, from
pinned packages the development data never drew on.

Nothing here is trained on. `scripts/eval-calibration` scores it with the filter as it ships and
prints the false-positive rate per kind of tool output at every threshold (the curve the README
publishes), so the default threshold is checked on text like what agents read, in more than
English.

Kinds (each text records its `kind` and `lang`):
  chat      conversations from chatterbot-corpus (PyPI), 19 languages, six turns of two named
            people per text
  calendar  iCalendar files from icalendar's test suite (PyPI), as a calendar tool returns them
  web       the Debian Reference in seven languages (Debian), as text (a fetch tool that converts
            HTML) and, for German and Japanese, as raw HTML
  manual    manual pages in German, French and Spanish (Debian's manpages-*), as text

Output: target/injection-data/calibration.jsonl ({"id", "text", "kind", "lang", "source"}) and
calibration-summary.json (counts, package digests). Stdlib only; PyYAML from the data venv reads
the chat files. Like scripts/injection-data, NEVER add `agentdojo` or `garak` here.
"""
from __future__ import annotations

import gzip
import json
import re
import sys
from collections import Counter

import injection_data as data

PYPI = [
    ("chatterbot-corpus", "1.2.0", "BSD-3-Clause"),
    ("icalendar", "6.1.0", "BSD-2-Clause"),
]
REFERENCE_LANGS = {"de": "de", "fr": "fr", "es": "es", "it": "it", "pt": "pt", "ja": "ja", "zh-cn": "zh"}
DEB = [(f"debian-reference-{code}", "2.100", "GPL-2.0-or-later") for code in REFERENCE_LANGS]
DEB += [(f"manpages-{code}", "4.18.1-1", "GPL-3.0-or-later and others (per page)") for code in ("de", "fr", "es")]
RAW_HTML = {"debian-reference-de", "debian-reference-ja"}
CAPS = {"chat": 1500, "calendar": 300, "web": 2100, "web-html": 400, "manual": 900}
TURNS_PER_TEXT = 6
SPEAKERS = ("Alex", "Sam")
# chatterbot-corpus names its directories by language; the set records ISO 639 codes.
CHAT_LANGS = {
    "bangla": "bn", "chinese": "zh", "custom": "en", "english": "en", "french": "fr", "german": "de",
    "hebrew": "he", "hindi": "hi", "indonesia": "id", "italian": "it", "marathi": "mr", "odia": "or",
    "portuguese": "pt", "russian": "ru", "spanish": "es", "swedish": "sv", "tchinese": "zh-Hant",
    "telugu": "te", "thai": "th",
}


def chat_texts(py, wheel) -> list[tuple[str, str, str]]:
    members = data.wheel_members(wheel, lambda n: n.startswith("chatterbot_corpus/data/") and n.endswith(".yml"))
    parsed = data.yaml_to_json(py, [raw.decode("utf-8", "replace") for _, raw in members])
    out = []
    for (name, _), doc in zip(members, parsed):
        lang = CHAT_LANGS.get(name.split("/")[2], name.split("/")[2])
        turns = []
        for conversation in (doc or {}).get("conversations", []) or []:
            if isinstance(conversation, list):
                turns += [str(t).strip() for t in conversation if t is not None and str(t).strip()]
        for k in range(0, len(turns), TURNS_PER_TEXT):
            # Two people by name, as a chat tool's history shows them (role names such as "User:"
            # and "Assistant:" would be fake conversation turns to the filter, rightly).
            lines = [f"{SPEAKERS[j % 2]}: {t}" for j, t in enumerate(turns[k : k + TURNS_PER_TEXT])]
            out.append((lang, f"{name}#{k}", "\n".join(lines)))
    return out


def calendar_texts(wheel) -> list[tuple[str, str, str]]:
    members = data.wheel_members(
        wheel, lambda n: n.startswith("icalendar/tests/") and n.endswith(".ics") and "/fuzzed/" not in n
    )
    out = []
    for name, raw in members:
        # Line blocks of at most 2,000 characters, newlines kept, as a calendar tool returns them.
        blocks, current = [], ""
        for line in raw.decode("utf-8", "replace").splitlines():
            if current and len(current) + len(line) + 1 > 2000:
                blocks.append(current)
                current = ""
            current += line[:2000] + "\n"
        blocks.append(current)
        for k, block in enumerate(b for b in blocks if len(b.strip()) >= 40):
            out.append(("und", f"{name}#{k}", block))
    return out


def reference_texts(deb, pkg: str, lang: str) -> list[tuple[str, str, str, str]]:
    members = data.deb_members(deb, lambda n: n.startswith("usr/share/debian-reference/") and n.endswith(".html"))
    out = []
    for name, raw in members:
        html = raw.decode("utf-8", "replace")
        for c in data.sample_chunks(name, data.chunk(data.strip_html(html))):
            out.append(("web", lang, name, c))
        if pkg in RAW_HTML:
            for c in data.sample_chunks(name + "#html", data.chunk(html, hi=4000), 10):
                out.append(("web-html", lang, name, c))
    return out


def manual_texts(deb, lang: str) -> list[tuple[str, str, str]]:
    members = data.deb_members(deb, lambda n: n.startswith("usr/share/man/") and n.endswith(".gz"))
    out = []
    for name, raw in members:
        try:
            troff = gzip.decompress(raw).decode("utf-8", "replace")
        except OSError:
            continue
        # Text of the page: drop comments and requests, keep the words of macros' arguments.
        lines = []
        for line in troff.splitlines():
            if line.startswith(('.\\"', "'\\\"")):
                continue
            if line.startswith("."):
                line = re.sub(r"^\.[A-Za-z]+\s*", "", line)
            line = re.sub(r"\\f[BIRP]|\\f\(..|\\\(..|\\-|\\&|\\e", lambda m: "-" if m.group(0) == "\\-" else "", line)
            lines.append(line.replace('"', ""))
        for c in data.sample_chunks(name, data.chunk("\n".join(lines)), 3):
            out.append((lang, name, c))
    return out


def main() -> int:
    for name, *_ in PYPI + DEB:
        if any(f in name.lower() for f in data.FORBIDDEN):
            data.die(f"package {name} is reserved for the independent evaluation")
    offline = "--offline" in sys.argv
    py = data.ensure_venv(offline)
    art = {}
    for name, ver, lic in PYPI:
        art[name] = (data.fetch_pypi(py, name, ver, offline), ver, lic, "pypi")
    for name, ver, lic in DEB:
        art[name] = (data.fetch_deb(name, ver, offline), ver, lic, "debian")

    rows: list[dict] = []

    def add(kind: str, lang: str, package: str, member: str, text: str) -> None:
        text = data.norm_text(text)
        if text:
            rows.append({"kind": kind, "lang": lang, "source": f"{package}@{art[package][1]}:{member}", "text": text})

    for lang, member, text in chat_texts(py, art["chatterbot-corpus"][0]):
        add("chat", lang, "chatterbot-corpus", member, text)
    for lang, member, text in calendar_texts(art["icalendar"][0]):
        add("calendar", lang, "icalendar", member, text)
    for code, lang in REFERENCE_LANGS.items():
        pkg = f"debian-reference-{code}"
        for kind, lang_, member, text in reference_texts(art[pkg][0], pkg, lang):
            add(kind, lang_, pkg, member, text)
    for code in ("de", "fr", "es"):
        pkg = f"manpages-{code}"
        for lang, member, text in manual_texts(art[pkg][0], code):
            add("manual", lang, pkg, member, text)

    # Exact duplicates once; then a deterministic, hash-ordered cap per kind.
    seen: set[str] = set()
    unique = []
    for r in rows:
        if r["text"] not in seen:
            seen.add(r["text"])
            unique.append(r)
    kept = []
    for kind, cap in CAPS.items():
        pool = sorted((r for r in unique if r["kind"] == kind), key=lambda r: data.h("calibration", r["text"]))
        kept += pool[:cap]
    for r in kept:
        r["id"] = "cal-" + data.h(r["source"], r["text"])[:16]
    kept.sort(key=lambda r: r["id"])
    out = data.OUT / "calibration.jsonl"
    with out.open("w", encoding="utf-8") as f:
        for r in kept:
            f.write(json.dumps({k: r[k] for k in ("id", "text", "kind", "lang", "source")}, ensure_ascii=False) + "\n")
    summary = {
        "texts": len(kept),
        "by_kind": dict(sorted(Counter(r["kind"] for r in kept).items())),
        "by_lang": dict(sorted(Counter(r["lang"] for r in kept).items())),
        "packages": {
            n: {"registry": reg, "version": ver, "license": lic, "file": p.name, "sha256": data.sha256_file(p)}
            for n, (p, ver, lic, reg) in art.items()
        },
    }
    (data.OUT / "calibration-summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps({k: summary[k] for k in ("texts", "by_kind", "by_lang")}, indent=1))
    print(f"calibration-data: wrote {out.relative_to(data.ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
