"""Leave-one-source-out evaluation of the injection filter: how well it catches attacks from a
source it was never trained or tuned on.

Run through `scripts/eval-generalisation`. Each attack source in turn is held out: the learned
layer is refitted on the development attacks of every other source (and the development benign
texts), its operating point chosen on development benign texts, and the source's attacks (both
splits, with the documents its payloads were injected into) are scored against the held-out
benign texts, which no fold trains on. The rules are not trained, so they are the same in every
fold.

Sources: the attack packages, with agent-threat-rules split by rule directory (its families),
and the four small PyPI collections (giskard, promptinject, nullsec-promptinject,
jailbreak-corpus-mini) as one. For each fold and layer (rules alone, the linear model alone,
both as the filter combines them) it reports recall at 1% and 5% false positives and at the
default threshold, then the mean and the worst fold. Writes
`target/injection-data/generalisation.json` and prints the markdown table the README quotes.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import re
import sys

import numpy as np

from encoder_heads import HEAD_KIND, fit_head, head_logits
from eval_injection import recall_at
from injection_common import DATA, ROOT, bucket, load, scan_jsonl, source_of
from train_injection_model import doc_scores, fit_quantised, matrix, operating_bias

LAYERS = ("rules", "linear", "rules+linear", "encoder", "rules+encoder", "rules+linear+encoder", "cascade", "stacked", "stacked cascade")
SHIPPED = "rules+linear"
# `--finetuned DIR` reads the transformer's scores per fold from `finetune_encoder.py`'s output
# instead of refitting the frozen encoder's head.
FINETUNED = pathlib.Path(sys.argv[sys.argv.index("--finetuned") + 1]) if "--finetuned" in sys.argv else None
REPORT = "generalisation-finetuned.json" if FINETUNED is not None else "generalisation.json"
# `--stacked` (with `--encoder`) adds a learned combination of the layers (a logistic regression
# over the rules per family, the n-gram and the transformer logits, fitted per fold on the tuning
# texts) beside the noisy-or the filter ships; measured, it did worse on average (README).
STACKED = "--stacked" in sys.argv
# The filter reports the model's probability as a finding only from this value on (MODEL_FLOOR).
MODEL_FLOOR = 0.2


def rust_constant(name: str) -> float:
    """A constant of the filter crate, so the cascade here is the one that ships."""
    text = (ROOT / "crates" / "agentiam-filter" / "src" / "lib.rs").read_text()
    found = re.search(rf"pub const {name}: f64 = ([0-9.]+);", text)
    if not found:
        raise SystemExit(f"{name} not found in the filter crate")
    return float(found.group(1))


SCREEN_CLEAR = float(os.environ.get("AGENTIAM_SCREEN_CLEAR", rust_constant("SCREEN_CLEAR")))


def rule_findings(cli: pathlib.Path, texts: list[str]) -> list[dict[str, float]]:
    """Per text, the highest weight of each rule that fired (the filter's noisy-or input)."""
    out = []
    for obj in scan_jsonl(cli, texts, ["--no-model"]):
        best: dict[str, float] = {}
        for f in obj.get("findings", []):
            best[f["rule"]] = max(best.get(f["rule"], 0.0), float(f["weight"]))
        out.append(best)
    return out


def noisy_or(weights) -> float:
    keep = 1.0
    for w in weights:
        keep *= 1.0 - min(max(w, 0.0), 1.0)
    return 1.0 - keep


RULE_FAMILIES = ("pi.", "jb.", "ex.", "tp.", "st.", "hidden.")


def stack_features(rules: dict[str, float], linear_logit: float, head_logit: float, read: bool = True) -> list[float]:
    """What a learned combination of the layers reads: the rules' noisy-or per family of rule
    and overall, how many rules fired, the n-gram model's logit, and the transformer's logit
    with whether it read the text (in the cascade it reads only what the screen does not clear)."""
    families = [noisy_or(w for rule, w in rules.items() if rule.startswith(f)) for f in RULE_FAMILIES]
    return [*families, noisy_or(rules.values()), float(len(rules)), linear_logit, head_logit if read else 0.0, float(read)]


def is_screened(rules: dict[str, float], p: float) -> bool:
    """The cascade's screen: the transformer does not read a text the rules and the n-gram model clear."""
    model = [p] if p >= MODEL_FLOOR else []
    return max(noisy_or([*rules.values(), *model]), p) < SCREEN_CLEAR


def logit(v: float) -> float:
    return float(np.log(max(v, 1e-9) / max(1.0 - v, 1e-9)))


def fit_stack(x: np.ndarray, y: np.ndarray):
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=5000, random_state=0)
    model.fit(x, y)
    return model


