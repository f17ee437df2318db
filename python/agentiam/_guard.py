"""The Python face of the guard: `Guard`, its `tool` decorator and sessions."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import json
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from . import _native
from ._native import AgentIAMError

F = TypeVar("F", bound=Callable[..., Any])

_RISKS = ("low", "medium", "high", "irreversible")

# The session of the current thread or asyncio task; contextvars keep concurrent tasks apart.
_CURRENT: contextvars.ContextVar[GuardSession | None] = contextvars.ContextVar("agentiam_session", default=None)


class Denied(AgentIAMError):
    """The guard refused the call; the tool did not run. `code` is the stable reason code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ConfirmationRequired(Denied):
    """The call needs a human's signed approval of `approval_request` (a dict); the tool did not run.

    Sign it (`agentiam.sign_approval`, or the broker's console), give the approval to the session
    (`session.approve(approval)`) and call the tool again.
    """

    def __init__(self, code: str, message: str, approval_request: dict[str, Any]) -> None:
        super().__init__(code, message)
        self.approval_request = approval_request


ApprovalCallback = Callable[[dict[str, Any]], "str | Mapping[str, Any] | None"]


class GuardSession:
    """One agent run under one token: the principal and what it has read (taint)."""

    def __init__(self, native: Any, on_confirmation: ApprovalCallback | None) -> None:
        self._native = native
        self._on_confirmation = on_confirmation
        self._approvals: dict[str, str] = {}

    @property
    def subject(self) -> str:
        return str(self._native.subject)

    @property
    def presenter(self) -> str:
        return str(self._native.presenter)

    @property
    def task(self) -> str | None:
        task: str | None = self._native.task
        return task

    @property
    def tainted(self) -> bool:
        return bool(self._native.tainted)

    def taint(self, source: str) -> None:
        """Mark the session as having read untrusted content (e.g. a user-supplied document)."""
        self._native.taint(source)

    def approve(self, approval: str | Mapping[str, Any]) -> None:
        """Hand the session a human's signed approval; the next call of that tool presents it.

        The guard checks it against the call (tool, arguments, principal, task, expiry) and
        accepts it once; an approval for anything else is refused.
        """
        text = approval if isinstance(approval, str) else json.dumps(dict(approval))
        tool = json.loads(text).get("digest", "")
        self._approvals[str(tool)] = text

    def _decide(self, tool: str, arguments: dict[str, Any], call_id: str | None) -> None:
        approval = None
        if self._approvals:
            # The guard matches an approval to a call by hash; offer the newest one.
            approval = next(reversed(self._approvals.values()))
        kind, code, message, request = self._native.before(tool, arguments, call_id, approval)
        if kind == "allow":
            if approval is not None and message:
                self._approvals = {k: v for k, v in self._approvals.items() if v != approval}
            return
        if kind == "confirm":
            approval_request = json.loads(request)
            if self._on_confirmation is not None:
                answer = self._on_confirmation(approval_request)
                if answer is not None:
                    text = answer if isinstance(answer, str) else json.dumps(dict(answer))
                    kind, code, message, _ = self._native.before(tool, arguments, call_id, text)
                    if kind == "allow":
                        return
                    raise Denied(code, message)
                raise Denied("guard.confirmation_denied", "no human approved the call")
            raise ConfirmationRequired(code, message, approval_request)
        raise Denied(code, message)

    def _after(self, tool: str, output: Any, failed: bool, call_id: str | None) -> str:
        text = output if isinstance(output, str) else repr(output)
        return str(self._native.after(tool, text, failed, call_id))


