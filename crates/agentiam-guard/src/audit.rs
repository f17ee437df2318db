//! [`AuditSink`]: every decision becomes an [`AuditEvent`] in the activity log.
//!
//! The guard's thread only clones what the event needs and puts it in a bounded queue, without a
//! system call: the worker is never asleep in the channel, it looks at the queue on its own
//! schedule. Building the event (canonical argument hash, redaction, UUID) happens on the
//! worker, which hands the log everything it found in one message.
//!
//! A burst larger than the queue is slowed down, not refused: a caller that finds the queue full
//! waits for room up to [`AuditSink::with_full_queue_wait`] (default
//! [`DEFAULT_FULL_QUEUE_WAIT`]). Only a queue still full after that, or a stopped worker, refuses
//! the record, and the guard then refuses the call (`guard.hook_failed`): an action that cannot
//! be audited does not happen.

use std::sync::Arc;
use std::sync::mpsc::{self, SyncSender};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Sender, TrySendError};

use agentiam_telemetry::otel::{GuardrailSpan, GuardrailTarget, SpanQueue, SpanRecord};
use agentiam_telemetry::{AgentRef, AuditEvent, AuditLog, RedactionPolicy};
use serde_json::Value;

use crate::decision::Decision;
use crate::hooks::{CallOutcome, DecisionSink, OutputVerdict};
use crate::request::{GuardRequest, Principal, ToolSpec};

/// The `run_guardrail` span's component name.
pub const GUARDRAIL_COMPONENT: &str = "agentiam.guard";

/// Event kind of a guard decision in the activity log.
pub const TOOL_CALL_EVENT: &str = "tool_call";
/// Event kind of what an allowed tool call returned.
pub const TOOL_RESULT_EVENT: &str = "tool_result";

enum Msg {
    Record(Box<Pending>),
    /// An event of the application's own, kept in order with the decisions.
    Event(Box<AuditEvent>),
    /// Answered once everything queued before it is in the log's queue.
    Drained(SyncSender<()>),
}

struct Pending {
    kind: &'static str,
    output_sha256: Option<String>,
    time_unix_ms: i64,
    /// The principal's and the call's strings, copied in one allocation (see [`Texts`]).
    texts: Texts,
    chain: Vec<String>,
    arguments: Arc<Value>,
    outcome: agentiam_telemetry::Decision,
    /// The worker fills in the sink's policy version (a decision's record carries it).
    versioned: bool,
    approval: Option<String>,
    anomaly: Option<agentiam_telemetry::AnomalyRecord>,
    intent: Option<agentiam_telemetry::IntentRecord>,
}

/// The strings of a record that the guard's thread copies, in one buffer: one allocation on
/// the guard's thread instead of one per string (each freed by the worker, on another thread,
/// which is what makes the allocator slow for the next caller).
struct Texts {
    buf: String,
    /// End of each field in `buf`, or `None` for an absent one, in [`Field`] order.
    ends: [Option<usize>; FIELDS],
}

#[derive(Clone, Copy)]
enum Field {
    Presenter,
    AgentDigest,
    Subject,
    Task,
    Jti,
    Tool,
    CallId,
}

const FIELDS: usize = 7;

impl Texts {
    fn new(fields: [Option<&str>; FIELDS]) -> Self {
        let mut buf = String::with_capacity(fields.iter().flatten().map(|f| f.len()).sum());
        let ends = fields.map(|f| {
            f.map(|f| {
                buf.push_str(f);
                buf.len()
            })
        });
        Self { buf, ends }
    }

    fn get(&self, field: Field) -> Option<&str> {
        let i = field as usize;
        let end = (*self.ends.get(i)?)?;
        let start = self
            .ends
            .get(..i)?
            .iter()
            .rev()
            .flatten()
            .next()
            .map_or(0, |&e| e);
        self.buf.get(start..end)
    }

    fn owned(&self, field: Field) -> Option<String> {
        self.get(field).map(str::to_owned)
    }
}

/// Results of tools that already ran, kept aside when the queue stayed full.
#[derive(Debug, Default)]
struct Overflow {
    results: Vec<Pending>,
    lost: u64,
}

