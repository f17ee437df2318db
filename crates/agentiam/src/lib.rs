//! agentiam: identity and access management for AI agents.
//!
//! This facade is the paved path and the semver boundary: depend on `agentiam`, not on the
//! `agentiam-*` crates behind it.
//!
//! ```
//! use std::sync::Arc;
//! use agentiam::prelude::*;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let clock = Arc::new(FixedClock::new(1_800_000_000));
//! let agent = AgentIdentity::new(
//!     parse_spiffe_id("spiffe://acme.example/agent/reconciler")?,
//!     ModelRef::new("openai", "gpt-5", "2026-08-01"),
//!     &AgentConfiguration::new("You reconcile invoices.", vec![]),
//!     RuntimeDescriptor::new("container").with("image_digest", "sha256:abc"),
//! )?;
//! let issuer = Issuer::new("https://broker.acme.example", KeySet::new(SigningKey::generate(Algorithm::EdDSA)?))
//!     .with_clock(clock.clone());
//! issuer.register(agent.spiffe_id(), AgentRegistration::new(ScopeSet::parse("ledger.*:read")?));
//! let issued = issuer.issue(&TokenRequest::new(&agent, "ledger-api", ScopeSet::parse("ledger.ar:read")?, "t-1", "reconcile"))?;
//!
//! let verifier = Verifier::new(issuer.jwks(), "https://broker.acme.example", "ledger-api").with_clock(clock);
//! let token = verifier.verify_for_agent(&issued.token, &agent)?;
//! assert!(token.scopes().covers(&ScopeRequest::new("ledger.ar", "read")));
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]
/// The README's examples, compiled and run as doctests so they cannot rot.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

pub use agentiam_delegation as delegation;
pub use agentiam_filter as filter;
pub use agentiam_guard as guard;
pub use agentiam_identity as identity;
pub use agentiam_telemetry as telemetry;
pub use agentiam_token as token;

/// The registry of stable reason codes: every code the library crates raise, with its meaning
/// and HTTP status (`docs/reason-codes.md` is generated from it and the broker's and CLI's own).
///
/// ```
/// use agentiam::codes::{self, ReasonCode as _};
/// assert!(codes::library().any(|c| c.code == "token.expired" && c.status == Some(401)));
/// let err = agentiam::token::UnverifiedToken::parse("not a token").unwrap_err();
/// assert_eq!(err.code(), agentiam::token::codes::MALFORMED);
/// ```
pub mod codes;

/// The types most programs need.
pub mod prelude {
    pub use agentiam_guard::{
        Approval, ApprovalRequest, ApproverKeys, Decision, Guard, GuardRequest, PolicyEngine,
        Principal, Risk, Session, ToolCall, ToolInterceptor, ToolSpec,
    };
    pub use agentiam_identity::{
        AgentConfiguration, AgentIdentity, Algorithm, Attestor, ConfigurationAttestor,
        IdentityError, Jwks, KeySet, ModelRef, PublicKey, RuntimeDescriptor, Sha256Digest,
        SigningKey, SpiffeId, SvidAuthority, ToolDescriptor, UnixProcessAttestor, parse_spiffe_id,
        parse_trust_domain,
    };
    pub use agentiam_token::{
        AgentRegistration, CachingVerifier, Claims, Clock, DpopRequest, DpopVerifier, FixedClock,
        InMemoryRevocationSet, Issuer, Revocation, RevocationSet, ScopeRequest, ScopeSet,
        SystemClock, Token, TokenError, TokenRequest, UnverifiedToken, Verifier,
    };
}
