//! A cache of verified tokens, so a service that sees the same token on every call
//! pays for signature verification once.
//!
//! A hit still re-checks expiry against the clock and the revocation set, so caching
//! never extends a token's life or hides a revocation.

use std::sync::Arc;
use std::time::Duration;

use crate::{Token, TokenError, Verifier};

/// A [`Verifier`] with a bounded cache of tokens it has verified.
#[derive(Debug, Clone)]
pub struct CachingVerifier {
    verifier: Verifier,
    cache: moka::sync::Cache<Arc<str>, Token>,
}

impl CachingVerifier {
    /// Caches up to `capacity` tokens, each for at most `max_age`.
    pub fn new(verifier: Verifier, capacity: u64, max_age: Duration) -> Self {
        Self {
            verifier,
            cache: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(max_age)
                .build(),
        }
    }

    /// Verifies a token, from the cache when possible.
    ///
    /// Sender-constrained tokens are never served from here (they need a proof per request).
    pub fn verify(&self, token: &str) -> Result<Token, TokenError> {
        if let Some(hit) = self.cache.get(token) {
            if let Err(e) = self
                .verifier
                .check_time(hit.claims())
                .and_then(|()| self.verifier.check_revocation(hit.claims()))
            {
                self.cache.invalidate(token);
                return Err(e);
            }
            return Ok(hit);
        }
        let verified = self.verifier.verify(token)?;
        self.cache.insert(Arc::from(token), verified.clone());
        Ok(verified)
    }

    /// The underlying verifier.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }
}
