//! OpenTelemetry spans: names, every attribute with its value, status, timing, parenting, and
//! the bounded queue that keeps the decision path from waiting on an exporter.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "test harness: a panic is a failed test"
)]

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use agentiam_telemetry::otel::*;
use agentiam_telemetry::{AgentRef, AuditEvent, Decision, Outcome, RedactionPolicy};
use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId, TracerProvider as _};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData, SpanExporter};
use serde_json::json;

const AGENT: &str = "spiffe://acme.test/agent/payments";
const DIGEST: &str = "sha256:0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
const T0: i64 = 1_800_000_000_123;

fn provider() -> (SdkTracerProvider, InMemorySpanExporter) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    (provider, exporter)
}

fn base_event(kind: &str, decision: Decision) -> AuditEvent {
    let mut e = AuditEvent::new(
        kind,
        AgentRef {
            spiffe_id: AGENT.into(),
            composite_digest: Some(DIGEST.into()),
        },
        T0,
        decision,
    );
    e.on_behalf_of = Some("user:alice@acme.test".into());
    e.delegation_chain = vec![
        "spiffe://acme.test/agent/planner".into(),
        "spiffe://acme.test/agent/payments".into(),
    ];
    e.task_id = Some("task-42".into());
    e.token_jti = Some("jti-7f3a".into());
    e
}

fn tool_event(decision: Decision) -> AuditEvent {
    let mut e = base_event("tool_call", decision);
    e.tool = Some(
        RedactionPolicy::default()
            .tool_call(
                "transfer_funds",
                Some("call_01"),
                &json!({"to": "acct-9", "amount": 250, "password": "hunter2"}),
            )
            .unwrap(),
    );
    e.duration_us = Some(1_500);
    e
}

fn s(v: &str) -> Value {
    Value::from(v.to_owned())
}

/// The span's attributes as a map, asserting no key appears twice.
fn attributes(span: &SpanData) -> BTreeMap<String, Value> {
    let mut map = BTreeMap::new();
    for KeyValue { key, value, .. } in &span.attributes {
        let previous = map.insert(key.as_str().to_owned(), value.clone());
        assert!(previous.is_none(), "duplicate attribute {key}");
    }
    map
}

/// The `agentiam.*` attributes `base_event` gives, plus the decision's.
fn agentiam_expected(e: &AuditEvent) -> Vec<(&'static str, Value)> {
    let mut v = vec![
        (AGENTIAM_PRINCIPAL, s(AGENT)),
        (AGENTIAM_COMPOSITE_DIGEST, s(DIGEST)),
        ("agentiam.on_behalf_of", s("user:alice@acme.test")),
        ("agentiam.delegation.depth", Value::I64(2)),
        ("agentiam.token.jti", s("jti-7f3a")),
        ("agentiam.task.id", s("task-42")),
        ("agentiam.audit.event_id", s(&e.event_id)),
        ("agentiam.event.kind", s(&e.kind)),
    ];
    let decision = match e.decision.outcome {
        Outcome::Allow => "allow",
        Outcome::Deny => "deny",
        Outcome::Escalate => "escalate",
        Outcome::Record => "record",
    };
    v.push(("agentiam.decision", s(decision)));
    if let Some(code) = &e.decision.code {
        v.push(("agentiam.reason_code", s(code)));
    }
    if let Some(p) = &e.decision.policy_id {
        v.push(("agentiam.policy.id", s(p)));
    }
    if let Some(p) = &e.decision.policy_version {
        v.push(("agentiam.policy.version", s(p)));
    }
    if let Some(t) = &e.tool {
        v.push(("agentiam.tool.args_sha256", s(&t.args_sha256)));
    }
    v
}

