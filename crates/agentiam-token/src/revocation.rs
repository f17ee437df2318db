//! Revocation: by token (`jti`), by agent (`sub`) and by task (`task.id`).

use std::collections::HashMap;
use std::sync::RwLock;

use crate::{Claims, TokenError};

/// What to revoke.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Revocation {
    /// One token, by `jti`.
    Token(String),
    /// Every token issued to an agent, by SPIFFE ID (`sub`).
    Agent(String),
    /// Every token issued for a task, by `task.id`.
    Task(String),
}

/// A store of revocations that verifiers consult on every token.
///
/// Implementations backed by a database return `Err` when it cannot be reached,
/// and the verifier then refuses the token (`token.revocation_unavailable`): fail closed.
pub trait RevocationSet: Send + Sync + std::fmt::Debug {
    /// Records a revocation that lasts until `until` (seconds since the epoch);
    /// after that every token it could match has expired and it may be forgotten.
    fn revoke(&self, what: Revocation, until: i64) -> Result<(), TokenError>;

    /// Why these claims are revoked, if they are. A reason starting with `ancestor` means an
    /// ancestor in the delegation chain was revoked (`delegation.revoked_ancestor`).
    /// The default asks [`RevocationSet::contains`] for each entry the claims could match.
    fn check(&self, claims: &Claims) -> Result<Option<String>, TokenError> {
        revocation_reason(claims, |what| self.contains(what))
    }

    /// Forgets revocations that ended before `now`.
    fn prune(&self, now: i64) -> Result<(), TokenError>;

    /// Whether this exact entry is revoked (for records that are not token claims, such as
    /// offline delegation links).
    fn contains(&self, what: &Revocation) -> Result<bool, TokenError>;

    /// Whether the set surely holds nothing, so a caller may skip looking entries up; `false`
    /// when it cannot tell cheaply (the default).
    fn is_empty(&self) -> bool {
        false
    }
}

/// Why `claims` are revoked according to `has`: by token, agent (`sub`), task, or an ancestor
/// token or agent in the delegation chain (revoking one revokes every descendant).
pub fn revocation_reason(
    claims: &Claims,
    mut has: impl FnMut(&Revocation) -> Result<bool, TokenError>,
) -> Result<Option<String>, TokenError> {
    if let Some(jti) = &claims.jti
        && has(&Revocation::Token(jti.clone()))?
    {
        return Ok(Some("token".into()));
    }
    if has(&Revocation::Agent(claims.sub.clone()))? {
        return Ok(Some("agent".into()));
    }
    if let Some(task) = &claims.task
        && has(&Revocation::Task(task.id.clone()))?
    {
        return Ok(Some("task".into()));
    }
    for hop in &claims.dlg {
        if let Some(jti) = &hop.jti
            && has(&Revocation::Token(jti.clone()))?
        {
            return Ok(Some("ancestor token".into()));
        }
        if has(&Revocation::Agent(hop.sub.clone()))? {
            return Ok(Some("ancestor agent".into()));
        }
    }
    Ok(None)
}

/// An in-process revocation set.
#[derive(Debug, Default)]
pub struct InMemoryRevocationSet {
    entries: RwLock<HashMap<Revocation, i64>>,
}

impl InMemoryRevocationSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    fn unavailable() -> TokenError {
        TokenError::RevocationUnavailable("revocation set lock poisoned".into())
    }
}

impl RevocationSet for InMemoryRevocationSet {
    fn revoke(&self, what: Revocation, until: i64) -> Result<(), TokenError> {
        let mut entries = self.entries.write().map_err(|_| Self::unavailable())?;
        let slot = entries.entry(what).or_insert(until);
        *slot = (*slot).max(until);
        Ok(())
    }

    fn is_empty(&self) -> bool {
        self.entries.read().is_ok_and(|e| e.is_empty())
    }

    fn check(&self, claims: &Claims) -> Result<Option<String>, TokenError> {
        let entries = self.entries.read().map_err(|_| Self::unavailable())?;
        if entries.is_empty() {
            return Ok(None);
        }
        revocation_reason(claims, |what| Ok(entries.contains_key(what)))
    }

    fn prune(&self, now: i64) -> Result<(), TokenError> {
        let mut entries = self.entries.write().map_err(|_| Self::unavailable())?;
        entries.retain(|_, until| *until >= now);
        Ok(())
    }

    fn contains(&self, what: &Revocation) -> Result<bool, TokenError> {
        Ok(self
            .entries
            .read()
            .map_err(|_| Self::unavailable())?
            .contains_key(what))
    }
}
