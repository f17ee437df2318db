"""Pydantic AI driven by a FunctionModel: a refusal comes back to the model as a retry prompt with
the reason code, and the tool does not run."""

import json
import pathlib

from pydantic_ai import Agent
from pydantic_ai.messages import ModelResponse, RetryPromptPart, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

import agentiam
from agentiam.integrations.pydantic_ai import guard_tool

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOC = json.loads((ROOT / "testvectors" / "guard.json").read_text())
CFG = DOC["config"]
TOKEN = next(t for t in DOC["tests"] if t["comment"] == "a low-risk read the token covers")["calls"][0]["token"]


def test_denials_reach_the_model_as_retry_prompts():
    ran = []
    guard = agentiam.Guard(issuer=CFG["issuer"], audience=CFG["audience"], jwks=CFG["jwks"], policy=CFG["policy"], now=DOC["now"])

    def transfer(amount: int, currency: str, payee: str) -> str:
        """Transfer money to a payee."""
        ran.append(amount)
        return f"paid {amount}"

    seen = []

    def model(messages, info: AgentInfo) -> ModelResponse:
        seen.append(messages[-1])
        if len(seen) == 1:
            return ModelResponse(parts=[
                ToolCallPart("transfer", {"amount": 250, "currency": "USD", "payee": "ACME"}, tool_call_id="c1"),
                ToolCallPart("transfer", {"amount": 5000, "currency": "USD", "payee": "ACME"}, tool_call_id="c2"),
            ])
        return ModelResponse(parts=[TextPart("done")])

    agent = Agent(FunctionModel(model), tools=[guard_tool(guard, transfer, scope="payments:transfer", risk="high")])
    with guard.session(TOKEN):
        result = agent.run_sync("pay")
    assert result.output == "done" and ran == [250]
    parts = {p.tool_call_id: p for p in seen[1].parts}
    assert isinstance(parts["c1"], ToolReturnPart) and parts["c1"].content == "paid 250"
    # Pydantic AI 2.x reports a ModelRetry as a tool return marked "retried" (1.x used a RetryPromptPart).
    refused = parts["c2"]
    assert "guard.constraint_violated" in str(refused.content)
    assert isinstance(refused, RetryPromptPart) or getattr(refused, "outcome", None) == "retried"
