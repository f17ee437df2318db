//! The agentiam broker: the agent registry and revocations in a store behind a
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
//! let broker = Broker::builder(issuer, store, "https://broker.example", "an admin secret of 32+ characters.....")
//!     .build()
//!     .unwrap();
//! let app: axum::Router = broker.router();
//! # let _ = app;
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod approval_queue;
mod approvals;
mod auth;
mod broker;
pub mod codes;
mod config;
mod data_dir;
mod error;
mod keys;
mod oauth_error;
mod people;
mod postgres;
mod records;
mod routes;
mod secrets;
mod serve;
mod shared_keys;
mod sqlite;
mod store;

pub use approvals::{
    ApprovalFinding, ApprovalRecord, ApprovalStatus, ApprovalSubmission, RequesterContext,
};
// The agent-side client lives in its own crate; re-exported so existing paths keep working.
pub use agentiam_broker_client::{BrokerApprovals, BrokerClient, MAX_WAIT_SECS, RequestBody};
pub use broker::{Broker, BrokerBuilder, DEFAULT_CLIENT_ASSERTION_MAX_LIFETIME_SECS};
pub use config::{BrokerConfig, KeysConfig, MAX_CONFIG_BYTES, StoreConfig, TokensConfig};
pub use data_dir::DataDir;
pub use error::BrokerError;
pub use oauth_error::MAX_BODY_BYTES;
pub use people::{IdentityProviderConfig, PersonGrant, TOKEN_TYPE_ID_TOKEN};
pub use postgres::PostgresStore;
pub use records::{GRANT_CLIENT_CREDENTIALS, GRANT_TOKEN_EXCHANGE};
pub use routes::approvals::MAX_PENDING_PER_AGENT;
pub use routes::console::{MAX_FAILED_LOGINS, MIN_PASSWORD_CHARS, SESSION_SECS, hash_password};
pub use routes::registration::{DEFAULT_INITIAL_ACCESS_TOKEN_SECS, MAX_INITIAL_ACCESS_TOKEN_SECS};
pub use routes::token::MAX_ATTESTATION_BYTES;
pub use serve::{schedule_key_rotation, serve};
pub use shared_keys::KeyEncryptionKey;
pub use sqlite::SqliteStore;
pub use store::{AgentRecord, ConsoleSession, Store, StoreRevocations};
