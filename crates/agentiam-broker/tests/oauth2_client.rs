//! The broker driven by a stock Rust OAuth client, the `oauth2` crate, unchanged: client
//! credentials with a `private_key_jwt` assertion (as extra parameters, which is how that crate
//! carries RFC 7523), introspection authenticated the same way, and the broker's error bodies
//! parsed by the crate's own `StandardErrorResponse`. (The crate will not revoke over plain HTTP.)
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
use agentiam_token::*;
use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt as _, Full};
use oauth2::basic::{BasicClient, BasicErrorResponseType, BasicTokenType};
use oauth2::{
    AccessToken, AuthType, ClientId, IntrospectionUrl, RequestTokenError, RevocationUrl, Scope,
    StandardRevocableToken, TokenIntrospectionResponse, TokenResponse, TokenUrl,
};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The `oauth2` crate's asynchronous HTTP client interface, over hyper.
async fn http(request: oauth2::HttpRequest) -> Result<oauth2::HttpResponse, std::io::Error> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let (parts, body) = request.into_parts();
    let response = client
        .request(http::Request::from_parts(
            parts,
            Full::new(Bytes::from(body)),
        ))
        .await
        .map_err(std::io::Error::other)?;
    let (parts, body) = response.into_parts();
    let bytes = body
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    Ok(http::Response::from_parts(parts, bytes.to_vec()))
}

#[tokio::test]
async fn the_oauth2_crate_gets_introspects_and_revokes_a_token() {
    let r = start(Arc::new(SqliteStore::in_memory().unwrap())).await;
    let (identity, key) = register_with_key(&r, "reconciler", "ledger.*:read").await;
    let id = identity.spiffe_id().to_string();
    // The crate calls the broker at its real address; assertions name the broker's issuer.
    let assertion =
        |jti: &str| create_client_assertion(&key, &id, ISS, jti, SystemClock.now(), 60).unwrap();
    let evidence = evidence_of("reconciler");

    let client = BasicClient::new(ClientId::new(id.clone()))
        .set_auth_type(AuthType::RequestBody)
        .set_token_uri(TokenUrl::new(format!("{}/oauth2/token", r.base)).unwrap())
        .set_introspection_url(
            IntrospectionUrl::new(format!("{}/oauth2/introspect", r.base)).unwrap(),
        )
        .set_revocation_url(RevocationUrl::new(format!("{}/oauth2/revoke", r.base)).unwrap());

    let first = assertion("a-1");
    // The crate's client-credentials request, the assertion as extra parameters (RFC 7523).
    let credentials = |assertion: &str| {
        client
            .exchange_client_credentials()
            .add_scope(Scope::new("ledger.ar:read".into()))
            .add_extra_param("client_assertion_type", ASSERTION_TYPE)
            .add_extra_param("client_assertion", assertion.to_owned())
            .add_extra_param("agent_attestation", evidence.clone())
            .add_extra_param("audience", "ledger")
            .add_extra_param("task_id", "task-1")
    };
    let token = credentials(&first).request_async(&http).await.unwrap();
    assert_eq!(token.token_type(), &BasicTokenType::Bearer);
    assert_eq!(
        token.scopes().unwrap(),
        &vec![Scope::new("ledger.ar:read".into())]
    );
    assert!(token.expires_in().is_some());

    // The same assertion again: the crate parses the broker's error as RFC 6749's.
    let replayed = credentials(&first).request_async(&http).await.unwrap_err();
    match replayed {
        RequestTokenError::ServerResponse(e) => {
            assert_eq!(e.error(), &BasicErrorResponseType::InvalidClient);
            assert!(e.error_description().unwrap().contains("already used"));
        }
        other => panic!("expected the broker's error response, got {other:?}"),
    }

    let access = AccessToken::new(token.access_token().secret().clone());
    let second = assertion("a-2");
    let live = client
        .introspect(&access)
        .add_extra_param("client_assertion_type", ASSERTION_TYPE)
        .add_extra_param("client_assertion", second.as_str())
        .request_async(&http)
        .await
        .unwrap();
    assert!(live.active());
    assert_eq!(live.sub(), Some(id.as_str()));

    // The crate refuses a revocation endpoint that is not https (RFC 7009 section 2 requires
    // TLS), and this broker listens on plain loopback HTTP: the revocation goes as the crate
    // would send it, a form with the token and the client assertion.
    assert!(matches!(
        client.revoke_token(StandardRevocableToken::AccessToken(access.clone())),
        Err(oauth2::ConfigurationError::InsecureUrl(_))
    ));
    let third = assertion("a-3");
    let form = form_encode(&[
        ("token", access.secret().as_str()),
        ("token_type_hint", "access_token"),
        ("client_id", id.as_str()),
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", third.as_str()),
    ]);
    let (status, _, _) = send(
        &r,
        "POST",
        "/oauth2/revoke",
        &[("content-type", "application/x-www-form-urlencoded")],
        form,
    )
    .await;
    assert_eq!(status, 200);
    let fourth = assertion("a-4");
    let gone = client
        .introspect(&access)
        .add_extra_param("client_assertion_type", ASSERTION_TYPE)
        .add_extra_param("client_assertion", fourth.as_str())
        .request_async(&http)
        .await
        .unwrap();
    assert!(!gone.active());
}
