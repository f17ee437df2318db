#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "benchmark harness"
)]
//! Activity-log throughput against the design targets and against SQLite, in one run.
//!
//! - Target A, ">= 1M appends/s in memory": `AuditLog` on a `MemStore` with
//!   `Durability::Interval(1 h)` (no syncs), N pre-built events moved in with `append()`, then
//!   one `flush()`; wall clock from the first append to the flush's return. The same run on a
//!   store that keeps nothing is printed beside it, to show what the in-memory store's own
//!   memory growth costs.
//! - Target B, ">= 20k durable records/s with group commit": `AuditLog` on a `FileStore` with
//!   `Durability::Batch`, K writer threads each calling `append_durable` in a loop; durable
//!   records/s and per-call commit latency p50/p99; once appending to the segment (the
//!   default) and once with the segment preallocated (`LogConfig::preallocate`, 1 MiB), which
//!   rewrites allocated space so `fdatasync` has no size change to persist.
//! - Peer: SQLite (rusqlite, bundled) inserting the same JSON text (`serde_json::to_string`
//!   of each event, serialized inside the timed loop as the log canonicalizes inside its own)
//!   into `(seq INTEGER PRIMARY KEY, body TEXT)`: WAL with `synchronous=FULL` (and `NORMAL`
//!   as an extra line) on the same disk, in transactions of the batch size the log achieved
//!   (and a fixed 256); and `:memory:` for the in-memory comparison.
//!
//! A custom `main` with `Instant` loops over fixed counts, each measurement repeated 3 times
//! (agentiam and SQLite interleaved) and the median taken. It prints figures and ratios and
//! never asserts on timings. `-- --quick` runs 10x smaller counts; other arguments are ignored.
//!
//! Run with `cargo bench -p agentiam-telemetry --bench audit_log`.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use agentiam_telemetry::{
    AgentRef, AuditEvent, AuditLog, Decision, Durability, FileStore, LogConfig, MemStore, Outcome,
    RedactionPolicy, SegmentStore, ToolCall, merkle,
};
use serde_json::json;

const TARGET_MEM_PER_S: f64 = 1_000_000.0;
const TARGET_DURABLE_PER_S: f64 = 20_000.0;
const REPS: usize = 3;
const WRITER_THREADS: [usize; 2] = [8, 32];
const SQLITE_FIXED_BATCH: usize = 256;
/// Preallocation step for the preallocated durable runs.
const PREALLOCATE: u64 = 1 << 20;
const SQLITE_MEM_BATCH: usize = 4096;

struct Scale {
    in_memory: usize,
    durable: usize,
    breakdown: usize,
}

/// Everything about an event that does not change per record (the tool call is built once:
/// its canonical hash is the caller's cost, not the log's).
struct Template {
    tool: ToolCall,
}

impl Template {
    fn new() -> Self {
        let tool = RedactionPolicy::default()
            .tool_call(
                "approve_payment",
                Some("call-1"),
                &json!({"amount": 420, "currency": "USD", "to": "acct-1"}),
            )
            .expect("tool call");
        Self { tool }
    }

    fn event(&self, i: usize) -> AuditEvent {
        let mut event = AuditEvent::new(
            "tool_call",
            AgentRef {
                spiffe_id: "spiffe://acme.example/ns/payments/sa/ap-agent".into(),
                composite_digest: Some(
                    "sha256:9f2c4e6a8b0d1f3e5a7c9b1d3f5e7a9c0b2d4f6e8a0c2e4f6a8b0d2f4e6a8c0b"
                        .into(),
                ),
            },
            1_764_000_000_000 + i64::try_from(i).unwrap(),
            Decision {
                outcome: Outcome::Allow,
                code: None,
                policy_id: Some("payments-approval".into()),
                policy_version: Some("2026-11-01".into()),
            },
        );
        event.on_behalf_of = Some("user:alice@acme.example".into());
        event.task_id = Some(format!("task-{:08}", i / 16));
        event.token_jti = Some(format!("jti-7c1e2a94-{i:012}"));
        event.trace_id = Some(format!("4bf92f3577b34da6a3ce{i:012x}"));
        event.span_id = Some(format!("00f0{i:012x}"));
        event.tool = Some(self.tool.clone());
        event.data_accessed = vec![format!("ledger://acme/ar/invoice-{i}")];
        event.duration_us = Some(1_250);
        event
    }

