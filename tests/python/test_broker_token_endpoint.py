"""The broker's token endpoint with a standards client: `agentiam serve` runs as users run it, the
agent's key comes from `cryptography`, its client assertions are signed by PyJWT, and the tokens the
broker issues are verified by PyJWT against the broker's published JWKS. The cases are
testvectors/token_requests.json, the same file cargo test reads."""

import base64
import hashlib
import hmac
import json
import pathlib
import time
import urllib.parse
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from jwt.algorithms import OKPAlgorithm

from conftest import Broker, agent_key

ROOT = pathlib.Path(__file__).resolve().parents[2]
VECTORS = json.loads((ROOT / "testvectors" / "token_requests.json").read_text())
CLIENT = "spiffe://acme.test/agent/python-vectors"
STRANGER = "spiffe://acme.test/agent/stranger"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _issued_claims(broker: Broker, token: str) -> dict:
    header = jwt.get_unverified_header(token)
    key = next(k for k in broker.jwks().keys if k.key_id == header["kid"])
    return jwt.decode(token, key.key, algorithms=["EdDSA"], audience="ledger-api", issuer=broker.base)


def _sign(private, kid: str, claims: dict, how: str, registered_public: bytes, other) -> str:
    if how == "registered":
        return jwt.encode(claims, private, algorithm="EdDSA", headers={"kid": kid, "typ": "JWT"})
    if how == "unregistered":
        return jwt.encode(claims, other, algorithm="EdDSA", headers={"kid": "stranger-key", "typ": "JWT"})
    if how == "unregistered_with_registered_kid":
        return jwt.encode(claims, other, algorithm="EdDSA", headers={"kid": kid, "typ": "JWT"})
    if how == "none":
        header = _b64(json.dumps({"alg": "none", "kid": kid}).encode())
        return f"{header}.{_b64(json.dumps(claims).encode())}."
    if how == "hs256_public_key":
        signing_input = f"{_b64(json.dumps({'alg': 'HS256', 'kid': kid}).encode())}.{_b64(json.dumps(claims).encode())}"
        mac = hmac.new(registered_public, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(mac)}"
    raise AssertionError(f"unknown signer {how}")


def test_token_request_vectors_with_pyjwt_assertions(broker):
    assert len(VECTORS["tests"]) == VECTORS["numberOfTests"]
    private, jwk = agent_key("python-agent-key")
    other = ed25519.Ed25519PrivateKey.generate()
    registered_public = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    evidence = VECTORS["registration"]["evidence"]
    registration = {
        "spiffe_id": CLIENT,
        "max_scopes": VECTORS["registration"]["max_scopes"],
        "jwks": {"keys": [jwk]},
    }
    status, body = broker.admin_json("/admin/agents", registration)
    assert status == 201, body
    endpoint = broker.base + "/oauth2/token"

    def assertion(case: dict, n: int) -> str:
        now = int(time.time())
        spec = case.get("assertion", {})
        claims = {"iss": CLIENT, "sub": CLIENT, "aud": endpoint, "jti": f"py-{n}-{uuid.uuid4()}"}
        for name, offset in spec.get("offsets", {"iat": 0, "exp": 60}).items():
            claims[name] = now + offset
        for name, value in spec.get("claims", {}).items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = resolve(value)
        return _sign(private, jwk["kid"], claims, spec.get("sign", "registered"), registered_public, other)

    def resolve(value):
        names = {"$client": CLIENT, "$stranger": STRANGER, "$endpoint": endpoint, "$issuer": broker.base}
        if isinstance(value, list):
            return [names.get(v, v) for v in value]
        return names.get(value, value)

    def form(case: dict, n: int) -> list[tuple[str, str]]:
        pairs = list(VECTORS["base_form"].items())
        if case.get("assertion", {}).get("omit") is not True:
            pairs.append(("client_assertion", assertion(case, n)))
        change = case.get("evidence", {})
        if change is not None:
            doc = json.loads(json.dumps(evidence))
            if "system_prompt" in change:
                doc["configuration"]["system_prompt"] = change["system_prompt"]
            if "model_version" in change:
                doc["model"]["version"] = change["model_version"]
            if "extra" in change:
                doc["extra"] = change["extra"]
            if "tools" in change:
                doc["configuration"]["tools"] = change["tools"]
            pairs.append(("agent_attestation", json.dumps(doc)))
        for name, value in case.get("form", {}).items():
            pairs = [(k, v) for k, v in pairs if k != name]
            if value is not None:
                pairs.append((name, resolve(value)))
        if "repeat" in case:
            pairs.append(next(p for p in pairs if p[0] == case["repeat"]))
        return pairs

    # First token: unpinned registration; PyJWT verifies it and reads the composite digest the
    # broker computed from the evidence, which is then pinned.
    status, body = broker.token(form(VECTORS["tests"][0], 0))
    assert status == 200, body
    claims = _issued_claims(broker, body["access_token"])
    assert claims["sub"] == CLIENT and claims["scope"] == "ledger.ar:read"
    assert claims["task"]["id"] == "task-1"
    registration["allowed_digests"] = [claims["agent"]["digest"]]
    status, body = broker.admin_json("/admin/agents", registration)
    assert status == 201, body

    for n, case in enumerate(VECTORS["tests"], start=1):
        pairs = form(case, n)
        status, body = broker.token(pairs)
        if case.get("send_twice"):
            status, body = broker.token(pairs)
        where = f"tcId {case['tcId']} ({case['comment']}): {body}"
        assert status == case["status"], where
        assert body.get("error") == case["error"], where
        assert body.get("agentiam_code") == case["code"], where
        if status == 200:
            issued = _issued_claims(broker, body["access_token"])
            assert issued["agent"]["digest"] == registration["allowed_digests"][0], where
        else:
            assert "access_token" not in body, where


def test_every_flag_has_a_note():
    for case in VECTORS["tests"]:
        for flag in case["flags"]:
            assert flag in VECTORS["notes"], (case["tcId"], flag)
