"""The red-team suite, Python side: each test attacks one guarantee the README states, as an
attacker would, and fails if the guarantee breaks.

`testvectors/redteam.json` runs here through the Python package's decorator and through every
framework integration (LangChain, LlamaIndex, MCP, the OpenAI Agents SDK, Pydantic AI), each
driven its own way; `crates/agentiam-guard/tests/redteam.rs` runs the same file against the Rust
interceptor. The other tests run the token, delegation and activity-log catalogues through the
package (their own suites use the CLI), and attack what needs several guards, processes or a
framework's own machinery. The README's "Guarantees, scope and limits" section links each test
to its promise."""

import asyncio
import base64
import contextlib
import hashlib
import inspect
import json
import pathlib
import re
import time
import uuid
from typing import Any

import jwt
import pytest

import agentiam
from agentiam import ConfirmationRequired, Denied
from conftest import decisions

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOC = json.loads((ROOT / "testvectors" / "redteam.json").read_text())
GUARD_DOC = json.loads((ROOT / "testvectors" / "guard.json").read_text())
TOOL_SPECS = GUARD_DOC["config"]["tools"]
FRAMEWORKS = ("langchain", "llamaindex", "mcp", "openai_agents", "pydantic_ai")
CODE = re.compile(r"\(((?:guard|token|delegation)\.[a-z_]+)\)")


def _cases(with_approvals: bool = True) -> list[Any]:
    return [
        pytest.param(t, id=f"tc{t['tcId']}")
        for t in DOC["tests"]
        if with_approvals or not any("approval" in c for c in t["calls"])
    ]


def _parameters(case: dict[str, Any]) -> dict[str, list[str]]:
    """The argument names of each tool in a case. A Python tool has one signature, so every call
    of a tool in one case names the same arguments (checked here)."""
    names: dict[str, list[str]] = {}
    calls = list(case["calls"]) + [
        c["approval"]["signed_for"] for c in case["calls"] if "signed_for" in c.get("approval", {})
    ]
    for call in calls:
        keys = sorted(call["arguments"])
        assert names.setdefault(call["tool"], keys) == keys, (case["tcId"], call["tool"])
    return names


class Tools:
    """The deployment's tools for one case: bodies that record that they ran and return what the
    case says, with the signatures the case's calls need."""

    def __init__(self, case: dict[str, Any]):
        self.parameters = _parameters(case)
        self.ran: list[str] = []
        self.returns = "ok"

    def body(self, name: str) -> Any:
        def body(**kwargs: Any) -> str:
            self.ran.append(name)
            return self.returns

        body.__name__ = name
        body.__doc__ = f"The {name} tool."
        body.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [inspect.Parameter(p, inspect.Parameter.KEYWORD_ONLY) for p in self.parameters.get(name, [])]
        )
        return body


def _guard(world, case: dict[str, Any]) -> agentiam.Guard:
    """The deployment's guard with the case's overrides: `null` removes a key (the default applies)."""
    kwargs: dict[str, Any] = {"injection_filter": GUARD_DOC["config"]["injection_filter"]}
    for key, value in case.get("config", {}).items():
        assert key == "injection_filter", key  # the only override the cases use
        if value is None:
            del kwargs[key]
        else:
            kwargs[key] = value
    return world.guard(**kwargs)


def _register(guard: agentiam.Guard, tools: Tools) -> dict[str, Any]:
    """The package's own decorator for every tool of the deployment."""
    out = {}
    for spec in TOOL_SPECS:
        pin = {k: spec[k] for k in ("description", "input_schema") if k in spec}
        out[spec["name"]] = guard.tool(
            scope=spec["scope"], risk=spec["risk"], untrusted_output=spec.get("untrusted_output", False),
            name=spec["name"], **pin,
        )(tools.body(spec["name"]))
    return out


def _outcome(call: Any) -> tuple[str, str | None, dict[str, Any] | None]:
    try:
        call()
    except ConfirmationRequired as e:
        return "confirm", e.code, e.approval_request
    except Denied as e:
        return "deny", e.code, None
    return "allow", None, None


def _expected(case: dict[str, Any], i: int) -> tuple[str, str | None]:
    return (case["result"], case["error"]) if i + 1 == len(case["calls"]) else ("allow", None)


def _allowed_tools(case: dict[str, Any]) -> list[str]:
    """The tools that run: every call but the last, and the last when it is allowed."""
    calls = case["calls"] if case["result"] == "allow" else case["calls"][:-1]
    return [c["tool"] for c in calls]


