"""The broker driven by a stock OAuth client it was not written with: authlib's own classes
(`OAuth2Client` over httpx, `PrivateKeyJWT` unchanged, `AuthorizationServerMetadata`), with
joserfc keys, against `agentiam serve` as users run it.

What this pins down (issue 18): the metadata validates; an agent gets, introspects and revokes
its own tokens with its client assertion; a DPoP-bound token introspects active with `cnf.jkt`
and its revocation takes effect; HTTP Basic gets a `Basic` challenge; error descriptions stay in
RFC 6749's character set."""

import json
import os
import time
import uuid

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey

from conftest import Broker

# authlib insists on https; the broker under test listens on loopback http.
os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"

EVIDENCE = {
    "model": {"provider": "openai", "name": "gpt-5", "version": "2026-08-01"},
    "configuration": {"system_prompt": "You reconcile invoices.", "tools": []},
    "runtime": {"kind": "process", "attributes": {}},
}


def _agent(broker: Broker, name: str) -> tuple[str, OAuth2Client]:
    """Registers an agent with a fresh Ed25519 key and returns its authlib client."""
    client_id = f"spiffe://acme.test/agent/{name}-{uuid.uuid4().hex[:8]}"
    key = OKPKey.generate_key("Ed25519", parameters={"kid": "k1"})
    status, body = broker.admin_json(
        "/admin/agents",
        {"spiffe_id": client_id, "max_scopes": "ledger.*:read", "jwks": {"keys": [key.as_dict(private=False)]}},
    )
    assert status == 201, body
    client = OAuth2Client(
        client_id=client_id,
        client_secret=key,
        token_endpoint_auth_method="private_key_jwt",
        revocation_endpoint_auth_method="private_key_jwt",
    )
    # Unchanged: authlib signs hour-long assertions whose audience is the endpoint called
    # (with RFC 9864's fully-specified `Ed25519`, which the broker accepts beside `EdDSA`).
    client.register_client_auth_method(PrivateKeyJWT(alg="Ed25519"))
    return client_id, client


def _token(broker: Broker, client: OAuth2Client, task: str, headers: dict | None = None) -> dict:
    return dict(
        client.fetch_token(
            broker.base + "/oauth2/token",
            grant_type="client_credentials",
            scope="ledger.ar:read",
            audience="ledger-api",
            task_id=task,
            agent_attestation=json.dumps(EVIDENCE),
            headers=headers,
        )
    )


def _introspect(broker: Broker, client: OAuth2Client, token: str) -> dict:
    response = client.introspect_token(broker.base + "/oauth2/introspect", token=token)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _dpop_proof(key: ECKey, url: str) -> str:
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.as_dict(private=False)}
    claims = {"htm": "POST", "htu": url, "iat": int(time.time()), "jti": uuid.uuid4().hex}
    return jwt.encode(header, claims, key, algorithms=["ES256"])


def test_metadata_validates_with_authlib(broker):
    document = httpx.get(broker.base + "/.well-known/oauth-authorization-server").json()
    metadata = AuthorizationServerMetadata(document)
    metadata.validate()  # raises on a missing required field or a malformed value
    assert "private_key_jwt" in metadata["revocation_endpoint_auth_methods_supported"]


def test_an_agent_gets_introspects_and_revokes_its_own_token_with_authlib(broker):
    _, client = _agent(broker, "reconciler")
    token = _token(broker, client, "task-stock-1")
    assert token["token_type"] == "Bearer"
    access = token["access_token"]
    assert _introspect(broker, client, access)["active"] is True

    # Another agent learns nothing about it and cannot revoke it.
    _, stranger = _agent(broker, "stranger")
    assert _introspect(broker, stranger, access) == {"active": False}
    refused = stranger.revoke_token(broker.base + "/oauth2/revoke", token=access)
    assert refused.status_code == 400 and refused.json()["error"] == "unauthorized_client"
    assert _introspect(broker, client, access)["active"] is True

    revoked = client.revoke_token(broker.base + "/oauth2/revoke", token=access)
    assert revoked.status_code == 200, revoked.text
    assert _introspect(broker, client, access) == {"active": False}


def test_a_dpop_bound_token_introspects_active_and_its_revocation_takes_effect(broker):
    _, client = _agent(broker, "bound")
    pop = ECKey.generate_key("P-256")
    proof = _dpop_proof(pop, broker.base + "/oauth2/token")
    token = _token(broker, client, "task-stock-2", headers={"DPoP": proof})
    assert token["token_type"] == "DPoP"
    access = token["access_token"]

    live = _introspect(broker, client, access)
    assert live["active"] is True and live["token_type"] == "DPoP"
    assert live["cnf"]["jkt"] == pop.thumbprint()

    revoked = client.revoke_token(broker.base + "/oauth2/revoke", token=access)
    assert revoked.status_code == 200, revoked.text
    assert _introspect(broker, client, access) == {"active": False}


def test_two_dpop_headers_are_refused(broker):
    _, client = _agent(broker, "twice")
    pop = ECKey.generate_key("P-256")
    url = broker.base + "/oauth2/token"
    body = {
        "grant_type": "client_credentials",
        "scope": "ledger.ar:read",
        "audience": "ledger-api",
        "task_id": "task-stock-3",
        "agent_attestation": json.dumps(EVIDENCE),
    }
    with pytest.raises(Exception) as refused:
        client.fetch_token(url, headers=[("DPoP", _dpop_proof(pop, url)), ("DPoP", _dpop_proof(pop, url))], **body)
    assert "invalid_dpop_proof" in str(refused.value)


def test_http_basic_gets_a_basic_challenge_and_descriptions_keep_to_the_charset(broker):
    response = httpx.post(
        broker.base + "/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=("client", "secret"),
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic ")
    assert response.json()["error"] == "invalid_client"

    odd = httpx.post(broker.base + "/oauth2/token", data={"grant_type": 'x"y\\z\u00e9'})
    assert odd.status_code == 400
    description = odd.json()["error_description"]
    assert all(0x20 <= ord(c) <= 0x7E and c not in '"\\' for c in description), description
