//! The broker against the RFCs a stock OAuth client relies on: introspection (RFC 7662) and
//! revocation (RFC 7009) of every kind of token it issues, sender-constrained ones included
//! (RFC 9449 section 6.2); clients revoking and introspecting their own tokens; one DPoP header
//! per request (RFC 9449 section 4.3); server metadata (RFC 8414); error descriptions and
//! challenges (RFC 6749 section 5.2); token-exchange errors (RFC 8693 section 2.2.2); a
//! DPoP-bound parent exchanged with a proof of its key; the approvals API for a DPoP-bound agent.
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
use agentiam_delegation::{ExchangeRequest, Exchanger};
use agentiam_identity::*;
use agentiam_token::*;
use base64::Engine as _;
use common::*;
use proptest::prelude::*;
use serde_json::{Value, json};

const TOKEN_ENDPOINT: &str = "http://broker.test/oauth2/token";

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

/// An agent registered with its own client key.
struct Client {
    identity: AgentIdentity,
    key: SigningKey,
}

impl Client {
    async fn register(r: &Running, name: &str, scopes: &str) -> Self {
        let (identity, key) = register_with_key(r, name, scopes).await;
        Self { identity, key }
    }

    fn id(&self) -> String {
        self.identity.spiffe_id().to_string()
    }

    /// A client assertion for `audience`, living `lifetime` seconds.
    fn assertion(&self, audience: &str, lifetime: i64) -> String {
        let jti = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(agentiam_test_support::fresh_key().kid());
        create_client_assertion(
            &self.key,
            &self.id(),
            audience,
            &jti,
            SystemClock.now(),
            lifetime,
        )
        .unwrap()
    }

    /// The form fields that authenticate this client at `endpoint`.
    fn auth(&self, endpoint: &str) -> [(&'static str, String); 2] {
        [
            (
                "client_assertion_type",
                CLIENT_ASSERTION_TYPE_JWT.to_owned(),
            ),
            (
                "client_assertion",
                self.assertion(&format!("http://broker.test{endpoint}"), 60),
            ),
        ]
    }

    fn issue(&self, r: &Running, cnf: Option<Confirmation>) -> IssuedToken {
        let mut request = TokenRequest::new(
            &self.identity,
            "docs",
            ScopeSet::parse("docs:read docs:write").unwrap(),
            "task-1",
            "summarise",
        );
        request.cnf = cnf;
        r.issuer.issue(&request).unwrap()
    }
}

/// Asks an endpoint about a token as the administrator (`None`) or as a client.
async fn ask(r: &Running, path: &str, token: &str, client: Option<&Client>) -> (u16, Value) {
    let mut pairs = vec![("token", token.to_owned())];
    let mut headers = vec![FORM];
    let admin = format!("Bearer {ADMIN}");
    match client {
        Some(c) => pairs.extend(c.auth(path)),
        None => headers.push(("authorization", &admin)),
    }
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, json) = send(r, "POST", path, &headers, form_encode(&pairs)).await;
    (status, json)
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Bearer,
    Dpop,
    Certificate,
    Exchanged,
    ExchangedFromDpop,
}

#[derive(Debug, Clone, Copy)]
enum Revoker {
    Administrator,
    Holder,
    /// The agent the token was delegated from (exchanged kinds), else the holder.
    Delegator,
}

