//! What an agent's registration means: its record checked and turned into what the issuer enforces, and the grant types a registered agent may use.
//!
//! The administrator's registry, dynamic registration and the broker's start all check records here, so they accept exactly the same registrations.

use agentiam_identity::{Jwks, Sha256Digest, SpiffeId};
use agentiam_token::{AgentRegistration, ScopeSet};

use crate::BrokerError;
use crate::store::AgentRecord;

/// RFC 8693's grant type.
pub const GRANT_TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 6749's client credentials grant.
pub const GRANT_CLIENT_CREDENTIALS: &str = "client_credentials";

/// Attestors the token endpoint knows how to run.
pub(crate) const KNOWN_ATTESTORS: &[&str] = &["configuration"];

/// A registration's SPIFFE ID, parsed (`broker.bad_request` when it is not one).
pub(crate) fn parse_id(id: &str) -> Result<SpiffeId, BrokerError> {
    agentiam_identity::parse_spiffe_id(id)
        .map_err(|e| BrokerError::BadRequest(format!("spiffe_id: {e}")))
}

/// What the issuer enforces for `agent`: its scope ceiling and the composite identity digests
/// it may present. Refuses unusable keys, unknown attestors, bad digests and bad scopes.
pub(crate) fn registration(agent: &AgentRecord) -> Result<AgentRegistration, BrokerError> {
    if let Some(jwks) = &agent.jwks {
        let keys = Jwks::from_json(&jwks.to_string())
            .map_err(|e| BrokerError::BadRequest(format!("jwks: {e}")))?;
        if keys.keys().is_empty() || !keys.skipped().is_empty() {
            return Err(BrokerError::BadRequest(
                "jwks: every key must be a usable EdDSA (Ed25519) or ES256 public key".into(),
            ));
        }
    }
    if agent.attestors.is_empty() {
        return Err(BrokerError::BadRequest(
            "attestors: at least one is required (known: configuration)".into(),
        ));
    }
    if let Some(unknown) = agent
        .attestors
        .iter()
        .find(|a| !KNOWN_ATTESTORS.contains(&a.as_str()))
    {
        return Err(BrokerError::BadRequest(format!(
            "attestors: {:?} is not known (known: {})",
            unknown.chars().take(80).collect::<String>(),
            KNOWN_ATTESTORS.join(", ")
        )));
    }
    let scopes = ScopeSet::parse(&agent.max_scopes)
        .map_err(|e| BrokerError::BadRequest(format!("max_scopes: {e}")))?;
    let mut registration = AgentRegistration::new(scopes);
    for digest in &agent.allowed_digests {
        let d = Sha256Digest::parse(digest).ok_or_else(|| {
            BrokerError::BadRequest(format!(
                "allowed_digests: {:?} is not sha256:<64 hex>",
                digest.chars().take(80).collect::<String>()
            ))
        })?;
        registration = registration.pin_identity(d);
    }
    Ok(registration)
}
