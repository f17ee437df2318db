"""OpenAI Agents SDK: guarded function tools; a refusal reaches the model as the tool's result,
and a call that needs a human interrupts the run through the SDK's own `needs_approval`.

    from agentiam.integrations.openai_agents import function_tool

    @function_tool(guard, scope="payments:approve", risk="high")
    def approve_payment(amount: int, vendor: str) -> str:
        "Approve a payment."
        ...

    agent = Agent(name="payer", tools=[approve_payment])

The SDK turns a raised error into a generic message; this integration gives the model the
reason code instead (`failure_error_function`), and the tool does not run.

Approvals: the guard decides each call in the SDK's `needs_approval` step, so a call that needs a
human ends the run with `result.interruptions`. For each, `session.approval_request(item.call_id)`
is what the human reads and signs; give the signed approval to the session
(`session.approve(...)`), approve the item in the SDK (`state = result.to_state();
state.approve(item)`) and resume (`Runner.run(agent, state)`): the guard checks the signature
before the tool runs. The SDK's approval alone is not enough. With `approvals="error"` the model
is told instead. The tool-call id is recorded in the activity log.
A `RunContextWrapper` / `ToolContext` first parameter is passed through and is not an argument:
the one the SDK itself fills (its `function_schema` decides, by identity with those classes);
any other parameter is an argument, whatever its name or type.

The tool is pinned as the SDK sends it to the model: the `FunctionTool`'s `description` and
`params_json_schema` are in `guard.manifest()`, for the agent's identity, and a token issued for
another description or schema is refused (`guard.tool_changed`). A description the injection
filter flags is refused when the tool is decorated (`ConfigurationError`, `guard.tool_poisoning`).
A function without a docstring (or `description_override`) has an empty description and is not
pinned.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any, Literal

import agents
from agents.function_schema import function_schema
from agents.tool_context import ToolContext

from .._guard import (
    _CURRENT,
    _UNSTATED_RISK,
    Guard,
    _refuse_generator_function,
    _shown_to_model,
    framework_call,
)
from ..exceptions import ConfirmationRequired, Denied

__all__ = ["function_tool", "explain_failure"]


def explain_failure(_ctx: Any, error: Exception) -> str:
    """What the model reads when a guarded tool did not run."""
    if isinstance(error, ConfirmationRequired):
        return f"agentiam: this call needs a human's approval ({error.code}); it did not run."
    if isinstance(error, Denied):
        return f"agentiam denied this call ({error.code}): {error.message}"
    return f"The tool failed: {type(error).__name__}"


def _with_call_id(guarded: Callable[..., Any], passes_context: bool) -> Callable[..., Any]:
    """What the SDK calls: `guarded` run with the SDK's tool-call id in scope. When the tool has
    no context parameter of its own, one (`ToolContext`) is added for the SDK to fill; the SDK
    leaves it out of the tool's JSON schema."""

    def call_id(ctx: Any) -> str | None:
        value = getattr(ctx, "tool_call_id", None)
        return value if isinstance(value, str) else None

    if inspect.iscoroutinefunction(guarded):

        @functools.wraps(guarded)
        async def async_call(ctx: Any, /, *args: Any, **kwargs: Any) -> Any:
            with framework_call(call_id(ctx)):
                if passes_context:
                    return await guarded(ctx, *args, **kwargs)
                return await guarded(*args, **kwargs)

        wrapper: Callable[..., Any] = async_call
    else:

        @functools.wraps(guarded)
        def sync_call(ctx: Any, /, *args: Any, **kwargs: Any) -> Any:
            with framework_call(call_id(ctx)):
                if passes_context:
                    return guarded(ctx, *args, **kwargs)
                return guarded(*args, **kwargs)

        wrapper = sync_call
    if not passes_context:
        signature = inspect.signature(guarded)
        context = inspect.Parameter("agentiam_tool_context", inspect.Parameter.POSITIONAL_ONLY, annotation=ToolContext)
        wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[context, *signature.parameters.values()]
        )
        wrapper.__annotations__ = {"agentiam_tool_context": ToolContext, **getattr(guarded, "__annotations__", {})}
    return wrapper


def _needs_approval(guard: Guard, tool_name: str) -> Callable[[Any, dict[str, Any], str], Any]:
    """The SDK's `needs_approval` hook: the guard decides the call now; True pauses the run."""

    async def needs_approval(_ctx: Any, params: dict[str, Any], call_id: str) -> bool:
        session = _CURRENT.get()
        if session is None or getattr(session, "_owner", None) is not guard:
            return False  # the call itself is then refused: guard.credentials_missing
        return session._decide_ahead(tool_name, dict(params), call_id) == "confirm"

    return needs_approval


def function_tool(
    guard: Guard,
    *,
    scope: str | None = None,
    risk: str = _UNSTATED_RISK,
    untrusted_output: bool = False,
    name: str | None = None,
    redact: list[str] | tuple[str, ...] = (),
    intent_arguments: Sequence[str] | None = None,
    outbound_arguments: Sequence[str] | None = None,
    untrusted_fields: Sequence[str] | None = None,
    approvals: Literal["sdk", "error"] = "sdk",
    **function_tool_kwargs: Any,
) -> Callable[[Callable[..., Any]], agents.FunctionTool]:
    """`agents.function_tool` with the guard deciding every call first."""
    if approvals not in ("sdk", "error"):
        raise ValueError('approvals is "sdk" or "error"')

    def decorate(fn: Callable[..., Any]) -> agents.FunctionTool:
        tool_name = name or fn.__name__
        _refuse_generator_function(fn, tool_name)
        # The SDK's own rule (the first parameter's resolved type is RunContextWrapper or
        # ToolContext), so the guard hides exactly the parameter the SDK fills.
        takes_context = function_schema(fn).takes_context
        context = (next(iter(inspect.signature(fn).parameters)),) if takes_context else ()
        guarded = guard._wrap(fn, tool_name, context)
        function_tool_kwargs.setdefault("failure_error_function", explain_failure)
        if approvals == "sdk":
            function_tool_kwargs.setdefault("needs_approval", _needs_approval(guard, tool_name))
        tool = agents.function_tool(
            _with_call_id(guarded, bool(context)), name_override=tool_name, **function_tool_kwargs
        )
        # The tool as the SDK sends it to the model (its Responses and Chat Completions converters
        # read these two fields): the description, and `params_json_schema`, already made strict
        # when `strict_mode` is on. Registered once the SDK built it, so the guard pins exactly that.
        description, input_schema = _shown_to_model(tool_name, tool.description, tool.params_json_schema)
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
        return tool

    return decorate