class Guard:
    """A guard for the tools of one agent service.

    `issuer`, `audience` and `jwks` (a dict or JSON string) say which tokens are accepted;
    `policy` is Cedar text (the default gates when omitted); `approvers` maps names to public
    Ed25519 JWKs of the humans who may approve; `audit_dir` writes every decision to a
    tamper-evident activity log; `on_confirmation` is called with an approval request when a
    call needs a human and returns a signed approval (or None to refuse); without it the call
    raises `ConfirmationRequired`.
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks: str | Mapping[str, Any],
        policy: str | None = None,
        schema: str | None = None,
        approvers: Mapping[str, Mapping[str, Any]] | None = None,
        audit_dir: str | None = None,
        on_confirmation: ApprovalCallback | None = None,
        now: int | None = None,
    ) -> None:
        self._config: dict[str, Any] = {
            "issuer": issuer,
            "audience": audience,
            "jwks": json.loads(jwks) if isinstance(jwks, str) else dict(jwks),
            "policy": policy,
            "schema": schema,
            "tools": [],
            "approvers": [{"name": n, "jwk": dict(k)} for n, k in (approvers or {}).items()],
        }
        self._audit_dir = audit_dir
        self._now = now
        self._on_confirmation = on_confirmation
        self._native: Any = None
        self._lock = threading.Lock()

    def _guard(self) -> Any:
        with self._lock:
            if self._native is None:
                self._native = _native.Guard(json.dumps(self._config), self._now, self._audit_dir)
            return self._native

    def tool(
        self,
        *,
        scope: str | None = None,
        risk: str = "medium",
        untrusted_output: bool = False,
        name: str | None = None,
    ) -> Callable[[F], F]:
        """Guard a tool. `scope` is the `resource:action` a token needs (default `<name>:call`);
        `risk` one of low, medium, high, irreversible; `untrusted_output` taints the session
        after the tool runs. Works on functions and coroutine functions, and returns a real
        function with the original signature and docstring."""
        def decorate(fn: F) -> F:
            tool_name = name or fn.__name__
            self._register(tool_name, scope, risk, untrusted_output)
            return self._wrap(fn, tool_name)

        return decorate

    def _register(self, tool_name: str, scope: str | None, risk: str, untrusted_output: bool) -> None:
        if risk not in _RISKS:
            raise ValueError(f"risk must be one of {_RISKS}")
        with self._lock:
            if self._native is not None:
                raise AgentIAMError("decorate every tool before the guard's first call")
            if any(t["name"] == tool_name for t in self._config["tools"]):
                raise AgentIAMError(f"tool {tool_name!r} is registered twice")
            self._config["tools"].append(
                {"name": tool_name, "risk": risk, "scope": scope, "untrusted_output": untrusted_output}
            )

    def _wrap(self, fn: F, tool_name: str, exclude: Sequence[str] = ()) -> F:
        """A real function that asks the guard before `fn` runs and reports its output after.
        Parameters named in `exclude` (a framework's context object) are not arguments."""
        signature = inspect.signature(fn)

        def arguments(args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            return {k: v for k, v in bound.arguments.items() if k not in exclude}

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                session = _current(self)
                session._decide(tool_name, arguments(args, kwargs), None)
                try:
                    result = await fn(*args, **kwargs)
                except Exception as error:
                    session._after(tool_name, str(error), True, None)
                    raise
                session._after(tool_name, result, False, None)
                return result

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            session = _current(self)
            session._decide(tool_name, arguments(args, kwargs), None)
            try:
                result = fn(*args, **kwargs)
            except Exception as error:
                session._after(tool_name, str(error), True, None)
                raise
            session._after(tool_name, result, False, None)
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
        session._owner = self  # type: ignore[attr-defined]
        reset = _CURRENT.set(session)
        try:
            yield session
        finally:
            _CURRENT.reset(reset)

    def flush(self) -> None:
        """Wait until every decision so far is durable in the activity log."""
        self._guard().flush()


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


def _current(guard: Guard) -> GuardSession:
    session = _CURRENT.get()
    if session is None or getattr(session, "_owner", None) is not guard:
        raise Denied("guard.credentials_missing", "no agentiam session: call tools inside `with guard.session(token):`")
    return session