impl Overflow {
    /// The overflow, also after a panic elsewhere held its lock (it is a list and a count).
    fn lock(overflow: &std::sync::Mutex<Self>) -> std::sync::MutexGuard<'_, Self> {
        overflow
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Most tool results kept aside while the queue is full (beyond it they are counted as lost).
const MAX_OVERFLOW: usize = 4096;

/// How long a decision waits for room in a full audit queue before it is refused.
pub const DEFAULT_FULL_QUEUE_WAIT: Duration = Duration::from_millis(100);

/// Writes every decision to an [`AuditLog`] from a worker thread.
#[derive(Debug)]
pub struct AuditSink {
    tx: Sender<Msg>,
    full_queue_wait: Duration,
    overflow: Arc<std::sync::Mutex<Overflow>>,
    spans: Option<Arc<SpanQueue>>,
    worker: Option<JoinHandle<()>>,
}

impl Pending {
    fn new(
        kind: &'static str,
        p: &Principal,
        tool: &str,
        call_id: Option<&str>,
        outcome: agentiam_telemetry::Decision,
    ) -> Self {
        Self {
            kind,
            output_sha256: None,
            time_unix_ms: now_ms(),
            texts: Texts::new([
                Some(p.presenter()),
                p.agent_digest(),
                Some(p.subject()),
                p.task(),
                p.token_id(),
                Some(tool),
                call_id,
            ]),
            chain: p.chain().to_vec(),
            arguments: Arc::new(Value::Null),
            outcome,
            versioned: false,
            approval: None,
            anomaly: None,
            intent: None,
        }
    }
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pending")
    }
}

impl AuditSink {
    /// Starts a worker appending to `log`, with up to `queue` decisions waiting.
    pub fn new(
        log: Arc<AuditLog>,
        redaction: RedactionPolicy,
        policy_version: impl Into<String>,
        queue: usize,
    ) -> Self {
        Self::start(log, None, redaction, policy_version.into(), queue)
    }

    /// Like [`AuditSink::new`], and also exports each decision as an OpenTelemetry
    /// `run_guardrail` span and each tool result as an `execute_tool` span through `spans`
    /// (best effort: a full span queue drops and counts; the activity log is the record).
    pub fn with_spans(
        log: Arc<AuditLog>,
        spans: Arc<SpanQueue>,
        redaction: RedactionPolicy,
        policy_version: impl Into<String>,
        queue: usize,
    ) -> Self {
        Self::start(log, Some(spans), redaction, policy_version.into(), queue)
    }

    fn start(
        log: Arc<AuditLog>,
        spans: Option<Arc<SpanQueue>>,
        redaction: RedactionPolicy,
        policy_version: String,
        queue: usize,
    ) -> Self {
        let worker_spans = spans.clone();
        let (tx, rx) = crossbeam_channel::bounded::<Msg>(queue.max(1));
        let overflow = Arc::new(std::sync::Mutex::new(Overflow::default()));
        let kept_aside = overflow.clone();
        let worker = std::thread::Builder::new()
            .name("agentiam-audit-sink".into())
            .spawn(move || {
                let build = EventBuilder {
                    redaction,
                    policy_version,
                };
                drain_forever(&rx, &log, worker_spans.as_deref(), &build, &kept_aside);
            })
            .ok();
        Self {
            tx,
            full_queue_wait: DEFAULT_FULL_QUEUE_WAIT,
            overflow,
            spans,
            worker,
        }
    }

    /// How long a decision that finds the queue full waits for room before it is refused
    /// (and its call with it). `Duration::ZERO` refuses at once.
    ///
    /// Size the queue for the bursts you expect (the activity log's durable throughput times the
    /// longest stall you accept) and let this wait absorb the rest: a caller blocks at most this
    /// long, on its own thread, and only while the queue is full.
    pub fn with_full_queue_wait(mut self, wait: Duration) -> Self {
        self.full_queue_wait = wait;
        self
    }
}

/// Shortest and longest sleep of an idle sink worker between looks at its queue.
const IDLE_POLL: (Duration, Duration) = (Duration::from_millis(1), Duration::from_millis(5));
/// Most events handed to the log at once.
const MAX_HANDOVER: usize = 1024;
/// Longest an event waits on the worker before it is handed to the log. Handing over less often
/// than the worker looks at its queue bounds the log's wake-ups, and with group commit its
/// fsyncs, to about 1,000 a second under any load.
const HANDOVER_INTERVAL: Duration = Duration::from_millis(1);

