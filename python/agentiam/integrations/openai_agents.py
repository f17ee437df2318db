"""OpenAI Agents SDK: guarded function tools; a refusal reaches the model as the tool's result.

    from agentiam.integrations.openai_agents import function_tool

    @function_tool(guard, scope="payments:approve", risk="high")
    def approve_payment(amount: int, vendor: str) -> str:
        "Approve a payment."
        ...

    agent = Agent(name="payer", tools=[approve_payment])

The SDK turns a raised error into a generic message; this integration gives the model the
reason code instead (`failure_error_function`), and the tool does not run.
A `RunContextWrapper` / `ToolContext` first parameter is passed through and is not an argument.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import agents

from .._guard import ConfirmationRequired, Denied, Guard

__all__ = ["function_tool", "explain_failure"]


def explain_failure(_ctx: Any, error: Exception) -> str:
    """What the model reads when a guarded tool did not run."""
    if isinstance(error, ConfirmationRequired):
        return f"agentiam: this call needs a human's approval ({error.code}); it did not run."
    if isinstance(error, Denied):
        return f"agentiam denied this call ({error.code}): {error.message}"
    return f"The tool failed: {type(error).__name__}"


def _context_params(fn: Callable[..., Any]) -> tuple[str, ...]:
    params = list(inspect.signature(fn).parameters.values())
    if not params:
        return ()
    annotation = params[0].annotation
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    return (params[0].name,) if ("RunContextWrapper" in text or "ToolContext" in text) else ()


def function_tool(
    guard: Guard,
    *,
    scope: str | None = None,
    risk: str = "medium",
    untrusted_output: bool = False,
    name: str | None = None,
    **function_tool_kwargs: Any,
) -> Callable[[Callable[..., Any]], agents.FunctionTool]:
    """`agents.function_tool` with the guard deciding every call first."""

    def decorate(fn: Callable[..., Any]) -> agents.FunctionTool:
        tool_name = name or fn.__name__
        guard._register(tool_name, scope, risk, untrusted_output)
        guarded = guard._wrap(fn, tool_name, _context_params(fn))
        function_tool_kwargs.setdefault("failure_error_function", explain_failure)
        return agents.function_tool(guarded, name_override=tool_name, **function_tool_kwargs)

    return decorate
