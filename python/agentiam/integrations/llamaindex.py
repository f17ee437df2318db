"""LlamaIndex: guard existing `FunctionTool`s.

    from agentiam.integrations.llamaindex import guard_tool
    tool = guard_tool(guard, FunctionTool.from_defaults(fn=approve_payment), scope="payments:approve", risk="high")

A refusal raises `agentiam.Denied` (its text names the reason code); LlamaIndex agents turn a
tool's exception into an error `ToolOutput` the model reads, and the tool does not run.
A workflow `Context` parameter is passed through and is not an argument the guard sees.
"""

from __future__ import annotations

from llama_index.core.tools import FunctionTool

from .._guard import Guard

__all__ = ["guard_tool"]


def guard_tool(
    guard: Guard,
    tool: FunctionTool,
    *,
    scope: str | None = None,
    risk: str = "medium",
    untrusted_output: bool = False,
) -> FunctionTool:
    """A copy of `tool` whose every call the guard decides first."""
    name = tool.metadata.get_name()
    guard._register(name, scope, risk, untrusted_output)
    exclude = (tool.ctx_param_name,) if tool.ctx_param_name else ()
    return FunctionTool(fn=guard._wrap(tool.real_fn, name, exclude), metadata=tool.metadata)
