//! What can go wrong talking to the broker, each with a stable code.

/// A request the client could not make, or an answer it could not read.
///
/// An answer the broker refused is not an error here: [`crate::BrokerClient::send`] returns its
/// status and body (with the broker's `agentiam_code`).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The request could not be built (a bad method, path or header value).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The broker could not be reached, or its answer could not be read.
    #[error("broker unreachable: {0}")]
    Unreachable(String),
}

impl agentiam_codes::ReasonCode for ClientError {
    fn code(&self) -> &str {
        ClientError::code(self)
    }
}

impl ClientError {
    /// The stable reason code: `broker.bad_request` or `broker.unreachable`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => crate::codes::BAD_REQUEST,
            Self::Unreachable(_) => crate::codes::UNREACHABLE,
        }
    }
}
