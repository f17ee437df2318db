"""Trains the injection filter's linear model and writes its embedded weights.

Run through `scripts/train-injection-model`, which builds the data set and the CLI first.

- Data: `target/injection-data/dev.jsonl` (built by `scripts/injection-data` from packages on
  public registries; see data/injection/PROVENANCE.md). The held-out file is never read here.
- Features: `agentiam scan --features` prints, per text, the hashed n-gram buckets of each
  scoring window, computed by the same Rust code that scores at run time.
- The dev set is split by a hash of each text's id: 80% to fit, 20% to choose the operating
  point. Paired injected documents are left out of fitting (they are evaluation material).
- Model: scikit-learn logistic regression (L2, balanced class weights) on
  count / sqrt(total count) per window; benign texts give negative windows, attack texts
  positive ones.
- Output: `crates/agentiam-filter/src/model.bin` (header + 2^18 int8 weights) and
  `data/injection/model.json` (hyperparameters, data digests, package versions, dev figures).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pathlib
import struct
import sys

import numpy as np
import scipy.sparse as sp
import sklearn
from sklearn.linear_model import LogisticRegression

from injection_common import DATA, ROOT, bucket, load, scan_jsonl

MODEL = ROOT / "crates" / "agentiam-filter" / "src" / "model.bin"
META = ROOT / "data" / "injection" / "model.json"
BITS = 18
C = float(os.environ.get("AGENTIAM_MODEL_C", "4.0"))
# The model alone reaches p = 0.5 on at most this share of benign fitting-holdout texts.
TARGET_BENIGN_RATE = 0.005


def window_features(cli: pathlib.Path, texts: list[str]) -> list[list[list[int]]]:
    """Per text, per window, the bucket indices (with repeats)."""
    return [obj["windows"] for obj in scan_jsonl(cli, texts, ["--features"])]


def matrix(windows: list[list[int]]) -> sp.csr_matrix:
    rows, cols, vals = [], [], []
    for r, feats in enumerate(windows):
        if not feats:
            continue
        counts: dict[int, int] = {}
        for f in feats:
            counts[f] = counts.get(f, 0) + 1
        norm = 1.0 / math.sqrt(len(feats))
        for f, n in counts.items():
            rows.append(r)
            cols.append(f)
            vals.append(n * norm)
    return sp.csr_matrix((vals, (rows, cols)), shape=(len(windows), 1 << BITS), dtype=np.float64)


def doc_scores(windows_per_doc, weights_q: np.ndarray, scale: float, bias: float) -> np.ndarray:
    """The Rust scorer's arithmetic: max over windows of bias + scale * sum(w) / sqrt(n)."""
    out = np.empty(len(windows_per_doc))
    for i, windows in enumerate(windows_per_doc):
        best = -math.inf
        for feats in windows:
            if feats:
                z = bias + scale * float(weights_q[feats].astype(np.int64).sum()) / math.sqrt(len(feats))
                best = max(best, z)
        out[i] = best if best != -math.inf else -50.0
    return out


def fit_quantised(x: sp.csr_matrix, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Logistic regression on windows, its weights quantised to int8 as the Rust scorer reads them."""
    model = LogisticRegression(C=C, class_weight="balanced", max_iter=2000, solver="liblinear", random_state=0)
    model.fit(x, y)
    w = model.coef_[0]
    scale = float(np.abs(w).max()) / 127.0
    return np.clip(np.round(w / scale), -127, 127).astype(np.int8), scale


def operating_bias(benign_raw_scores: np.ndarray, rate: float = TARGET_BENIGN_RATE) -> float:
    """The bias that lets the model alone cross p = 0.5 on at most `rate` of the benign tuning
    texts (their bias-free scores)."""
    return -float(np.quantile(benign_raw_scores, 1.0 - rate))


def main() -> None:
    cli = pathlib.Path(sys.argv[1])
    dev_path = DATA / "dev.jsonl"
    dev = load(dev_path)
    fit = [r for r in dev if bucket(r["id"]) < 80 and not r.get("pair")]
    tune = [r for r in dev if bucket(r["id"]) >= 80]
    print(f"fit on {len(fit)} texts, choose the operating point on {len(tune)}", file=sys.stderr)

    fit_windows = window_features(cli, [r["text"] for r in fit])
    xs, ys = [], []
    for record, windows in zip(fit, fit_windows):
        label = 1 if record["label"] == "attack" else 0
        for w in windows:
            xs.append(w)
            ys.append(label)
    x = matrix(xs)
    y = np.array(ys)
    print(f"{x.shape[0]} windows ({int(y.sum())} from attacks)", file=sys.stderr)
    weights_q, scale = fit_quantised(x, y)

    # Operating point: shift the bias so that the model alone crosses p = 0.5 on at most
    # TARGET_BENIGN_RATE of the benign tuning texts.
    tune_windows = window_features(cli, [r["text"] for r in tune])
    raw = doc_scores(tune_windows, weights_q, scale, 0.0)
    benign = np.array([s for s, r in zip(raw, tune) if r["label"] == "benign"])
    bias = operating_bias(benign)
    scores = raw + bias
    attack = np.array([s for s, r in zip(scores, tune) if r["label"] == "attack"])
    tune_recall = float((attack >= 0).mean()) if len(attack) else 0.0
    tune_fpr = float((benign + bias >= 0).mean()) if len(benign) else 0.0

    MODEL.write_bytes(b"AIMW" + struct.pack("<Iff", BITS, bias, scale) + weights_q.tobytes())
    meta = {
        "format": "AIMW v1: magic, u32 bits, f32 bias, f32 scale, 2^bits int8 weights (little endian)",
        "model_sha256": hashlib.sha256(MODEL.read_bytes()).hexdigest(),
        "features": "words view; unigram, bigram, char trigrams of ' word '; FNV-1a + murmur3 finaliser; 2^18 buckets; windows of 96 words, stride 48",
        "trainer": f"scikit-learn {sklearn.__version__} LogisticRegression(C={C}, class_weight=balanced, solver=liblinear, random_state=0)",
        "numpy": np.__version__,
        "data": {
            "dev_sha256": hashlib.sha256(dev_path.read_bytes()).hexdigest(),
            "fit_texts": len(fit),
            "fit_windows": int(x.shape[0]),
            "tune_texts": len(tune),
            "provenance": "data/injection/PROVENANCE.md",
        },
        "operating_point": {
            "target_benign_rate": TARGET_BENIGN_RATE,
            "bias": bias,
            "scale": scale,
            "model_alone_on_tune": {"recall": round(tune_recall, 4), "false_positive_rate": round(tune_fpr, 4)},
        },
    }
    META.write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta["operating_point"], indent=2))


if __name__ == "__main__":
    main()
