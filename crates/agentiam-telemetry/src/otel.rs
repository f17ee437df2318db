//! OpenTelemetry spans for audited decisions, following the GenAI semantic conventions.
//!
//! Three span shapes are recorded from an [`AuditEvent`]:
//!
//! | function | span name | `gen_ai.operation.name` |
//! | --- | --- | --- |
//! | [`record_execute_tool`] | `execute_tool {tool name}` | `execute_tool` |
//! | [`record_invoke_agent`] | `invoke_agent {agent name}` | `invoke_agent` |
//! | [`record_run_guardrail`] | `run_guardrail {component}` | `run_guardrail` |
//!
//! When the name part is unknown (no tool, no agent name, empty component) the span name is the
//! bare operation name, as the conventions ask. Every span also carries the `agentiam.*`
//! attributes of [`agentiam_attributes`]: principal, composite digest, on-behalf-of, delegation
//! depth, token id, task id, decision, reason code, audit event id, policy id and version, and
//! `agentiam.tool.args_sha256` when the event has a tool call.
//!
//! A denial sets the span status to `Error` (description: the reason code) and `error.type` to
//! the reason code (`_OTHER` when the denial has none). Allow, escalate and record leave the
//! status unset.
//!
//! Tool arguments, results, inputs and outputs are never recorded as span attributes: the
//! conventions treat them as opt-in sensitive content, and the audit log is where they live
//! (redacted). Only the argument hash travels, as `agentiam.tool.args_sha256`.
//!
//! # Timing and parenting
//!
//! A span starts at the event's `time_unix_ms` and ends `duration_us` later (or at its start when
//! the event has no duration), so a span recorded later from a [`SpanQueue`] keeps the real
//! timing. When the event carries a W3C `trace_id` and `span_id` (the context the decision ran
//! under, e.g. from an incoming `traceparent`), the span is recorded as a child of that remote,
//! sampled span context, so it lands in the caller's trace. Otherwise the tracer's current
//! context is the parent (none on the [`SpanQueue`] worker thread, which makes it a root span).
//!
//! # Tracers
//!
//! The record functions are generic over any [`opentelemetry::trace::Tracer`]: an SDK
//! [`SdkTracer`](opentelemetry_sdk::trace::SdkTracer), a `BoxedTracer` from
//! `opentelemetry::global::tracer`, or a test tracer. [`SpanQueue`] additionally needs the tracer
//! to be `Send + 'static`, because it moves it to its worker thread.
//!
//! # The decision path never waits on an exporter
//!
//! [`SpanQueue`] is a bounded queue between the decision path and a background thread that
//! turns queued events into spans. [`SpanQueue::try_send`] never blocks: when the queue is full
//! the event is dropped and counted ([`SpanQueue::dropped`]). With the `metrics` feature the
//! counter is also exported as the OpenTelemetry observable counter [`QUEUE_DROPPED_METRIC`]
//! through `SpanQueue::register_metrics`.
//!
//! # Status of the conventions
//!
//! The GenAI agent and tool attributes are in the conventions' development status. The
//! `gen_ai.guardrail.*` names and the `run_guardrail` operation follow a proposal that is not
//! part of the published conventions yet; they are defined here as our own constants (the
//! `opentelemetry` crate's GenAI constants are deprecated) so that a rename is one edit.
//!
//! # OTLP export
//!
//! With the `otlp` cargo feature, `otlp_tracer_provider` builds an
//! [`SdkTracerProvider`](opentelemetry_sdk::trace::SdkTracerProvider) exporting OTLP/HTTP
//! protobuf through a batch processor. Without the feature nothing in this module opens a
//! connection.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt as _, TraceFlags, TraceId,
    TraceState, Tracer,
};
use opentelemetry::{Context, KeyValue};

use crate::{AuditError, AuditEvent, Outcome};

// ---------------------------------------------------------------------------------------------
// Attribute names
// ---------------------------------------------------------------------------------------------

