//! Errors building a guard (loading policy, schema, keys). Decisions never return errors:
//! anything that goes wrong while deciding is a [`crate::Decision::Deny`].

/// A guard could not be configured.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GuardError {
    /// The Cedar policy text does not parse.
    #[error("policy does not parse: {0}")]
    PolicyParse(String),
    /// The Cedar schema does not parse.
    #[error("schema does not parse: {0}")]
    SchemaParse(String),
    /// The policies do not validate against the schema.
    #[error("policy does not validate against the schema: {0}")]
    PolicyInvalid(String),
    /// A tool or route specification is invalid.
    #[error("invalid tool specification: {0}")]
    ToolSpec(String),
    /// An approver key is unusable (not Ed25519, or also an agent or issuer key).
    #[error("approver key refused: {0}")]
    ApproverKey(String),
    /// An approval is malformed.
    #[error("approval is malformed: {0}")]
    ApprovalMalformed(String),
    /// The content filter found instructions for the model in a tool's description.
    #[error("tool {tool:?} is refused: its description looks poisoned ({detail})")]
    ToolPoisoning {
        /// The tool.
        tool: String,
        /// What the filter found.
        detail: String,
    },
    /// Reading a file failed.
    #[error("cannot read {path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// The state the service's workers share could not be read or written.
    #[error("{0}")]
    State(String),
}

impl agentiam_codes::ReasonCode for GuardError {
    fn code(&self) -> &str {
        GuardError::code(self)
    }
}

impl GuardError {
    /// The stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::PolicyParse(_) | Self::SchemaParse(_) | Self::PolicyInvalid(_) => {
                crate::codes::POLICY_INVALID
            }
            Self::ToolSpec(_) => crate::codes::TOOL_SPEC_INVALID,
            Self::ApproverKey(_) => crate::codes::APPROVER_KEY_REFUSED,
            Self::ApprovalMalformed(_) => crate::codes::CONFIRMATION_INVALID,
            Self::ToolPoisoning { .. } => crate::codes::TOOL_POISONING,
            Self::Io { .. } => crate::codes::IO,
            Self::State(_) => crate::codes::STATE_UNAVAILABLE,
        }
    }
}
