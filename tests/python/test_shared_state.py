"""Single-use and counted guarantees across real processes: each worker process builds its own
`agentiam.Guard` on one shared state (a SQLite file, a PostgreSQL schema, a Redis prefix).
An approval used in one process is refused in another; a delegated budget of N lets exactly N
calls through across both; taint set in one is seen by the other. The in-process default keeps
state per process, and a test says so.

PostgreSQL and Redis are started by ./scripts/test; a test here fails (never skips) without them."""

import json
import os
import pathlib
import subprocess
import sys
import uuid

import pytest

import agentiam

HERE = pathlib.Path(__file__).resolve().parent
WORKER = HERE / "shared_state_worker.py"
ISS = "https://broker.shared.test"
AUD = "https://ledger.shared.test"
PG_URL = os.environ.get("AGENTIAM_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("AGENTIAM_TEST_REDIS_URL", "redis://127.0.0.1:6379/")
SCOPES = "notes:write payments:transfer{amount<=100} ledger:void web:fetch"


def agent(name: str) -> agentiam.AgentIdentity:
    return agentiam.AgentIdentity(
        f"spiffe://shared.test/agent/{name}", ("p", "m", "1"), f"You are {name}.", []
    )


class Deployment:
    """An issuer, an approver, a token, and the guard configuration every worker shares."""

    def __init__(self, state):
        self.issuer = agentiam.Issuer(ISS, agentiam.SigningKey.generate())
        self.planner, self.worker = agent("planner"), agent("worker")
        for a in (self.planner, self.worker):
            self.issuer.register(a, SCOPES)
        self.root = self.issuer.issue(self.planner, AUD, SCOPES, f"task-{uuid.uuid4()}", "pay")
        self.approver = agentiam.SigningKey.generate()
        self.state = state

    def config(self, token: str) -> str:
        return json.dumps({
            "issuer": ISS,
            "audience": AUD,
            "jwks": json.loads(self.issuer.jwks()),
            "approvers": {"alice": json.loads(self.approver.public_jwk())},
            "state": self.state,
            "token": token,
        })

    def start(self, token: str, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, str(WORKER), self.config(token), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def run(self, token: str, *args: str) -> dict:
        return finish(self.start(token, *args))


def finish(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def _backends(tmp: pathlib.Path) -> dict:
    return {
        "sqlite": {"backend": "sqlite", "path": str(tmp / "guard-state.db")},
        "postgres": {"backend": "postgres", "url": PG_URL, "schema": f"guard_{uuid.uuid4().hex[:12]}"},
        "redis": {"backend": "redis", "url": REDIS_URL, "prefix": f"agentiam-test-{uuid.uuid4().hex}:"},
    }


@pytest.fixture(params=["sqlite", "postgres", "redis"])
def deployment(request, tmp_path) -> Deployment:
    return Deployment(_backends(tmp_path)[request.param])


def test_a_budget_of_n_lets_exactly_n_calls_through_across_two_processes(deployment):
    child = deployment.issuer.delegate(deployment.root, deployment.worker, AUD, calls=7)
    both = [deployment.start(child, "spend", "10") for _ in range(2)]
    allowed = [finish(p)["allowed"] for p in both]
    assert sum(allowed) == 7, allowed


def test_an_approval_used_in_one_process_is_refused_in_another(deployment):
    asked = deployment.run(deployment.root, "request")
    approval = agentiam.sign_approval(json.dumps(asked["request"]), deployment.approver.private_jwk())
    assert deployment.run(deployment.root, "present", approval) == {"result": "voided"}
    assert deployment.run(deployment.root, "present", approval) == {"code": "guard.confirmation_invalid"}


def test_taint_set_in_one_process_is_seen_by_another_and_by_sub_agents(deployment):
    assert deployment.run(deployment.root, "read") == {"tainted": True}
    assert deployment.run(deployment.root, "check") == {"tainted": True, "code": "guard.tainted_context"}
    sub_agent = deployment.issuer.delegate(deployment.root, deployment.worker, AUD, calls=5)
    assert deployment.run(sub_agent, "check") == {"tainted": True, "code": "guard.tainted_context"}


def test_the_in_process_default_keeps_state_per_process():
    """What the shared backends add: with the default, each process counts on its own."""
    d = Deployment({"backend": "memory"})
    child = d.issuer.delegate(d.root, d.worker, AUD, calls=3)
    assert [d.run(child, "spend", "5")["allowed"] for _ in range(2)] == [3, 3]
    assert d.run(d.root, "read") == {"tainted": True}
    assert d.run(d.root, "check") == {"tainted": False, "code": None}


def test_a_state_url_selects_its_backend(tmp_path):
    from agentiam._guard import _state_config

    assert _state_config("redis://127.0.0.1:6379/0") == {"backend": "redis", "url": "redis://127.0.0.1:6379/0"}
    assert _state_config("postgresql://u@h/db")["backend"] == "postgres"
    assert _state_config(f"sqlite://{tmp_path}/x.db") == {"backend": "sqlite", "path": f"{tmp_path}/x.db"}
    assert _state_config("memory") == {"backend": "memory"}
    with pytest.raises(ValueError):
        _state_config("mysql://nope")


def test_a_state_that_is_down_refuses_to_start_or_denies():
    d = Deployment({"backend": "redis", "url": "redis://127.0.0.1:1/"})
    with pytest.raises(agentiam.AgentIAMError) as e:
        agentiam.Guard(issuer=ISS, audience=AUD, jwks=d.issuer.jwks(), state=d.state)._guard()
    assert e.value.code == "guard.state_unavailable"
