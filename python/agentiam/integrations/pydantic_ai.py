"""Pydantic AI: guarded tools; a refusal is a `ModelRetry` the model reads, a call that needs a
human is Pydantic AI's own deferred tool call (`ApprovalRequired`).

    from agentiam.integrations.pydantic_ai import guard_tool
    agent = Agent(model, tools=[guard_tool(guard, approve_payment, scope="payments:approve", risk="high")],
                  output_type=[str, DeferredToolRequests])

A call that needs a human ends the run with `DeferredToolRequests`; each approval's metadata
holds `{"agentiam": <approval request>}` for the human to read and sign. Resume the run with the
signed approval as that call's metadata:

    DeferredToolResults(approvals={call_id: True}, metadata={call_id: {"agentiam_approval": signed}})

Approving in Pydantic AI without a signed approval only lets the guard ask again. The
tool-call id is recorded in the activity log. A `RunContext` first parameter is passed through
and is not an argument the guard sees: the one Pydantic AI itself fills (its `Tool` decides,
by identity with `RunContext`, or `takes_ctx=`); any other parameter is an argument.

The tool is pinned as Pydantic AI sends it to the model: its `tool_def`'s description and
parameters schema are in `guard.manifest()`, for the agent's identity, and a token issued for
another description or schema is refused (`guard.tool_changed`). A description the injection
filter flags is refused when the tool is wrapped (`ConfigurationError`, `guard.tool_poisoning`).
A function without a docstring (or `description=`) is not pinned.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from pydantic_ai import Tool
from pydantic_ai.exceptions import ApprovalRequired, ModelRetry

from .._guard import (
    _UNSTATED_RISK,
    Guard,
    _refuse_generator_function,
    _shown_to_model,
    _translating,
    framework_call,
)
from ..exceptions import ConfirmationRequired, Denied

__all__ = ["guard_tool"]


def _translate(error: Denied) -> Exception:
    if isinstance(error, ConfirmationRequired):
        return ApprovalRequired(metadata={"agentiam": error.approval_request})
    return ModelRetry(f"agentiam denied this call ({error.code}): {error.message}")


def _carried(ctx: Any) -> tuple[str | None, Any]:
    """The run context's tool-call id, and the signed approval resumed with this call, if any."""
    call_id = getattr(ctx, "tool_call_id", None)
    metadata = getattr(ctx, "tool_call_metadata", None)
    approval = None
    if getattr(ctx, "tool_call_approved", False) and isinstance(metadata, dict):
        approval = metadata.get("agentiam_approval")
    return (call_id if isinstance(call_id, str) else None), approval


def _with_run_context(function: Callable[..., Any], passes_context: bool, is_async: bool) -> Callable[..., Any]:
    """`function` called by Pydantic AI with its `RunContext` first, so the call id and a carried
    approval reach the guard; the context goes on to `function` only if it takes one. The context
    is positional-only, so a tool argument named `ctx` cannot collide with it."""
    if is_async:

        @functools.wraps(function)
        async def async_call(ctx: Any, /, *args: Any, **kwargs: Any) -> Any:
            with framework_call(*_carried(ctx)):
                return await (function(ctx, *args, **kwargs) if passes_context else function(*args, **kwargs))

        return async_call

    @functools.wraps(function)
    def call(ctx: Any, /, *args: Any, **kwargs: Any) -> Any:
        with framework_call(*_carried(ctx)):
            return function(ctx, *args, **kwargs) if passes_context else function(*args, **kwargs)

    return call


def guard_tool(
    guard: Guard,
    fn: Callable[..., Any],
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
) -> Tool[Any]:
    """A Pydantic AI `Tool` for `fn` with the guard deciding every call first."""
    tool_name = name or fn.__name__
    _refuse_generator_function(fn, tool_name)
    # Pydantic AI's own view of `fn` (schema, description, whether it takes the RunContext), so
    # the guard hides exactly the parameter Pydantic AI fills.
    tool: Tool[Any] = Tool(fn, name=tool_name, **tool_kwargs)
    # The tool as Pydantic AI sends it to the model: its `tool_def`'s description and
    # `parameters_json_schema` (the function schema's JSON schema, the RunContext left out).
    # A `prepare=` function may change the definition per run; the guard pins it as defined.
    shown = tool.tool_def
    description, input_schema = _shown_to_model(tool_name, shown.description, shown.parameters_json_schema)
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
    schema = tool.function_schema
    own = next(iter(inspect.signature(fn).parameters)) if schema.takes_ctx else None
    guarded = _translating(guard._wrap(fn, tool_name, () if own is None else (own,)), _translate)
    tool.function = guarded
    # The schema (from `fn`'s signature) stays; only the callable changes, to receive the context.
    tool.function_schema = dataclasses.replace(
        schema,
        function=_with_run_context(guarded, schema.takes_ctx, schema.is_async),
        takes_ctx=True,
    )
    tool.takes_ctx = True
    return tool
