//! The writer: an append-only log with group commit, crash recovery and signed checkpoints.
//!
//! One background thread owns the storage. Appends queue to it; it writes whatever has queued
//! as one batch, fsyncs once per batch (group commit), then acknowledges durable appends.
//! On open, recovery cuts a torn tail off the last segment, never accepts a partial record,
//! and refuses (`audit.tampered`) a log whose middle was edited.

use std::ops::Range;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::checkpoint::{Checkpoint, NoteSigner};
use crate::handoff::{HandOff, Taken};
use crate::merkle::{Frontier, Hash};
use crate::record::{self, hex};
use crate::store::{FileStore, SegmentStore};
use crate::verify::{Mode, scan};
use crate::{AuditError, AuditEvent};

/// When appended records are fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync after every record.
    EveryRecord,
    /// fsync once per batch of whatever queued meanwhile (group commit). The default.
    Batch,
    /// fsync at most this often, and whenever a durable append or flush asks.
    Interval(Duration),
}

/// How a log behaves.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// The log's name, written into checkpoints (e.g. `acme.example/agentiam/audit`).
    pub origin: String,
    /// When records reach disk.
    pub durability: Durability,
    /// Sign a checkpoint after this many new records (0: never by count).
    pub checkpoint_every: u64,
    /// ... or when this much time has passed since the last one with new records.
    pub checkpoint_interval: Duration,
    /// Start a new segment when the active one exceeds this size.
    pub segment_max_bytes: u64,
    /// Most records written in one batch.
    pub max_batch: usize,
    /// Capacity of the append queue; appends wait when it is full (backpressure, never loss).
    pub queue: usize,
    /// How long the writer waits for more appends once one arrives, so that a stream of
    /// appends costs their callers no wake-up system calls and is written in batches.
    /// Durable appends, flushes, checkpoints, closing and a half-full queue end the wait at
    /// once. Zero writes whatever has queued as soon as the writer is free.
    pub linger: Duration,
    /// For a log in a directory ([`AuditLog::open_dir`]): extend the active segment this many
    /// bytes at a time ahead of its records and write them in place (0: append, the default;
    /// at most [`crate::MAX_PREALLOCATION`]). See [`FileStore::with_preallocation`].
    pub preallocate: u64,
}

impl LogConfig {
    /// Defaults: group commit, a checkpoint every 1000 records or 10 s, 64 MiB segments.
    pub fn new(origin: impl Into<String>) -> Self {
        Self {
            origin: origin.into(),
            durability: Durability::Batch,
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(10),
            segment_max_bytes: 64 << 20,
            max_batch: 4096,
            queue: 65_536,
            linger: Duration::from_millis(1),
            preallocate: 0,
        }
    }
}

/// What an append became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// Sequence number of the record (for `flush`, of the last record).
    pub seq: u64,
    /// Hex leaf hash of the record.
    pub hash: String,
    /// Records in the log.
    pub size: u64,
}

type Reply<T> = mpsc::SyncSender<Result<T, AuditError>>;

enum Msg {
    /// An event, whose canonical JSON (serialized by the caller, in parallel) is the item's
    /// payload in the hand-off.
    Append(Option<Reply<Receipt>>),
    Flush(Reply<Receipt>),
    Checkpoint(Reply<String>),
    Close(Reply<Option<String>>),
}

/// A tamper-evident, crash-safe activity log.
///
/// ```
/// use agentiam_telemetry::*;
/// # fn main() -> Result<(), AuditError> {
/// let dir = std::env::temp_dir().join(format!("agentiam-doc-{}", std::process::id()));
/// let signer = NoteSigner::generate("example/audit")?;
/// let log = AuditLog::open_dir(&dir, LogConfig::new("example/audit"), Some(signer))?;
/// let event = AuditEvent::new("tool_call", AgentRef { spiffe_id: "spiffe://acme/agent".into(), composite_digest: None }, 0, Decision::allow());
/// let receipt = log.append_durable(event)?; // returns once the record is fsynced
/// assert_eq!(receipt.seq, 0);
/// let checkpoint = log.close()?;            // final signed checkpoint
/// assert!(checkpoint.is_some());
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct AuditLog {
    queue: Arc<HandOff<Msg>>,
    writer: Option<JoinHandle<()>>,
}

