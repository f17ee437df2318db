"""The Python face of the guard: `Guard`, its `tool` decorator and sessions."""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import contextvars
import copy
import dataclasses
import functools
import inspect
import json
import os
import re
import threading
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from . import _native
from .exceptions import AgentIAMError, AuditError, ConfigurationError, ConfirmationRequired, Denied, TokenError

F = TypeVar("F", bound=Callable[..., Any])

_RISKS = ("low", "medium", "high", "irreversible")
# A tool whose risk nobody stated is treated as high: a payment tool decorated without `risk=`
# must not run unconfirmed in a tainted session.
_UNSTATED_RISK = "high"
_CONFIRMATION_INVALID = "guard.confirmation_invalid"
_CONFIGURATION_INVALID = "guard.tool_spec_invalid"
_CONFIRMATION_REQUIRED = "guard.confirmation_required"
_CONFIRMATION_DENIED = "guard.confirmation_denied"
# A deny the native guard returned without a code would be a bug in agentiam: fail closed.
_HOOK_FAILED = "guard.hook_failed"
# Calls decided ahead (a framework's approval step) that a session remembers until they are made.
_MAX_DECIDED_AHEAD = 1024
# Bearer-token sessions a guard keeps (a server's distinct live tokens).
_MAX_BEARER_SESSIONS = 4096

# The session of the current thread or asyncio task; contextvars keep concurrent tasks apart.
_CURRENT: contextvars.ContextVar[GuardSession | None] = contextvars.ContextVar("agentiam_session", default=None)
# What a framework integration knows about the call being made: the framework's tool-call id
# (into the audit event) and a signed approval the framework carried for this very call.
_CALL: contextvars.ContextVar[tuple[str | None, str | None]] = contextvars.ContextVar(
    "agentiam_call", default=(None, None)
)


@contextlib.contextmanager
def framework_call(call_id: str | None, approval: str | Mapping[str, Any] | None = None) -> Iterator[None]:
    """Within this context a guarded tool's call carries the framework's `call_id` into the
    activity log and presents `approval` (a signed approval for this call) to the guard.
    Integrations use it; it is public for frameworks agentiam has no integration for.
    Something that is not an approval is presented as it is, and the guard refuses the call
    (`guard.confirmation_invalid`, in the activity log) instead of this raising."""
    text = None if approval is None else _approval_json(approval)
    reset = _CALL.set((call_id, text))
    try:
        yield
    finally:
        _CALL.reset(reset)


def _approval_json(approval: object) -> str:
    """An approval as the JSON text the guard reads; never raises, since the guard refuses (and
    records) whatever is not a signed approval."""
    if isinstance(approval, str):
        return approval
    try:
        return json.dumps(dict(approval) if isinstance(approval, Mapping) else approval, default=repr)
    except (TypeError, ValueError, RecursionError):
        return json.dumps(repr(approval))


@dataclasses.dataclass(frozen=True)
class Refused:
    """What an `on_confirmation` callback returns to refuse a call and say why: the guard records
    the reason in the activity log and the model reads it once, in the refusal's message
    ("a human refused the call: <reason>"). Returning None refuses without a reason."""

    reason: str


# The reason a model reads is the human's own words, kept short.
_MAX_REASON = 1000

ApprovalCallback = Callable[
    [dict[str, Any]],
    "str | Mapping[str, Any] | Refused | None | Awaitable[str | Mapping[str, Any] | Refused | None]",
]


async def _awaited(answer: Awaitable[Any]) -> Any:
    return await answer


