"""agentiam from Python in one file: a broker issues a task token to an agent, a guard decides
each tool call, a human approves the irreversible one, and the activity log verifies offline.

    python examples/python/quickstart.py

./scripts/test runs it against the package installed by `pip install .` (the release wheel).
"""

from __future__ import annotations

import json
import sys
import tempfile

import agentiam

# The broker's side: a signing key, the agent's composite identity, a short-lived task token.
broker_key = agentiam.SigningKey.generate()
issuer = agentiam.Issuer("https://broker.acme.example", broker_key)
payer = agentiam.AgentIdentity(
    "spiffe://acme.example/agent/payer",
    ("openai", "gpt-5", "2026-08-01"),
    "You pay approved invoices.",
    [{"name": "approve_payment", "description": "Approve a payment", "input_schema": {"type": "object"}}],
)
issuer.register(payer, "payments:approve{amount<=1000} ledger.*:delete")
token = issuer.issue(payer, "ledger-api", "payments:approve{amount<=1000} ledger.*:delete", "task-42", "pay invoices",
                     ttl=300)

# A human who may approve irreversible actions.
controller = agentiam.SigningKey.generate()

# The service's side: a guard over its tools, writing every decision to an activity log.
log_dir = tempfile.mkdtemp(prefix="agentiam-log-")
guard = agentiam.Guard(issuer="https://broker.acme.example", audience="ledger-api", jwks=issuer.jwks(),
                       approvers={"controller": json.loads(controller.public_jwk())}, audit_dir=log_dir)


@guard.tool(scope="payments:approve", risk="high")
def approve_payment(amount: int, vendor: str) -> str:
    """Approve a payment."""
    return f"paid {amount} to {vendor}"


@guard.tool(scope="ledger.records:delete", risk="irreversible")
def delete_records(table: str) -> str:
    """Delete a table's records."""
    return f"deleted {table}"


with guard.session(token) as session:
    print(approve_payment(amount=420, vendor="ACME"))
    try:
        approve_payment(amount=9000, vendor="ACME")
    except agentiam.Denied as denied:
        print("denied:", denied.code)
    try:
        delete_records(table="staging")
    except agentiam.ConfirmationRequired as need:
        print("needs a human:", need.code)
        session.approve(agentiam.sign_approval(json.dumps(need.approval_request), controller.private_jwk()))
    print(delete_records(table="staging"))

events = guard.audit_events()  # verified offline first
print("activity log:", [(e["kind"], e["decision"]["outcome"], e["decision"].get("code")) for e in events])
outcomes = [e["decision"]["outcome"] for e in events if e["kind"] == "tool_call"]
if outcomes != ["allow", "deny", "escalate", "allow"]:
    sys.exit(f"unexpected decisions: {outcomes}")
