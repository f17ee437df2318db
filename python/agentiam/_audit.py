"""Reading the activity log back from Python."""

from __future__ import annotations

import json
from typing import Any

from . import _native


def read_audit_log(
    directory: str, checkpoint: str | None = None, verifier_key: str | None = None
) -> list[dict[str, Any]]:
    """Verify the activity log in `directory` offline (against `checkpoint`, a signed note, when
    given with the signer's `verifier_key`) and return its events, oldest first.

    Raises `AuditError` (`audit.tampered`, `audit.truncated`, `audit.bad_checkpoint`) instead of
    returning anything from a log that does not verify.
    """
    return [json.loads(text) for text in _native.read_audit_log(directory, checkpoint, verifier_key)]