/// Every attribute of the span, one by one: the key set is exact and each value matches.
fn assert_attributes(span: &SpanData, expected: Vec<(&'static str, Value)>) {
    let actual = attributes(span);
    let expected: BTreeMap<String, Value> = expected
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    for (key, value) in &expected {
        assert_eq!(actual.get(key), Some(value), "attribute {key}");
    }
    let extra: Vec<&String> = actual
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    assert!(extra.is_empty(), "unexpected attributes {extra:?}");
}

fn only_span(exporter: &InMemorySpanExporter) -> SpanData {
    let mut spans = exporter.get_finished_spans().unwrap();
    assert_eq!(spans.len(), 1, "exactly one span");
    spans.pop().unwrap()
}

#[test]
fn execute_tool_allow_has_every_attribute_and_the_event_timing() {
    let (provider, exporter) = provider();
    let tracer = provider.tracer("agentiam-test");
    let mut event = tool_event(Decision {
        outcome: Outcome::Allow,
        code: None,
        policy_id: Some("payments-v2".into()),
        policy_version: Some("7".into()),
    });
    event.input = Some(RedactionPolicy::default().content("wire 250 to acct-9"));

    let returned = record_execute_tool(&tracer, &event);
    let span = only_span(&exporter);

    assert_eq!(span.name, "execute_tool transfer_funds");
    assert_eq!(span.span_kind, SpanKind::Internal);
    assert_eq!(span.status, Status::Unset);
    assert_eq!(span.span_context, returned);
    assert_eq!(
        span.start_time,
        UNIX_EPOCH + Duration::from_millis(T0 as u64)
    );
    assert_eq!(
        span.end_time.duration_since(span.start_time).unwrap(),
        Duration::from_micros(1_500)
    );
    // No trace context in the event and none active: a root span.
    assert_eq!(span.parent_span_id, SpanId::INVALID);

    let mut expected = vec![
        (GEN_AI_OPERATION_NAME, s("execute_tool")),
        (GEN_AI_TOOL_NAME, s("transfer_funds")),
        (GEN_AI_TOOL_CALL_ID, s("call_01")),
        (GEN_AI_TOOL_TYPE, s("function")),
    ];
    expected.extend(agentiam_expected(&event));
    assert_attributes(&span, expected);

    // Arguments, their values and the input are never attributes; only the hash travels.
    let dump = format!("{:?}", span.attributes);
    for secret in ["hunter2", "acct-9", "wire 250"] {
        assert!(!dump.contains(secret), "{secret} leaked into attributes");
    }
    assert_eq!(
        attributes(&span)[AGENTIAM_TOOL_ARGS_SHA256],
        s(&event.tool.as_ref().unwrap().args_sha256)
    );
}

#[test]
fn execute_tool_deny_sets_error_status_and_error_type() {
    let (provider, exporter) = provider();
    let tracer = provider.tracer("agentiam-test");
    let mut decision = Decision::deny("guard.scope_missing");
    decision.policy_id = Some("payments-v2".into());
    let event = tool_event(decision);

    record_execute_tool(&tracer, &event);
    let span = only_span(&exporter);

    assert_eq!(span.name, "execute_tool transfer_funds");
    assert_eq!(span.status, Status::error("guard.scope_missing"));
    let mut expected = vec![
        (GEN_AI_OPERATION_NAME, s("execute_tool")),
        (GEN_AI_TOOL_NAME, s("transfer_funds")),
        (GEN_AI_TOOL_CALL_ID, s("call_01")),
        (GEN_AI_TOOL_TYPE, s("function")),
        (ERROR_TYPE, s("guard.scope_missing")),
    ];
    expected.extend(agentiam_expected(&event));
    assert_attributes(&span, expected);
    assert_eq!(attributes(&span)[AGENTIAM_DECISION], s("deny"));
    assert_eq!(
        attributes(&span)[AGENTIAM_REASON_CODE],
        s("guard.scope_missing")
    );
}

#[test]
fn a_denial_without_a_code_still_errors() {
    let (provider, exporter) = provider();
    let tracer = provider.tracer("agentiam-test");
    let mut event = tool_event(Decision::deny("x"));
    event.decision.code = None;
    record_execute_tool(&tracer, &event);
    let span = only_span(&exporter);
    assert_eq!(span.status, Status::error("denied"));
    assert_eq!(attributes(&span)[ERROR_TYPE], s("_OTHER"));
    assert!(!attributes(&span).contains_key(AGENTIAM_REASON_CODE));
}

#[test]
fn invoke_agent_has_every_attribute_and_joins_the_callers_trace() {
    let (provider, exporter) = provider();
    let tracer = provider.tracer("agentiam-test");
    let mut event = base_event(
        "agent_invocation",
        Decision {
            outcome: Outcome::Record,
            code: None,
            policy_id: None,
            policy_version: None,
        },
    );
    event.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
    event.span_id = Some("00f067aa0ba902b7".into());
    let agent = AgentSpan {
        id: None,
        name: Some("Payments Assistant".into()),
        version: Some("1.4.0".into()),
        conversation_id: Some("conv_5j66UpCpwteGg4YSxUnt7lPY".into()),
        request_model: Some("gpt-4.1".into()),
    };

    record_invoke_agent(&tracer, &event, &agent);
    let span = only_span(&exporter);

    assert_eq!(span.name, "invoke_agent Payments Assistant");
    assert_eq!(span.status, Status::Unset);
    assert_eq!(
        span.span_context.trace_id(),
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap()
    );
    assert_eq!(
        span.parent_span_id,
        SpanId::from_hex("00f067aa0ba902b7").unwrap()
    );
    assert!(span.parent_span_is_remote);
    // No duration: a zero-length span at the event's time.
    assert_eq!(span.start_time, span.end_time);

    let mut expected = vec![
        (GEN_AI_OPERATION_NAME, s("invoke_agent")),
        (GEN_AI_AGENT_ID, s(AGENT)),
        (GEN_AI_AGENT_NAME, s("Payments Assistant")),
        (GEN_AI_AGENT_VERSION, s("1.4.0")),
        (GEN_AI_CONVERSATION_ID, s("conv_5j66UpCpwteGg4YSxUnt7lPY")),
        (GEN_AI_REQUEST_MODEL, s("gpt-4.1")),
    ];
    expected.extend(agentiam_expected(&event));
    assert_attributes(&span, expected);
}

#[test]
fn invoke_agent_denied_with_an_explicit_id_and_no_name() {
    let (provider, exporter) = provider();
    let tracer = provider.tracer("agentiam-test");
    let event = base_event("agent_invocation", Decision::deny("token.expired"));
    let agent = AgentSpan {
        id: Some("asst_5j66UpCpwteGg4YSxUnt7lPY".into()),
        ..AgentSpan::default()
    };
    record_invoke_agent(&tracer, &event, &agent);
    let span = only_span(&exporter);
    assert_eq!(span.name, "invoke_agent");
    assert_eq!(span.status, Status::error("token.expired"));
    let mut expected = vec![
        (GEN_AI_OPERATION_NAME, s("invoke_agent")),
        (GEN_AI_AGENT_ID, s("asst_5j66UpCpwteGg4YSxUnt7lPY")),
        (ERROR_TYPE, s("token.expired")),
    ];
    expected.extend(agentiam_expected(&event));
    assert_attributes(&span, expected);
}

#[test]
fn run_guardrail_deny_has_every_attribute() {
    let (provider, exporter) = provider();
    let tracer = provider.tracer("agentiam-test");
    let mut decision = Decision::deny("guard.data_exfiltration");
    decision.policy_id = Some("dlp-3".into());
    decision.policy_version = Some("2026-01-10".into());
    let mut event = base_event("http_request", decision);
    event.duration_us = Some(80);
    let guardrail = GuardrailSpan::new("agentiam.guard", GuardrailTarget::Output)
        .with_subtype("tool_call")
        .with_risk("sensitive_information_disclosure", 0.92);

    record_run_guardrail(&tracer, &event, &guardrail);
    let span = only_span(&exporter);

    assert_eq!(span.name, "run_guardrail agentiam.guard");
    assert_eq!(span.status, Status::error("guard.data_exfiltration"));
    assert_eq!(
        span.end_time.duration_since(span.start_time).unwrap(),
        Duration::from_micros(80)
    );
    let mut expected = vec![
        (GEN_AI_OPERATION_NAME, s("run_guardrail")),
        (GEN_AI_GUARDRAIL_TARGET_TYPE, s("output")),
        (GEN_AI_GUARDRAIL_TARGET_SUBTYPE, s("tool_call")),
        (GEN_AI_GUARDRAIL_VERDICT_TYPE, s("deny")),
        (GEN_AI_GUARDRAIL_ACTION_TYPE, s("block")),
        (
            GEN_AI_GUARDRAIL_VERDICT_REASON,
            s("guard.data_exfiltration"),
        ),
        (GEN_AI_GUARDRAIL_SECURITY_POLICY_ID, s("dlp-3")),
        (
            GEN_AI_GUARDRAIL_SECURITY_RISK_CATEGORY,
            s("sensitive_information_disclosure"),
        ),
        (GEN_AI_GUARDRAIL_SECURITY_RISK_SCORE, Value::F64(0.92)),
        (ERROR_TYPE, s("guard.data_exfiltration")),
    ];
    expected.extend(agentiam_expected(&event));
    assert_attributes(&span, expected);
}

#[test]
fn guardrail_verdict_and_action_follow_the_outcome() {
    let cases = [
        (Outcome::Allow, "allow", "none", Status::Unset),
        (
            Outcome::Deny,
            "deny",
            "block",
            Status::error("guard.denied"),
        ),
        (
            Outcome::Escalate,
            "escalate",
            "require_approval",
            Status::Unset,
        ),
        (Outcome::Record, "warn", "log", Status::Unset),
    ];
    for (outcome, verdict, action, status) in cases {
        let (provider, exporter) = provider();
        let tracer = provider.tracer("agentiam-test");
        let event = base_event(
            "tool_call",
            Decision {
                outcome,
                code: Some("guard.denied".into()),
                policy_id: None,
                policy_version: None,
            },
        );
        record_run_guardrail(
            &tracer,
            &event,
            &GuardrailSpan::new("agentiam.guard", GuardrailTarget::Input),
        );
        let span = only_span(&exporter);
        let attrs = attributes(&span);
        assert_eq!(
            attrs[GEN_AI_GUARDRAIL_VERDICT_TYPE],
            s(verdict),
            "{outcome:?}"
        );
        assert_eq!(
            attrs[GEN_AI_GUARDRAIL_ACTION_TYPE],
            s(action),
            "{outcome:?}"
        );
        assert_eq!(attrs[GEN_AI_GUARDRAIL_TARGET_TYPE], s("input"));
        assert_eq!(span.status, status, "{outcome:?}");
        assert_eq!(
            attrs.contains_key(ERROR_TYPE),
            outcome == Outcome::Deny,
            "{outcome:?}"
        );
    }
}

#[test]
fn events_take_their_default_span_shape() {
    let (provider, exporter) = provider();
    let tracer = provider.tracer("agentiam-test");
    let records: Vec<SpanRecord> = vec![
        tool_event(Decision::allow()).into(),
        base_event("agent_invocation", Decision::allow()).into(),
        base_event("http_request", Decision::deny("guard.host_not_allowed")).into(),
        base_event("token_issued", Decision::allow()).into(),
    ];
    for r in &records {
        record_span(&tracer, r);
    }
    let spans = exporter.get_finished_spans().unwrap();
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_ref()).collect();
    assert_eq!(
        names,
        [
            "execute_tool transfer_funds",
            "invoke_agent",
            "run_guardrail agentiam",
            "run_guardrail agentiam",
        ]
    );
    assert_eq!(
        attributes(&spans[2])[GEN_AI_GUARDRAIL_TARGET_SUBTYPE],
        s("tool_call")
    );
    assert!(!attributes(&spans[3]).contains_key(GEN_AI_GUARDRAIL_TARGET_SUBTYPE));
    for (span, record) in spans.iter().zip(&records) {
        assert_eq!(
            attributes(span)[AGENTIAM_AUDIT_EVENT_ID],
            s(&record.event().event_id)
        );
    }
}