def fit(windows_per_doc: list[list[list[int]]], labels: list[int]) -> tuple[np.ndarray, float]:
    xs, ys = [], []
    for windows, label in zip(windows_per_doc, labels):
        for w in windows:
            xs.append(w)
            ys.append(label)
    return fit_quantised(matrix(xs), np.array(ys))


def raw_scores(windows_per_doc, weights_q: np.ndarray, scale: float) -> np.ndarray:
    """Highest window logit without bias, as the Rust scorer computes it (quantised weights)."""
    return doc_scores(windows_per_doc, weights_q, scale, 0.0)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


# The head alone crosses p = 0.5 on at most this share of benign tuning texts: half the n-gram
# layer's, so that the cascade's default verdict stays near 1% false positives.
HEAD_TARGET_BENIGN_RATE = 0.0025


def measure(benign: list[float], attacks: list[float]) -> dict:
    one, _ = recall_at(benign, attacks, 0.01)
    five, _ = recall_at(benign, attacks, 0.05)
    return {
        "recall_at_1pct_fpr": round(one, 4),
        "recall_at_5pct_fpr": round(five, 4),
        "recall_at_default": round(sum(1 for s in attacks if s >= 0.5) / len(attacks), 4),
        "fpr_at_default": round(sum(1 for s in benign if s >= 0.5) / len(benign), 4),
    }


