"""An agent service using agentiam's typed API; `mypy --strict` checks it against the stubs."""

from __future__ import annotations

import agentiam


def build(jwks: dict[str, object]) -> agentiam.Guard:
    guard = agentiam.Guard(issuer="https://broker.example", audience="ledger-api", jwks=jwks)

    @guard.tool(scope="payments:approve", risk="high")
    def approve_payment(amount: int, vendor: str) -> str:
        """Approve a payment."""
        return f"paid {amount} to {vendor}"

    paid: str = approve_payment(1, "ACME")
    del paid
    return guard


def run(guard: agentiam.Guard, token: str) -> str | None:
    try:
        with guard.session(token) as session:
            return session.task
    except agentiam.ConfirmationRequired as need:
        return str(need.approval_request.get("digest"))
    except agentiam.Denied as denied:
        return denied.code
    except agentiam.TokenError as bad:
        return bad.code
