"""LangChain: guard existing tools; a refusal reaches the model as the tool's error message.

    from agentiam.integrations.langchain import guard_tool

    @tool
    def approve_payment(amount: int, vendor: str) -> str:
        "Approve a payment."
        ...

    approve_payment = guard_tool(guard, approve_payment, scope="payments:approve", risk="high")

A denied call never runs the tool: LangChain answers the tool call with a `ToolMessage` whose
status is "error" and whose content names the reason code, so the model can adjust.
"""

from __future__ import annotations

import inspect
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool, ToolException

from .._guard import ConfirmationRequired, Denied, Guard, _translating

__all__ = ["guard_tool"]


def _explain(error: Denied) -> ToolException:
    if isinstance(error, ConfirmationRequired):
        return ToolException(
            f"agentiam: this call needs a human's approval ({error.code}); it did not run. "
            f"Approval request digest {error.approval_request.get('digest', '')}."
        )
    return ToolException(f"agentiam denied this call ({error.code}): {error.message}")


def guard_tool(
    guard: Guard,
    tool: BaseTool,
    *,
    scope: str | None = None,
    risk: str = "medium",
    untrusted_output: bool = False,
) -> StructuredTool:
    """A copy of `tool` (a function-backed LangChain tool) whose every call the guard decides first."""
    func = getattr(tool, "func", None)
    coroutine = getattr(tool, "coroutine", None)
    if func is None and coroutine is None:
        raise TypeError("guard_tool needs a function-backed tool (@tool or StructuredTool.from_function)")
    guard._register(tool.name, scope, risk, untrusted_output)

    def guarded(fn: Any) -> Any:
        return _translating(guard._wrap(fn, tool.name), _explain)

    extra: dict[str, Any] = {} if tool.args_schema is None else {"args_schema": tool.args_schema}
    return StructuredTool(
        name=tool.name,
        description=tool.description,
        **extra,
        func=guarded(func) if func is not None else None,
        coroutine=guarded(coroutine) if coroutine is not None and inspect.iscoroutinefunction(coroutine) else None,
        return_direct=tool.return_direct,
        response_format=tool.response_format,
        handle_tool_error=True,
    )
