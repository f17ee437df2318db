"""Pydantic AI: guarded tools; a refusal is a `ModelRetry` the model reads, a call that needs a
human is Pydantic AI's own `ApprovalRequired` (a deferred tool call).

    from agentiam.integrations.pydantic_ai import guard_tool
    agent = Agent(model, tools=[guard_tool(guard, approve_payment, scope="payments:approve", risk="high")])

Approving a deferred call in Pydantic AI only lets the tool be called again: the guard still
needs the human's signed approval (`session.approve(...)`) before it runs.
A `RunContext` first parameter is passed through and is not an argument the guard sees.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from pydantic_ai import Tool
from pydantic_ai.exceptions import ApprovalRequired, ModelRetry

from .._guard import ConfirmationRequired, Denied, Guard, _translating

__all__ = ["guard_tool"]


def _translate(error: Denied) -> Exception:
    if isinstance(error, ConfirmationRequired):
        return ApprovalRequired(metadata={"agentiam": error.approval_request})
    return ModelRetry(f"agentiam denied this call ({error.code}): {error.message}")


def guard_tool(
    guard: Guard,
    fn: Callable[..., Any],
    *,
    scope: str | None = None,
    risk: str = "medium",
    untrusted_output: bool = False,
    name: str | None = None,
    **tool_kwargs: Any,
) -> Tool[Any]:
    """A Pydantic AI `Tool` for `fn` with the guard deciding every call first."""
    tool_name = name or fn.__name__
    guard._register(tool_name, scope, risk, untrusted_output)
    params = list(inspect.signature(fn).parameters.values())
    first = params[0] if params else None
    annotation = "" if first is None else str(first.annotation)
    exclude = (first.name,) if first is not None and "RunContext" in annotation else ()
    guarded = guard._wrap(fn, tool_name, exclude)

    return Tool(_translating(guarded, _translate), name=tool_name, **tool_kwargs)
