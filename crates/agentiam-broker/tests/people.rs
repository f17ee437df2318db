//! Agents acting for people over loopback: an OpenID provider (a small server here publishing a
//! discovery document and its keys) signs a person in; an attested agent exchanges the person's
//! token (RFC 8693) for a task token with `sub` = the person, `act` = the agent, within the
//! person's configured grants and the agent's registration; a sub-agent's exchange keeps the
//! person. Tokens that are expired, for another audience, from an untrusted issuer, signed by a
//! key the provider does not publish, or whose `may_act` excludes the agent are refused with
//! RFC 8693's `invalid_request` and a stable code. (`tests/python/test_people.py` does the same
//! against `oidc-provider`, a certified OpenID provider, with its RS256 keys.)
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

use agentiam_broker::{IdentityProviderConfig, PersonGrant, SqliteStore};
use agentiam_identity::*;
use agentiam_token::*;
use common::*;
use serde_json::{Value, json};

const AUDIENCE: &str = "agentiam-broker";
const ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";

/// An OpenID provider: discovery and keys on loopback, signing with `key`.
struct Provider {
    issuer: String,
    key: SigningKey,
}

async fn provider() -> Provider {
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let discovery = json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks")});
    let jwks: Value =
        serde_json::from_str(&Jwks::from_keys([key.public_key().clone()]).to_json()).unwrap();
    let app = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            axum::routing::get(move || async move { axum::Json(discovery) }),
        )
        .route(
            "/jwks",
            axum::routing::get(move || async move { axum::Json(jwks) }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Provider { issuer, key }
}

impl Provider {
    fn sign(&self, claims: Value) -> String {
        self.sign_with(&self.key, claims)
    }

    fn sign_with(&self, key: &SigningKey, claims: Value) -> String {
        let mut header = serde_json::Map::new();
        header.insert("typ".into(), "JWT".into());
        sign_compact(key, &header, claims.to_string().as_bytes()).unwrap()
    }

    fn person(&self, sub: &str, extra: Value) -> Value {
        let now = SystemClock.now();
        let mut claims =
            json!({"iss": self.issuer, "sub": sub, "aud": AUDIENCE, "iat": now, "exp": now + 300});
        if let (Some(c), Some(e)) = (claims.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                c.insert(k.clone(), v.clone());
            }
        }
        claims
    }
}

struct Agent {
    name: &'static str,
    identity: AgentIdentity,
    key: SigningKey,
}

async fn register(r: &Running, name: &'static str, scopes: &str) -> Agent {
    let (identity, key) = register_with_key(r, name, scopes).await;
    Agent {
        name,
        identity,
        key,
    }
}

