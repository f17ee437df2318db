"""A LangGraph agent (LangChain's `create_agent`) against a running broker: it registers, gets a
task token, has every tool call guarded, and waits for a human in the broker's console before an
irreversible one. The README's "Python against a broker" runs it step by step.

    python agent.py        # AGENTIAM_BROKER and AGENTIAM_ADMIN_SECRET as the broker was started
"""

from __future__ import annotations

import os

from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.tools import tool

import agentiam
from agentiam.integrations.langchain import guard_tool

BROKER = os.environ.get("AGENTIAM_BROKER", "http://127.0.0.1:8700")
PROMPT = "You keep the ledger. Void an invoice only when the user asks you to."


@tool
def read_invoice(invoice: str) -> str:
    """Read an invoice from the ledger."""
    return f"{invoice}: 420 USD to ACME, a duplicate of INV-6."


@tool
def void_invoice(invoice: str) -> str:
    """Void an invoice in the ledger. This cannot be undone."""
    return f"voided {invoice}"


def run(model: BaseChatModel, task: str) -> str:
    """Registers the agent, gets a token for this task, and runs the agent on it under the guard."""
    token = {}  # the task token, once the broker has issued it
    guard = agentiam.Guard(
        issuer=BROKER,
        audience="ledger-api",
        jwks_url=f"{BROKER}/.well-known/jwks.json",  # follows the broker's key rotation
        approvers=agentiam.approver_keys(BROKER),  # only the broker's approver signs approvals
        on_confirmation=agentiam.BrokerApprovals(BROKER, lambda: token["access"]),
        audit_dir="agent-audit",  # every decision, in a log `agentiam audit verify` checks
        audit_signer_key="agent-audit.key",  # signed checkpoints: every 10 s, every 1000 records, on close
    )
    tools = [
        guard_tool(guard, read_invoice, scope="ledger.ar:read", risk="low"),
        guard_tool(guard, void_invoice, scope="ledger.ar:void", risk="irreversible"),
    ]

    # Who the agent is: its model, prompt and tools (as the guard pins them) and its own key.
    identity = agentiam.AgentIdentity(
        "spiffe://acme.example/agent/ledger-keeper", ("openai", "gpt-5", "2026-08-01"), PROMPT, guard.manifest()
    )
    key = agentiam.SigningKey.generate()  # keep it where your agent keeps its secrets
    # Registration is the platform team's step, done once with the broker's administrator secret.
    agentiam.register_agent(BROKER, os.environ["AGENTIAM_ADMIN_SECRET"], identity, key, "ledger.ar:read ledger.ar:void")
    token["access"] = agentiam.request_token(
        BROKER, identity, key, scope="ledger.ar:read ledger.ar:void", audience="ledger-api", task_id="close-march"
    )["access_token"]

    agent = create_agent(model, tools=tools, system_prompt=PROMPT)
    with guard, guard.session(token["access"]):  # leaving signs the log's last checkpoint
        result = agent.invoke({"messages": [("user", task)]})
    return str(result["messages"][-1].content)


if __name__ == "__main__":
    from langchain.chat_models import init_chat_model

    print(run(init_chat_model("openai:gpt-5"), "INV-7 is a duplicate of INV-6: check it and void INV-7."))
