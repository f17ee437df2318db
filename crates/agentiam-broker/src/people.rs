//! Agents acting for people: an attested agent exchanges (RFC 8693) a person's token from a
//! trusted OpenID provider for a task token whose `sub` is the person, `act` the agent, and
//! `person` names the provider.
//!
//! The broker trusts only the providers it is configured with (`identity_providers`): each by
//! its exact issuer, its keys from its discovery document (or a configured `jwks_uri`), fetched
//! over HTTPS (plain HTTP only on loopback) and fetched again when a token names a key it does
//! not have (at most every 30 s). A token is verified with the algorithm its key pins (RSA:
//! RS256, P-256: ES256, Ed25519: EdDSA), its `aud` must be one the provider's entry accepts,
//! `exp` and `nbf` hold with 5 s leeway, and it needs a `sub` that cannot pass for an agent's
//! SPIFFE ID. When the token carries `may_act` (draft-oauth-ai-agents-on-behalf-of-user), its
//! `sub` must be the agent; a provider entry may require it.
//!
//! What the person may have an agent do is configured, never taken from the token: `grants`
//! map a claim value (a group, an e-mail, a subject; `*` for any) to scopes, and the token
//! issued is within both the person's grants and the agent's registration.

use std::sync::Arc;
use std::time::Duration;

use agentiam_token::{PersonClaim, ScopeSet};
use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

use crate::BrokerError;
use crate::oauth_error::OAuthError;

/// RFC 8693's token type of an OpenID Connect ID token.
pub const TOKEN_TYPE_ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
/// Largest person token read.
const MAX_PERSON_TOKEN_BYTES: usize = 16 * 1024;
/// Largest discovery document or JWKS read.
const MAX_KEYS_BYTES: usize = 256 * 1024;
/// A provider's keys are fetched again for an unknown `kid` at most this often.
const REFRESH_SECS: i64 = 30;
const LEEWAY_SECS: u64 = 5;

/// A trusted OpenID provider, as configured.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityProviderConfig {
    /// Its issuer, exactly as its tokens name it.
    pub issuer: String,
    /// Where its keys are; default: the `jwks_uri` of `{issuer}/.well-known/openid-configuration`.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// The `aud` values its tokens may carry to be accepted here (the client ID the broker, or
    /// the application that signs people in, has at the provider). At least one.
    pub audiences: Vec<String>,
    /// What people may have agents do, by claim value.
    #[serde(default)]
    pub grants: Vec<PersonGrant>,
    /// Refuse tokens without `may_act` naming the agent.
    #[serde(default)]
    pub require_may_act: bool,
}

/// Scopes granted to people whose token's `claim` holds `value` (a string equal to it, or an
/// array containing it; `*` matches any value present).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonGrant {
    /// The claim (`groups`, `email`, `sub`, ...).
    pub claim: String,
    /// The value it must hold.
    pub value: String,
    /// What such a person may have agents do (scope grammar).
    pub scopes: String,
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

struct Provider {
    config: IdentityProviderConfig,
    grants: Vec<(PersonGrant, ScopeSet)>,
    keys: tokio::sync::Mutex<Option<(JwkSet, i64)>>,
}

/// The trusted OpenID providers.
pub(crate) struct IdentityProviders {
    providers: Vec<Arc<Provider>>,
    client: HttpsClient,
}

impl std::fmt::Debug for IdentityProviders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.providers.iter().map(|p| &p.config.issuer))
            .finish()
    }
}

/// A person a trusted provider vouched for, and what they may have agents do.
#[derive(Debug)]
pub(crate) struct Person {
    pub(crate) claim: PersonClaim,
    pub(crate) ceiling: ScopeSet,
}

fn config_error(why: String) -> BrokerError {
    BrokerError::Config(format!("identity_providers: {why}"))
}

/// HTTPS, or plain HTTP to a loopback host (tests, a provider beside the broker).
fn acceptable_url(url: &str) -> bool {
    if url.starts_with("https://") {
        return true;
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}

fn refused(code: &str, why: impl Into<String>) -> OAuthError {
    // RFC 8693 section 2.2.2: an invalid or unacceptable subject token is invalid_request.
    OAuthError::new(StatusCode::BAD_REQUEST, "invalid_request", code, why)
}

/// The unverified `iss` of a compact JWS, to pick the verifier.
pub(crate) fn unverified_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("iss")?.as_str().map(str::to_owned)
}

/// The algorithm a key pins: the only one its tokens may use.
fn pinned_algorithm(jwk: &Jwk) -> Option<Algorithm> {
    let by_type = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            Algorithm::ES256
        }
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        _ => return None,
    };
    // A key that names another algorithm is not used at all.
    match jwk.common.key_algorithm {
        Some(named) if named.to_string() != format!("{by_type:?}") => None,
        _ => Some(by_type),
    }
}

