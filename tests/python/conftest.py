"""Shared fixtures: the agentiam CLI binary built by ./scripts/test."""

import json
import os
import pathlib
import subprocess

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
