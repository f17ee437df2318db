//! What a client discovers before it authenticates: the issuer's public keys (RFC 7517), the authorization server metadata (RFC 8414), and the `/oauth2/authorize` refusal.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::Broker;
use crate::oauth_error::OAuthError;
use crate::records::{GRANT_CLIENT_CREDENTIALS, GRANT_TOKEN_EXCHANGE};

pub(super) fn routes() -> Router<Broker> {
    Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/oauth2/authorize", get(authorize).post(authorize))
}

/// `/oauth2/authorize`: there is no interactive grant here. RFC 6749 section 4.1.2.1: with no
/// registered redirection URI to return to, the error is shown, never redirected.
async fn authorize() -> OAuthError {
    OAuthError::new(
        StatusCode::BAD_REQUEST,
        "unsupported_response_type",
        crate::codes::UNSUPPORTED_GRANT_TYPE,
        "the broker has no interactive authorization: agents use client credentials \
         (private_key_jwt) or token exchange",
    )
}

async fn jwks(State(broker): State<Broker>) -> Response {
    let body = broker.jwks().to_json();
    (
        [
            (header::CONTENT_TYPE, "application/jwk-set+json"),
            (header::CACHE_CONTROL, "public, max-age=60"),
        ],
        body,
    )
        .into_response()
}

async fn metadata(State(broker): State<Broker>) -> Json<Value> {
    let base = broker.base_url();
    Json(json!({
        "issuer": broker.issuer_url(),
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "token_endpoint": format!("{base}/oauth2/token"),
        "grant_types_supported": [GRANT_CLIENT_CREDENTIALS, GRANT_TOKEN_EXCHANGE],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["EdDSA", "Ed25519", "ES256"],
        "dpop_signing_alg_values_supported": ["EdDSA", "Ed25519", "ES256"],
        // RFC 8414 requires it; `none` is the registered response type that returns nothing.
        "response_types_supported": ["none"],
        // Agents use client credentials; people sign in at their own OpenID provider. The
        // endpoint exists for clients whose metadata model requires it (the MCP SDK's), and
        // refuses every request.
        "authorization_endpoint": format!("{base}/oauth2/authorize"),
        "introspection_endpoint": format!("{base}/oauth2/introspect"),
        // Agents with their client assertion; the administrator with a bearer token (the
        // introspection list may name access token types, RFC 8414 section 2).
        "introspection_endpoint_auth_methods_supported": ["private_key_jwt", "Bearer"],
        "introspection_endpoint_auth_signing_alg_values_supported": ["EdDSA", "Ed25519", "ES256"],
        // RFC 7591, gated by initial access tokens the administrator issues.
        "registration_endpoint": format!("{base}/oauth2/register"),
        "revocation_endpoint": format!("{base}/oauth2/revoke"),
        // Only IANA client authentication methods here; the administrator's bearer token works
        // too, as an extension.
        "revocation_endpoint_auth_methods_supported": ["private_key_jwt"],
        "revocation_endpoint_auth_signing_alg_values_supported": ["EdDSA", "Ed25519", "ES256"],
    }))
}
