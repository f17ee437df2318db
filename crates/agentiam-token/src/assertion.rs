//! Client assertions (RFC 7523 section 2.2, `private_key_jwt`): how an agent proves to the
//! broker's token endpoint that it holds the private key registered for its SPIFFE ID.
//!
//! [`UnverifiedClientAssertion::parse`] splits the JWT and reads who it claims to be (`iss`),
//! so the broker can find that agent's registered keys; [`UnverifiedClientAssertion::verify`]
//! checks it against them and is the only way to a [`ClientAssertion`]. The key is chosen by
//! the registration, never by the assertion, and the algorithm is the key's.
//!
//! ```
//! use agentiam_identity::{Algorithm, Jwks, SigningKey};
//! use agentiam_token::*;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let key = SigningKey::generate(Algorithm::EdDSA)?;
//! let registered = Jwks::from_keys([key.public_key().clone()]);
//! let endpoint = "https://broker.example/oauth2/token";
//! let me = "spiffe://acme.example/agent/ap";
//! let jwt = create_client_assertion(&key, me, endpoint, "a-fresh-id", 1_800_000_000, 60)?;
//!
//! let rules = AssertionRules::new([endpoint], 1_800_000_010);
//! let unverified = UnverifiedClientAssertion::parse(&jwt)?;
//! assert_eq!(unverified.client_id(), me);
//! let verified = unverified.verify(&registered, &rules)?;
//! assert_eq!(verified.jti(), "a-fresh-id");
//!
//! let late = AssertionRules::new([endpoint], 1_800_000_100);
//! let err = UnverifiedClientAssertion::parse(&jwt)?.verify(&registered, &late).unwrap_err();
//! assert_eq!(err.code(), "token.expired");
//! # Ok(()) }
//! ```

use agentiam_identity::{Jwks, SigningKey};
use serde::Deserialize;
use serde_json::json;

use crate::TokenError;
use crate::error::clip;
use crate::jws::{CompactJws, check_signature};

/// The `client_assertion_type` for a JWT client assertion (RFC 7523 section 2.2).
pub const CLIENT_ASSERTION_TYPE_JWT: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Longest lifetime (`exp - now`) an assertion may claim, in seconds: 5 minutes.
pub const MAX_ASSERTION_LIFETIME_SECS: i64 = 300;

/// Longest `jti` accepted.
const MAX_JTI_CHARS: usize = 256;

#[derive(Debug, Deserialize)]
struct AssertionClaims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<serde_json::Value>,
    exp: Option<i64>,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
    jti: Option<String>,
    /// What the agent runs (agentiam extension), for token requests whose client cannot add
    /// form parameters (stock machine-to-machine clients): signed with the assertion.
    #[serde(default)]
    agent_attestation: Option<serde_json::Value>,
    /// The task the token is for (agentiam extension, as the form's `task_id`).
    #[serde(default)]
    task_id: Option<String>,
    /// What the task is for (agentiam extension, as the form's `task_purpose`).
    #[serde(default)]
    task_purpose: Option<String>,
}

/// A client assertion split and decoded, nothing checked: only [`Self::client_id`] may be
/// read, to find the keys to verify it with.
#[derive(Debug)]
pub struct UnverifiedClientAssertion {
    jws: CompactJws,
    claims: AssertionClaims,
    client_id: String,
}

/// A verified client assertion: the agent holds a registered key, the assertion is for
/// this endpoint and current. The caller must still refuse a replayed [`Self::jti`]
/// (remember it until [`Self::expires_at`]).
#[derive(Debug, Clone)]
pub struct ClientAssertion {
    client_id: String,
    jti: String,
    exp: i64,
    kid: String,
    agent_attestation: Option<serde_json::Value>,
    task_id: Option<String>,
    task_purpose: Option<String>,
}

/// What a token endpoint accepts in a client assertion.
#[derive(Debug, Clone)]
pub struct AssertionRules {
    audiences: Vec<String>,
    now: i64,
    leeway: i64,
    max_lifetime: i64,
}

