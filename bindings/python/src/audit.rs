//! The activity log from Python: write events of your own, verify a log offline, read it back.

use std::sync::{Arc, OnceLock};

use agentiam_guard::AuditSink;

use agentiam_telemetry::{
    AgentRef, AuditEvent, AuditLog, Decision, FileStore, LogConfig, NoteSigner, NoteVerifier,
    Outcome, RedactionPolicy, SegmentStore,
};
use pyo3::prelude::*;
use serde_json::Value;

use crate::OrRaise as _;
use crate::{error, to_json};

/// Largest log (bytes over all segments) `read_audit_log` loads into memory.
const MAX_READ_BYTES: u64 = 256 << 20;

/// An activity log in a directory: hash-chained, Merkle-checkpointed, verifiable offline.
#[pyclass(frozen, name = "AuditLog", module = "agentiam._native")]
pub(crate) struct PyAuditLog {
    pub(crate) log: Arc<AuditLog>,
    redaction: RedactionPolicy,
    signed: bool,
    directory: String,
    /// The first guard writing to this log: events go through its queue (keeping their order
    /// with its decisions) and its redaction (the tools' `redact` names).
    attached: OnceLock<(Arc<AuditSink>, RedactionPolicy)>,
}

impl PyAuditLog {
    /// Routes later events through `sink` (if no guard did first).
    pub(crate) fn attach(&self, sink: Arc<AuditSink>, redaction: RedactionPolicy) {
        let _ = self.attached.set((sink, redaction));
    }

    pub(crate) fn open(
        py: Python<'_>,
        directory: &str,
        origin: Option<&str>,
        signer_key: Option<&str>,
        checkpoints: CheckpointPolicy,
        preallocate_bytes: u64,
    ) -> PyResult<Self> {
        let signer = signer_key
            .map(NoteSigner::from_private_key)
            .transpose()
            .or_raise(py)?;
        // A signed log is named after its key unless told otherwise: `audit verify --key` then
        // checks checkpoints whose origin is the key's name.
        let origin = match (origin, &signer) {
            (Some(origin), _) => origin.to_owned(),
            (None, Some(signer)) => NoteVerifier::from_verifier_key(&signer.verifier_key())
                .or_raise(py)?
                .name()
                .to_owned(),
            (None, None) => "agentiam/python".to_owned(),
        };
        let signed = signer.is_some();
        let mut config = LogConfig::new(origin);
        config.checkpoint_every = checkpoints.every;
        config.checkpoint_interval = checkpoints.interval;
        config.preallocate = preallocate_bytes;
        let log = py
            .detach(|| AuditLog::open_dir(directory, config, signer))
            .or_raise(py)?;
        Ok(Self {
            log: Arc::new(log),
            redaction: RedactionPolicy::default(),
            signed,
            directory: directory.to_owned(),
            attached: OnceLock::new(),
        })
    }
}

/// When a signed log signs a checkpoint by itself (it also signs one on `close`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CheckpointPolicy {
    /// After this many new records (0: never by count).
    every: u64,
    /// Or when this much time has passed since the last one with new records.
    interval: std::time::Duration,
}

impl CheckpointPolicy {
    fn new(py: Python<'_>, every: u64, interval_secs: f64) -> PyResult<Self> {
        if !(interval_secs.is_finite() && interval_secs > 0.0 && interval_secs <= 86_400.0) {
            return Err(error(
                py,
                agentiam_telemetry::codes::BAD_CHECKPOINT,
                &format!(
                    "checkpoint_interval_secs must be above 0 and at most a day, not {interval_secs}"
                ),
            ));
        }
        Ok(Self {
            every,
            interval: std::time::Duration::from_secs_f64(interval_secs),
        })
    }
}