@pytest.mark.parametrize("case", _cases())
def test_redteam_vector_through_the_package(world, case):
    """Each case through `@guard.tool`: the decision and code the promise requires, the tool ran
    exactly when allowed, and the decision is the activity log's last word on the call."""
    guard, tools = _guard(world, case), Tools(case)
    fns = _register(guard, tools)
    previous = None
    with guard.session(world.token):
        for i, call in enumerate(case["calls"]):
            approval = None
            spec = call.get("approval")
            if spec is not None and spec.get("reuse"):
                approval = previous
            elif spec is not None:
                signed_for = spec.get("signed_for", call)
                kind, _, request = _outcome(lambda: fns[signed_for["tool"]](**signed_for["arguments"]))
                assert kind == "confirm", (case["comment"], "the call to approve did not ask for a human")
                approval = world.sign(request)
            tools.returns = call.get("returns", "ok")
            with agentiam.framework_call(None, approval) if approval else contextlib.nullcontext():
                kind, code, _ = _outcome(lambda: fns[call["tool"]](**call["arguments"]))
            assert (kind, code) == _expected(case, i), (case["comment"], i)
            previous = approval
    assert [t for t in tools.ran] == _allowed_tools(case), case["comment"]
    outcome = {"allow": "allow", "deny": "deny", "confirm": "escalate"}[case["result"]]
    assert decisions(guard)[-1][:3] == (case["calls"][-1]["tool"], outcome, case["error"]), case["comment"]


# --- The same cases through each framework, driven the framework's way ------------------------

def _from_text(text: str) -> tuple[str, str | None]:
    """A refusal as a framework hands it to the model: the kind and the code it names."""
    match = CODE.search(text)
    assert match, text
    return ("confirm" if "needs a human's approval" in text else "deny"), match.group(1)


def _langchain(guard, tools, case):
    from langchain_core.tools import StructuredTool

    from agentiam.integrations.langchain import guard_tool

    wrapped = {
        s["name"]: guard_tool(guard, StructuredTool.from_function(func=tools.body(s["name"]), name=s["name"],
                                                                  description=f"The {s['name']} tool."),
                              scope=s["scope"], risk=s["risk"], untrusted_output=s.get("untrusted_output", False))
        for s in TOOL_SPECS
    }
    outcomes = []
    with guard.session(_token()):
        for i, call in enumerate(case["calls"]):
            tools.returns = call.get("returns", "ok")
            reply = wrapped[call["tool"]].invoke(
                {"type": "tool_call", "name": call["tool"], "args": call["arguments"], "id": f"call-{i}"})
            outcomes.append(("allow", None) if reply.status == "success" else _from_text(reply.content))
    return outcomes


def _llamaindex(guard, tools, case):
    from llama_index.core.tools import FunctionTool

    from agentiam.integrations.llamaindex import guard_tool

    wrapped = {
        s["name"]: guard_tool(guard, FunctionTool.from_defaults(fn=tools.body(s["name"]), name=s["name"],
                                                                description=f"The {s['name']} tool."),
                              scope=s["scope"], risk=s["risk"], untrusted_output=s.get("untrusted_output", False))
        for s in TOOL_SPECS
    }
    outcomes = []
    with guard.session(_token()):
        for call in case["calls"]:
            tools.returns = call.get("returns", "ok")
            kind, code, _ = _outcome(lambda: wrapped[call["tool"]].call(**call["arguments"]))
            outcomes.append((kind, code))
    return outcomes


def _mcp(guard, tools, case):
    from mcp.client import Client
    from mcp.server.mcpserver import MCPServer

    from agentiam.integrations.mcp import guard_tool

    server = MCPServer("redteam")
    for s in TOOL_SPECS:
        guard_tool(guard, server, scope=s["scope"], risk=s["risk"], untrusted_output=s.get("untrusted_output", False),
                   name=s["name"])(tools.body(s["name"]))

    async def main():
        outcomes = []
        with guard.session(_token()):
            async with Client(server) as client:
                for call in case["calls"]:
                    tools.returns = call.get("returns", "ok")
                    result = await client.call_tool(call["tool"], call["arguments"])
                    text = " ".join(getattr(c, "text", "") for c in result.content)
                    failed = getattr(result, "isError", getattr(result, "is_error", None)) is True
                    outcomes.append(_from_text(text) if failed else ("allow", None))
        return outcomes

    return asyncio.run(main())


