//! The broker's HTTP API (axum): every route, the body limit, and the shared state they take.
//!
//! One module per route group; each takes `State<Broker>` and depends only on the state (`crate::broker`), the error answers (`crate::oauth_error`) and the helper modules, never on another route module.
//!
//! - `discovery`: JWKS, RFC 8414 metadata, the `/oauth2/authorize` refusal.
//! - `token`: `POST /oauth2/token` (client credentials, token exchange).
//! - `introspection`: `POST /oauth2/introspect`, `POST /oauth2/revoke`.
//! - `registration`: RFC 7591/7592 dynamic client registration and initial access tokens.
//! - `admin`: the agent registry and key rotation.
//! - `approvals`: the approvals API agents and the administrator call.
//! - `console`: the approvers' HTML console.

use axum::Router;
use axum::extract::DefaultBodyLimit;

use crate::Broker;
use crate::oauth_error::MAX_BODY_BYTES;

mod admin;
pub(crate) mod approvals;
pub(crate) mod console;
mod discovery;
mod introspection;
pub(crate) mod registration;
pub(crate) mod token;

impl Broker {
    /// The HTTP routes (defined here, so the state never depends on its routes).
    pub fn router(&self) -> Router {
        router(self.clone())
    }
}

/// Every route of the broker, with `broker` as their state. Bodies over [`MAX_BODY_BYTES`]
/// are refused before they are parsed.
fn router(broker: Broker) -> Router {
    Router::new()
        .merge(discovery::routes())
        .merge(token::routes())
        .merge(introspection::routes())
        .merge(admin::routes())
        .merge(approvals::routes())
        .merge(console::routes())
        .merge(registration::routes())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(broker)
}
