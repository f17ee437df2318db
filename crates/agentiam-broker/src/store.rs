//! The broker's store: registered agents and revocations. SQLite is the embedded default
//! ([`crate::SqliteStore`]); [`crate::PostgresStore`] implements the same trait for several
//! broker replicas.

use std::sync::Arc;

use agentiam_token::{Revocation, RevocationSet, TokenError};
use serde::{Deserialize, Serialize};

use crate::BrokerError;
use crate::approvals::{ApprovalRecord, ApprovalStatus};

/// A registered agent: who it is, the most it may ever be granted, and which composite
/// identities it may present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentRecord {
    /// SPIFFE ID.
    pub spiffe_id: String,
    /// The widest scopes any of its tokens may carry (scope grammar).
    pub max_scopes: String,
    /// Composite identity digests (`sha256:...`) it may present; empty: any.
    #[serde(default)]
    pub allowed_digests: Vec<String>,
    /// The agent's public keys for `private_key_jwt` client authentication at the token
    /// endpoint (a JWKS document, as RFC 7591's `jwks`). Without it the agent cannot get tokens
    /// from the broker over HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<serde_json::Value>,
    /// The attestors whose evidence the token endpoint requires, by name. Known:
    /// `configuration` (the model, system prompt, tool manifest and runtime are sent and the
    /// composite digest is recomputed from them). Default: `["configuration"]`.
    #[serde(default = "default_attestors")]
    pub attestors: Vec<String>,
    /// SHA-256 (hex) of the RFC 7592 registration access token, when the agent registered
    /// itself (RFC 7591). Never accepted from the administrator's API; replaced on every update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_token_sha256: Option<String>,
}

fn default_attestors() -> Vec<String> {
    vec!["configuration".to_owned()]
}

/// Where the broker keeps what must outlive a process and be shared between replicas.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Registers an agent, replacing an earlier registration of the same SPIFFE ID.
    fn put_agent(&self, agent: &AgentRecord) -> Result<(), BrokerError>;
    /// The registration of an agent.
    fn agent(&self, spiffe_id: &str) -> Result<Option<AgentRecord>, BrokerError>;
    /// Removes an agent's registration; `false` when there was none.
    fn delete_agent(&self, spiffe_id: &str) -> Result<bool, BrokerError>;
    /// Every registration, by SPIFFE ID.
    fn agents(&self) -> Result<Vec<AgentRecord>, BrokerError>;
    /// Records a revocation that lasts until `until` (seconds since the epoch).
    fn revoke(&self, what: &Revocation, until: i64) -> Result<(), BrokerError>;
    /// Whether this entry is revoked (and not yet expired at `now`).
    fn is_revoked(&self, what: &Revocation, now: i64) -> Result<bool, BrokerError>;
    /// Forgets revocations, used nonces and sessions that ended before `now`.
    fn prune(&self, now: i64) -> Result<(), BrokerError>;

    /// Records `key` (e.g. a client assertion's issuer and `jti`) as used until `until`.
    /// `Ok(true)` the first time, `Ok(false)` when it was used before and has not expired.
    fn use_once(&self, key: &str, until: i64, now: i64) -> Result<bool, BrokerError>;

    /// Stores a new approval request (its `id` must be fresh).
    fn put_approval(&self, record: &ApprovalRecord) -> Result<(), BrokerError>;
    /// One approval request.
    fn approval(&self, id: &str) -> Result<Option<ApprovalRecord>, BrokerError>;
    /// Approval requests in `status` (all when `None`), newest first, at most `limit`.
    fn approvals(
        &self,
        status: Option<ApprovalStatus>,
        limit: usize,
    ) -> Result<Vec<ApprovalRecord>, BrokerError>;
    /// Replaces a pending request with its settled record, atomically: `Ok(false)` when it
    /// was no longer pending (someone else settled it first), and nothing changes.
    fn settle_approval(&self, record: &ApprovalRecord) -> Result<bool, BrokerError>;

    /// Stores an approver's password hash (a PHC string), replacing an earlier one.
    fn put_approver(&self, name: &str, password_hash: &str) -> Result<(), BrokerError>;
    /// An approver's password hash.
    fn approver(&self, name: &str) -> Result<Option<String>, BrokerError>;

    /// Stores a console session under the SHA-256 of its cookie value.
    fn put_session(&self, session: &ConsoleSession) -> Result<(), BrokerError>;
    /// A session that has not expired at `now`.
    fn session(&self, id_sha256: &str, now: i64) -> Result<Option<ConsoleSession>, BrokerError>;
    /// Ends a session.
    fn end_session(&self, id_sha256: &str) -> Result<(), BrokerError>;

    /// The replicas' shared key material: its version and the sealed document.
    fn key_material(&self) -> Result<Option<(i64, String)>, BrokerError>;
    /// Replaces the shared key material with `sealed` at `version` only if the stored version
    /// is still `expected` (`None`: nothing stored yet). `Ok(false)`: another replica changed
    /// it first, and nothing was written.
    fn swap_key_material(
        &self,
        expected: Option<i64>,
        version: i64,
        sealed: &str,
    ) -> Result<bool, BrokerError>;
}

/// An approver's signed-in console session. The cookie holds a random value; the store keeps
/// only its SHA-256, so a copy of the store does not let anyone sign in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleSession {
    /// Hex SHA-256 of the cookie value.
    pub id_sha256: String,
    /// Who signed in.
    pub approver: String,
    /// The CSRF token every form in this session must echo.
    pub csrf: String,
    /// When the session ends (seconds since the epoch).
    pub expires_at: i64,
}

/// A [`Store`]'s revocations as the token crate's [`RevocationSet`] (its default `check` walks
/// token, agent, task and delegation ancestors), so verifiers, token exchange and the guard
/// consult the same entries the broker writes.
#[derive(Debug, Clone)]
pub struct StoreRevocations {
    store: Arc<dyn Store>,
    clock: Arc<dyn agentiam_token::Clock>,
}

impl StoreRevocations {
    /// Revocations in `store`, current as of `clock`.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn agentiam_token::Clock>) -> Self {
        Self { store, clock }
    }

    fn has(&self, what: &Revocation) -> Result<bool, TokenError> {
        self.store
            .is_revoked(what, self.clock.now())
            .map_err(|e| TokenError::RevocationUnavailable(e.to_string()))
    }
}

impl RevocationSet for StoreRevocations {
    fn revoke(&self, what: Revocation, until: i64) -> Result<(), TokenError> {
        self.store
            .revoke(&what, until)
            .map_err(|e| TokenError::RevocationUnavailable(e.to_string()))
    }

    fn prune(&self, now: i64) -> Result<(), TokenError> {
        self.store
            .prune(now)
            .map_err(|e| TokenError::RevocationUnavailable(e.to_string()))
    }

    fn contains(&self, what: &Revocation) -> Result<bool, TokenError> {
        self.has(what)
    }
}

/// Runs a blocking store call so that it does not hold a tokio worker: on a multi-threaded
/// runtime the worker's other tasks move to another thread while `f` blocks
/// (`block_in_place`); anywhere else `f` just runs.
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}
