"""The activity-log tamper catalogue (testvectors/audit_log.json), run through `agentiam audit verify`.

cargo test runs the same file against the library.
"""

import json
import pathlib

import pytest

DOC = json.loads((pathlib.Path(__file__).resolve().parents[2] / "testvectors" / "audit_log.json").read_text())


@pytest.mark.parametrize("case", [pytest.param(t, id=f"tc{t['tcId']}") for t in DOC["tests"]])
def test_audit_vector(cli, tmp_path, case):
    log = tmp_path / "log"
    log.mkdir()
    (log / "00000000000000000000.jsonl").write_text(case["segment"])
    args = ["audit", "verify", str(log)]
    if case["checkpoint"] is not None:
        cp = tmp_path / "checkpoint"  # kept apart from the log, as an auditor would
        cp.write_text(case["checkpoint"])
        args += ["--checkpoint", str(cp), "--key", DOC["verifier_key"]]
    rc, out = cli.json(*args)
    if case["result"] == "valid":
        assert rc == 0, (case["comment"], out)
        assert out["valid"] is True
    else:
        assert rc == 1, (case["comment"], out)
        assert out["error"]["code"] == case["error"], case["comment"]
        if case["error"] != "audit.bad_checkpoint":
            assert out["error"]["seq"] == case["seq"], case["comment"]


def test_keygen_tail_and_a_real_edit(cli, tmp_path):
    """Make a log with the demo's library through the CLI-visible files, then edit one byte."""
    key = tmp_path / "signer.key"
    rc, out = cli.json("audit", "keygen", "--name", "pytest/audit", "--out", str(key))
    assert rc == 0
    assert out["verifier_key"].startswith("pytest/audit+")
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    # The vectors' sealed log, copied and edited by one byte in a tool argument.
    sealed = DOC["tests"][0]
    log = tmp_path / "log"
    log.mkdir()
    seg = log / "00000000000000000000.jsonl"
    seg.write_text(sealed["segment"])
    done = cli.run("audit", "tail", str(log), "-n", "2")
    assert done.returncode == 0
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("#4 ") and "tool=approve_payment" in lines[0]
    text = seg.read_text().replace('"amount":300', '"amount":900', 1)
    assert text != sealed["segment"]
    seg.write_text(text)
    rc, out = cli.json("audit", "verify", str(log))
    assert (rc, out["error"]["code"], out["error"]["seq"]) == (1, "audit.tampered", 3)