    fn events(&self, n: usize) -> Vec<AuditEvent> {
        (0..n).map(|i| self.event(i)).collect()
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn per_s(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn fmt_rate(r: f64) -> String {
    if r >= 1_000_000.0 {
        format!("{:.2}M/s", r / 1_000_000.0)
    } else {
        format!("{:.1}k/s", r / 1_000.0)
    }
}

fn verdict(got: f64, target: f64) -> &'static str {
    if got >= target { "MET" } else { "MISSED" }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn us(d: Duration) -> String {
    format!("{:.0} us", d.as_secs_f64() * 1e6)
}

/// The mount (device, fstype, mount point) holding `path`, from /proc/mounts.
fn filesystem_of(path: &Path) -> String {
    let Ok(path) = path.canonicalize() else {
        return "unknown".into();
    };
    let Ok(mounts) = std::fs::read_to_string("/proc/mounts") else {
        return "unknown (no /proc/mounts)".into();
    };
    let mut best: Option<(usize, String)> = None;
    for line in mounts.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 3 {
            continue;
        }
        let mount = Path::new(f[1]);
        if path.starts_with(mount) {
            let len = f[1].len();
            if best.as_ref().is_none_or(|(l, _)| len > *l) {
                best = Some((len, format!("{} ({}) mounted at {}", f[0], f[2], f[1])));
            }
        }
    }
    best.map_or_else(|| "unknown".into(), |(_, s)| s)
}

// ---------------------------------------------------------------------------------------
// Per-record encode cost, from public pieces (mirrors the writer's record encoding).

fn time_per_op(events: &[AuditEvent], mut f: impl FnMut(&AuditEvent, usize) -> usize) -> f64 {
    let mut runs = Vec::new();
    for _ in 0..REPS {
        let start = Instant::now();
        let mut sink = 0usize;
        for (i, e) in events.iter().enumerate() {
            sink = sink.wrapping_add(f(e, i));
        }
        black_box(sink);
        runs.push(start.elapsed().as_secs_f64() * 1e9 / events.len() as f64);
    }
    median(runs)
}

fn hex32(h: &[u8; 32]) -> String {
    let mut s = String::with_capacity(64);
    for b in h {
        s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        s.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    s
}

/// The writer's per-record work, rebuilt from the public API: canonical JSON of the event,
/// the hashed body, the RFC 6962 leaf hash, the line with the hash, and the Merkle frontier.
fn encode_like_writer(event: &AuditEvent, seq: usize, prev: &mut [u8; 32]) -> usize {
    let event_json = serde_json_canonicalizer::to_string(event).unwrap();
    let prev_hex = hex32(prev);
    let body = format!(r#"{{"event":{event_json},"prev":"{prev_hex}","seq":{seq}}}"#);
    let hash = merkle::leaf_hash(body.as_bytes());
    let line = format!(
        r#"{{"event":{event_json},"hash":"{}","prev":"{prev_hex}","seq":{seq}}}"#,
        hex32(&hash)
    ) + "\n";
    *prev = hash;
    line.len()
}

/// Prints the per-record costs; returns (old exact encode, serialize + drop) in ns per record.
fn breakdown(template: &Template, n: usize) -> (f64, f64) {
    let events = template.events(n);
    let sample = serde_json_canonicalizer::to_string(&events[0]).unwrap();
    let line_len = encode_like_writer(&events[0], 0, &mut [0; 32]);
    println!(
        "per-record cost breakdown (single thread, {n} events, median of {REPS}; \
         canonical event {} B, record line {line_len} B):",
        sample.len()
    );
    let build = {
        let mut runs = Vec::new();
        for _ in 0..REPS {
            let start = Instant::now();
            let v = template.events(n);
            runs.push(start.elapsed().as_secs_f64() * 1e9 / n as f64);
            black_box(v);
        }
        median(runs)
    };
    let clone = time_per_op(&events, |e, _| {
        let c = e.clone();
        c.event_id.len()
    });
    let drop_ns = {
        let mut runs = Vec::new();
        for _ in 0..REPS {
            let v = events.clone();
            let start = Instant::now();
            drop(v);
            runs.push(start.elapsed().as_secs_f64() * 1e9 / n as f64);
        }
        median(runs)
    };
    let plain = time_per_op(&events, |e, _| serde_json::to_string(e).unwrap().len());
    let canon = time_per_op(&events, |e, _| {
        serde_json_canonicalizer::to_string(e).unwrap().len()
    });
    let via_value = time_per_op(&events, |e, _| {
        serde_json::to_string(&serde_json::to_value(e).unwrap())
            .unwrap()
            .len()
    });
    let same_bytes = events.iter().take(100).all(|e| {
        serde_json::to_string(&serde_json::to_value(e).unwrap()).unwrap()
            == serde_json_canonicalizer::to_string(e).unwrap()
    });
    let lines: Vec<String> = events
        .iter()
        .map(|e| serde_json_canonicalizer::to_string(e).unwrap())
        .collect();
    let sha = {
        let mut runs = Vec::new();
        for _ in 0..REPS {
            let start = Instant::now();
            for l in &lines {
                black_box(merkle::leaf_hash(l.as_bytes()));
            }
            runs.push(start.elapsed().as_secs_f64() * 1e9 / n as f64);
        }
        median(runs)
    };
    let mut prev = [0u8; 32];
    let encode = time_per_op(&events, |e, i| encode_like_writer(e, i, &mut prev));
    let channel = {
        let mut runs = Vec::new();
        for _ in 0..REPS {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Box<AuditEvent>>(n);
            let v = events.clone();
            let start = Instant::now();
            for e in v {
                tx.send(Box::new(e)).unwrap();
            }
            runs.push(start.elapsed().as_secs_f64() * 1e9 / n as f64);
            drop(rx);
        }
        median(runs)
    };
    let row = |name: &str, ns: f64| {
        println!(
            "  {name:<52} {ns:>8.0} ns/record  (=> {} on one core)",
            fmt_rate(1e9 / ns)
        );
    };
    row("build event (AuditEvent::new + fields, UUIDv7)", build);
    row("clone event", clone);
    row("drop event", drop_ns);
    row("serde_json::to_string(&event)", plain);
    row(
        "serde_json_canonicalizer::to_string(&event) (exact path, only for floats/huge ints/non-ASCII keys)",
        canon,
    );
    row(
        if same_bytes {
            "serde_json to_value+to_string (same bytes as JCS here)"
        } else {
            "serde_json to_value+to_string (NOT the JCS bytes)"
        },
        via_value,
    );
    row("SHA-256 leaf hash over the canonical event", sha);
    row(
        "Box + sync_channel send (how append handed events over before the shared buffer)",
        channel,
    );
    row(
        "old encode via the exact canonicalizer (before the fast path)",
        encode,
    );
    (encode, plain + drop_ns)
}

// ---------------------------------------------------------------------------------------
// Target A: in memory.

struct MemRun {
    total: Duration,
    producer: Duration,
}

/// A store that keeps nothing: the log's own cost, without the memory an in-memory store
/// fills (for the explanation line, not a comparison).
struct DiscardStore;

impl SegmentStore for DiscardStore {
    fn segments(&self) -> std::io::Result<Vec<u64>> {
        Ok(Vec::new())
    }
    fn read(&self, _: u64) -> std::io::Result<Vec<u8>> {
        Ok(Vec::new())
    }
    fn open_for_append(&mut self, _: u64, _: u64) -> std::io::Result<()> {
        Ok(())
    }
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        black_box(bytes);
        Ok(())
    }
    fn sync(&mut self) -> std::io::Result<()> {
        Ok(())
    }
    fn write_checkpoint(&mut self, _: &str) -> std::io::Result<()> {
        Ok(())
    }
    fn read_checkpoint(&self) -> std::io::Result<Option<String>> {
        Ok(None)
    }
}

fn agentiam_in_memory(events: Vec<AuditEvent>) -> MemRun {
    in_memory_on(MemStore::new(), events)
}

fn in_memory_on(store: impl SegmentStore + 'static, events: Vec<AuditEvent>) -> MemRun {
    let n = events.len();
    let mut config = LogConfig::new("bench.example/agentiam/audit");
    config.durability = Durability::Interval(Duration::from_secs(3600));
    let log = AuditLog::open(store, config, None).unwrap();
    let start = Instant::now();
    for e in events {
        log.append(e).unwrap();
    }
    let producer = start.elapsed();
    let receipt = log.flush().unwrap();
    let total = start.elapsed();
    assert_eq!(receipt.size, n as u64);
    log.close().unwrap();
    MemRun { total, producer }
}

fn sqlite_insert(
    conn: &mut rusqlite::Connection,
    events: Vec<AuditEvent>,
    batch: usize,
) -> Duration {
    let start = Instant::now();
    let mut it = events.into_iter().enumerate().peekable();
    while it.peek().is_some() {
        let tx = conn.transaction().unwrap();
        {
            let mut stmt = tx
                .prepare_cached("INSERT INTO log (seq, body) VALUES (?1, ?2)")
                .unwrap();
            for (seq, e) in it.by_ref().take(batch) {
                let body = serde_json::to_string(&e).unwrap();
                stmt.execute(rusqlite::params![seq as i64, body]).unwrap();
            }
        }
        tx.commit().unwrap();
    }
    start.elapsed()
}

const CREATE: &str = "CREATE TABLE log (seq INTEGER PRIMARY KEY, body TEXT NOT NULL)";

fn sqlite_in_memory(events: Vec<AuditEvent>) -> Duration {
    let mut conn = rusqlite::Connection::open_in_memory().unwrap();
    conn.execute_batch(CREATE).unwrap();
    sqlite_insert(&mut conn, events, SQLITE_MEM_BATCH)
}

// ---------------------------------------------------------------------------------------
// Target B: durable with group commit.

/// A `FileStore` that counts fsyncs (to learn the batch size group commit achieved) and the
/// time the writer spends in them.
struct CountingStore {
    inner: FileStore,
    syncs: Arc<AtomicU64>,
    sync_ns: Arc<AtomicU64>,
}

impl SegmentStore for CountingStore {
    fn segments(&self) -> std::io::Result<Vec<u64>> {
        self.inner.segments()
    }
    fn read(&self, first_seq: u64) -> std::io::Result<Vec<u8>> {
        self.inner.read(first_seq)
    }
    fn open_for_append(&mut self, first_seq: u64, len: u64) -> std::io::Result<()> {
        self.inner.open_for_append(first_seq, len)
    }
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.inner.append(bytes)
    }
    fn sync(&mut self) -> std::io::Result<()> {
        let t = Instant::now();
        let r = self.inner.sync();
        let ns = u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.sync_ns.fetch_add(ns, Ordering::Relaxed);
        self.syncs.fetch_add(1, Ordering::Relaxed);
        r
    }
    fn write_checkpoint(&mut self, note: &str) -> std::io::Result<()> {
        self.inner.write_checkpoint(note)
    }
    fn read_checkpoint(&self) -> std::io::Result<Option<String>> {
        self.inner.read_checkpoint()
    }
}

struct DurableRun {
    elapsed: Duration,
    latencies: Vec<Duration>,
    mean_batch: f64,
    /// Share of the wall clock the writer spent in fsync.
    fsync_share: f64,
    mean_fsync: Duration,
}

fn agentiam_durable(
    dir: &Path,
    events: Vec<AuditEvent>,
    threads: usize,
    preallocate: u64,
) -> DurableRun {
    let n = events.len();
    let syncs = Arc::new(AtomicU64::new(0));
    let sync_ns = Arc::new(AtomicU64::new(0));
    let store = CountingStore {
        inner: FileStore::open(dir)
            .unwrap()
            .with_preallocation(preallocate),
        syncs: Arc::clone(&syncs),
        sync_ns: Arc::clone(&sync_ns),
    };
    let mut config = LogConfig::new("bench.example/agentiam/audit");
    config.durability = Durability::Batch;
    let log = Arc::new(AuditLog::open(store, config, None).unwrap());
    let syncs_at_open = syncs.load(Ordering::Relaxed);
    let sync_ns_at_open = sync_ns.load(Ordering::Relaxed);
    let mut shares: Vec<Vec<AuditEvent>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, e) in events.into_iter().enumerate() {
        shares[i % threads].push(e);
    }
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = shares
        .into_iter()
        .map(|share| {
            let log = Arc::clone(&log);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let mut lat = Vec::with_capacity(share.len());
                barrier.wait();
                for e in share {
                    let t = Instant::now();
                    log.append_durable(e).unwrap();
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let mut latencies = Vec::with_capacity(n);
    for h in handles {
        latencies.extend(h.join().unwrap());
    }
    let elapsed = start.elapsed();
    let batches = syncs.load(Ordering::Relaxed) - syncs_at_open;
    let in_sync = Duration::from_nanos(sync_ns.load(Ordering::Relaxed) - sync_ns_at_open);
    Arc::into_inner(log).unwrap().close().unwrap();
    latencies.sort_unstable();
    DurableRun {
        elapsed,
        latencies,
        mean_batch: n as f64 / batches.max(1) as f64,
        fsync_share: in_sync.as_secs_f64() / elapsed.as_secs_f64(),
        mean_fsync: in_sync / u32::try_from(batches.max(1)).unwrap(),
    }
}

fn sqlite_durable(path: &Path, events: Vec<AuditEvent>, sync: &str, batch: usize) -> Duration {
    let mut conn = rusqlite::Connection::open(path).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode.to_ascii_lowercase(), "wal");
    conn.execute_batch(&format!("PRAGMA synchronous={sync};"))
        .unwrap();
    conn.execute_batch(CREATE).unwrap();
    sqlite_insert(&mut conn, events, batch)
}

/// The disk's floor for one commit: one record-sized line and `fdatasync` (what
/// `FileStore::sync` does), one at a time; appended, or written in place into space
/// preallocated ahead with zeros (as `FileStore::with_preallocation` does).
fn fsync_floor(dir: &Path, line_len: usize, count: usize, in_place: bool) -> Vec<Duration> {
    use std::os::unix::fs::FileExt as _;
    let path = dir.join("fsync-floor.jsonl");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    if in_place {
        use std::io::Write as _;
        let zeros = vec![0u8; line_len * count];
        (&f).write_all(&zeros).unwrap();
        f.sync_all().unwrap();
    }
    let mut line = vec![b'x'; line_len];
    *line.last_mut().unwrap() = b'\n';
    let mut lat = Vec::with_capacity(count);
    for i in 0..count {
        let t = Instant::now();
        f.write_all_at(&line, (i * line_len) as u64).unwrap();
        f.sync_data().unwrap();
        lat.push(t.elapsed());
    }
    drop(f);
    std::fs::remove_file(&path).ok();
    lat.sort_unstable();
    lat
}

// ---------------------------------------------------------------------------------------

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let scale = if quick {
        Scale {
            in_memory: 20_000,
            durable: 2_000,
            breakdown: 2_000,
        }
    } else {
        Scale {
            in_memory: 200_000,
            durable: 20_000,
            breakdown: 20_000,
        }
    };
    let run_start = Instant::now();
    let template = Template::new();
    let base: PathBuf = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&base).unwrap();
    let work = tempfile::Builder::new()
        .prefix("audit-log-bench-")
        .tempdir_in(&base)
        .unwrap();
    println!(
        "audit_log bench{}: {} in-memory appends, {} durable records, {REPS} reps (median)",
        if quick { " (--quick)" } else { "" },
        scale.in_memory,
        scale.durable
    );
    println!(
        "disk: {} on {} (audit log and SQLite file side by side)",
        work.path().display(),
        filesystem_of(work.path())
    );
    println!();

    // Per-record cost.
    let (encode_ns, serialize_and_drop_ns) = breakdown(&template, scale.breakdown);
    println!();

    // Target A, interleaved with SQLite :memory:.
    let mut a_total = Vec::new();
    let mut a_producer = Vec::new();
    let mut s_mem = Vec::new();
    let mut discarded = Vec::new();
    for _ in 0..REPS {
        let run = agentiam_in_memory(template.events(scale.in_memory));
        a_total.push(per_s(scale.in_memory, run.total));
        a_producer.push(per_s(scale.in_memory, run.producer));
        let d = sqlite_in_memory(template.events(scale.in_memory));
        s_mem.push(per_s(scale.in_memory, d));
        let run = in_memory_on(DiscardStore, template.events(scale.in_memory));
        discarded.push(per_s(scale.in_memory, run.total));
    }
    let a_total = median(a_total);
    let a_producer = median(a_producer);
    let s_mem = median(s_mem);
    let discarded = median(discarded);
    println!("in memory ({} records, events pre-built):", scale.in_memory);
    println!(
        "  agentiam MemStore append x N + flush          {:>10}   target >= {}: {}",
        fmt_rate(a_total),
        fmt_rate(TARGET_MEM_PER_S),
        verdict(a_total, TARGET_MEM_PER_S)
    );
    println!(
        "  (producer side only, serializing on the caller's thread: append calls returned at {}; the old exact-canonicalizer encode alone {})",
        fmt_rate(a_producer),
        fmt_rate(1e9 / encode_ns)
    );
    println!(
        "  SQLite :memory: inserts, {SQLITE_MEM_BATCH}/txn, serde_json  {:>10}",
        fmt_rate(s_mem)
    );
    println!(
        "  (the same log on a store that keeps nothing: {}; the in-memory store's own cost is the difference)",
        fmt_rate(discarded)
    );
    println!();

    // Target B, interleaved with SQLite WAL.
    let mut floors = Vec::new();
    for (how, in_place) in [("append", false), ("in place", true)] {
        let floor = fsync_floor(work.path(), 975, if quick { 100 } else { 500 }, in_place);
        let floor_p50 = percentile(&floor, 0.50);
        floors.push(floor_p50);
        println!(
            "disk floor: 975 B {how} + fdatasync, one at a time: p50 {} p99 {} (=> {:.0} commits/s)",
            us(floor_p50),
            us(percentile(&floor, 0.99)),
            1.0 / floor_p50.as_secs_f64()
        );
    }
    let mut headline: Vec<(usize, &str, f64, f64)> = Vec::new();
    let mut durable_lines = Vec::new();
    let mut best_durable = 0.0f64;
    for &threads in &WRITER_THREADS {
        for (mode, preallocate) in [("append", 0), ("preallocated", PREALLOCATE)] {
            let mut runs: Vec<DurableRun> = Vec::new();
            let mut full = Vec::new();
            let mut normal = Vec::new();
            let mut full_fixed = Vec::new();
            for rep in 0..REPS {
                let dir = work.path().join(format!("audit-{threads}-{mode}-{rep}"));
                let run =
                    agentiam_durable(&dir, template.events(scale.durable), threads, preallocate);
                std::fs::remove_dir_all(&dir).ok();
                let batch = (run.mean_batch.round() as usize).max(1);
                runs.push(run);
                for (sync, b, out) in [
                    ("FULL", batch, &mut full),
                    ("NORMAL", batch, &mut normal),
                    ("FULL", SQLITE_FIXED_BATCH, &mut full_fixed),
                ] {
                    let db = work
                        .path()
                        .join(format!("peer-{threads}-{mode}-{rep}-{sync}-{b}.db"));
                    let d = sqlite_durable(&db, template.events(scale.durable), sync, b);
                    out.push((per_s(scale.durable, d), b));
                    for suffix in ["", "-wal", "-shm"] {
                        std::fs::remove_file(format!("{}{suffix}", db.display())).ok();
                    }
                }
            }
            runs.sort_by_key(|r| r.elapsed);
            let mid = &runs[runs.len() / 2];
            let rate = per_s(scale.durable, mid.elapsed);
            best_durable = best_durable.max(rate);
            let med = |v: &Vec<(f64, usize)>| {
                let r = median(v.iter().map(|x| x.0).collect());
                let mut b: Vec<usize> = v.iter().map(|x| x.1).collect();
                b.sort_unstable();
                (r, b[b.len() / 2])
            };
            let (full_r, full_b) = med(&full);
            let (normal_r, normal_b) = med(&normal);
            let (fixed_r, _) = med(&full_fixed);
            durable_lines.push(format!(
                "  agentiam Batch, {threads:>2} writers x append_durable, {mode:<12} {:>10}   \
                 p50 {} p99 {}  ({:.1} records/fsync, fdatasync {} avg = {:.0}% of wall)   \
                 target >= {}: {}",
                fmt_rate(rate),
                us(percentile(&mid.latencies, 0.50)),
                us(percentile(&mid.latencies, 0.99)),
                mid.mean_batch,
                us(mid.mean_fsync),
                mid.fsync_share * 100.0,
                fmt_rate(TARGET_DURABLE_PER_S),
                verdict(rate, TARGET_DURABLE_PER_S)
            ));
            durable_lines.push(format!(
                "  SQLite WAL synchronous=FULL,   {full_b:>3}/txn                         {:>10}",
                fmt_rate(full_r)
            ));
            durable_lines.push(format!(
                "  SQLite WAL synchronous=NORMAL, {normal_b:>3}/txn                         {:>10}   (not durable per commit)",
                fmt_rate(normal_r)
            ));
            durable_lines.push(format!(
                "  SQLite WAL synchronous=FULL,   {SQLITE_FIXED_BATCH:>3}/txn                         {:>10}",
                fmt_rate(fixed_r)
            ));
            headline.push((threads, mode, rate / full_r, rate / fixed_r));
        }
    }
    println!(
        "durable ({} records, Durability::Batch, SQLite in one thread, txn = records/fsync the log achieved):",
        scale.durable
    );
    for l in durable_lines {
        println!("{l}");
    }
    println!();

    println!("ratios:");
    for (threads, mode, same, fixed) in &headline {
        println!(
            "  agentiam durable group commit ({threads} writers, {mode}) / SQLite WAL (synchronous=FULL, same batch) = {same:.2}x"
        );
        println!(
            "  agentiam durable group commit ({threads} writers, {mode}) / SQLite WAL (synchronous=FULL, {SQLITE_FIXED_BATCH}/txn) = {fixed:.2}x"
        );
    }
    if headline
        .iter()
        .any(|(_, mode, same, _)| *mode == "append" && *same < 1.0)
        && let [append, in_place] = floors[..]
    {
        println!(
            "  why appending is below 1.0x: each commit's fdatasync of a growing segment also persists its new size and blocks \
             (one line + fdatasync: {} appended, {} in place); SQLite's WAL is rewritten in place. \
             LogConfig::preallocate writes the log in place too (the preallocated rows)",
            us(append),
            us(in_place)
        );
    }
    println!(
        "  agentiam in-memory appends / SQLite :memory: inserts = {:.2}x",
        a_total / s_mem
    );
    if a_total < s_mem {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        println!(
            "  why below 1.0x here: the caller's own work, serializing and dropping its event, takes {:.2} us/record alone on one core ({}), \
             the work SQLite's loop does before its insert; with the writer hashing and storing on the machine's other core, append calls returned at {} \
             (on a store that keeps nothing, {:.2}x SQLite): on this {cores}-core VM the caller slows down beside the writer. \
             What would meet it: a caller that hands over borrowed parts of its event instead of building and dropping an owned one, or a machine where the writer's core does not slow the caller's",
            serialize_and_drop_ns / 1e3,
            fmt_rate(1e9 / serialize_and_drop_ns),
            fmt_rate(a_producer),
            discarded / s_mem
        );
    }
    println!(
        "  in-memory vs target A (1M/s): {:.2}x {}",
        a_total / TARGET_MEM_PER_S,
        verdict(a_total, TARGET_MEM_PER_S)
    );
    println!(
        "  durable (best of {WRITER_THREADS:?} writers) vs target B (20k/s): {:.2}x {}",
        best_durable / TARGET_DURABLE_PER_S,
        verdict(best_durable, TARGET_DURABLE_PER_S)
    );
    println!(
        "total bench time {:.1} s",
        run_start.elapsed().as_secs_f64()
    );
}