/// The agent exchanges `subject` (of `subject_type`) for a token for `scope`.
async fn exchange(
    r: &Running,
    a: &Agent,
    subject: &str,
    subject_type: &str,
    scope: &str,
) -> (u16, Value) {
    let id = a.identity.spiffe_id().to_string();
    let jti = format!("{}-{}", a.name, agentiam_test_support::fresh_key().kid());
    let assertion = create_client_assertion(
        &a.key,
        &id,
        "http://broker.test/oauth2/token",
        &jti,
        SystemClock.now(),
        60,
    )
    .unwrap();
    let evidence = evidence_of(a.name);
    let body = form_encode(&[
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ),
        ("client_assertion_type", CLIENT_ASSERTION_TYPE_JWT),
        ("client_assertion", &assertion),
        ("agent_attestation", &evidence),
        ("subject_token", subject),
        ("subject_token_type", subject_type),
        ("scope", scope),
        ("audience", "payments-api"),
        ("task_id", "pay-invoice-7"),
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

fn claims_of(r: &Running, token: &str) -> Claims {
    Verifier::new(r.issuer.jwks(), ISS, "payments-api")
        .verify(token)
        .unwrap()
        .claims()
        .clone()
}

#[tokio::test]
async fn an_agent_acts_for_a_signed_in_person_within_both_their_rights() {
    let idp = provider().await;
    let config = IdentityProviderConfig {
        issuer: idp.issuer.clone(),
        jwks_uri: None,
        audiences: vec![AUDIENCE.into()],
        grants: vec![
            PersonGrant {
                claim: "groups".into(),
                value: "finance".into(),
                scopes: "payments:transfer ledger.*:read".into(),
            },
            PersonGrant {
                claim: "sub".into(),
                value: "*".into(),
                scopes: "ledger.ar:read".into(),
            },
        ],
        require_may_act: false,
    };
    let r = start_with(Arc::new(SqliteStore::in_memory().unwrap()), |b| {
        b.identity_providers(vec![config])
    })
    .await;
    let assistant = register(&r, "assistant", "payments:transfer ledger.ar:read").await;
    let helper = register(&r, "helper", "payments:transfer").await;
    let assistant_id = assistant.identity.spiffe_id().to_string();

    // Alice is in finance: her assistant may pay for her.
    let alice = idp.sign(idp.person(
        "alice",
        json!({"groups": ["finance"], "email": "alice@acme.example"}),
    ));
    let (status, issued) = exchange(&r, &assistant, &alice, ID_TOKEN, "payments:transfer").await;
    assert_eq!(status, 200, "{issued}");
    assert_eq!(
        issued["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    let token = issued["access_token"].as_str().unwrap().to_owned();
    let c = claims_of(&r, &token);
    assert_eq!(c.sub, "alice");
    assert_eq!(c.presenter(), assistant_id);
    assert_eq!(
        c.person,
        Some(PersonClaim {
            iss: idp.issuer.clone(),
            sub: "alice".into()
        })
    );
    assert_eq!(c.scope.to_string(), "payments:transfer");
    // The guard sees the person and the agent apart.
    let verified = Verifier::new(r.issuer.jwks(), ISS, "payments-api")
        .verify(&token)
        .unwrap();
    let principal = agentiam_guard::Principal::from_token(&verified);
    assert_eq!(
        (principal.subject(), principal.presenter()),
        ("alice", assistant_id.as_str())
    );

    // A sub-agent's exchange keeps the person, nesting the actors.
    let (status, child) = exchange(
        &r,
        &helper,
        &token,
        "urn:ietf:params:oauth:token-type:access_token",
        "payments:transfer",
    )
    .await;
    assert_eq!(status, 200, "{child}");
    let cc = claims_of(&r, child["access_token"].as_str().unwrap());
    assert_eq!(cc.sub, "alice");
    assert_eq!(cc.person, c.person);
    assert_eq!(cc.act.as_ref().unwrap()["act"]["sub"], assistant_id);

    // Bob is in no group: his agent may read for him, not pay.
    let bob = idp.sign(idp.person("bob", json!({})));
    let (status, refused) = exchange(&r, &assistant, &bob, ID_TOKEN, "payments:transfer").await;
    assert_eq!(
        (
            status,
            refused["error"].as_str(),
            refused["agentiam_code"].as_str()
        ),
        (
            400,
            Some("invalid_scope"),
            Some("token.scope_not_permitted")
        ),
        "{refused}"
    );
    assert_eq!(
        exchange(&r, &assistant, &bob, ID_TOKEN, "ledger.ar:read")
            .await
            .0,
        200
    );
    // Nor beyond the agent's registration, whatever the person may do.
    let (status, refused) = exchange(&r, &assistant, &alice, ID_TOKEN, "ledger.ap:read").await;
    assert_eq!(
        (status, refused["agentiam_code"].as_str()),
        (400, Some("token.scope_not_permitted")),
        "{refused}"
    );

    // may_act, when the provider sets it, names who may act.
    let for_assistant = idp.sign(idp.person(
        "carol",
        json!({"groups": ["finance"], "may_act": {"sub": assistant_id}}),
    ));
    assert_eq!(
        exchange(
            &r,
            &assistant,
            &for_assistant,
            ID_TOKEN,
            "payments:transfer"
        )
        .await
        .0,
        200
    );
    let for_other = idp.sign(idp.person(
        "carol",
        json!({"groups": ["finance"], "may_act": {"sub": "spiffe://acme.test/agent/other"}}),
    ));
    let (status, refused) =
        exchange(&r, &assistant, &for_other, ID_TOKEN, "payments:transfer").await;
    assert_eq!(
        (
            status,
            refused["error"].as_str(),
            refused["agentiam_code"].as_str()
        ),
        (400, Some("invalid_request"), Some("broker.may_act_refused"))
    );

    // Bad tokens: each refused with RFC 8693's invalid_request and its code.
    let now = SystemClock.now();
    let stranger = SigningKey::generate(Algorithm::ES256).unwrap();
    let cases = [
        ("expired", idp.sign(idp.person("alice", json!({"groups": ["finance"], "iat": now - 900, "exp": now - 600}))), "token.expired"),
        ("for another audience", idp.sign(idp.person("alice", json!({"groups": ["finance"], "aud": "someone-else"}))), "token.wrong_audience"),
        ("signed by a key the provider does not publish", idp.sign_with(&stranger, idp.person("alice", json!({"groups": ["finance"]}))), "token.unknown_key"),
        ("a subject that looks like an agent", idp.sign(idp.person("spiffe://acme.test/agent/assistant", json!({"groups": ["finance"]}))), "token.invalid_claim"),
        ("no subject", idp.sign(json!({"iss": idp.issuer, "aud": AUDIENCE, "exp": now + 300})), "token.missing_claim"),
        ("an untrusted issuer", idp.sign(json!({"iss": "https://evil.example", "sub": "alice", "aud": AUDIENCE, "exp": now + 300})), "token.wrong_issuer"),
    ];
    for (what, subject, code) in cases {
        let (status, refused) =
            exchange(&r, &assistant, &subject, ID_TOKEN, "payments:transfer").await;
        assert_eq!(
            (
                status,
                refused["error"].as_str(),
                refused["agentiam_code"].as_str()
            ),
            (400, Some("invalid_request"), Some(code)),
            "{what}: {refused}"
        );
    }
    // A tampered signature.
    let mut tampered = alice.clone();
    tampered.replace_range(tampered.len() - 4.., "AAAA");
    let (status, refused) =
        exchange(&r, &assistant, &tampered, ID_TOKEN, "payments:transfer").await;
    assert_eq!(
        (status, refused["agentiam_code"].as_str()),
        (400, Some("token.bad_signature")),
        "{refused}"
    );
}

#[tokio::test]
async fn a_provider_may_require_may_act_and_bad_configurations_are_refused() {
    let idp = provider().await;
    let config = IdentityProviderConfig {
        issuer: idp.issuer.clone(),
        jwks_uri: Some(format!("{}/jwks", idp.issuer)),
        audiences: vec![AUDIENCE.into()],
        grants: vec![PersonGrant {
            claim: "sub".into(),
            value: "*".into(),
            scopes: "payments:transfer".into(),
        }],
        require_may_act: true,
    };
    let r = start_with(Arc::new(SqliteStore::in_memory().unwrap()), |b| {
        b.identity_providers(vec![config.clone()])
    })
    .await;
    let assistant = register(&r, "assistant", "payments:transfer").await;
    let plain = idp.sign(idp.person("dave", json!({})));
    let (status, refused) = exchange(&r, &assistant, &plain, ID_TOKEN, "payments:transfer").await;
    assert_eq!(
        (status, refused["agentiam_code"].as_str()),
        (400, Some("broker.may_act_refused"))
    );
    let named = idp.sign(idp.person(
        "dave",
        json!({"may_act": {"sub": assistant.identity.spiffe_id().to_string()}}),
    ));
    assert_eq!(
        exchange(&r, &assistant, &named, ID_TOKEN, "payments:transfer")
            .await
            .0,
        200
    );

    // Configurations the broker refuses to start with.
    let broker = || {
        agentiam_broker::Broker::builder(
            r.issuer.clone(),
            r.store.clone(),
            "http://broker.test",
            ADMIN,
        )
    };
    for (what, bad) in [
        (
            "plain http off loopback",
            IdentityProviderConfig {
                issuer: "http://idp.example".into(),
                ..config.clone()
            },
        ),
        (
            "no audience",
            IdentityProviderConfig {
                audiences: vec![],
                ..config.clone()
            },
        ),
        (
            "the broker's own issuer",
            IdentityProviderConfig {
                issuer: ISS.into(),
                ..config.clone()
            },
        ),
        (
            "a grant that is not scope grammar",
            IdentityProviderConfig {
                grants: vec![PersonGrant {
                    claim: "sub".into(),
                    value: "*".into(),
                    scopes: "not a scope!".into(),
                }],
                ..config.clone()
            },
        ),
    ] {
        let err = broker().identity_providers(vec![bad]).build().unwrap_err();
        assert_eq!(err.code(), "broker.config_invalid", "{what}");
    }
}