// ----- The queue -----------------------------------------------------------------------------

/// An exporter whose every export waits until the gate opens, and says when it is waiting.
#[derive(Debug, Clone)]
struct GatedExporter {
    inner: InMemorySpanExporter,
    open: Arc<(Mutex<bool>, Condvar)>,
    waiting: mpsc::Sender<()>,
}

impl GatedExporter {
    fn release(open: &Arc<(Mutex<bool>, Condvar)>) {
        *open.0.lock().unwrap() = true;
        open.1.notify_all();
    }
}

/// Opens the gate when dropped, so a failed assertion cannot leave the worker blocked (and the
/// queue's drop joining it forever).
struct OpenOnDrop(Arc<(Mutex<bool>, Condvar)>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        if let Ok(mut open) = self.0.0.lock() {
            *open = true;
        }
        self.0.1.notify_all();
    }
}

impl SpanExporter for GatedExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let _ = self.waiting.send(());
        {
            let (lock, cvar) = &*self.open;
            let mut open = lock.lock().unwrap();
            while !*open {
                open = cvar.wait(open).unwrap();
            }
        }
        self.inner.export(batch).await
    }
}

#[test]
fn a_full_queue_drops_and_counts_without_blocking_and_flush_exports_the_rest() {
    const CAPACITY: usize = 4;
    const OVERFLOW: usize = 6;
    let inner = InMemorySpanExporter::default();
    let open = Arc::new((Mutex::new(false), Condvar::new()));
    let (waiting_tx, waiting_rx) = mpsc::channel();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(GatedExporter {
            inner: inner.clone(),
            open: Arc::clone(&open),
            waiting: waiting_tx,
        })
        .build();
    let queue = Arc::new(SpanQueue::new(provider.tracer("agentiam-test"), CAPACITY).unwrap());
    let _open_on_failure = OpenOnDrop(Arc::clone(&open));
    assert_eq!(queue.capacity(), CAPACITY);

    // The worker takes the first event and blocks in the exporter: the consumer is stuck.
    let first = tool_event(Decision::allow());
    let mut accepted_ids = vec![first.event_id.clone()];
    queue.try_send(first).unwrap();
    waiting_rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the worker reached the exporter");

    // Fill past capacity from another thread, so a blocking send would fail the test
    // by timeout rather than hang it.
    let events: Vec<AuditEvent> = (0..CAPACITY + OVERFLOW)
        .map(|_| tool_event(Decision::allow()))
        .collect();
    let ids: Vec<String> = events.iter().map(|e| e.event_id.clone()).collect();
    let (done_tx, done_rx) = mpsc::channel();
    let sender = Arc::clone(&queue);
    std::thread::spawn(move || {
        let results: Vec<Result<(), SpanDropped>> =
            events.into_iter().map(|e| sender.try_send(e)).collect();
        done_tx.send(results).unwrap();
    });
    // The exporter stays shut until after this returns, so a send that waited for room would
    // never return: answering at all is the proof that try_send does not block.
    let results = done_rx
        .recv_timeout(Duration::from_secs(120))
        .expect("try_send returned while the consumer was blocked");

    let expected: Vec<Result<(), SpanDropped>> = (0..CAPACITY)
        .map(|_| Ok(()))
        .chain((0..OVERFLOW).map(|_| Err(SpanDropped::Full)))
        .collect();
    assert_eq!(results, expected);
    assert_eq!(queue.dropped(), OVERFLOW as u64);
    assert_eq!(queue.enqueued(), 1 + CAPACITY as u64);
    accepted_ids.extend(ids.into_iter().take(CAPACITY));

    // Nothing reached the exporter while it was blocked.
    assert!(inner.get_finished_spans().unwrap().is_empty());

    GatedExporter::release(&open);
    queue.flush().unwrap();

    let spans = inner.get_finished_spans().unwrap();
    assert_eq!(spans.len(), accepted_ids.len());
    assert_eq!(queue.recorded(), accepted_ids.len() as u64);
    let exported_ids: Vec<Value> = spans
        .iter()
        .map(|s| attributes(s)[AGENTIAM_AUDIT_EVENT_ID].clone())
        .collect();
    let accepted: Vec<Value> = accepted_ids.iter().map(|id| s(id)).collect();
    assert_eq!(exported_ids, accepted, "accepted events, in order");

    // With room again, events are accepted and the counter stays put.
    queue.try_send(tool_event(Decision::allow())).unwrap();
    queue.flush().unwrap();
    assert_eq!(inner.get_finished_spans().unwrap().len(), CAPACITY + 2);
    assert_eq!(queue.dropped(), OVERFLOW as u64);
}

