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