/// `gen_ai.operation.name`: `execute_tool`, `invoke_agent` or `run_guardrail`.
pub const GEN_AI_OPERATION_NAME: &str = "gen_ai.operation.name";
/// `gen_ai.tool.name`: the tool's name.
pub const GEN_AI_TOOL_NAME: &str = "gen_ai.tool.name";
/// `gen_ai.tool.call.id`: the framework's tool call id.
pub const GEN_AI_TOOL_CALL_ID: &str = "gen_ai.tool.call.id";
/// `gen_ai.tool.type`: `function`, `extension` or `datastore`.
pub const GEN_AI_TOOL_TYPE: &str = "gen_ai.tool.type";
/// `error.type`: the reason code of a denial.
pub const ERROR_TYPE: &str = "error.type";
/// `gen_ai.agent.id`: the agent's id (its SPIFFE ID unless the caller gives another).
pub const GEN_AI_AGENT_ID: &str = "gen_ai.agent.id";
/// `gen_ai.agent.name`: the agent's human-readable name.
pub const GEN_AI_AGENT_NAME: &str = "gen_ai.agent.name";
/// `gen_ai.agent.version`: the agent's version.
pub const GEN_AI_AGENT_VERSION: &str = "gen_ai.agent.version";
/// `gen_ai.conversation.id`: the conversation (session, thread) id.
pub const GEN_AI_CONVERSATION_ID: &str = "gen_ai.conversation.id";
/// `gen_ai.request.model`: the model the agent was asked to use.
pub const GEN_AI_REQUEST_MODEL: &str = "gen_ai.request.model";
/// `gen_ai.guardrail.target.type`: `input` or `output`.
pub const GEN_AI_GUARDRAIL_TARGET_TYPE: &str = "gen_ai.guardrail.target.type";
/// `gen_ai.guardrail.target.subtype`: `tool_call`, `tool_definition`, `retrieval`, ...
pub const GEN_AI_GUARDRAIL_TARGET_SUBTYPE: &str = "gen_ai.guardrail.target.subtype";
/// `gen_ai.guardrail.verdict.type`: `allow`, `deny`, `modify`, `warn` or `escalate`.
pub const GEN_AI_GUARDRAIL_VERDICT_TYPE: &str = "gen_ai.guardrail.verdict.type";
/// `gen_ai.guardrail.action.type`: what the guardrail did (`none`, `block`, `require_approval`, `log`).
pub const GEN_AI_GUARDRAIL_ACTION_TYPE: &str = "gen_ai.guardrail.action.type";
/// `gen_ai.guardrail.verdict.reason`: the stable reason code.
pub const GEN_AI_GUARDRAIL_VERDICT_REASON: &str = "gen_ai.guardrail.verdict.reason";
/// `gen_ai.guardrail.security.policy.id`: the policy that decided.
pub const GEN_AI_GUARDRAIL_SECURITY_POLICY_ID: &str = "gen_ai.guardrail.security.policy.id";
/// `gen_ai.guardrail.security.risk.category`: the risk category found, if any.
pub const GEN_AI_GUARDRAIL_SECURITY_RISK_CATEGORY: &str = "gen_ai.guardrail.security.risk.category";
/// `gen_ai.guardrail.security.risk.score`: the risk score, if any (a double).
pub const GEN_AI_GUARDRAIL_SECURITY_RISK_SCORE: &str = "gen_ai.guardrail.security.risk.score";

/// `agentiam.principal`: the acting agent's SPIFFE ID.
pub const AGENTIAM_PRINCIPAL: &str = "agentiam.principal";
/// `agentiam.composite_digest`: the agent's composite identity digest (`sha256:...`).
pub const AGENTIAM_COMPOSITE_DIGEST: &str = "agentiam.composite_digest";
/// `agentiam.on_behalf_of`: the principal on whose behalf the agent acts.
pub const AGENTIAM_ON_BEHALF_OF: &str = "agentiam.on_behalf_of";
/// `agentiam.delegation.depth`: length of the delegation chain (an int, 0 when direct).
pub const AGENTIAM_DELEGATION_DEPTH: &str = "agentiam.delegation.depth";
/// `agentiam.token.jti`: the token id used.
pub const AGENTIAM_TOKEN_JTI: &str = "agentiam.token.jti";
/// `agentiam.task.id`: the task id from the token.
pub const AGENTIAM_TASK_ID: &str = "agentiam.task.id";
/// `agentiam.decision`: `allow`, `deny`, `escalate` or `record`.
pub const AGENTIAM_DECISION: &str = "agentiam.decision";
/// `agentiam.reason_code`: the stable dotted reason code.
pub const AGENTIAM_REASON_CODE: &str = "agentiam.reason_code";
/// `agentiam.audit.event_id`: the audit event's UUIDv7, to find the record in the log.
pub const AGENTIAM_AUDIT_EVENT_ID: &str = "agentiam.audit.event_id";
/// `agentiam.event.kind`: the audit event's kind (`tool_call`, `http_request`, ...).
pub const AGENTIAM_EVENT_KIND: &str = "agentiam.event.kind";
/// `agentiam.policy.id`: the policy that decided.
pub const AGENTIAM_POLICY_ID: &str = "agentiam.policy.id";
/// `agentiam.policy.version`: that policy's version.
pub const AGENTIAM_POLICY_VERSION: &str = "agentiam.policy.version";
/// `agentiam.tool.args_sha256`: `sha256:<hex>` of the canonical tool arguments.
pub const AGENTIAM_TOOL_ARGS_SHA256: &str = "agentiam.tool.args_sha256";
/// The behaviour check's anomaly score (0..=100), when it found something unusual.
pub const AGENTIAM_ANOMALY_SCORE: &str = "agentiam.anomaly.score";
/// The anomaly's explanations, strongest first (on the `agentiam.anomaly` span event).
pub const AGENTIAM_ANOMALY_FINDINGS: &str = "agentiam.anomaly.findings";
/// Name of the span event every anomaly adds, whatever the decision.
pub const ANOMALY_EVENT: &str = "agentiam.anomaly";

