//! SIEM export: OCSF-shaped JSON Lines.
//!
//! [`to_ocsf`] maps an [`AuditEvent`] to a JSON object shaped after the Open Cybersecurity
//! Schema Framework 1.1.0, and [`OcsfSink`] writes one such object per line. The output is
//! "OCSF-shaped": it uses OCSF classes, ids and attribute names where the event has a fitting
//! value, and puts the rest under `unmapped`. It is not validated against the OCSF schema and
//! omits attributes the event cannot fill: API Activity's `src_endpoint` (the event records no
//! network endpoint) and Authentication's `auth_protocol_id` and `service` (the event does not
//! name the token's audience).
//!
//! # Classes
//!
//! | event `kind` | OCSF class | `class_uid` | `category_uid` | `activity_id` |
//! | --- | --- | --- | --- | --- |
//! | `token_issued`, `token_denied` | Authentication | 3002 | 3 (Identity & Access Management) | 4 Service Ticket Request |
//! | other `token_*` | Authentication | 3002 | 3 | 99 Other |
//! | anything else (`tool_call`, `http_request`, `agent_invocation`, ...) | API Activity | 6003 | 6 (Application Activity) | 99 Other |
//!
//! An access token issued to an agent for a task is the closest OCSF analogue of a service
//! ticket; a refused issuance is the same activity with status Failure. A tool call or HTTP
//! request is not a Create/Read/Update/Delete the event can tell apart, so API Activity uses
//! 99 Other with `activity_name` = the event kind. `type_uid` = `class_uid * 100 + activity_id`.
//!
//! # Attributes
//!
//! | OCSF attribute | from |
//! | --- | --- |
//! | `activity_id`, `activity_name`, `class_uid`, `class_name`, `category_uid`, `category_name`, `type_uid`, `type_name` | the class table above |
//! | `time` (ms since the epoch) | `time_unix_ms` |
//! | `duration` (ms) | `duration_us / 1000` |
//! | `status_id`, `status` | outcome: allow 1 Success, deny 2 Failure, escalate 99 Other (`Escalated`), record 0 Unknown |
//! | `status_code` | `decision.code` |
//! | `severity_id`, `severity` | outcome: deny 3 Medium, escalate 2 Low, allow and record 1 Informational |
//! | `message` | kind, tool, decision and code, e.g. `tool_call transfer_funds: deny (guard.scope_missing)` |
//! | `actor.user.uid` | `agent.spiffe_id` |
//! | `user.uid` (Authentication only) | `agent.spiffe_id`, the identity the token is for |
//! | `api.operation` | tool name, else the event kind |
//! | `api.request.uid` | `tool.call_id` |
//! | `api.response.error` | `decision.code` on a denial |
//! | `resources[].uid` | `data_accessed` |
//! | `metadata.product.name`, `.vendor_name`, `.version` | `agentiam`, `agentiam`, this crate's version |
//! | `metadata.version` | `1.1.0` (the OCSF version) |
//! | `metadata.uid` | `event_id` |
//! | `metadata.correlation_uid` | `trace_id` |
//! | `unmapped.*` | `kind`, `decision` (outcome), `reason_code`, `policy_id`, `policy_version`, `args_sha256`, `composite_digest`, `on_behalf_of`, `delegation_chain`, `task_id`, `token_jti`, `span_id`, `input_sha256`, `output_sha256`, `approval_ref`, `duration_us`, `schema` |
//!
//! Tool arguments and input content are not exported, not even redacted: the SIEM gets the
//! argument hash (`unmapped.args_sha256`) and the input hash, and the audit log keeps the rest.

use std::io::Write;

use serde_json::{Map, Value, json};

use crate::{AuditError, AuditEvent, Outcome};

/// The OCSF schema version the output is shaped after.
pub const OCSF_VERSION: &str = "1.1.0";
/// `class_uid` of OCSF API Activity.
pub const API_ACTIVITY_CLASS_UID: u32 = 6003;
/// `category_uid` of OCSF Application Activity.
pub const APPLICATION_ACTIVITY_CATEGORY_UID: u32 = 6;
/// `class_uid` of OCSF Authentication.
pub const AUTHENTICATION_CLASS_UID: u32 = 3002;
/// `category_uid` of OCSF Identity & Access Management.
pub const IAM_CATEGORY_UID: u32 = 3;
/// The product and vendor name in `metadata.product`.
pub const PRODUCT_NAME: &str = "agentiam";

