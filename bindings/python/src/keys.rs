//! Key sets with rotation, and offline attenuation of a token by its holder.

use std::sync::Mutex;

use agentiam_identity::{KeySet, SigningKey};
use pyo3::prelude::*;

use crate::OrRaise as _;
use crate::{PySigningKey, error};

/// A copy of a signing key (keys are not `Clone`, so this goes through the private JWK).
pub(crate) fn copy_key(py: Python<'_>, key: &SigningKey) -> PyResult<SigningKey> {
    let jwk = key.to_private_jwk().or_raise(py)?;
    SigningKey::from_private_jwk(&jwk).or_raise(py)
}

/// An issuer's signing keys: one active key, and retired keys that keep verifying until the
/// last token they signed has expired. Times are seconds since the Unix epoch.
#[pyclass(frozen, name = "KeySet", module = "agentiam._native")]
pub(crate) struct PyKeySet(Mutex<KeySet>);

impl PyKeySet {
    fn with<T>(&self, py: Python<'_>, f: impl FnOnce(&mut KeySet) -> T) -> PyResult<T> {
        let mut keys = self.0.lock().map_err(|_| {
            error(
                py,
                agentiam_identity::codes::KEY_INVALID,
                "key set lock poisoned",
            )
        })?;
        Ok(f(&mut keys))
    }
}

#[pymethods]
impl PyKeySet {
    /// A key set whose active key is `active`.
    #[new]
    fn new(py: Python<'_>, active: &PySigningKey) -> PyResult<Self> {
        Ok(Self(Mutex::new(KeySet::new(copy_key(py, &active.0)?))))
    }

    /// The `kid` of the key that signs new tokens.
    fn active_kid(&self, py: Python<'_>) -> PyResult<String> {
        self.with(py, |k| k.active().kid().to_owned())
    }

    /// Makes `next` the active key; the old one keeps verifying until `now + max_token_lifetime`.
    fn rotate(
        &self,
        py: Python<'_>,
        next: &PySigningKey,
        now: i64,
        max_token_lifetime: i64,
    ) -> PyResult<()> {
        let next = copy_key(py, &next.0)?;
        self.with(py, |k| k.rotate(next, now, max_token_lifetime))
    }

    /// Drops retired keys whose tokens have all expired at `now`.
    fn prune(&self, py: Python<'_>, now: i64) -> PyResult<()> {
        self.with(py, |k| k.prune(now))
    }

    /// The public keys (JWKS JSON) that verify at `now`.
    fn jwks(&self, py: Python<'_>, now: i64) -> PyResult<String> {
        self.with(py, |k| k.jwks(now).to_json())
    }
}

/// Offline attenuation: the holder of `parent` (a DPoP-bound token, or the previous link) signs
/// a link with `holder_key` handing at most `scopes` for `ttl` seconds (and `calls` calls) to the
/// key whose RFC 7638 thumbprint is `next_jkt`; the link gets a fresh `jti` (revocable) unless given. Never wider than `parent`: asking for more raises
/// `DelegationError` (`delegation.scope_widened`, `delegation.expiry_extended`, ...).
/// `intent=True` declares the link's scopes the task's intent (once per chain); a parent's
/// intent is carried either way.
#[pyfunction]
#[pyo3(signature = (holder_key, parent, next_jkt, scopes, ttl, calls = None, sub = None, jti = None, now = None, intent = false))]
#[allow(
    clippy::too_many_arguments,
    reason = "mirrors the Python keyword arguments"
)]
pub(crate) fn attenuate(
    py: Python<'_>,
    holder_key: &PySigningKey,
    parent: &str,
    next_jkt: &str,
    scopes: &str,
    ttl: i64,
    calls: Option<u64>,
    sub: Option<String>,
    jti: Option<String>,
    now: Option<i64>,
    intent: bool,
) -> PyResult<String> {
    use agentiam_token::{Clock as _, Entropy as _};
    let now = now.unwrap_or_else(|| agentiam_token::SystemClock.now());
    let jti = match jti {
        Some(j) => j,
        None => {
            let mut id = [0u8; 16];
            agentiam_token::SystemEntropy.fill(&mut id).or_raise(py)?;
            id.iter().map(|b| format!("{b:02x}")).collect()
        }
    };
    let scope = agentiam_token::ScopeSet::parse(scopes).or_raise(py)?;
    if let Some(s) = &sub {
        agentiam_identity::parse_spiffe_id(s).or_raise(py)?;
    }
    if ttl <= 0 {
        return Err(error(
            py,
            agentiam_token::codes::EXPIRY_EXTENDED,
            "ttl must be a positive number of seconds",
        ));
    }
    let claims = agentiam_delegation::LinkClaims {
        prv: String::new(),
        jkt: next_jkt.to_owned(),
        scope,
        exp: now.saturating_add(ttl),
        iat: now,
        budget: calls.map(|c| agentiam_token::Budget { calls: Some(c) }),
        sub,
        intent: intent.then(|| agentiam_token::IntentClaim { id: jti.clone() }),
        jti: Some(jti),
    };
    py.detach(|| agentiam_delegation::attenuate(&holder_key.0, parent.trim(), &claims))
        .or_raise(py)
}
