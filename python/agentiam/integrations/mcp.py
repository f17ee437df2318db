"""MCP servers (the `mcp` SDK's `MCPServer`): register guarded tools.

    server = MCPServer("ledger")

    @guard_tool(guard, server, scope="payments:approve", risk="high")
    def approve_payment(amount: int, vendor: str) -> str:
        "Approve a payment."
        ...

    with guard.session(token):       # the principal this server instance acts for
        server.run()

A refusal is the tool's error result (`isError`), whose text names the reason code; the tool does
not run. The risk level sets the MCP annotations (`readOnlyHint` for low, `destructiveHint` for
high and irreversible) unless `annotations=` is given. A `Context` parameter is passed through
and is not an argument the guard sees.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

from .._guard import ConfirmationRequired, Denied, Guard, _translating

__all__ = ["guard_tool"]


def _tool_error(error: Denied) -> ToolError:
    if isinstance(error, ConfirmationRequired):
        return ToolError(f"agentiam: this call needs a human's approval ({error.code}); it did not run.")
    return ToolError(f"agentiam denied this call ({error.code}): {error.message}")


def guard_tool(
    guard: Guard,
    server: MCPServer,
    *,
    scope: str | None = None,
    risk: str = "medium",
    untrusted_output: bool = False,
    name: str | None = None,
    **tool_kwargs: Any,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register `fn` on `server` as a tool the guard decides first; returns the guarded function."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        tool_name = name or fn.__name__
        guard._register(tool_name, scope, risk, untrusted_output)
        exclude = tuple(
            p.name
            for p in inspect.signature(fn).parameters.values()
            if "Context" in (p.annotation if isinstance(p.annotation, str) else getattr(p.annotation, "__name__", ""))
        )
        guarded = guard._wrap(fn, tool_name, exclude)
        tool_kwargs.setdefault(
            "annotations",
            ToolAnnotations(read_only_hint=risk == "low", destructive_hint=risk in ("high", "irreversible")),
        )
        # A ToolError's text reaches the client; any other exception is hidden behind a generic message.
        tool = _translating(guarded, _tool_error)
        server.tool(name=tool_name, **tool_kwargs)(tool)
        return tool

    return decorate
