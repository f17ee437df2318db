"""The per-story Rust examples (`cargo run --example <name>`) run and tell their story: the
binaries `cargo test --workspace` built (examples are built with the tests) are run here and
their output checked line by line for the decisions and codes the README promises."""

from __future__ import annotations

import subprocess

import pytest

from conftest import ROOT

EXAMPLES = ROOT / "target" / "debug" / "examples"


def _run(name: str) -> str:
    binary = EXAMPLES / name
    if not binary.exists():
        pytest.fail(f"{binary} was not built: run cargo test --workspace (./scripts/test does) first")
    done = subprocess.run([str(binary)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_guard_tool_call_runs_allowed_refused_tainted_and_approved_calls():
    out = _run("guard_tool_call")
    assert "approve 420: ran: paid 420 to ACME" in out
    assert "approve 4200: refused: guard.constraint_violated" in out
    assert "after reading mail, approve 900: refused: guard.tainted_context" in out
    assert "with the signed approval: ran: paid 900 to ACME" in out
    assert "the same approval again: refused: guard.confirmation_invalid" in out


def test_issue_and_exchange_narrows_and_refuses_widening():
    out = _run("issue_and_exchange")
    assert "payer's token: payments:approve{amount<=500}" in out
    assert "payer approving 900: refused, guard.constraint_violated" in out
    assert "payer asking for 5000: refused, delegation.scope_widened" in out
    assert "orchestrator presenting the payer's token: refused, token.identity_mismatch" in out


def test_verify_audit_log_verifies_and_refuses_a_tampered_copy():
    out = _run("verify_audit_log")
    assert "intact: 2 records" in out
    assert "tampered copy refused: audit.tampered" in out