/// Closes the queue when the writer thread ends, however it ends (a panic included), so that
/// callers get [`AuditError::Closed`] instead of waiting on a writer that is gone.
struct CloseOnExit<'a>(&'a HandOff<Msg>);

impl Drop for CloseOnExit<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Append(_) => "Append",
            Self::Flush(_) => "Flush",
            Self::Checkpoint(_) => "Checkpoint",
            Self::Close(_) => "Close",
        })
    }
}

struct Writer<S: SegmentStore> {
    store: S,
    config: LogConfig,
    signer: Option<NoteSigner>,
    frontier: Frontier,
    prev: Hash,
    active_len: u64,
    last_sync: Instant,
    last_checkpoint_size: u64,
    last_checkpoint_at: Instant,
    failed: Option<AuditError>,
    /// The batch's lines, kept between batches so a batch does not allocate (and, past the
    /// allocator's mmap threshold, fault in fresh pages) for its buffer.
    buf: Vec<u8>,
}

/// Largest batch buffer the writer keeps between batches; a bigger one is freed after use.
const KEPT_BUFFER: usize = 4 << 20;

fn io(e: std::io::Error) -> AuditError {
    AuditError::Io(e.to_string())
}

impl AuditLog {
    /// Opens a log in a directory (creating it), recovering from any crash first.
    pub fn open_dir(
        dir: impl Into<std::path::PathBuf>,
        config: LogConfig,
        signer: Option<NoteSigner>,
    ) -> Result<Self, AuditError> {
        let store = FileStore::open(dir)
            .map_err(io)?
            .with_preallocation(config.preallocate);
        Self::open(store, config, signer)
    }

    /// Opens a log on any store, recovering from any crash first.
    pub fn open<S: SegmentStore>(
        mut store: S,
        config: LogConfig,
        signer: Option<NoteSigner>,
    ) -> Result<Self, AuditError> {
        let scanned = scan(&store, Mode::Recover)?;
        let mut frontier = Frontier::new();
        for leaf in &scanned.leaves {
            frontier.push(*leaf);
        }
        let active = scanned.segments.last().copied().unwrap_or(0);
        store
            .open_for_append(active, scanned.last_len)
            .map_err(io)?;
        let size = frontier.size();
        let mut writer = Writer {
            store,
            config,
            signer,
            frontier,
            prev: scanned.last_hash,
            active_len: scanned.last_len,
            last_sync: Instant::now(),
            last_checkpoint_size: size,
            last_checkpoint_at: Instant::now(),
            failed: None,
            buf: Vec::new(),
        };
        let queue = Arc::new(HandOff::new(writer.config.queue, writer.config.linger));
        let handle = {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name("agentiam-audit-writer".into())
                .spawn(move || {
                    let _closed_on_exit = CloseOnExit(&queue);
                    writer.run(&queue);
                })
                .map_err(io)?
        };
        Ok(Self {
            queue,
            writer: Some(handle),
        })
    }

    /// Queues an event. It is durable once a later [`AuditLog::flush`] or durable append returns,
    /// or under [`Durability::Batch`] once its batch is written. Waits only if the queue is full.
    pub fn append(&self, event: AuditEvent) -> Result<(), AuditError> {
        crate::canonical::with_event_json(&event, |json| {
            self.queue
                .send(Msg::Append(None), json, false)
                .map_err(|_| AuditError::Closed)
        })
    }

    /// Queues events in order as one hand-over to the writer (one message, one wake-up),
    /// with the durability of [`AuditLog::append`]. An event that cannot be serialized fails the
    /// call before anything is queued.
    pub fn append_all(&self, events: Vec<AuditEvent>) -> Result<(), AuditError> {
        if events.is_empty() {
            return Ok(());
        }
        crate::canonical::with_events_json(&events, |jsons| {
            self.queue
                .send_all(jsons.map(|json| (Msg::Append(None), json)), false)
                .map_err(|_| AuditError::Closed)
        })
    }

    /// Queues a message that someone waits on (no payload).
    fn send(&self, msg: Msg) -> Result<(), AuditError> {
        self.queue
            .send(msg, &[], true)
            .map_err(|_| AuditError::Closed)
    }