/// Operation name of a tool execution span.
pub const OP_EXECUTE_TOOL: &str = "execute_tool";
/// Operation name of an agent invocation span.
pub const OP_INVOKE_AGENT: &str = "invoke_agent";
/// Operation name of a guardrail span.
pub const OP_RUN_GUARDRAIL: &str = "run_guardrail";
/// The `gen_ai.tool.type` recorded on tool spans: agentiam guards tools that the agent's own
/// runtime executes (the conventions' `function`).
pub const TOOL_TYPE_FUNCTION: &str = "function";
/// Name of the observable counter of events dropped by a full [`SpanQueue`] (`metrics` feature).
pub const QUEUE_DROPPED_METRIC: &str = "agentiam.telemetry.span_queue.dropped";

// ---------------------------------------------------------------------------------------------
// What the event does not carry
// ---------------------------------------------------------------------------------------------

/// What an `invoke_agent` span needs beyond the [`AuditEvent`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentSpan {
    /// `gen_ai.agent.id`; the event's SPIFFE ID when `None`.
    pub id: Option<String>,
    /// `gen_ai.agent.name`, also the name part of the span name.
    pub name: Option<String>,
    /// `gen_ai.agent.version`.
    pub version: Option<String>,
    /// `gen_ai.conversation.id`.
    pub conversation_id: Option<String>,
    /// `gen_ai.request.model`.
    pub request_model: Option<String>,
}

/// What a guardrail inspected: the agent's input or its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardrailTarget {
    /// Content going into the agent or tool (`input`).
    Input,
    /// Content coming out of it (`output`).
    Output,
}

impl GuardrailTarget {
    /// The attribute value: `input` or `output`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Input => "input",
            Self::Output => "output",
        }
    }
}

/// What a `run_guardrail` span needs beyond the [`AuditEvent`].
#[derive(Debug, Clone, PartialEq)]
pub struct GuardrailSpan {
    /// The component that ran the check, the name part of the span name (`agentiam.guard`, ...).
    pub component: String,
    /// `gen_ai.guardrail.target.type`.
    pub target_type: GuardrailTarget,
    /// `gen_ai.guardrail.target.subtype`: `tool_call`, `tool_definition`, `retrieval`, ...
    pub target_subtype: Option<String>,
    /// `gen_ai.guardrail.action.type`; derived from the outcome when `None`
    /// (allow: `none`, deny: `block`, escalate: `require_approval`, record: `log`).
    pub action_type: Option<String>,
    /// `gen_ai.guardrail.security.risk.category`.
    pub risk_category: Option<String>,
    /// `gen_ai.guardrail.security.risk.score`.
    pub risk_score: Option<f64>,
}

impl GuardrailSpan {
    /// A guardrail span description for `component` inspecting `target_type`.
    pub fn new(component: impl Into<String>, target_type: GuardrailTarget) -> Self {
        Self {
            component: component.into(),
            target_type,
            target_subtype: None,
            action_type: None,
            risk_category: None,
            risk_score: None,
        }
    }

    /// With `gen_ai.guardrail.target.subtype`.
    pub fn with_subtype(mut self, subtype: impl Into<String>) -> Self {
        self.target_subtype = Some(subtype.into());
        self
    }

    /// With a risk category and score.
    pub fn with_risk(mut self, category: impl Into<String>, score: f64) -> Self {
        self.risk_category = Some(category.into());
        self.risk_score = Some(score);
        self
    }
}

