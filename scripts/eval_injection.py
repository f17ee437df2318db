"""Evaluates the injection filter on the development data: recall at 1% and 5% false positives,
per category, on the tuning part of the dev set and on the held-out set, with and without the
learned model, plus paired clean/injected documents and scan throughput.

Run through `scripts/eval-injection`. Writes `target/injection-data/eval.json` and prints the
markdown tables the README quotes.
"""

from __future__ import annotations

import json
import pathlib
import sys
import time

from injection_common import DATA, bucket, load, scan_jsonl


def scores(cli: pathlib.Path, texts: list[str], extra: list[str]) -> tuple[list[float], float]:
    start = time.perf_counter()
    result = scan_jsonl(cli, texts, extra)
    return [float(obj["score"]) for obj in result], time.perf_counter() - start


def recall_at(benign: list[float], attacks: list[float], fpr: float) -> tuple[float, float]:
    """Recall when the threshold lets at most `fpr` of the benign texts through as injections.
    A text is flagged when its score is above the (k+1)-th highest benign score."""
    ranked = sorted(benign, reverse=True)
    k = int(fpr * len(ranked))
    cut = ranked[k] if k < len(ranked) else -1.0
    hit = sum(1 for s in attacks if s > cut)
    return (hit / len(attacks) if attacks else 0.0), cut


def evaluate(records: list[dict], values: list[float]) -> dict:
    benign = [s for s, r in zip(values, records) if r["label"] == "benign"]
    attacks = [(s, r) for s, r in zip(values, records) if r["label"] == "attack"]
    categories = sorted({r["category"] for _, r in attacks})
    out: dict = {"benign": len(benign), "attacks": len(attacks)}
    for fpr in (0.01, 0.05):
        overall, cut = recall_at(benign, [s for s, _ in attacks], fpr)
        out[f"at_{int(fpr * 100)}pct_fpr"] = {
            "threshold_above": cut,
            "recall": round(overall, 4),
            "per_category": {
                c: {
                    "n": sum(1 for _, r in attacks if r["category"] == c),
                    "recall": round(
                        recall_at(benign, [s for s, r in attacks if r["category"] == c], fpr)[0], 4
                    ),
                }
                for c in categories
            },
        }
    flagged_benign = sum(1 for s in benign if s >= 0.5)
    out["at_default_threshold"] = {
        "false_positive_rate": round(flagged_benign / len(benign), 4) if benign else 0.0,
        "recall": round(sum(1 for s, _ in attacks if s >= 0.5) / len(attacks), 4) if attacks else 0.0,
        "per_category": {
            c: round(
                sum(1 for s, r in attacks if r["category"] == c and s >= 0.5)
                / max(1, sum(1 for _, r in attacks if r["category"] == c)),
                4,
            )
            for c in categories
        },
    }
    pairs: dict[str, dict[str, float]] = {}
    for s, r in zip(values, records):
        if r.get("pair"):
            pairs.setdefault(r["pair"], {})[r["label"]] = s
    complete = [p for p in pairs.values() if "benign" in p and "attack" in p]
    if complete:
        out["pairs"] = {
            "n": len(complete),
            "clean_flagged": round(sum(1 for p in complete if p["benign"] >= 0.5) / len(complete), 4),
            "injected_caught": round(sum(1 for p in complete if p["attack"] >= 0.5) / len(complete), 4),
        }
    sources = sorted({r["source"].split(":")[0] for r in records if r["label"] == "benign"})
    out["benign_by_source"] = {
        src: round(
            sum(1 for s, r in zip(values, records) if r["label"] == "benign" and r["source"].startswith(src) and s >= 0.5)
            / max(1, sum(1 for r in records if r["label"] == "benign" and r["source"].startswith(src))),
            4,
        )
        for src in sources
    }
    return out


def table(name: str, result: dict) -> str:
    rows = [f"| {name} | recall @1% FPR | recall @5% FPR | recall @0.5 (default) |", "|---|---|---|---|"]
    one, five, default = result["at_1pct_fpr"], result["at_5pct_fpr"], result["at_default_threshold"]
    for c in one["per_category"]:
        rows.append(
            f"| {c} (n={one['per_category'][c]['n']}) | {one['per_category'][c]['recall']:.1%} | "
            f"{five['per_category'][c]['recall']:.1%} | {default['per_category'][c]:.1%} |"
        )
    rows.append(f"| **all** (n={result['attacks']}) | **{one['recall']:.1%}** | **{five['recall']:.1%}** | **{default['recall']:.1%}** |")
    rows.append(f"\nBenign texts: {result['benign']}; flagged at the default threshold: {default['false_positive_rate']:.2%}.")
    if "pairs" in result:
        p = result["pairs"]
        rows.append(
            f"Paired documents: {p['n']}; clean version flagged {p['clean_flagged']:.1%}, injected version caught {p['injected_caught']:.1%}."
        )
    return "\n".join(rows)


def main() -> None:
    cli = pathlib.Path(sys.argv[1])
    dev = load(DATA / "dev.jsonl")
    tune = [r for r in dev if bucket(r["id"]) >= 80]
    heldout = load(DATA / "heldout.jsonl")
    report: dict = {}
    for split, records in (("dev_tune", tune), ("heldout", heldout)):
        texts = [r["text"] for r in records]
        for variant, extra in (("filter", []), ("rules_only", ["--no-model"])):
            values, elapsed = scores(cli, texts, extra)
            result = evaluate(records, values)
            size = sum(len(t.encode()) for t in texts)
            result["throughput"] = {"bytes": size, "seconds": round(elapsed, 3), "mib_per_s": round(size / elapsed / (1 << 20), 2)}
            report[f"{split}/{variant}"] = result
            print(f"\n### {split}, {variant.replace('_', ' ')}\n")
            print(table("category", result))
            print(f"CLI throughput (incl. JSON): {result['throughput']['mib_per_s']} MiB/s")
    (DATA / "eval.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