    /// Appends an event and returns once it is durable (fsynced).
    pub fn append_durable(&self, event: AuditEvent) -> Result<Receipt, AuditError> {
        let (reply, rx) = mpsc::sync_channel(1);
        crate::canonical::with_event_json(&event, |json| {
            self.queue
                .send(Msg::Append(Some(reply)), json, true)
                .map_err(|_| AuditError::Closed)
        })?;
        drop(event);
        rx.recv().map_err(|_| AuditError::Closed)?
    }

    /// Makes every event appended so far durable.
    pub fn flush(&self) -> Result<Receipt, AuditError> {
        let (reply, rx) = mpsc::sync_channel(1);
        self.send(Msg::Flush(reply))?;
        rx.recv().map_err(|_| AuditError::Closed)?
    }

    /// Makes everything durable and signs a checkpoint now (needs a signer).
    pub fn checkpoint(&self) -> Result<String, AuditError> {
        let (reply, rx) = mpsc::sync_channel(1);
        self.send(Msg::Checkpoint(reply))?;
        rx.recv().map_err(|_| AuditError::Closed)?
    }

    /// Flushes, signs a final checkpoint (if there is a signer) and stops the writer.
    pub fn close(mut self) -> Result<Option<String>, AuditError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<Option<String>, AuditError> {
        let (reply, rx) = mpsc::sync_channel(1);
        let sent = self.send(Msg::Close(reply)).is_ok();
        let result = if sent {
            rx.recv().map_err(|_| AuditError::Closed)?
        } else {
            Err(AuditError::Closed)
        };
        if let Some(h) = self.writer.take() {
            let _ = h.join();
        }
        result
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        if self.writer.is_some() {
            let _ = self.shutdown();
        }
    }
}

impl<S: SegmentStore> Writer<S> {
    fn run(&mut self, queue: &HandOff<Msg>) {
        // Kept between batches, like the line buffer: freeing a large block makes the
        // allocator consolidate its free lists, which the callers' threads then wait on.
        let mut batch = Vec::new();
        let mut payloads = Vec::new();
        loop {
            match queue.take(
                self.tick(),
                self.config.max_batch,
                &mut batch,
                &mut payloads,
            ) {
                Taken::Timeout => self.periodic(),
                Taken::Batch => {
                    if self.process(&mut batch, &payloads) {
                        return;
                    }
                }
            }
            if payloads.capacity() > KEPT_BUFFER {
                payloads = Vec::new();
            }
        }
    }

    fn tick(&self) -> Duration {
        match self.config.durability {
            Durability::Interval(d) => d.min(self.config.checkpoint_interval),
            _ => self.config.checkpoint_interval,
        }
        .max(Duration::from_millis(1))
    }

    fn periodic(&mut self) {
        if self.failed.is_some() {
            return;
        }
        if let Durability::Interval(d) = self.config.durability
            && self.last_sync.elapsed() >= d
            && let Err(e) = self.sync()
        {
            self.failed = Some(e);
            return;
        }
        if self.frontier.size() > self.last_checkpoint_size
            && self.last_checkpoint_at.elapsed() >= self.config.checkpoint_interval
            && self.signer.is_some()
            && let Err(e) = self
                .sync()
                .and_then(|()| self.write_checkpoint().map(|_| ()))
        {
            self.failed = Some(e);
        }
    }

    /// Chains and buffers one event (or records why not); durable appends wait in `waiting`.
    fn append_one(
        &mut self,
        event: &[u8],
        reply: Option<Reply<Receipt>>,
        buf: &mut Vec<u8>,
        waiting: &mut Vec<(Reply<Receipt>, Receipt)>,
    ) {
        if let Some(e) = &self.failed {
            if let Some(r) = reply {
                let _ = r.send(Err(e.clone()));
            }
            return;
        }
        let seq = self.frontier.size();
        let hash = record::encode_into(seq, &self.prev, event, buf);
        self.prev = hash;
        self.frontier.push(hash);
        if let Some(r) = reply {
            waiting.push((
                r,
                Receipt {
                    seq,
                    hash: hex(&hash),
                    size: seq + 1,
                },
            ));
        }
        if self.config.durability == Durability::EveryRecord {
            if let Err(e) = self.write(buf).and_then(|()| self.sync()) {
                self.failed = Some(e);
            }
            buf.clear();
        } else if self.active_len + buf.len() as u64 >= self.config.segment_max_bytes {
            if let Err(e) = self.write(buf).and_then(|()| self.rotate()) {
                self.failed = Some(e);
            }
            buf.clear();
        }
    }

