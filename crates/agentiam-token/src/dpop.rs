//! DPoP (RFC 9449): proof-of-possession for sender-constrained tokens.
//!
//! A DPoP proof is a JWT signed by the client's key, with that public key in the header,
//! naming the HTTP method (`htm`) and URL (`htu`) of one request, a fresh `jti`, the time
//! (`iat`) and, with an access token, its hash (`ath`). A token bound with `cnf.jkt` is only
//! accepted together with a proof from the key with that thumbprint.

use std::sync::Arc;

use agentiam_identity::{Algorithm, PublicKey};
use serde::Deserialize;

use crate::error::clip;
use crate::jws::{CompactJws, b64url, check_signature};
use crate::{Clock, SystemClock, TokenError};

/// Compares two public strings (thumbprints, hashes) without an early exit.
pub(crate) fn ct_eq(a: &str, b: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

/// The request a proof must name.
#[derive(Debug, Clone, Copy)]
pub struct DpopRequest<'a> {
    /// HTTP method, e.g. `POST`.
    pub method: &'a str,
    /// The request URL; query and fragment are ignored, as RFC 9449 says.
    pub url: &'a str,
}

/// Creates a DPoP proof for one request: what a client sends beside a DPoP-bound token
/// (`access_token`, hashed into `ath`) or beside a delegation chain (its last link).
/// `jti` must be unique per proof; `iat` is the client's clock.
///
/// ```
/// use agentiam_identity::{Algorithm, SigningKey};
/// use agentiam_token::{DpopRequest, DpopVerifier, FixedClock, create_dpop_proof};
/// let key = SigningKey::generate(Algorithm::ES256).unwrap();
/// let request = DpopRequest { method: "GET", url: "https://api.example/items" };
/// let proof = create_dpop_proof(&key, &request, 1_000, "proof-1", Some("the.access.token")).unwrap();
/// let verifier = DpopVerifier::new(std::sync::Arc::new(FixedClock::new(1_000)));
/// assert_eq!(verifier.verify(&proof, &request, Some("the.access.token")).unwrap().jkt(), key.public_key().thumbprint());
/// ```
pub fn create_dpop_proof(
    key: &agentiam_identity::SigningKey,
    request: &DpopRequest<'_>,
    iat: i64,
    jti: &str,
    access_token: Option<&str>,
) -> Result<String, TokenError> {
    let mut header = serde_json::Map::new();
    header.insert("typ".into(), "dpop+jwt".into());
    header.insert(
        "jwk".into(),
        serde_json::to_value(key.public_key().to_jwk())
            .map_err(|e| TokenError::Signing(e.to_string()))?,
    );
    let mut claims = serde_json::Map::new();
    claims.insert("jti".into(), jti.into());
    claims.insert("htm".into(), request.method.into());
    claims.insert("htu".into(), request.url.into());
    claims.insert("iat".into(), iat.into());
    if let Some(token) = access_token {
        let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        claims.insert("ath".into(), b64url(hash.as_ref()).into());
    }
    let claims = serde_json::Value::Object(claims);
    crate::sign_compact(key, &header, claims.to_string().as_bytes())
}

/// A verified proof.
#[derive(Debug, Clone)]
pub struct DpopProof {
    jkt: String,
    jti: String,
}

impl DpopProof {
    /// RFC 7638 thumbprint of the proof key (compare with `cnf.jkt`).
    pub fn jkt(&self) -> &str {
        &self.jkt
    }
    /// The proof's unique ID.
    pub fn jti(&self) -> &str {
        &self.jti
    }
}

#[derive(Deserialize)]
struct ProofClaims {
    jti: Option<String>,
    htm: Option<String>,
    htu: Option<String>,
    iat: Option<i64>,
    #[serde(default)]
    ath: Option<String>,
}

/// Verifies DPoP proofs and remembers their `jti`s so each proof is used once.
///
/// The used `jti`s live in an [`agentiam_state::SharedState`]: by default one in this process
/// (which refuses proofs rather than forget used ones when a million are live), and with
/// [`DpopVerifier::with_replay_state`] the state every worker and replica of the service shares,
/// so a proof replayed to another worker is refused too.
#[derive(Debug, Clone)]
pub struct DpopVerifier {
    clock: Arc<dyn Clock>,
    max_age: i64,
    leeway: i64,
    seen: Arc<dyn agentiam_state::SharedState>,
}

