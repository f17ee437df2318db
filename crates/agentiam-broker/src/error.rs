//! Broker errors, each with a stable code.

/// What went wrong in the broker or its store.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The store could not be read or written.
    #[error("store: {0}")]
    Store(String),
    /// A request or a registration is malformed.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The broker's configuration is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// The broker could not be reached or its answer read (client side; the client crate
    /// reports it as [`agentiam_broker_client::ClientError::Unreachable`]).
    #[error("broker unreachable: {0}")]
    Unreachable(String),
    /// The activity log could not record, flush or checkpoint.
    #[error("activity log: {0}")]
    Audit(String),
}

impl agentiam_codes::ReasonCode for BrokerError {
    fn code(&self) -> &str {
        BrokerError::code(self)
    }
}

impl BrokerError {
    /// The stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Store(_) => crate::codes::STORE_UNAVAILABLE,
            Self::BadRequest(_) => crate::codes::BAD_REQUEST,
            Self::Config(_) => crate::codes::CONFIG_INVALID,
            Self::Audit(_) => crate::codes::AUDIT_UNAVAILABLE,
            Self::Unreachable(_) => crate::codes::UNREACHABLE,
        }
    }
}

/// A client failure read as a broker error, with the same code it always had
/// (`broker.bad_request`, `broker.unreachable`), for callers that used the client through this crate.
impl From<agentiam_broker_client::ClientError> for BrokerError {
    fn from(e: agentiam_broker_client::ClientError) -> Self {
        match e {
            agentiam_broker_client::ClientError::BadRequest(m) => Self::BadRequest(m),
            agentiam_broker_client::ClientError::Unreachable(m) => Self::Unreachable(m),
        }
    }
}