/// One span to record: an event and the span shape it becomes.
#[derive(Debug, Clone, PartialEq)]
pub enum SpanRecord {
    /// An `execute_tool` span.
    ExecuteTool(AuditEvent),
    /// An `invoke_agent` span.
    InvokeAgent(AuditEvent, AgentSpan),
    /// A `run_guardrail` span.
    RunGuardrail(AuditEvent, GuardrailSpan),
}

impl SpanRecord {
    /// The audited event.
    pub fn event(&self) -> &AuditEvent {
        match self {
            Self::ExecuteTool(e) | Self::InvokeAgent(e, _) | Self::RunGuardrail(e, _) => e,
        }
    }
}

/// The default shape of an event:
///
/// - an event with a tool call becomes `execute_tool`;
/// - kind `agent_invocation` becomes `invoke_agent` with an empty [`AgentSpan`];
/// - anything else (`token_issued`, a denial before any tool, ...) is a policy decision and
///   becomes `run_guardrail agentiam` on the `input`, with subtype `tool_call` for kind
///   `http_request`.
impl From<AuditEvent> for SpanRecord {
    fn from(event: AuditEvent) -> Self {
        if event.tool.is_some() {
            Self::ExecuteTool(event)
        } else if event.kind == "agent_invocation" {
            Self::InvokeAgent(event, AgentSpan::default())
        } else {
            let mut guardrail = GuardrailSpan::new("agentiam", GuardrailTarget::Input);
            if event.kind == "http_request" {
                guardrail.target_subtype = Some("tool_call".to_owned());
            }
            Self::RunGuardrail(event, guardrail)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Recording
// ---------------------------------------------------------------------------------------------

fn decision_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Allow => "allow",
        Outcome::Deny => "deny",
        Outcome::Escalate => "escalate",
        Outcome::Record => "record",
    }
}

fn verdict_type(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Allow => "allow",
        Outcome::Deny => "deny",
        Outcome::Escalate => "escalate",
        Outcome::Record => "warn",
    }
}

fn action_type(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Allow => "none",
        Outcome::Deny => "block",
        Outcome::Escalate => "require_approval",
        Outcome::Record => "log",
    }
}

fn push_opt(attrs: &mut Vec<KeyValue>, key: &'static str, value: Option<&String>) {
    if let Some(v) = value {
        attrs.push(KeyValue::new(key, v.clone()));
    }
}

/// The `agentiam.*` attributes every span of an event carries.
///
/// Always: `agentiam.principal`, `agentiam.delegation.depth`, `agentiam.decision`,
/// `agentiam.audit.event_id`, `agentiam.event.kind`. When present in the event:
/// `agentiam.composite_digest`, `agentiam.on_behalf_of`, `agentiam.token.jti`,
/// `agentiam.task.id`, `agentiam.reason_code`, `agentiam.policy.id`, `agentiam.policy.version`,
/// `agentiam.tool.args_sha256`, `agentiam.anomaly.score`.
pub fn agentiam_attributes(event: &AuditEvent) -> Vec<KeyValue> {
    let mut attrs = Vec::with_capacity(14);
    attrs.push(KeyValue::new(
        AGENTIAM_PRINCIPAL,
        event.agent.spiffe_id.clone(),
    ));
    push_opt(
        &mut attrs,
        AGENTIAM_COMPOSITE_DIGEST,
        event.agent.composite_digest.as_ref(),
    );
    push_opt(
        &mut attrs,
        AGENTIAM_ON_BEHALF_OF,
        event.on_behalf_of.as_ref(),
    );
    attrs.push(KeyValue::new(
        AGENTIAM_DELEGATION_DEPTH,
        i64::try_from(event.delegation_chain.len()).unwrap_or(i64::MAX),
    ));
    push_opt(&mut attrs, AGENTIAM_TOKEN_JTI, event.token_jti.as_ref());
    push_opt(&mut attrs, AGENTIAM_TASK_ID, event.task_id.as_ref());
    attrs.push(KeyValue::new(
        AGENTIAM_DECISION,
        decision_name(event.decision.outcome),
    ));
    push_opt(
        &mut attrs,
        AGENTIAM_REASON_CODE,
        event.decision.code.as_ref(),
    );
    attrs.push(KeyValue::new(
        AGENTIAM_AUDIT_EVENT_ID,
        event.event_id.clone(),
    ));
    attrs.push(KeyValue::new(AGENTIAM_EVENT_KIND, event.kind.clone()));
    push_opt(
        &mut attrs,
        AGENTIAM_POLICY_ID,
        event.decision.policy_id.as_ref(),
    );
    push_opt(
        &mut attrs,
        AGENTIAM_POLICY_VERSION,
        event.decision.policy_version.as_ref(),
    );
    if let Some(tool) = &event.tool {
        attrs.push(KeyValue::new(
            AGENTIAM_TOOL_ARGS_SHA256,
            tool.args_sha256.clone(),
        ));
    }
    if let Some(anomaly) = &event.anomaly {
        attrs.push(KeyValue::new(
            AGENTIAM_ANOMALY_SCORE,
            i64::from(anomaly.score),
        ));
    }
    attrs
}

