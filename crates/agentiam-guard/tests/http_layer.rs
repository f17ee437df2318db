//! The tower layer in front of real services over loopback: axum 0.8 and plain hyper, driven by
//! a real HTTP client, in clear and over rustls mTLS with SPIFFE client certificates.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "test harness: a panic is a failed test"
)]

use std::net::SocketAddr;
use std::sync::Arc;

use ::http::{Request, StatusCode};
use agentiam_guard::http::{
    APPROVAL_HEADER, Authenticated, GuardLayer, PROTECTED_RESOURCE_METADATA_PATH, PeerCertificate,
    RouteMap,
};
use agentiam_guard::*;
#[allow(unused_imports, reason = "each test file uses some of them")]
use agentiam_guard::{approval::*, arguments::*, audit::*, config::*, hooks::*, policy::*};
use agentiam_identity::*;
use agentiam_token::*;
use axum::routing::{delete, get, post};
use base64::Engine as _;
use http_body_util::BodyExt as _;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;

const ISS: &str = "https://broker.test";
const AUD: &str = "https://api.test";
const ORIGIN: &str = "https://api.test";
const POLICY: &str = r#"
@id("default-permit") permit (principal, action == Action::"call", resource);
@id("irreversible-needs-human") @confirmation("guard.confirmation_required")
forbid (principal, action == Action::"call", resource) when { context.risk == "irreversible" } unless { context.approved };
@id("mail-stays-inside") @reason("guard.policy_denied")
forbid (principal, action == Action::"call", resource == Tool::"send_email") when { !(context.arguments.to like "*@acme.test") };
"#;

fn now() -> i64 {
    SystemClock.now()
}

use agentiam_test_support::agent;

struct World {
    issuer: Issuer,
    clock: Arc<FixedClock>,
    human: SigningKey,
    ca: SvidAuthority,
}

fn world() -> World {
    let clock = Arc::new(FixedClock::new(now()));
    let issuer = Issuer::new(
        ISS,
        KeySet::new(SigningKey::generate(Algorithm::EdDSA).unwrap()),
    )
    .with_clock(clock.clone());
    let ca =
        SvidAuthority::generate(parse_trust_domain("acme.test").unwrap(), now(), 86_400).unwrap();
    World {
        issuer,
        clock,
        human: SigningKey::generate(Algorithm::EdDSA).unwrap(),
        ca,
    }
}

const ALL: &str = "ledger.invoices:read payments:transfer{amount<=100} db:drop mail:send";

impl World {
    fn token_with(
        &self,
        who: &AgentIdentity,
        scopes: &str,
        tweak: impl FnOnce(TokenRequest<'_>) -> TokenRequest<'_>,
    ) -> String {
        self.issuer.register(
            who.spiffe_id(),
            AgentRegistration::new(ScopeSet::parse(ALL).unwrap()),
        );
        let req = tweak(TokenRequest::new(
            who,
            AUD,
            ScopeSet::parse(scopes).unwrap(),
            "task-1",
            "test",
        ));
        self.issuer.issue(&req).unwrap().token
    }
    fn token(&self, scopes: &str) -> String {
        self.token_with(&agent("worker"), scopes, |r| r)
    }

    fn layer(&self, max_body: usize) -> GuardLayer {
        self.layer_with(max_body, |b| b, |v| v)
    }

    fn layer_with(
        &self,
        max_body: usize,
        engine: impl FnOnce(GuardBuilder) -> GuardBuilder,
        verifier: impl FnOnce(Verifier) -> Verifier,
    ) -> GuardLayer {
        let engine = engine(Guard::builder(PolicyEngine::new(POLICY, None).unwrap()).service(AUD))
            .clock(self.clock.clone())
            .tools([
                ToolSpec::new("read_invoice", Risk::Low).with_scope("ledger.invoices", "read"),
                ToolSpec::new("transfer", Risk::High).with_scope("payments", "transfer"),
                ToolSpec::new("drop_table", Risk::Irreversible).with_scope("db", "drop"),
                ToolSpec::new("send_email", Risk::Medium).with_scope("mail", "send"),
            ])
            .approvers(
                ApproverKeys::new()
                    .add("alice", self.human.public_key().clone())
                    .unwrap(),
            )
            .build()
            .unwrap();
        let verifier =
            verifier(Verifier::new(self.issuer.jwks(), ISS, AUD).with_clock(self.clock.clone()));
        let auth = Authenticator::new(
            CachingVerifier::new(verifier, 100),
            DpopVerifier::new(self.clock.clone()),
        )
        .with_workload(
            "spiffe://acme.test/agent/batch",
            ScopeSet::parse("ledger.invoices:read").unwrap(),
        );
        let routes = RouteMap::new()
            .route("GET", "/invoices/{id}", "read_invoice")
            .unwrap()
            .route("POST", "/payments", "transfer")
            .unwrap()
            .route("DELETE", "/tables/{name}", "drop_table")
            .unwrap()
            .route("POST", "/mail", "send_email")
            .unwrap();
        GuardLayer::new(engine, auth, routes, ORIGIN).with_max_body(max_body)
    }
}

async fn echo(Authenticated(p): Authenticated, body: String) -> axum::Json<Value> {
    axum::Json(json!({"presenter": p.presenter(), "task": p.task(), "body": body}))
}

fn app(layer: GuardLayer) -> axum::Router {
    axum::Router::new()
        .route("/invoices/{id}", get(echo))
        .route("/payments", post(echo))
        .route("/tables/{name}", delete(echo))
        .route("/mail", post(echo))
        .route("/unguarded-by-mistake", get(echo))
        .layer(layer)
}

async fn serve_axum(layer: GuardLayer) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app(layer)).await.unwrap() });
    addr
}

