"""Trains the injection filter's transformer head and writes its embedded weights.

Run through `scripts/train-encoder-head`, which fetches the encoder, builds the data set and the
`embed` example first.

- Data: `target/injection-data/dev.jsonl` (data/injection/PROVENANCE.md); the held-out file is
  never read here. The dev set is split by a hash of each text's id as for the n-gram layer:
  80% fits the head, 20% chooses its operating point. Paired injected documents are left out of
  fitting.
- Features: the unit-length embedding of each 126-token window of a text, computed by the
  filter's own Rust encoder (all-MiniLM-L6-v2, frozen; `scripts/injection_embeddings.py`).
- Head: `scripts/encoder_heads.py` (`AGENTIAM_HEAD`, default `mlp`: one hidden layer of 128
  ReLU units, int8 hidden weights; `linear`: logistic regression) on windows; benign texts give
  negative windows, attack texts positive ones; a text's score is its highest window's.
- Operating point: the bias lets the head alone cross p = 0.5 on at most 0.25% of the benign
  tuning texts (half the n-gram layer's share, so the cascade's default verdict stays near 1%).
- Output: `crates/agentiam-filter/src/encoder_head.json` (the weights, the bias with the operating
  point folded in, a probe (a fixed vector and the logit the head gives it, which the filter
  recomputes on load), and the record of how it was made: data digest, package versions, figures on the
  tuning texts).
"""

from __future__ import annotations

import json
import sys

import numpy as np
from encoder_heads import fit_head, head_logits, record
from eval_generalisation import HEAD_TARGET_BENIGN_RATE
from injection_common import DATA, ROOT, bucket, load, training_record
from injection_embeddings import ENCODER, embeddings
from train_injection_model import operating_bias

HEAD = ROOT / "crates" / "agentiam-filter" / "src" / "encoder_head.json"


def main() -> None:
    dev_path = DATA / "dev.jsonl"
    dev = load(dev_path)
    vectors = embeddings(dev_path)
    fit = [i for i, r in enumerate(dev) if bucket(r["id"]) < 80 and not r.get("pair")]
    tune = [i for i, r in enumerate(dev) if bucket(r["id"]) >= 80]
    labels = [int(dev[i]["label"] == "attack") for i in fit]
    print(f"fit on {len(fit)} texts, choose the operating point on {len(tune)}", file=sys.stderr)
    head = fit_head([vectors[i] for i in fit], labels)
    raw = head_logits(head, [vectors[i] for i in tune])
    benign = np.array([s for s, i in zip(raw, tune) if dev[i]["label"] == "benign"])
    attack = np.array([s for s, i in zip(raw, tune) if dev[i]["label"] == "attack"])
    bias = operating_bias(benign, HEAD_TARGET_BENIGN_RATE)
    written = {
        **record(head, bias),
        "made_by": "scripts/train-encoder-head",
        "encoder": "all-MiniLM-L6-v2 (data/injection/ENCODER.md), frozen; mean-pooled unit-length 126-token windows",
        "trainer": head.trainer,
        **training_record(ENCODER, len(fit), len(tune), HEAD_TARGET_BENIGN_RATE, attack, benign, bias),
    }
    HEAD.write_text(json.dumps(written) + "\n")
    print(json.dumps(written["operating_point"], indent=2))


if __name__ == "__main__":
    main()
