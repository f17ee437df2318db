"""The broker (`agentiam serve`) from Python.

`request_token` gets a task token the way every agent does: a client assertion signed with the
agent's registered key (`private_key_jwt`) and its attestation evidence (model, prompt, tools,
runtime), from which the broker recomputes the composite digest. `register_agent` is the
administrator's registration.

`BrokerApprovals` is a guard's `on_confirmation` that posts the approval request to the broker with
the agent's token and waits until an approver answers in the console (or with `agentiam
approvals`). The broker signs the approval with its approver key; give that key to the guard with
`approver_keys(...)`.

    token = agentiam.request_token(url, identity, key, scope="ledger.ar:void", audience="ledger-api",
                                   task_id="close-march")["access_token"]
    approvals = agentiam.BrokerApprovals(url, token)
    guard = agentiam.Guard(..., approvers=agentiam.approver_keys(url), on_confirmation=approvals)
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from . import _native
from ._guard import Refused
from .exceptions import BrokerError

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
    status, raw = _send(request, timeout)
    if len(raw) > _MAX_ANSWER_BYTES:
        return status, {}
    try:
        answer = json.loads(raw)
    except ValueError:
        return status, {}
    return status, answer if isinstance(answer, dict) else {}


def _send(request: urllib.request.Request, timeout: float) -> tuple[int, bytes]:
    """The status and (at most one byte past the cap of) the body of the broker's answer;
    `BrokerError` (`broker.unreachable`, status 0) when there is no answer."""
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read(_MAX_ANSWER_BYTES + 1)
    except urllib.error.HTTPError as e:
        return e.code, e.read(_MAX_ANSWER_BYTES + 1)
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise BrokerError(0, "broker.unreachable", f"no answer from {request.full_url}: {reason}") from None


def _refused(status: int, answer: Mapping[str, Any]) -> BrokerError:
    return BrokerError(
        status,
        str(answer.get("agentiam_code", "broker.unexpected_answer")),
        str(answer.get("error_description", f"the broker answered {status}")),
    )


def register_agent(
    base_url: str,
    admin_secret: str,
    identity: _native.AgentIdentity,
    key: _native.SigningKey,
    max_scopes: str,
) -> dict[str, Any]:
    """Registers `identity` (its composite digest pinned) with its client `key` and at most
    `max_scopes` (the administrator's `POST /admin/agents`)."""
    registration = {
        "spiffe_id": identity.spiffe_id,
        "max_scopes": max_scopes,
        "allowed_digests": [identity.composite_digest],
        "jwks": {"keys": [json.loads(key.public_jwk())]},
        "attestors": ["configuration"],
    }
    status, answer = _call(base_url.rstrip("/") + "/admin/agents", token=admin_secret, body=registration, timeout=30)
    if status != 201:
        raise _refused(status, answer)
    return answer


def _token_answer(endpoint: str, form: bytes) -> dict[str, Any]:
    """POSTs a token request form; the token response, or `BrokerError` with the broker's code."""
    request = urllib.request.Request(
        endpoint, data=form, headers={"Content-Type": "application/x-www-form-urlencoded"}, method="POST"
    )
    status, raw = _send(request, 30)
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = {}
    if status != 200 or not isinstance(answer, dict) or "access_token" not in answer:
        raise _refused(status, answer if isinstance(answer, dict) else {})
    return answer


def request_token(
    base_url: str,
    identity: _native.AgentIdentity,
    key: _native.SigningKey,
    *,
    scope: str,
    audience: str,
    task_id: str,
    purpose: str = "",
    intent: bool = False,
) -> dict[str, Any]:
    """A task token from the broker (`POST /oauth2/token`, client credentials with a fresh
    `private_key_jwt` assertion and the identity's attestation evidence). Returns the token
    response (`access_token`, `token_type`, `expires_in`, `scope`); raises `BrokerError`.
    `intent=True` declares `scope` the task's intent: what the user asked for, fixed before
    the agent reads anything untrusted (write exact values with `scope_quote`)."""
    endpoint = base_url.rstrip("/") + "/oauth2/token"
    form = urllib.parse.urlencode(
        [
            ("grant_type", "client_credentials"),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", key.client_assertion(identity.spiffe_id, endpoint)),
            ("agent_attestation", identity.attestation_evidence()),
            ("scope", scope),
            ("audience", audience),
            ("task_id", task_id),
            ("task_purpose", purpose),
            *([("task_intent", "true")] if intent else []),
        ]
    ).encode()
    return _token_answer(endpoint, form)


def exchange_token(
    base_url: str,
    identity: _native.AgentIdentity,
    key: _native.SigningKey,
    *,
    subject_token: str,
    scope: str,
    audience: str,
    intent: bool = False,
) -> dict[str, Any]:
    """RFC 8693 token exchange at the broker: `subject_token` (a token of this broker) narrowed to
    `scope` for `identity` (authenticated like `request_token`). `intent=True` declares the new
    token's scopes the task's intent, as a planner does before the agent reads anything
    untrusted (once per chain: `delegation.intent_redeclared`). Returns the token response;
    raises `BrokerError`."""
    endpoint = base_url.rstrip("/") + "/oauth2/token"
    form = urllib.parse.urlencode(
        [
            ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", key.client_assertion(identity.spiffe_id, endpoint)),
            ("agent_attestation", identity.attestation_evidence()),
            ("subject_token", subject_token),
            ("subject_token_type", "urn:ietf:params:oauth:token-type:access_token"),
            ("scope", scope),
            ("audience", audience),
            *([("task_intent", "true")] if intent else []),
        ]
    ).encode()
    return _token_answer(endpoint, form)


def revoke_at_broker(base_url: str, token: str, *, admin_secret: str) -> None:
    """Revoke `token` at the broker (RFC 7009 `POST /oauth2/revoke`, as its administrator):
    from then on the broker introspects it, and every token delegated from it, as inactive and
    refuses to exchange it. Guards that verify tokens offline learn of it only through
    `Guard.revoke` (or introspection). Raises `BrokerError` when the broker refuses."""
    endpoint = base_url.rstrip("/") + "/oauth2/revoke"
    request = urllib.request.Request(
        endpoint,
        data=urllib.parse.urlencode([("token", token)]).encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": f"Bearer {admin_secret}",
        },
        method="POST",
    )
    status, raw = _send(request, 30)
    if status != 200:
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = {}
        raise _refused(status, answer if isinstance(answer, dict) else {})


