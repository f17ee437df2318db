//! RFC 7591 dynamic client registration and RFC 7592 client configuration over loopback: an
//! initial access token from the administrator allows one registration within its ceiling; the
//! registered agent gets tokens; its registration access token reads, updates (never widening,
//! rotating the token) and deletes it (revoking its tokens). Every refusal has its RFC error
//! and a stable code, and leaves the store unchanged.
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

use agentiam_broker::{Broker, SqliteStore};
use agentiam_identity::*;
use agentiam_token::*;
use common::*;
use serde_json::{Value, json};

const JSON: (&str, &str) = ("content-type", "application/json");

async fn initial_access_token(r: &Running, request: Value) -> (u16, Value) {
    let admin = format!("Bearer {ADMIN}");
    let (status, _, body) = send(
        r,
        "POST",
        "/admin/registration-tokens",
        &[JSON, ("authorization", &admin)],
        request.to_string(),
    )
    .await;
    (status, body)
}

async fn register(r: &Running, token: Option<&str>, metadata: &Value) -> (u16, Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![JSON];
    if let Some(a) = &auth {
        headers.push(("authorization", a));
    }
    let (status, _, body) = send(
        r,
        "POST",
        "/oauth2/register",
        &headers,
        metadata.to_string(),
    )
    .await;
    (status, body)
}

fn metadata(identity: &AgentIdentity, key: &SigningKey, scope: &str) -> Value {
    json!({
        "spiffe_id": identity.spiffe_id().to_string(),
        "client_name": "invoice reconciler",
        "scope": scope,
        "token_endpoint_auth_method": "private_key_jwt",
        "grant_types": ["client_credentials"],
        "jwks": serde_json::from_str::<Value>(&Jwks::from_keys([key.public_key().clone()]).to_json()).unwrap(),
        "allowed_digests": [identity.composite_digest().to_string()],
        "some_future_member": "ignored, as RFC 7591 section 2 asks",
    })
}

/// A client-credentials token request by `identity` signed with `key`.
async fn token_request(r: &Running, name: &str, key: &SigningKey, jti: &str) -> (u16, Value) {
    let identity = agent(name);
    let assertion = create_client_assertion(
        key,
        &identity.spiffe_id().to_string(),
        "http://broker.test/oauth2/token",
        jti,
        SystemClock.now(),
        60,
    )
    .unwrap();
    let evidence = json!({
        "model": ModelRef::new("p", "m", "1"),
        "configuration": AgentConfiguration::new(format!("You are {name}."), vec![]),
        "runtime": RuntimeDescriptor::new("process"),
    });
    let evidence = evidence.to_string();
    let body = form_encode(&[
        ("grant_type", "client_credentials"),
        ("client_assertion_type", CLIENT_ASSERTION_TYPE_JWT),
        ("client_assertion", &assertion),
        ("agent_attestation", &evidence),
        ("scope", "ledger.ar:read"),
        ("audience", "ledger"),
        ("task_id", "task-1"),
    ]);
    let (status, _, json) = send(
        r,
        "POST",
        "/oauth2/token",
        &[("content-type", "application/x-www-form-urlencoded")],
        body,
    )
    .await;
    (status, json)
}

