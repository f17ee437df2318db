//! Task-scoped agent tokens for agentiam.
//!
//! An agent asks an [`Issuer`] for a token scoped to one task: minutes, not months, with just
//! the [`ScopeSet`] the task needs, bound to the agent's composite identity. Services check it
//! with a [`Verifier`]: `UnverifiedToken::parse(s)?.verify(&verifier)?` yields a [`Token`], the
//! only type whose claims can be trusted.
//!
//! # What verification refuses
//!
//! - Tokens over 8 KiB, before any decoding (`token.too_large`).
//! - Anything but a compact JWS: JWS JSON serialization, JWE, unsigned tokens (`token.malformed`).
//! - Any `alg` but `EdDSA`/`Ed25519` and `ES256`, and any `alg` that is not the trusted key's own:
//!   the algorithm is pinned by the key, never read from the header (`token.alg_not_allowed`).
//! - Keys named by header `jwk`, `jku`, `x5u` or `x5c`: only the configured JWKS is consulted (`token.unknown_key`).
//! - `crit` headers (`token.crit_unsupported`); `typ` other than JWT or `at+jwt` (`token.wrong_type`).
//! - Wrong issuer or audience, exactly compared; `exp`, `nbf`, `iat` checked with at most 5 s leeway by default;
//!   mistyped time claims are errors, never "absent" (`token.invalid_claim`).
//! - Revoked tokens, agents and tasks; tokens presented by another agent identity; sender-constrained
//!   tokens without their DPoP proof or client certificate.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod assertion;
mod cache;
mod claims;
mod clock;
pub mod codes;
mod dpop;
mod error;
mod issue;
mod jws;
mod narrowing;
mod number;
mod revocation;
mod scope;
mod verify;

pub use assertion::{
    AssertionRules, CLIENT_ASSERTION_TYPE_JWT, ClientAssertion, MAX_ASSERTION_LIFETIME_SECS,
    UnverifiedClientAssertion, create_client_assertion,
};
pub use cache::CachingVerifier;
pub use claims::{
    AgentClaim, Audience, Budget, Claims, Confirmation, DelegationHop, IntentClaim, PersonClaim,
    TaskClaim,
};
pub use clock::{Clock, Entropy, FixedClock, SystemClock, SystemEntropy};
pub use dpop::{DpopProof, DpopRequest, DpopVerifier, create_dpop_proof};
pub use error::TokenError;
pub use issue::{
    AgentRegistration, DEFAULT_MAX_TTL_SECS, DEFAULT_TTL_SECS, IssuedToken, Issuer, TokenRequest,
};
pub use jws::{MAX_TOKEN_BYTES, sign_compact};
pub use narrowing::{DEFAULT_MAX_DELEGATION_DEPTH, check_chain, check_step};
pub use number::{ExactNumber, InexactNumber, MAX_NUMBER_LITERAL};
pub use revocation::{InMemoryRevocationSet, Revocation, RevocationSet, revocation_reason};
pub use scope::{
    Constraint, ConstraintValue, MAX_SCOPE_LEN, MAX_SCOPES, MAX_SET_ARGUMENT_ITEMS, Op, Scope,
    ScopeDenial, ScopeRequest, ScopeSet, quote,
};
pub use verify::{
    DEFAULT_LEEWAY_SECS, MAX_LEEWAY_SECS, RequiredClaim, Token, UnverifiedToken, Verifier,
};
