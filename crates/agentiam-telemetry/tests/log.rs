//! The log's promises: round trips, proofs, tamper evidence, crash consistency and recovery.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "test harness: a panic is a failed test"
)]

use std::time::Duration;

use agentiam_telemetry::*;
use proptest::prelude::*;
use serde_json::json;

const ORIGIN: &str = "agentiam.test/audit";

fn event(i: u64) -> AuditEvent {
    let mut e = AuditEvent::new(
        "tool_call",
        AgentRef {
            spiffe_id: "spiffe://acme.test/agent/a".into(),
            composite_digest: None,
        },
        1_800_000_000_000 + i as i64,
        Decision::allow(),
    );
    e.tool = Some(
        RedactionPolicy::default()
            .tool_call("pay", None, &json!({"amount": i}))
            .unwrap(),
    );
    e
}

fn signer() -> (NoteSigner, NoteVerifier) {
    let s = NoteSigner::generate(ORIGIN).unwrap();
    let v = NoteVerifier::from_verifier_key(&s.verifier_key()).unwrap();
    (s, v)
}

#[test]
fn append_close_reopen_append_verify_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (s, v) = signer();
    let key = s.private_key().unwrap();
    let mut config = LogConfig::new(ORIGIN);
    config.segment_max_bytes = 2_000; // force several segments
    let log = AuditLog::open_dir(dir.path(), config.clone(), Some(s)).unwrap();
    for i in 0..10 {
        log.append(event(i)).unwrap();
    }
    let r = log.append_durable(event(10)).unwrap();
    assert_eq!((r.seq, r.size), (10, 11));
    let first_checkpoint = log.close().unwrap().unwrap();
    let log = AuditLog::open_dir(
        dir.path(),
        config,
        Some(NoteSigner::from_private_key(&key).unwrap()),
    )
    .unwrap();
    assert_eq!(log.append_durable(event(11)).unwrap().seq, 11);
    let second = log.close().unwrap().unwrap();

    let store = FileStore::open(dir.path()).unwrap();
    assert!(store.segments().unwrap().len() > 2, "segments rotate");
    let report = verify_log(&store, Some((&second, &v))).unwrap();
    assert_eq!(report.records, 12);
    // An older checkpoint still verifies the grown log, and a consistency proof links the two.
    let old = verify_log(&store, Some((&first_checkpoint, &v))).unwrap();
    let old_cp = old.checkpoint.unwrap();
    assert_eq!(old_cp.size, 11);
    let new_cp = v.verify(&second).unwrap();
    assert_eq!(new_cp.root, report.root);
    // Every record is in the file as one JSON line readable with jq.
    let text = String::from_utf8(store.read(0).unwrap()).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["seq"], 0);
    assert_eq!(first["event"]["tool"]["name"], "pay");
}

/// Events handed over together keep their order among single appends, chain, rotate segments
/// and verify like any others.
#[test]
fn append_all_keeps_order_and_verifies() {
    let (s, v) = signer();
    let store = MemStore::new();
    let mut config = LogConfig::new(ORIGIN);
    config.segment_max_bytes = 1_500;
    let log = AuditLog::open(store.clone(), config, Some(s)).unwrap();
    log.append(event(0)).unwrap();
    log.append_all((1..40).map(event).collect()).unwrap();
    log.append_all(Vec::new()).unwrap();
    log.append(event(40)).unwrap();
    log.append_all(vec![event(41), event(42)]).unwrap();
    let checkpoint = log.close().unwrap().unwrap();
    assert!(store.segments().unwrap().len() > 2, "segments rotate");
    let report = verify_log(&store, Some((&checkpoint, &v))).unwrap();
    assert_eq!(report.records, 43);
    let amounts: Vec<u64> = logged_events(&store)
        .iter()
        .map(|e| e["time_unix_ms"].as_u64().unwrap() - 1_800_000_000_000)
        .collect();
    assert_eq!(amounts, (0..43).collect::<Vec<u64>>());
}

