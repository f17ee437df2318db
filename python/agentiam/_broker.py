"""Approvals through the broker: a guard's `on_confirmation` that posts the approval request to
the broker (`agentiam serve`) with the agent's token and waits until an approver answers in the
console (or with `agentiam approvals`). The broker signs the approval with its approver key; give
that key to the guard with `approver_keys(...)`.

    approvals = agentiam.BrokerApprovals("http://127.0.0.1:8700", token)
    guard = agentiam.Guard(..., approvers=agentiam.approver_keys("http://127.0.0.1:8700"),
                           on_confirmation=approvals)
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any

# Largest answer read from the broker.
_MAX_ANSWER_BYTES = 256 * 1024
# The broker holds a poll at most this long (its MAX_WAIT_SECS).
_POLL_SECS = 60

Findings = Callable[[Mapping[str, Any]], Sequence[Mapping[str, str]]]


def _call(
    url: str, *, token: str | None, body: Mapping[str, Any] | None = None, timeout: float = 90
) -> tuple[int, dict[str, Any]]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read(_MAX_ANSWER_BYTES + 1)
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read(_MAX_ANSWER_BYTES + 1)
    if len(raw) > _MAX_ANSWER_BYTES:
        return status, {}
    try:
        answer = json.loads(raw)
    except ValueError:
        return status, {}
    return status, answer if isinstance(answer, dict) else {}


def approver_keys(base_url: str, name: str = "broker") -> dict[str, dict[str, Any]]:
    """The broker's approver key, as `Guard(approvers=...)` takes it: `{name: jwk}`."""
    status, jwks = _call(base_url.rstrip("/") + "/approvals/keys", token=None, timeout=30)
    keys = jwks.get("keys")
    if status != 200 or not isinstance(keys, list) or len(keys) != 1 or not isinstance(keys[0], dict):
        raise RuntimeError(f"the broker at {base_url} did not publish one approver key ({status})")
    return {name: keys[0]}


class BrokerApprovals:
    """Asks the broker's approvers; a guard's `on_confirmation` (sync; `ask_async` for async tools).

    Returns the broker-signed approval, or None when the request was denied, expired, or could not
    be posted (the guard then refuses the call with `guard.confirmation_denied`); `last_reason`
    says why. `token` is the agent's access token (or a function returning the current one);
    `findings` adds what the approver should weigh (e.g. `[{"kind": "taint", "detail": ...}]`).
    """

    def __init__(
        self,
        base_url: str,
        token: str | Callable[[], str],
        *,
        timeout: float = 900,
        findings: Findings | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.timeout = timeout
        self._findings = findings
        self.last_reason: str | None = None

    def _bearer(self) -> str:
        return self._token() if callable(self._token) else self._token

    def __call__(self, request: Mapping[str, Any]) -> dict[str, Any] | None:
        token = self._bearer()
        findings = [dict(f) for f in self._findings(request)] if self._findings else []
        status, posted = _call(
            self.base_url + "/approvals", token=token, body={"request": dict(request), "findings": findings}
        )
        request_id = posted.get("id")
        if status != 201 or not isinstance(request_id, str):
            self.last_reason = f"the broker refused the request ({status}, {posted.get('agentiam_code')})"
            return None
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            wait = max(1, min(_POLL_SECS, int(deadline - time.monotonic())))
            status, answer = _call(
                f"{self.base_url}/approvals/{request_id}?wait={wait}", token=token, timeout=wait + 30
            )
            state = answer.get("status")
            if status != 200:
                self.last_reason = f"polling the request failed ({status}, {answer.get('agentiam_code')})"
                return None
            if state == "approved" and isinstance(answer.get("approval"), dict):
                self.last_reason = None
                approval: dict[str, Any] = answer["approval"]
                return approval
            if state in ("denied", "expired"):
                self.last_reason = f"{state} by {answer.get('settled_by', 'nobody')}: {answer.get('reason', '')}"
                return None
            time.sleep(0.05)
        self.last_reason = "no answer in time"
        return None

    async def ask_async(self, request: Mapping[str, Any]) -> dict[str, Any] | None:
        """The same, without blocking the event loop (for `async def` tools)."""
        return await asyncio.to_thread(self, request)
