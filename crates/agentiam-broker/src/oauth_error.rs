//! The broker's error answers: an OAuth error body (RFC 6749 section 5.2) with our reason code beside.
//!
//! `{"error": "invalid_request", "error_description": "...", "agentiam_code": "broker.bad_request"}`, never cached; a 401 challenges with the scheme the client tried.

use axum::Json;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::BrokerError;

/// Largest request body the broker reads (bytes); larger ones are refused with 413 unread
/// (`broker.body_too_large`).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// An OAuth error response (RFC 6749 section 5.2 shape) with our reason code beside.
#[derive(Debug)]
pub(crate) struct OAuthError {
    pub(crate) status: StatusCode,
    pub(crate) error: &'static str,
    pub(crate) description: String,
    pub(crate) code: String,
    /// The authentication scheme a 401 challenges with (RFC 6749 section 5.2: the one the
    /// client tried).
    pub(crate) challenge: Challenge,
}

/// The `WWW-Authenticate` scheme of a 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Challenge {
    Bearer,
    Basic,
}

/// A refused DPoP proof (RFC 9449 section 7: `invalid_dpop_proof`).
pub(crate) fn invalid_dpop(code: &str, why: String) -> OAuthError {
    OAuthError::new(StatusCode::BAD_REQUEST, "invalid_dpop_proof", code, why)
}

/// RFC 6749 section 5.2: `error_description` holds only `%x20-21 / %x23-5B / %x5D-7E`. A
/// quote becomes `'`, a backslash `/`, anything else outside the set `?`.
pub(crate) fn oauth_description(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' => '\'',
            '\\' => '/',
            ' '..='~' => c,
            _ => '?',
        })
        .collect()
}

impl OAuthError {
    pub(crate) fn new(
        status: StatusCode,
        error: &'static str,
        code: &str,
        description: impl Into<String>,
    ) -> Self {
        Self {
            status,
            error,
            description: description.into(),
            code: code.to_owned(),
            challenge: Challenge::Bearer,
        }
    }

    pub(crate) fn with_challenge(mut self, challenge: Challenge) -> Self {
        self.challenge = challenge;
        self
    }

    pub(crate) fn bad_request(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            crate::codes::BAD_REQUEST,
            description,
        )
    }
}

impl From<BrokerError> for OAuthError {
    fn from(e: BrokerError) -> Self {
        match e {
            BrokerError::BadRequest(m) => Self::bad_request(m),
            BrokerError::Unreachable(m) => Self::new(
                StatusCode::BAD_GATEWAY,
                "temporarily_unavailable",
                crate::codes::UNREACHABLE,
                m,
            ),
            other => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                other.code(),
                other.to_string(),
            ),
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": self.error,
            "error_description": oauth_description(&self.description),
            "agentiam_code": self.code,
        });
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(match self.challenge {
                    Challenge::Bearer => "Bearer realm=\"agentiam-broker\"",
                    Challenge::Basic => "Basic realm=\"agentiam-broker\"",
                }),
            );
        }
        response
    }
}

/// A body the extractor refused: too large (413, `broker.body_too_large`) or malformed (400).
pub(crate) fn refused_body(
    status: StatusCode,
    what: &str,
    why: impl std::fmt::Display,
) -> OAuthError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return OAuthError::new(
            status,
            "invalid_request",
            crate::codes::BODY_TOO_LARGE,
            format!("the body is over {MAX_BODY_BYTES} bytes"),
        );
    }
    OAuthError::bad_request(format!("{what}: {why}"))
}

/// A form body the extractor refused, for the endpoints that take a token in a form.
pub(crate) fn form_error(rejection: FormRejection) -> OAuthError {
    refused_body(
        rejection.status(),
        "the body must be application/x-www-form-urlencoded with a token",
        rejection,
    )
}