/// The error attributes of a denial: `error.type` = reason code (`_OTHER` without one).
fn error_attributes(event: &AuditEvent, attrs: &mut Vec<KeyValue>) {
    if event.decision.outcome == Outcome::Deny {
        let code = event.decision.code.as_deref().unwrap_or("_OTHER");
        attrs.push(KeyValue::new(ERROR_TYPE, code.to_owned()));
    }
}

fn span_name(operation: &'static str, part: Option<&str>) -> Cow<'static, str> {
    match part {
        Some(p) if !p.is_empty() => Cow::Owned(format!("{operation} {p}")),
        _ => Cow::Borrowed(operation),
    }
}

fn start_time(event: &AuditEvent) -> Option<SystemTime> {
    let ms = u64::try_from(event.time_unix_ms).ok()?;
    UNIX_EPOCH.checked_add(Duration::from_millis(ms))
}

/// The remote parent named by the event's W3C trace and span ids, if both are valid.
fn parent_context(event: &AuditEvent) -> Option<Context> {
    let trace_id = TraceId::from_hex(event.trace_id.as_deref()?).ok()?;
    let span_id = SpanId::from_hex(event.span_id.as_deref()?).ok()?;
    let parent = SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    parent
        .is_valid()
        .then(|| Context::new().with_remote_span_context(parent))
}

fn record<T: Tracer>(
    tracer: &T,
    event: &AuditEvent,
    name: Cow<'static, str>,
    mut attrs: Vec<KeyValue>,
) -> SpanContext {
    error_attributes(event, &mut attrs);
    attrs.extend(agentiam_attributes(event));
    let start = start_time(event);
    let mut builder = tracer
        .span_builder(name)
        .with_kind(SpanKind::Internal)
        .with_attributes(attrs);
    if let Some(start) = start {
        builder = builder.with_start_time(start);
    }
    let mut span = match parent_context(event) {
        Some(cx) => tracer.build_with_context(builder, &cx),
        None => tracer.build(builder),
    };
    if event.decision.outcome == Outcome::Deny {
        let description = event
            .decision
            .code
            .clone()
            .unwrap_or_else(|| "denied".to_owned());
        span.set_status(Status::error(description));
    }
    if let Some(anomaly) = &event.anomaly {
        let findings: Vec<opentelemetry::StringValue> =
            anomaly.findings.iter().map(|f| f.clone().into()).collect();
        span.add_event(
            ANOMALY_EVENT,
            vec![
                KeyValue::new(AGENTIAM_ANOMALY_SCORE, i64::from(anomaly.score)),
                KeyValue::new(
                    AGENTIAM_ANOMALY_FINDINGS,
                    opentelemetry::Value::Array(opentelemetry::Array::String(findings)),
                ),
            ],
        );
    }
    let context = span.span_context().clone();
    match start {
        Some(start) => {
            let duration = Duration::from_micros(event.duration_us.unwrap_or(0));
            span.end_with_timestamp(start.checked_add(duration).unwrap_or(start));
        }
        None => span.end(),
    }
    context
}

/// Records an `execute_tool {tool}` span for a tool call event and returns its span context.
///
/// Attributes: `gen_ai.operation.name` = `execute_tool`, `gen_ai.tool.name`,
/// `gen_ai.tool.call.id` (when known), `gen_ai.tool.type` = `function`, `error.type` on a
/// denial, and the [`agentiam_attributes`]. An event without a tool call gives a span named
/// `execute_tool` without tool attributes.
pub fn record_execute_tool<T: Tracer>(tracer: &T, event: &AuditEvent) -> SpanContext {
    let mut attrs = vec![KeyValue::new(GEN_AI_OPERATION_NAME, OP_EXECUTE_TOOL)];
    if let Some(tool) = &event.tool {
        attrs.push(KeyValue::new(GEN_AI_TOOL_NAME, tool.name.clone()));
        push_opt(&mut attrs, GEN_AI_TOOL_CALL_ID, tool.call_id.as_ref());
        attrs.push(KeyValue::new(GEN_AI_TOOL_TYPE, TOOL_TYPE_FUNCTION));
    }
    let name = span_name(
        OP_EXECUTE_TOOL,
        event.tool.as_ref().map(|t| t.name.as_str()),
    );
    record(tracer, event, name, attrs)
}

/// Records an `invoke_agent {agent name}` span and returns its span context.
///
/// Attributes: `gen_ai.operation.name` = `invoke_agent`, `gen_ai.agent.id` (`agent.id`, else
/// the event's SPIFFE ID), and when given `gen_ai.agent.name`, `gen_ai.agent.version`,
/// `gen_ai.conversation.id`, `gen_ai.request.model`; `error.type` on a denial, and the
/// [`agentiam_attributes`].
pub fn record_invoke_agent<T: Tracer>(
    tracer: &T,
    event: &AuditEvent,
    agent: &AgentSpan,
) -> SpanContext {
    let id = agent
        .id
        .clone()
        .unwrap_or_else(|| event.agent.spiffe_id.clone());
    let mut attrs = vec![
        KeyValue::new(GEN_AI_OPERATION_NAME, OP_INVOKE_AGENT),
        KeyValue::new(GEN_AI_AGENT_ID, id),
    ];
    push_opt(&mut attrs, GEN_AI_AGENT_NAME, agent.name.as_ref());
    push_opt(&mut attrs, GEN_AI_AGENT_VERSION, agent.version.as_ref());
    push_opt(
        &mut attrs,
        GEN_AI_CONVERSATION_ID,
        agent.conversation_id.as_ref(),
    );
    push_opt(
        &mut attrs,
        GEN_AI_REQUEST_MODEL,
        agent.request_model.as_ref(),
    );
    let name = span_name(OP_INVOKE_AGENT, agent.name.as_deref());
    record(tracer, event, name, attrs)
}

/// Records a `run_guardrail {component}` span and returns its span context.
///
/// Attributes: `gen_ai.operation.name` = `run_guardrail`, `gen_ai.guardrail.target.type`,
/// `gen_ai.guardrail.target.subtype` (when given), `gen_ai.guardrail.verdict.type` (allow:
/// `allow`, deny: `deny`, escalate: `escalate`, record: `warn`),
/// `gen_ai.guardrail.action.type`, `gen_ai.guardrail.verdict.reason` = reason code and
/// `gen_ai.guardrail.security.policy.id` (when the decision has them), the risk category and
/// score (when given), `error.type` on a denial, and the [`agentiam_attributes`].
pub fn record_run_guardrail<T: Tracer>(
    tracer: &T,
    event: &AuditEvent,
    guardrail: &GuardrailSpan,
) -> SpanContext {
    let outcome = event.decision.outcome;
    let action = guardrail
        .action_type
        .clone()
        .unwrap_or_else(|| action_type(outcome).to_owned());
    let mut attrs = vec![
        KeyValue::new(GEN_AI_OPERATION_NAME, OP_RUN_GUARDRAIL),
        KeyValue::new(GEN_AI_GUARDRAIL_TARGET_TYPE, guardrail.target_type.as_str()),
    ];
    push_opt(
        &mut attrs,
        GEN_AI_GUARDRAIL_TARGET_SUBTYPE,
        guardrail.target_subtype.as_ref(),
    );
    attrs.push(KeyValue::new(
        GEN_AI_GUARDRAIL_VERDICT_TYPE,
        verdict_type(outcome),
    ));
    attrs.push(KeyValue::new(GEN_AI_GUARDRAIL_ACTION_TYPE, action));
    push_opt(
        &mut attrs,
        GEN_AI_GUARDRAIL_VERDICT_REASON,
        event.decision.code.as_ref(),
    );
    push_opt(
        &mut attrs,
        GEN_AI_GUARDRAIL_SECURITY_POLICY_ID,
        event.decision.policy_id.as_ref(),
    );
    push_opt(
        &mut attrs,
        GEN_AI_GUARDRAIL_SECURITY_RISK_CATEGORY,
        guardrail.risk_category.as_ref(),
    );
    if let Some(score) = guardrail.risk_score {
        attrs.push(KeyValue::new(GEN_AI_GUARDRAIL_SECURITY_RISK_SCORE, score));
    }
    let name = span_name(OP_RUN_GUARDRAIL, Some(guardrail.component.as_str()));
    record(tracer, event, name, attrs)
}

/// Records the span a [`SpanRecord`] describes and returns its span context.
pub fn record_span<T: Tracer>(tracer: &T, record: &SpanRecord) -> SpanContext {
    match record {
        SpanRecord::ExecuteTool(event) => record_execute_tool(tracer, event),
        SpanRecord::InvokeAgent(event, agent) => record_invoke_agent(tracer, event, agent),
        SpanRecord::RunGuardrail(event, guardrail) => {
            record_run_guardrail(tracer, event, guardrail)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The queue between the decision path and the exporter
// ---------------------------------------------------------------------------------------------

/// Why [`SpanQueue::try_send`] dropped an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanDropped {
    /// The queue was full.
    Full,
    /// The queue is shut down or its worker has stopped.
    Closed,
}

impl std::fmt::Display for SpanDropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Full => f.write_str("span queue full: event dropped"),
            Self::Closed => f.write_str("span queue closed: event dropped"),
        }
    }
}

