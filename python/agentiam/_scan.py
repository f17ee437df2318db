"""The injection filter and spotlighting, for untrusted text before it reaches a model."""

from __future__ import annotations

import json
import secrets
from typing import Any, Literal, NamedTuple

from . import _native

__all__ = ["sanitize", "scan", "spotlight"]


def scan(text: str, *, threshold: float = 0.5, model: bool = True, sanitize: bool = False) -> dict[str, Any]:
    """Scan `text` for prompt injection: `{"verdict": "injection"|"clean", "score", "categories",
    "findings": [{"rule", "category", "start", "end", "weight", "hidden_in"?}], "truncated"}`,
    offsets in UTF-8 bytes of `text`. `model=False` scans with the rules alone; `sanitize=True`
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