/// Every record's event, in log order.
fn logged_events(store: &MemStore) -> Vec<serde_json::Value> {
    store
        .segments()
        .unwrap()
        .into_iter()
        .flat_map(|seg| {
            String::from_utf8(store.read(seg).unwrap())
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["event"].clone())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn concurrent_appends_through_a_small_queue_lose_nothing_and_keep_each_callers_order() {
    // A queue of 64 and batches of 16: callers wait for room, the writer takes part of what
    // is queued, and the queue's buffer is compacted under them.
    let store = MemStore::new();
    let mut config = LogConfig::new(ORIGIN);
    config.queue = 64;
    config.max_batch = 16;
    let log = std::sync::Arc::new(AuditLog::open(store.clone(), config, None).unwrap());
    const THREADS: u64 = 4;
    const EACH: u64 = 1_500;
    let callers: Vec<_> = (0..THREADS)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..EACH {
                    let mut e = event(t * EACH + i);
                    e.task_id = Some(format!("caller-{t}"));
                    if i % 500 == 499 {
                        log.append_durable(e).unwrap();
                    } else if i % 7 == 0 {
                        log.append_all(vec![e]).unwrap();
                    } else {
                        log.append(e).unwrap();
                    }
                }
            })
        })
        .collect();
    for c in callers {
        c.join().unwrap();
    }
    assert_eq!(log.flush().unwrap().size, THREADS * EACH);
    assert_eq!(verify_log(&store, None).unwrap().records, THREADS * EACH);
    let events = logged_events(&store);
    for t in 0..THREADS {
        let seen: Vec<u64> = events
            .iter()
            .filter(|e| e["task_id"] == format!("caller-{t}"))
            .map(|e| e["time_unix_ms"].as_u64().unwrap() - 1_800_000_000_000)
            .collect();
        assert_eq!(
            seen,
            (t * EACH..(t + 1) * EACH).collect::<Vec<_>>(),
            "caller {t}"
        );
    }
}

/// A store whose writes panic: the writer thread dies.
struct PanickingStore(MemStore);

impl SegmentStore for PanickingStore {
    fn segments(&self) -> std::io::Result<Vec<u64>> {
        self.0.segments()
    }
    fn read(&self, first_seq: u64) -> std::io::Result<Vec<u8>> {
        self.0.read(first_seq)
    }
    fn open_for_append(&mut self, first_seq: u64, len: u64) -> std::io::Result<()> {
        self.0.open_for_append(first_seq, len)
    }
    fn append(&mut self, _: &[u8]) -> std::io::Result<()> {
        panic!("the disk caught fire");
    }
    fn sync(&mut self) -> std::io::Result<()> {
        self.0.sync()
    }
    fn write_checkpoint(&mut self, note: &str) -> std::io::Result<()> {
        self.0.write_checkpoint(note)
    }
    fn read_checkpoint(&self) -> std::io::Result<Option<String>> {
        self.0.read_checkpoint()
    }
}

#[test]
fn a_writer_that_dies_fails_its_callers_instead_of_leaving_them_waiting() {
    let log = AuditLog::open(
        PanickingStore(MemStore::new()),
        LogConfig::new(ORIGIN),
        None,
    )
    .unwrap();
    let (done, outcome) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let first = log.append_durable(event(0)).map(|_| ());
        // Queued, possibly while the writer is still unwinding: a plain append only promises
        // that a later flush tells.
        let _ = log.append(event(1));
        let flush = log.flush().map(|_| ());
        let after = log.append(event(2));
        let _ = done.send((first, flush, after));
    });
    let (first, flush, after) = outcome
        .recv_timeout(Duration::from_secs(30))
        .expect("a caller was left waiting on a dead writer");
    for result in [first, flush, after] {
        assert_eq!(result.unwrap_err().code(), "audit.closed");
    }
}

#[test]
fn checkpoints_come_every_n_records() {
    let store = MemStore::new();
    let (s, v) = signer();
    let mut config = LogConfig::new(ORIGIN);
    config.checkpoint_every = 5;
    config.checkpoint_interval = Duration::from_secs(3600);
    let log = AuditLog::open(store.clone(), config, Some(s)).unwrap();
    for i in 0..7 {
        log.append_durable(event(i)).unwrap();
    }
    let cp = v
        .verify(&store.read_checkpoint().unwrap().unwrap())
        .unwrap();
    assert_eq!(cp.size, 5);
    drop(log);
    let cp = v
        .verify(&store.read_checkpoint().unwrap().unwrap())
        .unwrap();
    assert_eq!(cp.size, 7, "a clean shutdown writes a final checkpoint");
}