struct Reply {
    status: StatusCode,
    challenge: Option<String>,
    body: Value,
}

impl Reply {
    fn code(&self) -> Option<&str> {
        self.body["error"]["code"].as_str()
    }
}

async fn send(addr: SocketAddr, request: Request<String>) -> Reply {
    let client =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http::<String>();
    let (parts, body) = request.into_parts();
    let mut request = Request::from_parts(parts, body);
    *request.uri_mut() = format!("http://{addr}{}", request.uri().path_and_query().unwrap())
        .parse()
        .unwrap();
    let response = client.request(request).await.unwrap();
    reply(response).await
}

async fn reply(response: ::http::Response<hyper::body::Incoming>) -> Reply {
    let status = response.status();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        challenge,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

fn request(method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Request<String> {
    let mut b = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    match body {
        Some(v) => b
            .header("content-type", "application/json")
            .body(v.to_string())
            .unwrap(),
        None => b.body(String::new()).unwrap(),
    }
}

#[tokio::test]
async fn every_request_is_decided_on_identity_scope_arguments_and_policy() {
    let w = world();
    let addr = serve_axum(w.layer(4096)).await;
    let token = w.token(ALL);

    let r = send(addr, request("GET", "/invoices/INV-7", None, None)).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, Some("guard.credentials_missing"))
    );
    assert_eq!(
        r.challenge.as_deref(),
        Some(r#"Bearer, DPoP algs="EdDSA ES256""#)
    );

    let forged = format!("{}AAAA", token.trim_end_matches(|c| c != '.'));
    let r = send(addr, request("GET", "/invoices/INV-7", Some(&forged), None)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.challenge.as_deref(),
        Some(&*format!(
            r#"Bearer error="invalid_token", error_description="{}""#,
            r.code().unwrap()
        ))
    );
    assert!(r.code().unwrap().starts_with("token."), "{:?}", r.body);

    let r = send(addr, request("GET", "/invoices/INV-7", Some(&token), None)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["presenter"], "spiffe://acme.test/agent/worker");
    assert_eq!(r.body["task"], "task-1");

    let reader = w.token("ledger.invoices:read");
    let r = send(addr, request("DELETE", "/tables/tmp", Some(&reader), None)).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, Some("guard.scope_missing"))
    );
    assert_eq!(
        r.challenge.as_deref(),
        Some(
            r#"Bearer error="insufficient_scope", error_description="guard.scope_missing", scope="db:drop""#
        )
    );

    let r = send(
        addr,
        request(
            "POST",
            "/payments",
            Some(&token),
            Some(json!({"amount": 500, "to": "ACME"})),
        ),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, Some("guard.constraint_violated"))
    );
    let r = send(
        addr,
        request(
            "POST",
            "/payments",
            Some(&token),
            Some(json!({"amount": 50, "to": "ACME"})),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    // The handler gets the body the guard decided on.
    assert_eq!(
        serde_json::from_str::<Value>(r.body["body"].as_str().unwrap()).unwrap()["amount"],
        50
    );
    // A query parameter cannot smuggle a second `amount` past the body's.
    let r = send(
        addr,
        request(
            "POST",
            "/payments?amount=1",
            Some(&token),
            Some(json!({"amount": 500})),
        ),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, Some("guard.arguments_invalid"))
    );

    // Nor can a duplicate member in the body, at any depth: parsers disagree on which wins.
    for body in [
        r#"{"amount": 1, "amount": 500}"#,
        r#"{"amount": 1, "memo": {"to": "a", "to": "b"}}"#,
        r#"{"amount": 1, "items": [{"x": 1, "x": 2}]}"#,
    ] {
        let mut req = request("POST", "/payments", Some(&token), None);
        req.headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        *req.body_mut() = body.to_owned();
        let r = send(addr, req).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::BAD_REQUEST, Some("guard.arguments_invalid")),
            "{body}"
        );
    }
    // Trailing garbage after the object is refused too; `+json` types are JSON.
    let mut req = request("POST", "/payments", Some(&token), None);
    req.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    *req.body_mut() = r#"{"amount": 1} {"amount": 500}"#.to_owned();
    assert_eq!(send(addr, req).await.status, StatusCode::BAD_REQUEST);
    let mut req = request("POST", "/payments", Some(&token), None);
    req.headers_mut().insert(
        "content-type",
        "application/vnd.acme+JSON; charset=utf-8".parse().unwrap(),
    );
    *req.body_mut() = r#"{"amount": 500, "to": "ACME"}"#.to_owned();
    assert_eq!(
        send(addr, req).await.code(),
        Some("guard.constraint_violated")
    );
    // A body the guard cannot read (no or another content type) is refused with what to do,
    // not passed on unread nor judged as if it had no arguments.
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut req = request("POST", "/payments", Some(&token), None);
        if let Some(ct) = content_type {
            req.headers_mut()
                .insert("content-type", ct.parse().unwrap());
        }
        *req.body_mut() = r#"{"amount": 1, "to": "ACME"}"#.to_owned();
        let r = send(addr, req).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::BAD_REQUEST, Some("guard.arguments_invalid")),
            "{content_type:?}"
        );
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("application/json")
                || r.body.to_string().contains("application/json"),
            "{content_type:?}: {}",
            r.body
        );
    }

    let r = send(
        addr,
        request("GET", "/unguarded-by-mistake", Some(&token), None),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, Some("guard.unknown_action"))
    );

    let r = send(
        addr,
        request(
            "POST",
            "/mail",
            Some(&token),
            Some(json!({"to": "x@evil.test"})),
        ),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, Some("guard.policy_denied"))
    );
    assert!(r.challenge.is_none());
    let r = send(
        addr,
        request(
            "POST",
            "/mail",
            Some(&token),
            Some(json!({"to": "bob@acme.test"})),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);

    let big = json!({"amount": 1, "memo": "x".repeat(5000)});
    let r = send(addr, request("POST", "/payments", Some(&token), Some(big))).await;
    assert_eq!(
        (r.status, r.code()),
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            Some("guard.arguments_invalid")
        )
    );
}