impl Default for DpopVerifier {
    fn default() -> Self {
        Self::new(Arc::new(SystemClock))
    }
}

fn invalid(why: impl Into<String>) -> TokenError {
    TokenError::PopInvalid(why.into())
}

/// `scheme://host[:port]/path` with the scheme and host lowercased, default ports dropped
/// and query and fragment removed (RFC 9449 section 4.3, RFC 3986 section 6.2).
fn normalize_htu(url: &str) -> Option<String> {
    let mut parsed = url::Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "https" | "http") || parsed.host().is_none() {
        return None;
    }
    parsed.set_query(None);
    parsed.set_fragment(None);
    Some(parsed.to_string())
}

impl DpopVerifier {
    /// Proofs older than 60 s (or more than 5 s in the future) are refused; seen `jti`s are kept that long.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self::with_window(clock, 60, 5)
    }

    /// A verifier with another acceptance window.
    pub fn with_window(clock: Arc<dyn Clock>, max_age: i64, leeway: i64) -> Self {
        Self {
            clock,
            max_age,
            leeway,
            seen: Arc::new(agentiam_state::InProcessState::new(1_000_000)),
        }
    }

    /// Keeps used proof `jti`s in `state`, shared by every worker and replica that uses it.
    pub fn with_replay_state(mut self, state: Arc<dyn agentiam_state::SharedState>) -> Self {
        self.seen = state;
        self
    }

    /// Verifies a proof for `request`; with `access_token`, also its `ath`.
    pub fn verify(
        &self,
        proof: &str,
        request: &DpopRequest<'_>,
        access_token: Option<&str>,
    ) -> Result<DpopProof, TokenError> {
        let jws = CompactJws::parse(proof).map_err(|e| invalid(format!("proof: {e}")))?;
        if !jws
            .header
            .typ
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("dpop+jwt"))
        {
            return Err(invalid("typ must be dpop+jwt"));
        }
        if Algorithm::from_jws_name(&jws.header.alg).is_none() {
            return Err(TokenError::AlgNotAllowed(clip(&jws.header.alg)));
        }
        let jwk = jws
            .header
            .jwk
            .as_ref()
            .ok_or_else(|| invalid("header has no jwk"))?;
        let mut jwk = jwk.clone();
        // The thumbprint is computed over the key itself; a kid in the JWK means nothing here.
        jwk.kid = None;
        let key = PublicKey::from_jwk(&jwk).map_err(|e| invalid(format!("proof key: {e}")))?;
        check_signature(&jws, &key).map_err(|e| match e {
            TokenError::BadSignature => invalid("proof signature does not verify"),
            other => other,
        })?;
        let claims: ProofClaims = serde_json::from_slice(&jws.payload)
            .map_err(|e| invalid(format!("proof claims: {e}")))?;
        let jti = claims
            .jti
            .filter(|j| !j.is_empty() && j.len() <= 256)
            .ok_or_else(|| invalid("jti missing"))?;
        let htm = claims.htm.ok_or_else(|| invalid("htm missing"))?;
        if htm != request.method {
            return Err(invalid(format!(
                "htm {} is not {}",
                clip(&htm),
                clip(request.method)
            )));
        }
        let htu = claims.htu.ok_or_else(|| invalid("htu missing"))?;
        match (normalize_htu(&htu), normalize_htu(request.url)) {
            (Some(a), Some(b)) if a == b => {}
            _ => {
                return Err(invalid(format!(
                    "htu {} does not name this request",
                    clip(&htu)
                )));
            }
        }
        let iat = claims.iat.ok_or_else(|| invalid("iat missing"))?;
        let now = self.clock.now();
        if iat > now.saturating_add(self.leeway) || iat < now.saturating_sub(self.max_age) {
            return Err(invalid(format!(
                "iat {iat} outside the accepted window around {now}"
            )));
        }
        if let Some(token) = access_token {
            let expected = b64url(
                aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes()).as_ref(),
            );
            let ath = claims.ath.ok_or_else(|| invalid("ath missing"))?;
            if !ct_eq(&ath, &expected) {
                return Err(invalid("ath is not the hash of this access token"));
            }
        }
        let jkt = key.thumbprint();
        // Kept until no clock in the window could accept the proof again.
        let keep_until = iat
            .saturating_add(self.max_age)
            .max(now)
            .saturating_add(self.leeway);
        match self
            .seen
            .use_once(&format!("dpop:{jkt}:{jti}"), keep_until, now)
        {
            Ok(true) => {}
            Ok(false) => return Err(invalid("proof jti already used (replay)")),
            Err(e) => return Err(invalid(format!("replay check unavailable: {e}"))),
        }
        Ok(DpopProof { jkt, jti })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FixedClock;
    use agentiam_identity::SigningKey;
    use serde_json::json;

    fn proof(key: &SigningKey, claims: serde_json::Value) -> String {
        let mut header = serde_json::Map::new();
        header.insert("typ".into(), "dpop+jwt".into());
        header.insert(
            "jwk".into(),
            serde_json::to_value(key.public_key().to_jwk()).unwrap(),
        );
        crate::sign_compact(key, &header, claims.to_string().as_bytes()).unwrap()
    }

    fn ath(token: &str) -> String {
        b64url(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes()).as_ref())
    }

    #[test]
    fn valid_proof_once_then_replay_refused() {
        let clock = Arc::new(FixedClock::new(1_000));
        let v = DpopVerifier::new(clock);
        let key = SigningKey::generate(Algorithm::ES256).unwrap();
        let p = proof(
            &key,
            json!({"jti": "p1", "htm": "POST", "htu": "https://API.example:443/pay?x=1", "iat": 1_000, "ath": ath("tok")}),
        );
        let req = DpopRequest {
            method: "POST",
            url: "https://api.example/pay",
        };
        let ok = v.verify(&p, &req, Some("tok")).unwrap();
        assert_eq!(ok.jkt(), key.public_key().thumbprint());
        assert_eq!(
            v.verify(&p, &req, Some("tok")).unwrap_err().code(),
            "token.pop_invalid"
        );
    }

    #[test]
    fn small_order_proof_key_cannot_forge_a_proof() {
        // With the identity point as the key, R = identity and S = 0 satisfy the verification
        // equation for any message on aws-lc-rs; the proof key must be refused instead.
        let v = DpopVerifier::new(Arc::new(FixedClock::new(1_000)));
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let header = json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": {"kty": "OKP", "crv": "Ed25519", "x": b64url(&identity)}});
        let claims =
            json!({"jti": "z", "htm": "GET", "htu": "https://api.example/a", "iat": 1_000});
        let mut sig = [0u8; 64];
        sig[0] = 1;
        let proof = format!(
            "{}.{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes()),
            b64url(&sig)
        );
        let req = DpopRequest {
            method: "GET",
            url: "https://api.example/a",
        };
        assert_eq!(
            v.verify(&proof, &req, None).unwrap_err().code(),
            "token.pop_invalid"
        );
    }

    #[test]
    fn wrong_method_url_time_ath_and_typ_are_refused() {
        let clock = Arc::new(FixedClock::new(1_000));
        let v = DpopVerifier::new(clock);
        let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
        let req = DpopRequest {
            method: "POST",
            url: "https://api.example/pay",
        };
        let cases = [
            json!({"jti": "a", "htm": "GET", "htu": "https://api.example/pay", "iat": 1_000, "ath": ath("tok")}),
            json!({"jti": "b", "htm": "POST", "htu": "https://api.example/other", "iat": 1_000, "ath": ath("tok")}),
            json!({"jti": "c", "htm": "POST", "htu": "https://api.example/pay", "iat": 900, "ath": ath("tok")}),
            json!({"jti": "d", "htm": "POST", "htu": "https://api.example/pay", "iat": 1_010, "ath": ath("tok")}),
            json!({"jti": "e", "htm": "POST", "htu": "https://api.example/pay", "iat": 1_000, "ath": ath("other")}),
            json!({"jti": "f", "htm": "POST", "htu": "https://api.example/pay", "iat": 1_000}),
            json!({"htm": "POST", "htu": "https://api.example/pay", "iat": 1_000, "ath": ath("tok")}),
        ];
        for c in cases {
            assert_eq!(
                v.verify(&proof(&key, c.clone()), &req, Some("tok"))
                    .unwrap_err()
                    .code(),
                "token.pop_invalid",
                "{c}"
            );
        }
        // An access token used as a proof: wrong typ.
        let header = serde_json::Map::new();
        let not_proof = crate::sign_compact(
            &key,
            &header,
            json!({"jti": "g", "htm": "POST", "htu": "https://api.example/pay", "iat": 1_000})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(
            v.verify(&not_proof, &req, None).unwrap_err().code(),
            "token.pop_invalid"
        );
    }
}