class GuardSession:
    """One agent run under one token: the principal and what it has read (taint)."""

    def __init__(self, native: Any, on_confirmation: ApprovalCallback | None) -> None:
        self._native = native
        self._on_confirmation = on_confirmation
        # Signed approvals handed to the session (checked when handed over), waiting for the
        # call they are for; each is presented only to that call.
        self._approvals: list[str] = []
        # Decisions an integration took ahead of the call (OpenAI Agents' needs_approval):
        # call id -> (tool, arguments, kind, code, message, approval request).
        self._decided: dict[str, tuple[str, dict[str, Any], str, str | None, str, dict[str, Any] | None]] = {}
        self._lock = threading.Lock()
        # The guard whose session this is (set by `Guard.session` / `Guard.bearer_session`).
        self._owner: Guard | None = None

    @property
    def subject(self) -> str:
        return str(self._native.subject)

    @property
    def presenter(self) -> str:
        return str(self._native.presenter)

    @property
    def scope(self) -> str:
        """The scopes the session's token grants, space-separated as in its `scope` claim."""
        return str(self._native.scope)

    @property
    def task(self) -> str | None:
        task: str | None = self._native.task
        return task

    @property
    def tainted(self) -> bool:
        return bool(self._native.tainted)

    def taint(self, source: str, text: str | None = None) -> None:
        """Mark the session as having read untrusted content (e.g. a user-supplied document).
        Given the `text`, the session also remembers it, so a later call whose arguments copy
        an identifier or a run of words from it needs a human above low risk."""
        self._native.taint(source, text)

    def approve(self, approval: str | Mapping[str, Any]) -> None:
        """Hand the session a human's signed approval; the call it approves presents it.

        It is checked now (a JSON object, or a mapping, signed by a registered approver other
        than this agent, unexpired): anything else raises `Denied` (`guard.confirmation_invalid`)
        and is not kept, so later calls go on as if it had never been given. A kept approval is
        presented only to the call it was signed for (tool, arguments, principal, task), where
        the guard checks it again and accepts it once.
        """
        if not isinstance(approval, (str, Mapping)):
            raise Denied(
                _CONFIRMATION_INVALID,
                f"an approval is a signed JSON object (a str or a mapping), not {type(approval).__name__}",
            )
        text = _approval_json(approval)
        refusal = self._native.screen_approval(text)
        if refusal is not None:
            raise Denied(refusal.code, refusal.message)
        with self._lock:
            if text not in self._approvals:
                self._approvals.append(text)

    @property
    def pending_approvals(self) -> int:
        """Approvals handed to the session that no call has used yet."""
        with self._lock:
            return len(self._approvals)

    def _take_approval(self, tool: str, arguments: dict[str, Any]) -> str | None:
        """The kept approval signed for exactly this call, if any (newest first)."""
        if not self._approvals:  # the common case, read without the lock
            return None
        with self._lock:
            waiting = list(self._approvals)
        for text in reversed(waiting):
            if self._native.approval_fits(text, tool, arguments):
                return text
        return None

    def _used(self, approval: str) -> None:
        with self._lock:
            if approval in self._approvals:
                self._approvals.remove(approval)

    def _decide_now(
        self, tool: str, arguments: dict[str, Any], call_id: str | None, approval: str | None
    ) -> tuple[str, str | None, str, dict[str, Any] | None]:
        """One guard decision: (kind, code, message, approval request)."""
        return self._judged(self._native.before(tool, arguments, call_id, approval), approval)

    def _judged(
        self, outcome: _native.Refusal | None, approval: str | None
    ) -> tuple[str, str | None, str, dict[str, Any] | None]:
        """The native decision `outcome` (None: allowed) as (kind, code, message, approval
        request); marks `approval` used when it may not be presented again."""
        if outcome is None:
            kind, code, message, request = "allow", None, "", None
        else:
            kind, code, message, request = outcome.kind, outcome.code, outcome.message, outcome.approval_request
        if approval is not None and (kind == "allow" or code == _CONFIRMATION_INVALID):
            # Used once; or it fitted this call and still failed (expired, already used), so
            # it never will: either way it is not presented again.
            self._used(approval)
        if kind != "confirm" or request is None:  # a confirm without its request is refused
            return kind, code, message, None
        approval_request: dict[str, Any] = json.loads(request)
        return kind, code, message, approval_request

    def _decide(self, tool: str, arguments: dict[str, Any], call_id: str | None) -> dict[str, Any] | None:
        """None when the call may run; the approval request when `on_confirmation` must answer
        it; raises `Denied` / `ConfirmationRequired` otherwise."""
        framework_id, carried = _CALL.get()
        call_id = call_id or framework_id
        if call_id is not None:
            with self._lock:
                ahead = self._decided.pop(call_id, None)
            if ahead is not None and ahead[0] == tool and ahead[1] == arguments and ahead[2] != "confirm":
                # Decided (and audited) moments ago for exactly this call.
                if ahead[2] == "allow":
                    return None
                raise Denied(ahead[3] or _HOOK_FAILED, ahead[4])
        approval = carried
        if approval is None and self._approvals:  # kept approvals are rare: skip the call
            approval = self._take_approval(tool, arguments)
        outcome = self._native.before(tool, arguments, call_id, approval)
        if outcome is None and approval is None:  # the hot path: allowed, nothing to mark used
            return None
        kind, code, message, approval_request = self._judged(outcome, approval)
        if kind == "allow":
            return None
        if kind == "confirm" and approval_request is not None:
            if self._on_confirmation is not None:
                return approval_request
            raise ConfirmationRequired(code or _CONFIRMATION_REQUIRED, message, approval_request)
        raise Denied(code or _HOOK_FAILED, message)

    def _refused(self, request: Mapping[str, Any], reason: str = "no human approved the call") -> Denied:
        """A human refused (or never answered) `request`: recorded in the activity log; returns
        the `Denied` (`guard.confirmation_denied`) to raise."""
        refusal = self._native.refused(
            str(request.get("tool", "")), request.get("arguments", {}), _CALL.get()[0], reason
        )
        return Denied(refusal.code or _CONFIRMATION_DENIED, refusal.message)

    def _confirmed(self, tool: str, arguments: dict[str, Any], call_id: str | None, answer: Any) -> None:
        if answer is None:
            raise self._refused({"tool": tool, "arguments": arguments})
        if isinstance(answer, Refused):
            raise self._refused({"tool": tool, "arguments": arguments}, _clean_reason(answer.reason))
        text = _approval_json(answer)
        kind, code, message, _ = self._decide_now(tool, arguments, call_id or _CALL.get()[0], text)
        if kind != "allow":
            raise Denied(code or _HOOK_FAILED, message)

    def _check(self, tool: str, arguments: dict[str, Any]) -> None:
        """Decide a synchronous call; asks `on_confirmation` (sync, or async outside a running
        event loop) when a human must approve."""
        request = self._decide(tool, arguments, None)
        if request is not None:
            self._ask(tool, arguments, request)

    def _ask(self, tool: str, arguments: dict[str, Any], request: dict[str, Any]) -> None:
        """Asks `on_confirmation` about a synchronous call that needs a human's approval; returns
        when the approved call may run, raises `Denied` otherwise."""
        if self._on_confirmation is None:
            return
        answer = self._on_confirmation(request)
        if inspect.isawaitable(answer):
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                answer = asyncio.run(_awaited(answer))
            else:
                if inspect.iscoroutine(answer):
                    answer.close()
                raise self._refused(
                    request, "an async on_confirmation cannot answer a synchronous tool inside a running event loop"
                )
        self._confirmed(tool, arguments, None, answer)

    async def _check_async(self, tool: str, arguments: dict[str, Any]) -> None:
        """Decide an asynchronous call; awaits `on_confirmation` when it is async."""
        request = self._decide(tool, arguments, None)
        if request is None or self._on_confirmation is None:
            return
        answer = self._on_confirmation(request)
        if inspect.isawaitable(answer):
            answer = await answer
        self._confirmed(tool, arguments, None, answer)

    def _decide_ahead(self, tool: str, arguments: dict[str, Any], call_id: str) -> str:
        """Decides a call before the framework makes it (for a framework's own approval step);
        the call itself then uses this decision once. Returns "allow", "deny" or "confirm"."""
        approval = self._take_approval(tool, arguments)
        kind, code, message, request = self._decide_now(tool, arguments, call_id, approval)
        with self._lock:
            while len(self._decided) >= _MAX_DECIDED_AHEAD:
                self._decided.pop(next(iter(self._decided)))
            self._decided[call_id] = (tool, arguments, kind, code, message, request)
        return kind

    def approval_request(self, call_id: str) -> dict[str, Any] | None:
        """The approval request of a call the guard paused ahead of time (by the framework's
        tool-call id), for a human to read and sign; None if that call needs no approval."""
        with self._lock:
            ahead = self._decided.get(call_id)
        return None if ahead is None else ahead[5]

    def _after(self, tool: str, text: str, failed: bool, call_id: str | None) -> str:
        """Reports what the model will read of a call's outcome (`text`, see `_model_text`)."""
        call_id = call_id or _CALL.get()[0]
        try:
            return str(self._native.after(tool, text, failed, call_id))
        except UnicodeEncodeError:  # lone surrogates have no UTF-8 form
            return str(self._native.after(tool, text.encode("utf-8", "replace").decode("utf-8"), failed, call_id))