fn with_approval(mut req: Request<String>, approval: &Approval) -> Request<String> {
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(approval).unwrap());
    req.headers_mut()
        .insert(APPROVAL_HEADER, header.parse().unwrap());
    req
}

#[tokio::test]
async fn an_irreversible_request_needs_a_signature_no_agent_holds() {
    let w = world();
    let addr = serve_axum(w.layer(4096)).await;
    let token = w.token(ALL);
    let r = send(addr, request("DELETE", "/tables/tmp", Some(&token), None)).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, Some("guard.confirmation_required"))
    );
    let approval_request: ApprovalRequest =
        serde_json::from_value(r.body["approval_request"].clone()).unwrap();
    assert_eq!(approval_request.arguments, json!({"name": "tmp"}));
    let approval = Approval::sign(&approval_request, &w.human).unwrap();

    let r = send(
        addr,
        with_approval(
            request("DELETE", "/tables/customers", Some(&token), None),
            &approval,
        ),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, Some("guard.confirmation_invalid"))
    );
    // An approval inside the body is just another argument.
    let in_body = json!({"approval": approval, "confirm": true});
    let r = send(
        addr,
        request("DELETE", "/tables/tmp", Some(&token), Some(in_body)),
    )
    .await;
    assert_eq!(r.code(), Some("guard.confirmation_required"));
    let r = send(
        addr,
        with_approval(
            request("DELETE", "/tables/tmp", Some(&token), None),
            &approval,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = send(
        addr,
        with_approval(
            request("DELETE", "/tables/tmp", Some(&token), None),
            &approval,
        ),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, Some("guard.confirmation_invalid"))
    );

    let mut garbage = request("DELETE", "/tables/tmp", Some(&token), None);
    garbage
        .headers_mut()
        .insert(APPROVAL_HEADER, "not-base64!".parse().unwrap());
    assert_eq!(
        send(addr, garbage).await.code(),
        Some("guard.confirmation_invalid")
    );
}