#[test]
fn shutdown_records_every_queued_event() {
    let (provider, exporter) = provider();
    let queue = SpanQueue::new(provider.tracer("agentiam-test"), 64).unwrap();
    let mut sent = 0;
    for i in 0..20 {
        let event = if i % 2 == 0 {
            tool_event(Decision::allow())
        } else {
            base_event("http_request", Decision::deny("guard.host_not_allowed"))
        };
        if queue.try_send(event).is_ok() {
            sent += 1;
        }
    }
    assert_eq!(sent + queue.dropped(), 20);
    queue.shutdown().unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    assert_eq!(spans.len() as u64, sent);
    assert_eq!(
        spans
            .iter()
            .filter(|s| s.name == "run_guardrail agentiam")
            .count() as u64,
        sent / 2
    );
}

#[test]
fn dropping_the_queue_drains_it() {
    let (provider, exporter) = provider();
    {
        let queue = SpanQueue::new(provider.tracer("agentiam-test"), 8).unwrap();
        for _ in 0..5 {
            queue.try_send(tool_event(Decision::allow())).unwrap();
        }
    }
    assert_eq!(exporter.get_finished_spans().unwrap().len(), 5);
}

#[test]
fn a_zero_capacity_is_raised_to_one() {
    let (provider, _exporter) = provider();
    let queue = SpanQueue::new(provider.tracer("agentiam-test"), 0).unwrap();
    assert_eq!(queue.capacity(), 1);
}

