#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "benchmark harness: a failure here is a failed run"
)]
//! Requests per second of one axum service with and without `GuardLayer`, on loopback.
//!
//! Both services answer `POST /payments` with a tiny body after parsing the JSON request body
//! (`axum::Json`, as a real handler would, so the baseline is not a handler that ignores its
//! input). The guarded one also authenticates a bearer token (verified-token cache), reads and
//! parses the JSON body, checks scope constraints, asks Cedar (decision cache) and, in one of
//! the two guarded services, enqueues an audit record onto an in-memory activity log.
//! The load generator runs in the same process: 32 keep-alive HTTP/1.1 connections for a fixed
//! time per round, rounds alternating between the services (this VM's speed drifts). The CPU
//! time of the whole process per request (server and load generator, from `/proc`) is printed
//! beside the rates: on a loaded 2-core machine it is the steadier figure.
//!
//! A third guarded service writes its activity log to disk with group commit (the production
//! setting). The bare and durable-guarded pair is measured again with a handler that does
//! 100 µs of CPU work after parsing (a service whose requests cost something), where the
//! layer's share should be small.
//!
//! Then the layer's own cost per request, without sockets: the same request through
//! `GuardService<S>` and through `S` alone (an inner service that answers at once), one at a time.
//!
//! Run with `cargo bench -p agentiam-guard --features tower --bench layer_rps`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use agentiam_guard::http::{GuardLayer, RouteMap};
use agentiam_guard::*;
#[allow(unused_imports, reason = "each test file uses some of them")]
use agentiam_guard::{approval::*, arguments::*, audit::*, config::*, hooks::*, policy::*};
use agentiam_identity::*;
use agentiam_telemetry::{AuditLog, LogConfig, MemStore, RedactionPolicy};
use agentiam_token::*;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const CONNECTIONS: usize = 32;
const ROUND: Duration = Duration::from_secs(3);
const ROUNDS: usize = 4;
const BODY: &str = r#"{"amount": 42, "currency": "USD", "to": "ACME"}"#;

