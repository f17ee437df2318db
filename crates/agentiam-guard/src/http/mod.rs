//! The guard as tower middleware, for Rust HTTP services (axum 0.8, plain hyper).
//!
//! [`GuardLayer`] authenticates each request, maps its route to a registered tool
//! ([`RouteMap`]), collects arguments (path parameters, query parameters and a JSON object body,
//! read up to a cap after authentication), asks the [`crate::Guard`], and calls the inner
//! service only on allow, with the verified principal in the request extensions
//! ([`Authenticated`] extracts it in axum handlers). Authentication comes before the route
//! lookup, so anonymous callers learn nothing about which routes are mapped; an unmapped route
//! is then decided by the engine like an unregistered tool (denied, and recorded by its sinks).
//!
//! Credentials: `Authorization: Bearer <token>`; `Authorization: DPoP <token>` with exactly one
//! `DPoP` proof header (RFC 9449, `htu` built from the configured public origin and the path);
//! or a TLS client certificate that the server's accept loop puts into the request extensions
//! as a [`PeerCertificate`] (see the `mtls` feature), alone (for workloads mapped to scopes) or
//! with a token, whose agent must be the certificate's SPIFFE ID and whose `cnf["x5t#S256"]`,
//! when present, must be that certificate. A `DPoP` header beside `Bearer` is ignored, so a
//! DPoP-bound token sent as `Bearer` is refused (RFC 9449 section 7.2).
//!
//! A human's approval travels in the `Agentiam-Approval` header (base64url of the approval JSON),
//! never in the body. Only a JSON body (`application/json` or `+json`) becomes arguments; other
//! bodies reach the service as they came, unseen by the guard (a missing argument fails scope
//! constraints, and a policy over it fails closed, but nothing else in such a body is checked).
//!
//! [`GuardLayer::with_protected_resource_metadata`] publishes RFC 9728 metadata at
//! [`PROTECTED_RESOURCE_METADATA_PATH`] (a public `GET`, answered before authentication) and
//! adds `resource_metadata="<url>"` to every challenge of a 401.
//!
//! Refusals are RFC 6750 responses whose JSON body is `{"error": {"code", "message"}}`:
//!
//! | outcome | status | `WWW-Authenticate` |
//! |---|---|---|
//! | no credentials (`guard.credentials_missing`) | 401 | `Bearer, DPoP algs="EdDSA ES256"` |
//! | `token.*`, `delegation.*`, `guard.peer_certificate_invalid` | 401 | `Bearer error="invalid_token", error_description="<code>"` (`DPoP ...` when DPoP was used) |
//! | a bad DPoP proof (`token.pop_invalid` with the DPoP scheme) | 401 | `DPoP error="invalid_dpop_proof", error_description="token.pop_invalid", algs="EdDSA ES256"` |
//! | the revocation store cannot be reached (`token.revocation_unavailable`) | 503 | none |
//! | `guard.scope_missing`, `guard.constraint_violated` | 403 | `Bearer error="insufficient_scope", error_description="<code>", scope="<resource:action>"` |
//! | needs a human (`guard.confirmation_required`, `guard.tainted_context`) | 403 | none; the body carries `approval_request` |
//! | `guard.arguments_invalid` | 400 (413 for a body over the cap) | none |
//! | `guard.input_too_large` (arguments nested, numerous or long past the guard's caps) | 413 | none |
//! | `guard.hook_failed` (e.g. the audit log is down), `guard.capacity_exceeded` | 503 | none |
//! | any other denial (`guard.unknown_action` for an unmapped route, policy, approvals) | 403 | none |
//!
//! ```
//! use std::sync::Arc;
//! use agentiam_guard::http::{Authenticated, GuardLayer, RouteMap};
//! use agentiam_guard::{Authenticator, Guard, PolicyEngine, Risk, ToolSpec};
//! use agentiam_token::{CachingVerifier, DpopVerifier, SystemClock, Verifier};
//! # let jwks = agentiam_identity::Jwks::default();
//!
//! async fn pay(Authenticated(principal): Authenticated) -> String {
//!     format!("paid on behalf of {}", principal.subject())
//! }
//!
//! let engine = Guard::builder(PolicyEngine::default_policy().unwrap())
//!     .tool(ToolSpec::new("transfer", Risk::High).with_scope("payments", "transfer"))
//!     .build()
//!     .unwrap();
//! let verifier = Verifier::new(jwks, "https://broker.example", "https://api.example");
//! let auth = Authenticator::new(CachingVerifier::new(verifier, 10_000), DpopVerifier::new(Arc::new(SystemClock)));
//! let routes = RouteMap::new().route("POST", "/payments", "transfer").unwrap();
//! let app: axum::Router = axum::Router::new()
//!     .route("/payments", axum::routing::post(pay))
//!     .layer(GuardLayer::new(engine, auth, routes, "https://api.example"));
//! ```

mod error;
mod future;
mod layer;
mod routes;

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::request::Parts;

pub use future::ResponseFuture;
pub use layer::{
    APPROVAL_HEADER, DEFAULT_MAX_BODY_BYTES, GuardLayer, GuardService,
    PROTECTED_RESOURCE_METADATA_PATH,
};
pub use routes::RouteMap;

use crate::request::Principal;

/// The TLS client's leaf certificate (DER), put into request extensions by the server's accept
/// loop after rustls verified the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCertificate(Arc<[u8]>);

impl PeerCertificate {
    /// Wraps a DER certificate.
    pub fn new(der: impl Into<Arc<[u8]>>) -> Self {
        Self(der.into())
    }
    /// The DER bytes.
    pub fn der(&self) -> &[u8] {
        &self.0
    }
}

/// The verified principal of a request the guard allowed (an axum extractor).
#[derive(Debug, Clone)]
pub struct Authenticated(pub Arc<Principal>);

/// Rejection when a handler asks for [`Authenticated`] without the layer in front of it (500).
#[derive(Debug, Clone, Copy)]
pub struct LayerMissing;

impl IntoResponse for LayerMissing {
    fn into_response(self) -> Response {
        error::layer_missing()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = LayerMissing;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Arc<Principal>>()
            .cloned()
            .map(Self)
            .ok_or(LayerMissing)
    }
}
