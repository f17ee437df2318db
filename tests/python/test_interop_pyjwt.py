"""Interoperability with PyJWT: tokens it mints verify with agentiam, and tokens agentiam mints verify with PyJWT."""

import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

ISS = "https://idp.interop.test"
AUD = "ledger-api"


def _pyjwt_key(alg: str):
    if alg == "EdDSA":
        private = ed25519.Ed25519PrivateKey.generate()
        public_jwk = json.loads(OKPAlgorithm.to_jwk(private.public_key()))
    else:
        private = ec.generate_private_key(ec.SECP256R1())
        public_jwk = json.loads(ECAlgorithm.to_jwk(private.public_key()))
    return private, public_jwk


def _rfc9068_claims(**overrides):
    now = int(time.time())
    claims = {
        "iss": ISS,
        "sub": "spiffe://acme.test/agent/interop",
        "aud": AUD,
        "iat": now,
        "exp": now + 300,
        "jti": f"jti-{now}",
        "client_id": "interop-client",
        "scope": "ledger.ar:read payments:approve{amount<=10}",
    }
    claims.update(overrides)
    return claims


@pytest.mark.parametrize("alg", ["EdDSA", "ES256"])
@pytest.mark.parametrize("with_kid", [True, False])
def test_agentiam_verifies_pyjwt_tokens(cli, tmp_path, alg, with_kid):
    private, public_jwk = _pyjwt_key(alg)
    headers = {"typ": "at+jwt"}
    if with_kid:
        public_jwk["kid"] = "pyjwt-key-1"
        headers["kid"] = "pyjwt-key-1"
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [public_jwk]}))
    token = jwt.encode(_rfc9068_claims(), private, algorithm=alg, headers=headers)

    code, out = cli.json("token", "verify", "--jwks", str(jwks), "--issuer", ISS, "--audience", AUD, token)
    assert code == 0, out
    assert out["valid"] is True
    assert out["alg"] == alg
    assert out["claims"]["client_id"] == "interop-client"
    assert out["claims"]["scope"] == "ledger.ar:read payments:approve{amount<=10}"


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        ({"exp": int(time.time()) - 120}, "token.expired"),
        ({"aud": "payments-api"}, "token.wrong_audience"),
        ({"iss": "https://evil.test"}, "token.wrong_issuer"),
        ({"exp": str(int(time.time()) + 300)}, "token.invalid_claim"),
    ],
)
def test_agentiam_refuses_bad_pyjwt_tokens_with_stable_codes(cli, tmp_path, mutate, code):
    private, public_jwk = _pyjwt_key("EdDSA")
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [public_jwk]}))
    token = jwt.encode(_rfc9068_claims(**mutate), private, algorithm="EdDSA")
    rc, out = cli.json("token", "verify", "--jwks", str(jwks), "--issuer", ISS, "--audience", AUD, token)
    assert rc == 1
    assert out["error"]["code"] == code
    assert out["error"]["message"]


@pytest.mark.parametrize("alg", ["EdDSA", "ES256"])
def test_minimal_claims_and_a_jwk_without_kid(cli, tmp_path, alg):
    """Only iss, sub, aud, exp, iat; the JWKS entry has no kid while the token names one."""
    private, public_jwk = _pyjwt_key(alg)
    public_jwk.pop("kid", None)
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [public_jwk]}))
    now = int(time.time())
    claims = {"iss": ISS, "sub": "svc-account", "aud": [AUD, "other"], "exp": now + 60, "iat": now}
    token = jwt.encode(claims, private, algorithm=alg, headers={"kid": "idp-key-2026"})
    code, out = cli.json("token", "verify", "--jwks", str(jwks), "--issuer", ISS, "--audience", AUD, token)
    assert code == 0, out
    rc, out = cli.json("token", "verify", "--jwks", str(jwks), "--issuer", ISS, "--audience", AUD, "--require-claim", "jti", token)
    assert (rc, out["error"]["code"]) == (1, "token.missing_claim")


def test_hs256_signed_with_the_public_key_is_refused(cli, tmp_path):
    private, public_jwk = _pyjwt_key("EdDSA")
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [public_jwk]}))
    raw_public = jwt.utils.base64url_decode(public_jwk["x"])
    # PyJWT refuses to use key material that looks asymmetric as an HMAC secret, so sign by hand.
    import hashlib
    import hmac

    header = jwt.utils.base64url_encode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = jwt.utils.base64url_encode(json.dumps(_rfc9068_claims()).encode())
    signing_input = header + b"." + payload
    sig = jwt.utils.base64url_encode(hmac.new(raw_public, signing_input, hashlib.sha256).digest())
    token = (signing_input + b"." + sig).decode()
    rc, out = cli.json("token", "verify", "--jwks", str(jwks), "--issuer", ISS, "--audience", AUD, token)
    assert (rc, out["error"]["code"]) == (1, "token.alg_not_allowed")


@pytest.mark.parametrize(("alg_flag", "alg"), [("eddsa", "EdDSA"), ("es256", "ES256")])
@pytest.mark.parametrize("bind_agent", [False, True])
def test_pyjwt_verifies_agentiam_tokens(cli, tmp_path, alg_flag, alg, bind_agent):
    key = tmp_path / "key.jwk"
    jwks = tmp_path / "jwks.json"
    rc, gen = cli.json("keys", "generate", "--alg", alg_flag, "--out", str(key), "--jwks-out", str(jwks))
    assert rc == 0, gen
    args = [
        "token", "issue", "--key", str(key), "--issuer", ISS, "--audience", AUD,
        "--sub", "spiffe://acme.test/agent/reconciler", "--scope", "ledger.ar:read",
        "--task-id", "task-7", "--purpose", "interop", "--ttl", "120",
    ]
    if bind_agent:
        agent = tmp_path / "agent.json"
        agent.write_text(json.dumps({
            "model": {"provider": "openai", "name": "gpt-5", "version": "2026-08-01"},
            "system_prompt": "You reconcile invoices.",
            "tools": [{"name": "read_ledger", "description": "Reads the ledger", "input_schema": {"type": "object"}}],
            "runtime": {"kind": "container", "attributes": {"image_digest": "sha256:abc"}},
        }))
        args += ["--agent", str(agent)]
    rc, issued = cli.json(*args)
    assert rc == 0, issued

    jwk_set = jwt.PyJWKSet.from_json(jwks.read_text())
    header = jwt.get_unverified_header(issued["token"])
    assert header["typ"] == "at+jwt"
    assert header["alg"] == alg
    signing_key = next(k for k in jwk_set.keys if k.key_id == header["kid"])
    claims = jwt.decode(issued["token"], signing_key, algorithms=[alg], audience=AUD, issuer=ISS)
    assert claims["sub"] == "spiffe://acme.test/agent/reconciler"
    assert claims["task"] == {"id": "task-7", "purpose": "interop"}
    assert claims["exp"] - claims["iat"] == 120
    assert ("agent" in claims) == bind_agent
    if bind_agent:
        assert claims["agent"]["digest"].startswith("sha256:")

    # A PyJWT-verified token must also round-trip through agentiam's own verifier.
    rc, out = cli.json("token", "verify", "--jwks", str(jwks), "--issuer", ISS, "--audience", AUD, issued["token"])
    assert rc == 0, out


def test_private_key_file_is_owner_only_and_not_overwritten(cli, tmp_path):
    key = tmp_path / "key.jwk"
    rc, _ = cli.json("keys", "generate", "--out", str(key))
    assert rc == 0
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    rc, out = cli.json("keys", "generate", "--out", str(key))
    assert rc != 0
    assert out["error"]["code"] == "cli.io"
