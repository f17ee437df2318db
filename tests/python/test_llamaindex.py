"""LlamaIndex (llama-index-core): guarded FunctionTools, sync and async; a refusal is the exception
LlamaIndex agents hand back to the model as an error ToolOutput, and the tool does not run."""

import asyncio
import json
import pathlib

import pytest
from llama_index.core.tools import FunctionTool

import agentiam
from agentiam.integrations.llamaindex import guard_tool

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOC = json.loads((ROOT / "testvectors" / "guard.json").read_text())
CFG = DOC["config"]
TOKEN = next(t for t in DOC["tests"] if t["comment"] == "a low-risk read the token covers")["calls"][0]["token"]


def test_function_tools_are_guarded():
    ran = []

    def transfer(amount: int, currency: str, payee: str) -> str:
        """Transfer money."""
        ran.append(amount)
        return "paid"

    async def send_email(to: str, body: str) -> str:
        """Send mail."""
        ran.append(to)
        return "sent"

    guard = agentiam.Guard(issuer=CFG["issuer"], audience=CFG["audience"], jwks=CFG["jwks"], policy=CFG["policy"], now=DOC["now"])
    pay = guard_tool(guard, FunctionTool.from_defaults(fn=transfer), scope="payments:transfer", risk="high")
    mail = guard_tool(guard, FunctionTool.from_defaults(async_fn=send_email), scope="mail:send")
    assert pay.metadata.name == "transfer" and "Transfer money" in pay.metadata.description
    with guard.session(TOKEN):
        assert pay.call(amount=250, currency="USD", payee="ACME").content == "paid"
        with pytest.raises(agentiam.Denied) as denied:
            pay.call(amount=5000, currency="USD", payee="ACME")
        assert denied.value.code == "guard.constraint_violated" and "guard.constraint_violated" in str(denied.value)
        assert asyncio.run(mail.acall(to="bob@acme.test", body="hi")).content == "sent"
        with pytest.raises(agentiam.Denied) as denied:
            asyncio.run(mail.acall(to="eve@evil.test", body="hi"))
        assert denied.value.code == "guard.policy_denied"
    assert ran == [250, "bob@acme.test"]