#[test]
fn storage_failure_fails_appends_closed() {
    let store = MemStore::new();
    let log = AuditLog::open(store.clone(), LogConfig::new(ORIGIN), None).unwrap();
    log.append_durable(event(0)).unwrap();
    store.fail_after(store.ops().len());
    assert_eq!(log.append_durable(event(1)).unwrap_err().code(), "audit.io");
    assert_eq!(log.append_durable(event(2)).unwrap_err().code(), "audit.io");
}

fn sealed_log(n: u64) -> (MemStore, String, String) {
    let store = MemStore::new();
    let (s, _) = signer();
    let v = s.verifier_key();
    let log = AuditLog::open(store.clone(), LogConfig::new(ORIGIN), Some(s)).unwrap();
    for i in 0..n {
        log.append(event(i)).unwrap();
    }
    let cp = log.close().unwrap().unwrap();
    (store, cp, v)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any single-byte change to a sealed log fails verification against its checkpoint.
    #[test]
    fn a_tampered_log_never_verifies(index in any::<prop::sample::Index>(), byte in any::<u8>()) {
        static SEALED: std::sync::OnceLock<(Vec<u8>, String, String)> = std::sync::OnceLock::new();
        let (bytes, cp, vkey) = SEALED.get_or_init(|| {
            let (store, note, verifier_key) = sealed_log(5);
            (store.read(0).unwrap(), note, verifier_key)
        });
        let at = index.index(bytes.len());
        prop_assume!(bytes[at] != byte);
        let mut edited = bytes.clone();
        edited[at] = byte;
        let store = MemStore::new();
        store.set_segment(0, edited);
        let v = NoteVerifier::from_verifier_key(vkey).unwrap();
        prop_assert!(verify_log(&store, Some((cp, &v))).is_err());
    }
}

/// Replays every crash point of a run: after cutting at each operation (and tearing the
/// unsynced tail at 512 B and 4 KiB), recovery succeeds, keeps every acknowledged record,
/// never yields a partial record, verifies, and is idempotent.
#[test]
fn crash_at_every_point_keeps_acknowledged_records() {
    let store = MemStore::new();
    let mut config = LogConfig::new(ORIGIN);
    config.segment_max_bytes = 4_096;
    let log = AuditLog::open(store.clone(), config.clone(), None).unwrap();
    // (operations recorded when the ack returned, records acknowledged so far)
    let mut acks: Vec<(usize, u64)> = Vec::new();
    for i in 0..40u64 {
        if i % 3 == 0 {
            let r = log.append_durable(event(i)).unwrap();
            acks.push((store.ops().len(), r.size));
        } else {
            log.append(event(i)).unwrap();
        }
    }
    log.close().unwrap();
    let ops = store.ops().len();
    assert!(ops > 20);
    for at in 0..=ops {
        let must_have = acks
            .iter()
            .filter(|(when, _)| *when <= at)
            .map(|(_, size)| *size)
            .max()
            .unwrap_or(0);
        for torn in [0usize, 512, 4096] {
            let image = store.crash_image(at, torn);
            let reopened = AuditLog::open(image.clone(), config.clone(), None)
                .unwrap_or_else(|e| panic!("recovery failed at op {at} torn {torn}: {e}"));
            let r = reopened.flush().unwrap();
            drop(reopened);
            assert!(
                r.size >= must_have,
                "op {at} torn {torn}: {} records, {must_have} acknowledged",
                r.size
            );
            let report = verify_log(&image, None).unwrap();
            assert_eq!(report.records, r.size);
            // Idempotent: recovering again changes nothing.
            let again = AuditLog::open(image.clone(), config.clone(), None).unwrap();
            assert_eq!(again.flush().unwrap(), r);
        }
    }
}

/// A writer process killed with SIGKILL mid-stream loses nothing it acknowledged.
#[test]
fn kill_9_mid_stream_keeps_acknowledged_records() {
    kill_9_mid_stream("kill_9_mid_stream_keeps_acknowledged_records", 0);
}

