//! A cache of verified tokens, so a service that sees the same token on every call
//! pays for signature verification once.
//!
//! A hit still re-checks expiry against the clock, the revocation set and that the key that
//! verified it is still trusted, so caching never extends a token's life, hides a revocation
//! or outlives a key removed from the JWKS.
//!
//! Entries are found by the token's signature (short to hash) and then compared with the
//! whole presented token, so a hit is only ever the token that was verified, byte for byte.
//! The cache is `quick_cache` (S3-FIFO, sharded): unlike moka it does no bookkeeping on
//! reads, which keeps the p99 of a hit under a microsecond.

use crate::{Token, TokenError, Verifier};

/// A [`Verifier`] with a bounded cache of tokens it has verified.
#[derive(Debug, Clone)]
pub struct CachingVerifier {
    verifier: Verifier,
    cache: std::sync::Arc<quick_cache::sync::Cache<Box<str>, Token>>,
}

fn signature_part(token: &str) -> Option<&str> {
    token
        .rsplit_once('.')
        .map(|(_, sig)| sig)
        .filter(|s| !s.is_empty())
}

impl CachingVerifier {
    /// Caches up to `capacity` verified tokens.
    pub fn new(verifier: Verifier, capacity: usize) -> Self {
        Self {
            verifier,
            cache: std::sync::Arc::new(quick_cache::sync::Cache::new(capacity.max(1))),
        }
    }

    /// Verifies a token, from the cache when possible.
    ///
    /// Sender-constrained tokens are never cached (they need a proof per request, and
    /// [`Verifier::verify`] refuses them anyway).
    pub fn verify(&self, token: &str) -> Result<Token, TokenError> {
        let Some(sig) = signature_part(token) else {
            return self.verifier.verify(token);
        };
        if let Some(hit) = self.cache.get(sig)
            && hit.as_str() == token
        {
            if let Err(e) = self.verifier.recheck(&hit) {
                self.cache.remove(sig);
                return Err(e);
            }
            return Ok(hit);
        }
        let verified = self.verifier.verify(token)?;
        self.cache.insert(Box::from(sig), verified.clone());
        Ok(verified)
    }

    /// The underlying verifier.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }
}
