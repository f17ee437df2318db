//! Token errors, each with a stable dotted code.

use crate::codes;

/// Why a token, a scope or a proof was refused, or why issuing failed.
///
/// The [`TokenError::code`] strings are a contract shared by Rust, Python, the CLI,
/// HTTP responses and audit records: they are never renamed. Messages are for humans
/// and may change; they never contain key material or the token itself.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a compact JWS, bad base64url, JSON that is not an object, or a bad header.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// Larger than the size cap; nothing was decoded.
    #[error("token is {size} bytes, more than the {max}-byte cap")]
    TooLarge {
        /// Size of the presented token.
        size: usize,
        /// The cap.
        max: usize,
    },
    /// The signature does not verify under the key named by `kid`.
    #[error("signature does not verify")]
    BadSignature,
    /// The header's `alg` is not allowed, or not the algorithm of the key.
    #[error("algorithm {0:?} is not allowed for this key")]
    AlgNotAllowed(String),
    /// No trusted key has this `kid`.
    #[error("no trusted key with kid {0:?}")]
    UnknownKey(String),
    /// The header lists critical extensions (`crit`), which agentiam does not implement.
    #[error("critical header extensions are not supported: {0}")]
    CritUnsupported(String),
    /// The header's `typ` says this is another kind of JWT (e.g. a DPoP proof).
    #[error("token type {0:?} is not an access token")]
    WrongType(String),
    /// `exp` has passed (beyond the leeway).
    #[error("token expired at {exp} (now {now})")]
    Expired {
        /// The token's `exp`.
        exp: i64,
        /// The verifier's clock.
        now: i64,
    },
    /// `nbf` or `iat` lies in the future (beyond the leeway).
    #[error("token not valid until {0}")]
    NotYetValid(i64),
    /// `aud` does not contain the verifier's audience.
    #[error("token audience does not include {0:?}")]
    WrongAudience(String),
    /// `iss` is not the trusted issuer.
    #[error("token issuer {0:?} is not trusted")]
    WrongIssuer(String),
    /// A required claim is absent.
    #[error("required claim {0:?} is missing")]
    MissingClaim(&'static str),
    /// A claim is present with the wrong JSON type or an invalid value.
    #[error("invalid claim: {0}")]
    InvalidClaim(String),
    /// The token, its agent or its task has been revoked.
    #[error("token revoked ({0})")]
    Revoked(String),
    /// The revocation store could not be consulted: fail closed.
    #[error("revocation status unavailable: {0}")]
    RevocationUnavailable(String),
    /// The token was issued to another agent or another composite identity.
    #[error("token is bound to another agent identity: {0}")]
    IdentityMismatch(String),
    /// The token is sender-constrained (`cnf`) and no proof of possession was presented.
    #[error("token requires proof of possession ({0})")]
    PopRequired(&'static str),
    /// The proof of possession is invalid.
    #[error("invalid proof of possession: {0}")]
    PopInvalid(String),
    /// A scope string does not follow the grammar.
    #[error("invalid scope {scope:?}: {reason}")]
    InvalidScope {
        /// The offending scope, truncated.
        scope: String,
        /// What is wrong.
        reason: String,
    },
    /// The requested scopes exceed the agent's registered maximum.
    #[error("scope {0:?} is beyond what this agent is registered for")]
    ScopeNotPermitted(String),
    /// The agent is not registered with this issuer.
    #[error("agent {0:?} is not registered")]
    UnregisteredAgent(String),
    /// The requested lifetime exceeds the issuer's hard maximum.
    #[error("requested lifetime {requested}s exceeds the maximum {max}s")]
    LifetimeTooLong {
        /// Requested seconds.
        requested: i64,
        /// Maximum seconds.
        max: i64,
    },
    /// The request to issue a token is invalid.
    #[error("invalid token request: {0}")]
    InvalidRequest(String),
    /// Signing failed.
    #[error("signing failed: {0}")]
    Signing(String),
    /// A delegated token (or a requested one) holds a scope its parent did not.
    #[error("delegation widens scope: {0:?} is not within the parent's scopes")]
    ScopeWidened(String),
    /// A delegated token outlives its parent.
    #[error("delegation extends expiry: {child} is after the parent's {parent}")]
    ExpiryExtended {
        /// The child's expiry.
        child: i64,
        /// The parent's expiry.
        parent: i64,
    },
    /// A delegated token's budget is larger than its parent's.
    #[error("delegation widens the budget")]
    BudgetWidened,
    /// The chain is deeper than allowed.
    #[error("delegation depth {depth} exceeds the maximum {max}")]
    DepthExceeded {
        /// The chain's depth.
        depth: usize,
        /// The maximum.
        max: usize,
    },
    /// The delegation records are inconsistent.
    #[error("broken delegation chain: {0}")]
    BrokenChain(String),
    /// A token whose chain already declared an intent asked to declare another.
    #[error("the task's intent was declared already (intent {0}); narrow that token instead")]
    IntentRedeclared(String),
    /// An ancestor token or agent in the chain was revoked.
    #[error("an ancestor in the delegation chain was revoked ({0})")]
    RevokedAncestor(String),
}

impl agentiam_codes::ReasonCode for TokenError {
    fn code(&self) -> &str {
        TokenError::code(self)
    }
}

impl TokenError {
    /// The stable, dotted reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => codes::MALFORMED,
            Self::TooLarge { .. } => codes::TOO_LARGE,
            Self::BadSignature => codes::BAD_SIGNATURE,
            Self::AlgNotAllowed(_) => codes::ALG_NOT_ALLOWED,
            Self::UnknownKey(_) => codes::UNKNOWN_KEY,
            Self::CritUnsupported(_) => codes::CRIT_UNSUPPORTED,
            Self::WrongType(_) => codes::WRONG_TYPE,
            Self::Expired { .. } => codes::EXPIRED,
            Self::NotYetValid(_) => codes::NOT_YET_VALID,
            Self::WrongAudience(_) => codes::WRONG_AUDIENCE,
            Self::WrongIssuer(_) => codes::WRONG_ISSUER,
            Self::MissingClaim(_) => codes::MISSING_CLAIM,
            Self::InvalidClaim(_) => codes::INVALID_CLAIM,
            Self::Revoked(_) => codes::REVOKED,
            Self::RevocationUnavailable(_) => codes::REVOCATION_UNAVAILABLE,
            Self::IdentityMismatch(_) => codes::IDENTITY_MISMATCH,
            Self::PopRequired(_) => codes::POP_REQUIRED,
            Self::PopInvalid(_) => codes::POP_INVALID,
            Self::InvalidScope { .. } => codes::SCOPE_INVALID,
            Self::ScopeNotPermitted(_) => codes::SCOPE_NOT_PERMITTED,
            Self::UnregisteredAgent(_) => codes::UNREGISTERED_AGENT,
            Self::LifetimeTooLong { .. } => codes::LIFETIME_TOO_LONG,
            Self::InvalidRequest(_) => codes::INVALID_REQUEST,
            Self::Signing(_) => codes::SIGNING_FAILED,
            Self::ScopeWidened(_) => codes::SCOPE_WIDENED,
            Self::ExpiryExtended { .. } => codes::EXPIRY_EXTENDED,
            Self::BudgetWidened => codes::BUDGET_WIDENED,
            Self::DepthExceeded { .. } => codes::DEPTH_EXCEEDED,
            Self::BrokenChain(_) => codes::BROKEN_CHAIN,
            Self::IntentRedeclared(_) => codes::INTENT_REDECLARED,
            Self::RevokedAncestor(_) => codes::REVOKED_ANCESTOR,
        }
    }
}

pub(crate) use agentiam_identity::clip_for_message as clip;
