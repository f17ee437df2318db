"""An MCP server with guarded tools, called by the SDK's in-process client: a refusal is an error
result naming the reason code, and the tool does not run."""

import asyncio
import json
import pathlib

from mcp.client import Client
from mcp.server.mcpserver import MCPServer

import agentiam
from agentiam.integrations.mcp import guard_tool

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOC = json.loads((ROOT / "testvectors" / "guard.json").read_text())
CFG = DOC["config"]
TOKEN = next(t for t in DOC["tests"] if t["comment"] == "a low-risk read the token covers")["calls"][0]["token"]


def test_guarded_mcp_tools():
    ran = []
    guard = agentiam.Guard(issuer=CFG["issuer"], audience=CFG["audience"], jwks=CFG["jwks"], policy=CFG["policy"], now=DOC["now"])
    server = MCPServer("ledger")

    @guard_tool(guard, server, scope="payments:transfer", risk="high")
    def transfer(amount: int, currency: str, payee: str) -> str:
        """Transfer money to a payee."""
        ran.append(amount)
        return f"paid {amount}"

    async def main():
        with guard.session(TOKEN):
            async with Client(server) as client:
                tools = {t.name: t for t in (await client.list_tools()).tools}
                ok = await client.call_tool("transfer", {"amount": 250, "currency": "USD", "payee": "ACME"})
                refused = await client.call_tool("transfer", {"amount": 5000, "currency": "USD", "payee": "ACME"})
                return tools, ok, refused

    tools, ok, refused = asyncio.run(main())
    assert tools["transfer"].annotations.destructive_hint is True
    assert set(tools["transfer"].input_schema["properties"]) == {"amount", "currency", "payee"}
    text = lambda r: " ".join(getattr(c, "text", "") for c in r.content)  # noqa: E731
    assert not getattr(ok, "isError", getattr(ok, "is_error", False)) and "paid 250" in text(ok)
    assert getattr(refused, "isError", getattr(refused, "is_error", None)) is True
    assert "guard.constraint_violated" in text(refused)
    assert ran == [250]