#[cfg(feature = "metrics")]
#[test]
fn the_drop_counter_is_an_opentelemetry_metric() {
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

    let inner = InMemorySpanExporter::default();
    let open = Arc::new((Mutex::new(false), Condvar::new()));
    let (waiting_tx, waiting_rx) = mpsc::channel();
    let tracer_provider = SdkTracerProvider::builder()
        .with_simple_exporter(GatedExporter {
            inner,
            open: Arc::clone(&open),
            waiting: waiting_tx,
        })
        .build();
    let queue = SpanQueue::new(tracer_provider.tracer("agentiam-test"), 1).unwrap();
    let _open_on_failure = OpenOnDrop(Arc::clone(&open));
    let metric_exporter = InMemoryMetricExporter::default();
    let meter_provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(metric_exporter.clone()).build())
        .build();
    let _counter = queue.register_metrics(&meter_provider.meter("agentiam-test"));

    queue.try_send(tool_event(Decision::allow())).unwrap();
    waiting_rx.recv_timeout(Duration::from_secs(120)).unwrap();
    queue.try_send(tool_event(Decision::allow())).unwrap();
    for _ in 0..3 {
        assert_eq!(
            queue.try_send(tool_event(Decision::allow())),
            Err(SpanDropped::Full)
        );
    }
    meter_provider.force_flush().unwrap();
    GatedExporter::release(&open);

    let metrics = metric_exporter.get_finished_metrics().unwrap();
    let last = metrics.last().expect("a collection");
    let metric = last
        .scope_metrics()
        .flat_map(|s| s.metrics())
        .find(|m| m.name() == QUEUE_DROPPED_METRIC)
        .expect("the drop counter is exported");
    let AggregatedMetrics::U64(MetricData::Sum(sum)) = metric.data() else {
        panic!("a u64 sum, got {:?}", metric.data());
    };
    assert!(sum.is_monotonic());
    let values: Vec<u64> = sum.data_points().map(|p| p.value()).collect();
    assert_eq!(values, [3]);
    assert_eq!(queue.dropped(), 3);
}

#[cfg(feature = "otlp")]
#[test]
fn otlp_provider_builds_without_a_collector_and_rejects_a_bad_endpoint() {
    let provider = otlp_tracer_provider(Some("http://127.0.0.1:4318/v1/traces"), "agentiam-test")
        .expect("the provider builds; nothing is sent until a span ends");
    provider.shutdown().unwrap();
    assert!(otlp_tracer_provider(Some("not a uri"), "agentiam-test").is_err());
}
