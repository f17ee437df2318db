"""The guard catalogue (testvectors/guard.json) through `agentiam guard decide`, and an approval round trip.

cargo test runs the same file against the library.
"""

import json
import pathlib

import pytest

DOC = json.loads((pathlib.Path(__file__).resolve().parents[2] / "testvectors" / "guard.json").read_text())


@pytest.fixture()
def config(tmp_path):
    path = tmp_path / "guard.json"
    path.write_text(json.dumps(DOC["config"]))
    return path


@pytest.mark.parametrize("case", [pytest.param(t, id=f"tc{t['tcId']}") for t in DOC["tests"]])
def test_guard_vector(cli, tmp_path, config, case):
    calls = tmp_path / "calls.json"
    calls.write_text(json.dumps(case["calls"]))
    rc, out = cli.json("guard", "decide", "--config", str(config), "--request", str(calls), "--at", str(DOC["now"]))
    assert out["decision"] == case["result"], (case["comment"], out)
    assert out.get("code") == case["error"], (case["comment"], out)
    assert rc == (0 if case["result"] == "allow" else 1)
    if case["result"] != "allow":
        assert out["error"]["code"] == case["error"]
    for earlier in out.get("sequence", [])[:-1]:
        assert earlier["decision"] == "allow"


def test_confirmation_round_trip_with_a_generated_approver_key(cli, tmp_path):
    """decide -> confirm -> a human signs with `guard approve` -> decide again -> allow, once."""
    key = tmp_path / "alice.jwk"
    rc, out = cli.json("keys", "generate", "--out", str(key))
    assert rc == 0, out
    public = out["jwks"]["keys"][0] if "jwks" in out else json.loads((tmp_path / "alice.jwk").read_text())
    public = {k: v for k, v in public.items() if k != "d"}
    cfg = dict(DOC["config"])
    cfg["approvers"] = [{"name": "alice", "jwk": public}]
    config = tmp_path / "guard.json"
    config.write_text(json.dumps(cfg))
    # The approved-call vector's call, without its approval.
    call = next(t for t in DOC["tests"] if t["flags"] == ["ConfirmationRequired"])["calls"][0]
    first = tmp_path / "call.json"
    first.write_text(json.dumps(call))
    at = str(DOC["now"])
    rc, out = cli.json("guard", "decide", "--config", str(config), "--request", str(first), "--at", at)
    assert (rc, out["decision"], out["code"]) == (1, "confirm", "guard.confirmation_required")
    request = tmp_path / "approval_request.json"
    request.write_text(json.dumps(out["approval_request"]))
    assert out["approval_request"]["arguments"] == call["arguments"]
    rc, approval = cli.json("guard", "approve", "--request", str(request), "--key", str(key))
    assert rc == 0, approval
    approved = dict(call, approval=approval)
    both = tmp_path / "both.json"
    both.write_text(json.dumps([approved, approved]))
    rc, out = cli.json("guard", "decide", "--config", str(config), "--request", str(both), "--at", at)
    assert [d["decision"] for d in out["sequence"]] == ["allow", "deny"]
    assert (rc, out["code"]) == (1, "guard.confirmation_invalid")


def test_policy_check(cli, tmp_path):
    good = tmp_path / "p.cedar"
    good.write_text(DOC["config"]["policy"])
    rc, out = cli.json("guard", "policy", str(good))
    assert rc == 0 and out["valid"] is True and out["reads_arguments"] is True
    bad = tmp_path / "bad.cedar"
    bad.write_text("forbid (principal, action, resource) when { context.riks == 1 };")
    rc, out = cli.json("guard", "policy", str(bad), "--schema", "default")
    assert rc == 2 and out["error"]["code"] == "guard.policy_invalid"
