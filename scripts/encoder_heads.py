"""The transformer layer's head over window embeddings, as the filter's Rust code computes it.

Two kinds, chosen by `AGENTIAM_HEAD` (default `mlp`, the one that ships):

- `linear`: logistic regression (L2, balanced class weights, lbfgs, seed 0); a window's logit is
  `w . e`.
- `mlp`: one hidden layer of `AGENTIAM_HEAD_HIDDEN` ReLU units (default 128), scikit-learn's
  MLPClassifier (adam, L2 `alpha`, early stopping on a seeded tenth of the windows, seed 0,
  classes balanced by sample weight); its hidden weights are then quantised to int8 with one
  scale per unit, as `encoder_head.json` stores them, and every figure is computed with the
  quantised weights. A window's logit is `v . relu(Q e * scale + b) + c`.

`head_logits` gives each text's highest window logit without the operating point's shift, which
the caller chooses on benign tuning texts (`operating_bias`) and `record` writes as the head's
bias.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier

HEAD_KIND = os.environ.get("AGENTIAM_HEAD", "mlp")
HEAD_C = float(os.environ.get("AGENTIAM_HEAD_C", "1.0"))
HEAD_HIDDEN = int(os.environ.get("AGENTIAM_HEAD_HIDDEN", "128"))
HEAD_ALPHA = float(os.environ.get("AGENTIAM_HEAD_ALPHA", "1e-3"))


@dataclass
class Head:
    """Output weights `out` over the hidden layer (or over the embedding when `hidden` is
    None), the output intercept `intercept`, and the int8 hidden layer with its scales."""

    out: np.ndarray
    intercept: float
    hidden: np.ndarray | None = None  # int8 [units, dims]
    scales: np.ndarray | None = None  # f32 [units]
    biases: np.ndarray | None = None  # f32 [units]
    trainer: str = ""

    def window_logits(self, e: np.ndarray) -> np.ndarray:
        """Logit of each window embedding (rows of `e`), without the operating point."""
        if self.hidden is None:
            return e @ self.out
        h = (e @ self.hidden.T.astype(np.float32)) * self.scales + self.biases
        return np.maximum(h, 0.0) @ self.out + self.intercept


def _training_matrix(windows_per_doc: list[np.ndarray], labels: list[int]) -> tuple[np.ndarray, np.ndarray]:
    x = np.concatenate(windows_per_doc)
    y = np.concatenate([np.full(len(w), label) for w, label in zip(windows_per_doc, labels)])
    return x, y


def fit_head(windows_per_doc: list[np.ndarray], labels: list[int], kind: str = HEAD_KIND) -> Head:
    """Fits a head on windows: benign texts give negative windows, attack texts positive ones."""
    x, y = _training_matrix(windows_per_doc, labels)
    if kind == "linear":
        model = LogisticRegression(C=HEAD_C, class_weight="balanced", max_iter=5000, random_state=0)
        model.fit(x, y)
        return Head(
            out=model.coef_[0].astype(np.float64),
            intercept=0.0,
            trainer=f"scikit-learn {sklearn.__version__} LogisticRegression(C={HEAD_C}, class_weight=balanced, lbfgs, random_state=0), numpy {np.__version__}",
        )
    if kind != "mlp":
        raise SystemExit(f"AGENTIAM_HEAD must be linear or mlp, not {kind}")
    positive = float(y.mean())
    weight = np.where(y == 1, 0.5 / positive, 0.5 / (1.0 - positive))
    model = MLPClassifier(
        hidden_layer_sizes=(HEAD_HIDDEN,),
        activation="relu",
        alpha=HEAD_ALPHA,
        max_iter=60,
        early_stopping=True,
        random_state=0,
    )
    model.fit(x, y, sample_weight=weight)
    w1, w2 = model.coefs_
    b1, b2 = model.intercepts_
    scales = np.abs(w1).max(axis=0) / 127.0
    scales[scales == 0] = 1.0
    quantised = np.clip(np.round(w1 / scales), -127, 127).astype(np.int8).T
    return Head(
        out=w2[:, 0].astype(np.float32),
        intercept=float(b2[0]),
        hidden=quantised,
        scales=scales.astype(np.float32),
        biases=b1.astype(np.float32),
        trainer=(
            f"scikit-learn {sklearn.__version__} MLPClassifier(hidden_layer_sizes=({HEAD_HIDDEN},), relu, adam,"
            f" alpha={HEAD_ALPHA}, max_iter=60, early_stopping=True, random_state=0, classes balanced by sample weight),"
            f" hidden weights int8 per unit, numpy {np.__version__}"
        ),
    )


def head_logits(head: Head, windows_per_doc: list[np.ndarray]) -> np.ndarray:
    """Highest window logit per text, without the operating point's shift."""
    return np.array([float(head.window_logits(e).max()) for e in windows_per_doc])


def probe(dims: int) -> np.ndarray:
    """The fixed input whose logit `record` writes: sin(1), sin(2), ... sin(dims), unit length."""
    vector = np.sin(np.arange(1, dims + 1, dtype=np.float64)).astype(np.float32)
    return vector / np.linalg.norm(vector)


def record(head: Head, shift: float) -> dict:
    """The head as `encoder_head.json` stores it, with `shift` (the operating point) folded into
    the bias, and the probe: the logit of `probe(dims)`, which the filter recomputes when it loads
    the head and refuses the head on a mismatch."""
    dims = head.out.shape[0] if head.hidden is None else head.hidden.shape[1]
    out = {
        "weights": [round(float(w), 7) for w in head.out],
        "bias": round(head.intercept + shift, 7),
    }
    if head.hidden is not None:
        out["hidden"] = {
            "units": int(head.hidden.shape[0]),
            "weights_int8": base64.b64encode(head.hidden.tobytes()).decode(),
            "scales": [float(np.float32(s)) for s in head.scales],
            "biases": [float(np.float32(b)) for b in head.biases],
        }
    out["probe"] = {
        "vector": "sin(1), sin(2), ... sin(dims), scaled to unit length",
        "logit": round(float(head.window_logits(probe(dims)[None, :])[0]) + shift, 5),
    }
    return out
