"""Reading the activity log back from Python."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from . import _native


class LogVerification(NamedTuple):
    """What `verify_audit_log` checked: how many records and segments verified."""

    records: int
    segments: int


def verify_audit_log(
    directory: str, checkpoint: str | None = None, verifier_key: str | None = None
) -> LogVerification:
    """Verify the activity log in `directory` offline (against `checkpoint`, a signed note, when
    given with the signer's `verifier_key`): every record's hash chain, every segment's Merkle
    root and the checkpoint's signature.

    Returns `LogVerification(records, segments)`; raises `AuditError` (`audit.tampered`,
    `audit.truncated`, `audit.bad_checkpoint`) when the log does not verify.
    """
    records, segments = _native.verify_audit_log(directory, checkpoint, verifier_key)
    return LogVerification(records=records, segments=segments)


def read_audit_log(
    directory: str, checkpoint: str | None = None, verifier_key: str | None = None
) -> list[dict[str, Any]]:
    """Verify the activity log in `directory` offline (against `checkpoint`, a signed note, when
    given with the signer's `verifier_key`) and return its events, oldest first.

    Raises `AuditError` (`audit.tampered`, `audit.truncated`, `audit.bad_checkpoint`) instead of
    returning anything from a log that does not verify.
    """
    return [json.loads(text) for text in _native.read_audit_log(directory, checkpoint, verifier_key)]