impl AssertionRules {
    /// Assertions whose `aud` names one of `audiences` (the token endpoint's URL, or the
    /// issuer), checked at `now`, with 5 s leeway and at most 5 minutes' lifetime.
    pub fn new<S: Into<String>>(audiences: impl IntoIterator<Item = S>, now: i64) -> Self {
        Self {
            audiences: audiences.into_iter().map(Into::into).collect(),
            now,
            leeway: crate::DEFAULT_LEEWAY_SECS,
            max_lifetime: MAX_ASSERTION_LIFETIME_SECS,
        }
    }

    /// Accepts assertions living up to `secs` (from `now` to their `exp`). Stock OAuth clients
    /// sign assertions for an hour (authlib's `PrivateKeyJWT`); a token endpoint that keeps each
    /// assertion's `jti` single-use until its `exp` loses nothing to replay by accepting them.
    pub fn with_max_lifetime(mut self, secs: i64) -> Self {
        self.max_lifetime = secs.max(0);
        self
    }
}

impl UnverifiedClientAssertion {
    /// Splits and decodes the assertion (8 KiB cap, compact JWS only, no `crit`) and reads
    /// `iss`, which must equal `sub` (RFC 7523 section 3 for client authentication).
    pub fn parse(assertion: &str) -> Result<Self, TokenError> {
        let jws = CompactJws::parse(assertion)?;
        let claims: AssertionClaims = serde_json::from_slice(&jws.payload)
            .map_err(|e| TokenError::Malformed(format!("assertion claims: {e}")))?;
        let iss = claims.iss.clone().ok_or(TokenError::MissingClaim("iss"))?;
        let sub = claims
            .sub
            .as_deref()
            .ok_or(TokenError::MissingClaim("sub"))?;
        if iss != sub || iss.is_empty() {
            return Err(TokenError::InvalidClaim(format!(
                "a client assertion's iss ({}) and sub ({}) must both be the client",
                clip(&iss),
                clip(sub)
            )));
        }
        Ok(Self {
            jws,
            claims,
            client_id: iss,
        })
    }

    /// Who the assertion says it is from (untrusted until verified).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Verifies the signature with the registered key named by `kid` (or the only
    /// registered key when there is no `kid`), then `aud`, `exp`, `nbf`/`iat` and `jti`.
    pub fn verify(
        self,
        keys: &Jwks,
        rules: &AssertionRules,
    ) -> Result<ClientAssertion, TokenError> {
        let key = match &self.jws.header.kid {
            Some(kid) => keys
                .find(kid)
                .ok_or_else(|| TokenError::UnknownKey(clip(kid)))?,
            None => match keys.keys() {
                [only] => only,
                _ => {
                    return Err(TokenError::UnknownKey(
                        "(no kid, and the client has no single key)".into(),
                    ));
                }
            },
        };
        if let Some(typ) = &self.jws.header.typ
            && !(typ.eq_ignore_ascii_case("JWT")
                || typ.eq_ignore_ascii_case("client-authentication+jwt"))
        {
            return Err(TokenError::WrongType(clip(typ)));
        }
        check_signature(&self.jws, key)?;
        let c = self.claims;
        let aud_ok = match &c.aud {
            Some(serde_json::Value::String(a)) => rules.audiences.iter().any(|x| x == a),
            Some(serde_json::Value::Array(list)) => list.iter().any(|a| {
                a.as_str()
                    .is_some_and(|a| rules.audiences.iter().any(|x| x == a))
            }),
            Some(_) => {
                return Err(TokenError::InvalidClaim(
                    "aud must be a string or an array".into(),
                ));
            }
            None => return Err(TokenError::MissingClaim("aud")),
        };
        if !aud_ok {
            return Err(TokenError::WrongAudience(
                rules.audiences.first().cloned().unwrap_or_default(),
            ));
        }
        let exp = c.exp.ok_or(TokenError::MissingClaim("exp"))?;
        if exp < rules.now.saturating_sub(rules.leeway) {
            return Err(TokenError::Expired {
                exp,
                now: rules.now,
            });
        }
        if exp > rules.now.saturating_add(rules.max_lifetime) {
            return Err(TokenError::LifetimeTooLong {
                requested: exp.saturating_sub(rules.now),
                max: rules.max_lifetime,
            });
        }
        for t in [c.nbf, c.iat].into_iter().flatten() {
            if t > rules.now.saturating_add(rules.leeway) {
                return Err(TokenError::NotYetValid(t));
            }
        }
        let jti = c
            .jti
            .filter(|j| !j.is_empty() && j.chars().count() <= MAX_JTI_CHARS)
            .ok_or(TokenError::MissingClaim("jti"))?;
        Ok(ClientAssertion {
            client_id: self.client_id,
            jti,
            exp,
            kid: key.kid().to_owned(),
            agent_attestation: c.agent_attestation,
            task_id: c.task_id,
            task_purpose: c.task_purpose,
        })
    }
}

