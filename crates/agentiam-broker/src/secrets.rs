//! Random values the broker hands out (identifiers, session and registration tokens) and the SHA-256 digests it keeps of secrets instead of the secrets.

use axum::http::StatusCode;

use crate::oauth_error::OAuthError;

/// SHA-256 of `bytes`.
pub(crate) fn sha256(bytes: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes)
        .as_ref()
        .to_vec()
}

/// A random identifier (144 bits, base64url): approval requests, console sessions, CSRF tokens.
pub(crate) fn random_id() -> Result<String, OAuthError> {
    random_token(18)
}

/// `bytes` random bytes, base64url: identifiers and bearer secrets.
pub(crate) fn random_token(bytes: usize) -> Result<String, OAuthError> {
    use base64::Engine as _;
    let mut buf = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut buf).map_err(|_| {
        OAuthError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            crate::codes::ENTROPY_UNAVAILABLE,
            "no randomness",
        )
    })?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf))
}
