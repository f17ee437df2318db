//! Errors of the identity crate, each with a stable dotted code.

use crate::codes;

/// An error from parsing or checking an identity, a key or a certificate.
///
/// Every variant maps to a stable code (see [`IdentityError::code`]) that Rust,
/// Python, the CLI and audit records share. Tests assert codes, never messages.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdentityError {
    /// The text is not a valid SPIFFE ID or trust domain.
    #[error("invalid SPIFFE ID {input:?}: {reason}")]
    BadSpiffeId {
        /// The rejected input, truncated to 128 bytes.
        input: String,
        /// Why the `spiffe` crate rejected it.
        reason: String,
    },
    /// The tool manifest names the same tool twice.
    #[error("tool manifest lists tool {0:?} more than once")]
    DuplicateTool(String),
    /// A value could not be canonicalized (RFC 8785) for hashing.
    #[error("cannot canonicalize {0} for hashing")]
    Canonicalization(&'static str),
    /// Attestation evidence did not match what was expected.
    #[error("attestation failed ({attestor}): {reason}")]
    AttestationFailed {
        /// Which attestor refused.
        attestor: &'static str,
        /// What did not match.
        reason: String,
    },
    /// A key could not be generated, parsed or used.
    #[error("invalid key: {0}")]
    BadKey(String),
    /// A JWK uses a key type, curve or algorithm that agentiam does not accept.
    #[error("unsupported key: {0}")]
    UnsupportedKey(String),
    /// The JWKS document is not valid JSON of the expected shape.
    #[error("invalid JWKS: {0}")]
    BadJwks(String),
    /// Certificate generation failed.
    #[error("certificate error: {0}")]
    Certificate(String),
}

impl agentiam_codes::ReasonCode for IdentityError {
    fn code(&self) -> &str {
        IdentityError::code(self)
    }
}

impl IdentityError {
    /// The stable, dotted reason code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadSpiffeId { .. } => codes::BAD_SPIFFE_ID,
            Self::DuplicateTool(_) => codes::DUPLICATE_TOOL,
            Self::Canonicalization(_) => codes::CANONICALIZATION,
            Self::AttestationFailed { .. } => codes::ATTESTATION_FAILED,
            Self::BadKey(_) => codes::KEY_INVALID,
            Self::UnsupportedKey(_) => codes::KEY_UNSUPPORTED,
            Self::BadJwks(_) => codes::BAD_JWKS,
            Self::Certificate(_) => codes::CERTIFICATE,
        }
    }
}

/// Clips attacker-controlled text to at most 96 bytes (on a character boundary, with `...`)
/// before it is echoed in an error message, so a hostile input cannot flood logs.
///
/// ```
/// assert_eq!(agentiam_identity::clip_for_message("short"), "short");
/// assert!(agentiam_identity::clip_for_message(&"x".repeat(1000)).len() < 100);
/// ```
pub fn clip_for_message(input: &str) -> String {
    const MAX: usize = 96;
    if input.len() <= MAX {
        return input.to_owned();
    }
    let mut end = MAX;
    while !input.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", input.get(..end).unwrap_or_default())
}