#[pymethods]
impl PyAuditLog {
    /// Opens (or creates) the log in `directory`, recovering from a crash first. With
    /// `signer_key` (a note private key, `agentiam audit keygen`) it signs checkpoints: after
    /// `checkpoint_every` new records, after `checkpoint_interval_secs` with new records, and on
    /// `close`. `origin` defaults to the key's name (`agentiam/python` unsigned).
    /// `preallocate_bytes` (0: off) writes zeros that far ahead of the records and writes records
    /// in place, for faster durable commits; a live segment then ends in zero bytes until the log
    /// moves on or closes (at most `MAX_PREALLOCATION`, 64 MiB).
    #[new]
    #[pyo3(signature = (
        directory, origin = None, signer_key = None, checkpoint_every = 1000,
        checkpoint_interval_secs = 10.0, preallocate_bytes = 0
    ))]
    fn new(
        py: Python<'_>,
        directory: &str,
        origin: Option<&str>,
        signer_key: Option<&str>,
        checkpoint_every: u64,
        checkpoint_interval_secs: f64,
        preallocate_bytes: u64,
    ) -> PyResult<Self> {
        let checkpoints = CheckpointPolicy::new(py, checkpoint_every, checkpoint_interval_secs)?;
        Self::open(
            py,
            directory,
            origin,
            signer_key,
            checkpoints,
            preallocate_bytes,
        )
    }

    /// Whether the log signs checkpoints (it was opened with a `signer_key`).
    #[getter]
    fn signed(&self) -> bool {
        self.signed
    }

    /// Makes every event so far durable and, for a signed log, signs a final checkpoint (the
    /// `checkpoint` file in the directory), which it returns; `None` for an unsigned log.
    /// The log stays open: later events are appended after it.
    fn close(&self, py: Python<'_>) -> PyResult<Option<String>> {
        self.flush(py)?;
        if self.signed {
            return py.detach(|| self.log.checkpoint()).or_raise(py).map(Some);
        }
        Ok(None)
    }

    /// Appends one event and returns its id. `kind` names it (`agent_invocation`,
    /// `data_access`, ...); `outcome` is `record` (default), `allow`, `deny` or `escalate`;
    /// `input` is hashed (its text is not kept); `tool` with `arguments` records a call
    /// (hash of the canonical arguments, secret-looking values redacted); `time_unix_ms`
    /// defaults to now.
    #[pyo3(signature = (
        kind, spiffe_id, *, time_unix_ms = None, outcome = "record", code = None, input = None,
        tool = None, arguments = None, call_id = None, task_id = None, on_behalf_of = None,
        data_accessed = Vec::new(), composite_digest = None
    ))]
    #[allow(
        clippy::too_many_arguments,
        reason = "mirrors the Python keyword arguments"
    )]
    fn record(
        &self,
        py: Python<'_>,
        kind: &str,
        spiffe_id: &str,
        time_unix_ms: Option<i64>,
        outcome: &str,
        code: Option<String>,
        input: Option<&str>,
        tool: Option<&str>,
        arguments: Option<&Bound<'_, PyAny>>,
        call_id: Option<&str>,
        task_id: Option<String>,
        on_behalf_of: Option<String>,
        data_accessed: Vec<String>,
        composite_digest: Option<String>,
    ) -> PyResult<String> {
        let outcome = match outcome {
            "record" => Outcome::Record,
            "allow" => Outcome::Allow,
            "deny" => Outcome::Deny,
            "escalate" => Outcome::Escalate,
            other => {
                return Err(error(
                    py,
                    agentiam_telemetry::codes::SERIALIZE,
                    &format!("outcome {other:?} is not record, allow, deny or escalate"),
                ));
            }
        };
        let agent = AgentRef {
            composite_digest,
            spiffe_id: spiffe_id.to_owned(),
        };
        let decision = Decision {
            code,
            outcome,
            policy_id: None,
            policy_version: None,
        };
        let time_unix_ms = time_unix_ms.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                .unwrap_or(0)
        });
        let redaction = self.attached.get().map_or(&self.redaction, |(_, r)| r);
        let mut event = AuditEvent::new(kind, agent, time_unix_ms, decision);
        event.input = input.map(|text| redaction.content(text));
        event.task_id = task_id;
        event.on_behalf_of = on_behalf_of;
        event.data_accessed = data_accessed;
        if let Some(name) = tool {
            let args = match arguments {
                Some(a) => to_json(a, 0)
                    .map_err(|m| error(py, agentiam_telemetry::codes::SERIALIZE, &m))?,
                None => Value::Object(serde_json::Map::new()),
            };
            event.tool = Some(redaction.tool_call(name, call_id, &args).or_raise(py)?);
        }
        let id = event.event_id.clone();
        match self.attached.get() {
            Some((sink, _)) => py
                .detach(|| sink.record(event))
                .map_err(|e| error(py, agentiam_telemetry::codes::CLOSED, &e))?,
            None => py.detach(|| self.log.append(event)).or_raise(py)?,
        }
        Ok(id)
    }

    /// The directory the log lives in.
    #[getter]
    fn directory(&self) -> String {
        self.directory.clone()
    }

    /// Makes every event so far durable; returns the number of records in the log.
    fn flush(&self, py: Python<'_>) -> PyResult<u64> {
        if let Some((sink, _)) = self.attached.get() {
            py.detach(|| sink.drain())
                .map_err(|e| error(py, agentiam_telemetry::codes::CLOSED, &e))?;
        }
        py.detach(|| self.log.flush()).map(|r| r.size).or_raise(py)
    }

    /// Makes everything durable and signs a checkpoint (needs `signer_key`); returns the note.
    fn checkpoint(&self, py: Python<'_>) -> PyResult<String> {
        if !self.signed {
            return Err(error(
                py,
                agentiam_telemetry::codes::BAD_CHECKPOINT,
                "this log has no signer_key, so it cannot sign checkpoints",
            ));
        }
        py.detach(|| self.log.checkpoint()).or_raise(py)
    }
}