async fn serve(app: axum::Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Drives `addr` with keep-alive connections for `ROUND`; returns successful requests.
async fn load(addr: SocketAddr, token: Arc<String>) -> u64 {
    let done = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let (done, ok, token) = (done.clone(), ok.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            tcp.set_nodelay(true).unwrap();
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .unwrap();
            tokio::spawn(conn);
            while !done.load(Ordering::Relaxed) {
                let req = ::http::Request::post("/payments")
                    .header("host", "localhost")
                    .header("authorization", format!("Bearer {token}"))
                    .header("content-type", "application/json")
                    .body(BODY.to_owned())
                    .unwrap();
                let response = sender.send_request(req).await.unwrap();
                let status = response.status();
                http_body_util::BodyExt::collect(response.into_body())
                    .await
                    .unwrap();
                assert_eq!(status, 200);
                ok.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(ROUND).await;
    done.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    ok.load(Ordering::Relaxed)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let clock = Arc::new(SystemClock);
        let issuer = Issuer::new("https://broker.test", KeySet::new(SigningKey::generate(Algorithm::EdDSA).unwrap()));
        let agent = AgentIdentity::new(
            parse_spiffe_id("spiffe://acme.test/agent/payer").unwrap(),
            ModelRef::new("p", "m", "1"),
            &AgentConfiguration::new("You pay.", vec![]),
            RuntimeDescriptor::new("process"),
        )
        .unwrap();
        let scopes = ScopeSet::parse("payments:transfer{amount<=100,currency=USD}").unwrap();
        issuer.register(agent.spiffe_id(), AgentRegistration::new(scopes.clone()));
        let token = Arc::new(issuer.issue(&TokenRequest::new(&agent, "https://api.test", scopes, "task-1", "pay").with_ttl(3600)).unwrap().token);
        let log = Arc::new(AuditLog::open(MemStore::new(), LogConfig::new("bench/layer"), None).unwrap());
        let engine = PolicyEngine::default_policy().unwrap();
        let sink = Arc::new(AuditSink::new(log.clone(), RedactionPolicy::default(), engine.version(), 1 << 16));
        let audit = sink.clone();
        let tool = ToolSpec::new("transfer", Risk::Medium).with_scope("payments", "transfer");
        let guard = Guard::builder(engine).tool(tool.clone()).sink(audit).build().unwrap();
        // The production setting: a log on disk with group commit (`Durability::Batch`, the default).
        let dir = tempfile::tempdir().unwrap();
        let durable_log = Arc::new(AuditLog::open_dir(dir.path(), LogConfig::new("bench/layer-durable"), None).unwrap());
        let durable_engine = PolicyEngine::default_policy().unwrap();
        let durable_sink = Arc::new(AuditSink::new(durable_log.clone(), RedactionPolicy::default(), durable_engine.version(), 1 << 16));
        let durable_guard = Guard::builder(durable_engine).tool(tool.clone()).sink(durable_sink.clone()).build().unwrap();
        let unaudited = Guard::builder(PolicyEngine::default_policy().unwrap()).tool(tool).build().unwrap();
        let verifier = Verifier::new(issuer.jwks(), "https://broker.test", "https://api.test").with_clock(clock.clone());
        let auth = Authenticator::new(CachingVerifier::new(verifier, 1024), DpopVerifier::new(clock));
        let routes = RouteMap::new().route("POST", "/payments", "transfer").unwrap();
        let handler = || axum::routing::post(|axum::Json(v): axum::Json<serde_json::Value>| async move { if v["amount"].is_number() { "ok" } else { "no amount" } });
        let working = || axum::routing::post(|axum::Json(v): axum::Json<serde_json::Value>| async move { work(WORK); if v["amount"].is_number() { "ok" } else { "no amount" } });
        let bare = serve(axum::Router::new().route("/payments", handler())).await;
        let audited_layer = GuardLayer::new(guard, auth.clone(), routes.clone(), "https://api.test");
        let durable_layer = GuardLayer::new(durable_guard, auth.clone(), routes.clone(), "https://api.test");
        let unaudited_layer = GuardLayer::new(unaudited, auth, routes, "https://api.test");
        let guarded = serve(axum::Router::new().route("/payments", handler()).layer(audited_layer.clone())).await;
        let no_audit = serve(axum::Router::new().route("/payments", handler()).layer(unaudited_layer.clone())).await;
        let bare_work = serve(axum::Router::new().route("/payments", working())).await;
        let guarded_work = serve(axum::Router::new().route("/payments", working()).layer(durable_layer.clone())).await;
        let durable = serve(axum::Router::new().route("/payments", handler()).layer(durable_layer.clone())).await;
        let services = [bare, guarded, no_audit, bare_work, guarded_work, durable];
        // Warm up (connections, caches).
        for addr in services {
            load(addr, token.clone()).await;
        }
        let mut counts = [0u64; 6];
        let mut cpu = [0f64; 6];
        let mut switches = [0u64; 6];
        let start = Instant::now();
        for _ in 0..ROUNDS {
            for (i, addr) in services.into_iter().enumerate() {
                let before = process_usage();
                counts[i] += load(addr, token.clone()).await;
                if let (Some(b), Some(a)) = (before, process_usage()) {
                    cpu[i] += a.0 - b.0;
                    switches[i] += a.1 - b.1;
                }
            }
        }
        let secs = ROUND.as_secs_f64() * ROUNDS as f64;
        let rps = counts.map(|n| n as f64 / secs);
        println!("axum service on loopback, {CONNECTIONS} keep-alive connections, {ROUNDS} alternating rounds of {} s ({:.0} s total)", ROUND.as_secs(), start.elapsed().as_secs_f64());
        println!("  without the layer:                 {:>9.0} requests/s", rps[0]);
        println!("  with GuardLayer and AuditSink:     {:>9.0} requests/s, RPS loss {:.1}% (target <= 10%)", rps[1], (1.0 - rps[1] / rps[0]) * 100.0);
        println!("  with GuardLayer and AuditSink on disk (group commit): {:>9.0} requests/s, RPS loss {:.1}% (target <= 10%)", rps[5], (1.0 - rps[5] / rps[0]) * 100.0);
        println!("  with GuardLayer, no audit sink:    {:>9.0} requests/s, RPS loss {:.1}%", rps[2], (1.0 - rps[2] / rps[0]) * 100.0);
        println!("  handler doing {} µs of work, without the layer: {:>9.0} requests/s", WORK.as_micros(), rps[3]);
        println!("  handler doing {} µs of work, GuardLayer and AuditSink on disk: {:>9.0} requests/s, RPS loss {:.1}% (target <= 3%)", WORK.as_micros(), rps[4], (1.0 - rps[4] / rps[3]) * 100.0);
        if cpu[0] > 0.0 {
            println!("  process CPU (server and load generator) and context switches per request:");
            for (i, name) in ["without the layer", "with GuardLayer and AuditSink", "with GuardLayer, no audit sink", "100 µs work, without the layer", "100 µs work, layer, sink on disk", "GuardLayer, AuditSink on disk"].iter().enumerate() {
                println!("    {name:<31} {:>6.1} µs CPU, {:.2} switches", cpu[i] / counts[i] as f64 * 1e6, switches[i] as f64 / counts[i] as f64);
            }
            // Why a missed target is missed here, from this run's own figures.
            let per_request = |i: usize| cpu[i] / counts[i] as f64 * 1e6;
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let (bare, layer, audited, durable) = (per_request(0), per_request(2), per_request(1), per_request(5));
            println!(
                "  where the CPU goes: the layer adds {:.1} µs per request, the audit record {:.1} µs in memory and {:.1} µs on disk (sink and log threads); <= 10% loss allows {:.1} µs",
                layer - bare,
                audited - layer,
                durable - layer,
                bare * 0.10
            );
            if cores <= 2 {
                println!(
                    "  on {cores} cores shared with the load generator, that work is serving lost; with spare cores the audit threads run beside the handlers and the guard's thread pays only the enqueue (audit_enqueue bench)"
                );
            }
        }
        let (bare_ns, guarded_ns) = in_process(&audited_layer, &token, || sink.drain().unwrap()).await;
        let (_, unaudited_ns) = in_process(&unaudited_layer, &token, || ()).await;
        durable_sink.drain().unwrap();
        durable_log.flush().unwrap();
        println!("in process, no sockets, one request at a time ({IN_PROCESS} calls, p50 of {BLOCKS} interleaved blocks):");
        println!("  inner service alone:               {:>9.2} µs/request", bare_ns / 1e3);
        println!("  through the layer with AuditSink:  {:>9.2} µs/request (+{:.2} µs)", guarded_ns / 1e3, (guarded_ns - bare_ns) / 1e3);
        println!("  through the layer, no audit sink:  {:>9.2} µs/request (+{:.2} µs)", unaudited_ns / 1e3, (unaudited_ns - bare_ns) / 1e3);
    });
}

/// CPU seconds (user + system) and context switches of this process so far, from `/proc`
/// (Linux only; `None` elsewhere).
fn process_usage() -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let mut switches = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let status = std::fs::read_to_string(task.ok()?.path().join("status")).unwrap_or_default();
        for line in status.lines() {
            if let Some(n) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                switches += n.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    // USER_HZ is 100 on every Linux this runs on.
    Some((ticks as f64 / 100.0, switches))
}

/// CPU work of the second handler.
const WORK: Duration = Duration::from_micros(100);

/// Spins for `d` (CPU work, not a sleep: the runtime thread is busy, as in a handler that computes).
fn work(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

const IN_PROCESS: usize = 200_000;
const BLOCKS: usize = 20;

fn payment(token: &str) -> ::http::Request<axum::body::Body> {
    ::http::Request::post("/payments")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(axum::body::Body::from(BODY))
        .unwrap()
}

/// Nanoseconds per request through an immediate inner service, alone and behind `layer`
/// (median over interleaved blocks). Request construction is inside both timings, and so is
/// `drain` after each guarded block (waiting for the audit worker to catch up), so work moved
/// to another thread is counted and the audit queue never fills.
async fn in_process(layer: &GuardLayer, token: &str, drain: impl Fn()) -> (f64, f64) {
    use tower::{Layer as _, Service as _, ServiceExt};
    type Req = ::http::Request<axum::body::Body>;
    let inner = tower::service_fn(|_req: ::http::Request<axum::body::Body>| async {
        Ok::<_, std::convert::Infallible>(::http::Response::new(axum::body::Body::from("ok")))
    });
    let mut bare = inner;
    let mut guarded = layer.layer(inner);
    let per_block = IN_PROCESS / BLOCKS;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..BLOCKS {
        let start = Instant::now();
        for _ in 0..per_block {
            let response = ServiceExt::<Req>::ready(&mut bare)
                .await
                .unwrap()
                .call(payment(token))
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
        }
        a.push(start.elapsed().as_nanos() as f64 / per_block as f64);
        let start = Instant::now();
        for _ in 0..per_block {
            let response = ServiceExt::<Req>::ready(&mut guarded)
                .await
                .unwrap()
                .call(payment(token))
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
        }
        drain();
        b.push(start.elapsed().as_nanos() as f64 / per_block as f64);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (median(a), median(b))
}
