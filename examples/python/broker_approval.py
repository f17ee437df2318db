"""A Python agent against a running broker: register, attest, get a task token, and wait for a
human to approve an irreversible call in the broker's console.

    export AGENTIAM_ADMIN_SECRET="$(head -c 32 /dev/urandom | base64)"
    agentiam serve --data-dir ./agentiam-data &
    echo 'correct horse battery staple' | agentiam approvals add-approver controller
    python examples/python/broker_approval.py        # then approve at http://127.0.0.1:8700/console

Arguments: [BROKER_URL] (default http://127.0.0.1:8700). The administrator's secret registers
the agent (a platform team does that once); the agent itself holds only its own key.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request

import agentiam

url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8700"

# The agent as it runs, and the key it authenticates with.
agent = agentiam.AgentIdentity(
    "spiffe://acme.example/agent/closer",
    ("openai", "gpt-5", "2026-08-01"),
    "You close the month's books.",
    [{"name": "void_invoice", "description": "Void an invoice", "input_schema": {"type": "object"}}],
)
key = agentiam.SigningKey.generate()
agentiam.register_agent(url, os.environ["AGENTIAM_ADMIN_SECRET"], agent, key, "ledger.*:read ledger.*:void")

# A 15-minute token for this task only, over private_key_jwt with attestation.
token = agentiam.request_token(
    url, agent, key, scope="ledger.ar:void", audience="ledger-api", task_id="close-march", purpose="close March"
)["access_token"]

with urllib.request.urlopen(url + "/.well-known/jwks.json", timeout=10) as response:
    jwks = json.loads(response.read())
approvals = agentiam.BrokerApprovals(url, token, timeout=600)
guard = agentiam.Guard(
    issuer=url, audience="ledger-api", jwks=jwks, approvers=agentiam.approver_keys(url), on_confirmation=approvals
)


@guard.tool(scope="ledger.ar:void", risk="irreversible")
def void_invoice(invoice: str) -> str:
    return f"voided {invoice}"


print(f"waiting for an approver at {url}/console ...", flush=True)
with guard.session(token):
    try:
        print(void_invoice(invoice="INV-7"))
    except agentiam.Denied as refused:
        print(f"refused: {refused.code} ({approvals.last_reason})")
        sys.exit(1)
