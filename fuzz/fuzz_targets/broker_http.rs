//! Any bytes as the body of a request to the broker's attacker-facing endpoints (token
//! endpoint: forms, client assertions, attestation evidence, token exchange; approvals posted
//! with a valid agent token; the console's sign-in form; the registry), driven through the
//! real router in process: the broker never panics and never answers 500, and nothing but a
//! well-formed request signed by the registered key ever gets a token.
#![no_main]

use std::sync::{Arc, OnceLock};

use agentiam_broker::{Broker, SqliteStore, Store};
use agentiam_identity::{
    AgentConfiguration, AgentIdentity, Jwks, KeySet, ModelRef, RuntimeDescriptor,
    SigningKey, parse_spiffe_id,
};
use agentiam_token::{AgentRegistration, Issuer, ScopeSet, TokenRequest};
use axum::body::Body;
use http_body_util::BodyExt as _;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt as _;

const ADMIN: &str = "fuzz-admin-secret-0123456789-abcdefghij";

struct World {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    agent_token: String,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let key = SigningKey::ed25519_from_seed(&[7u8; 32]).expect("key");
        let issuer = Arc::new(Issuer::new(
            "http://broker.fuzz",
            KeySet::new(SigningKey::ed25519_from_seed(&[9u8; 32]).expect("issuer key")),
        ));
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().expect("store"));
        let id = "spiffe://acme.fuzz/agent/ap";
        let agent = AgentIdentity::new(
            parse_spiffe_id(id).expect("id"),
            ModelRef::new("openai", "gpt-5", "2026-08-01"),
            &AgentConfiguration::new("You reconcile invoices.", vec![]),
            RuntimeDescriptor::new("process"),
        )
        .expect("agent");
        store
            .put_agent(&agentiam_broker::AgentRecord {
                spiffe_id: id.into(),
                max_scopes: "ledger.*:read ledger.ar:void".into(),
                allowed_digests: vec![agent.composite_digest().to_string()],
                jwks: serde_json::from_str(&Jwks::from_keys([key.public_key().clone()]).to_json())
                    .ok(),
                attestors: vec!["configuration".into()],
                registration_token_sha256: None,
            })
            .expect("register");
        let broker = Broker::builder(issuer.clone(), store.clone(), "http://broker.fuzz", ADMIN)
            .build()
            .expect("broker");
        store.put_approver("controller", &agentiam_broker::hash_password("correct horse battery").expect("hash")).expect("approver");
        issuer.register(
            agent.spiffe_id(),
            AgentRegistration::new(ScopeSet::parse("ledger.*:read ledger.ar:void").expect("scopes")),
        );
        let agent_token = issuer
            .issue(&TokenRequest::new(
                &agent,
                "ledger",
                ScopeSet::parse("ledger.ar:void").expect("scope"),
                "t",
                "p",
            ))
            .expect("token")
            .token;
        World {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
            router: broker.router(),
            agent_token,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let w = world();
    let (path, content_type, auth) = match selector % 6 {
        0 => ("/oauth2/token", "application/x-www-form-urlencoded", None),
        1 => ("/approvals", "application/json", Some(w.agent_token.clone())),
        2 => ("/console/login", "application/x-www-form-urlencoded", None),
        3 => ("/admin/agents", "application/json", Some(ADMIN.to_owned())),
        4 => ("/oauth2/introspect", "application/x-www-form-urlencoded", Some(ADMIN.to_owned())),
        _ => ("/oauth2/token", "application/json", None),
    };
    let mut request = http::Request::post(path).header("content-type", content_type);
    if let Some(a) = auth {
        request = request.header("authorization", format!("Bearer {a}"));
    }
    if selector & 0x80 != 0 {
        request = request.header("cookie", "agentiam_login=abc");
    }
    let request = request.body(Body::from(body.to_vec())).expect("request");
    let (status, answer) = w.runtime.block_on(async {
        let response = w.router.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let bytes = response.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        (status, bytes)
    });
    assert!(!status.is_server_error(), "{path} answered {status}: {}", String::from_utf8_lossy(&answer));
    if path == "/oauth2/token" && status.is_success() {
        // Only an assertion signed by the registered key gets a token; the fuzzer cannot forge one.
        panic!("the fuzzer obtained a token: {}", String::from_utf8_lossy(&answer));
    }
});