/// The same with segments preallocated a few records at a time, so the kill lands in
/// preallocated space as often as not.
#[test]
fn kill_9_mid_stream_keeps_acknowledged_records_in_preallocated_segments() {
    kill_9_mid_stream(
        "kill_9_mid_stream_keeps_acknowledged_records_in_preallocated_segments",
        4096,
    );
}

fn config(preallocate: u64) -> LogConfig {
    let mut config = LogConfig::new(ORIGIN);
    config.preallocate = preallocate;
    config
}

fn kill_9_mid_stream(name: &str, preallocate: u64) {
    use std::io::BufRead;
    if let Ok(dir) = std::env::var("AGENTIAM_AUDIT_CHILD_DIR") {
        // Child: append durably forever, printing each acknowledged size.
        let log = AuditLog::open_dir(&dir, config(preallocate), None).unwrap();
        let mut out = std::io::stdout();
        for i in 0.. {
            let r = log.append_durable(event(i)).unwrap();
            use std::io::Write;
            writeln!(out, "{}", r.size).unwrap();
            out.flush().unwrap();
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env("AGENTIAM_AUDIT_CHILD_DIR", dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut acked = 0u64;
    for line in reader.lines() {
        let line = line.unwrap();
        if let Ok(n) = line.trim().parse::<u64>() {
            acked = n;
            if acked >= 300 {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    assert!(acked >= 300, "child stopped early");
    let log = AuditLog::open_dir(dir.path(), config(preallocate), None).unwrap();
    let r = log.flush().unwrap();
    assert!(
        r.size >= acked,
        "{} records after kill, {acked} acknowledged",
        r.size
    );
    drop(log);
    let report = verify_log(&FileStore::open(dir.path()).unwrap(), None).unwrap();
    assert_eq!(report.records, r.size);
}

/// The only segment file of a log directory.
fn only_segment(dir: &std::path::Path) -> std::path::PathBuf {
    let mut segments: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    assert_eq!(segments.len(), 1);
    segments.pop().unwrap()
}

/// A preallocated log verifies while it is written (its zero tail is not a record), and is
/// plain JSON Lines once closed, its segments cut back to their records.
#[test]
fn a_preallocated_log_verifies_live_and_is_cut_back_when_closed() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(1 << 20);
    cfg.segment_max_bytes = 8 * 1024;
    let log = AuditLog::open_dir(dir.path(), cfg.clone(), None).unwrap();
    for i in 0..5 {
        log.append_durable(event(i)).unwrap();
    }
    let live = only_segment(dir.path());
    let on_disk = std::fs::metadata(&live).unwrap().len();
    let records = FileStore::open(dir.path()).unwrap().read(0).unwrap();
    assert!(
        on_disk >= 1 << 20,
        "the active segment is preallocated ({on_disk} bytes)"
    );
    assert!(records.len() < 8 * 1024 && records.ends_with(b"\n"));
    assert_eq!(
        verify_log(&FileStore::open(dir.path()).unwrap(), None)
            .unwrap()
            .records,
        5
    );
    // Past the segment size: the finished segments are cut back as the log moves on.
    for i in 5..40 {
        log.append_durable(event(i)).unwrap();
    }
    log.close().unwrap();
    let mut segments = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            let bytes = std::fs::read(&path).unwrap();
            assert!(!bytes.contains(&0) && bytes.ends_with(b"\n"), "{path:?}");
            segments += 1;
        }
    }
    assert!(segments > 1);
    let report = verify_log(&FileStore::open(dir.path()).unwrap(), None).unwrap();
    assert_eq!(report.records, 40);
    // Reopened with preallocation, the log continues where it stopped.
    let log = AuditLog::open_dir(dir.path(), cfg, None).unwrap();
    assert_eq!(log.append_durable(event(40)).unwrap().seq, 40);
}

/// A preallocation step past the cap is taken as the cap: zeros written ahead are bounded.
#[test]
fn preallocation_is_capped() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open_dir(dir.path(), config(u64::MAX), None).unwrap();
    log.append_durable(event(0)).unwrap();
    let on_disk = std::fs::metadata(only_segment(dir.path())).unwrap().len();
    assert!(
        on_disk > MAX_PREALLOCATION && on_disk < MAX_PREALLOCATION + 4096,
        "{on_disk}"
    );
}

/// A crash in preallocated space can leave a hole (zeros) where a record was being written and
/// a later record's page on disk after it. Neither was acknowledged: recovery cuts both, and
/// the log goes on from the last whole record. The same later record after garbage that is not
/// a hole is still an edit, which recovery refuses.
#[test]
fn recovery_cuts_a_hole_left_in_preallocated_space_but_not_an_edit() {
    for hole in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open_dir(dir.path(), config(1 << 16), None).unwrap();
        for i in 0..8 {
            log.append_durable(event(i)).unwrap();
        }
        drop(log);
        let path = only_segment(dir.path());
        let mut bytes = std::fs::read(&path).unwrap();
        // Record 5 never reached the disk; records 6 and 7 did; then preallocated space.
        let starts: Vec<usize> = std::iter::once(0)
            .chain(
                bytes
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| **b == b'\n')
                    .map(|(i, _)| i + 1),
            )
            .collect();
        let fill = if hole { 0 } else { b'x' };
        bytes[starts[5]..starts[6] - 1].fill(fill);
        bytes.extend(std::iter::repeat_n(0u8, 4096));
        std::fs::write(&path, &bytes).unwrap();
        let reopened = AuditLog::open_dir(dir.path(), config(1 << 16), None);
        if hole {
            let log = reopened.unwrap();
            assert_eq!(log.append_durable(event(5)).unwrap().seq, 5);
            drop(log);
            let report = verify_log(&FileStore::open(dir.path()).unwrap(), None).unwrap();
            assert_eq!(report.records, 6);
        } else {
            assert!(
                matches!(reopened, Err(AuditError::Tampered { seq: 5, .. })),
                "{reopened:?}"
            );
        }
    }
}