def _state_config(state: str | Mapping[str, Any]) -> dict[str, Any]:
    """The guard configuration's `state` section from a URL or a dict."""
    if isinstance(state, Mapping):
        return dict(state)
    if state == "memory":
        return {"backend": "memory"}
    scheme = state.split(":", 1)[0].lower()
    if scheme in ("redis", "rediss"):
        return {"backend": "redis", "url": state}
    if scheme in ("postgres", "postgresql"):
        return {"backend": "postgres", "url": state}
    if scheme == "sqlite":
        path = state.split(":", 1)[1]
        return {"backend": "sqlite", "path": path[2:] if path.startswith("//") else path}
    # Never the URL itself: it may hold a password (postgres://user:secret@host/db).
    shown = f"a URL with scheme {scheme!r}" if re.fullmatch(r"[a-z][a-z0-9+.-]{0,31}", scheme) else "a string"
    raise ConfigurationError(
        _CONFIGURATION_INVALID,
        f"state is {shown}: use 'memory', 'sqlite:///path', 'postgresql://...', 'redis://...' or a dict",
    )


def _fetch_jwks(url: str) -> str:
    """The issuer's JWKS as JSON text (raises on any failure; the verifier keeps its keys)."""
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - an operator's URL
        body = response.read(1 << 20)
    text: str = body.decode("utf-8")
    json.loads(text)
    return text