/// The sink's worker: takes what is queued without ever blocking in the channel, so a producer's
/// send never has a sleeping receiver to wake (no system call on the guard's thread). When the
/// queue is empty it hands what it built to the log in one message and sleeps, a little longer
/// each time it finds nothing (1 ms up to 5 ms); it hands events over at least every
/// [`HANDOVER_INTERVAL`] or [`MAX_HANDOVER`] events. [`AuditSink::drain`], a full queue and
/// closing wake it at once.
fn drain_forever(
    rx: &crossbeam_channel::Receiver<Msg>,
    log: &AuditLog,
    spans: Option<&SpanQueue>,
    build: &EventBuilder,
    overflow: &std::sync::Mutex<Overflow>,
) {
    let mut events: Vec<AuditEvent> = Vec::new();
    // Results kept aside while the queue was full go in once the worker is free again.
    let take_overflow = |events: &mut Vec<AuditEvent>| {
        let kept = std::mem::take(&mut Overflow::lock(overflow).results);
        events.extend(kept.into_iter().map(|p| build.event(p)));
    };
    let mut idle = IDLE_POLL.0;
    let mut handed_over = std::time::Instant::now();
    // A failed hand-over means the log is closed: stop, and later sends fail.
    let hand_over = |events: &mut Vec<AuditEvent>| log.append_all(std::mem::take(events)).is_ok();
    loop {
        match rx.try_recv() {
            Ok(msg) => {
                idle = IDLE_POLL.0;
                match msg {
                    Msg::Record(p) => {
                        let kind = p.kind;
                        let event = build.event(*p);
                        if let Some(spans) = spans {
                            let record = if kind == TOOL_RESULT_EVENT {
                                SpanRecord::ExecuteTool(event.clone())
                            } else {
                                SpanRecord::RunGuardrail(event.clone(), guardrail_span(&event))
                            };
                            // Dropped spans are counted by the queue; the log is the record.
                            let _ = spans.try_send(record);
                        }
                        events.push(event);
                    }
                    Msg::Event(event) => events.push(*event),
                    Msg::Drained(reply) => {
                        if !hand_over(&mut events) {
                            return;
                        }
                        let _ = reply.send(());
                    }
                }
                if events.len() >= MAX_HANDOVER && !hand_over(&mut events) {
                    return;
                }
            }
            Err(crossbeam_channel::TryRecvError::Empty) => {
                take_overflow(&mut events);
                let waited = handed_over.elapsed();
                if events.is_empty() {
                    handed_over = std::time::Instant::now();
                } else if waited >= HANDOVER_INTERVAL {
                    if !hand_over(&mut events) {
                        return;
                    }
                    handed_over = std::time::Instant::now();
                }
                let due = if events.is_empty() {
                    idle
                } else {
                    idle.min(HANDOVER_INTERVAL.saturating_sub(waited))
                };
                std::thread::park_timeout(due);
                idle = (idle * 2).min(IDLE_POLL.1);
            }
            Err(crossbeam_channel::TryRecvError::Disconnected) => {
                take_overflow(&mut events);
                hand_over(&mut events);
                return;
            }
        }
    }
}

impl AuditSink {
    /// Queues an event of the application's own (an agent invocation, data it read) behind the
    /// decisions already queued, so the log keeps them in the order they happened.
    /// Fails only when the log is closed.
    pub fn record(&self, event: AuditEvent) -> Result<(), String> {
        self.send(Msg::Event(Box::new(event)))
    }