struct Class {
    class_uid: u32,
    class_name: &'static str,
    category_uid: u32,
    category_name: &'static str,
    activity_id: u32,
    activity_name: String,
}

fn class_of(event: &AuditEvent) -> Class {
    if event.kind.starts_with("token_") {
        let (activity_id, activity_name) = match event.kind.as_str() {
            "token_issued" | "token_denied" => (4, "Service Ticket Request".to_owned()),
            other => (99, other.to_owned()),
        };
        Class {
            class_uid: AUTHENTICATION_CLASS_UID,
            class_name: "Authentication",
            category_uid: IAM_CATEGORY_UID,
            category_name: "Identity & Access Management",
            activity_id,
            activity_name,
        }
    } else {
        Class {
            class_uid: API_ACTIVITY_CLASS_UID,
            class_name: "API Activity",
            category_uid: APPLICATION_ACTIVITY_CATEGORY_UID,
            category_name: "Application Activity",
            activity_id: 99,
            activity_name: event.kind.clone(),
        }
    }
}

fn status_of(outcome: Outcome) -> (u32, &'static str) {
    match outcome {
        Outcome::Allow => (1, "Success"),
        Outcome::Deny => (2, "Failure"),
        Outcome::Escalate => (99, "Escalated"),
        Outcome::Record => (0, "Unknown"),
    }
}

fn severity_of(outcome: Outcome) -> (u32, &'static str) {
    match outcome {
        Outcome::Deny => (3, "Medium"),
        Outcome::Escalate => (2, "Low"),
        Outcome::Allow | Outcome::Record => (1, "Informational"),
    }
}

fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Allow => "allow",
        Outcome::Deny => "deny",
        Outcome::Escalate => "escalate",
        Outcome::Record => "record",
    }
}

fn put(map: &mut Map<String, Value>, key: &str, value: Option<&String>) {
    if let Some(v) = value {
        map.insert(key.to_owned(), Value::String(v.clone()));
    }
}

