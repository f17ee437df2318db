"""Delegated tokens from `agentiam token exchange` are ordinary JWTs: PyJWT verifies them and reads `act`."""

import json

import jwt
import pytest

ISS = "https://broker.interop.test"
AUD = "ledger-api"
AGENT = {
    "model": {"provider": "openai", "name": "gpt-5", "version": "2026-08-01"},
    "system_prompt": "You help.",
    "tools": [],
    "runtime": {"kind": "process", "attributes": {}},
}


@pytest.fixture()
def broker(cli, tmp_path):
    key, jwks = tmp_path / "broker.jwk", tmp_path / "jwks.json"
    rc, _ = cli.json("keys", "generate", "--out", str(key), "--jwks-out", str(jwks))
    assert rc == 0
    agent = tmp_path / "agent.json"
    agent.write_text(json.dumps(AGENT))
    rc, root = cli.json(
        "token", "issue", "--key", str(key), "--issuer", ISS, "--audience", AUD,
        "--sub", "spiffe://acme.test/agent/orchestrator", "--scope", "ledger.*:read payments:approve{amount<=1000}",
        "--agent", str(agent), "--ttl", "600",
    )
    assert rc == 0, root
    return key, jwks, agent, root["token"]


def _exchange(cli, key, agent, subject, actor, *extra):
    return cli.json(
        "token", "exchange", "--key", str(key), "--issuer", ISS, "--audience", AUD, "--subject-token", subject,
        "--actor", actor, "--actor-agent", str(agent), *extra,
    )


def test_child_token_is_a_standard_jwt_with_nested_act(cli, broker):
    key, jwks, agent, root = broker
    rc, child = _exchange(cli, key, agent, root, "spiffe://acme.test/agent/payer", "--scope", "payments:approve{amount<=100}", "--ttl", "60")
    assert rc == 0, child
    rc, grand = _exchange(cli, key, agent, child["token"], "spiffe://acme.test/agent/checker", "--calls", "2")
    assert rc == 0, grand
    keys = jwt.PyJWKSet.from_json(jwks.read_text())
    claims = jwt.decode(grand["token"], keys.keys[0], algorithms=["EdDSA"], audience=AUD, issuer=ISS)
    assert claims["sub"] == "spiffe://acme.test/agent/orchestrator"
    assert claims["act"] == {"sub": "spiffe://acme.test/agent/checker", "act": {"sub": "spiffe://acme.test/agent/payer"}}
    assert claims["scope"] == "payments:approve{amount<=100}"
    assert [hop["sub"] for hop in claims["dlg"]] == ["spiffe://acme.test/agent/orchestrator", "spiffe://acme.test/agent/payer"]
    assert claims["budget"] == {"calls": 2}
    rc, out = cli.json("token", "verify", "--jwks", str(jwks), "--issuer", ISS, "--audience", AUD, grand["token"])
    assert rc == 0, out


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        (["--scope", "ledger.*:write"], "delegation.scope_widened"),
        (["--scope", "payments:approve{amount<=5000}"], "delegation.scope_widened"),
        (["--ttl", "6000"], "delegation.expiry_extended"),
        (["--max-depth", "0"], "delegation.depth_exceeded"),
    ],
)
def test_widening_is_refused_with_a_stable_code(cli, broker, extra, code):
    key, _, agent, root = broker
    rc, out = _exchange(cli, key, agent, root, "spiffe://acme.test/agent/payer", *extra)
    assert (rc, out["error"]["code"]) == (1, code)


def test_clip_narrows_instead_of_refusing(cli, broker):
    key, _, agent, root = broker
    rc, out = _exchange(cli, key, agent, root, "spiffe://acme.test/agent/payer", "--scope", "ledger.ar:read admin:*", "--clip")
    assert rc == 0, out
    assert out["claims"]["scope"] == "ledger.ar:read"


def _vectors():
    import pathlib

    return json.loads((pathlib.Path(__file__).resolve().parents[2] / "testvectors" / "delegation.json").read_text())


DELEGATION = _vectors()


@pytest.mark.parametrize("case", [pytest.param(t, id=f"tc{t['tcId']}") for t in DELEGATION["tests"]])
def test_delegation_vector(cli, tmp_path, case):
    cfg = DELEGATION["verifier"]
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(cfg["jwks"]))
    args = ["token", "verify", "--jwks", str(jwks), "--issuer", cfg["issuer"], "--audience", cfg["audience"], "--at", str(cfg["now"])]
    for jti in case.get("revoked_jtis", []):
        args += ["--revoked-jti", jti]
    if "presented_by" in case:
        args += ["--expect-agent", case["presented_by"]["spiffe_id"], "--expect-digest", case["presented_by"]["digest"]]
    if "request" in case:
        r = case["request"]
        args += ["--action", f"{r['resource']}:{r['action']}", "--args", json.dumps(r["args"])]
    rc, out = cli.json(*args, "--", case["token"])
    if case["result"] == "valid":
        assert rc == 0, (case["comment"], out)
    else:
        assert (rc, out["error"]["code"]) == (1, case["error"]), case["comment"]


def test_offline_attenuation_link_is_a_jws_signed_by_the_holder(cli, tmp_path):
    broker_key, broker_jwks = tmp_path / "broker.jwk", tmp_path / "broker.json"
    holder_key, holder_jwks = tmp_path / "holder.jwk", tmp_path / "holder.json"
    sub_key = tmp_path / "sub.jwk"
    assert cli.json("keys", "generate", "--out", str(broker_key), "--jwks-out", str(broker_jwks))[0] == 0
    rc, holder = cli.json("keys", "generate", "--out", str(holder_key), "--jwks-out", str(holder_jwks))
    rc2, sub = cli.json("keys", "generate", "--alg", "es256", "--out", str(sub_key))
    assert rc == rc2 == 0
    rc, root = cli.json(
        "token", "issue", "--key", str(broker_key), "--issuer", ISS, "--audience", AUD,
        "--sub", "spiffe://acme.test/agent/orchestrator", "--scope", "ledger.*:read", "--dpop-jkt", holder["kid"],
    )
    assert rc == 0, root
    assert root["claims"]["cnf"] == {"jkt": holder["kid"]}
    rc, link = cli.json(
        "token", "attenuate", "--key", str(holder_key), "--parent", root["token"], "--next-jkt", sub["kid"],
        "--scope", "ledger.ar:read", "--ttl", "60", "--sub", "spiffe://acme.test/agent/reader",
    )
    assert rc == 0, link
    header = jwt.get_unverified_header(link["link"])
    assert header["typ"] == "agentiam-dlg+jwt"
    signer = jwt.PyJWK(header["jwk"])
    claims = jwt.decode(link["link"], signer, algorithms=["EdDSA"])
    assert claims["jkt"] == sub["kid"] and claims["scope"] == "ledger.ar:read"
    rc, out = cli.json(
        "token", "attenuate", "--key", str(holder_key), "--parent", root["token"], "--next-jkt", sub["kid"],
        "--scope", "ledger.ar:write",
    )
    assert (rc, out["error"]["code"]) == (1, "delegation.scope_widened")
