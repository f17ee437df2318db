//! The agentiam broker, first part: the agent registry and revocations in a store behind a
//! trait (SQLite embedded by default), and the standards endpoints a verifier and an
//! administrator need.
//!
//! - `GET /.well-known/jwks.json`: the issuer's public keys (RFC 7517).
//! - `GET /.well-known/oauth-authorization-server`: metadata (RFC 8414).
//! - `POST /oauth2/introspect`: is this token active, and what does it grant (RFC 7662).
//! - `POST /oauth2/revoke`: revoke a token (RFC 7009), and with it every token delegated from it.
//! - `POST /admin/agents`, `GET /admin/agents`: register an agent's SPIFFE ID, its maximum
//!   scopes and the composite identity digests it may present.
//!
//! Introspection, revocation and the registry need the administrator's bearer token
//! (compared in constant time). Errors are OAuth error bodies with our reason code beside:
//! `{"error": "invalid_request", "error_description": "...", "agentiam_code": "broker.bad_request"}`.
//! Bodies over 64 KiB are refused before they are parsed.
//!
//! ```
//! use std::sync::Arc;
//! use agentiam_broker::{Broker, SqliteStore, Store};
//! use agentiam_identity::{Algorithm, KeySet, SigningKey};
//! use agentiam_token::Issuer;
//! let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
//! let issuer = Arc::new(Issuer::new("https://broker.example", KeySet::new(SigningKey::generate(Algorithm::EdDSA).unwrap())));
//! let broker = Broker::new(issuer, store, "https://broker.example", "an admin secret of 32+ characters.....").unwrap();
//! let app: axum::Router = broker.router();
//! # let _ = app;
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod approvals;
mod approvals_http;
mod client;
mod config;
mod console;
mod error;
mod http;
mod introspection;
mod people;
mod postgres;
mod registration;
mod serve;
mod shared_keys;
mod sqlite;
mod store;
mod token;

pub use approvals::{
    ApprovalFinding, ApprovalRecord, ApprovalStatus, ApprovalSubmission, RequesterContext,
};
pub use approvals_http::{MAX_PENDING_PER_AGENT, MAX_WAIT_SECS};
pub use client::{BrokerApprovals, BrokerClient, RequestBody};
pub use config::{BrokerConfig, KeysConfig, MAX_CONFIG_BYTES, StoreConfig, TokensConfig};
pub use console::{MAX_FAILED_LOGINS, MIN_PASSWORD_CHARS, SESSION_SECS, hash_password};
pub use error::BrokerError;
pub use http::{Broker, DEFAULT_CLIENT_ASSERTION_MAX_LIFETIME_SECS, MAX_BODY_BYTES};
pub use people::{IdentityProviderConfig, PersonGrant, TOKEN_TYPE_ID_TOKEN};
pub use postgres::PostgresStore;
pub use registration::{DEFAULT_INITIAL_ACCESS_TOKEN_SECS, MAX_INITIAL_ACCESS_TOKEN_SECS};
pub use serve::{DataDir, schedule_key_rotation, serve};
pub use shared_keys::KeyEncryptionKey;
pub use sqlite::SqliteStore;
pub use store::{AgentRecord, ConsoleSession, Store, StoreRevocations};
pub use token::{GRANT_CLIENT_CREDENTIALS, GRANT_TOKEN_EXCHANGE, MAX_ATTESTATION_BYTES};
