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
//! Both services answer `POST /payments` with a tiny body. The guarded one authenticates a
//! bearer token (verified-token cache), reads and parses the JSON body, checks scope constraints,
//! asks Cedar (decision cache) and enqueues an audit record onto an in-memory activity log.
//! The load generator runs in the same process: 32 keep-alive HTTP/1.1 connections for a fixed
//! time per round, rounds alternating between the two services (this VM's speed drifts).
//!
//! Run with `cargo bench -p agentiam-guard --features tower --bench layer_rps`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use agentiam_guard::http::{GuardLayer, RouteMap};
use agentiam_guard::*;
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
        let tool = ToolSpec::new("transfer", Risk::Medium).with_scope("payments", "transfer");
        let guard = Guard::builder(engine).tool(tool.clone()).sink(sink).build().unwrap();
        let unaudited = Guard::builder(PolicyEngine::default_policy().unwrap()).tool(tool).build().unwrap();
        let verifier = Verifier::new(issuer.jwks(), "https://broker.test", "https://api.test").with_clock(clock.clone());
        let auth = Authenticator::new(CachingVerifier::new(verifier, 1024), DpopVerifier::new(clock));
        let routes = RouteMap::new().route("POST", "/payments", "transfer").unwrap();
        let handler = || axum::routing::post(|| async { "ok" });
        let bare = serve(axum::Router::new().route("/payments", handler())).await;
        let guarded = serve(axum::Router::new().route("/payments", handler()).layer(GuardLayer::new(guard, auth.clone(), routes.clone(), "https://api.test"))).await;
        let no_audit = serve(axum::Router::new().route("/payments", handler()).layer(GuardLayer::new(unaudited, auth, routes, "https://api.test"))).await;
        // Warm up (connections, caches).
        for addr in [bare, guarded, no_audit] {
            load(addr, token.clone()).await;
        }
        let mut counts = [0u64; 3];
        let start = Instant::now();
        for _ in 0..ROUNDS {
            for (i, addr) in [bare, guarded, no_audit].into_iter().enumerate() {
                counts[i] += load(addr, token.clone()).await;
            }
        }
        let secs = ROUND.as_secs_f64() * ROUNDS as f64;
        let rps = counts.map(|n| n as f64 / secs);
        println!("axum service on loopback, {CONNECTIONS} keep-alive connections, {ROUNDS} alternating rounds of {} s ({:.0} s total)", ROUND.as_secs(), start.elapsed().as_secs_f64());
        println!("  without the layer:                 {:>9.0} requests/s", rps[0]);
        println!("  with GuardLayer and AuditSink:     {:>9.0} requests/s, RPS loss {:.1}% (target <= 5%)", rps[1], (1.0 - rps[1] / rps[0]) * 100.0);
        println!("  with GuardLayer, no audit sink:    {:>9.0} requests/s, RPS loss {:.1}%", rps[2], (1.0 - rps[2] / rps[0]) * 100.0);
    });
}
