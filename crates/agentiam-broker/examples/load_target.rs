//! A broker to point a load generator at: `scripts/bench-broker` runs it and drives it with
//! `wrk` (`benches/broker_load.lua`). Not a test.
//!
//! It starts a broker from a fresh temporary data directory (SQLite store, signing keys and
//! activity log, exactly as `agentiam-broker` runs in production) on `127.0.0.1` with a free
//! port, registers one agent through the admin API (its SPIFFE ID, maximum scopes, allowed
//! composite digest and public `jwks`), issues one token and writes its introspection body
//! (`token=<jwt>`), then pre-generates `N` distinct token requests (client credentials with
//! a single-use `private_key_jwt` client assertion and the attestation evidence), one
//! form-encoded body per line. Then it prints one JSON line and serves:
//!
//! ```text
//! {"base": "http://127.0.0.1:PORT", "token_bodies": PATH, "introspect_body": PATH,
//!  "admin_secret": SECRET, "pid": PID, "bodies": N, "assertions_expire_at": UNIX_SECONDS}
//! ```
//!
//! Each assertion lives the longest the broker allows (5 minutes) from the moment it is
//! generated, so the issuance run must start at once and end before `assertions_expire_at`.
//! Each body is accepted once; sent again it is a replay (401).
//!
//! It serves until it is killed or its standard input closes; on end of input it shuts down
//! gracefully and removes its temporary directory (bodies included). Keep standard input
//! open (a pipe or a terminal; not `/dev/null`, which a backgrounded shell job gets):
//!
//! ```text
//! cargo build --release -p agentiam-broker --example load_target
//! sleep infinity | target/release/examples/load_target 200000
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "a benchmark harness run by developers: a failure is a loud, immediate bug"
)]

use std::io::{BufWriter, Read as _, Write as _};
use std::path::Path;

use agentiam_broker::DataDir;
use agentiam_identity::{
    AgentConfiguration, AgentIdentity, Algorithm, Jwks, ModelRef, RuntimeDescriptor, SigningKey,
    ToolDescriptor, parse_spiffe_id,
};
use agentiam_token::{
    CLIENT_ASSERTION_TYPE_JWT, Clock as _, MAX_ASSERTION_LIFETIME_SECS, SystemClock,
    create_client_assertion,
};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

const DEFAULT_BODIES: usize = 200_000;
const AGENT_ID: &str = "spiffe://acme.test/agent/load";
const MAX_SCOPES: &str = "ledger.*:read payments:approve{amount<=10000}";
const SCOPE: &str = "ledger.ar:read";
/// Bodies generated per batch (split across the cores); bounds the generator's memory, so the
/// broker's peak RSS is the serving, not the pre-generation.
const BATCH: usize = 4096;

/// The agent as it runs: its key, model, prompt, tools and runtime.
struct Agent {
    key: SigningKey,
    model: ModelRef,
    config: AgentConfiguration,
    runtime: RuntimeDescriptor,
}

impl Agent {
    fn new() -> Self {
        Self {
            key: SigningKey::generate(Algorithm::EdDSA).unwrap(),
            model: ModelRef::new("openai", "gpt-5", "2026-08-01"),
            config: AgentConfiguration::new(
                "You reconcile invoices.",
                vec![ToolDescriptor::new(
                    "read_ledger",
                    "Reads the ledger.",
                    json!({"type": "object"}),
                )],
            ),
            runtime: RuntimeDescriptor::new("process"),
        }
    }

    fn registration(&self) -> String {
        let identity = AgentIdentity::new(
            parse_spiffe_id(AGENT_ID).unwrap(),
            self.model.clone(),
            &self.config,
            self.runtime.clone(),
        )
        .unwrap();
        let jwks: Value =
            serde_json::from_str(&Jwks::from_keys([self.key.public_key().clone()]).to_json())
                .unwrap();
        json!({
            "spiffe_id": AGENT_ID,
            "max_scopes": MAX_SCOPES,
            "allowed_digests": [identity.composite_digest().to_string()],
            "jwks": jwks,
        })
        .to_string()
    }