impl std::error::Error for SpanDropped {}

#[derive(Debug, Default)]
struct QueueStats {
    enqueued: AtomicU64,
    dropped: AtomicU64,
    recorded: AtomicU64,
}

enum Message {
    Record(Box<SpanRecord>),
    Flush(SyncSender<()>),
}

/// A bounded queue between the decision path and a worker thread that records spans.
///
/// [`try_send`](Self::try_send) never blocks: it hands the event to the queue or, when the
/// queue is full (the tracer or its exporter is slow), drops it and counts it in
/// [`dropped`](Self::dropped). The worker records each queued event with [`record_span`], in
/// order. The queue is `Sync`: share it behind an `Arc` between decision threads.
///
/// [`flush`](Self::flush) waits until every event queued before it has been recorded (its span
/// ended and handed to the tracer's processors; call the provider's `force_flush` to push
/// those to the exporter). [`shutdown`](Self::shutdown), and dropping the queue, stop accepting
/// events, record the ones still queued and join the worker.
#[derive(Debug)]
pub struct SpanQueue {
    sender: Option<SyncSender<Message>>,
    worker: Option<JoinHandle<()>>,
    stats: Arc<QueueStats>,
    capacity: usize,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Record(r) => f.debug_tuple("Record").field(&r.event().event_id).finish(),
            Self::Flush(_) => f.write_str("Flush"),
        }
    }
}