impl ClientAssertion {
    /// The authenticated client (the agent's SPIFFE ID).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }
    /// The assertion's unique ID, to be refused when seen again.
    pub fn jti(&self) -> &str {
        &self.jti
    }
    /// Until when the `jti` must be remembered.
    pub fn expires_at(&self) -> i64 {
        self.exp
    }
    /// The registered key that signed it.
    pub fn kid(&self) -> &str {
        &self.kid
    }
    /// The `agent_attestation` claim (agentiam extension): the evidence of what the agent
    /// runs, for clients that cannot add it to the token request's form.
    pub fn agent_attestation(&self) -> Option<&serde_json::Value> {
        self.agent_attestation.as_ref()
    }
    /// The `task_id` claim (agentiam extension).
    pub fn task_id(&self) -> Option<&str> {
        self.task_id.as_deref()
    }
    /// The `task_purpose` claim (agentiam extension).
    pub fn task_purpose(&self) -> Option<&str> {
        self.task_purpose.as_deref()
    }
}

/// Creates a client assertion for `client_id` (as `iss` and `sub`) addressed to `audience`
/// (the token endpoint), issued at `now`, valid for `lifetime` seconds, with `jti`.
pub fn create_client_assertion(
    key: &SigningKey,
    client_id: &str,
    audience: &str,
    jti: &str,
    now: i64,
    lifetime: i64,
) -> Result<String, TokenError> {
    let claims = json!({
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": now,
        "exp": now.saturating_add(lifetime),
        "jti": jti,
    });
    let mut header = serde_json::Map::new();
    header.insert("typ".into(), "JWT".into());
    crate::sign_compact(key, &header, claims.to_string().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentiam_identity::Algorithm;

    const EP: &str = "https://broker.example/oauth2/token";
    const ME: &str = "spiffe://acme.example/agent/ap";

    fn key() -> SigningKey {
        SigningKey::generate(Algorithm::EdDSA).unwrap()
    }

    fn signed(key: &SigningKey, claims: serde_json::Value) -> String {
        crate::sign_compact(key, &serde_json::Map::new(), claims.to_string().as_bytes()).unwrap()
    }

    fn check(jwt: &str, keys: &Jwks, now: i64) -> Result<ClientAssertion, TokenError> {
        UnverifiedClientAssertion::parse(jwt)?.verify(keys, &AssertionRules::new([EP], now))
    }

    #[test]
    fn every_rule_has_its_code() {
        let k = key();
        let keys = Jwks::from_keys([k.public_key().clone()]);
        let ok = |extra: serde_json::Value| {
            let mut c =
                json!({"iss": ME, "sub": ME, "aud": EP, "exp": 1_060, "iat": 1_000, "jti": "j"});
            if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
                for (name, v) in e {
                    if v.is_null() {
                        c.remove(name);
                    } else {
                        c.insert(name.clone(), v.clone());
                    }
                }
            }
            signed(&k, c)
        };
        assert!(check(&ok(json!({})), &keys, 1_000).is_ok());
        assert!(check(&ok(json!({"aud": ["x", EP]})), &keys, 1_000).is_ok());
        let cases = [
            (
                json!({"sub": "spiffe://acme.example/agent/other"}),
                "token.invalid_claim",
            ),
            (json!({"iss": null}), "token.missing_claim"),
            (
                json!({"aud": "https://elsewhere.example/token"}),
                "token.wrong_audience",
            ),
            (json!({"aud": 7}), "token.invalid_claim"),
            (json!({"aud": null}), "token.missing_claim"),
            (json!({"exp": null}), "token.missing_claim"),
            (json!({"exp": 900}), "token.expired"),
            (json!({"exp": 5_000}), "token.lifetime_too_long"),
            (json!({"iat": 2_000}), "token.not_yet_valid"),
            (json!({"jti": null}), "token.missing_claim"),
            (json!({"jti": ""}), "token.missing_claim"),
        ];
        for (change, code) in cases {
            let err = check(&ok(change.clone()), &keys, 1_000).unwrap_err();
            assert_eq!(err.code(), code, "{change}");
        }
    }

    #[test]
    fn only_registered_keys_verify() {
        let (mine, other) = (key(), key());
        let jwt = create_client_assertion(&other, ME, EP, "j", 1_000, 60).unwrap();
        let keys = Jwks::from_keys([mine.public_key().clone()]);
        assert_eq!(
            check(&jwt, &keys, 1_000).unwrap_err().code(),
            "token.unknown_key"
        );
        // Signed by another key under the registered key's kid.
        let mut header = serde_json::Map::new();
        header.insert("kid".into(), mine.kid().into());
        let forged = crate::sign_compact(
            &other,
            &header,
            json!({"iss": ME, "sub": ME, "aud": EP, "exp": 1_060, "jti": "j"})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(
            check(&forged, &keys, 1_000).unwrap_err().code(),
            "token.bad_signature"
        );
        let es = SigningKey::generate(Algorithm::ES256).unwrap();
        let both = Jwks::from_keys([mine.public_key().clone(), es.public_key().clone()]);
        let mut no_kid = crate::sign_compact(
            &mine,
            &serde_json::Map::new(),
            json!({"iss": ME, "sub": ME, "aud": EP, "exp": 1_060, "jti": "j"})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        assert!(
            check(&no_kid, &both, 1_000).is_ok(),
            "sign_compact always sets kid"
        );
        // Strip the kid: two registered keys, none named.
        let parts: Vec<&str> = no_kid.split('.').collect();
        let header = crate::jws::b64url(br#"{"alg":"EdDSA"}"#);
        no_kid = format!("{header}.{}.{}", parts[1], parts[2]);
        assert_eq!(
            check(&no_kid, &both, 1_000).unwrap_err().code(),
            "token.unknown_key"
        );
        assert_eq!(
            check(
                &no_kid,
                &Jwks::from_keys([mine.public_key().clone()]),
                1_000
            )
            .unwrap_err()
            .code(),
            "token.bad_signature",
            "the signature covered the header with its kid"
        );
        assert_eq!(
            check("not.a.jwt", &keys, 1_000).unwrap_err().code(),
            "token.malformed"
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// A client assertion changed in any byte never authenticates.
        #[test]
        fn a_tampered_assertion_never_verifies(at in any::<prop::sample::Index>(), with in any::<u8>()) {
            let key = SigningKey::ed25519_from_seed(&[5u8; 32]).unwrap();
            let keys = Jwks::from_keys([key.public_key().clone()]);
            let ep = "https://broker.example/oauth2/token";
            let jwt = create_client_assertion(&key, "spiffe://a.example/agent/x", ep, "j", 1_000, 60).unwrap();
            let mut bytes = jwt.into_bytes();
            let i = at.index(bytes.len());
            prop_assume!(bytes[i] != with);
            bytes[i] = with;
            let Ok(text) = String::from_utf8(bytes) else { return Ok(()) };
            let verified = UnverifiedClientAssertion::parse(&text)
                .and_then(|a| a.verify(&keys, &AssertionRules::new([ep], 1_000)));
            prop_assert!(verified.is_err(), "a changed assertion verified: {text}");
        }
    }
}
