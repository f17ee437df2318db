"""The token attack catalogue (testvectors/tokens.json), run through `agentiam token verify`.

cargo test runs the same file against the library, so the CLI and the library agree by construction.
"""

import json

import pytest


def _cases():
    import pathlib

    doc = json.loads((pathlib.Path(__file__).resolve().parents[2] / "testvectors" / "tokens.json").read_text())
    return [pytest.param(t, id=f"tc{t['tcId']}") for t in doc["tests"]]


@pytest.fixture(scope="module")
def jwks_file(tmp_path_factory, vectors):
    path = tmp_path_factory.mktemp("vectors") / "jwks.json"
    path.write_text(json.dumps(vectors["verifier"]["jwks"]))
    return path


@pytest.mark.parametrize("case", _cases())
def test_vector(cli, vectors, jwks_file, case):
    cfg = vectors["verifier"]
    args = [
        "token", "verify", "--jwks", str(jwks_file), "--issuer", cfg["issuer"], "--audience", cfg["audience"],
        "--at", str(cfg["now"]), "--leeway", str(cfg["leeway"]),
    ]
    for jti in cfg["revoked_jtis"]:
        args += ["--revoked-jti", jti]
    if "presented_by" in case:
        args += ["--expect-agent", case["presented_by"]["spiffe_id"], "--expect-digest", case["presented_by"]["digest"]]
    args += ["--", case["token"]]
    rc, out = cli.json(*args)
    if case["result"] == "valid":
        assert rc == 0, (case["comment"], out)
        assert out["valid"] is True
    else:
        assert rc == 1, (case["comment"], out)
        assert out["error"]["code"] == case["error"], case["comment"]


def test_catalogue_is_not_empty(vectors):
    assert vectors["numberOfTests"] == len(vectors["tests"]) >= 60
