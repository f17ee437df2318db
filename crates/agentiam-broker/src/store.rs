//! The broker's store: registered agents and revocations. SQLite is the embedded default
//! ([`crate::SqliteStore`]); the trait is what a PostgreSQL store for several broker replicas
//! implements next.

use std::sync::Arc;

use agentiam_token::{Revocation, RevocationSet, TokenError};
use serde::{Deserialize, Serialize};

use crate::BrokerError;

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
}

/// Where the broker keeps what must outlive a process and be shared between replicas.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Registers an agent, replacing an earlier registration of the same SPIFFE ID.
    fn put_agent(&self, agent: &AgentRecord) -> Result<(), BrokerError>;
    /// The registration of an agent.
    fn agent(&self, spiffe_id: &str) -> Result<Option<AgentRecord>, BrokerError>;
    /// Every registration, by SPIFFE ID.
    fn agents(&self) -> Result<Vec<AgentRecord>, BrokerError>;
    /// Records a revocation that lasts until `until` (seconds since the epoch).
    fn revoke(&self, what: &Revocation, until: i64) -> Result<(), BrokerError>;
    /// Whether this entry is revoked (and not yet expired at `now`).
    fn is_revoked(&self, what: &Revocation, now: i64) -> Result<bool, BrokerError>;
    /// Forgets revocations that ended before `now`.
    fn prune(&self, now: i64) -> Result<(), BrokerError>;
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
