//! Approvals held by the broker: an agent (or the guard on its behalf) posts the
//! [`ApprovalRequest`] its guard produced and waits; an approver reads the full context and
//! approves or denies; the broker signs an approval with its approver key, which agents never
//! hold, and every step is an audit event.

use agentiam_guard::{Approval, ApprovalRequest};
use serde::{Deserialize, Serialize};
use serde_json::Value;

// The findings shown to the approver are part of the wire contract agents speak, so the
// client crate defines them.
pub use agentiam_broker_client::ApprovalFinding;

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    /// Waiting for an approver.
    Pending,
    /// Approved: the record carries the signed [`Approval`].
    Approved,
    /// Denied by an approver.
    Denied,
    /// Nobody answered before the request expired.
    Expired,
}

impl ApprovalStatus {
    /// The status's name in the store and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Expired => "expired",
        }
    }

    /// Parses a status name.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "pending" => Self::Pending,
            "approved" => Self::Approved,
            "denied" => Self::Denied,
            "expired" => Self::Expired,
            _ => return None,
        })
    }
}

/// What an agent posts to `POST /approvals`: its guard's request and what the guard found.
/// Everything else the approver sees (agent, model, chain, task) the broker takes from the
/// agent's verified token, not from this body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalSubmission {
    /// The guard's approval request.
    pub request: ApprovalRequest,
    /// Taint and injection findings to show the approver.
    #[serde(default)]
    pub findings: Vec<ApprovalFinding>,
}

/// Who asked, as the broker verified it from the agent's token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequesterContext {
    /// The SPIFFE ID presenting the token (the newest actor, or the principal).
    pub agent: String,
    /// The principal on whose behalf the chain acts (`sub`).
    pub principal: String,
    /// The model, as attested when the token was issued (`provider/name@version`).
    pub model: Option<String>,
    /// The composite identity digest in the token.
    pub composite_digest: Option<String>,
    /// The delegation chain: principal first, then each actor.
    pub chain: Vec<String>,
    /// The task id and purpose.
    pub task: Option<String>,
    /// The task's purpose.
    pub purpose: Option<String>,
    /// The token's `jti`.
    pub token_jti: Option<String>,
    /// When the agent acts for a person: the OpenID provider that signed them in (the person
    /// is `principal`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person_provider: Option<String>,
}

/// One approval request as the broker keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRecord {
    /// Random, URL-safe.
    pub id: String,
    /// Where it stands.
    pub status: ApprovalStatus,
    /// The guard's request (tool, arguments, chain, task, risk, nonce, expiry, digest).
    pub request: ApprovalRequest,
    /// Taint and injection findings the agent's guard sent.
    #[serde(default)]
    pub findings: Vec<ApprovalFinding>,
    /// Who asked, from the verified token.
    pub requester: RequesterContext,
    /// When it was posted (seconds since the epoch).
    pub created_at: i64,
    /// When an approver answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled_at: Option<i64>,
    /// Which approver answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled_by: Option<String>,
    /// The approver's reason, for a denial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The signed approval, once approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
}

impl ApprovalRecord {
    /// The status as of `now`: a pending request past its expiry has expired.
    pub fn status_at(&self, now: i64) -> ApprovalStatus {
        if self.status == ApprovalStatus::Pending && self.request.expires_at < now {
            ApprovalStatus::Expired
        } else {
            self.status
        }
    }

    /// What the agent reads back from `GET /approvals/{id}`.
    pub fn answer(&self, now: i64) -> Value {
        let mut body = serde_json::json!({
            "id": self.id,
            "status": self.status_at(now),
        });
        if let Value::Object(map) = &mut body {
            if let Some(approval) = &self.approval {
                map.insert(
                    "approval".into(),
                    serde_json::to_value(approval).unwrap_or(Value::Null),
                );
            }
            if let Some(reason) = &self.reason {
                map.insert("reason".into(), Value::String(reason.clone()));
            }
            if let Some(by) = &self.settled_by {
                map.insert("settled_by".into(), Value::String(by.clone()));
            }
        }
        body
    }
}