/// A token of `kind`, and the agent holding it.
fn token_of(
    r: &Running,
    kind: Kind,
    parent: &Client,
    child: &Client,
    pop: &SigningKey,
) -> (String, bool) {
    let dpop = Confirmation {
        jkt: Some(pop.public_key().thumbprint().to_owned()),
        x5t_s256: None,
    };
    match kind {
        Kind::Bearer => (parent.issue(r, None).token, false),
        Kind::Dpop => (parent.issue(r, Some(dpop)).token, false),
        Kind::Certificate => {
            let cnf = Confirmation {
                jkt: None,
                x5t_s256: Some("x".repeat(43)),
            };
            (parent.issue(r, Some(cnf)).token, false)
        }
        Kind::Exchanged | Kind::ExchangedFromDpop => {
            let from_dpop = matches!(kind, Kind::ExchangedFromDpop);
            let parent_token = parent.issue(r, from_dpop.then_some(dpop)).token;
            let request_url = DpopRequest {
                method: "POST",
                url: TOKEN_ENDPOINT,
            };
            let proof = from_dpop.then(|| {
                create_dpop_proof(
                    pop,
                    &request_url,
                    SystemClock.now(),
                    "p",
                    Some(&parent_token),
                )
                .unwrap()
            });
            let mut request = ExchangeRequest::new(&parent_token, &child.identity, "docs")
                .with_scopes(ScopeSet::parse("docs:read").unwrap());
            request.subject_proof = proof.as_deref().map(|p| (p, request_url));
            let exchanged = Exchanger::new(r.issuer.clone())
                .with_dpop(DpopVerifier::new(Arc::new(SystemClock)))
                .exchange(&request)
                .unwrap();
            (exchanged.token, true)
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// A revocation endpoint never answers success without revoking a valid token it issued:
    /// whatever the kind of token (bearer, DPoP-bound, certificate-bound, exchanged from either)
    /// and whoever may revoke it (the administrator, its holder, the agent it was delegated
    /// from), after a 200 the token introspects inactive and no verifier on the store accepts it.
    #[test]
    fn revoking_a_token_the_broker_issued_always_takes_effect(
        kind in prop::sample::select(vec![Kind::Bearer, Kind::Dpop, Kind::Certificate, Kind::Exchanged, Kind::ExchangedFromDpop]),
        revoker in prop::sample::select(vec![Revoker::Administrator, Revoker::Holder, Revoker::Delegator]),
    ) {
        runtime().block_on(async {
            let r = start(Arc::new(SqliteStore::in_memory().unwrap())).await;
            let parent = Client::register(&r, "planner", "docs:read docs:write").await;
            let child = Client::register(&r, "searcher", "docs:read").await;
            let pop = SigningKey::generate(Algorithm::ES256).unwrap();
            let (token, delegated) = token_of(&r, kind, &parent, &child, &pop);
            let holder = if delegated { &child } else { &parent };

            // Live: active, with its binding and type (RFC 9449 section 6.2).
            let (status, live) = ask(&r, "/oauth2/introspect", &token, None).await;
            assert_eq!(status, 200);
            assert_eq!(live["active"], true, "{kind:?}: {live}");
            let bound = matches!(kind, Kind::Dpop);
            assert_eq!(live["token_type"], if bound { "DPoP" } else { "Bearer" }, "{kind:?}");
            if bound {
                assert_eq!(live["cnf"]["jkt"], pop.public_key().thumbprint());
            }

            let who = match revoker {
                Revoker::Administrator => None,
                Revoker::Holder => Some(holder),
                Revoker::Delegator => Some(&parent),
            };
            let (status, answer) = ask(&r, "/oauth2/revoke", &token, who).await;
            assert_eq!(status, 200, "{kind:?} by {revoker:?}: {answer}");

            let (_, gone) = ask(&r, "/oauth2/introspect", &token, None).await;
            assert_eq!(gone, json!({"active": false}), "{kind:?} by {revoker:?}");
            let broker = Broker::builder(r.issuer.clone(), r.store.clone(), "http://broker.test", ADMIN).build().unwrap();
            let verifier = Verifier::new(r.issuer.jwks(), ISS, "docs").with_revocation(Arc::new(broker.revocations()));
            let refused = verifier.verify_without_pop(&token).unwrap_err();
            assert!(
                ["token.revoked", "delegation.revoked_ancestor"].contains(&refused.code()),
                "{kind:?}: {refused}"
            );
        });
    }
}

#[tokio::test]
async fn clients_see_and_revoke_only_their_own_tokens() {
    let r = start(Arc::new(SqliteStore::in_memory().unwrap())).await;
    let mine = Client::register(&r, "planner", "docs:read docs:write").await;
    let other = Client::register(&r, "stranger", "docs:read docs:write").await;
    let token = mine.issue(&r, None).token;

    let (status, own) = ask(&r, "/oauth2/introspect", &token, Some(&mine)).await;
    assert_eq!((status, &own["active"]), (200, &json!(true)));
    // Another agent learns nothing about it (RFC 7662 section 2.2), and cannot revoke it.
    let (status, theirs) = ask(&r, "/oauth2/introspect", &token, Some(&other)).await;
    assert_eq!((status, theirs), (200, json!({"active": false})));
    let (status, refused) = ask(&r, "/oauth2/revoke", &token, Some(&other)).await;
    assert_eq!(
        (
            status,
            refused["error"].as_str(),
            refused["agentiam_code"].as_str()
        ),
        (
            400,
            Some("unauthorized_client"),
            Some("broker.not_your_token")
        )
    );
    let (_, still) = ask(&r, "/oauth2/introspect", &token, None).await;
    assert_eq!(
        still["active"], true,
        "a refused revocation revoked nothing"
    );

    // A client assertion is single-use here too.
    let assertion = mine.assertion("http://broker.test/oauth2/introspect", 60);
    let body = form_encode(&[
        ("token", &token),
        ("client_assertion_type", CLIENT_ASSERTION_TYPE_JWT),
        ("client_assertion", &assertion),
    ]);
    let (status, _, _) = send(&r, "POST", "/oauth2/introspect", &[FORM], body.clone()).await;
    assert_eq!(status, 200);
    let (status, _, replayed) = send(&r, "POST", "/oauth2/introspect", &[FORM], body).await;
    assert_eq!(
        (status, replayed["agentiam_code"].as_str()),
        (401, Some("broker.assertion_replayed"))
    );
    // Nobody: 401.
    let (status, _, _) = send(
        &r,
        "POST",
        "/oauth2/revoke",
        &[FORM],
        form_encode(&[("token", &token)]),
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn http_basic_gets_a_basic_challenge_and_descriptions_stay_in_the_rfc_charset() {
    let r = start(Arc::new(SqliteStore::in_memory().unwrap())).await;
    for path in ["/oauth2/token", "/oauth2/introspect", "/oauth2/revoke"] {
        let (status, headers, json) = send(
            &r,
            "POST",
            path,
            &[FORM, ("authorization", "Basic Y2xpZW50OnNlY3JldA==")],
            form_encode(&[("grant_type", "client_credentials"), ("token", "t")]),
        )
        .await;
        assert_eq!(
            (status, json["error"].as_str()),
            (401, Some("invalid_client")),
            "{path}"
        );
        assert_eq!(
            headers.get("www-authenticate").unwrap(),
            "Basic realm=\"agentiam-broker\"",
            "{path}"
        );
    }
    // A grant type with quotes and a backslash is echoed in the description without them.
    let (status, _, json) = send(
        &r,
        "POST",
        "/oauth2/token",
        &[FORM],
        form_encode(&[("grant_type", "a\"b\\c\u{e9}\u{7}")]),
    )
    .await;
    assert_eq!(status, 400);
    let description = json["error_description"].as_str().unwrap();
    assert!(
        description
            .bytes()
            .all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E)),
        "{description}"
    );
}

#[tokio::test]
async fn metadata_names_only_registered_values() {
    let r = start(Arc::new(SqliteStore::in_memory().unwrap())).await;
    let (status, _, m) = send(
        &r,
        "GET",
        "/.well-known/oauth-authorization-server",
        &[],
        String::new(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(!m["response_types_supported"].as_array().unwrap().is_empty());
    // The IANA "OAuth Token Endpoint Authentication Methods" registry (and, for
    // introspection only, the access token types registry).
    let methods = [
        "none",
        "client_secret_post",
        "client_secret_basic",
        "client_secret_jwt",
        "private_key_jwt",
        "tls_client_auth",
        "self_signed_tls_client_auth",
    ];
    for field in [
        "token_endpoint_auth_methods_supported",
        "revocation_endpoint_auth_methods_supported",
        "introspection_endpoint_auth_methods_supported",
    ] {
        for value in m[field].as_array().unwrap() {
            let value = value.as_str().unwrap();
            let allowed = methods.contains(&value)
                || (field.starts_with("introspection") && ["Bearer", "DPoP"].contains(&value));
            assert!(allowed, "{field}: {value}");
        }
        let algs = field.replace(
            "auth_methods_supported",
            "auth_signing_alg_values_supported",
        );
        assert!(m[&algs].as_array().is_some_and(|a| !a.is_empty()), "{algs}");
    }
}

/// A DPoP proof for the token endpoint by `key`, over `access_token` when given.
fn token_endpoint_proof(key: &SigningKey, jti: &str, access_token: Option<&str>) -> String {
    create_dpop_proof(
        key,
        &DpopRequest {
            method: "POST",
            url: TOKEN_ENDPOINT,
        },
        SystemClock.now(),
        jti,
        access_token,
    )
    .unwrap()
}

#[tokio::test]
async fn one_dpop_header_per_request_and_a_bound_parent_proves_its_key_to_be_exchanged() {
    let r = start(Arc::new(SqliteStore::in_memory().unwrap())).await;
    let parent = Client::register(&r, "planner", "docs:read docs:write").await;
    let child = Client::register(&r, "searcher", "docs:read").await;
    let parent_pop = SigningKey::generate(Algorithm::ES256).unwrap();
    let child_pop = SigningKey::generate(Algorithm::ES256).unwrap();
    let parent_token = parent
        .issue(
            &r,
            Some(Confirmation {
                jkt: Some(parent_pop.public_key().thumbprint().to_owned()),
                x5t_s256: None,
            }),
        )
        .token;
    // What `agent("searcher")` runs (its registered composite digest).
    let evidence = json!({
        "model": ModelRef::new("p", "m", "1"),
        "configuration": AgentConfiguration::new("You are searcher.", vec![]),
        "runtime": RuntimeDescriptor::new("process"),
    })
    .to_string();
    let exchange = |subject_proof: Option<&str>| {
        let assertion = child.assertion(TOKEN_ENDPOINT, 60);
        let mut pairs = vec![
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange".to_owned(),
            ),
            (
                "client_assertion_type",
                CLIENT_ASSERTION_TYPE_JWT.to_owned(),
            ),
            ("client_assertion", assertion),
            ("agent_attestation", evidence.clone()),
            ("subject_token", parent_token.clone()),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:access_token".to_owned(),
            ),
            ("scope", "docs:read".to_owned()),
            ("audience", "docs".to_owned()),
        ];
        if let Some(p) = subject_proof {
            pairs.push(("subject_token_dpop", p.to_owned()));
        }
        form_encode(
            &pairs
                .iter()
                .map(|(k, v)| (*k, v.as_str()))
                .collect::<Vec<_>>(),
        )
    };

    // Two DPoP headers: refused (RFC 9449 section 4.3), nothing issued.
    let (a, b) = (
        token_endpoint_proof(&child_pop, "two-1", None),
        token_endpoint_proof(&child_pop, "two-2", None),
    );
    let (status, _, json) = send(
        &r,
        "POST",
        "/oauth2/token",
        &[FORM, ("dpop", &a), ("dpop", &b)],
        exchange(Some(&token_endpoint_proof(
            &parent_pop,
            "p-0",
            Some(&parent_token),
        ))),
    )
    .await;
    assert_eq!(
        (status, json["error"].as_str()),
        (400, Some("invalid_dpop_proof")),
        "{json}"
    );

    // Without the parent's proof: the parent's binding holds (RFC 8693: invalid_request).
    let (status, _, json) = send(&r, "POST", "/oauth2/token", &[FORM], exchange(None)).await;
    assert_eq!(
        (
            status,
            json["error"].as_str(),
            json["agentiam_code"].as_str()
        ),
        (400, Some("invalid_request"), Some("token.pop_required")),
        "{json}"
    );
    // A proof by another key: refused.
    let wrong = token_endpoint_proof(&child_pop, "p-1", Some(&parent_token));
    let (status, _, json) =
        send(&r, "POST", "/oauth2/token", &[FORM], exchange(Some(&wrong))).await;
    assert_eq!(
        (status, json["agentiam_code"].as_str()),
        (400, Some("token.pop_invalid")),
        "{json}"
    );
    // The parent's proof, and the child's own proof binding the new token to its key.
    let proof = token_endpoint_proof(&parent_pop, "p-2", Some(&parent_token));
    let own = token_endpoint_proof(&child_pop, "c-2", None);
    let (status, _, json) = send(
        &r,
        "POST",
        "/oauth2/token",
        &[FORM, ("dpop", &own)],
        exchange(Some(&proof)),
    )
    .await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["token_type"], "DPoP");
    // The same parent proof again: used up.
    let (status, _, json) =
        send(&r, "POST", "/oauth2/token", &[FORM], exchange(Some(&proof))).await;
    assert_eq!(
        (status, json["agentiam_code"].as_str()),
        (400, Some("token.pop_invalid")),
        "{json}"
    );

    // An audience the parent does not hold: invalid_target.
    let other_audience = exchange(Some(&token_endpoint_proof(
        &parent_pop,
        "p-3",
        Some(&parent_token),
    )))
    .replace("audience=docs", "audience=ledger");
    let (status, _, json) = send(&r, "POST", "/oauth2/token", &[FORM], other_audience).await;
    assert_eq!(
        (status, json["error"].as_str()),
        (400, Some("invalid_target")),
        "{json}"
    );
}

#[tokio::test]
async fn a_dpop_bound_agent_uses_the_approvals_api_with_its_proof() {
    let r = start(Arc::new(SqliteStore::in_memory().unwrap())).await;
    let holder = Client::register(&r, "planner", "docs:read docs:write").await;
    let pop = SigningKey::generate(Algorithm::ES256).unwrap();
    let token = holder
        .issue(
            &r,
            Some(Confirmation {
                jkt: Some(pop.public_key().thumbprint().to_owned()),
                x5t_s256: None,
            }),
        )
        .token;
    let proof = |method: &str, path: &str, jti: &str, key: &SigningKey| {
        create_dpop_proof(
            key,
            &DpopRequest {
                method,
                url: &format!("http://broker.test{path}"),
            },
            SystemClock.now(),
            jti,
            Some(&token),
        )
        .unwrap()
    };
    let dpop_auth = format!("DPoP {token}");
    let bearer_auth = format!("Bearer {token}");
    // As a bearer token, or without a proof: 401 token.pop_required.
    for headers in [
        vec![("authorization", bearer_auth.as_str())],
        vec![("authorization", dpop_auth.as_str())],
    ] {
        let (status, _, json) = send(&r, "GET", "/approvals/nope", &headers, String::new()).await;
        assert_eq!(
            (status, json["agentiam_code"].as_str()),
            (401, Some("token.pop_required")),
            "{json}"
        );
    }
    // With a proof by another key: refused.
    let other = SigningKey::generate(Algorithm::ES256).unwrap();
    let wrong = proof("GET", "/approvals/nope", "w-1", &other);
    let (status, _, json) = send(
        &r,
        "GET",
        "/approvals/nope",
        &[("authorization", &dpop_auth), ("dpop", &wrong)],
        String::new(),
    )
    .await;
    assert_eq!(
        (status, json["agentiam_code"].as_str()),
        (401, Some("token.pop_invalid"))
    );
    // With its proof the agent is through authentication (the request itself is unknown: 404).
    let good = proof("GET", "/approvals/nope", "g-1", &pop);
    let (status, _, json) = send(
        &r,
        "GET",
        "/approvals/nope",
        &[("authorization", &dpop_auth), ("dpop", &good)],
        String::new(),
    )
    .await;
    assert_eq!(
        (status, json["agentiam_code"].as_str()),
        (404, Some("broker.not_found")),
        "{json}"
    );
    // The same proof again is used up.
    let (status, _, json) = send(
        &r,
        "GET",
        "/approvals/nope",
        &[("authorization", &dpop_auth), ("dpop", &good)],
        String::new(),
    )
    .await;
    assert_eq!(
        (status, json["error"].as_str()),
        (400, Some("invalid_dpop_proof")),
        "{json}"
    );
}
