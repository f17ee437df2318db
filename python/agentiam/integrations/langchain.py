"""LangChain and LangGraph: guard existing tools; a refusal reaches the model as the tool's error
message, and a call that needs a human can pause the graph (LangGraph's `interrupt`).

    from agentiam.integrations.langchain import guard_tool

    @tool
    def approve_payment(amount: int, vendor: str) -> str:
        "Approve a payment."
        ...

    approve_payment = guard_tool(guard, approve_payment, scope="payments:approve", risk="high")

A denied call never runs the tool: LangChain answers the tool call with a `ToolMessage` whose
status is "error" and whose content names the reason code, so the model can adjust. The tool
call's id is recorded in the activity log. No parameter is hidden from the guard: whatever
LangChain passes the function is an argument it decides on. The injection filter scans what the
model reads: the string, or LangChain's JSON of another result (only the content of a
`content_and_artifact` tool).

With `approvals="interrupt"`, a call that needs a human pauses the LangGraph run (human in the
loop): the interrupt's value is `{"agentiam_approval_request": {...}}`; resume the graph with
`Command(resume=<signed approval>)` and the call proceeds if the guard accepts the approval.
Resuming with `False` refuses the call (`guard.confirmation_denied`); resuming with
`{"refused": "<the human's reason>"}` (or `agentiam.Refused(reason)`) refuses it and the model
reads that reason, once, in the tool's error.

The tool is pinned as LangChain shows it to the model (`convert_to_openai_function`, the form
chat models' `bind_tools` send): its description and the JSON schema of its arguments are in
`guard.manifest()`, for the agent's identity, and a token issued for another description or
schema is refused (`guard.tool_changed`). A description the injection filter flags is refused
when the tool is wrapped (`ConfigurationError`, `guard.tool_poisoning`). A tool with an empty
description is not pinned.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.tools import BaseTool, StructuredTool, ToolException
from langchain_core.utils.function_calling import convert_to_openai_function

from .._guard import (
    _CALL,
    _UNSTATED_RISK,
    Guard,
    _approval_json,
    _model_text,
    _refuse_generator_function,
    _refusal,
    _refusal_reason,
    _shown_to_model,
    _translating,
    framework_call,
)
from ..exceptions import ConfirmationRequired, Denied

__all__ = ["guard_tool", "GuardedTool"]


def _explain(error: Denied) -> ToolException:
    if isinstance(error, ConfirmationRequired):
        return ToolException(
            f"agentiam: this call needs a human's approval ({error.code}); it did not run. "
            f"Approval request digest {error.approval_request.get('digest', '')}."
        )
    return ToolException(f"agentiam denied this call ({error.code}): {error.message}")


class GuardedTool(StructuredTool):
    """A `StructuredTool` that hands LangChain's tool-call id to the guard (for the audit event)."""

    def run(self, tool_input: Any, *args: Any, tool_call_id: str | None = None, **kwargs: Any) -> Any:
        with framework_call(tool_call_id):
            return super().run(tool_input, *args, tool_call_id=tool_call_id, **kwargs)

    async def arun(self, tool_input: Any, *args: Any, tool_call_id: str | None = None, **kwargs: Any) -> Any:
        with framework_call(tool_call_id):
            return await super().arun(tool_input, *args, tool_call_id=tool_call_id, **kwargs)


def _ask_graph(request: dict[str, Any]) -> Any:
    """Pauses the running LangGraph graph until a human answers (the resume value)."""
    from langgraph.types import interrupt  # only needed in "interrupt" mode

    return interrupt({"agentiam_approval_request": request})


def _interrupting(fn: Any) -> Any:
    """`fn` (a guarded tool) that, when the guard asks for a human, pauses the graph and retries
    once with the approval the graph was resumed with."""

    def retry_with(error: ConfirmationRequired) -> str:
        approval = _ask_graph(error.approval_request)
        reason = _refusal_reason(approval)
        if reason is not None or not approval:
            raise _refusal(error.approval_request, reason) from error
        return _approval_json(approval)

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_call(*args: Any, **kwargs: Any) -> Any:
            try:
                return await fn(*args, **kwargs)
            except ConfirmationRequired as error:
                approval = retry_with(error)
            with framework_call(_CALL.get()[0], approval):
                return await fn(*args, **kwargs)

        return async_call

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ConfirmationRequired as error:
            approval = retry_with(error)
        with framework_call(_CALL.get()[0], approval):
            return fn(*args, **kwargs)

    return call


def _content_of(result: Any) -> str:
    if isinstance(result, tuple) and len(result) == 2:
        return _model_text(result[0])
    return _model_text(result)


def guard_tool(
    guard: Guard,
    tool: BaseTool,
    *,
    scope: str | None = None,
    risk: str = _UNSTATED_RISK,
    untrusted_output: bool = False,
    redact: list[str] | tuple[str, ...] = (),
    intent_arguments: Sequence[str] | None = None,
    outbound_arguments: Sequence[str] | None = None,
    untrusted_fields: Sequence[str] | None = None,
    approvals: Literal["error", "interrupt"] = "error",
) -> GuardedTool:
    """A copy of `tool` (a function-backed LangChain tool) whose every call the guard decides first.

    `approvals="error"` tells the model a call needs a human (tool error); `"interrupt"` pauses
    the LangGraph run for the approval (needs `langgraph` and a checkpointer)."""
    if approvals not in ("error", "interrupt"):
        raise ValueError('approvals is "error" or "interrupt"')
    func = getattr(tool, "func", None)
    coroutine = getattr(tool, "coroutine", None)
    if func is None and coroutine is None:
        raise TypeError("guard_tool needs a function-backed tool (@tool or StructuredTool.from_function)")
    functions = [f for f in (func, coroutine) if f]
    for fn in functions:
        _refuse_generator_function(fn, tool.name)
    # A content_and_artifact tool returns (content, artifact); the model reads only the content.
    render = _content_of if tool.response_format == "content_and_artifact" else None

    def guarded(fn: Any) -> Any:
        wrapped = guard._wrap(fn, tool.name, render=render)
        if approvals == "interrupt":
            wrapped = _interrupting(wrapped)
        return _translating(wrapped, _explain)

    extra: dict[str, Any] = {} if tool.args_schema is None else {"args_schema": tool.args_schema}
    guarded_copy = GuardedTool(
        name=tool.name,
        description=tool.description,
        **extra,
        func=guarded(func) if func is not None else None,
        coroutine=guarded(coroutine) if coroutine is not None and inspect.iscoroutinefunction(coroutine) else None,
        return_direct=tool.return_direct,
        response_format=tool.response_format,
        handle_tool_error=True,
    )
    # The copy as LangChain hands it to a chat model (`bind_tools` converts every tool to this
    # OpenAI function form): its description, and the JSON schema of its `tool_call_schema`
    # (the arguments the model fills, injected ones left out). The guard pins exactly that.
    shown = convert_to_openai_function(guarded_copy)
    description, input_schema = _shown_to_model(tool.name, shown.get("description"), shown.get("parameters"))
    guard._register(
        tool.name,
        scope,
        risk,
        untrusted_output,
        redact,
        description,
        input_schema,
        functions,
        intent_arguments=intent_arguments,
        outbound_arguments=outbound_arguments,
        untrusted_fields=untrusted_fields,
    )
    return guarded_copy
