//! What the guard answers.

use std::borrow::Cow;
use std::fmt;

use crate::approval::ApprovalRequest;
use crate::codes;

/// The guard's answer for one call. Errors while deciding are [`Decision::Deny`]s: the guard fails closed.
#[derive(Debug, Clone, PartialEq)]
#[must_use = "a decision that is not acted on guards nothing"]
pub enum Decision {
    /// The call may proceed.
    Allow(Allowance),
    /// The call must not proceed.
    Deny(Denial),
    /// The call may proceed only with a human's signed approval of this request.
    NeedsConfirmation(Box<ApprovalRequest>),
}

impl Decision {
    /// True only for [`Decision::Allow`].
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allow(_))
    }

    /// The reason code: `None` for an allow, `guard.confirmation_required` (or the gate's own code) for a pending confirmation.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Allow(_) => None,
            Self::Deny(d) => Some(d.code()),
            Self::NeedsConfirmation(r) => Some(r.code.as_str()),
        }
    }

    pub(crate) fn deny(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::Deny(Denial::new(code, message))
    }
}

/// Details of an allow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowance {
    /// The approval nonce consumed, when a human approved the call.
    pub approval: Option<String>,
    /// The approver's key id, when a human approved the call.
    pub approver: Option<String>,
}

/// Why a call was refused: a stable code, a message for people, and diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    code: Cow<'static, str>,
    message: String,
    policies: Vec<String>,
}

impl Denial {
    /// A denial with a code and a message.
    pub fn new(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            policies: Vec::new(),
        }
    }

    /// With the ids of the policies that decided.
    pub fn with_policies(mut self, policies: Vec<String>) -> Self {
        self.policies = policies;
        self
    }

    /// The stable reason code, e.g. `guard.policy_denied`.
    pub fn code(&self) -> &str {
        &self.code
    }
    /// A message for people; not stable, never contains secrets.
    pub fn message(&self) -> &str {
        &self.message
    }
    /// Ids of the Cedar policies that determined the denial, if any.
    pub fn policies(&self) -> &[String] {
        &self.policies
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl Default for Denial {
    fn default() -> Self {
        Self::new(codes::POLICY_DENIED, "denied")
    }
}