#[tokio::test]
async fn dpop_bound_tokens_need_their_proof() {
    let w = world();
    let addr = serve_axum(w.layer(4096)).await;
    let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let token = w.token_with(&agent("worker"), ALL, |r| {
        r.bind_dpop(key.public_key().thumbprint())
    });
    let url = format!("{ORIGIN}/invoices/INV-7");
    let proof = create_dpop_proof(
        &key,
        &DpopRequest {
            method: "GET",
            url: &url,
        },
        w.clock.now(),
        "p-1",
        Some(&token),
    )
    .unwrap();
    let mut req = request("GET", "/invoices/INV-7", None, None);
    req.headers_mut()
        .insert("authorization", format!("DPoP {token}").parse().unwrap());
    req.headers_mut().insert("dpop", proof.parse().unwrap());
    let r = send(addr, req).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);

    let r = send(addr, request("GET", "/invoices/INV-7", Some(&token), None)).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, Some("token.pop_required"))
    );

    // A proof for another path.
    let other = create_dpop_proof(
        &key,
        &DpopRequest {
            method: "GET",
            url: &format!("{ORIGIN}/invoices/INV-8"),
        },
        w.clock.now(),
        "p-2",
        Some(&token),
    )
    .unwrap();
    let mut req = request("GET", "/invoices/INV-7", None, None);
    req.headers_mut()
        .insert("authorization", format!("DPoP {token}").parse().unwrap());
    req.headers_mut().insert("dpop", other.parse().unwrap());
    let r = send(addr, req).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, Some("token.pop_invalid"))
    );
    // RFC 9449 7.1: a bad proof is `invalid_dpop_proof`.
    assert_eq!(
        r.challenge.as_deref(),
        Some(
            r#"DPoP error="invalid_dpop_proof", error_description="token.pop_invalid", algs="EdDSA ES256""#
        )
    );

    // A valid proof does not make `Bearer` acceptable for a DPoP-bound token (RFC 9449 7.2):
    // the scheme cannot be downgraded.
    let fresh = |jti: &str| {
        create_dpop_proof(
            &key,
            &DpopRequest {
                method: "GET",
                url: &url,
            },
            w.clock.now(),
            jti,
            Some(&token),
        )
        .unwrap()
    };
    let mut req = request("GET", "/invoices/INV-7", Some(&token), None);
    req.headers_mut()
        .insert("dpop", fresh("p-3").parse().unwrap());
    let r = send(addr, req).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, Some("token.pop_required"))
    );
    assert!(r.challenge.unwrap().starts_with("Bearer error="));

    // The DPoP scheme needs exactly one proof, even for a token that is not bound.
    let unbound = w.token(ALL);
    let mut req = request("GET", "/invoices/INV-7", None, None);
    req.headers_mut()
        .insert("authorization", format!("DPoP {unbound}").parse().unwrap());
    let r = send(addr, req).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, Some("token.pop_required"))
    );
    assert!(
        r.challenge
            .unwrap()
            .starts_with(r#"DPoP error="invalid_token""#)
    );
    let mut req = request("GET", "/invoices/INV-7", None, None);
    req.headers_mut()
        .insert("authorization", format!("DPoP {token}").parse().unwrap());
    req.headers_mut()
        .append("dpop", fresh("p-4").parse().unwrap());
    req.headers_mut()
        .append("dpop", fresh("p-5").parse().unwrap());
    let r = send(addr, req).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, Some("token.pop_invalid"))
    );
}

/// `(tool, http path, code)` of each recorded decision.
type Recorded = Vec<(String, Option<String>, Option<String>)>;

/// Remembers `(tool, http path, code)` of every decision.
#[derive(Debug, Default)]
struct Recorder(std::sync::Mutex<Recorded>);