fn run_worker<T: Tracer>(tracer: T, receiver: Receiver<Message>, stats: Arc<QueueStats>) {
    // Ends when every sender is gone and the buffer is drained.
    for message in receiver {
        match message {
            Message::Record(record) => {
                record_span(&tracer, &record);
                stats.recorded.fetch_add(1, Ordering::Relaxed);
            }
            Message::Flush(ack) => {
                let _ = ack.send(());
            }
        }
    }
}

impl SpanQueue {
    /// A queue holding at most `capacity` events (at least 1), with a worker thread named
    /// `agentiam-spans` that records them with `tracer`.
    ///
    /// # Errors
    ///
    /// [`AuditError::Io`] when the worker thread cannot be spawned.
    pub fn new<T>(tracer: T, capacity: usize) -> Result<Self, AuditError>
    where
        T: Tracer + Send + 'static,
    {
        let capacity = capacity.max(1);
        let (sender, receiver) = mpsc::sync_channel(capacity);
        let stats = Arc::new(QueueStats::default());
        let worker_stats = Arc::clone(&stats);
        let worker = std::thread::Builder::new()
            .name("agentiam-spans".to_owned())
            .spawn(move || run_worker(tracer, receiver, worker_stats))
            .map_err(|e| AuditError::Io(format!("cannot spawn the span worker: {e}")))?;
        Ok(Self {
            sender: Some(sender),
            worker: Some(worker),
            stats,
            capacity,
        })
    }

    /// Queues `record` (an [`AuditEvent`] converts with the default shape of
    /// [`SpanRecord`]'s `From`) without blocking.
    ///
    /// # Errors
    ///
    /// [`SpanDropped`] when the event was dropped (and counted in [`dropped`](Self::dropped)).
    pub fn try_send(&self, record: impl Into<SpanRecord>) -> Result<(), SpanDropped> {
        let result = match &self.sender {
            Some(sender) => match sender.try_send(Message::Record(Box::new(record.into()))) {
                Ok(()) => Ok(()),
                Err(TrySendError::Full(_)) => Err(SpanDropped::Full),
                Err(TrySendError::Disconnected(_)) => Err(SpanDropped::Closed),
            },
            None => Err(SpanDropped::Closed),
        };
        match result {
            Ok(()) => self.stats.enqueued.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.stats.dropped.fetch_add(1, Ordering::Relaxed),
        };
        result
    }