    fn evidence(&self) -> String {
        json!({"model": self.model, "configuration": self.config, "runtime": self.runtime})
            .to_string()
    }
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The token request body, in the parameters' order of `tests/grants.rs`; `tail` is every
/// parameter after the assertion, already encoded.
fn token_body(assertion: &str, tail: &str) -> String {
    format!(
        "grant_type=client_credentials&client_assertion_type={}&client_assertion={}&{tail}",
        enc(CLIENT_ASSERTION_TYPE_JWT),
        enc(assertion)
    )
}

fn tail(agent: &Agent) -> String {
    [
        ("agent_attestation", agent.evidence()),
        ("scope", SCOPE.to_owned()),
        ("audience", "ledger".to_owned()),
        ("task_id", "task-7".to_owned()),
        ("task_purpose", "reconcile March".to_owned()),
    ]
    .iter()
    .map(|(k, v)| format!("{k}={}", enc(v)))
    .collect::<Vec<_>>()
    .join("&")
}

/// A fresh assertion for `jti`, living as long as the broker allows.
fn assertion(agent: &Agent, endpoint: &str, jti: &str) -> String {
    create_client_assertion(
        &agent.key,
        AGENT_ID,
        endpoint,
        jti,
        SystemClock.now(),
        MAX_ASSERTION_LIFETIME_SECS,
    )
    .unwrap()
}

async fn post(url: String, content_type: &str, auth: Option<&str>, body: String) -> (u16, Value) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = http::Request::post(url).header("content-type", content_type);
    if let Some(secret) = auth {
        req = req.header("authorization", format!("Bearer {secret}"));
    }
    let resp = client
        .request(req.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Writes `count` distinct token request bodies to `path`, one per line, signing in parallel
/// in bounded batches.
fn write_bodies(path: &Path, count: usize, agent: &Agent, endpoint: &str, tail: &str) {
    let nonce = hex(&random::<8>());
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    let mut out = BufWriter::new(std::fs::File::create(path).unwrap());
    let mut start = 0;
    while start < count {
        let end = count.min(start + BATCH);
        let per = (end - start).div_ceil(workers);
        let parts: Vec<Vec<String>> = std::thread::scope(|s| {
            let handles: Vec<_> = (start..end)
                .step_by(per)
                .map(|from| {
                    let to = end.min(from + per);
                    let nonce = &nonce;
                    s.spawn(move || {
                        (from..to)
                            .map(|i| {
                                let jti = format!("load-{nonce}-{i}");
                                token_body(&assertion(agent, endpoint, &jti), tail)
                            })
                            .collect()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for body in parts.iter().flatten() {
            out.write_all(body.as_bytes()).unwrap();
            out.write_all(b"\n").unwrap();
        }
        start = end;
    }
    out.flush().unwrap();
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    bytes
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn main() {
    let count = match std::env::args().nth(1) {
        Some(n) => n
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .expect("usage: load_target [BODIES]; BODIES is a positive number"),
        None => DEFAULT_BODIES,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let tmp = tempfile::Builder::new()
        .prefix("agentiam-load-")
        .tempdir()
        .unwrap();
    let admin_secret = hex(&random::<24>());
    let token_bodies = tmp.path().join("token-bodies.txt");
    let introspect_body = tmp.path().join("introspect-body.txt");

    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let broker = DataDir::open(tmp.path().join("data"))
        .unwrap()
        .broker(&base, &admin_secret)
        .unwrap();
    let endpoint = broker.token_endpoint();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = {
        let broker = broker.clone();
        rt.spawn(async move {
            agentiam_broker::serve(&broker, listener, async {
                let _ = stopped.await;
            })
            .await
        })
    };

    let agent = Agent::new();
    let tail = tail(&agent);
    rt.block_on(async {
        let (status, body) = post(
            format!("{base}/admin/agents"),
            "application/json",
            Some(&admin_secret),
            agent.registration(),
        )
        .await;
        assert_eq!(status, 201, "registering the agent: {body}");
        let first = token_body(&assertion(&agent, &endpoint, "load-setup"), &tail);
        let (status, body) = post(
            format!("{base}/oauth2/token"),
            "application/x-www-form-urlencoded",
            None,
            first,
        )
        .await;
        assert_eq!(status, 200, "issuing the introspection token: {body}");
        let token = body["access_token"].as_str().unwrap();
        std::fs::write(&introspect_body, format!("token={}", enc(token))).unwrap();
    });

    // Last, so the assertions have the whole of their lifetime for the run.
    let generated_at = SystemClock.now();
    write_bodies(&token_bodies, count, &agent, &endpoint, &tail);
    let line = json!({
        "base": base,
        "token_bodies": token_bodies,
        "introspect_body": introspect_body,
        "admin_secret": admin_secret,
        "pid": std::process::id(),
        "bodies": count,
        "assertions_expire_at": generated_at + MAX_ASSERTION_LIFETIME_SECS,
    });
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}").unwrap();
    stdout.flush().unwrap();
    drop(stdout);

    // Serve until standard input closes (or the process is killed).
    let mut sink = Vec::new();
    let _ = std::io::stdin().lock().read_to_end(&mut sink);
    let _ = stop.send(());
    rt.block_on(server).unwrap().unwrap();
    drop(tmp);
}