fn open_store(py: Python<'_>, directory: &str) -> PyResult<FileStore> {
    FileStore::open(directory).map_err(|e| error(py, agentiam_telemetry::codes::IO, &e.to_string()))
}

fn verify(
    py: Python<'_>,
    store: &FileStore,
    checkpoint: Option<&str>,
    verifier_key: Option<&str>,
) -> PyResult<agentiam_telemetry::VerifyReport> {
    let verifier = verifier_key
        .map(NoteVerifier::from_verifier_key)
        .transpose()
        .or_raise(py)?;
    let pair = match (checkpoint, verifier.as_ref()) {
        (Some(c), Some(v)) => Some((c, v)),
        (None, None) => None,
        _ => {
            return Err(error(
                py,
                agentiam_telemetry::codes::BAD_CHECKPOINT,
                "a checkpoint needs its verifier key, and the other way round",
            ));
        }
    };
    py.detach(|| agentiam_telemetry::verify_log(store, pair))
        .or_raise(py)
}

/// Verifies an activity log directory offline (and, with `checkpoint` text and the signer's
/// `verifier_key`, against that signed checkpoint); returns `(records, segments)` or raises
/// `AuditError` (`audit.tampered`, `audit.truncated`, `audit.bad_checkpoint`).
#[pyfunction]
#[pyo3(signature = (directory, checkpoint = None, verifier_key = None))]
pub(crate) fn verify_audit_log(
    py: Python<'_>,
    directory: &str,
    checkpoint: Option<&str>,
    verifier_key: Option<&str>,
) -> PyResult<(u64, usize)> {
    let store = open_store(py, directory)?;
    verify(py, &store, checkpoint, verifier_key).map(|r| (r.records, r.segments))
}

/// Verifies the log as `verify_audit_log` does, then returns its records' events as JSON
/// texts, oldest first; only the records the verification covered are returned.
#[pyfunction]
#[pyo3(signature = (directory, checkpoint = None, verifier_key = None))]
pub(crate) fn read_audit_log(
    py: Python<'_>,
    directory: &str,
    checkpoint: Option<&str>,
    verifier_key: Option<&str>,
) -> PyResult<Vec<String>> {
    let store = open_store(py, directory)?;
    let report = verify(py, &store, checkpoint, verifier_key)?;
    let limit = usize::try_from(report.records).unwrap_or(usize::MAX);
    let mut events = Vec::with_capacity(limit.min(1 << 16));
    let mut total = 0u64;
    let segments = store
        .segments()
        .map_err(|e| error(py, agentiam_telemetry::codes::IO, &e.to_string()))?;
    for segment in segments {
        let bytes = store
            .read(segment)
            .map_err(|e| error(py, agentiam_telemetry::codes::IO, &e.to_string()))?;
        total = total.saturating_add(bytes.len() as u64);
        if total > MAX_READ_BYTES {
            return Err(error(
                py,
                agentiam_telemetry::codes::IO,
                &format!(
                    "the log is over {MAX_READ_BYTES} bytes; read it with `agentiam audit tail`"
                ),
            ));
        }
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            if events.len() == limit {
                return Ok(events);
            }
            let record: Value = serde_json::from_slice(line)
                .map_err(|e| error(py, agentiam_telemetry::codes::TAMPERED, &e.to_string()))?;
            let event = record.get("event").ok_or_else(|| {
                error(
                    py,
                    agentiam_telemetry::codes::TAMPERED,
                    "a record without an event member",
                )
            })?;
            events.push(event.to_string());
        }
    }
    Ok(events)
}