def approver_keys(base_url: str, name: str = "broker") -> dict[str, dict[str, Any]]:
    """The broker's approver key, as `Guard(approvers=...)` takes it: `{name: jwk}`."""
    status, jwks = _call(base_url.rstrip("/") + "/approvals/keys", token=None, timeout=30)
    keys = jwks.get("keys")
    if status != 200 or not isinstance(keys, list) or len(keys) != 1 or not isinstance(keys[0], dict):
        raise RuntimeError(f"the broker at {base_url} did not publish one approver key ({status})")
    return {name: keys[0]}


class BrokerApprovals:
    """Asks the broker's approvers; a guard's `on_confirmation` (sync; `ask_async` for async tools).

    Returns the broker-signed approval; or, when the approver denied the request, it expired, or it
    could not be posted, `Refused(reason)` with the approver's name and words (the guard then
    refuses the call with `guard.confirmation_denied`, and the model reads that reason once);
    `last_reason` says the same. `token` is the agent's access token (or a function returning the current one);
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

    def __call__(self, request: Mapping[str, Any]) -> dict[str, Any] | Refused:
        try:
            approval = self._ask(request)
        except BrokerError as e:  # no answer from the broker is no approval
            self.last_reason = f"the approvers could not be asked: {e}"
            approval = None
        if approval is None:
            return Refused(self.last_reason or "no human approved the call")
        return approval

    def _ask(self, request: Mapping[str, Any]) -> dict[str, Any] | None:
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
            if state == "denied":
                said = str(answer.get("reason") or "").strip()
                who = answer.get("settled_by") or "the approver"
                self.last_reason = f"{who} denied it: {said}" if said else f"{who} denied it"
                return None
            if state == "expired":
                self.last_reason = "nobody answered before the request expired"
                return None
            time.sleep(0.05)
        self.last_reason = "no answer in time"
        return None

    async def ask_async(self, request: Mapping[str, Any]) -> dict[str, Any] | Refused:
        """The same, without blocking the event loop (for `async def` tools)."""
        return await asyncio.to_thread(self, request)
