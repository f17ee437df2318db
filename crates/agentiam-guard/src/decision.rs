//! What the guard answers.

use std::borrow::Cow;
use std::fmt;

use crate::approval::ApprovalRequest;
use crate::codes;
use crate::intent::IntentCheck;

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

/// The one wire form of a decision, used by the CLI (`agentiam guard decide`), the vectors and
/// every JSON answer: `{"decision": "allow", "approver"}`,
/// `{"decision": "deny", "code", "message", "policies"}` or
/// `{"decision": "confirm", "code", "policies", "approval_request"}`.
impl serde::Serialize for Decision {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = serializer.serialize_map(None)?;
        match self {
            Self::Allow(a) => {
                map.serialize_entry("decision", "allow")?;
                map.serialize_entry("approver", &a.approver)?;
            }
            Self::Deny(d) => {
                map.serialize_entry("decision", "deny")?;
                map.serialize_entry("code", d.code())?;
                map.serialize_entry("message", d.message())?;
                map.serialize_entry("policies", d.policies())?;
            }
            Self::NeedsConfirmation(r) => {
                map.serialize_entry("decision", "confirm")?;
                map.serialize_entry("code", &r.code)?;
                map.serialize_entry("policies", &r.policies)?;
                map.serialize_entry("approval_request", r)?;
            }
        }
        map.end()
    }
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

    /// How the call stood against the task's declared intent, when the credential declares one
    /// and the guard got as far as measuring it (past the scope check).
    pub fn intent(&self) -> Option<&IntentCheck> {
        match self {
            Self::Allow(a) => a.intent.as_deref(),
            Self::Deny(d) => d.intent.as_deref(),
            Self::NeedsConfirmation(r) => r.intent.as_ref(),
        }
    }

    /// Attaches the intent measurement (the guard does this for every decision past it).
    pub(crate) fn with_intent(mut self, intent: &IntentCheck) -> Self {
        let intent = intent.declared.then(|| Box::new(intent.clone()));
        match &mut self {
            Self::Allow(a) => a.intent = intent,
            Self::Deny(d) => d.intent = intent,
            // The request was built with it, and signed over it.
            Self::NeedsConfirmation(_) => {}
        }
        self
    }

    /// What the behaviour check found unusual about the call, if anything.
    pub fn anomaly(&self) -> Option<&Anomaly> {
        match self {
            Self::Allow(a) => a.anomaly.as_ref(),
            Self::Deny(d) => d.anomaly.as_ref(),
            Self::NeedsConfirmation(r) => r.anomaly.as_ref(),
        }
    }

    /// Attaches the behaviour check's findings (the guard does this for every decision past it).
    pub(crate) fn with_anomaly(mut self, anomaly: Option<Anomaly>) -> Self {
        match &mut self {
            Self::Allow(a) => a.anomaly = anomaly,
            Self::Deny(d) => d.anomaly = anomaly,
            Self::NeedsConfirmation(r) => r.anomaly = anomaly,
        }
        self
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
    /// What the behaviour check found unusual (an allowed call is still recorded as an anomaly).
    pub anomaly: Option<Anomaly>,
    /// How the call stood against the task's declared intent (intent-bound or not).
    pub intent: Option<Box<IntentCheck>>,
}

/// What the behaviour check found unusual about a call: its score and explanations.
/// The activity log records it with the decision, and OpenTelemetry exports it as a span event.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Anomaly {
    /// Why, strongest first (e.g. `first call to hr.records:read for role support`).
    pub findings: Vec<String>,
    /// 0 (usual) ..= 100; policies see it as `context.anomaly_score`.
    pub score: u8,
}

/// Why a call was refused: a stable code, a message for people, and diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    code: Cow<'static, str>,
    message: String,
    policies: Vec<String>,
    anomaly: Option<Anomaly>,
    intent: Option<Box<IntentCheck>>,
}

impl Denial {
    /// A denial with a code and a message.
    pub fn new(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            policies: Vec::new(),
            anomaly: None,
            intent: None,
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
    /// What the behaviour check found unusual, if anything.
    pub fn anomaly(&self) -> Option<&Anomaly> {
        self.anomaly.as_ref()
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

impl agentiam_codes::ReasonCode for Denial {
    fn code(&self) -> &str {
        Denial::code(self)
    }
}
