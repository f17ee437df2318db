#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "benchmark harness: a failure here is a failed run"
)]
//! What recording one decision costs the guard's thread: `AuditSink::record` (the producer side
//! of the activity log) for an allowed tool call, beside the hand-over the sink used before, a
//! `std::sync::mpsc::sync_channel` send of one boxed record to a worker blocked in `recv`.
//!
//! Calls are paced about 25 µs apart (outside the timed region), as in a service answering some
//! tens of thousands of requests per second, so the worker has gone idle between records: the
//! case where a hand-over to a sleeping receiver costs a system call on the caller's thread.
//! Blocks of calls alternate between the contenders; p50 and p99 per call are printed with the
//! ratio.
//!
//! Run with `cargo bench -p agentiam-guard --bench audit_enqueue`. With
//! `AGENTIAM_BENCH_SINK_ONLY=1` only the sink runs, so `strace -f -e trace=futex` on the binary
//! shows which system calls recording costs the calling thread.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentiam_guard::*;
use agentiam_telemetry::{AuditLog, LogConfig, MemStore, RedactionPolicy};
use serde_json::json;

const NOW: i64 = 1_800_000_000;
const BLOCK: usize = 2_000;
const BLOCKS: usize = 20;
const PACE: Duration = Duration::from_micros(25);

fn pause() {
    let t = Instant::now();
    while t.elapsed() < PACE {
        std::hint::spin_loop();
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p) as usize] as f64 / 1e3
}

fn main() {
    use agentiam_test_support as world;
    let clock = world::clock(NOW);
    let issuer = world::issuer("https://broker.test", &clock);
    let verified = world::verified_task_token(
        &issuer,
        "https://broker.test",
        &clock,
        &world::agent("payer"),
        "api",
        "payments:transfer{amount<=100000000,currency=USD}",
    );
    let principal = Principal::from_token(&verified);
    let engine = PolicyEngine::default_policy().unwrap();
    let version = engine.version().to_owned();
    let guard = Guard::builder(engine)
        .clock(clock)
        .tool(ToolSpec::new("transfer", Risk::High).with_scope("payments", "transfer"))
        .build()
        .unwrap();
    let args = Arc::new(json!({"amount": 42, "currency": "USD", "to": "ACME"}));
    let request = GuardRequest::shared(&principal, "transfer", &args);
    let decision = guard.decide(&request);
    assert!(decision.is_allowed(), "{decision:?}");

    let log =
        Arc::new(AuditLog::open(MemStore::new(), LogConfig::new("bench/enqueue"), None).unwrap());
    let sink = AuditSink::new(log.clone(), RedactionPolicy::default(), version, 1 << 16);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Box<[u8; 256]>>(1 << 16);
    let worker = std::thread::spawn(move || {
        for record in rx {
            black_box(record);
        }
    });

    let sink_only = std::env::var_os("AGENTIAM_BENCH_SINK_ONLY").is_some();
    let (mut ours, mut peer) = (Vec::new(), vec![1]);
    for _ in 0..BLOCKS {
        for _ in 0..BLOCK {
            pause();
            let t = Instant::now();
            hooks::DecisionSink::record(&sink, black_box(&request), None, black_box(&decision))
                .unwrap();
            ours.push(t.elapsed().as_nanos() as u64);
        }
        sink.drain().unwrap();
        if sink_only {
            continue;
        }
        for _ in 0..BLOCK {
            pause();
            let t = Instant::now();
            tx.send(black_box(Box::new([7u8; 256]))).unwrap();
            peer.push(t.elapsed().as_nanos() as u64);
        }
    }
    drop(tx);
    worker.join().unwrap();
    sink.drain().unwrap();
    log.flush().unwrap();
    ours.sort_unstable();
    peer.sort_unstable();
    println!(
        "audit producer cost: one allowed decision recorded, calls {} µs apart, {} samples each",
        PACE.as_micros(),
        BLOCK * BLOCKS
    );
    println!(
        "  AuditSink::record                                   p50 {:>6.3} µs   p99 {:>6.3} µs",
        percentile(&ours, 0.5),
        percentile(&ours, 0.99)
    );
    println!(
        "  std mpsc send to a worker blocked in recv (peer)    p50 {:>6.3} µs   p99 {:>6.3} µs",
        percentile(&peer, 0.5),
        percentile(&peer, 0.99)
    );
    let p50 = percentile(&ours, 0.5);
    println!(
        "AuditSink::record / std mpsc hand-over = {:.2}x p50; target p50 <= 1 µs: {}",
        p50 / percentile(&peer, 0.5),
        if p50 <= 1.0 { "MET" } else { "MISSED" }
    );
}
