"""MCP servers (the `mcp` SDK's `MCPServer`): register guarded tools.

    server = MCPServer("ledger", token_verifier=TokenVerifier(guard),
                       auth=auth_settings(broker_url, server_url, scopes=["payments:approve"]))

    @guard_tool(guard, server, scope="payments:approve", risk="high")
    def approve_payment(amount: int, vendor: str) -> str:
        "Approve a payment."
        ...

    server.run("streamable-http")

Over HTTP the principal is the request's bearer token: `TokenVerifier(guard)` lets the SDK's
auth middleware refuse tokens the guard does not accept (401), and each call is decided as the
token's principal, in one session per token (so taint lasts for the token's life). On stdio,
open the session yourself: `with guard.session(token): server.run()`.

`auth_settings(broker_url, server_url, scopes)` is the SDK's `AuthSettings` for a server behind
an agentiam broker: the SDK then publishes RFC 9728 protected-resource metadata naming the
broker and the scopes, points every 401 at it, and refuses tokens issued for another resource
(RFC 8707). The guard's `audience` must be `server_url`, which is what clients ask the broker
for. The MCP SDK's own `PrivateKeyJWTOAuthProvider` then gets tokens unaided.

A refusal is the tool's error result (`isError`), whose text names the reason code; the tool does
not run. The MCP request id is recorded in the activity log. The risk level sets the MCP
annotations (`readOnlyHint` for low, `destructiveHint` for high and irreversible) unless
`annotations=` is given. A `Context` parameter is passed through and is not an argument: the
one the SDK itself fills (its `find_context_parameter`: the type hint is, or wraps, a subclass
of the SDK's `Context`); any other parameter is an argument, whatever its name or type.

The tool is pinned as the server lists it (`tools/list`): its description and input schema are
in `guard.manifest()`, for the agent's identity, and a token issued for another description or
schema is refused (`guard.tool_changed`). A description the injection filter flags is refused
when the tool is registered (`ConfigurationError`, `guard.tool_poisoning`), and the server
never gets it. A function without a docstring (or `description=`) is not pinned.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool as RegisteredTool
from mcp.server.mcpserver.utilities.context_injection import find_context_parameter
from mcp.types import ToolAnnotations

from .._guard import (
    _CURRENT,
    _UNSTATED_RISK,
    Guard,
    _add_keyword_parameter,
    _refuse_generator_function,
    _shown_to_model,
    _translating,
    framework_call,
)
from ..exceptions import AgentIAMError, ConfirmationRequired, Denied

__all__ = ["guard_tool", "TokenVerifier", "auth_settings"]

_CONTEXT = "agentiam_mcp_context"


def _tool_error(error: Denied) -> ToolError:
    if isinstance(error, ConfirmationRequired):
        return ToolError(f"agentiam: this call needs a human's approval ({error.code}); it did not run.")
    return ToolError(f"agentiam denied this call ({error.code}): {error.message}")


def auth_settings(broker_url: str, server_url: str, scopes: list[str] | None = None) -> AuthSettings:
    """The SDK's `AuthSettings` for an MCP server at `server_url` whose tokens come from the
    agentiam broker at `broker_url`: RFC 9728 metadata naming the broker and `scopes`, and
    tokens for another resource refused (RFC 8707). Pair it with `TokenVerifier(guard)` for a
    guard whose audience is `server_url`."""
    return AuthSettings(
        issuer_url=broker_url,  # type: ignore[arg-type]  # pydantic parses the URL
        resource_server_url=server_url,  # type: ignore[arg-type]
        required_scopes=list(scopes) if scopes else None,
        validate_token_resource=True,
    )


class TokenVerifier:
    """The MCP SDK's token verifier, backed by the guard: a token the guard refuses is a 401."""

    def __init__(self, guard: Guard) -> None:
        self._guard = guard

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            session = self._guard.bearer_session(token)
        except AgentIAMError:
            return None
        return AccessToken(
            token=token,
            client_id=session.presenter,
            # What the token grants, so the SDK's `required_scopes` check (and the scopes its
            # protected-resource metadata names, RFC 9728) work as with any other verifier.
            scopes=session.scope.split(),
            subject=session.subject,
            resource=self._guard._config["audience"],
        )


@contextlib.contextmanager
def _principal(guard: Guard) -> Iterator[None]:
    """The session to decide in: the one the host opened, else the request's bearer token's."""
    current = _CURRENT.get()
    access = get_access_token()
    if (current is not None and getattr(current, "_owner", None) is guard) or access is None:
        yield  # with no session at all, the guard refuses: guard.credentials_missing
        return
    try:
        session = guard.bearer_session(access.token)
    except AgentIAMError as error:
        raise ToolError(f"agentiam denied this call ({error.code})") from error
    with guard.using(session):
        yield


def _request_scoped(guard: Guard, fn: Callable[..., Any], own_context: str | None) -> Callable[..., Any]:
    """What the server calls: `fn` with the request's principal and request id in scope. When the
    tool has no `Context` parameter, a keyword-only one is added for the SDK to fill (and leave
    out of the tool's input schema)."""
    name = own_context or _CONTEXT

    def request_id(kwargs: dict[str, Any]) -> str | None:
        ctx = kwargs.get(name)
        try:
            return None if ctx is None else str(ctx.request_id)
        except (AttributeError, ValueError, LookupError):
            return None

    @functools.wraps(fn)
    async def call(*args: Any, **kwargs: Any) -> Any:
        call_id = request_id(kwargs)
        if own_context is None:
            kwargs.pop(_CONTEXT, None)
        with _principal(guard), framework_call(call_id):
            result = fn(*args, **kwargs)
            return await result if inspect.isawaitable(result) else result

    if own_context is None:
        _add_keyword_parameter(call, fn, _CONTEXT, Context)
    return call


def guard_tool(
    guard: Guard,
    server: MCPServer,
    *,
    scope: str | None = None,
    risk: str = _UNSTATED_RISK,
    untrusted_output: bool = False,
    name: str | None = None,
    redact: list[str] | tuple[str, ...] = (),
    intent_arguments: Sequence[str] | None = None,
    outbound_arguments: Sequence[str] | None = None,
    untrusted_fields: Sequence[str] | None = None,
    **tool_kwargs: Any,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register `fn` on `server` as a tool the guard decides first; returns the guarded function."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        tool_name = name or fn.__name__
        _refuse_generator_function(fn, tool_name)
        # The SDK's own rule (type hints compared with its Context class), so the guard hides
        # exactly the parameter the SDK fills and sees every one the model fills.
        own_context = find_context_parameter(fn)
        guarded = guard._wrap(fn, tool_name, () if own_context is None else (own_context,))
        tool_kwargs.setdefault(
            "annotations",
            ToolAnnotations(read_only_hint=risk == "low", destructive_hint=risk in ("high", "irreversible")),
        )
        # A ToolError's text reaches the client; any other exception is hidden behind a generic message.
        tool = _translating(guarded, _tool_error)
        served = _request_scoped(guard, tool, own_context)
        # The SDK's own `Tool` for what is served, built as `MCPServer.tool` builds it (same
        # function, same arguments): its description and `parameters` are the tool's
        # `description` and `inputSchema` in `tools/list`, which the guard pins. The server gets
        # the tool only once the guard accepted it.
        shown = RegisteredTool.from_function(served, name=tool_name, **tool_kwargs)
        description, input_schema = _shown_to_model(tool_name, shown.description, shown.parameters)
        guard._register(
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
            untrusted_fields=untrusted_fields,
        )
        server.tool(name=tool_name, **tool_kwargs)(served)
        return tool

    return decorate