    /// Writes a batch; returns true when the writer should stop.
    fn process(&mut self, batch: &mut Vec<(Msg, Range<usize>)>, payloads: &[u8]) -> bool {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let mut waiting: Vec<(Reply<Receipt>, Receipt)> = Vec::new();
        let mut flushes: Vec<Reply<Receipt>> = Vec::new();
        let mut checkpoints: Vec<Reply<String>> = Vec::new();
        let mut close: Option<Reply<Option<String>>> = None;
        for (msg, range) in batch.drain(..) {
            match msg {
                Msg::Append(reply) => {
                    let event = payloads.get(range).unwrap_or_default();
                    self.append_one(event, reply, &mut buf, &mut waiting);
                }
                Msg::Flush(r) => flushes.push(r),
                Msg::Checkpoint(r) => checkpoints.push(r),
                Msg::Close(r) => close = Some(r),
            }
        }
        if self.failed.is_none()
            && !buf.is_empty()
            && let Err(e) = self.write(&buf)
        {
            self.failed = Some(e);
        }
        if buf.capacity() <= KEPT_BUFFER {
            buf.clear();
            self.buf = buf;
        } else {
            drop(buf);
        }
        let must_sync = match self.config.durability {
            Durability::Batch => true,
            Durability::EveryRecord => false,
            Durability::Interval(d) => self.last_sync.elapsed() >= d,
        } || !waiting.is_empty()
            || !flushes.is_empty()
            || !checkpoints.is_empty()
            || close.is_some();
        if self.failed.is_none()
            && must_sync
            && let Err(e) = self.sync()
        {
            self.failed = Some(e);
        }
        let outcome = |failed: &Option<AuditError>| failed.clone().map_or(Ok(()), Err);
        for (r, receipt) in waiting {
            let _ = r.send(outcome(&self.failed).map(|()| receipt));
        }
        let size = self.frontier.size();
        let last = Receipt {
            seq: size.saturating_sub(1),
            hash: hex(&self.prev),
            size,
        };
        for r in flushes {
            let _ = r.send(outcome(&self.failed).map(|()| last.clone()));
        }
        for r in checkpoints {
            let _ = r.send(outcome(&self.failed).and_then(|()| self.write_checkpoint()));
        }
        if self.failed.is_none()
            && self.should_checkpoint()
            && let Err(e) = self.write_checkpoint()
        {
            self.failed = Some(e);
        }
        if let Some(r) = close {
            let _ = r.send(self.finish());
            return true;
        }
        false
    }

    fn should_checkpoint(&self) -> bool {
        self.signer.is_some()
            && self.frontier.size() > self.last_checkpoint_size
            && ((self.config.checkpoint_every > 0
                && self.frontier.size() - self.last_checkpoint_size
                    >= self.config.checkpoint_every)
                || self.last_checkpoint_at.elapsed() >= self.config.checkpoint_interval)
    }

    fn finish(&mut self) -> Result<Option<String>, AuditError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.sync()?;
        if self.signer.is_some() {
            return self.write_checkpoint().map(Some);
        }
        Ok(None)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), AuditError> {
        self.store.append(bytes).map_err(io)?;
        self.active_len += bytes.len() as u64;
        Ok(())
    }

    fn sync(&mut self) -> Result<(), AuditError> {
        self.store.sync().map_err(io)?;
        self.last_sync = Instant::now();
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), AuditError> {
        self.sync()?;
        self.store
            .open_for_append(self.frontier.size(), 0)
            .map_err(io)?;
        self.active_len = 0;
        Ok(())
    }

    fn write_checkpoint(&mut self) -> Result<String, AuditError> {
        let Some(signer) = &self.signer else {
            return Err(AuditError::BadCheckpoint(
                "this log has no checkpoint signer".into(),
            ));
        };
        let note = signer.sign(&Checkpoint {
            origin: self.config.origin.clone(),
            size: self.frontier.size(),
            root: self.frontier.root(),
        });
        self.store.write_checkpoint(&note).map_err(io)?;
        self.last_checkpoint_size = self.frontier.size();
        self.last_checkpoint_at = Instant::now();
        Ok(note)
    }
}