    /// Queues `msg`, waiting for room as long as it takes (the worker is woken if the queue is full).
    fn send(&self, msg: Msg) -> Result<(), String> {
        let msg = match self.tx.try_send(msg) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Disconnected(_)) => return Err("audit log is closed".into()),
            Err(TrySendError::Full(msg)) => msg,
        };
        self.wake();
        self.tx
            .send(msg)
            .map_err(|_| "audit log is closed".to_owned())
    }

    /// Wakes the worker now instead of at its next look at the queue.
    fn wake(&self) {
        if let Some(worker) = &self.worker {
            worker.thread().unpark();
        }
    }

    /// Waits until every decision recorded so far has been handed to the log
    /// (then [`AuditLog::flush`] makes them durable).
    pub fn drain(&self) -> Result<(), String> {
        let (reply, done) = mpsc::sync_channel(1);
        self.send(Msg::Drained(reply))?;
        self.wake();
        done.recv().map_err(|_| "audit log is closed".to_owned())?;
        if let Some(spans) = &self.spans {
            spans.flush().map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// The `run_guardrail` span of a decision; an anomaly is its risk (category `anomaly`,
/// score 0..=1).
fn guardrail_span(event: &AuditEvent) -> GuardrailSpan {
    let span =
        GuardrailSpan::new(GUARDRAIL_COMPONENT, GuardrailTarget::Input).with_subtype("tool_call");
    match &event.anomaly {
        Some(a) => span.with_risk("anomaly", f64::from(a.score) / 100.0),
        None => span,
    }
}

/// What the worker adds to a record to make its event.
struct EventBuilder {
    redaction: RedactionPolicy,
    policy_version: String,
}

impl EventBuilder {
    fn event(&self, p: Pending) -> AuditEvent {
        let t = &p.texts;
        let mut outcome = p.outcome;
        if p.versioned {
            outcome.policy_version = Some(self.policy_version.clone());
        }
        let mut event = AuditEvent::new(
            p.kind,
            AgentRef {
                spiffe_id: t.owned(Field::Presenter).unwrap_or_default(),
                composite_digest: t.owned(Field::AgentDigest),
            },
            p.time_unix_ms,
            outcome,
        );
        event.on_behalf_of = t.owned(Field::Subject);
        event.delegation_chain = p.chain;
        event.task_id = t.owned(Field::Task);
        event.token_jti = t.owned(Field::Jti);
        event.approval_ref = p.approval;
        event.anomaly = p.anomaly;
        event.intent = p.intent;
        event.output_sha256 = p.output_sha256;
        let tool = t.get(Field::Tool).unwrap_or_default();
        let call_id = t.get(Field::CallId);
        event.tool = Some(
            match self.redaction.tool_call(tool, call_id, &p.arguments) {
                Ok(call) => call,
                // Arguments that cannot be canonicalized are recorded without values.
                Err(_) => agentiam_telemetry::ToolCall {
                    name: tool.to_owned(),
                    call_id: call_id.map(str::to_owned),
                    args_sha256: String::new(),
                    args: Value::String(agentiam_telemetry::REDACTED.to_owned()),
                },
            },
        );
        event
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl DecisionSink for AuditSink {
    fn record(
        &self,
        request: &GuardRequest<'_>,
        _tool: Option<&ToolSpec>,
        decision: &Decision,
    ) -> Result<(), String> {
        let (outcome, approval) = match decision {
            Decision::Allow(a) => (agentiam_telemetry::Decision::allow(), a.approval.clone()),
            Decision::Deny(d) => (agentiam_telemetry::Decision::deny(d.code()), None),
            Decision::NeedsConfirmation(r) => {
                let mut d = agentiam_telemetry::Decision::deny(r.code.clone());
                d.outcome = agentiam_telemetry::Outcome::Escalate;
                (d, Some(r.digest.clone()))
            }
        };
        let mut outcome = outcome;
        if let Decision::Deny(d) = decision {
            outcome.policy_id = d.policies().first().cloned();
        }
        let arguments = request.shared_arguments();
        let mut pending = Pending::new(
            TOOL_CALL_EVENT,
            request.principal,
            request.tool,
            request.call_id,
            outcome,
        );
        pending.arguments = arguments;
        pending.versioned = true;
        pending.approval = approval;
        pending.anomaly = decision
            .anomaly()
            .map(|a| agentiam_telemetry::AnomalyRecord {
                findings: a.findings.clone(),
                score: a.score,
            });
        pending.intent = decision.intent().map(|i| agentiam_telemetry::IntentRecord {
            bound: i.is_bound(),
            fixed: i.fixed.clone(),
            free: i.free.clone(),
            id: i.id.clone(),
            scopes: i.scopes.clone(),
            trusted: i.trusted,
        });
        self.enqueue(pending)
    }

    fn record_outcome(&self, o: &CallOutcome<'_>) -> Result<(), String> {
        let p = o.principal;
        let mut outcome = agentiam_telemetry::Decision::allow();
        outcome.outcome = agentiam_telemetry::Outcome::Record;
        outcome.code = match o.verdict {
            OutputVerdict::Clean => None,
            OutputVerdict::Untrusted => Some(crate::codes::OUTPUT_UNTRUSTED.into()),
            OutputVerdict::Injection(_) => Some(crate::codes::INJECTION_DETECTED.into()),
        };
        if o.failed {
            outcome.code = Some(crate::codes::TOOL_FAILED.into());
        }
        let mut pending = Pending::new(TOOL_RESULT_EVENT, p, o.tool, o.call_id, outcome);
        pending.output_sha256 = Some(agentiam_telemetry::sha256_hex(o.output.as_bytes()));
        // The tool has run: a result the queue cannot take is kept aside, not dropped.
        match self.try_enqueue(pending) {
            Ok(()) => Ok(()),
            Err((why, None)) => Err(why),
            Err((why, Some(result))) => {
                let mut overflow = Overflow::lock(&self.overflow);
                if overflow.results.len() < MAX_OVERFLOW {
                    overflow.results.push(*result);
                    Ok(())
                } else {
                    overflow.lost += 1;
                    Err(why)
                }
            }
        }
    }
}

impl AuditSink {
    /// Tool results that could not be recorded at all: the queue stayed full and
    /// the results already kept aside filled the overflow. The decisions of those calls
    /// are in the log.
    pub fn lost_results(&self) -> u64 {
        Overflow::lock(&self.overflow).lost
    }

    fn enqueue(&self, pending: Pending) -> Result<(), String> {
        self.try_enqueue(pending).map_err(|(why, _)| why)
    }

    /// Queues a record, waiting for room up to the bounded wait; a record the full queue
    /// could not take comes back with the reason.
    #[allow(clippy::type_complexity, reason = "private, two callers")]
    fn try_enqueue(&self, pending: Pending) -> Result<(), (String, Option<Box<Pending>>)> {
        let msg = match self.tx.try_send(Msg::Record(Box::new(pending))) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Disconnected(_)) => return Err(("audit log is closed".into(), None)),
            Err(TrySendError::Full(msg)) => msg,
        };
        self.wake();
        match self.tx.send_timeout(msg, self.full_queue_wait) {
            Ok(()) => Ok(()),
            Err(crossbeam_channel::SendTimeoutError::Timeout(msg)) => Err((
                format!(
                    "audit queue is full and stayed full for {} ms",
                    self.full_queue_wait.as_millis()
                ),
                match msg {
                    Msg::Record(p) => Some(p),
                    _ => None,
                },
            )),
            Err(crossbeam_channel::SendTimeoutError::Disconnected(_)) => {
                Err(("audit log is closed".into(), None))
            }
        }
    }
}

impl Drop for AuditSink {
    fn drop(&mut self) {
        // Closing the channel ends the worker after it drains the queue.
        let (tx, _) = crossbeam_channel::bounded(1);
        drop(std::mem::replace(&mut self.tx, tx));
        self.wake();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_give_back_every_field_with_absent_ones_anywhere() {
        let all = [
            "spiffe://a/p",
            "sha256:d",
            "user:alice",
            "task-1",
            "jti-1",
            "pay",
            "call-1",
        ];
        let fields = [
            Field::Presenter,
            Field::AgentDigest,
            Field::Subject,
            Field::Task,
            Field::Jti,
            Field::Tool,
            Field::CallId,
        ];
        // Every pattern of present and absent fields, empty strings included.
        for mask in 0u32..(1 << FIELDS) {
            for empty in [false, true] {
                let given: Vec<Option<&str>> = (0..FIELDS)
                    .map(|i| {
                        (mask & (1 << i) != 0).then(|| {
                            if empty && i % 2 == 0 {
                                ""
                            } else {
                                all.get(i).copied().unwrap_or_default()
                            }
                        })
                    })
                    .collect();
                let texts = Texts::new(std::array::from_fn(|i| given.get(i).copied().flatten()));
                for (i, field) in fields.iter().enumerate() {
                    assert_eq!(
                        texts.get(*field),
                        given.get(i).copied().flatten(),
                        "mask {mask:b}"
                    );
                }
            }
        }
    }
}