impl DecisionSink for Recorder {
    fn record(
        &self,
        request: &GuardRequest<'_>,
        _tool: Option<&ToolSpec>,
        decision: &Decision,
    ) -> Result<(), String> {
        self.0.lock().unwrap().push((
            request.tool.to_owned(),
            request.http.map(|h| h.path.to_owned()),
            decision.code().map(str::to_owned),
        ));
        Ok(())
    }
}

/// A revocation store that cannot be reached.
#[derive(Debug)]
struct Unreachable;

impl RevocationSet for Unreachable {
    fn revoke(&self, _: Revocation, _: i64) -> Result<(), TokenError> {
        Err(TokenError::RevocationUnavailable("down".into()))
    }
    fn check(&self, _: &Claims) -> Result<Option<String>, TokenError> {
        Err(TokenError::RevocationUnavailable("down".into()))
    }
    fn prune(&self, _: i64) -> Result<(), TokenError> {
        Ok(())
    }
    fn contains(&self, _: &Revocation) -> Result<bool, TokenError> {
        Err(TokenError::RevocationUnavailable("down".into()))
    }
}

#[tokio::test]
async fn unmapped_routes_are_authenticated_then_denied_and_audited() {
    let w = world();
    let recorder = Arc::new(Recorder::default());
    let sink = recorder.clone();
    let addr = serve_axum(w.layer_with(4096, |b| b.sink(sink), |v| v)).await;
    let token = w.token(ALL);

    // Anonymous callers learn nothing about which routes are mapped.
    let r = send(addr, request("GET", "/unguarded-by-mistake", None, None)).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, Some("guard.credentials_missing"))
    );
    assert!(recorder.0.lock().unwrap().is_empty());

    let r = send(
        addr,
        request("GET", "/unguarded-by-mistake?x=1", Some(&token), None),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, Some("guard.unknown_action"))
    );
    assert_eq!(
        recorder.0.lock().unwrap().as_slice(),
        [(
            String::new(),
            Some("/unguarded-by-mistake".to_owned()),
            Some("guard.unknown_action".to_owned())
        )]
    );

    // Two Authorization headers are refused rather than one silently chosen.
    let mut req = request("GET", "/invoices/1", Some(&token), None);
    req.headers_mut()
        .append("authorization", "Bearer other".parse().unwrap());
    let r = send(addr, req).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, Some("token.malformed"))
    );
}

#[tokio::test]
async fn an_unreachable_revocation_store_is_the_service_s_failure_not_the_client_s() {
    let w = world();
    let addr =
        serve_axum(w.layer_with(4096, |b| b, |v| v.with_revocation(Arc::new(Unreachable)))).await;
    let r = send(
        addr,
        request("GET", "/invoices/1", Some(&w.token(ALL)), None),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("token.revocation_unavailable")
        )
    );
    assert!(r.challenge.is_none());
}

#[tokio::test]
async fn plain_hyper_services_work_behind_the_layer() {
    let w = world();
    let layer = w.layer(4096);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let inner = tower::service_fn(|req: Request<axum::body::Body>| async move {
        let who = req
            .extensions()
            .get::<Arc<Principal>>()
            .map(|p| p.presenter().to_owned())
            .unwrap_or_default();
        Ok::<_, std::convert::Infallible>(::http::Response::new(axum::body::Body::from(
            json!({"presenter": who}).to_string(),
        )))
    });
    let service = tower::Layer::layer(&layer, inner);
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let svc = hyper_util::service::TowerToHyperService::new(service.clone());
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc),
            );
        }
    });
    let token = w.token(ALL);
    let r = send(addr, request("GET", "/invoices/1", Some(&token), None)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["presenter"], "spiffe://acme.test/agent/worker");
    let r = send(addr, request("GET", "/invoices/1", None, None)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

// ---- mTLS -------------------------------------------------------------------------------------

/// An mTLS server: rustls verifies the client chain; the accept loop hands the leaf to the layer.
async fn serve_mtls(
    w: &World,
    layer: GuardLayer,
) -> (SocketAddr, rustls::pki_types::CertificateDer<'static>) {
    let server_ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut server_ca = server_ca;
    server_ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let ca_cert = server_ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(server_ca, ca_key);
    let leaf_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let config = agentiam_guard::mtls::server_config(
        vec![leaf.der().to_vec()],
        leaf_key.serialize_pem().as_bytes(),
        &[w.ca.ca_cert_der().to_vec()],
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = tower::Layer::layer(&layer, app_service());
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            let service = service.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let peer = agentiam_guard::mtls::peer_certificate(tls.get_ref().1);
                let svc = tower::ServiceBuilder::new()
                    .map_request(move |mut req: Request<hyper::body::Incoming>| {
                        if let Some(p) = &peer {
                            req.extensions_mut().insert::<PeerCertificate>(p.clone());
                        }
                        req
                    })
                    .service(service);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(
                        TokioIo::new(tls),
                        hyper_util::service::TowerToHyperService::new(svc),
                    )
                    .await;
            });
        }
    });
    (addr, ca_cert.der().clone())
}