fn holds(claims: &Value, grant: &PersonGrant) -> bool {
    match claims.get(&grant.claim) {
        Some(Value::String(s)) => grant.value == "*" || *s == grant.value,
        Some(Value::Array(items)) => items.iter().any(|i| {
            i.as_str()
                .is_some_and(|s| grant.value == "*" || s == grant.value)
        }),
        Some(Value::Bool(true)) => grant.value == "*" || grant.value == "true",
        _ => false,
    }
}

impl IdentityProviders {
    pub(crate) fn new(configs: Vec<IdentityProviderConfig>) -> Result<Self, BrokerError> {
        let mut providers = Vec::new();
        for config in configs {
            if !acceptable_url(&config.issuer) {
                return Err(config_error(format!(
                    "{:?}: an issuer is an https URL (http only on loopback)",
                    config.issuer
                )));
            }
            if let Some(uri) = &config.jwks_uri
                && !acceptable_url(uri)
            {
                return Err(config_error(format!(
                    "{uri:?}: jwks_uri is an https URL (http only on loopback)"
                )));
            }
            if config.audiences.iter().all(|a| a.is_empty()) {
                return Err(config_error(format!(
                    "{}: audiences must name at least one accepted aud",
                    config.issuer
                )));
            }
            let mut grants = Vec::new();
            for grant in &config.grants {
                let scopes = ScopeSet::parse(&grant.scopes)
                    .map_err(|e| config_error(format!("{}: grant scopes: {e}", config.issuer)))?;
                grants.push((grant.clone(), scopes));
            }
            providers.push(Arc::new(Provider {
                config,
                grants,
                keys: tokio::sync::Mutex::new(None),
            }));
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(provider)
            .map_err(|e| config_error(format!("TLS roots: {e}")))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            providers,
            client: Client::builder(TokioExecutor::new()).build(https),
        })
    }

    /// Whether `issuer` is a trusted provider.
    pub(crate) fn trusts(&self, issuer: &str) -> bool {
        self.providers.iter().any(|p| p.config.issuer == issuer)
    }

    async fn get_json(&self, url: &str) -> Result<Value, String> {
        if !acceptable_url(url) {
            return Err(format!("{url}: not https"));
        }
        let request = http::Request::get(url)
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let response = tokio::time::timeout(Duration::from_secs(5), self.client.request(request))
            .await
            .map_err(|_| format!("{url}: no answer in 5 s"))?
            .map_err(|e| format!("{url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("{url}: HTTP {}", response.status()));
        }
        let body = Limited::new(response.into_body(), MAX_KEYS_BYTES)
            .collect()
            .await
            .map_err(|e| format!("{url}: {e}"))?
            .to_bytes();
        serde_json::from_slice(&body).map_err(|e| format!("{url}: {e}"))
    }

    /// The provider's keys, fetched again when `kid` is unknown (at most every 30 s).
    async fn key(
        &self,
        provider: &Provider,
        kid: Option<&str>,
        now: i64,
    ) -> Result<Jwk, OAuthError> {
        let mut cached = provider.keys.lock().await;
        let pick = |set: &JwkSet| match kid {
            Some(kid) => set.find(kid).cloned(),
            None => match set.keys.as_slice() {
                [only] => Some(only.clone()),
                _ => None,
            },
        };
        if let Some((set, _)) = cached.as_ref()
            && let Some(key) = pick(set)
        {
            return Ok(key);
        }
        if cached
            .as_ref()
            .is_some_and(|(_, at)| now.saturating_sub(*at) < REFRESH_SECS)
        {
            return Err(refused(
                agentiam_token::codes::UNKNOWN_KEY,
                "the OpenID provider has no such key",
            ));
        }
        let unavailable = |why: String| {
            OAuthError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                crate::codes::IDENTITY_PROVIDER_UNAVAILABLE,
                format!("the OpenID provider's keys could not be fetched: {why}"),
            )
        };
        let jwks_uri = match &provider.config.jwks_uri {
            Some(uri) => uri.clone(),
            None => {
                let discovery = format!(
                    "{}/.well-known/openid-configuration",
                    provider.config.issuer.trim_end_matches('/')
                );
                let doc = self.get_json(&discovery).await.map_err(unavailable)?;
                // OpenID Connect Discovery section 4.3: the document names the same issuer.
                if doc.get("issuer").and_then(Value::as_str) != Some(&provider.config.issuer) {
                    return Err(unavailable(format!("{discovery} names another issuer")));
                }
                doc.get("jwks_uri")
                    .and_then(Value::as_str)
                    .ok_or_else(|| unavailable(format!("{discovery} has no jwks_uri")))?
                    .to_owned()
            }
        };
        let set: JwkSet =
            serde_json::from_value(self.get_json(&jwks_uri).await.map_err(unavailable)?)
                .map_err(|e| unavailable(format!("{jwks_uri}: {e}")))?;
        let key = pick(&set);
        *cached = Some((set, now));
        key.ok_or_else(|| {
            refused(
                agentiam_token::codes::UNKNOWN_KEY,
                "the OpenID provider has no such key",
            )
        })
    }

    /// Verifies a person's token from a trusted provider for `agent`, and works out what the
    /// person may have agents do.
    pub(crate) async fn verify(
        &self,
        token: &str,
        agent: &str,
        now: i64,
    ) -> Result<Person, OAuthError> {
        if token.len() > MAX_PERSON_TOKEN_BYTES {
            return Err(refused(
                agentiam_token::codes::TOO_LARGE,
                format!("the subject token is over {MAX_PERSON_TOKEN_BYTES} bytes"),
            ));
        }
        let issuer = unverified_issuer(token).ok_or_else(|| {
            refused(
                agentiam_token::codes::MALFORMED,
                "the subject token is not a JWT",
            )
        })?;
        let provider = self
            .providers
            .iter()
            .find(|p| p.config.issuer == issuer)
            .ok_or_else(|| {
                refused(
                    agentiam_token::codes::WRONG_ISSUER,
                    "not a trusted OpenID provider",
                )
            })?;
        let header = jsonwebtoken::decode_header(token).map_err(|e| {
            refused(
                agentiam_token::codes::MALFORMED,
                format!("subject token header: {e}"),
            )
        })?;
        let jwk = self.key(provider, header.kid.as_deref(), now).await?;
        let algorithm = pinned_algorithm(&jwk).ok_or_else(|| {
            refused(
                agentiam_token::codes::ALG_NOT_ALLOWED,
                "the provider's key is not usable",
            )
        })?;
        if header.alg != algorithm {
            return Err(refused(
                agentiam_token::codes::ALG_NOT_ALLOWED,
                format!("the key is for {algorithm:?}, not {:?}", header.alg),
            ));
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| {
            refused(
                agentiam_token::codes::UNKNOWN_KEY,
                format!("the provider's key: {e}"),
            )
        })?;
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&provider.config.issuer]);
        validation.set_audience(&provider.config.audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind as K;
                let code = match e.kind() {
                    K::ExpiredSignature => agentiam_token::codes::EXPIRED,
                    K::ImmatureSignature => agentiam_token::codes::NOT_YET_VALID,
                    K::InvalidAudience => agentiam_token::codes::WRONG_AUDIENCE,
                    K::InvalidIssuer => agentiam_token::codes::WRONG_ISSUER,
                    K::InvalidSignature => agentiam_token::codes::BAD_SIGNATURE,
                    K::MissingRequiredClaim(_) => agentiam_token::codes::MISSING_CLAIM,
                    _ => agentiam_token::codes::INVALID_CLAIM,
                };
                refused(code, format!("subject token: {e}"))
            })?
            .claims;
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= 256)
            .ok_or_else(|| {
                refused(
                    agentiam_token::codes::INVALID_CLAIM,
                    "the subject token's sub",
                )
            })?;
        if sub.to_ascii_lowercase().starts_with("spiffe:") {
            return Err(refused(
                agentiam_token::codes::INVALID_CLAIM,
                "a person's subject cannot look like an agent's SPIFFE ID",
            ));
        }
        match claims.get("may_act") {
            Some(may_act) if may_act.get("sub").and_then(Value::as_str) != Some(agent) => {
                return Err(refused(
                    crate::codes::MAY_ACT_REFUSED,
                    "the person's token does not let this agent act for them (may_act)",
                ));
            }
            None if provider.config.require_may_act => {
                return Err(refused(
                    crate::codes::MAY_ACT_REFUSED,
                    "this provider's tokens must name the agent in may_act",
                ));
            }
            _ => {}
        }
        let granted: Vec<String> = provider
            .grants
            .iter()
            .filter(|(grant, _)| holds(&claims, grant))
            .map(|(_, scopes)| scopes.to_string())
            .collect();
        let ceiling = if granted.is_empty() {
            ScopeSet::default()
        } else {
            ScopeSet::parse(&granted.join(" "))
                .map_err(|e| refused(agentiam_token::codes::INVALID_CLAIM, e.to_string()))?
        };
        Ok(Person {
            claim: PersonClaim {
                iss: provider.config.issuer.clone(),
                sub: sub.to_owned(),
            },
            ceiling,
        })
    }
}
