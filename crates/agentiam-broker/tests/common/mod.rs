//! Helpers shared by the broker's loopback tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    dead_code,
    unreachable_pub,
    reason = "test harness: a panic is a failed test; not every test file uses every helper"
)]

use std::sync::Arc;

use agentiam_broker::{Broker, BrokerBuilder, Store};
use agentiam_identity::*;
use agentiam_token::*;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

pub const ISS: &str = "https://broker.test";
pub const ADMIN: &str = "admin-secret-0123456789-abcdefghijklmnop";

/// An agent `spiffe://acme.test/agent/<path>`, as every Rust test world builds one.
pub use agentiam_test_support::agent;

pub struct Running {
    pub base: String,
    pub issuer: Arc<Issuer>,
    pub store: Arc<dyn Store>,
    pub broker: Broker,
}

pub async fn start(store: Arc<dyn Store>) -> Running {
    start_with(store, |b| b).await
}

pub async fn start_with(
    store: Arc<dyn Store>,
    configure: impl FnOnce(BrokerBuilder) -> BrokerBuilder,
) -> Running {
    let issuer = Arc::new(Issuer::new(
        ISS,
        KeySet::new(agentiam_test_support::seeded_key(3)),
    ));
    let broker = configure(Broker::builder(
        issuer.clone(),
        store.clone(),
        "http://broker.test",
        ADMIN,
    ))
    .build()
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = broker.router();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Running {
        base: format!("http://{addr}"),
        issuer,
        store,
        broker,
    }
}

pub async fn call(
    r: &Running,
    method: &str,
    path: &str,
    auth: Option<&str>,
    content_type: &str,
    body: impl Into<Bytes>,
) -> (u16, http::HeaderMap, Value) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("{}{path}", r.base))
        .header("content-type", content_type);
    if let Some(a) = auth {
        req = req.header("authorization", format!("Bearer {a}"));
    }
    let resp = client
        .request(req.body(Full::new(body.into())).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, json)
}

pub async fn form(
    r: &Running,
    path: &str,
    auth: Option<&str>,
    body: &str,
) -> (u16, http::HeaderMap, Value) {
    call(
        r,
        "POST",
        path,
        auth,
        "application/x-www-form-urlencoded",
        body.to_owned(),
    )
    .await
}

pub fn register_body(a: &AgentIdentity, scopes: &str) -> String {
    json!({"spiffe_id": a.spiffe_id().to_string(), "max_scopes": scopes, "allowed_digests": [a.composite_digest().to_string()]}).to_string()
}

/// A valid pending approval record (its request digest is the request's own), with arguments
/// that carry markup and quotes for escaping and round-trip checks.
pub fn pending_record(
    id: &str,
    created_at: i64,
    expires_at: i64,
) -> agentiam_broker::ApprovalRecord {
    use agentiam_broker::{ApprovalRecord, ApprovalStatus, RequesterContext};
    let mut request = agentiam_guard::ApprovalRequest {
        digest: String::new(),
        tool: "void_invoice".into(),
        risk: agentiam_guard::Risk::Irreversible,
        arguments: json!({"invoice": "INV-7", "memo": "<img src=x onerror=alert(1)> and quotes ' and \" and \\ survive"}),
        chain: vec!["spiffe://acme.test/agent/ap".into()],
        task: Some("t".into()),
        nonce: format!("nonce-{id}"),
        expires_at,
        code: "guard.confirmation_required".into(),
        policies: vec!["irreversible-needs-human".into()],
        anomaly: None,
        audience: Some("ledger".into()),
        taint_sources: vec!["https://vendor.example/invoice".into()],
        intent: None,
    };
    request.digest = request.computed_digest().unwrap();
    ApprovalRecord {
        id: id.into(),
        status: ApprovalStatus::Pending,
        request,
        findings: vec![],
        requester: RequesterContext {
            agent: "spiffe://acme.test/agent/ap".into(),
            principal: "spiffe://acme.test/agent/ap".into(),
            model: Some("p/m@1".into()),
            composite_digest: None,
            chain: vec!["spiffe://acme.test/agent/ap".into()],
            task: Some("t".into()),
            purpose: None,
            token_jti: Some("jti-1".into()),
            person_provider: None,
        },
        created_at,
        settled_at: None,
        settled_by: None,
        reason: None,
        approval: None,
    }
}

/// An administrator's decision on an approval request (`verb` is `approve` or `deny`).
pub async fn settle(r: &Running, id: &str, verb: &str, decision: Value) -> (u16, Value) {
    let (status, _, json) = call(
        r,
        "POST",
        &format!("/admin/approvals/{id}/{verb}"),
        Some(ADMIN),
        "application/json",
        decision.to_string(),
    )
    .await;
    (status, json)
}

/// A request with any headers.
pub async fn send(
    r: &Running,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: String,
) -> (u16, http::HeaderMap, Value) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("{}{path}", r.base));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = client
        .request(req.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// An `application/x-www-form-urlencoded` body.
pub fn form_encode(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Registers `agent(name)` with a fresh Ed25519 client key (its JWKS) and `scopes` as its
/// maximum, through the administrator's API; returns the identity and the key.
pub async fn register_with_key(
    r: &Running,
    name: &str,
    scopes: &str,
) -> (AgentIdentity, SigningKey) {
    let identity = agent(name);
    let key = agentiam_test_support::fresh_key();
    let body = json!({
        "spiffe_id": identity.spiffe_id().to_string(),
        "max_scopes": scopes,
        "jwks": serde_json::from_str::<Value>(&Jwks::from_keys([key.public_key().clone()]).to_json()).unwrap(),
    });
    let (status, _, _) = call(
        r,
        "POST",
        "/admin/agents",
        Some(ADMIN),
        "application/json",
        body.to_string(),
    )
    .await;
    assert_eq!(status, 201);
    (identity, key)
}

/// The attestation evidence `agent(name)` presents (what it runs), as JSON text.
pub fn evidence_of(name: &str) -> String {
    json!({
        "model": ModelRef::new("p", "m", "1"),
        "configuration": AgentConfiguration::new(format!("You are {name}."), vec![]),
        "runtime": RuntimeDescriptor::new("process"),
    })
    .to_string()
}
