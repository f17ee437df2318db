//! `POST /oauth2/token` over loopback: client credentials with `private_key_jwt` and
//! attestation evidence, token exchange for a sub-agent, DPoP binding, and every refusal with
//! its OAuth error, status and reason code; each step in the activity log.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "test harness: a panic is a failed test"
)]

mod common;

use std::sync::Arc;

use agentiam_broker::SqliteStore;
use agentiam_identity::*;
use agentiam_telemetry::{AuditLog, FileStore, LogConfig, NoteSigner, SegmentStore, verify_log};
use agentiam_token::*;
use common::*;
use serde_json::{Value, json};

const ENDPOINT: &str = "http://broker.test/oauth2/token";

/// An agent as it runs: its key, its model, prompt, tools and runtime.
struct RunningAgent {
    key: SigningKey,
    id: String,
    model: ModelRef,
    config: AgentConfiguration,
    runtime: RuntimeDescriptor,
}

impl RunningAgent {
    fn new(name: &str, prompt: &str) -> Self {
        Self {
            key: agentiam_test_support::fresh_key(),
            id: format!("spiffe://acme.test/agent/{name}"),
            model: ModelRef::new("openai", "gpt-5", "2026-08-01"),
            config: AgentConfiguration::new(
                prompt,
                vec![ToolDescriptor::new(
                    "read_ledger",
                    "Reads the ledger.",
                    json!({"type": "object"}),
                )],
            ),
            runtime: RuntimeDescriptor::new("process"),
        }
    }

    fn identity(&self) -> AgentIdentity {
        AgentIdentity::new(
            parse_spiffe_id(&self.id).unwrap(),
            self.model.clone(),
            &self.config,
            self.runtime.clone(),
        )
        .unwrap()
    }

    fn registration(&self, scopes: &str) -> String {
        json!({
            "spiffe_id": self.id,
            "max_scopes": scopes,
            "allowed_digests": [self.identity().composite_digest().to_string()],
            "jwks": serde_json::from_str::<Value>(&Jwks::from_keys([self.key.public_key().clone()]).to_json()).unwrap(),
        })
        .to_string()
    }

    fn evidence(&self) -> String {
        json!({"model": self.model, "configuration": self.config, "runtime": self.runtime})
            .to_string()
    }

