//! Audit errors with stable codes.

/// Why the log could not be written, read or verified.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditError {
    /// A record was altered, inserted, removed or reordered (first bad sequence number).
    #[error("log tampered at record {seq}: {reason}")]
    Tampered {
        /// First sequence number that fails.
        seq: u64,
        /// What failed.
        reason: String,
    },
    /// The log is shorter than a checkpoint says, or a record is torn.
    #[error("log truncated at record {seq}: {reason}")]
    Truncated {
        /// First missing sequence number.
        seq: u64,
        /// What is missing.
        reason: String,
    },
    /// A checkpoint is malformed, badly signed, or does not match the log.
    #[error("bad checkpoint: {0}")]
    BadCheckpoint(String),
    /// An event could not be serialized.
    #[error("cannot serialize event: {0}")]
    Serialize(String),
    /// Storage failed.
    #[error("storage error: {0}")]
    Io(String),
    /// The log writer has stopped.
    #[error("audit log is closed")]
    Closed,
}

impl agentiam_codes::ReasonCode for AuditError {
    fn code(&self) -> &str {
        AuditError::code(self)
    }
}

impl AuditError {
    /// The stable, dotted reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Tampered { .. } => crate::codes::TAMPERED,
            Self::Truncated { .. } => crate::codes::TRUNCATED,
            Self::BadCheckpoint(_) => crate::codes::BAD_CHECKPOINT,
            Self::Serialize(_) => crate::codes::SERIALIZE,
            Self::Io(_) => crate::codes::IO,
            Self::Closed => crate::codes::CLOSED,
        }
    }

    /// The first bad sequence number, when the error names one.
    pub fn seq(&self) -> Option<u64> {
        match self {
            Self::Tampered { seq, .. } | Self::Truncated { seq, .. } => Some(*seq),
            _ => None,
        }
    }
}
