"""MCP authorization end to end with the MCP SDK's own machine-to-machine client: an
agentiam-guarded MCP server publishes RFC 9728 protected-resource metadata naming the broker,
the SDK's `PrivateKeyJWTOAuthProvider` discovers the broker from it, gets a token with client
credentials and an RFC 8707 `resource` (the MCP server's URL, which becomes the token's audience),
and calls a guarded tool. The agent's attestation evidence and task travel in its signed client
assertion, since the SDK's client sends no other form parameters.
"""

import asyncio
import json
import uuid

import httpx2
import jwt
from cryptography.hazmat.primitives import serialization
from mcp.client import Client
from mcp.client.auth.extensions.client_credentials import PrivateKeyJWTOAuthProvider, SignedJWTParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer
from test_mcp import is_error, text

import agentiam
from agentiam.integrations.mcp import TokenVerifier, auth_settings, guard_tool
from conftest import agent_key, register_and_get_token

EVIDENCE = {
    "model": {"provider": "openai", "name": "gpt-5", "version": "2026-08-01"},
    "configuration": {"system_prompt": "You pay approved invoices.", "tools": []},
    "runtime": {"kind": "process", "attributes": {}},
}


class MemoryStorage:
    """The SDK's `TokenStorage`, in memory."""

    def __init__(self):
        self.tokens = None
        self.client_info = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client_info

    async def set_client_info(self, client_info):
        self.client_info = client_info


def _register(broker) -> tuple[str, str]:
    """A registered agent: its client id and its private key as PEM (for the SDK's signer)."""
    client_id = f"spiffe://acme.test/agent/mcp-payer-{uuid.uuid4().hex[:8]}"
    private, jwk = agent_key("mcp-payer-key")
    status, body = broker.admin_json(
        "/admin/agents", {"spiffe_id": client_id, "max_scopes": "payments:transfer", "jwks": {"keys": [jwk]}}
    )
    assert status == 201, body
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return client_id, pem


def _provider(broker, url: str, client_id: str, pem: str, storage: MemoryStorage, **claims):
    signer = SignedJWTParameters(
        issuer=client_id,
        subject=client_id,
        signing_key=pem,
        signing_algorithm="EdDSA",
        additional_claims={"agent_attestation": EVIDENCE, "task_id": "pay-invoice-7", **claims},
    )
    return PrivateKeyJWTOAuthProvider(
        server_url=url,
        storage=storage,
        client_id=client_id,
        assertion_provider=signer.create_assertion_provider(),
        scope="payments:transfer",
        issuer=broker.base,
    )


def test_the_mcp_sdk_client_discovers_the_broker_and_calls_a_guarded_tool(broker, http_server):
    ran = []
    guards = []

    def make_app(url):
        # The token's audience is the MCP server's URL (RFC 8707): the guard accepts only that.
        guard = agentiam.Guard(issuer=broker.base, audience=url, jwks_url=broker.base + "/.well-known/jwks.json")
        guards.append(guard)
        server = MCPServer(
            "payments",
            token_verifier=TokenVerifier(guard),
            # The scopes the server needs go into its RFC 9728 metadata; the SDK's client asks for them.
            auth=auth_settings(broker.base, url, scopes=["payments:transfer"]),
        )

        @guard_tool(guard, server, scope="payments:transfer", risk="medium")
        def transfer(amount: int, currency: str, payee: str) -> str:
            """Transfer money to a payee."""
            ran.append(amount)
            return f"paid {amount}"

        return server.streamable_http_app()

    url = http_server(make_app)

    # RFC 9728: the metadata names the broker; a request without a token is pointed at it.
    unauthenticated = httpx2.post(
        url,
        headers={"Accept": "application/json, text/event-stream"},
        json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
        timeout=20,
    )
    assert unauthenticated.status_code == 401
    assert "resource_metadata=" in unauthenticated.headers["www-authenticate"]
    origin = url.rsplit("/mcp", 1)[0]
    metadata = httpx2.get(origin + "/.well-known/oauth-protected-resource/mcp", timeout=20).json()
    assert metadata["authorization_servers"][0].rstrip("/") == broker.base
    assert metadata["resource"] == url

    client_id, pem = _register(broker)
    storage = MemoryStorage()

    async def call():
        provider = _provider(broker, url, client_id, pem, storage)
        async with httpx2.AsyncClient(auth=provider, timeout=20) as http:
            async with Client(streamable_http_client(url, http_client=http)) as client:
                return await client.call_tool("transfer", {"amount": 250, "currency": "USD", "payee": "ACME"})

    paid = asyncio.run(call())
    assert not is_error(paid) and "paid 250" in text(paid), text(paid)
    assert ran == [250]
    # The token the SDK got: for this resource, this task, this agent, within what it asked.
    claims = jwt.decode(storage.tokens.access_token, options={"verify_signature": False})
    assert claims["aud"] == url
    assert claims["sub"] == client_id and claims["task"]["id"] == "pay-invoice-7"
    assert claims["scope"] == "payments:transfer"

    # A token the same broker issued for another resource (RFC 8707) is refused before any tool.
    foreign = register_and_get_token(
        broker, f"spiffe://acme.test/agent/other-{uuid.uuid4().hex[:8]}", "payments:transfer", "payments:transfer", "t"
    )
    refused = httpx2.post(
        url,
        headers={"Accept": "application/json, text/event-stream", "Authorization": f"Bearer {foreign}"},
        json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
        timeout=20,
    )
    assert refused.status_code == 401, refused.text
    assert ran == [250]


def test_evidence_in_the_form_and_the_assertion_must_agree(broker):
    client_id, pem = _register(broker)
    now = __import__("time").time()
    assertion = jwt.encode(
        {
            "iss": client_id,
            "sub": client_id,
            "aud": broker.base,
            "iat": int(now),
            "exp": int(now) + 60,
            "jti": uuid.uuid4().hex,
            "agent_attestation": EVIDENCE,
            "task_id": "signed-task",
        },
        pem,
        algorithm="EdDSA",
    )
    other = dict(EVIDENCE, configuration={"system_prompt": "Something else.", "tools": []})
    status, body = broker.token(
        [
            ("grant_type", "client_credentials"),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", assertion),
            ("agent_attestation", json.dumps(other)),
            ("scope", "payments:transfer"),
            ("audience", "payments-api"),
        ]
    )
    assert status == 400 and body["error"] == "invalid_request", body
    assert "agent_attestation" in body["error_description"]
