"""LlamaIndex: guard existing `FunctionTool`s.

    from agentiam.integrations.llamaindex import guard_tool
    tool = guard_tool(guard, FunctionTool.from_defaults(fn=approve_payment), scope="payments:approve", risk="high")

A refusal raises `agentiam.Denied` (its text names the reason code); LlamaIndex agents turn a
tool's exception into an error `ToolOutput` the model reads, and the tool does not run.

With `approvals="workflow"`, a call that needs a human inside a workflow agent (`FunctionAgent`,
`AgentWorkflow`) waits for one the LlamaIndex way: the run emits an `InputRequiredEvent` whose
`agentiam_approval_request` is what the human reads and signs, and resumes when a
`HumanResponseEvent` arrives whose `response` is the signed approval (an empty response refuses,
`guard.confirmation_denied`; `'{"refused": "<reason>"}'` refuses and the model reads the reason once). Outside a workflow, the call raises `ConfirmationRequired`.
A workflow `Context` parameter is passed through and is not an argument the guard sees: the one
LlamaIndex itself fills (`FunctionTool.ctx_param_name`, found by identity with its `Context`);
every other parameter, whatever its name or type, is an argument.
LlamaIndex does not hand tools the model's tool-call id, so the activity log has none for them.

The tool is pinned as LlamaIndex shows it to the model (`ToolMetadata.to_openai_tool`): its
metadata's description and parameters schema are in `guard.manifest()`, for the agent's
identity, and a token issued for another description or schema is refused
(`guard.tool_changed`). A description the injection filter flags is refused when the tool is
wrapped (`ConfigurationError`, `guard.tool_poisoning`).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
from collections.abc import Callable, Sequence
from typing import Any, Literal

from llama_index.core.tools import FunctionTool
from llama_index.core.workflow import Context, HumanResponseEvent, InputRequiredEvent

from .._guard import (
    _CALL,
    _UNSTATED_RISK,
    Guard,
    _add_keyword_parameter,
    _approval_json,
    _refusal,
    _refusal_reason,
    _shown_to_model,
    framework_call,
)
from ..exceptions import ConfirmationRequired

__all__ = ["guard_tool"]

_CONTEXT = "agentiam_workflow_context"


async def _ask_human(ctx: Any, request: dict[str, Any]) -> str:
    """Waits, inside a running workflow, for a human's signed approval of `request`."""
    # The workflow replays the step once the answer arrives, and the guard then asks again with a
    # fresh nonce: the waiter is named by the call (tool and arguments), not by the request.
    call = json.dumps([request.get("tool"), request.get("arguments")], sort_keys=True, separators=(",", ":"))
    # Events take extra fields; the approval request travels as one.
    waiting: dict[str, Any] = {"prefix": "agentiam: approve this call? ", "agentiam_approval_request": request}
    answer = await ctx.wait_for_event(
        HumanResponseEvent,
        waiter_id="agentiam-approval-" + hashlib.sha256(call.encode()).hexdigest()[:32],
        waiter_event=InputRequiredEvent(**waiting),
        timeout=None,
    )
    response = getattr(answer, "response", None)
    reason = _refusal_reason(response)
    if reason is not None or not response:
        raise _refusal(request, reason)
    return _approval_json(response)


def _waiting_for_a_human(guarded: Callable[..., Any], own_context: str | None) -> Callable[..., Any]:
    """`guarded` as a coroutine function that receives the workflow `Context` and, when the guard
    asks for a human, waits for the approval in the workflow and retries once with it."""
    name = own_context or _CONTEXT

    async def run(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        result = guarded(*args, **kwargs)
        return await result if inspect.isawaitable(result) else result

    @functools.wraps(guarded)
    async def call(*args: Any, **kwargs: Any) -> Any:
        ctx = kwargs.get(name)
        if own_context is None:
            kwargs.pop(_CONTEXT, None)
        try:
            return await run(args, kwargs)
        except ConfirmationRequired as error:
            if ctx is None:
                raise
            approval = await _ask_human(ctx, error.approval_request)
        with framework_call(_CALL.get()[0], approval):
            return await run(args, kwargs)

    if own_context is None:
        _add_keyword_parameter(call, guarded, _CONTEXT, Context)
    return call


def guard_tool(
    guard: Guard,
    tool: FunctionTool,
    *,
    scope: str | None = None,
    risk: str = _UNSTATED_RISK,
    untrusted_output: bool = False,
    redact: list[str] | tuple[str, ...] = (),
    intent_arguments: Sequence[str] | None = None,
    outbound_arguments: Sequence[str] | None = None,
    untrusted_fields: Sequence[str] | None = None,
    approvals: Literal["error", "workflow"] = "error",
) -> FunctionTool:
    """A copy of `tool` whose every call the guard decides first; `approvals="workflow"` waits
    for a human inside workflow agents instead of telling the model."""
    if approvals not in ("error", "workflow"):
        raise ValueError('approvals is "error" or "workflow"')
    name = tool.metadata.get_name()
    # The tool as LlamaIndex shows it to the model: the metadata's description and
    # `get_parameters_dict()` (the JSON schema of `fn_schema`, its workflow Context left out),
    # the two fields its function-calling LLMs send (`ToolMetadata.to_openai_tool`). The copy
    # returned keeps this very metadata.
    description, input_schema = _shown_to_model(
        name, tool.metadata.description, tool.metadata.get_parameters_dict()
    )
    guard._register(
        name,
        scope,
        risk,
        untrusted_output,
        redact,
        description,
        input_schema,
        (tool.real_fn,),
        intent_arguments=intent_arguments,
        outbound_arguments=outbound_arguments,
        untrusted_fields=untrusted_fields,
    )
    # LlamaIndex's own answer (identity with its Context), not a guess from names.
    own_context = tool.ctx_param_name
    guarded = guard._wrap(tool.real_fn, name, (own_context,) if own_context else ())
    if approvals == "workflow":
        return FunctionTool(async_fn=_waiting_for_a_human(guarded, own_context), metadata=tool.metadata)
    return FunctionTool(fn=guarded, metadata=tool.metadata)
