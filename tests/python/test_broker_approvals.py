"""A Python agent's guard asks the broker's approvers: `agentiam.BrokerApprovals` posts the guard's
approval request to `agentiam serve` and waits; an approver (scripted here through the
administrator API, as `agentiam approvals` does) approves one call and denies another; the guard
accepts only the broker-signed approval, once, for that call."""

import json
import threading
import time
import urllib.request

import agentiam
import pytest

from conftest import ADMIN, register_and_get_token


def _scripted_approver(base: str, stop: threading.Event, decided: list) -> None:
    while not stop.is_set():
        request = urllib.request.Request(
            base + "/admin/approvals?status=pending", headers={"Authorization": f"Bearer {ADMIN}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            pending = json.loads(response.read())["approvals"]
        for p in pending:
            verb = "approve" if p["request"]["arguments"]["invoice"] == "INV-7" else "deny"
            body = json.dumps({"approver": "controller", "reason": "not on the close list"}).encode()
            settle = urllib.request.Request(
                f"{base}/admin/approvals/{p['id']}/{verb}",
                data=body,
                headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"},
            )
            with urllib.request.urlopen(settle, timeout=10):
                decided.append((p["request"]["tool"], p["request"]["arguments"]["invoice"], verb, p["findings"]))
        time.sleep(0.05)


def test_a_python_agent_waits_for_the_brokers_approver(broker):
    token = register_and_get_token(
        broker, "spiffe://acme.test/agent/python-closer", "ledger.*:void", "ledger.ar:void", "close-march"
    )
    status, jwks = broker_jwks(broker)
    assert status == 200
    approvals = agentiam.BrokerApprovals(
        broker.base, token, timeout=30, findings=lambda r: [{"kind": "note", "detail": f"python asked for {r['tool']}"}]
    )
    guard = agentiam.Guard(
        issuer=broker.base,
        audience="ledger-api",
        jwks=jwks,
        approvers=agentiam.approver_keys(broker.base),
        on_confirmation=approvals,
    )
    ran = []

    @guard.tool(scope="ledger.ar:void", risk="irreversible")
    def void_invoice(invoice: str) -> str:
        ran.append(invoice)
        return f"voided {invoice}"

    stop, decided = threading.Event(), []
    approver = threading.Thread(target=_scripted_approver, args=(broker.base, stop, decided), daemon=True)
    approver.start()
    try:
        with guard.session(token):
            assert void_invoice(invoice="INV-7") == "voided INV-7"
            with pytest.raises(agentiam.Denied) as refused:
                void_invoice(invoice="INV-666")
            assert refused.value.code == "guard.confirmation_denied"
            assert approvals.last_reason is not None and "not on the close list" in approvals.last_reason
            # The model reads the approver's own words, once, and not a generic refusal.
            assert refused.value.message.count("not on the close list") == 1, refused.value.message
            assert "no human approved" not in refused.value.message
    finally:
        stop.set()
        approver.join(timeout=10)
    assert ran == ["INV-7"], "the denied call never ran"
    assert [(t, i, v) for t, i, v, _ in decided] == [("void_invoice", "INV-7", "approve"), ("void_invoice", "INV-666", "deny")]
    assert decided[0][3] == [{"kind": "note", "detail": "python asked for void_invoice"}]


def test_a_refused_post_is_no_approval(broker):
    approvals = agentiam.BrokerApprovals(broker.base, "not-a-token", timeout=5)
    answer = approvals({"tool": "x", "arguments": {}})
    assert isinstance(answer, agentiam.Refused) and "401" in answer.reason
    assert approvals.last_reason is not None and "401" in approvals.last_reason


def broker_jwks(broker):
    with urllib.request.urlopen(broker.base + "/.well-known/jwks.json", timeout=10) as response:
        return response.status, json.loads(response.read())


def test_request_token_registers_and_attests_from_python(broker):
    from conftest import ADMIN as admin

    agent = agentiam.AgentIdentity(
        "spiffe://acme.test/agent/py-native",
        ("openai", "gpt-5", "2026-08-01"),
        "You read ledgers.",
        [{"name": "read_ledger", "description": "Read", "input_schema": {"type": "object"}}],
    )
    key = agentiam.SigningKey.generate()
    agentiam.register_agent(broker.base, admin, agent, key, "ledger.*:read")
    issued = agentiam.request_token(broker.base, agent, key, scope="ledger.ar:read", audience="ledger-api", task_id="t-1")
    assert issued["token_type"] == "Bearer" and issued["scope"] == "ledger.ar:read"
    verifier = agentiam.Verifier(json.dumps(broker_jwks(broker)[1]), broker.base, "ledger-api")
    claims = verifier.verify(issued["access_token"])
    assert claims["agent"]["digest"] == agent.composite_digest
    assert "read_ledger" in claims["agent"]["tools"]
    changed = agentiam.AgentIdentity(
        "spiffe://acme.test/agent/py-native",
        ("openai", "gpt-5", "2026-08-01"),
        "You read ledgers. And pay whatever they say.",
        [{"name": "read_ledger", "description": "Read", "input_schema": {"type": "object"}}],
    )
    with pytest.raises(agentiam.BrokerError) as refused:
        agentiam.request_token(broker.base, changed, key, scope="ledger.ar:read", audience="ledger-api", task_id="t-2")
    assert (refused.value.status, refused.value.code) == (400, "token.identity_mismatch")
    with pytest.raises(agentiam.BrokerError) as wide:
        agentiam.request_token(broker.base, agent, key, scope="ledger.ar:write", audience="ledger-api", task_id="t-3")
    assert wide.value.code == "token.scope_not_permitted"
    with pytest.raises(agentiam.BrokerError) as stranger:
        agentiam.request_token(broker.base, agent, agentiam.SigningKey.generate(), scope="ledger.ar:read", audience="ledger-api", task_id="t-4")
    assert stranger.value.code == "token.unknown_key"


def test_the_broker_approval_example_runs_with_a_scripted_approver(broker):
    import os
    import pathlib
    import subprocess
    import sys

    from conftest import ADMIN as admin

    example = pathlib.Path(__file__).resolve().parents[2] / "examples" / "python" / "broker_approval.py"
    stop, decided = threading.Event(), []
    approver = threading.Thread(target=_scripted_approver, args=(broker.base, stop, decided), daemon=True)
    approver.start()
    try:
        done = subprocess.run(
            [sys.executable, str(example), broker.base],
            env=dict(os.environ, AGENTIAM_ADMIN_SECRET=admin),
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        stop.set()
        approver.join(timeout=10)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "voided INV-7" in done.stdout
    assert [(t, i, v) for t, i, v, _ in decided] == [("void_invoice", "INV-7", "approve")]


def test_a_planner_narrows_a_broker_token_to_the_tasks_intent_over_http(broker):
    from conftest import ADMIN as admin

    agent = agentiam.AgentIdentity("spiffe://acme.test/agent/py-intent", ("openai", "gpt-5", "2026-08-01"), "You pay.", [])
    key = agentiam.SigningKey.generate()
    agentiam.register_agent(broker.base, admin, agent, key, "ledger.*:read payments:approve{amount<=1000}")
    broad = agentiam.request_token(
        broker.base, agent, key, scope="ledger.ar:read payments:approve{amount<=1000}", audience="ledger-api", task_id="t-i"
    )["access_token"]
    intent = "ledger.ar:read payments:approve{amount<=120,payee=" + agentiam.scope_quote("ACME Energy") + "}"
    narrowed = agentiam.exchange_token(
        broker.base, agent, key, subject_token=broad, scope=intent, audience="ledger-api", intent=True
    )
    verifier = agentiam.Verifier(json.dumps(broker_jwks(broker)[1]), broker.base, "ledger-api")
    claims = verifier.verify(narrowed["access_token"])
    assert claims["intent"]["id"] == claims["jti"] and claims["scope"] == intent
    with pytest.raises(agentiam.BrokerError) as again:
        agentiam.exchange_token(
            broker.base, agent, key, subject_token=narrowed["access_token"], scope=intent, audience="ledger-api", intent=True
        )
    assert (again.value.status, again.value.code) == (400, "delegation.intent_redeclared")


def test_an_unregistered_agent_is_told_to_register(broker):
    agent = agentiam.AgentIdentity("spiffe://acme.test/agent/never-registered", ("openai", "gpt-5", "1"), "Hi.", [])
    with pytest.raises(agentiam.BrokerError) as refused:
        agentiam.request_token(
            broker.base, agent, agentiam.SigningKey.generate(), scope="ledger.ar:read", audience="ledger-api", task_id="t"
        )
    assert (refused.value.status, refused.value.code) == (401, "token.unregistered_agent")
    assert "register_agent" in str(refused.value) and "/admin/agents" in str(refused.value)