    /// Events dropped so far (queue full or closed).
    pub fn dropped(&self) -> u64 {
        self.stats.dropped.load(Ordering::Relaxed)
    }

    /// Events accepted so far.
    pub fn enqueued(&self) -> u64 {
        self.stats.enqueued.load(Ordering::Relaxed)
    }

    /// Events recorded as spans so far.
    pub fn recorded(&self) -> u64 {
        self.stats.recorded.load(Ordering::Relaxed)
    }

    /// How many events the queue holds at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Waits until every event accepted before this call has been recorded.
    ///
    /// This blocks (it is not for the decision path): it waits for room in the queue and for
    /// the worker, so it waits as long as the tracer's span processors take.
    ///
    /// # Errors
    ///
    /// [`AuditError::Closed`] when the queue is shut down or its worker has stopped.
    pub fn flush(&self) -> Result<(), AuditError> {
        let sender = self.sender.as_ref().ok_or(AuditError::Closed)?;
        let (ack, done) = mpsc::sync_channel(1);
        sender
            .send(Message::Flush(ack))
            .map_err(|_| AuditError::Closed)?;
        done.recv().map_err(|_| AuditError::Closed)
    }

    /// Stops accepting events, records those still queued and joins the worker.
    ///
    /// # Errors
    ///
    /// [`AuditError::Io`] when the worker thread panicked (a tracer panicked).
    pub fn shutdown(mut self) -> Result<(), AuditError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), AuditError> {
        drop(self.sender.take());
        match self.worker.take() {
            Some(worker) => worker
                .join()
                .map_err(|_| AuditError::Io("the span worker panicked".to_owned())),
            None => Ok(()),
        }
    }

    /// Exports the drop counter as the OpenTelemetry observable counter
    /// [`QUEUE_DROPPED_METRIC`] (unit `{event}`) on `meter`. The callback reads the same
    /// counter as [`dropped`](Self::dropped) and stays registered for the meter provider's life.
    #[cfg(feature = "metrics")]
    pub fn register_metrics(
        &self,
        meter: &opentelemetry::metrics::Meter,
    ) -> opentelemetry::metrics::ObservableCounter<u64> {
        let stats = Arc::clone(&self.stats);
        meter
            .u64_observable_counter(QUEUE_DROPPED_METRIC)
            .with_description("Audit events dropped because the span queue was full or closed")
            .with_unit("{event}")
            .with_callback(move |observer| {
                observer.observe(stats.dropped.load(Ordering::Relaxed), &[]);
            })
            .build()
    }
}

impl Drop for SpanQueue {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

// ---------------------------------------------------------------------------------------------
// OTLP export
// ---------------------------------------------------------------------------------------------

/// A tracer provider exporting spans over OTLP/HTTP (protobuf) through a batch processor
/// (its own thread, so the exporter never runs on the caller's thread).
///
/// `endpoint` is the full traces URL (`http://collector:4318/v1/traces`); with `None` the
/// exporter reads `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, then `OTEL_EXPORTER_OTLP_ENDPOINT`
/// (with `/v1/traces` appended), then uses `http://localhost:4318/v1/traces`. The resource
/// carries `service.name` = `service_name`. The HTTP client is reqwest's blocking client
/// without TLS: the endpoint must be `http://` (a local collector or sidecar).
///
/// Shut the provider down (`SdkTracerProvider::shutdown`) to flush the last batch.
///
/// # Errors
///
/// [`AuditError::Io`] when the exporter cannot be built (for example an invalid endpoint).
#[cfg(feature = "otlp")]
pub fn otlp_tracer_provider(
    endpoint: Option<&str>,
    service_name: &str,
) -> Result<opentelemetry_sdk::trace::SdkTracerProvider, AuditError> {
    use opentelemetry_otlp::{Protocol, WithExportConfig as _};

    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary);
    if let Some(endpoint) = endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    let exporter = builder
        .build()
        .map_err(|e| AuditError::Io(format!("cannot build the OTLP exporter: {e}")))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service_name.to_owned())
        .build();
    Ok(opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}
