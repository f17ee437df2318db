"""The injection filter's false positives on benign texts shaped like tool outputs, per kind, at
every threshold: the calibration curve the README publishes.

Run through `scripts/eval-calibration`, which builds the calibration set
(`scripts/calibration_data.py`) and the release CLI. The filter is run as it ships
(`agentiam scan --jsonl`): with the transformer layer (the cascade, when the encoder is
installed) and without it (`--no-encoder`). Nothing here trains or tunes on these texts; the
default threshold is the filter's own `DEFAULT_THRESHOLD`. Writes
`target/injection-data/calibration.json` and prints markdown tables.
"""

from __future__ import annotations

import json
import pathlib
import sys

from injection_common import DATA, load, scan_jsonl

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
DOCUMENTS = ("web", "web-html", "manual", "calendar")


def rates(scores: list[float]) -> dict[str, float]:
    return {f"{t:.1f}": round(sum(1 for s in scores if s >= t) / len(scores), 4) for t in THRESHOLDS}


def main() -> None:
    cli = pathlib.Path(sys.argv[1])
    encoder = sys.argv[2] if len(sys.argv) > 2 else None
    rows = load(DATA / "calibration.jsonl")
    texts = [r["text"] for r in rows]
    modes = {"rules + n-gram": ["--no-encoder"]}
    if encoder:
        modes["cascade"] = ["--encoder", encoder]
    report: dict = {"texts": len(rows), "thresholds": list(THRESHOLDS), "modes": {}}
    for mode, flags in modes.items():
        print(f"scanning {len(texts)} texts ({mode})", file=sys.stderr)
        scanned = scan_jsonl(cli, texts, flags)
        if encoder and mode == "cascade" and any(o.get("encoder") == "absent" for o in scanned):
            raise SystemExit(f"the encoder at {encoder} was not used: the cascade figures would be the screen's")
        scores = [float(o["score"]) for o in scanned]
        groups: dict[str, list[float]] = {}
        for r, s in zip(rows, scores):
            groups.setdefault(r["kind"], []).append(s)
            groups.setdefault("documents" if r["kind"] in DOCUMENTS else "conversations", []).append(s)
            groups.setdefault("not English" if r["lang"] not in ("en", "und") else "English, or no language (calendars)", []).append(s)
            groups.setdefault("all", []).append(s)
            if r["kind"] in DOCUMENTS:
                groups.setdefault(f"documents, {r['lang']}", []).append(s)
        flagged = sorted(((s, r) for r, s in zip(rows, scores) if s >= 0.5), key=lambda x: -x[0])
        report["modes"][mode] = {
            "groups": {
                name: {"texts": len(values), "false_positive_rate": rates(values)} for name, values in sorted(groups.items())
            },
            "flagged_at_default": [
                {"score": round(s, 3), "kind": r["kind"], "lang": r["lang"], "source": r["source"], "excerpt": r["text"][:160]}
                for s, r in flagged[:40]
            ],
        }
    (DATA / "calibration.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    for mode, result in report["modes"].items():
        print(f"\n{mode}: share of benign texts flagged at each threshold\n")
        print("| texts | n | " + " | ".join(f"{t:.1f}" for t in THRESHOLDS) + " |")
        print("|---|---|" + "---|" * len(THRESHOLDS))
        for name, g in result["groups"].items():
            cells = [f"{g['false_positive_rate'][f'{t:.1f}']:.2%}" for t in THRESHOLDS]
            print(f"| {name} | {g['texts']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