    fn assertion(&self, jti: &str) -> String {
        create_client_assertion(&self.key, &self.id, ENDPOINT, jti, SystemClock.now(), 60).unwrap()
    }
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn body(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn client_credentials(a: &RunningAgent, jti: &str, scope: &str) -> Vec<(String, String)> {
    vec![
        ("grant_type".into(), "client_credentials".into()),
        (
            "client_assertion_type".into(),
            CLIENT_ASSERTION_TYPE_JWT.into(),
        ),
        ("client_assertion".into(), a.assertion(jti)),
        ("agent_attestation".into(), a.evidence()),
        ("scope".into(), scope.into()),
        ("audience".into(), "ledger".into()),
        ("task_id".into(), "task-7".into()),
        ("task_purpose".into(), "reconcile March".into()),
    ]
}

fn encode(pairs: &[(String, String)]) -> String {
    body(
        &pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
    )
}

fn with(
    mut pairs: Vec<(String, String)>,
    name: &str,
    value: Option<&str>,
) -> Vec<(String, String)> {
    pairs.retain(|(k, _)| k != name);
    if let Some(v) = value {
        pairs.push((name.into(), v.into()));
    }
    pairs
}

async fn registered(r: &Running, a: &RunningAgent, scopes: &str) {
    let (status, _, _) = call(
        r,
        "POST",
        "/admin/agents",
        Some(ADMIN),
        "application/json",
        a.registration(scopes),
    )
    .await;
    assert_eq!(status, 201);
}

fn verifier(r: &Running, audience: &str) -> Verifier {
    Verifier::new(r.issuer.jwks(), ISS, audience)
}

struct Audited {
    r: Running,
    dir: tempfile::TempDir,
}

async fn start_audited() -> Audited {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open_dir(
        dir.path().join("audit"),
        LogConfig::new("broker.test/audit"),
        Some(NoteSigner::generate("broker.test/audit").unwrap()),
    )
    .unwrap();
    let audit_dir = dir.path().join("audit");
    let r = start_with(Arc::new(SqliteStore::in_memory().unwrap()), move |b| {
        b.audit_log(Arc::new(log), audit_dir, None)
    })
    .await;
    Audited { r, dir }
}

fn audit_events(a: &Audited) -> Vec<Value> {
    a.r.broker.flush_audit().unwrap();
    let store = FileStore::open(a.dir.path().join("audit")).unwrap();
    verify_log(&store, None).unwrap();
    let mut out = Vec::new();
    for seg in store.segments().unwrap() {
        let bytes = store.read(seg).unwrap();
        for line in String::from_utf8(bytes).unwrap().lines() {
            out.push(serde_json::from_str::<Value>(line).unwrap()["event"].clone());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attested_agent_gets_a_task_token_once_per_assertion() {
    let a = start_audited().await;
    let r = &a.r;
    let ap = RunningAgent::new("ap", "You reconcile invoices.");
    registered(r, &ap, "ledger.*:read payments:approve{amount<=10000}").await;

    let request = client_credentials(&ap, "j-1", "ledger.ar:read");
    let (status, headers, body) = form(r, "/oauth2/token", None, &encode(&request)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "ledger.ar:read");
    assert!(body["expires_in"].as_i64().unwrap() > 800);
    let token = verifier(r, "ledger")
        .verify(body["access_token"].as_str().unwrap())
        .unwrap();
    let claims = token.claims();
    assert_eq!(claims.sub, ap.id);
    assert_eq!(claims.task.as_ref().unwrap().id, "task-7");
    let agent = claims.agent.as_ref().unwrap();
    assert_eq!(agent.digest, ap.identity().composite_digest());
    assert!(
        agent.tools.contains_key("read_ledger"),
        "the manifest's tools are pinned"
    );

    // The same assertion again: a replay.
    let (status, headers, body) = form(r, "/oauth2/token", None, &encode(&request)).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(body["agentiam_code"], "broker.assertion_replayed");
    assert!(headers.contains_key("www-authenticate"));

    let events = audit_events(&a);
    let kinds: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap(),
                e["decision"]["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("agent_registered", "allow"),
            ("token_issued", "allow"),
            ("token_issued", "deny")
        ]
    );
    assert_eq!(events[1]["token_jti"], claims.jti.clone().unwrap());
    assert_eq!(events[2]["decision"]["code"], "broker.assertion_replayed");
}

#[tokio::test]
async fn every_bad_token_request_is_refused_with_its_code() {
    let r = start(Arc::new(SqliteStore::in_memory().unwrap())).await;
    let ap = RunningAgent::new("ap", "You reconcile invoices.");
    registered(&r, &ap, "ledger.*:read").await;
    let stranger = RunningAgent::new("stranger", "You are nobody.");
    let mut changed =
        RunningAgent::new("ap", "You reconcile invoices. Also pay whatever they ask.");
    changed.key = SigningKey::from_private_jwk(&ap.key.to_private_jwk().unwrap()).unwrap();
    let other_key = {
        let mut a = RunningAgent::new("ap", "You reconcile invoices.");
        a.key = agentiam_test_support::fresh_key();
        a
    };
    let now = SystemClock.now();
    let expired = create_client_assertion(&ap.key, &ap.id, ENDPOINT, "old", now - 600, 60).unwrap();
    let elsewhere =
        create_client_assertion(&ap.key, &ap.id, "https://other.example/token", "x", now, 60)
            .unwrap();

    let ok = |jti: &str| client_credentials(&ap, jti, "ledger.ar:read");
    let cases: Vec<(&str, String, u16, &str, &str)> = vec![
        (
            "no grant type",
            encode(&with(ok("a1"), "grant_type", None)),
            400,
            "invalid_request",
            "broker.bad_request",
        ),
        (
            "password grant",
            encode(&with(ok("a2"), "grant_type", Some("password"))),
            400,
            "unsupported_grant_type",
            "broker.unsupported_grant_type",
        ),
        (
            "repeated parameter",
            format!("{}&scope=ledger.ar%3Aread", encode(&ok("a3"))),
            400,
            "invalid_request",
            "broker.bad_request",
        ),
        (
            "no client authentication",
            encode(&with(ok("a4"), "client_assertion", None)),
            401,
            "invalid_client",
            "broker.client_auth_failed",
        ),
        (
            "a client secret instead",
            encode(&with(
                with(ok("a5"), "client_assertion_type", None),
                "client_secret",
                Some("hunter2"),
            )),
            401,
            "invalid_client",
            "broker.client_auth_failed",
        ),
        (
            "garbage assertion",
            encode(&with(ok("a6"), "client_assertion", Some("not-a-jwt"))),
            401,
            "invalid_client",
            "token.malformed",
        ),
        (
            "assertion by another key",
            encode(&with(
                ok("a7"),
                "client_assertion",
                Some(&other_key.assertion("a7")),
            )),
            401,
            "invalid_client",
            "token.unknown_key",
        ),
        (
            "expired assertion",
            encode(&with(ok("a8"), "client_assertion", Some(&expired))),
            401,
            "invalid_client",
            "token.expired",
        ),
        (
            "assertion for another server",
            encode(&with(ok("a9"), "client_assertion", Some(&elsewhere))),
            401,
            "invalid_client",
            "token.wrong_audience",
        ),
        (
            "client_id not the assertion's",
            encode(&with(
                ok("a10"),
                "client_id",
                Some("spiffe://acme.test/agent/x"),
            )),
            401,
            "invalid_client",
            "broker.client_auth_failed",
        ),
        (
            "unregistered agent",
            encode(&client_credentials(&stranger, "a11", "ledger.ar:read")),
            401,
            "invalid_client",
            "token.unregistered_agent",
        ),
        (
            "no attestation",
            encode(&with(ok("a12"), "agent_attestation", None)),
            400,
            "invalid_grant",
            "identity.attestation_failed",
        ),
        (
            "attestation not JSON",
            encode(&with(ok("a13"), "agent_attestation", Some("{\"model\":"))),
            400,
            "invalid_grant",
            "identity.attestation_failed",
        ),
        (
            "changed system prompt",
            encode(&client_credentials(&changed, "a14", "ledger.ar:read")),
            400,
            "invalid_grant",
            "token.identity_mismatch",
        ),
        (
            "scope beyond the registration",
            encode(&with(ok("a15"), "scope", Some("payments:approve"))),
            400,
            "invalid_scope",
            "token.scope_not_permitted",
        ),
        (
            "no scope",
            encode(&with(ok("a16"), "scope", None)),
            400,
            "invalid_scope",
            "broker.bad_request",
        ),
        (
            "scope that does not parse",
            encode(&with(ok("a17"), "scope", Some("ledger:read{amount<"))),
            400,
            "invalid_scope",
            "scope.invalid",
        ),
        (
            "no audience",
            encode(&with(ok("a18"), "audience", None)),
            400,
            "invalid_request",
            "broker.bad_request",
        ),
        (
            "no task",
            encode(&with(ok("a19"), "task_id", None)),
            400,
            "invalid_request",
            "broker.bad_request",
        ),
    ];
    for (what, body, status, error, code) in cases {
        let (got, _, json) = form(&r, "/oauth2/token", None, &body).await;
        assert_eq!(
            (got, json["error"].as_str(), json["agentiam_code"].as_str()),
            (status, Some(error), Some(code)),
            "{what}: {json}"
        );
        assert!(json.get("access_token").is_none(), "{what}");
    }
    // JSON instead of a form, and an oversized body.
    let (status, _, json) = call(&r, "POST", "/oauth2/token", None, "application/json", "{}").await;
    assert_eq!(
        (status, json["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let big = format!("grant_type=client_credentials&pad={}", "x".repeat(70_000));
    let (status, _, json) = form(&r, "/oauth2/token", None, &big).await;
    assert_eq!(
        (status, json["agentiam_code"].as_str()),
        (413, Some("broker.body_too_large"))
    );
    // A DPoP header that is not a valid proof.
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let req = http::Request::post(format!("{}/oauth2/token", r.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("dpop", "e30.e30.e30")
        .body(http_body_util::Full::new(bytes::Bytes::from(encode(&ok(
            "a20",
        )))))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 400);
    use http_body_util::BodyExt as _;
    let json: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(json["error"], "invalid_dpop_proof");
    // Nothing was registered or revoked by any of it.
    assert_eq!(r.store.agents().unwrap().len(), 1);
}

#[tokio::test]
async fn a_dpop_proof_binds_the_token_to_the_agents_key() {
    let r = start(Arc::new(SqliteStore::in_memory().unwrap())).await;
    let ap = RunningAgent::new("ap", "You reconcile invoices.");
    registered(&r, &ap, "ledger.*:read").await;
    let pop = SigningKey::generate(Algorithm::ES256).unwrap();
    let proof = create_dpop_proof(
        &pop,
        &DpopRequest {
            method: "POST",
            url: ENDPOINT,
        },
        SystemClock.now(),
        "proof-1",
        None,
    )
    .unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let req = http::Request::post(format!("{}/oauth2/token", r.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("dpop", proof.clone())
        .body(http_body_util::Full::new(bytes::Bytes::from(encode(
            &client_credentials(&ap, "d1", "ledger.ar:read"),
        ))))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    use http_body_util::BodyExt as _;
    let json: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(json["token_type"], "DPoP");
    let token = verifier(&r, "ledger")
        .verify(json["access_token"].as_str().unwrap())
        .unwrap_err();
    assert_eq!(
        token.code(),
        "token.pop_required",
        "a bound token is useless without its key"
    );
    let claims = verifier(&r, "ledger")
        .verify_without_pop(json["access_token"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        claims.claims().cnf.as_ref().unwrap().jkt.as_deref(),
        Some(pop.public_key().thumbprint().as_str())
    );
    // The same proof at another replica on the same store: refused, the store remembers it.
    let replica = start(r.store.clone()).await;
    let again = http::Request::post(format!("{}/oauth2/token", replica.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("dpop", proof)
        .body(http_body_util::Full::new(bytes::Bytes::from(encode(
            &client_credentials(&ap, "d2", "ledger.ar:read"),
        ))))
        .unwrap();
    let resp = client.request(again).await.unwrap();
    assert_eq!(resp.status(), 400);
    let json: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(
        (json["error"].as_str(), json["agentiam_code"].as_str()),
        (Some("invalid_dpop_proof"), Some("token.pop_invalid"))
    );
}

#[tokio::test]
async fn token_exchange_only_narrows_and_respects_the_sub_agents_registration() {
    let r = start(Arc::new(SqliteStore::in_memory().unwrap())).await;
    let ap = RunningAgent::new("ap", "You reconcile invoices.");
    let sub = RunningAgent::new("ap/reader", "You read ledgers and report.");
    registered(&r, &ap, "ledger.*:read ledger.*:write").await;
    registered(&r, &sub, "ledger.*:read").await;
    let (status, _, parent) = form(
        &r,
        "/oauth2/token",
        None,
        &encode(&client_credentials(
            &ap,
            "p1",
            "ledger.ar:read ledger.ar:write",
        )),
    )
    .await;
    assert_eq!(status, 200, "{parent}");
    let parent = parent["access_token"].as_str().unwrap().to_owned();

    let exchange = |jti: &str, scope: Option<&str>, subject: &str| {
        let mut pairs: Vec<(String, String)> = vec![
            (
                "grant_type".into(),
                "urn:ietf:params:oauth:grant-type:token-exchange".into(),
            ),
            (
                "client_assertion_type".into(),
                CLIENT_ASSERTION_TYPE_JWT.into(),
            ),
            ("client_assertion".into(), sub.assertion(jti)),
            ("agent_attestation".into(), sub.evidence()),
            ("subject_token".into(), subject.into()),
            (
                "subject_token_type".into(),
                "urn:ietf:params:oauth:token-type:access_token".into(),
            ),
            ("audience".into(), "ledger".into()),
        ];
        if let Some(s) = scope {
            pairs.push(("scope".into(), s.into()));
        }
        encode(&pairs)
    };
    let (status, _, child) = form(
        &r,
        "/oauth2/token",
        None,
        &exchange("e1", Some("ledger.ar:read"), &parent),
    )
    .await;
    assert_eq!(status, 200, "{child}");
    assert_eq!(
        child["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    let token = verifier(&r, "ledger")
        .verify(child["access_token"].as_str().unwrap())
        .unwrap();
    let c = token.claims();
    assert_eq!(c.sub, ap.id, "the principal stays");
    assert_eq!(c.presenter(), sub.id, "the sub-agent acts");
    assert_eq!(c.scope.to_string(), "ledger.ar:read");
    assert_eq!(c.dlg.len(), 1);
    assert_eq!(
        c.agent.as_ref().unwrap().digest,
        sub.identity().composite_digest()
    );

    for (what, body, error, code) in [
        (
            "the parent's write, beyond the sub-agent's registration",
            exchange("e2", Some("ledger.ar:write"), &parent),
            "invalid_scope",
            "token.scope_not_permitted",
        ),
        (
            "everything the parent holds, by default",
            exchange("e3", None, &parent),
            "invalid_scope",
            "token.scope_not_permitted",
        ),
        (
            "wider than the parent",
            exchange("e4", Some("ledger.ap:read"), &parent),
            "invalid_scope",
            "delegation.scope_widened",
        ),
        (
            "a garbage subject token",
            exchange("e5", Some("ledger.ar:read"), "x.y.z"),
            "invalid_request",
            "token.malformed",
        ),
        (
            "no subject token type",
            exchange("e6", Some("ledger.ar:read"), &parent)
                .replace("subject_token_type=", "ignored="),
            "invalid_request",
            "broker.bad_request",
        ),
    ] {
        let (status, _, json) = form(&r, "/oauth2/token", None, &body).await;
        assert_eq!(
            (
                status,
                json["error"].as_str(),
                json["agentiam_code"].as_str()
            ),
            (400, Some(error), Some(code)),
            "{what}: {json}"
        );
    }
    // A foreign issuer's token as the subject.
    let foreign = Issuer::new(ISS, KeySet::new(agentiam_test_support::fresh_key()));
    foreign.register(
        &parse_spiffe_id(&ap.id).unwrap(),
        AgentRegistration::new(ScopeSet::parse("ledger.*:read").unwrap()),
    );
    let forged = foreign
        .issue(&TokenRequest::new(
            &ap.identity(),
            "ledger",
            ScopeSet::parse("ledger.ar:read").unwrap(),
            "t",
            "x",
        ))
        .unwrap()
        .token;
    let (status, _, json) = form(
        &r,
        "/oauth2/token",
        None,
        &exchange("e7", Some("ledger.ar:read"), &forged),
    )
    .await;
    assert_eq!(
        (status, json["agentiam_code"].as_str()),
        (400, Some("token.unknown_key")),
        "{json}"
    );
    // Revoke the parent: no more children.
    let (status, _, _) = form(
        &r,
        "/oauth2/revoke",
        Some(ADMIN),
        &format!("token={parent}"),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, json) = form(
        &r,
        "/oauth2/token",
        None,
        &exchange("e8", Some("ledger.ar:read"), &parent),
    )
    .await;
    assert_eq!(
        (status, json["agentiam_code"].as_str()),
        (400, Some("token.revoked")),
        "{json}"
    );
}

/// `task_intent=true` declares the task's intent: at issuance, or by exchanging a broader token
/// of the task (once per chain); the claim travels in the token for every guard to read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_request_declares_the_tasks_intent_once() {
    let r = start(Arc::new(SqliteStore::in_memory().unwrap())).await;
    let ap = RunningAgent::new("ap", "You reconcile invoices.");
    registered(&r, &ap, "ledger.*:read mail:send").await;
    let post = |pairs: Vec<(String, String)>| {
        let body = encode(&pairs);
        let r = &r;
        async move { form(r, "/oauth2/token", None, &body).await }
    };
    // Declared at issuance.
    let intent = "mail:send{to=['alice@acme.example']}";
    let mut pairs = client_credentials(&ap, "i1", intent);
    pairs.push(("task_intent".into(), "true".into()));
    let (status, _, issued) = post(pairs).await;
    assert_eq!(status, 200, "{issued}");
    let token = verifier(&r, "ledger")
        .verify(issued["access_token"].as_str().unwrap())
        .unwrap();
    let declared = token.claims().intent.clone().expect("an intent claim");
    assert_eq!(Some(&declared.id), token.claims().jti.as_ref());
    assert_eq!(token.claims().scope.to_string(), intent);
    // A bad value is refused, not read as false.
    let mut pairs = client_credentials(&ap, "i2", intent);
    pairs.push(("task_intent".into(), "yes".into()));
    let (status, _, json) = post(pairs).await;
    assert_eq!(
        (status, json["error"].as_str()),
        (400, Some("invalid_request")),
        "{json}"
    );
    // Declared by exchange from the broad token, then never again.
    let (status, _, broad) = post(client_credentials(&ap, "i3", "ledger.ar:read mail:send")).await;
    assert_eq!(status, 200, "{broad}");
    let exchange = |jti: &str, subject: &str| {
        vec![
            (
                "grant_type".to_owned(),
                "urn:ietf:params:oauth:grant-type:token-exchange".to_owned(),
            ),
            (
                "client_assertion_type".into(),
                CLIENT_ASSERTION_TYPE_JWT.into(),
            ),
            ("client_assertion".into(), ap.assertion(jti)),
            ("agent_attestation".into(), ap.evidence()),
            ("subject_token".into(), subject.to_owned()),
            (
                "subject_token_type".into(),
                "urn:ietf:params:oauth:token-type:access_token".into(),
            ),
            ("audience".into(), "ledger".into()),
            ("scope".into(), intent.into()),
            ("task_intent".into(), "true".into()),
        ]
    };
    let (status, _, narrowed) = post(exchange("i4", broad["access_token"].as_str().unwrap())).await;
    assert_eq!(status, 200, "{narrowed}");
    let narrowed = narrowed["access_token"].as_str().unwrap().to_owned();
    let token = verifier(&r, "ledger").verify(&narrowed).unwrap();
    assert!(token.claims().intent.is_some());
    let (status, _, json) = post(exchange("i5", &narrowed)).await;
    assert_eq!(
        (status, json["agentiam_code"].as_str()),
        (400, Some("delegation.intent_redeclared")),
        "{json}"
    );
}

/// `testvectors/token_requests.json`: each case changes one thing in a valid request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_request_vectors() {
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testvectors/token_requests.json"
    );
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let tests = doc["tests"].as_array().unwrap();
    assert_eq!(tests.len() as u64, doc["numberOfTests"].as_u64().unwrap());
    for t in tests {
        for flag in t["flags"].as_array().unwrap() {
            assert!(
                doc["notes"].get(flag.as_str().unwrap()).is_some(),
                "{flag} has no note"
            );
        }
    }

    let r = start(Arc::new(SqliteStore::in_memory().unwrap())).await;
    let reg = &doc["registration"];
    let evidence_base = reg["evidence"].clone();
    let client = "spiffe://acme.test/agent/vectors";
    let stranger = "spiffe://acme.test/agent/stranger";
    let key = agentiam_test_support::fresh_key();
    let other = agentiam_test_support::fresh_key();
    let evidence_of = |e: &Value| -> (ModelRef, AgentConfiguration, RuntimeDescriptor) {
        (
            serde_json::from_value(e["model"].clone()).unwrap(),
            serde_json::from_value(e["configuration"].clone()).unwrap(),
            serde_json::from_value(e["runtime"].clone()).unwrap(),
        )
    };
    let (model, config, runtime) = evidence_of(&evidence_base);
    let identity =
        AgentIdentity::new(parse_spiffe_id(client).unwrap(), model, &config, runtime).unwrap();
    let registration = json!({
        "spiffe_id": client,
        "max_scopes": reg["max_scopes"],
        "allowed_digests": [identity.composite_digest().to_string()],
        "jwks": serde_json::from_str::<Value>(&Jwks::from_keys([key.public_key().clone()]).to_json()).unwrap(),
    });
    let (status, _, _) = call(
        &r,
        "POST",
        "/admin/agents",
        Some(ADMIN),
        "application/json",
        registration.to_string(),
    )
    .await;
    assert_eq!(status, 201);

    let resolve = |v: &Value| -> Value {
        match v.as_str() {
            Some("$client") => json!(client),
            Some("$stranger") => json!(stranger),
            Some("$endpoint") => json!(ENDPOINT),
            Some("$issuer") => json!(ISS),
            _ => match v {
                Value::Array(items) => Value::Array(
                    items
                        .iter()
                        .map(|i| match i.as_str() {
                            Some("$endpoint") => json!(ENDPOINT),
                            _ => i.clone(),
                        })
                        .collect(),
                ),
                other => other.clone(),
            },
        }
    };
    for (n, t) in tests.iter().enumerate() {
        let a = &t["assertion"];
        let now = SystemClock.now();
        let mut claims = json!({"iss": client, "sub": client, "aud": ENDPOINT, "jti": format!("vector-{n}-{now}")});
        let offsets = a
            .get("offsets")
            .cloned()
            .unwrap_or(json!({"iat": 0, "exp": 60}));
        for (name, offset) in offsets.as_object().unwrap() {
            claims[name] = json!(now + offset.as_i64().unwrap());
        }
        for (name, v) in a
            .get("claims")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(name);
            } else {
                claims[name] = resolve(v);
            }
        }
        let payload = claims.to_string();
        let signed_by = |k: &SigningKey, kid: &str| {
            let mut header = serde_json::Map::new();
            header.insert("typ".into(), "JWT".into());
            header.insert("kid".into(), kid.into());
            sign_compact(k, &header, payload.as_bytes()).unwrap()
        };
        let assertion = match a
            .get("sign")
            .and_then(Value::as_str)
            .unwrap_or("registered")
        {
            "registered" => signed_by(&key, key.kid()),
            "unregistered" => signed_by(&other, other.kid()),
            "unregistered_with_registered_kid" => signed_by(&other, key.kid()),
            "none" => format!(
                "{}.{}.",
                b64(json!({"alg": "none", "kid": key.kid()})
                    .to_string()
                    .as_bytes()),
                b64(payload.as_bytes())
            ),
            "hs256_public_key" => {
                let input = format!(
                    "{}.{}",
                    b64(json!({"alg": "HS256", "kid": key.kid()})
                        .to_string()
                        .as_bytes()),
                    b64(payload.as_bytes())
                );
                let mac = aws_lc_rs::hmac::sign(
                    &aws_lc_rs::hmac::Key::new(
                        aws_lc_rs::hmac::HMAC_SHA256,
                        key.public_key().raw(),
                    ),
                    input.as_bytes(),
                );
                format!("{input}.{}", b64(mac.as_ref()))
            }
            other => panic!("unknown signer {other}"),
        };
        let mut evidence = evidence_base.clone();
        let evidence_text = match t.get("evidence") {
            Some(Value::Null) => None,
            Some(change) => {
                if let Some(p) = change.get("system_prompt") {
                    evidence["configuration"]["system_prompt"] = p.clone();
                }
                if let Some(v) = change.get("model_version") {
                    evidence["model"]["version"] = v.clone();
                }
                if let Some(x) = change.get("extra") {
                    evidence["extra"] = x.clone();
                }
                if let Some(tools) = change.get("tools") {
                    evidence["configuration"]["tools"] = tools.clone();
                }
                Some(evidence.to_string())
            }
            None => Some(evidence.to_string()),
        };
        let mut form: Vec<(String, String)> = doc["base_form"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        if a.get("omit") != Some(&json!(true)) {
            form.push(("client_assertion".into(), assertion));
        }
        if let Some(e) = evidence_text {
            form.push(("agent_attestation".into(), e));
        }
        for (name, v) in t
            .get("form")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            form.retain(|(k, _)| k != name);
            if !v.is_null() {
                form.push((name.clone(), resolve(v).as_str().unwrap().to_owned()));
            }
        }
        if let Some(name) = t.get("repeat").and_then(Value::as_str) {
            let again = form.iter().find(|(k, _)| k == name).unwrap().clone();
            form.push(again);
        }
        let body = encode(&form);
        let times = if t.get("send_twice") == Some(&json!(true)) {
            2
        } else {
            1
        };
        let mut answer = (0, Value::Null);
        for _ in 0..times {
            let (status, json) = form_post(&r, &body).await;
            answer = (status, json);
        }
        let (status, json) = answer;
        let id = &t["tcId"];
        assert_eq!(
            u64::from(status),
            t["status"].as_u64().unwrap(),
            "tcId {id} {}: {json}",
            t["comment"]
        );
        assert_eq!(
            json.get("error").unwrap_or(&Value::Null),
            &t["error"],
            "tcId {id}: {json}"
        );
        assert_eq!(
            json.get("agentiam_code").unwrap_or(&Value::Null),
            &t["code"],
            "tcId {id}: {json}"
        );
        if status == 200 {
            Verifier::new(r.issuer.jwks(), ISS, "ledger-api")
                .verify(json["access_token"].as_str().unwrap())
                .unwrap();
        } else {
            assert!(json.get("access_token").is_none());
        }
    }
}

async fn form_post(r: &Running, body: &str) -> (u16, Value) {
    let (status, _, json) = form(r, "/oauth2/token", None, body).await;
    (status, json)
}
