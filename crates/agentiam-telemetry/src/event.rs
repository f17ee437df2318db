//! `AuditEvent`: one agent action as an auditor needs to see it.
//!
//! Content is hashed always and recorded only when configured: an input's SHA-256 is always
//! present, its text only with [`RedactionPolicy::record_input_content`]. Tool arguments are
//! hashed over their RFC 8785 canonical JSON before any redaction, so the hash proves which
//! arguments were used even when their values are redacted in the record.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::AuditError;

/// Version of the event schema (`docs/audit-event.schema.json`).
pub const EVENT_SCHEMA_VERSION: u32 = 1;

/// What the decision was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The action was allowed and ran.
    Allow,
    /// The action was refused.
    Deny,
    /// The action waits for a human's approval.
    Escalate,
    /// Informational: no decision was taken (e.g. an agent invocation started).
    Record,
}

/// The decision with its stable reason code and the policy that made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Stable dotted reason code (`guard.scope_missing`, ...), for denials and escalations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Allow, deny, escalate or record.
    pub outcome: Outcome,
    /// Policy identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_id: Option<String>,
    /// Policy version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<String>,
}

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRef {
    /// Composite identity digest (`sha256:...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composite_digest: Option<String>,
    /// SPIFFE ID.
    pub spiffe_id: String,
}

/// An anomaly the behaviour check found: its score and explanations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnomalyRecord {
    /// Why, strongest first.
    pub findings: Vec<String>,
    /// 0 (usual) ..= 100.
    pub score: u8,
}

/// How a tool call stood against the task's declared intent (the guard's `IntentCheck`):
/// the intent, and which of the arguments that matter it constrained or left free.
/// Fields are in alphabetical order, so serde_json writes them canonically.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntentRecord {
    /// The intent is trusted and constrains every argument that matters.
    pub bound: bool,
    /// Arguments that matter which the intent constrains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fixed: Vec<String>,
    /// Arguments that matter which the intent leaves free.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub free: Vec<String>,
    /// The intent's id (the `jti` of the token that declared it).
    pub id: String,
    /// The declared intent: the credential's scopes.
    pub scopes: String,
    /// Nothing untrusted was read under the tokens the intent was declared from.
    pub trusted: bool,
}

/// A piece of content: its hash always, the text only when the policy records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentRef {
    /// The content, if recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// `sha256:<hex>` of the UTF-8 bytes.
    pub sha256: String,
}

/// A tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The arguments with redacted values replaced by `"[REDACTED]"`.
    pub args: Value,
    /// `sha256:<hex>` over the RFC 8785 canonical JSON of the arguments, before redaction.
    pub args_sha256: String,
    /// Tool call id from the framework, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// Tool name.
    pub name: String,
}

/// One audited action.
///
/// Fields (here and in the nested types) are declared in the byte order of their names, so
/// serde's output is already RFC 8785 canonical whenever the arguments are plain
/// (see `canonical.rs`); a test holds this.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Who acted.
    pub agent: AgentRef,
    /// What the behaviour check found unusual about the action, whatever the decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anomaly: Option<AnomalyRecord>,
    /// Reference to the human approval that allowed an irreversible action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_ref: Option<String>,
    /// Resource ids read or written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_accessed: Vec<String>,
    /// The decision.
    pub decision: Decision,
    /// Delegation chain, outermost first (SPIFFE IDs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delegation_chain: Vec<String>,
    /// How long the action took, microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_us: Option<u64>,
    /// UUIDv7 (time-ordered).
    pub event_id: String,
    /// What the agent was asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<ContentRef>,
    /// How the call stood against the task's declared intent, when it declared one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<IntentRecord>,
    /// Kind of event: `tool_call`, `http_request`, `token_issued`, `agent_invocation`, ...
    pub kind: String,
    /// The principal (human or service) on whose behalf the agent acts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<String>,
    /// `sha256:<hex>` of the output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_sha256: Option<String>,
    /// Schema version.
    pub schema: u32,
    /// W3C span id (16 hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
    /// Task id from the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// When it happened, milliseconds since the Unix epoch.
    pub time_unix_ms: i64,
    /// Token id (`jti`) used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_jti: Option<String>,
    /// The tool call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<ToolCall>,
    /// W3C trace id (32 hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// `sha256:<hex>` of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 64];
    let mut text = String::with_capacity(71);
    text.push_str("sha256:");
    if hex::encode_to_slice(d.as_ref(), &mut out).is_ok() {
        text.push_str(std::str::from_utf8(&out).unwrap_or_default());
    }
    text
}

/// Which argument values an event keeps.
///
/// The default redacts values whose argument name suggests a secret (`password`, `secret`,
/// `token`, `api_key`, `authorization`, `cookie`, `ssn`, `card_number`, `cvv`, `private_key`)
/// at any depth, and records no input content.
#[derive(Debug, Clone)]
pub struct RedactionPolicy {
    /// Record the input text, not only its hash.
    pub record_input_content: bool,
    /// Argument names (case-insensitive, at any depth) whose values are redacted.
    pub redact_fields: BTreeSet<String>,
    /// Redact every argument value (keep only names and the hash).
    pub redact_all_args: bool,
}

