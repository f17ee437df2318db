"""OpenAI Agents SDK driven by a scripted model: the guard decides every tool call; a refusal is
the tool result the model reads next, and the tool does not run."""

import asyncio
import json
import pathlib

from agents import Agent, Model, ModelResponse, Runner, Usage, set_tracing_disabled
from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText

import agentiam
from agentiam.integrations.openai_agents import function_tool

# No network here: the SDK's trace exporter stays off.
set_tracing_disabled(True)

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOC = json.loads((ROOT / "testvectors" / "guard.json").read_text())
CFG = DOC["config"]
TOKEN = next(t for t in DOC["tests"] if t["comment"] == "a low-risk read the token covers")["calls"][0]["token"]


class Scripted(Model):
    """Answers with the scripted outputs in order and remembers what it was sent."""

    def __init__(self, turns):
        self.turns = list(turns)
        self.inputs = []

    async def get_response(self, system_instructions, input, *args, **kwargs):
        self.inputs.append(input)
        return ModelResponse(output=self.turns.pop(0), usage=Usage(), response_id=None)

    def stream_response(self, *args, **kwargs):
        raise NotImplementedError


def call(name, arguments, call_id):
    return ResponseFunctionToolCall(type="function_call", name=name, arguments=json.dumps(arguments), call_id=call_id, id=f"fc-{call_id}")


def say(text):
    return ResponseOutputMessage(id="m", type="message", role="assistant", status="completed",
                                 content=[ResponseOutputText(type="output_text", text=text, annotations=[])])


def test_allowed_and_denied_calls_in_an_agent_run():
    ran = []
    guard = agentiam.Guard(issuer=CFG["issuer"], audience=CFG["audience"], jwks=CFG["jwks"], policy=CFG["policy"], now=DOC["now"])

    @function_tool(guard, scope="payments:transfer", risk="high")
    def transfer(amount: int, currency: str, payee: str) -> str:
        """Transfer money to a payee."""
        ran.append(amount)
        return f"paid {amount}"

    model = Scripted([
        [call("transfer", {"amount": 250, "currency": "USD", "payee": "ACME"}, "c1"),
         call("transfer", {"amount": 5000, "currency": "USD", "payee": "ACME"}, "c2")],
        [say("done")],
    ])
    agent = Agent(name="payer", instructions="Pay invoices.", tools=[transfer], model=model)

    async def main():
        with guard.session(TOKEN):
            return await Runner.run(agent, "pay the invoices")

    result = asyncio.run(main())
    assert result.final_output == "done"
    assert ran == [250]
    outputs = {item["call_id"]: item["output"] for item in model.inputs[1] if isinstance(item, dict) and item.get("type") == "function_call_output"}
    assert outputs["c1"] == "paid 250"
    assert "guard.constraint_violated" in outputs["c2"] and "agentiam denied" in outputs["c2"]