#[test]
fn inclusion_and_consistency_proofs_from_a_real_log() {
    let (store, cp, vkey) = sealed_log(9);
    let v = NoteVerifier::from_verifier_key(&vkey).unwrap();
    let report = verify_log(&store, Some((&cp, &v))).unwrap();
    let text = String::from_utf8(store.read(0).unwrap()).unwrap();
    let leaves: Vec<merkle::Hash> = text
        .lines()
        .map(|l| {
            let h = serde_json::from_str::<serde_json::Value>(l).unwrap()["hash"]
                .as_str()
                .unwrap()
                .to_owned();
            let mut out = [0u8; 32];
            for (i, b) in out.iter_mut().enumerate() {
                *b = u8::from_str_radix(&h[i * 2..i * 2 + 2], 16).unwrap();
            }
            out
        })
        .collect();
    assert_eq!(merkle::root(&leaves), report.root);
    let proof = merkle::inclusion_proof(4, &leaves).unwrap();
    assert!(merkle::verify_inclusion(
        4,
        9,
        &leaves[4],
        &proof,
        &report.root
    ));
    let consistency = merkle::consistency_proof(5, &leaves).unwrap();
    assert!(merkle::verify_consistency(
        5,
        9,
        &merkle::root(&leaves[..5]),
        &report.root,
        &consistency
    ));
}

#[test]
fn events_validate_against_the_published_json_schema() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/audit-event.schema.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let mut full = event(1);
    full.on_behalf_of = Some("user:alice@acme.test".into());
    full.delegation_chain = vec!["spiffe://acme.test/agent/planner".into()];
    full.task_id = Some("task-1".into());
    full.token_jti = Some("jti-1".into());
    full.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
    full.span_id = Some("00f067aa0ba902b7".into());
    full.input = Some(RedactionPolicy::default().content("pay the invoice"));
    full.data_accessed = vec!["invoice:7".into()];
    full.decision = Decision::deny("guard.constraint_violated");
    full.approval_ref = Some("appr-1".into());
    full.output_sha256 = Some(sha256_hex(b"ok"));
    full.duration_us = Some(120);
    for e in [event(0), full] {
        let value = serde_json::to_value(&e).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{errors:?}");
    }
    let mut bad = serde_json::to_value(event(0)).unwrap();
    bad["decision"]["outcome"] = json!("maybe");
    assert!(!validator.is_valid(&bad));
    bad = serde_json::to_value(event(0)).unwrap();
    bad.as_object_mut().unwrap().remove("agent");
    assert!(!validator.is_valid(&bad));
}
