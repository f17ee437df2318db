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
/// The README's examples, compiled and run as doctests so they cannot rot (with the `tower`
/// feature, which its HTTP example needs: `cargo test -p agentiam --all-features --doc`, a step
/// of `./scripts/test`).
#[doc = include_str!("../../../README.md")]
#[cfg(all(doctest, feature = "tower"))]
pub struct ReadmeDoctests;

// Each module below names the paved path of one crate: what a program that issues, verifies,
// delegates, guards or audits needs. Helpers the crates share among themselves (a JWS signer
// without the issuer's checks, the narrowing checks the exchanger runs, the CLI's presentation of
// baselines) stay in the `agentiam-*` crates and are not part of this facade's semver promise.

/// Composite agent identity: model, configuration, tools and runtime, attested; SPIFFE IDs,
/// signing keys, JWKS and X.509-SVIDs.
pub mod identity {
    pub use agentiam_identity::{
        AgentConfiguration, AgentIdentity, Algorithm, AttestedClaims, Attestor,
        ConfigurationAttestor, IdentityError, Jwk, Jwks, KeySet, ModelRef, PublicKey, ReasonCode,
        RuntimeDescriptor, Sha256Digest, SigningKey, SpiffeId, SvidAuthority, ToolDescriptor,
        TrustDomain, UnixProcessAttestor, X509Svid, codes, parse_spiffe_id, parse_trust_domain,
    };
}

/// Short-lived, task-scoped tokens: issuing, verifying, scopes and their constraints, DPoP,
/// client assertions, revocation.
pub mod token {
    pub use agentiam_token::{
        AgentClaim, AgentRegistration, AssertionRules, Audience, Budget, CLIENT_ASSERTION_TYPE_JWT,
        CachingVerifier, Claims, ClientAssertion, Clock, Confirmation, Constraint, ConstraintValue,
        DEFAULT_LEEWAY_SECS, DEFAULT_MAX_DELEGATION_DEPTH, DEFAULT_MAX_TTL_SECS, DEFAULT_TTL_SECS,
        DelegationHop, DpopProof, DpopRequest, DpopVerifier, Entropy, ExactNumber, FixedClock,
        InMemoryRevocationSet, IntentClaim, IssuedToken, Issuer, MAX_ASSERTION_LIFETIME_SECS,
        MAX_LEEWAY_SECS, MAX_SCOPE_LEN, MAX_SCOPES, MAX_SET_ARGUMENT_ITEMS, MAX_TOKEN_BYTES, Op,
        PersonClaim, RequiredClaim, Revocation, RevocationSet, Scope, ScopeDenial, ScopeRequest,
        ScopeSet, SystemClock, SystemEntropy, TaskClaim, Token, TokenError, TokenRequest,
        UnverifiedClientAssertion, UnverifiedToken, Verifier, codes, create_client_assertion,
        create_dpop_proof, quote,
    };
}

/// Delegation that only narrows: RFC 8693 exchange at the broker and offline attenuation.
pub mod delegation {
    pub use agentiam_delegation::{
        ChainVerifier, DEFAULT_CHAIN_CACHE, DEFAULT_MAX_DELEGATION_DEPTH, ExchangeRequest,
        Exchanger, Grant, LINK_TYPE, LinkClaims, attenuate,
    };
}

/// The guard on every action: decisions, approvals, policy, hooks, the tower layer and mTLS.
pub mod guard {
    pub use agentiam_guard::{
        Allowance, Anomaly, Approval, ApprovalRequest, ApproverKeys, AuditSink, Authenticator,
        BaselineSettings, Baselines, BehaviourCheck, ContentFilter, DEFAULT_CONFIRMATION_TTL_SECS,
        DEFAULT_POLICY, Decision, DecisionSink, Denial, Guard, GuardBuilder, GuardConfig,
        GuardError, GuardRequest, HttpRequestInfo, Limit, LimitScope, Limits, PolicyEngine,
        Presented, Principal, Risk, RoleMap, Session, SessionContext, SharedPrincipal, ToolCall,
        ToolInterceptor, ToolSpec, UntrustedText, VerifiedPeer, approval, arguments, audit, codes,
        hooks, policy,
    };

    #[cfg(feature = "tower")]
    pub use agentiam_guard::http;
    #[cfg(feature = "mtls")]
    pub use agentiam_guard::mtls;

    /// Loading a guard from its TOML or JSON configuration.
    pub mod config {
        pub use agentiam_guard::config::{
            ApproverConfig, BaselineConfig, FilterConfig, GuardConfig, LimitConfig, LimitPer,
            MAX_DOCUMENT_BYTES, StateConfig, ToolConfig, TotalConfig,
        };
    }

    /// Behaviour checks: per-role baselines and sliding-window limits.
    pub mod behaviour {
        pub use agentiam_guard::behaviour::{
            BASELINE_FORMAT, BaselineSettings, Baselines, DeclaredProfile, Limit, LimitScope,
            Limits, LogHistogram, MAX_BASELINE_FILE_BYTES, RoleMap, RoleProfile, read_profiles,
        };
    }
}

/// The injection filter: scanning untrusted text, tool descriptions and arguments; URL and
/// exfiltration checks; spotlighting.
pub mod filter {
    pub use agentiam_filter::{
        Category, DEFAULT_MAX_BYTES, DEFAULT_THRESHOLD, EncoderUse, ExfiltrationCheck, Flagged,
        InjectionFilter, Scan, ScanFinding, Spotlight, UrlFinding, Verdict, datamark, delimit,
        encode,
    };
    /// The transformer layer (feature `encoder`): the encoder, where its weights are looked
    /// for, and the screen's constants.
    #[cfg(feature = "encoder")]
    pub use agentiam_filter::{DEFAULT_ENCODER_WINDOWS, SCREEN_CLEAR, encoder};
}

/// The agent activity log: tamper-evident, verifiable offline, exported through OpenTelemetry
/// and OCSF.
pub mod telemetry {
    pub use agentiam_telemetry::{
        AgentRef, AnomalyRecord, AuditError, AuditEvent, AuditLog, Checkpoint, ContentRef,
        Decision, Durability, EVENT_SCHEMA_VERSION, FileStore, GENESIS, IntentRecord, LogConfig,
        MAX_PREALLOCATION, MemStore, NoteSigner, NoteVerifier, Outcome, REDACTED, Receipt, Record,
        RedactionPolicy, SegmentStore, StoreOp, ToolCall, VerifyReport, codes, merkle, ocsf, otel,
        segment_file_name, verify_log, without_unwritten_tail,
    };
}

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
