//! The broker over loopback: every endpoint with real HTTP requests, including bad input
//! (no or wrong credentials, malformed bodies, oversized bodies, foreign and garbage tokens),
//! each with the right status and code and nothing changed in the store; persistence in SQLite.
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

use agentiam_broker::{Broker, SqliteStore, Store};
use agentiam_delegation::{ExchangeRequest, Exchanger};
use agentiam_identity::*;
use agentiam_token::*;
use common::*;
use serde_json::json;

#[tokio::test]
async fn keys_and_metadata_are_published() {
    let r = start(Arc::new(SqliteStore::in_memory().unwrap())).await;
    let (status, headers, meta) = call(
        &r,
        "GET",
        "/.well-known/oauth-authorization-server",
        None,
        "text/plain",
        "",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(meta["issuer"], ISS);
    assert_eq!(meta["jwks_uri"], "http://broker.test/.well-known/jwks.json");
    assert_eq!(
        meta["revocation_endpoint"],
        "http://broker.test/oauth2/revoke"
    );
    assert!(
        headers
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("json")
    );
    let (status, headers, jwks) =
        call(&r, "GET", "/.well-known/jwks.json", None, "text/plain", "").await;
    assert_eq!(status, 200);
    assert_eq!(
        headers.get("content-type").unwrap(),
        "application/jwk-set+json"
    );
    // A token the broker's issuer signs verifies against the published keys.
    let a = agent("reader");
    r.issuer.register(
        a.spiffe_id(),
        AgentRegistration::new(ScopeSet::parse("docs:read").unwrap()),
    );
    let issued = r
        .issuer
        .issue(&TokenRequest::new(
            &a,
            "docs",
            ScopeSet::parse("docs:read").unwrap(),
            "t",
            "p",
        ))
        .unwrap();
    let keys = Jwks::from_json(&jwks.to_string()).unwrap();
    assert!(
        Verifier::new(keys, ISS, "docs")
            .verify(&issued.token)
            .is_ok()
    );
}

#[tokio::test]
async fn the_registry_needs_the_administrator_and_refuses_bad_registrations() {
    let r = start(Arc::new(SqliteStore::in_memory().unwrap())).await;
    let a = agent("payer");
    let body = register_body(&a, "payments:transfer{amount<=100}");
    for auth in [None, Some("wrong-secret"), Some("")] {
        let (status, headers, err) = call(
            &r,
            "POST",
            "/admin/agents",
            auth,
            "application/json",
            body.clone(),
        )
        .await;
        assert_eq!(status, 401, "{auth:?}");
        assert_eq!(err["error"], "invalid_client");
        assert_eq!(err["agentiam_code"], "broker.unauthorized");
        assert!(headers.get("www-authenticate").is_some());
    }
    for bad in [
        "{not json".to_owned(),
        json!({"spiffe_id": "https://not-spiffe", "max_scopes": "a:b"}).to_string(),
        json!({"spiffe_id": "spiffe://acme.test/agent/x", "max_scopes": "not a scope !!"}).to_string(),
        json!({"spiffe_id": "spiffe://acme.test/agent/x", "max_scopes": "a:b", "allowed_digests": ["md5:00"]}).to_string(),
        json!({"spiffe_id": "spiffe://acme.test/agent/x", "max_scopes": "a:b", "extra": 1}).to_string(),
    ] {
        let (status, _, err) = call(&r, "POST", "/admin/agents", Some(ADMIN), "application/json", bad.clone()).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(err["error"], "invalid_request", "{bad}");
        assert_eq!(err["agentiam_code"], "broker.bad_request", "{bad}");
    }
    assert!(
        r.store.agents().unwrap().is_empty(),
        "a refused registration changed the store"
    );
    let huge = "x".repeat(agentiam_broker::MAX_BODY_BYTES + 1);
    let (status, _, err) = call(
        &r,
        "POST",
        "/admin/agents",
        Some(ADMIN),
        "application/json",
        huge.clone(),
    )
    .await;
    assert_eq!(
        (status, err["agentiam_code"].as_str()),
        (413, Some("broker.body_too_large"))
    );
    let (status, _, _) = form(
        &r,
        "/oauth2/introspect",
        Some(ADMIN),
        &format!("token={huge}"),
    )
    .await;
    assert_eq!(status, 413);

    let (status, _, created) = call(
        &r,
        "POST",
        "/admin/agents",
        Some(ADMIN),
        "application/json",
        body,
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(created["spiffe_id"], a.spiffe_id().to_string());
    let (status, _, list) = call(&r, "GET", "/admin/agents", Some(ADMIN), "text/plain", "").await;
    assert_eq!(status, 200);
    assert_eq!(list["agents"].as_array().unwrap().len(), 1);
    // The issuer now issues within the registration, and never beyond it.
    let ok = r.issuer.issue(&TokenRequest::new(
        &a,
        "pay",
        ScopeSet::parse("payments:transfer{amount<=50}").unwrap(),
        "t",
        "p",
    ));
    assert!(ok.is_ok());
    let wider = r.issuer.issue(&TokenRequest::new(
        &a,
        "pay",
        ScopeSet::parse("payments:transfer").unwrap(),
        "t",
        "p",
    ));
    assert_eq!(wider.unwrap_err().code(), "token.scope_not_permitted");
}

#[tokio::test]
async fn introspection_and_revocation_follow_the_rfcs() {
    let r = start(Arc::new(SqliteStore::in_memory().unwrap())).await;
    let parent_agent = agent("planner");
    r.issuer.register(
        parent_agent.spiffe_id(),
        AgentRegistration::new(ScopeSet::parse("docs:read docs:write").unwrap()),
    );
    let parent = r
        .issuer
        .issue(&TokenRequest::new(
            &parent_agent,
            "docs",
            ScopeSet::parse("docs:read docs:write").unwrap(),
            "t-1",
            "summarise",
        ))
        .unwrap();
    let child = Exchanger::new(r.issuer.clone())
        .exchange(
            &ExchangeRequest::new(&parent.token, &agent("searcher"), "docs")
                .with_scopes(ScopeSet::parse("docs:read").unwrap()),
        )
        .unwrap();

    let (status, headers, active) = form(
        &r,
        "/oauth2/introspect",
        Some(ADMIN),
        &format!("token={}", parent.token),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(active["active"], true);
    assert_eq!(active["sub"], parent_agent.spiffe_id().to_string());
    assert_eq!(active["scope"], "docs:read docs:write");
    assert_eq!(headers.get("content-type").unwrap(), "application/json");
    let (_, _, child_active) = form(
        &r,
        "/oauth2/introspect",
        Some(ADMIN),
        &format!("token={}&token_type_hint=access_token", child.token),
    )
    .await;
    assert_eq!(child_active["active"], true);

    // Garbage and foreign tokens are simply inactive.
    let foreign = Issuer::new(
        ISS,
        KeySet::new(SigningKey::ed25519_from_seed(&[9u8; 32]).unwrap()),
    );
    foreign.register(
        parent_agent.spiffe_id(),
        AgentRegistration::new(ScopeSet::parse("docs:read").unwrap()),
    );
    let forged = foreign
        .issue(&TokenRequest::new(
            &parent_agent,
            "docs",
            ScopeSet::parse("docs:read").unwrap(),
            "t",
            "p",
        ))
        .unwrap();
    for token in ["garbage", "a.b.c", forged.token.as_str()] {
        let (status, _, inactive) = form(
            &r,
            "/oauth2/introspect",
            Some(ADMIN),
            &format!("token={token}"),
        )
        .await;
        assert_eq!(
            (status, inactive.clone()),
            (200, json!({"active": false})),
            "{token}"
        );
    }
    // Bad requests: no credentials, no token, JSON instead of a form.
    let (status, _, err) = form(
        &r,
        "/oauth2/introspect",
        None,
        &format!("token={}", parent.token),
    )
    .await;
    assert_eq!(
        (status, err["agentiam_code"].as_str()),
        (401, Some("broker.unauthorized"))
    );
    let (status, _, err) = form(&r, "/oauth2/introspect", Some(ADMIN), "nothing=here").await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let (status, _, err) = call(
        &r,
        "POST",
        "/oauth2/introspect",
        Some(ADMIN),
        "application/json",
        json!({"token": parent.token}).to_string(),
    )
    .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("invalid_request"))
    );

    // Revoking a garbage token is not an error (RFC 7009) and stores nothing.
    let (status, _, _) = form(&r, "/oauth2/revoke", Some(ADMIN), "token=garbage").await;
    assert_eq!(status, 200);
    let (status, _, _) = form(
        &r,
        "/oauth2/revoke",
        None,
        &format!("token={}", parent.token),
    )
    .await;
    assert_eq!(status, 401);
    let (_, _, still) = form(
        &r,
        "/oauth2/introspect",
        Some(ADMIN),
        &format!("token={}", parent.token),
    )
    .await;
    assert_eq!(
        still["active"], true,
        "an unauthenticated revoke took effect"
    );

    // Revoking the parent revokes it and the token delegated from it.
    let (status, _, _) = form(
        &r,
        "/oauth2/revoke",
        Some(ADMIN),
        &format!("token={}", parent.token),
    )
    .await;
    assert_eq!(status, 200);
    for token in [&parent.token, &child.token] {
        let (_, _, gone) = form(
            &r,
            "/oauth2/introspect",
            Some(ADMIN),
            &format!("token={token}"),
        )
        .await;
        assert_eq!(gone, json!({"active": false}));
    }
    // And a verifier sharing the broker's store refuses both.
    let broker = Broker::builder(
        r.issuer.clone(),
        r.store.clone(),
        "http://broker.test",
        ADMIN,
    )
    .build()
    .unwrap();
    let verifier =
        Verifier::new(r.issuer.jwks(), ISS, "docs").with_revocation(Arc::new(broker.revocations()));
    assert_eq!(
        verifier.verify(&parent.token).unwrap_err().code(),
        "token.revoked"
    );
    assert!(verifier.verify(&child.token).is_err());
}

#[tokio::test]
async fn the_store_persists_registrations_and_revocations() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broker.sqlite3");
    let a = agent("archivist");
    {
        let r = start(Arc::new(SqliteStore::open(&path).unwrap())).await;
        let (status, _, _) = call(
            &r,
            "POST",
            "/admin/agents",
            Some(ADMIN),
            "application/json",
            register_body(&a, "docs:read"),
        )
        .await;
        assert_eq!(status, 201);
        r.store
            .revoke(&Revocation::Task("t-9".into()), i64::MAX)
            .unwrap();
    }
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    assert_eq!(
        store
            .agent(&a.spiffe_id().to_string())
            .unwrap()
            .unwrap()
            .max_scopes,
        "docs:read"
    );
    assert!(
        store
            .is_revoked(&Revocation::Task("t-9".into()), 0)
            .unwrap()
    );
    assert!(
        !store
            .is_revoked(&Revocation::Task("t-8".into()), 0)
            .unwrap()
    );
    // A restarted broker registers its stored agents with the issuer.
    let r = start(store).await;
    assert!(
        r.issuer
            .issue(&TokenRequest::new(
                &a,
                "docs",
                ScopeSet::parse("docs:read").unwrap(),
                "t",
                "p"
            ))
            .is_ok()
    );
    // Expired revocations are pruned.
    r.store
        .revoke(&Revocation::Token("old".into()), 10)
        .unwrap();
    assert!(
        r.store
            .is_revoked(&Revocation::Token("old".into()), 5)
            .unwrap()
    );
    assert!(
        !r.store
            .is_revoked(&Revocation::Token("old".into()), 11)
            .unwrap()
    );
    r.store.prune(11).unwrap();

    // A store written by a newer broker is refused, not misread.
    let newer = dir.path().join("newer.sqlite3");
    drop(SqliteStore::open(&newer).unwrap());
    let conn = rusqlite::Connection::open(&newer).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    assert_eq!(
        SqliteStore::open(&newer).unwrap_err().code(),
        "broker.store_unavailable"
    );
    let short = Broker::builder(r.issuer.clone(), r.store.clone(), "http://x", "short").build();
    assert_eq!(short.unwrap_err().code(), "broker.config_invalid");
}
