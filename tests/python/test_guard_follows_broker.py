"""A long-running Python guard follows the broker: it picks up the broker's key rotation
(fetching the JWKS again on an unknown key, rate-limited) and it can revoke tokens, agents and
tasks, at the guard and at the broker."""

import http.server
import json
import os
import subprocess
import threading

import pytest

import agentiam
from conftest import ADMIN, Broker, _request, register_and_get_token

AUD = "ledger-api"


@pytest.fixture()
def own_broker(cli, tmp_path):
    """A broker of this test's own, since the test rotates its keys."""
    env = dict(os.environ, AGENTIAM_ADMIN_SECRET=ADMIN)
    process = subprocess.Popen(
        [str(cli.binary), "--json", "serve", "--data-dir", str(tmp_path / "broker"), "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, text=True, env=env,
    )
    try:
        started = json.loads(process.stdout.readline())
        yield Broker(f"http://{started['listening']}", process)
    finally:
        process.terminate()
        process.wait(timeout=30)


def guard_for(broker: Broker, **kwargs) -> agentiam.Guard:
    guard = agentiam.Guard(issuer=broker.base, audience=AUD, jwks_url=broker.base + "/.well-known/jwks.json", **kwargs)

    @guard.tool(scope="ledger.ar:read", risk="low")
    def read(id: str) -> str:
        return f"invoice {id}"

    guard.read = read  # type: ignore[attr-defined]
    return guard


def test_a_guard_picks_up_the_brokers_key_rotation(own_broker):
    guard = guard_for(own_broker)
    before = register_and_get_token(own_broker, "spiffe://acme.test/agent/r1", "ledger.ar:read", "ledger.ar:read", "t1")
    with guard.session(before):
        assert guard.read(id="INV-1") == "invoice INV-1"
    status, rotated = own_broker.admin_json("/admin/keys/rotate", {})
    assert status == 200, rotated
    after = register_and_get_token(own_broker, "spiffe://acme.test/agent/r2", "ledger.ar:read", "ledger.ar:read", "t2")
    # Signed by the new key, which the guard has never seen: it fetches the JWKS and accepts.
    with guard.session(after):
        assert guard.read(id="INV-2") == "invoice INV-2"
    with guard.session(before):
        assert guard.read(id="INV-3") == "invoice INV-3", "the retired key still verifies"


class CountingJwks(http.server.BaseHTTPRequestHandler):
    body = b"{}"
    fetches = 0

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        type(self).fetches += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(type(self).body)

    def log_message(self, *args) -> None:
        pass


def test_unknown_keys_fetch_at_most_once_per_interval():
    issuer = agentiam.Issuer("https://iss.test", agentiam.SigningKey.generate())
    stranger = agentiam.Issuer("https://iss.test", agentiam.SigningKey.generate())
    a = agentiam.AgentIdentity("spiffe://acme.test/agent/a", ("p", "m", "1"), "You are a.", [])
    for i in (issuer, stranger):
        i.register(a, "ledger.ar:read")
    CountingJwks.body = issuer.jwks().encode()
    CountingJwks.fetches = 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), CountingJwks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        guard = agentiam.Guard(issuer="https://iss.test", audience=AUD,
                               jwks_url=f"http://127.0.0.1:{server.server_port}/jwks", jwks_refresh_secs=3600)

        @guard.tool(scope="ledger.ar:read", risk="low")
        def read(id: str) -> str:
            return id

        assert CountingJwks.fetches == 1, "fetched once at start"
        with guard.session(issuer.issue(a, AUD, "ledger.ar:read", "t", "p")):
            assert read(id="x") == "x"
        # A flood of tokens signed by a key nobody publishes: one refetch, then none.
        for _ in range(20):
            with pytest.raises(agentiam.TokenError) as e:
                with guard.session(stranger.issue(a, AUD, "ledger.ar:read", "t", "p")):
                    pass
            assert e.value.code == "token.unknown_key"
        assert CountingJwks.fetches == 2
    finally:
        server.shutdown()


def test_revoking_at_the_guard_refuses_the_token_its_descendants_its_agent_and_its_task():
    issuer = agentiam.Issuer("https://iss.test", agentiam.SigningKey.generate())
    planner = agentiam.AgentIdentity("spiffe://acme.test/agent/planner", ("p", "m", "1"), "You plan.", [])
    helper = agentiam.AgentIdentity("spiffe://acme.test/agent/helper", ("p", "m", "1"), "You help.", [])
    for a in (planner, helper):
        issuer.register(a, "ledger.ar:read")
    guard = agentiam.Guard(issuer="https://iss.test", audience=AUD, jwks=issuer.jwks())

    @guard.tool(scope="ledger.ar:read", risk="low")
    def read(id: str) -> str:
        return id

    def refused(token: str) -> str:
        try:
            with guard.session(token):
                read(id="x")
        except (agentiam.TokenError, agentiam.Denied) as e:
            return e.code
        return "allowed"

    root = issuer.issue(planner, AUD, "ledger.ar:read", "task-a", "p")
    child = issuer.delegate(root, helper, AUD)
    with guard.session(root) as open_session:
        assert read(id="1") == "1"
        guard.revoke(token=root)
        # The session already open is refused from its next call.
        with pytest.raises(agentiam.Denied) as e:
            read(id="2")
        assert e.value.code == "token.revoked"
    assert open_session.subject == "spiffe://acme.test/agent/planner"
    assert refused(root) == "token.revoked"
    assert refused(child) in ("token.revoked", "delegation.revoked_ancestor")

    other_task = issuer.issue(planner, AUD, "ledger.ar:read", "task-b", "p")
    assert refused(other_task) == "allowed"
    guard.revoke(task="task-b")
    assert refused(other_task) == "token.revoked"

    helpers_token = issuer.issue(helper, AUD, "ledger.ar:read", "task-c", "p")
    assert refused(helpers_token) == "allowed"
    guard.revoke(agent="spiffe://acme.test/agent/helper")
    assert refused(helpers_token) == "token.revoked"
    with pytest.raises(ValueError):
        guard.revoke(agent="a", task="b")


def test_revoking_at_the_broker(broker):
    token = register_and_get_token(broker, "spiffe://acme.test/agent/revokee", "ledger.ar:read", "ledger.ar:read", "t")

    def active() -> bool:
        status, body = _request(
            broker.base + "/oauth2/introspect",
            f"token={token}".encode(),
            {"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/x-www-form-urlencoded"},
        )
        assert status == 200, body
        return bool(body["active"])

    assert active()
    agentiam.revoke_at_broker(broker.base, token, admin_secret=ADMIN)
    assert not active()
    with pytest.raises(agentiam.BrokerError):
        agentiam.revoke_at_broker(broker.base, token, admin_secret="wrong-secret")
