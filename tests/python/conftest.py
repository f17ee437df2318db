"""Shared fixtures: the agentiam CLI binary built by ./scripts/test."""

import contextlib
import json
import os
import pathlib
import subprocess
import urllib.error
import urllib.parse
import urllib.request

import jwt
from cryptography.hazmat.primitives.asymmetric import ed25519
from jwt.algorithms import OKPAlgorithm

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _binary() -> pathlib.Path:
    explicit = os.environ.get("AGENTIAM_BIN")
    path = pathlib.Path(explicit) if explicit else ROOT / "target" / "debug" / "agentiam"
    if not path.exists():
        # Fail loudly: a missing binary must never look like a passing suite.
        raise RuntimeError(f"agentiam binary not found at {path}; run ./scripts/test or set AGENTIAM_BIN")
    return path


class Cli:
    def __init__(self, binary: pathlib.Path):
        self.binary = binary

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.binary), *args], input=stdin, capture_output=True, text=True, timeout=60
        )

    def json(self, *args: str) -> tuple[int, dict]:
        done = self.run("--json", *args)
        return done.returncode, json.loads(done.stdout)


@pytest.fixture(scope="session")
def cli() -> Cli:
    return Cli(_binary())


@pytest.fixture(scope="session")
def vectors() -> dict:
    return json.loads((ROOT / "testvectors" / "tokens.json").read_text())


class GuardWorld:
    """The deployment of testvectors/guard.json for the Python package's tests: its config, its
    clock, a token that covers the payment tools, and an approver key made here."""

    def __init__(self, tmp_path: pathlib.Path):
        import agentiam  # the built package; imported here so CLI-only tests need no extension

        self.doc = json.loads((ROOT / "testvectors" / "guard.json").read_text())
        self.cfg = self.doc["config"]
        self.now = self.doc["now"]
        self.token = next(
            t for t in self.doc["tests"] if t["comment"] == "a low-risk read the token covers"
        )["calls"][0]["token"]
        key = agentiam.SigningKey.generate()
        self.approver_public = json.loads(key.public_jwk())
        self.approver_private = key.private_jwk()
        self.audit_dir = str(tmp_path / "activity-log")

    def guard(self, **kwargs):
        import agentiam

        kwargs.setdefault("audit_dir", self.audit_dir)
        return agentiam.Guard(
            issuer=self.cfg["issuer"], audience=self.cfg["audience"], jwks=self.cfg["jwks"],
            policy=self.cfg["policy"], approvers={"alice": self.approver_public}, now=self.now, **kwargs,
        )

    def sign(self, request: dict) -> str:
        """Alice approves `request` (an approval request dict)."""
        import agentiam

        return agentiam.sign_approval(json.dumps(request), self.approver_private)


def decisions(guard) -> list[tuple]:
    """(tool, outcome, code, call id) of every tool-call event in the guard's verified log."""
    return [
        (e["tool"]["name"], e["decision"]["outcome"], e["decision"].get("code"), e["tool"].get("call_id"))
        for e in guard.audit_events()
        if e.get("tool") is not None and e["kind"] == "tool_call"
    ]


@pytest.fixture()
def world(tmp_path) -> GuardWorld:
    return GuardWorld(tmp_path)


# --- The broker (`agentiam serve`) for the tests that talk to it over HTTP. ---

ADMIN = "python-admin-secret-0123456789-abcdefgh"


def _request(url: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            body = resp.read()
            status = resp.status
    except urllib.error.HTTPError as e:
        body = e.read()
        status = e.code
    try:
        return status, json.loads(body)
    except ValueError:
        return status, {}


class Broker:
    def __init__(self, base: str, process: subprocess.Popen):
        self.base = base
        self.process = process

    def admin_json(self, path: str, doc: dict) -> tuple[int, dict]:
        return _request(
            self.base + path,
            json.dumps(doc).encode(),
            {"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"},
        )

    def token(self, pairs: list[tuple[str, str]]) -> tuple[int, dict]:
        return _request(
            self.base + "/oauth2/token",
            urllib.parse.urlencode(pairs).encode(),
            {"Content-Type": "application/x-www-form-urlencoded"},
        )

    def jwks(self) -> jwt.PyJWKSet:
        status, doc = _request(self.base + "/.well-known/jwks.json")
        assert status == 200
        return jwt.PyJWKSet.from_dict(doc)


@contextlib.contextmanager
def running_broker(binary: pathlib.Path, data: pathlib.Path):
    """`agentiam serve` on a free loopback port from `data`, stopped (SIGTERM) on leaving."""
    env = dict(os.environ, AGENTIAM_ADMIN_SECRET=ADMIN)
    process = subprocess.Popen(
        [str(binary), "--json", "serve", "--data-dir", str(data), "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = process.stdout.readline()
        started = json.loads(line)
        yield Broker(f"http://{started['listening']}", process)
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="session")
def broker(cli, tmp_path_factory):
    with running_broker(cli.binary, tmp_path_factory.mktemp("broker-data")) as running:
        yield running


def agent_key(kid: str):
    private = ed25519.Ed25519PrivateKey.generate()
    jwk = json.loads(OKPAlgorithm.to_jwk(private.public_key()))
    jwk["kid"] = kid
    return private, jwk


def register_and_get_token(broker: Broker, spiffe_id: str, max_scopes: str, scope: str, task: str) -> str:
    """Registers an agent with a fresh key (PyJWT signs its client assertions), pins the composite
    digest the broker computes from its evidence, and returns a task token for `scope`."""
    import time
    import uuid

    private, jwk = agent_key(f"key-{uuid.uuid4().hex[:8]}")
    evidence = {
        "model": {"provider": "openai", "name": "gpt-5", "version": "2026-08-01"},
        "configuration": {"system_prompt": f"You are {spiffe_id}.", "tools": []},
        "runtime": {"kind": "process", "attributes": {}},
    }
    registration = {"spiffe_id": spiffe_id, "max_scopes": max_scopes, "jwks": {"keys": [jwk]}}

    def token() -> dict:
        now = int(time.time())
        assertion = jwt.encode(
            {"iss": spiffe_id, "sub": spiffe_id, "aud": broker.base + "/oauth2/token", "iat": now, "exp": now + 60, "jti": str(uuid.uuid4())},
            private,
            algorithm="EdDSA",
            headers={"kid": jwk["kid"]},
        )
        status, body = broker.token(
            [
                ("grant_type", "client_credentials"),
                ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                ("client_assertion", assertion),
                ("agent_attestation", json.dumps(evidence)),
                ("scope", scope),
                ("audience", "ledger-api"),
                ("task_id", task),
            ]
        )
        assert status == 200, body
        return body

    status, body = broker.admin_json("/admin/agents", registration)
    assert status == 201, body
    first = token()["access_token"]
    digest = jwt.decode(first, options={"verify_signature": False})["agent"]["digest"]
    registration["allowed_digests"] = [digest]
    status, body = broker.admin_json("/admin/agents", registration)
    assert status == 201, body
    return str(token()["access_token"])


@pytest.fixture()
def http_server():
    """Serves an MCP app on a free loopback port with uvicorn; yields a function that starts it."""
    started = []

    def start(make_app):
        import socket
        import threading
        import time

        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        app = make_app(f"http://127.0.0.1:{port}/mcp")
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        started.append((server, thread))
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return f"http://127.0.0.1:{port}/mcp"

    yield start
    for server, thread in started:
        server.should_exit = True
        thread.join(timeout=10)