fn app_service() -> axum::Router {
    axum::Router::new()
        .route("/invoices/{id}", get(echo))
        .route("/payments", post(echo))
}

/// One request over TLS, with an optional client certificate. `Err` when the handshake fails.
async fn send_tls(
    addr: SocketAddr,
    server_ca: &rustls::pki_types::CertificateDer<'static>,
    client: Option<&X509Svid>,
    request: Request<String>,
) -> Result<Reply, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server_ca.clone()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some(svid) => {
            use rustls::pki_types::pem::PemObject as _;
            let key =
                rustls::pki_types::PrivateKeyDer::from_pem_slice(svid.private_key_pem().as_bytes())
                    .unwrap();
            builder
                .with_client_auth_cert(vec![svid.cert_der.clone().into()], key)
                .unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = connector
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    Ok(reply(response).await)
}

fn req_with_host(method: &str, path: &str, token: Option<&str>) -> Request<String> {
    let mut r = request(method, path, token, None);
    r.headers_mut().insert("host", "localhost".parse().unwrap());
    r
}

#[tokio::test]
async fn mtls_binds_tokens_to_the_client_certificate_and_its_spiffe_id() {
    let w = world();
    let worker = agent("worker");
    let svid = w.ca.issue(worker.spiffe_id(), now(), 3_600).unwrap();
    let other_key_same_id = w.ca.issue(worker.spiffe_id(), now(), 3_600).unwrap();
    let mailer =
        w.ca.issue(agent("mailer").spiffe_id(), now(), 3_600)
            .unwrap();
    let batch =
        w.ca.issue(
            &parse_spiffe_id("spiffe://acme.test/agent/batch").unwrap(),
            now(),
            3_600,
        )
        .unwrap();
    let x5t = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &svid.cert_der).as_ref());
    let bound = w.token_with(&worker, ALL, |mut r| {
        r.cnf = Some(Confirmation {
            x5t_s256: Some(x5t),
            ..Confirmation::default()
        });
        r
    });
    let plain = w.token(ALL);
    let (addr, server_ca) = serve_mtls(&w, w.layer(4096)).await;
    let get = |token: Option<&str>| req_with_host("GET", "/invoices/INV-7", token);

    let r = send_tls(addr, &server_ca, Some(&svid), get(Some(&bound)))
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["presenter"], "spiffe://acme.test/agent/worker");

    let r = send_tls(
        addr,
        &server_ca,
        Some(&other_key_same_id),
        get(Some(&bound)),
    )
    .await
    .unwrap();
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, Some("token.pop_invalid"))
    );

    let r = send_tls(addr, &server_ca, Some(&mailer), get(Some(&plain)))
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, Some("token.identity_mismatch"))
    );

    // A workload mapped to scopes may call with its certificate alone; others may not.
    let r = send_tls(addr, &server_ca, Some(&batch), get(None))
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["presenter"], "spiffe://acme.test/agent/batch");
    let r = send_tls(addr, &server_ca, Some(&svid), get(None))
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, Some("guard.credentials_missing"))
    );
    let r = send_tls(
        addr,
        &server_ca,
        Some(&batch),
        req_with_host("POST", "/payments", None),
    )
    .await
    .unwrap();
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::FORBIDDEN, Some("guard.scope_missing"))
    );

    // No client certificate: rustls refuses the handshake (or the first read fails).
    assert!(
        send_tls(addr, &server_ca, None, get(Some(&plain)))
            .await
            .is_err()
    );

    // A certificate from another CA is refused by TLS.
    let rogue_ca =
        SvidAuthority::generate(parse_trust_domain("acme.test").unwrap(), now(), 86_400).unwrap();
    let rogue = rogue_ca.issue(worker.spiffe_id(), now(), 3_600).unwrap();
    assert!(
        send_tls(addr, &server_ca, Some(&rogue), get(Some(&bound)))
            .await
            .is_err()
    );

    // The certificate-bound token over plain HTTP (no client certificate at all).
    let clear = serve_axum(w.layer(4096)).await;
    let r = send(clear, request("GET", "/invoices/INV-7", Some(&bound), None)).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, Some("token.pop_required"))
    );
}