def _unverified_claims(token: str) -> dict[str, Any]:
    """A compact JWT's claims, read without verification (only to name what to revoke)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError) as e:
        raise TokenError("token.malformed", f"not a compact JWT: {e}") from None
    if not isinstance(claims, dict):
        raise TokenError("token.malformed", "the token's claims are not a JSON object")
    return claims


def _signer_key_text(key: str | os.PathLike[str] | None) -> str | None:
    """The note signer key itself: given as its text (`PRIVATE+KEY+...`) or as a file holding it."""
    if key is None:
        return None
    if isinstance(key, str) and key.strip().startswith("PRIVATE+KEY+"):
        return key
    with open(key, encoding="utf-8") as f:
        return f.read()


class Guard:
    """A guard for the tools of one agent service.

    `issuer`, `audience` and `jwks` (a dict or JSON string) say which tokens are accepted;
    `policy` is Cedar text (the default gates when omitted); `approvers` maps names to public
    Ed25519 JWKs of the humans who may approve; `audit_dir` (or an open `audit_log`) writes
    every decision to a tamper-evident activity log; `on_confirmation` is called with an approval request when a
    call needs a human and returns a signed approval (or None to refuse); without it the call
    raises `ConfirmationRequired`. The injection filter is on by default: it scans what each
    tool returns (the text the model will read) for prompt injection, tainting the session on a
    finding, and refuses arguments that carry data in URLs to hosts outside `allowed_hosts`
    (`guard.injection_detected`); a dict (`threshold`, `allowed_hosts`, `scan_all_arguments`)
    configures it and `injection_filter=False` turns it off.
    `limits` are declarative call rates and running totals, e.g.
    `{"id": "money-per-hour", "tool": "transfer", "window_secs": 3600, "total": {"argument": "amount",
    "max": 10000}, "per": "principal"}` or `{"id": "calls", "tool": "*", "window_secs": 60, "max_calls": 30}`
    (`guard.rate_limited`).
    `baselines` are behaviour baselines per role (learned from the calls this guard allows, or
    declared), e.g. `{"roles": {"support": ["spiffe://example.org/agent/support"]},
    "declared": {"support": {"tools": ["tickets_read"], "arguments": {"refund.amount": 500}}},
    "file": "baselines.json", "deny_at": 90}`: a call far from its role's baseline is refused
    or, under a policy that asks, sent to a human (`guard.anomaly`).
    `state` is where the state every worker of the service shares lives: approval nonces, DPoP
    proof ids, delegation call budgets, and each task's taint and copied-text fingerprints.
    In this process when omitted; give every worker (uvicorn/gunicorn processes, replicas) the
    same `"redis://127.0.0.1:6379/0"`, `"postgresql://..."`, `"sqlite:///var/lib/agent/guard.db"`
    or a dict such as `{"backend": "redis", "url_env": "GUARD_REDIS_URL", "prefix": "myapp:"}`,
    so an approval is used once, a budget is counted once and taint is seen everywhere.
    `jwks_url` makes the guard follow the issuer's key rotation: the JWKS is fetched from it
    (when `jwks` is not given, at once) and fetched again when a token names a key the guard
    does not know, at most once every `jwks_refresh_secs`.
    `outbound_hosts` are the hosts tools with `outbound_arguments` may reach from a session that
    read untrusted content without a human (a parent domain allows its subdomains); any other
    agent-chosen URL waits for a human (`guard.outbound_unlisted`) unless the task's declared
    intent fixes it.
    `audit_signer_key` (the private key `agentiam audit keygen` writes, as text or a path to it)
    makes the log of `audit_dir` sign checkpoints: after `checkpoint_every` new records, after
    `checkpoint_interval_secs` with new records, and on `close()`; `agentiam audit verify DIR
    --key VERIFIER_KEY` then also catches a cut tail. Use the guard as a context manager, or call
    `close()`, so the last decisions are in a signed checkpoint.
    `audit_preallocate_bytes` (0, the default: off; 1 MiB is a good start) has the log of
    `audit_dir` write zeros that far ahead of its records and write records in place, which makes
    durable commits faster; a segment file then ends in zero bytes until the log moves on to
    the next one or is dropped (`agentiam audit tail` and `verify`, and `read_audit_log`, skip
    them; other readers must stop at the first zero byte).
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks: str | Mapping[str, Any] | None = None,
        policy: str | None = None,
        schema: str | None = None,
        approvers: Mapping[str, Mapping[str, Any]] | None = None,
        audit_dir: str | None = None,
        audit_log: _native.AuditLog | None = None,
        on_confirmation: ApprovalCallback | None = None,
        injection_filter: bool | Mapping[str, Any] = True,
        limits: Sequence[Mapping[str, Any]] = (),
        baselines: Mapping[str, Any] | None = None,
        state: str | Mapping[str, Any] | None = None,
        jwks_url: str | None = None,
        jwks_refresh_secs: int = 30,
        now: int | None = None,
        outbound_hosts: Sequence[str] = (),
        audit_signer_key: str | os.PathLike[str] | None = None,
        checkpoint_every: int = 1000,
        checkpoint_interval_secs: float = 10.0,
        audit_preallocate_bytes: int = 0,
    ) -> None:
        self._jwks_url = jwks_url
        self._jwks_refresh_secs = jwks_refresh_secs
        if jwks is None:
            if jwks_url is None:
                raise ConfigurationError(_CONFIGURATION_INVALID, "give jwks, jwks_url, or both")
            jwks = _fetch_jwks(jwks_url)
        self._config: dict[str, Any] = {
            "issuer": issuer,
            "audience": audience,
            "jwks": json.loads(jwks) if isinstance(jwks, str) else dict(jwks),
            "policy": policy,
            "schema": schema,
            "tools": [],
            "approvers": [{"name": n, "jwk": dict(k)} for n, k in (approvers or {}).items()],
        }
        # Said explicitly either way, so the default does not depend on the native one.
        self._config["injection_filter"] = (
            dict(injection_filter) if isinstance(injection_filter, Mapping) else {} if injection_filter else False
        )
        if limits:
            self._config["limits"] = [dict(limit) for limit in limits]
        if baselines is not None:
            self._config["baselines"] = dict(baselines)
        if state is not None:
            self._config["state"] = _state_config(state)
        if isinstance(outbound_hosts, str):
            raise TypeError("outbound_hosts is a list of host names")
        if outbound_hosts:
            self._config["outbound_hosts"] = list(outbound_hosts)
        if audit_dir is not None and audit_log is not None:
            raise ConfigurationError(_CONFIGURATION_INVALID, "give audit_dir or audit_log, not both")
        if audit_signer_key is not None and audit_dir is None:
            raise ConfigurationError(_CONFIGURATION_INVALID, "audit_signer_key signs the log of audit_dir: give audit_dir")
        self._audit_log = audit_log if audit_log is not None else (
            _native.AuditLog(
                audit_dir,
                signer_key=_signer_key_text(audit_signer_key),
                checkpoint_every=checkpoint_every,
                checkpoint_interval_secs=checkpoint_interval_secs,
                preallocate_bytes=audit_preallocate_bytes,
            )
            if audit_dir is not None
            else None
        )
        self._now = now
        self._on_confirmation = on_confirmation
        self._native: Any = None
        self._lock = threading.Lock()
        # Sessions opened for bearer tokens a server received (MCP over HTTP), by token, so
        # taint lasts for the token's life; bounded, oldest dropped first.
        self._bearer_sessions: collections.OrderedDict[str, GuardSession] = collections.OrderedDict()
        # Tools whose third-party text a callable finds in the result, by tool name.
        self._field_readers: dict[str, Callable[[Any], Sequence[str]]] = {}
        # Refused here, where it is written, not at the first call: policy, schema, keys, limits...
        _native.check_guard_config(json.dumps(self._config))

    def _guard(self) -> Any:
        with self._lock:
            if self._native is None:
                native = _native.Guard(json.dumps(self._config), self._now, self._audit_log)
                if self._jwks_url is not None:
                    url = self._jwks_url
                    native.follow_jwks(lambda: _fetch_jwks(url), self._jwks_refresh_secs)
                self._native = native
            return self._native

    def revoke(
        self,
        *,
        token: str | None = None,
        token_id: str | None = None,
        agent: str | None = None,
        task: str | None = None,
        until: int | None = None,
    ) -> None:
        """Revoke at this guard, from the next call on: a token (the compact token, or its
        `token_id` = `jti`; everything delegated from it goes too), an `agent` (a SPIFFE ID: every
        token it presents or appears in the chain of) or a `task`. Kept `until` (seconds since the
        epoch): the token's expiry for a token, else 24 hours from now. To revoke at the broker,
        for every service, use `agentiam.revoke_at_broker`."""
        now = int(time.time()) if self._now is None else self._now
        kinds = [(k, v) for k, v in (("token", token_id), ("agent", agent), ("task", task)) if v is not None]
        if token is not None:
            claims = _unverified_claims(token)
            jti = claims.get("jti")
            if not isinstance(jti, str) or not jti:
                raise TokenError("token.missing_claim", "the token has no jti to revoke it by; revoke its agent or task")
            kinds.append(("token", jti))
            if until is None and isinstance(claims.get("exp"), int):
                until = int(claims["exp"])
        if len(kinds) != 1:
            raise ValueError("revoke exactly one of token, token_id, agent, task")
        kind, value = kinds[0]
        self._guard().revoke(kind, value, until if until is not None else now + 86_400)

    def tool(
        self,
        *,
        scope: str | None = None,
        risk: str = _UNSTATED_RISK,
        untrusted_output: bool = False,
        name: str | None = None,
        redact: Sequence[str] = (),
        description: str | None = None,
        input_schema: Mapping[str, Any] | None = None,
        intent_arguments: Sequence[str] | None = None,
        outbound_arguments: Sequence[str] | None = None,
        untrusted_fields: Sequence[str] | Callable[[Any], Sequence[str]] | None = None,
    ) -> Callable[[F], F]:
        """Guard a tool. `scope` is the `resource:action` a token needs (default `<name>:call`);
        `risk` one of low, medium, high, irreversible (high when not stated, so a tool nobody
        rated is confirmed in a tainted session); `untrusted_output` taints the session
        after the tool runs; `redact` names arguments whose values the activity log replaces
        with "[REDACTED]" (their hash is kept). `description` (and `input_schema`) pin the
        tool: a token issued for a manifest with another description or schema is refused
        (`guard.tool_changed`), and with the injection filter on a poisoned description is
        refused here, when the tool is registered (`ConfigurationError`,
        `guard.tool_poisoning`); `guard.manifest()` lists them for
        the agent's identity. Works on functions and coroutine functions, and returns a real
        function with the original signature and docstring. Generator functions are refused
        (`TypeError`): their body would run when iterated, after the decision.
        `intent_arguments` names the arguments that decide what a call does and to whom (a
        payment's recipient and amount, not a message's body): with a token that declares the
        task's intent, a call whose every such argument the intent constrains runs in a
        tainted session without a human (default: every argument counts).
        `outbound_arguments` names the arguments holding the URL (or URLs) the tool contacts (a
        fetch, a webhook): after untrusted content, such a call reaches only the guard's
        `outbound_hosts`, or URLs the intent fixes, without a human, whatever its risk.
        `untrusted_fields` says where an otherwise trusted tool's result holds third-party text
        (channel names, review titles): dotted paths into its JSON with `*` for every item
        (`["channels.*.name"]`), or a callable that returns those texts from the result. Text
        found there taints the session, and arguments copied from it are flagged."""
        def decorate(fn: F) -> F:
            tool_name = name or fn.__name__
            paths = None
            if callable(untrusted_fields):
                self._field_readers[tool_name] = untrusted_fields
            elif untrusted_fields is not None:
                paths = untrusted_fields
            self._register(
                tool_name,
                scope,
                risk,
                untrusted_output,
                redact,
                description,
                input_schema,
                (fn,),
                intent_arguments=intent_arguments,
                outbound_arguments=outbound_arguments,
                untrusted_fields=paths,
            )
            return self._wrap(fn, tool_name)

        return decorate

    @property
    def audit_log(self) -> _native.AuditLog | None:
        """The activity log decisions go to, if any (to record events of your own)."""
        return self._audit_log

    def manifest(self) -> list[dict[str, Any]]:
        """The pinned tools as an agent identity's tool manifest:
        `[{"name", "description", "input_schema"}]`, for `AgentIdentity(..., tools=...)`.

        A tool is pinned when it has a description: given to `tool(description=...)`, or, for a
        tool wrapped by a framework integration, the description and argument schema its
        framework shows the model (LangChain's OpenAI function form, the OpenAI Agents SDK's
        `FunctionTool`, MCP's `tools/list` entry, Pydantic AI's `tool_def`, LlamaIndex's
        metadata). Build the identity from this list, so a token issued for it pins exactly
        what the model is shown; a framework tool without a description is not pinned.
        The entries are copies: changing them does not change the guard."""
        return [
            {
                "name": t["name"],
                "description": t["description"],
                "input_schema": copy.deepcopy(t.get("input_schema")),
            }
            for t in self._config["tools"]
            if t.get("description") is not None
        ]

    def _register(
        self,
        tool_name: str,
        scope: str | None,
        risk: str,
        untrusted_output: bool,
        redact: Sequence[str] = (),
        description: str | None = None,
        input_schema: Mapping[str, Any] | None = None,
        functions: Sequence[Callable[..., Any]] = (),
        *,
        intent_arguments: Sequence[str] | None = None,
        outbound_arguments: Sequence[str] | None = None,
        untrusted_fields: Sequence[str] | None = None,
    ) -> None:
        """Registers a tool; `functions` are the callables that will run as it, checked first."""
        if risk not in _RISKS:
            raise ConfigurationError(_CONFIGURATION_INVALID, f"risk must be one of {_RISKS}")
        for fn in functions:
            _refuse_generator_function(fn, tool_name)
        if isinstance(redact, str):
            raise TypeError("redact is a list of argument names")
        if any(isinstance(names, str) for names in (intent_arguments, outbound_arguments, untrusted_fields)):
            raise TypeError("intent_arguments, outbound_arguments and untrusted_fields are lists")
        with self._lock:
            if self._native is not None:
                raise ConfigurationError(_CONFIGURATION_INVALID, "decorate every tool before the guard's first call")
            if any(t["name"] == tool_name for t in self._config["tools"]):
                raise ConfigurationError(_CONFIGURATION_INVALID, f"tool {tool_name!r} is registered twice")
            self._config["tools"].append(
                {
                    "name": tool_name,
                    "risk": risk,
                    "scope": scope,
                    "untrusted_output": untrusted_output,
                    "redact": list(redact),
                    **({"description": description} if description is not None else {}),
                    **({"input_schema": dict(input_schema)} if input_schema is not None else {}),
                    **({"intent_arguments": list(intent_arguments)} if intent_arguments is not None else {}),
                    **({"outbound_arguments": list(outbound_arguments)} if outbound_arguments is not None else {}),
                    **({"untrusted_fields": list(untrusted_fields)} if untrusted_fields is not None else {}),
                }
            )
            try:
                # The tool as the guard will build it (scope, description scanned for poisoning).
                _native.check_guard_config(json.dumps(self._config))
            except AgentIAMError:
                self._config["tools"].pop()
                raise

    def _wrap(
        self,
        fn: F,
        tool_name: str,
        exclude: Sequence[str] = (),
        render: Callable[[Any], str] | None = None,
    ) -> F:
        """A real function that asks the guard before `fn` runs and reports its output after.
        Parameters named in `exclude` (the framework's own context object, found by the
        framework's own rule) are not arguments. `render` is the text the model will read of a
        result (default `_model_text`), which the injection filter scans."""
        _refuse_generator_function(fn, tool_name)
        signature = inspect.signature(fn)
        bind = _binder(signature, frozenset(exclude))
        text_of = render or _model_text

        def arguments(args: Sequence[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
            return _plain_arguments(bind(args, kwargs))

        def report(session: GuardSession, result: Any) -> None:
            # Plain results (the common case) cannot be deferred bodies: skip the inspection.
            deferred = None if isinstance(result, _SCALARS) else _deferred_body(result)
            if deferred is not None:
                _discard(result)
                error = TypeError(
                    f"tool {tool_name!r} returned {deferred}, whose body would run only later, after "
                    "the guard's decision and possibly outside the session: return its result instead"
                )
                session._after(tool_name, str(error), True, None)
                raise error
            text = text_of(result)
            session._after(tool_name, text, False, None)
            reader = self._field_readers.get(tool_name)
            if reader is not None:
                try:
                    found = [t for t in reader(result) if isinstance(t, str) and t.strip()]
                except Exception:
                    # A reader that fails cannot say what is third-party: all of it is (fail closed).
                    found = [text]
                if found:
                    session.taint(tool_name, "\n".join(found))

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                session = _current(self)
                await session._check_async(tool_name, arguments(args, kwargs))
                try:
                    result = await fn(*args, **kwargs)
                except Exception as error:
                    session._after(tool_name, str(error), True, None)
                    raise
                report(session, result)
                return result

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            # `_check` and `_current` inlined: every Python frame on this path costs about as
            # much as a tenth of the guard's whole decision (benches/python/guard_call.py).
            session = _CURRENT.get()
            if session is None or session._owner is not self:
                session = _current(self)
            arguments = _plain_arguments(bind(args, kwargs))
            request = session._decide(tool_name, arguments, None)
            if request is not None:
                session._ask(tool_name, arguments, request)
            try:
                result = fn(*args, **kwargs)
            except Exception as error:
                session._after(tool_name, str(error), True, None)
                raise
            if render is None and type(result) is str:  # noqa: E721 - exactly str, not a subclass
                session._after(tool_name, result, False, None)
            else:
                report(session, result)
            return result

        return wrapper  # type: ignore[return-value]

    @contextlib.contextmanager
    def session(
        self,
        token: str,
        *,
        session_id: str | None = None,
        dpop_proof: str | None = None,
        method: str = "POST",
        url: str = "",
    ) -> Iterator[GuardSession]:
        """Run tool calls as the principal of `token` (verified now) in this context."""
        native = self._guard().session(token, session_id or str(uuid.uuid4()), dpop_proof, method, url)
        session = GuardSession(native, self._on_confirmation)
        session._owner = self
        reset = _CURRENT.set(session)
        try:
            yield session
        finally:
            _CURRENT.reset(reset)

    def bearer_session(self, token: str) -> GuardSession:
        """The session for a bearer token a server received (verified on first use, raising
        `TokenError`); the same session, with its taint, for every request with that token."""
        with self._lock:
            session = self._bearer_sessions.get(token)
            if session is not None:
                self._bearer_sessions.move_to_end(token)
                return session
        native = self._guard().session(token, str(uuid.uuid4()), None, "POST", "")
        session = GuardSession(native, self._on_confirmation)
        session._owner = self
        with self._lock:
            session = self._bearer_sessions.setdefault(token, session)
            while len(self._bearer_sessions) > _MAX_BEARER_SESSIONS:
                self._bearer_sessions.popitem(last=False)
        return session

    @contextlib.contextmanager
    def using(self, session: GuardSession) -> Iterator[GuardSession]:
        """Run tool calls in `session` (from `session()` or `bearer_session()`) in this context."""
        if session._owner is not self:
            raise AgentIAMError("guard.session_foreign", "that session belongs to another guard")
        reset = _CURRENT.set(session)
        try:
            yield session
        finally:
            _CURRENT.reset(reset)

    def flush(self) -> None:
        """Wait until every decision so far is durable in the activity log."""
        self._guard().flush()

    def baseline(self, role: str) -> dict[str, Any] | None:
        """What a role (or `role<parent-role`) has been seen to do: tools, categories, rate and
        argument histograms, hours; None if it has no profile yet. Needs `baselines=`."""
        profile = self._guard().baseline(role)
        return None if profile is None else dict(json.loads(profile))

    def save_baselines(self, path: str | None = None) -> None:
        """Write the learned baselines to `path` (default: the configuration's `file`), so a
        new guard configured with that file starts from them."""
        target = path or (self._config.get("baselines") or {}).get("file")
        if not target:
            raise ConfigurationError("baseline.not_configured", "give a path, or a \"file\" in baselines={...}")
        self._guard().save_baselines(str(target))

    def close(self) -> str | None:
        """Makes every decision so far durable and, when the log signs checkpoints
        (`audit_signer_key`), signs a final one and returns it; None otherwise. Safe to call
        more than once; the guard keeps working, and later decisions are appended after it."""
        if self._audit_log is None:
            return None
        return self._audit_log.close()

    def __enter__(self) -> Guard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def audit_events(self) -> list[dict[str, Any]]:
        """Flush, verify the activity log offline and return its events, oldest first."""
        if self._audit_log is None:
            raise AuditError("audit.not_configured", "this guard has no activity log (give audit_dir or audit_log)")
        self.flush()
        return [json.loads(e) for e in _native.read_audit_log(self._audit_log.directory)]


def _binder(
    signature: inspect.Signature, exclude: frozenset[str]
) -> Callable[[Sequence[Any], dict[str, Any]], dict[str, Any]]:
    """Maps a call's positional and keyword arguments to the tool's arguments by name (defaults
    applied, `exclude`d names left out), as `Signature.bind` does. Signatures without `*args` or
    `**kwargs` take a fast path (`bind` costs several microseconds per call); anything it cannot
    settle, including every call that would be a TypeError, goes through `bind`."""
    params = list(signature.parameters.values())
    kinds = {p.kind for p in params}
    simple = kinds <= {inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY}
    positional = [p.name for p in params if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    names = frozenset(p.name for p in params)
    defaults = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}

    def slow(args: Sequence[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return {k: v for k, v in bound.arguments.items() if k not in exclude}

    if not simple:
        return slow

    def fast(args: Sequence[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
        if not args and not exclude and len(kwargs) == len(names) and names.issuperset(kwargs):
            # Every parameter by keyword (how frameworks call tools). `**kwargs` is a fresh dict
            # of this call, never the caller's own: handing it on shares it with nobody.
            return kwargs
        if len(args) > len(positional) or not names.issuperset(kwargs):
            return slow(args, kwargs)
        bound = dict(zip(positional, args))
        if len(bound) + len(kwargs) != len(bound.keys() | kwargs.keys()):
            return slow(args, kwargs)  # an argument given twice: bind raises the TypeError
        out = {**defaults, **bound, **kwargs}
        if len(out) != len(names):
            return slow(args, kwargs)  # a required argument is missing
        for name in exclude:
            out.pop(name, None)
        return out

    return fast


def _shown_to_model(
    tool_name: str, description: object, input_schema: object
) -> tuple[str | None, dict[str, Any] | None]:
    """A framework tool's description and argument schema as the guard pins them, from what the
    framework itself shows the model (each integration reads its framework's own view).

    A tool shown with no description (None or empty) is not pinned: `(None, None)`, for nothing
    is invented in its place. The schema is copied as plain JSON, so what the guard pins (and
    `Guard.manifest` lists for the identity) is exactly what the model's API is sent, and later
    changes to the framework's object do not reach it. A schema that is not a JSON object of
    finite JSON values could not be sent to a model either: `ConfigurationError`
    (`guard.tool_spec_invalid`). The description and schema then go through `Guard._register`
    like `tool(description=...)`'s, so the injection filter refuses a poisoned one there
    (`guard.tool_poisoning`)."""
    if not isinstance(description, str) or not description:
        return None, None
    if input_schema is None:
        return description, None
    try:
        schema = json.loads(json.dumps(input_schema, allow_nan=False))
    except (TypeError, ValueError, RecursionError) as error:
        raise ConfigurationError(
            _CONFIGURATION_INVALID, f"tool {tool_name!r}: its framework's input schema is not JSON ({error})"
        ) from None
    if not isinstance(schema, dict):
        raise ConfigurationError(
            _CONFIGURATION_INVALID, f"tool {tool_name!r}: its framework's input schema is not a JSON object"
        )
    return description, schema


def _refuse_generator_function(fn: Callable[..., Any], tool_name: str) -> None:
    """Generator functions are not tools the guard can decide: calling one runs nothing, and its
    body runs when iterated, after the decision, possibly outside the session or after taint."""
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        kind = "an async generator" if inspect.isasyncgenfunction(fn) else "a generator"
        raise TypeError(
            f"agentiam cannot guard {tool_name!r}: it is {kind} function, whose body runs only when "
            "iterated, after the guard's decision and possibly outside the session; make it a function "
            "(or an async def) that returns its results"
        )


def _deferred_body(result: Any) -> str | None:
    """What a tool returned whose body has not run yet (a generator, an async generator or a
    coroutine), or None."""
    if inspect.isgenerator(result):
        return "a generator"
    if inspect.isasyncgen(result):
        return "an async generator"
    if inspect.iscoroutine(result):
        return "a coroutine"
    return None


def _discard(result: Any) -> None:
    """Closes a generator or coroutine that will never run (no "never awaited" warning)."""
    close = getattr(result, "close", None)
    if callable(close):
        close()


# Python's escapes of characters repr() will not print: \xad, \u200b, \U000e0041.
_ESCAPE = re.compile(r"\\(?:x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8})")


def _spelled(text: str) -> str:
    """`text` with Python's escapes turned back into the characters they spell: a model reads
    `\\u200b` in a str() of a dict as the character, so the filter must see the character."""
    if "\\" not in text:
        return text

    def character(match: re.Match[str]) -> str:
        code = int(match.group()[2:], 16)
        return match.group() if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF else chr(code)

    return _ESCAPE.sub(character, text)


def _json_default(value: Any) -> Any:
    """What json.dumps cannot write itself, as frameworks write it: a Pydantic model's JSON
    form, a dataclass's fields, bytes as text, anything else as its str()."""
    dump = None if isinstance(value, type) else getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return _spelled(str(value))


def _model_text(output: Any) -> str:
    """The text a model will read of a tool's result, with real characters (never Python's
    `\\u200b` escapes, which hide zero-width and tag characters from the filter): a str as it
    is; anything else as JSON with `ensure_ascii=False` (what LangChain, Pydantic AI and MCP hand
    the model), else its str() with escapes spelled out (what LlamaIndex and the OpenAI Agents
    SDK hand it, whose escapes a model reads as the characters)."""
    if isinstance(output, str):
        return output
    if isinstance(output, (bytes, bytearray)):
        return bytes(output).decode("utf-8", "replace")
    try:
        return json.dumps(output, ensure_ascii=False, default=_json_default)
    except Exception:  # noqa: BLE001 - the tool already ran; the report must not fail
        return _spelled(str(output))


_SCALARS = (str, int, float, bool, type(None))


def _plain_arguments(arguments: dict[str, Any]) -> dict[str, Any]:
    """The arguments as the guard reads them: a Pydantic model or dataclass a framework built
    from the model's JSON becomes that JSON again, so constraints, policy and approval digests
    see its fields (the tool still receives the objects)."""
    for value in arguments.values():
        if not isinstance(value, _SCALARS):
            return {name: _plain(value, 0) for name, value in arguments.items()}
    return arguments


def _plain(value: Any, depth: int) -> Any:
    if isinstance(value, _SCALARS) or depth > 64:  # the guard refuses deeper nesting itself
        return value
    if isinstance(value, Mapping):
        return {key: _plain(item, depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item, depth + 1) for item in value]
    dump = None if isinstance(value, type) else getattr(value, "model_dump", None)
    try:
        if callable(dump):
            return _plain(dump(mode="json"), depth + 1)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return _plain(dataclasses.asdict(value), depth + 1)
    except Exception:  # noqa: BLE001 - what does not convert is refused below
        return value
    return value  # not JSON: the guard refuses it (guard.arguments_invalid)


def _add_keyword_parameter(call: Callable[..., Any], like: Callable[..., Any], name: str, annotation: Any) -> None:
    """Gives `call` the signature of `like` plus a keyword-only parameter `name: annotation = None`
    (before any `**kwargs`): how an integration asks a framework to pass it its context object
    on the callable it registers. Never applied to the function a user gets back."""
    signature = inspect.signature(like)
    extra = inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=None)
    params = list(signature.parameters.values())
    at = next((i for i, p in enumerate(params) if p.kind is inspect.Parameter.VAR_KEYWORD), len(params))
    call.__signature__ = signature.replace(parameters=[*params[:at], extra, *params[at:]])  # type: ignore[attr-defined]
    call.__annotations__ = {**getattr(like, "__annotations__", {}), name: annotation}


def _translating(fn: F, translate: Callable[[Denied], Exception]) -> F:
    """`fn` (a guarded tool), raising `translate(denial)` instead of a `Denied`: how an
    integration hands a refusal to its framework. Keeps `fn` a real (async) function."""
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_call(*args: Any, **kwargs: Any) -> Any:
            try:
                return await fn(*args, **kwargs)
            except Denied as error:
                raise translate(error) from error

        return async_call  # type: ignore[return-value]

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Denied as error:
            raise translate(error) from error

    return call  # type: ignore[return-value]


def _refusal(request: Mapping[str, Any], reason: str | None = None) -> Denied:
    """The `Denied` for a human's refusal of `request` (with the human's `reason`, if given),
    recorded in the current session's log."""
    reason = _clean_reason(reason) if reason is not None else "no human approved the call"
    session = _CURRENT.get()
    if session is None:
        return Denied("guard.confirmation_denied", f"a human refused the call: {reason}")
    return session._refused(request, reason)


def _clean_reason(reason: object) -> str:
    """A human's reason as the model reads it: one line, at most `_MAX_REASON` characters."""
    return " ".join(str(reason).split())[:_MAX_REASON] or "no human approved the call"


def _refusal_reason(answer: object) -> str | None:
    """The reason in a human's refusal given through a framework's own pause (a LangGraph resume
    value, a LlamaIndex `HumanResponseEvent` response): `Refused(reason)`, `{"refused": reason}`,
    or that object as JSON text. None for anything else (an approval, or a bare "no")."""
    if isinstance(answer, Refused):
        return _clean_reason(answer.reason)
    if isinstance(answer, str) and answer.lstrip().startswith("{"):
        try:
            answer = json.loads(answer)
        except ValueError:
            return None
    if isinstance(answer, Mapping) and isinstance(answer.get("refused"), str):
        return _clean_reason(answer["refused"])
    return None


def _current(guard: Guard) -> GuardSession:
    session = _CURRENT.get()
    if session is None or session._owner is not guard:
        raise Denied("guard.credentials_missing", "no agentiam session: call tools inside `with guard.session(token):`")
    return session