/// The OCSF-shaped JSON object for `event` (see the module documentation for the mapping).
pub fn to_ocsf(event: &AuditEvent) -> Value {
    let class = class_of(event);
    let outcome = event.decision.outcome;
    let (status_id, status) = status_of(outcome);
    let (severity_id, severity) = severity_of(outcome);
    let type_uid = u64::from(class.class_uid) * 100 + u64::from(class.activity_id);
    let operation = event
        .tool
        .as_ref()
        .map_or_else(|| event.kind.clone(), |t| t.name.clone());

    let mut message = operation.clone();
    if event.tool.is_some() {
        message = format!("{} {operation}", event.kind);
    }
    message.push_str(": ");
    message.push_str(outcome_name(outcome));
    if let Some(code) = &event.decision.code {
        message.push_str(&format!(" ({code})"));
    }

    let mut out = Map::new();
    out.insert("activity_id".into(), json!(class.activity_id));
    out.insert("activity_name".into(), json!(class.activity_name));
    out.insert("category_uid".into(), json!(class.category_uid));
    out.insert("category_name".into(), json!(class.category_name));
    out.insert("class_uid".into(), json!(class.class_uid));
    out.insert("class_name".into(), json!(class.class_name));
    out.insert("type_uid".into(), json!(type_uid));
    out.insert(
        "type_name".into(),
        json!(format!("{}: {}", class.class_name, class.activity_name)),
    );
    out.insert("time".into(), json!(event.time_unix_ms));
    if let Some(us) = event.duration_us {
        out.insert("duration".into(), json!(us / 1000));
    }
    out.insert("severity_id".into(), json!(severity_id));
    out.insert("severity".into(), json!(severity));
    out.insert("status_id".into(), json!(status_id));
    out.insert("status".into(), json!(status));
    put(&mut out, "status_code", event.decision.code.as_ref());
    out.insert("message".into(), json!(message));
    out.insert(
        "actor".into(),
        json!({"user": {"uid": event.agent.spiffe_id}}),
    );
    if class.class_uid == AUTHENTICATION_CLASS_UID {
        out.insert("user".into(), json!({"uid": event.agent.spiffe_id}));
    }

    let mut api = Map::new();
    api.insert("operation".into(), json!(operation));
    if let Some(call_id) = event.tool.as_ref().and_then(|t| t.call_id.as_ref()) {
        api.insert("request".into(), json!({"uid": call_id}));
    }
    if outcome == Outcome::Deny
        && let Some(code) = &event.decision.code
    {
        api.insert("response".into(), json!({"error": code}));
    }
    out.insert("api".into(), Value::Object(api));

    if !event.data_accessed.is_empty() {
        let resources: Vec<Value> = event
            .data_accessed
            .iter()
            .map(|uid| json!({"uid": uid}))
            .collect();
        out.insert("resources".into(), Value::Array(resources));
    }

    let mut metadata = Map::new();
    metadata.insert(
        "product".into(),
        json!({
            "name": PRODUCT_NAME,
            "vendor_name": PRODUCT_NAME,
            "version": env!("CARGO_PKG_VERSION"),
        }),
    );
    metadata.insert("version".into(), json!(OCSF_VERSION));
    metadata.insert("uid".into(), json!(event.event_id));
    put(&mut metadata, "correlation_uid", event.trace_id.as_ref());
    out.insert("metadata".into(), Value::Object(metadata));

    let mut unmapped = Map::new();
    unmapped.insert("kind".into(), json!(event.kind));
    unmapped.insert("decision".into(), json!(outcome_name(outcome)));
    put(&mut unmapped, "reason_code", event.decision.code.as_ref());
    put(
        &mut unmapped,
        "policy_id",
        event.decision.policy_id.as_ref(),
    );
    put(
        &mut unmapped,
        "policy_version",
        event.decision.policy_version.as_ref(),
    );
    put(
        &mut unmapped,
        "args_sha256",
        event.tool.as_ref().map(|t| &t.args_sha256),
    );
    put(
        &mut unmapped,
        "composite_digest",
        event.agent.composite_digest.as_ref(),
    );
    put(&mut unmapped, "on_behalf_of", event.on_behalf_of.as_ref());
    if !event.delegation_chain.is_empty() {
        unmapped.insert("delegation_chain".into(), json!(event.delegation_chain));
    }
    put(&mut unmapped, "task_id", event.task_id.as_ref());
    put(&mut unmapped, "token_jti", event.token_jti.as_ref());
    put(&mut unmapped, "span_id", event.span_id.as_ref());
    put(
        &mut unmapped,
        "input_sha256",
        event.input.as_ref().map(|i| &i.sha256),
    );
    put(&mut unmapped, "output_sha256", event.output_sha256.as_ref());
    put(&mut unmapped, "approval_ref", event.approval_ref.as_ref());
    if let Some(us) = event.duration_us {
        unmapped.insert("duration_us".into(), json!(us));
    }
    unmapped.insert("schema".into(), json!(event.schema));
    out.insert("unmapped".into(), Value::Object(unmapped));

    Value::Object(out)
}

/// Writes OCSF-shaped events as JSON Lines: one object per line, `\n`-terminated.
///
/// Each line goes to the writer in a single `write_all`, so a line is never interleaved with
/// another of this sink. Wrap a file in a `BufWriter` for throughput and call
/// [`flush`](Self::flush) (or [`into_inner`](Self::into_inner) and flush) before reading.
#[derive(Debug)]
pub struct OcsfSink<W: Write> {
    out: W,
    written: u64,
}

impl<W: Write> OcsfSink<W> {
    /// A sink writing to `out`.
    pub fn new(out: W) -> Self {
        Self { out, written: 0 }
    }

    /// Writes `event` as one OCSF-shaped JSON line.
    ///
    /// # Errors
    ///
    /// [`AuditError::Serialize`] if the object cannot be serialized, [`AuditError::Io`] if the
    /// writer fails.
    pub fn write(&mut self, event: &AuditEvent) -> Result<(), AuditError> {
        let mut line = serde_json::to_vec(&to_ocsf(event))
            .map_err(|e| AuditError::Serialize(e.to_string()))?;
        line.push(b'\n');
        self.out
            .write_all(&line)
            .map_err(|e| AuditError::Io(format!("cannot write an OCSF line: {e}")))?;
        self.written += 1;
        Ok(())
    }

    /// Flushes the writer.
    ///
    /// # Errors
    ///
    /// [`AuditError::Io`] if the writer fails.
    pub fn flush(&mut self) -> Result<(), AuditError> {
        self.out
            .flush()
            .map_err(|e| AuditError::Io(format!("cannot flush the OCSF sink: {e}")))
    }

    /// Lines written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The writer.
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// The writer, without flushing it.
    pub fn into_inner(self) -> W {
        self.out
    }
}
