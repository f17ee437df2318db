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
    /// The broker could not be reached or its answer read (client side).
    #[error("broker unreachable: {0}")]
    Unreachable(String),
    /// The activity log could not record, flush or checkpoint.
    #[error("activity log: {0}")]
    Audit(String),
}

impl BrokerError {
    /// The stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Store(_) => "broker.store_unavailable",
            Self::BadRequest(_) => "broker.bad_request",
            Self::Config(_) => "broker.config_invalid",
            Self::Audit(_) => "broker.audit_unavailable",
            Self::Unreachable(_) => "broker.unreachable",
        }
    }
}