def _openai_agents(guard, tools, case):
    from agents import Agent, Model, ModelResponse, Runner, Usage, set_tracing_disabled
    from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText

    from agentiam.integrations.openai_agents import function_tool

    set_tracing_disabled(True)
    wrapped = [
        function_tool(guard, scope=s["scope"], risk=s["risk"], untrusted_output=s.get("untrusted_output", False),
                      name=s["name"], strict_mode=False)(tools.body(s["name"]))
        for s in TOOL_SPECS
    ]
    calls = case["calls"]

    class Scripted(Model):
        """One tool call per turn (so each is decided after the one before ran), then "done"."""

        def __init__(self):
            self.inputs: list[Any] = []

        async def get_response(self, system_instructions, input, *args, **kwargs):
            self.inputs.append(input)
            turn = len(self.inputs) - 1
            if turn < len(calls):
                call = calls[turn]
                tools.returns = call.get("returns", "ok")
                output = [ResponseFunctionToolCall(type="function_call", name=call["tool"],
                                                   arguments=json.dumps(call["arguments"]), call_id=f"c{turn}",
                                                   id=f"fc-{turn}")]
            else:
                output = [ResponseOutputMessage(id="m", type="message", role="assistant", status="completed",
                                                content=[ResponseOutputText(type="output_text", text="done",
                                                                            annotations=[])])]
            return ModelResponse(output=output, usage=Usage(), response_id=None)

        def stream_response(self, *args, **kwargs):
            raise NotImplementedError

    model = Scripted()
    agent = Agent(name="redteam", instructions="Work.", tools=wrapped, model=model)

    async def main():
        with guard.session(_token()) as session:
            result = await Runner.run(agent, "go", max_turns=len(calls) + 2)
            return session, result

    session, result = asyncio.run(main())
    outputs = {item["call_id"]: item["output"] for turn in model.inputs if isinstance(turn, list)
               for item in turn if isinstance(item, dict) and item.get("type") == "function_call_output"}
    paused = {item.call_id for item in result.interruptions}
    outcomes = []
    for i in range(len(calls)):
        call_id = f"c{i}"
        if call_id in paused:
            outcomes.append(("confirm", session.approval_request(call_id)["code"]))
        elif call_id in outputs and outputs[call_id] == calls[i].get("returns", "ok"):
            outcomes.append(("allow", None))
        else:
            outcomes.append(_from_text(outputs[call_id]))
    return outcomes


def _pydantic_ai(guard, tools, case):
    from pydantic_ai import Agent, DeferredToolRequests
    from pydantic_ai.messages import ModelResponse, RetryPromptPart, TextPart, ToolCallPart, ToolReturnPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel

    from agentiam.integrations.pydantic_ai import guard_tool

    wrapped = [
        guard_tool(guard, tools.body(s["name"]), scope=s["scope"], risk=s["risk"],
                   untrusted_output=s.get("untrusted_output", False), name=s["name"])
        for s in TOOL_SPECS
    ]
    calls = case["calls"]
    turns = [0]

    def model(messages, info: AgentInfo) -> ModelResponse:
        turn = turns[0]
        turns[0] += 1
        if turn < len(calls):
            tools.returns = calls[turn].get("returns", "ok")
            return ModelResponse(parts=[ToolCallPart(calls[turn]["tool"], calls[turn]["arguments"],
                                                     tool_call_id=f"c{turn}")])
        return ModelResponse(parts=[TextPart("done")])

    agent = Agent(FunctionModel(model), tools=wrapped, output_type=[str, DeferredToolRequests])
    with guard.session(_token()):
        result = agent.run_sync("go")
    parts = {p.tool_call_id: p for m in result.all_messages() for p in getattr(m, "parts", [])
             if isinstance(p, (ToolReturnPart, RetryPromptPart))}
    deferred = result.output.metadata if isinstance(result.output, DeferredToolRequests) else {}
    outcomes = []
    for i in range(len(calls)):
        call_id = f"c{i}"
        if call_id in deferred:
            outcomes.append(("confirm", deferred[call_id]["agentiam"]["code"]))
        elif isinstance(parts[call_id], ToolReturnPart) and getattr(parts[call_id], "outcome", None) != "retried":
            outcomes.append(("allow", None))
        else:
            outcomes.append(_from_text(str(parts[call_id].content)))
    return outcomes


_TOKEN = GUARD_DOC["tests"][0]["calls"][0]["token"]


def _token() -> str:
    return _TOKEN


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("case", _cases(with_approvals=False))
def test_redteam_vector_through_each_framework(world, framework, case):
    """Each case without approvals (every framework has its own approval flow, attacked below and
    in its own suite) through the framework's own tool machinery: the refusal reaches the model
    in the framework's form and names the code the promise requires; the tool runs exactly when
    allowed."""
    guard, tools = _guard(world, case), Tools(case)
    outcomes = globals()[f"_{framework}"](guard, tools, case)
    assert outcomes == [_expected(case, i) for i in range(len(case["calls"]))], case["comment"]
    assert tools.ran == _allowed_tools(case), case["comment"]