#[tokio::test]
async fn an_agent_registers_itself_gets_tokens_and_manages_its_registration() {
    let r = start(Arc::new(SqliteStore::in_memory().unwrap())).await;
    let (status, _, m) = send(
        &r,
        "GET",
        "/.well-known/oauth-authorization-server",
        &[],
        String::new(),
    )
    .await;
    assert_eq!(
        (status, m["registration_endpoint"].as_str()),
        (200, Some("http://broker.test/oauth2/register"))
    );

    let (status, iat) = initial_access_token(
        &r,
        json!({"max_scopes": "ledger.*:read", "spiffe_id_prefix": "spiffe://acme.test/agent/"}),
    )
    .await;
    assert_eq!(status, 201, "{iat}");
    let iat = iat["initial_access_token"].as_str().unwrap().to_owned();

    let identity = agent("reconciler");
    let key = agentiam_test_support::fresh_key();
    let (status, info) = register(
        &r,
        Some(&iat),
        &metadata(&identity, &key, "ledger.ar:read ledger.ap:read"),
    )
    .await;
    assert_eq!(status, 201, "{info}");
    let client_id = identity.spiffe_id().to_string();
    assert_eq!(info["client_id"], client_id);
    assert_eq!(info["token_endpoint_auth_method"], "private_key_jwt");
    assert_eq!(info["scope"], "ledger.ar:read ledger.ap:read");
    let rat = info["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let uri = info["registration_client_uri"].as_str().unwrap().to_owned();
    let path = uri.strip_prefix("http://broker.test").unwrap().to_owned();
    // The store keeps only the token's hash.
    let stored = r.store.agent(&client_id).unwrap().unwrap();
    assert!(!serde_json::to_string(&stored).unwrap().contains(&rat));

    // The initial access token is spent.
    let other = agent("another");
    let (status, again) = register(&r, Some(&iat), &metadata(&other, &key, "ledger.ar:read")).await;
    assert_eq!(
        (
            status,
            again["error"].as_str(),
            again["agentiam_code"].as_str()
        ),
        (
            401,
            Some("invalid_token"),
            Some("broker.initial_access_token_used")
        )
    );
    assert!(
        r.store
            .agent(&other.spiffe_id().to_string())
            .unwrap()
            .is_none()
    );

    // The registered agent gets tokens like any other.
    let (status, token) = token_request(&r, "reconciler", &key, "j-1").await;
    assert_eq!(status, 200, "{token}");
    let access = token["access_token"].as_str().unwrap().to_owned();

    // RFC 7592 read: with its token, and nobody else's.
    let bearer = format!("Bearer {rat}");
    let (status, _, read) = send(
        &r,
        "GET",
        &path,
        &[("authorization", &bearer)],
        String::new(),
    )
    .await;
    assert_eq!((status, &read["client_id"]), (200, &json!(client_id)));
    assert_eq!(read["registration_access_token"], rat);
    for wrong in ["Bearer nope", &format!("Bearer {iat}")] {
        let (status, _, refused) =
            send(&r, "GET", &path, &[("authorization", wrong)], String::new()).await;
        assert_eq!(
            (status, refused["agentiam_code"].as_str()),
            (401, Some("broker.registration_token_invalid"))
        );
    }

    // Update: may narrow, never widen; each update rotates the token.
    let mut wider = metadata(&identity, &key, "ledger.*:read ledger.*:write");
    wider["client_id"] = json!(client_id);
    let (status, _, refused) = send(
        &r,
        "PUT",
        &path,
        &[JSON, ("authorization", &bearer)],
        wider.to_string(),
    )
    .await;
    assert_eq!(
        (
            status,
            refused["error"].as_str(),
            refused["agentiam_code"].as_str()
        ),
        (
            400,
            Some("invalid_client_metadata"),
            Some("token.scope_not_permitted")
        )
    );
    assert_eq!(
        r.store.agent(&client_id).unwrap().unwrap(),
        stored,
        "a refused update changes nothing"
    );
    let rotated_key = agentiam_test_support::fresh_key();
    let mut narrower = metadata(&identity, &rotated_key, "ledger.ar:read");
    narrower["client_id"] = json!(client_id);
    let (status, _, updated) = send(
        &r,
        "PUT",
        &path,
        &[JSON, ("authorization", &bearer)],
        narrower.to_string(),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["scope"], "ledger.ar:read");
    let new_rat = updated["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_rat, rat);
    let (status, _, _) = send(
        &r,
        "GET",
        &path,
        &[("authorization", &bearer)],
        String::new(),
    )
    .await;
    assert_eq!(status, 401, "the old registration access token is void");
    // The old client key no longer authenticates; the new one does.
    assert_eq!(token_request(&r, "reconciler", &key, "j-2").await.0, 401);
    assert_eq!(
        token_request(&r, "reconciler", &rotated_key, "j-3").await.0,
        200
    );

    // Delete: the registration goes, and so do its tokens.
    let new_bearer = format!("Bearer {new_rat}");
    let (status, _, _) = send(
        &r,
        "DELETE",
        &path,
        &[("authorization", &new_bearer)],
        String::new(),
    )
    .await;
    assert_eq!(status, 204);
    assert!(r.store.agent(&client_id).unwrap().is_none());
    assert_eq!(
        token_request(&r, "reconciler", &rotated_key, "j-4").await.0,
        401
    );
    let broker = Broker::builder(
        r.issuer.clone(),
        r.store.clone(),
        "http://broker.test",
        ADMIN,
    )
    .build()
    .unwrap();
    let verifier = Verifier::new(r.issuer.jwks(), ISS, "ledger")
        .with_revocation(Arc::new(broker.revocations()));
    assert_eq!(
        verifier.verify(&access).unwrap_err().code(),
        "token.revoked"
    );
    let (status, _, _) = send(
        &r,
        "GET",
        &path,
        &[("authorization", &new_bearer)],
        String::new(),
    )
    .await;
    assert_eq!(status, 401);
}

/// A refused registration: what it tries, its bearer token, its metadata, and the status,
/// OAuth error and reason code it gets.
type Case<'a> = (&'a str, Option<String>, Value, u16, &'a str, &'a str);

#[tokio::test]
async fn bad_registrations_are_refused_with_their_rfc_error_and_change_nothing() {
    let r = start(Arc::new(SqliteStore::in_memory().unwrap())).await;
    let key = agentiam_test_support::fresh_key();
    let existing = agent("existing");
    let (status, _, _) = call(
        &r,
        "POST",
        "/admin/agents",
        Some(ADMIN),
        "application/json",
        register_body(&existing, "ledger.ar:read"),
    )
    .await;
    assert_eq!(status, 201);
    let before = r.store.agents().unwrap();

    let iat = |max: &str| {
        let max = max.to_owned();
        let r = &r;
        async move {
            let (status, body) = initial_access_token(
                r,
                json!({"max_scopes": max, "spiffe_id_prefix": "spiffe://acme.test/agent/"}),
            )
            .await;
            assert_eq!(status, 201);
            body["initial_access_token"].as_str().unwrap().to_owned()
        }
    };
    let newcomer = agent("newcomer");
    let good = metadata(&newcomer, &key, "ledger.ar:read");
    let token = iat("ledger.*:read").await;
    let tampered = {
        let (head, tag) = token.rsplit_once('.').unwrap();
        let (prefix, payload) = head.split_once('.').unwrap();
        use base64::Engine as _;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut allowance: Value =
            serde_json::from_slice(&engine.decode(payload).unwrap()).unwrap();
        allowance["max_scopes"] = json!("ledger.*:write");
        format!("{prefix}.{}.{tag}", engine.encode(allowance.to_string()))
    };
    let with = |field: &str, value: Value| {
        let mut m = good.clone();
        m[field] = value;
        m
    };
    let cases: Vec<Case<'_>> = vec![
        (
            "no initial access token",
            None,
            good.clone(),
            401,
            "invalid_token",
            "broker.unauthorized",
        ),
        (
            "a token the broker did not issue",
            Some("iat1.e30.AAAA".into()),
            good.clone(),
            401,
            "invalid_token",
            "broker.initial_access_token_invalid",
        ),
        (
            "a tampered allowance",
            Some(tampered),
            good.clone(),
            401,
            "invalid_token",
            "broker.initial_access_token_invalid",
        ),
        (
            "the administrator's secret instead",
            Some(ADMIN.into()),
            good.clone(),
            401,
            "invalid_token",
            "broker.initial_access_token_invalid",
        ),
        (
            "scope beyond the allowance",
            Some(token.clone()),
            with("scope", json!("ledger.ar:write")),
            400,
            "invalid_client_metadata",
            "token.scope_not_permitted",
        ),
        (
            "outside the SPIFFE ID prefix",
            Some(token.clone()),
            with("spiffe_id", json!("spiffe://evil.test/agent/x")),
            400,
            "invalid_client_metadata",
            "broker.invalid_client_metadata",
        ),
        (
            "taking over a registered agent",
            Some(token.clone()),
            with("spiffe_id", json!(existing.spiffe_id().to_string())),
            400,
            "invalid_client_metadata",
            "broker.client_exists",
        ),
        (
            "no keys",
            Some(token.clone()),
            with("jwks", Value::Null),
            400,
            "invalid_client_metadata",
            "broker.invalid_client_metadata",
        ),
        (
            "keys by URL",
            Some(token.clone()),
            with("jwks_uri", json!("https://keys.example/jwks")),
            400,
            "invalid_client_metadata",
            "broker.invalid_client_metadata",
        ),
        (
            "a client secret method",
            Some(token.clone()),
            with("token_endpoint_auth_method", json!("client_secret_basic")),
            400,
            "invalid_client_metadata",
            "broker.invalid_client_metadata",
        ),
        (
            "redirect URIs",
            Some(token.clone()),
            with("redirect_uris", json!(["https://app.example/cb"])),
            400,
            "invalid_redirect_uri",
            "broker.invalid_client_metadata",
        ),
        (
            "an interactive grant",
            Some(token.clone()),
            with("grant_types", json!(["authorization_code"])),
            400,
            "invalid_client_metadata",
            "broker.invalid_client_metadata",
        ),
        (
            "a software statement",
            Some(token.clone()),
            with("software_statement", json!("eyJ...")),
            400,
            "unapproved_software_statement",
            "broker.software_statement_unsupported",
        ),
        (
            "a malformed digest",
            Some(token.clone()),
            with("allowed_digests", json!(["md5:00"])),
            400,
            "invalid_client_metadata",
            "broker.invalid_client_metadata",
        ),
        (
            "no spiffe_id",
            Some(token.clone()),
            with("spiffe_id", Value::Null),
            400,
            "invalid_client_metadata",
            "broker.invalid_client_metadata",
        ),
    ];
    for (what, token, body, status, error, code) in cases {
        let (got, json) = register(&r, token.as_deref(), &body).await;
        assert_eq!(
            (got, json["error"].as_str(), json["agentiam_code"].as_str()),
            (status, Some(error), Some(code)),
            "{what}: {json}"
        );
        assert_eq!(
            r.store.agents().unwrap(),
            before,
            "{what}: the store changed"
        );
    }
    // None of those spent the token: the good registration still goes through, once.
    let (status, body) = register(&r, Some(&token), &good).await;
    assert_eq!(status, 201, "{body}");

    // An expired initial access token.
    let clock = Arc::new(FixedClock::new(SystemClock.now()));
    let later = start_with(r.store.clone(), |b| b.clock(clock.clone())).await;
    let (_, short) = initial_access_token(
        &later,
        json!({"max_scopes": "ledger.*:read", "ttl_secs": 30}),
    )
    .await;
    clock.advance(31);
    let (status, body) = register(
        &later,
        short["initial_access_token"].as_str(),
        &metadata(&agent("late"), &key, "ledger.ar:read"),
    )
    .await;
    assert_eq!(
        (status, body["agentiam_code"].as_str()),
        (401, Some("broker.initial_access_token_expired"))
    );
    // The administrator's endpoint itself: only for the administrator, within bounds.
    let (status, _, _) = send(
        &r,
        "POST",
        "/admin/registration-tokens",
        &[JSON],
        json!({"max_scopes": "x:y"}).to_string(),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) =
        initial_access_token(&r, json!({"max_scopes": "x:y", "ttl_secs": 999_999})).await;
    assert_eq!(status, 400);
}