#[tokio::test]
async fn handlers_without_the_layer_get_a_500_not_a_principal() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/x", get(echo));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let r = send(addr, request("GET", "/x", None, None)).await;
    assert_eq!(
        (r.status, r.code()),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            Some("guard.layer_missing")
        )
    );
}

/// The body cap at, below and past its bound (the cap is in bytes; the memo is two-byte
/// characters, so an odd cap falls inside one): past it, 413 `guard.arguments_invalid` before
/// anything else reads the body.
#[tokio::test]
async fn the_body_cap_at_below_and_past_its_bound() {
    let w = world();
    let cap = 4097;
    let addr = serve_axum(w.layer(cap)).await;
    let token = w.token(ALL);
    let body = |len: usize| {
        let base = json!({"to": "bob@acme.test", "memo": ""}).to_string();
        let pad = len - base.len();
        let mut memo = "é".repeat(pad / 2);
        if pad % 2 == 1 {
            memo.push('x');
        }
        let v = json!({"to": "bob@acme.test", "memo": memo});
        assert_eq!(v.to_string().len(), len);
        v
    };
    for (len, too_large) in [(cap - 1, false), (cap, false), (cap + 1, true)] {
        let r = send(
            addr,
            request("POST", "/mail", Some(&token), Some(body(len))),
        )
        .await;
        if too_large {
            assert_eq!(
                (r.status, r.code()),
                (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    Some("guard.arguments_invalid")
                )
            );
        } else {
            assert_eq!(r.status, StatusCode::OK, "{len}: {:?}", r.body);
        }
    }
    // Within the body cap but nested past the guard's argument depth: 413 with its own code.
    let mut deep = json!("x");
    for _ in 0..MAX_ARGUMENT_DEPTH {
        deep = json!([deep]);
    }
    let r = send(
        addr,
        request(
            "POST",
            "/mail",
            Some(&token),
            Some(json!({"to": "bob@acme.test", "memo": deep})),
        ),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("guard.input_too_large"))
    );
}

#[tokio::test]
async fn protected_resource_metadata_points_clients_at_the_broker() {
    let w = world();
    let layer = w
        .layer_with(4096, |b| b, |v| v)
        .with_protected_resource_metadata([ISS], ["payments:transfer", "ledger.invoices:read"]);
    let addr = serve_axum(layer).await;
    let metadata_url = format!("{ORIGIN}{PROTECTED_RESOURCE_METADATA_PATH}");

    // RFC 9728: served without credentials, naming the resource and its authorization server.
    let r = send(
        addr,
        request("GET", PROTECTED_RESOURCE_METADATA_PATH, None, None),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["resource"], ORIGIN);
    assert_eq!(r.body["authorization_servers"], json!([ISS]));
    assert_eq!(
        r.body["scopes_supported"],
        json!(["payments:transfer", "ledger.invoices:read"])
    );
    assert_eq!(r.body["bearer_methods_supported"], json!(["header"]));

    // Every 401 names it, in each challenge offered.
    let r = send(addr, request("POST", "/payments", None, None)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let challenge = r.challenge.unwrap();
    assert_eq!(
        challenge
            .matches(&format!("resource_metadata=\"{metadata_url}\""))
            .count(),
        2,
        "{challenge}"
    );
    let r = send(
        addr,
        request("POST", "/payments", Some("not-a-token"), None),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let challenge = r.challenge.unwrap();
    assert!(
        challenge.starts_with("Bearer error=\"invalid_token\""),
        "{challenge}"
    );
    assert!(
        challenge.contains(&format!("resource_metadata=\"{metadata_url}\"")),
        "{challenge}"
    );
    // Only GET of that exact path is public; anything else there is authenticated as usual.
    let r = send(
        addr,
        request("POST", PROTECTED_RESOURCE_METADATA_PATH, None, None),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // Without it configured, nothing is published and challenges stay as they were.
    let plain = serve_axum(w.layer_with(4096, |b| b, |v| v)).await;
    let r = send(
        plain,
        request("GET", PROTECTED_RESOURCE_METADATA_PATH, None, None),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(!r.challenge.unwrap().contains("resource_metadata"));
}