def main() -> None:
    cli = pathlib.Path(sys.argv[1])
    dev = load(DATA / "dev.jsonl")
    heldout = load(DATA / "heldout.jsonl")
    records = dev + heldout
    texts = [r["text"] for r in records]
    print(f"scoring {len(texts)} texts with the rules and extracting model features", file=sys.stderr)
    rules = rule_findings(cli, texts)
    windows = [obj["windows"] for obj in scan_jsonl(cli, texts, ["--features"])]
    embedded = None
    if "--encoder" in sys.argv:
        from injection_embeddings import embeddings

        print("embedding every text with the transformer layer (cached)", file=sys.stderr)
        embedded = embeddings(DATA / "dev.jsonl") + embeddings(DATA / "heldout.jsonl")

    is_dev = [r["split"] == "dev" for r in records]
    benign_eval = [i for i, r in enumerate(records) if r["label"] == "benign" and not is_dev[i]]
    sources: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        if r["label"] == "attack":
            sources.setdefault(source_of(r), []).append(i)

    report: dict = {"benign_eval_texts": len(benign_eval), "head": HEAD_KIND if embedded is not None else None, "folds": {}}
    # The n-gram refits are the slow part and depend only on the data and the feature code:
    # their scores are kept per fold, keyed by both.
    digest = hashlib.sha256((DATA / "dev.jsonl").read_bytes() + (DATA / "heldout.jsonl").read_bytes())
    digest.update(json.dumps(windows).encode())
    digest.update(repr(os.environ.get("AGENTIAM_MODEL_C")).encode())
    digest.update(b"eval+tune")
    linear_cache = DATA / "linear-folds" / digest.hexdigest()[:16]
    linear_cache.mkdir(parents=True, exist_ok=True)
    for source, attack_idx in sorted(sources.items()):
        if FINETUNED is not None and not (FINETUNED / f"{source.replace('/', '_')}.npz").exists():
            print(f"{source}: no fine-tuned fold in {FINETUNED}, left out", file=sys.stderr)
            continue
        held = set(attack_idx)
        train = [
            i
            for i, r in enumerate(records)
            if is_dev[i] and bucket(r["id"]) < 80 and not r.get("pair") and i not in held
        ]
        tune_benign = [
            i for i, r in enumerate(records) if is_dev[i] and bucket(r["id"]) >= 80 and r["label"] == "benign"
        ]
        eval_idx = benign_eval + attack_idx
        # Texts a learned combination of the layers is fitted on: the tuning part of the
        # development split, the held-out source's attacks excluded.
        tune_all = [i for i, r in enumerate(records) if is_dev[i] and bucket(r["id"]) >= 80 and i not in held]
        cached = linear_cache / f"{source.replace('/', '_')}.npz"
        if cached.exists():
            saved = np.load(cached)
            p, p_tune = saved["eval"], saved["tune"]
        else:
            weights_q, scale = fit([windows[i] for i in train], [int(records[i]["label"] == "attack") for i in train])
            # The trainer's operating point: the model alone crosses p = 0.5 on at most
            # TARGET_BENIGN_RATE of the benign tuning texts.
            bias = operating_bias(raw_scores([windows[i] for i in tune_benign], weights_q, scale))
            p = sigmoid(raw_scores([windows[i] for i in eval_idx], weights_q, scale) + bias)
            p_tune = sigmoid(raw_scores([windows[i] for i in tune_all], weights_q, scale) + bias)
            np.savez(cached, eval=p, tune=p_tune)
        q = None
        if FINETUNED is not None:
            # The fine-tuned transformer's probabilities for this fold (`finetune_encoder.py`),
            # over the same evaluation and tuning texts.
            folded = np.load(FINETUNED / f"{source.replace('/', '_')}.npz")
            q, q_tune = folded["finetuned"], folded["finetuned_tune"]
            if len(q) != len(eval_idx) or len(q_tune) != len(tune_all):
                raise SystemExit(f"{FINETUNED} does not hold the fold {source} of this data")
        elif embedded is not None:
            head = fit_head([embedded[i] for i in train], [int(records[i]["label"] == "attack") for i in train])
            head_bias = operating_bias(head_logits(head, [embedded[i] for i in tune_benign]), HEAD_TARGET_BENIGN_RATE)
            q = sigmoid(head_logits(head, [embedded[i] for i in eval_idx]) + head_bias)
            q_tune = sigmoid(head_logits(head, [embedded[i] for i in tune_all]) + head_bias)
            if STACKED:
                tune_labels = np.array([int(records[i]["label"] == "attack") for i in tune_all])

                def stacked_scores(cascade: bool) -> np.ndarray:
                    def features(indices, lin, deep):
                        return np.array([
                            stack_features(rules[i], logit(lin[k]), logit(deep[k]), not (cascade and is_screened(rules[i], lin[k])))
                            for k, i in enumerate(indices)
                        ])

                    return fit_stack(features(tune_all, p_tune, q_tune), tune_labels).predict_proba(features(eval_idx, p, q))[:, 1]

                stacked, stacked_cascade = stacked_scores(False), stacked_scores(True)
        layers: dict[str, list[float]] = {
            name: []
            for name in LAYERS
            if (q is not None or ("encoder" not in name and name != "cascade")) and (STACKED or "stacked" not in name)
        }
        read = []
        for j, i in enumerate(eval_idx):
            r = noisy_or(rules[i].values())
            layers["rules"].append(r)
            layers["linear"].append(float(p[j]))
            model = [float(p[j])] if p[j] >= MODEL_FLOOR else []
            layers["rules+linear"].append(noisy_or([*rules[i].values(), *model]))
            if q is not None:
                deep = [float(q[j])] if q[j] >= MODEL_FLOOR else []
                layers["encoder"].append(float(q[j]))
                layers["rules+encoder"].append(noisy_or([*rules[i].values(), *deep]))
                layers["rules+linear+encoder"].append(noisy_or([*rules[i].values(), *model, *deep]))
                # The cascade as the filter runs it: the transformer reads only texts the
                # rules and the n-gram model do not clear.
                screened = is_screened(rules[i], float(p[j]))
                read.append(not screened)
                layers["cascade"].append(noisy_or([*rules[i].values(), *model, *([] if screened else deep)]))
                if STACKED:
                    layers["stacked"].append(float(stacked[j]))
                    layers["stacked cascade"].append(float(stacked_cascade[j]))
        nb = len(benign_eval)
        fold = {"attacks": len(attack_idx), "trained_on_attacks": sum(1 for i in train if records[i]["label"] == "attack")}
        for layer, values in layers.items():
            fold[layer] = measure(values[:nb], values[nb:])
        if read:
            fold["read_by_transformer"] = {
                "benign": round(sum(read[:nb]) / nb, 4),
                "attacks": round(sum(read[nb:]) / len(attack_idx), 4),
            }
        report["folds"][source] = fold
        print(
            f"{source}: n={len(attack_idx)} "
            + " ".join(f"{layer} {fold[layer]['recall_at_1pct_fpr']:.1%}" for layer in layers),
            file=sys.stderr,
        )

    summary: dict = {}
    first = next(iter(report["folds"].values()))
    for layer in [name for name in LAYERS if name in first]:
        for metric in ("recall_at_1pct_fpr", "recall_at_5pct_fpr", "recall_at_default", "fpr_at_default"):
            values = {s: f[layer][metric] for s, f in report["folds"].items()}
            if metric == "fpr_at_default":
                summary.setdefault(layer, {})[metric] = {"mean": round(sum(values.values()) / len(values), 4)}
                continue
            worst = min(values, key=values.get)
            summary.setdefault(layer, {})[metric] = {
                "mean": round(sum(values.values()) / len(values), 4),
                "worst": values[worst],
                "worst_source": worst,
            }
    report["summary"] = summary
    (DATA / REPORT).write_text(json.dumps(report, indent=2) + "\n")

    layers = list(summary)
    shipped = "cascade" if "cascade" in summary else SHIPPED
    if "cascade" in summary:
        shares = [f["read_by_transformer"] for f in report["folds"].values()]
        report["read_by_transformer"] = {
            "screen_clear": SCREEN_CLEAR,
            "benign": round(sum(x["benign"] for x in shares) / len(shares), 4),
            "attacks": round(sum(x["attacks"] for x in shares) / len(shares), 4),
        }
        (DATA / REPORT).write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nBenign texts (held-out split, never trained on): {len(benign_eval)}. Recall at 1% false positives per layer; the filter as shipped ({shipped}) also at 5% and at its default threshold.\n")
    print("| held-out source | attacks | " + " | ".join(f"{layer} @1%" for layer in layers) + f" | {shipped} @5% | {shipped} @0.5 |")
    print("|---|---|" + "---|" * (len(layers) + 2))
    for source, f in report["folds"].items():
        cells = [f"{f[layer]['recall_at_1pct_fpr']:.1%}" for layer in layers]
        cells += [f"{f[shipped]['recall_at_5pct_fpr']:.1%}", f"{f[shipped]['recall_at_default']:.1%}"]
        print(f"| {source} | {f['attacks']} | " + " | ".join(cells) + " |")
    for what in ("mean", "worst"):
        cells = [f"{summary[layer]['recall_at_1pct_fpr'][what]:.1%}" for layer in layers]
        cells += [f"{summary[shipped]['recall_at_5pct_fpr'][what]:.1%}", f"{summary[shipped]['recall_at_default'][what]:.1%}"]
        print(f"| **{what}** | | " + " | ".join(cells) + " |")
    if "cascade" in summary:
        r = report["read_by_transformer"]
        print(f"\nThe transformer reads {r['benign']:.1%} of the benign texts and {r['attacks']:.1%} of the attacks (screen clears below {SCREEN_CLEAR}, mean over the folds).")
    print("\nFalse positives at the default threshold (0.5) on the held-out benign texts, mean over the folds: " + ", ".join(
        f"{layer} {summary[layer]['fpr_at_default']['mean']:.2%}" for layer in layers
    ) + ".")


if __name__ == "__main__":
    main()