impl Default for RedactionPolicy {
    fn default() -> Self {
        Self {
            record_input_content: false,
            redact_fields: [
                "password",
                "passwd",
                "secret",
                "token",
                "access_token",
                "refresh_token",
                "api_key",
                "apikey",
                "authorization",
                "cookie",
                "ssn",
                "card_number",
                "cvv",
                "private_key",
            ]
            .into_iter()
            .map(str::to_owned)
            .collect(),
            redact_all_args: false,
        }
    }
}

/// The placeholder for a redacted value.
pub const REDACTED: &str = "[REDACTED]";

impl RedactionPolicy {
    /// Also redacts this argument name.
    pub fn redact(mut self, field: impl Into<String>) -> Self {
        self.redact_fields.insert(field.into().to_ascii_lowercase());
        self
    }

    /// Whether `name` is one of the redacted argument names, compared case-insensitively
    /// (lower-casing only a name that has capitals, which most do not).
    fn redacts_field(&self, name: &str) -> bool {
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            self.redact_fields.contains(&name.to_ascii_lowercase())
        } else {
            self.redact_fields.contains(name)
        }
    }

    fn redact_value(&self, value: &Value, parent_redacted: bool) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| {
                        let hide = parent_redacted || self.redact_all_args || self.redacts_field(k);
                        let kept = if hide && !v.is_object() && !v.is_array() {
                            Value::String(REDACTED.to_owned())
                        } else {
                            self.redact_value(v, hide)
                        };
                        (k.clone(), kept)
                    })
                    .collect(),
            ),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.redact_value(v, parent_redacted))
                    .collect(),
            ),
            other if parent_redacted => {
                let _ = other;
                Value::String(REDACTED.to_owned())
            }
            other => other.clone(),
        }
    }

    /// A [`ToolCall`] with the canonical hash of `args` and the values this policy keeps.
    pub fn tool_call(
        &self,
        name: &str,
        call_id: Option<&str>,
        args: &Value,
    ) -> Result<ToolCall, AuditError> {
        // The fast path writes serde's output when it is already RFC 8785 (a proptest in
        // canonical.rs compares both paths); the exact canonicalizer costs ~20 µs per KiB.
        let args_sha256 = crate::canonical::with_value_json(args, |json| Ok(sha256_hex(json)))
            .map_err(|e| {
                AuditError::Serialize(format!("arguments are not canonicalizable: {e}"))
            })?;
        Ok(ToolCall {
            name: name.to_owned(),
            call_id: call_id.map(str::to_owned),
            args_sha256,
            args: self.redact_value(args, false),
        })
    }

    /// A [`ContentRef`] for an input or output text.
    pub fn content(&self, text: &str) -> ContentRef {
        ContentRef {
            sha256: sha256_hex(text.as_bytes()),
            content: self.record_input_content.then(|| text.to_owned()),
        }
    }
}

impl AuditEvent {
    /// A new event of `kind` by `agent` at `time_unix_ms`, with a fresh UUIDv7 and the decision.
    pub fn new(
        kind: impl Into<String>,
        agent: AgentRef,
        time_unix_ms: i64,
        decision: Decision,
    ) -> Self {
        Self {
            schema: EVENT_SCHEMA_VERSION,
            event_id: uuid::Uuid::now_v7().to_string(),
            kind: kind.into(),
            time_unix_ms,
            agent,
            anomaly: None,
            on_behalf_of: None,
            delegation_chain: Vec::new(),
            task_id: None,
            token_jti: None,
            trace_id: None,
            span_id: None,
            input: None,
            intent: None,
            tool: None,
            data_accessed: Vec::new(),
            decision,
            approval_ref: None,
            output_sha256: None,
            duration_us: None,
        }
    }
}

impl Decision {
    /// An allow.
    pub fn allow() -> Self {
        Self {
            outcome: Outcome::Allow,
            code: None,
            policy_id: None,
            policy_version: None,
        }
    }

    /// A denial with its reason code.
    pub fn deny(code: impl Into<String>) -> Self {
        Self {
            outcome: Outcome::Deny,
            code: Some(code.into()),
            policy_id: None,
            policy_version: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redaction_keeps_the_hash_of_the_original_arguments() {
        let args = json!({"to": "acct-1", "amount": 5, "auth": {"Password": "hunter2", "user": "bob"}, "api_key": ["k1", "k2"]});
        let call = RedactionPolicy::default()
            .tool_call("pay", None, &args)
            .unwrap();
        assert_eq!(call.args["to"], "acct-1");
        assert_eq!(call.args["auth"]["Password"], REDACTED);
        assert_eq!(call.args["auth"]["user"], "bob");
        assert_eq!(call.args["api_key"], json!([REDACTED, REDACTED]));
        let reordered = json!({"api_key": ["k1", "k2"], "auth": {"user": "bob", "Password": "hunter2"}, "amount": 5, "to": "acct-1"});
        let again = RedactionPolicy::default()
            .tool_call("pay", None, &reordered)
            .unwrap();
        assert_eq!(call.args_sha256, again.args_sha256);
        assert!(!serde_json::to_string(&call).unwrap().contains("hunter2"));
    }

    #[test]
    fn input_content_only_when_configured() {
        let hidden = RedactionPolicy::default().content("wire $5");
        assert!(hidden.content.is_none());
        assert!(hidden.sha256.starts_with("sha256:"));
        let shown = RedactionPolicy {
            record_input_content: true,
            ..RedactionPolicy::default()
        }
        .content("wire $5");
        assert_eq!(shown.content.as_deref(), Some("wire $5"));
    }
}
