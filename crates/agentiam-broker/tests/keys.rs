//! Signing-key rotation: on request and on a schedule, with overlap, persisted in the data
//! directory so a restart keeps publishing the retired key until its tokens have expired.
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
use std::time::Duration;

use agentiam_broker::{DataDir, schedule_key_rotation};
use agentiam_identity::*;
use agentiam_token::*;
use common::*;

async fn serve(dir: &std::path::Path) -> (Running, agentiam_broker::Broker) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let data = DataDir::open(dir).unwrap();
    let broker = data.broker(ISS, ADMIN).unwrap();
    let app = broker.router();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let store: Arc<dyn agentiam_broker::Store> = Arc::new(data.store().unwrap());
    let issuer = Arc::new(Issuer::new(ISS, KeySet::new(data.signing_key().unwrap())));
    (
        Running {
            base,
            issuer,
            store,
            broker: broker.clone(),
        },
        broker,
    )
}

async fn jwks(r: &Running) -> Jwks {
    let (status, _, body) = call(r, "GET", "/.well-known/jwks.json", None, "text/plain", "").await;
    assert_eq!(status, 200);
    Jwks::from_json(&body.to_string()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_keeps_old_tokens_verifying_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (r, _) = serve(dir.path()).await;
    let ap = agent("ap");
    // A token signed by the first key (the key file is the broker's).
    r.issuer.register(
        ap.spiffe_id(),
        AgentRegistration::new(ScopeSet::parse("ledger:read").unwrap()),
    );
    let old = r
        .issuer
        .issue(&TokenRequest::new(
            &ap,
            "ledger",
            ScopeSet::parse("ledger:read").unwrap(),
            "t",
            "x",
        ))
        .unwrap();
    let first_kid = jwks(&r).await.keys()[0].kid().to_owned();

    let (status, _, _) = call(&r, "POST", "/admin/keys/rotate", None, "text/plain", "").await;
    assert_eq!(status, 401, "rotation needs the administrator");
    let (status, _, rotated) = call(
        &r,
        "POST",
        "/admin/keys/rotate",
        Some(ADMIN),
        "text/plain",
        "",
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    let new_kid = rotated["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, first_kid);
    let published = jwks(&r).await;
    assert!(published.find(&first_kid).is_some() && published.find(&new_kid).is_some());
    Verifier::new(published, ISS, "ledger")
        .verify(&old.token)
        .unwrap();
    let key_file = std::fs::read_to_string(dir.path().join("signing-key.jwk")).unwrap();
    assert_eq!(
        SigningKey::from_private_jwk(&key_file).unwrap().kid(),
        new_kid
    );

    // A restart on the same directory signs with the new key and still publishes the old one.
    let (r2, broker2) = serve(dir.path()).await;
    let after_restart = jwks(&r2).await;
    assert_eq!(
        after_restart.keys()[0].kid(),
        new_kid,
        "the active key comes first"
    );
    assert!(
        after_restart.find(&first_kid).is_some(),
        "the retired key is still published"
    );
    Verifier::new(after_restart, ISS, "ledger")
        .verify(&old.token)
        .unwrap();

    drop(broker2);
}

/// The schedule runs on tokio's paused clock: time only moves when every task is idle (and not
/// while a rotation runs on the blocking pool), so the count of rotations is exact whatever the
/// machine's load.
#[tokio::test(start_paused = true)]
async fn scheduled_rotation_rotates_once_per_period_and_keeps_the_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::open(dir.path()).unwrap();
    let broker = data.broker(ISS, ADMIN).unwrap();
    let first_kid = broker.jwks().keys()[0].kid().to_owned();
    let every = Duration::from_secs(3600);

    let task = schedule_key_rotation(&broker, every);
    // Just short of the first period: nothing has rotated.
    tokio::time::sleep(every - Duration::from_secs(1)).await;
    assert_eq!(
        broker.jwks().keys().len(),
        1,
        "no rotation before the period"
    );
    assert_eq!(broker.jwks().keys()[0].kid(), first_kid);
    // Past three periods: exactly three rotations.
    tokio::time::sleep(every * 2 + Duration::from_secs(2)).await;
    task.abort();
    let scheduled = broker.jwks();
    assert_ne!(
        scheduled.keys()[0].kid(),
        first_kid,
        "the active key changed"
    );
    assert_eq!(
        scheduled.keys().len(),
        4,
        "three scheduled rotations, every retired key still in the overlap"
    );
    assert!(scheduled.find(&first_kid).is_some());
    let events = broker.flush_audit().unwrap().unwrap();
    assert!(
        !events.is_empty(),
        "rotations are checkpointed in the activity log"
    );
}

/// A service that verifies offline (`jwks_fetcher` + `Verifier::follow_jwks`) accepts a token
/// signed with the broker's next key after a rotation, fetching from inside the async runtime it
/// serves on; a broker that cannot be reached is an error naming the URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_following_the_brokers_jwks_accepts_tokens_after_a_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let (r, _) = serve(dir.path()).await;
    let fetch = agentiam_broker_client::jwks_fetcher(r.base.clone());
    let verifier = Verifier::new(fetch().unwrap(), ISS, "ledger");
    verifier.follow_jwks(fetch, 30);

    let (status, _, rotated) = call(
        &r,
        "POST",
        "/admin/keys/rotate",
        Some(ADMIN),
        "text/plain",
        "",
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    let key_file = std::fs::read_to_string(dir.path().join("signing-key.jwk")).unwrap();
    let next = Issuer::new(
        ISS,
        KeySet::new(SigningKey::from_private_jwk(&key_file).unwrap()),
    );
    let ap = agent("ap");
    next.register(
        ap.spiffe_id(),
        AgentRegistration::new(ScopeSet::parse("ledger:read").unwrap()),
    );
    let issued = next
        .issue(&TokenRequest::new(
            &ap,
            "ledger",
            ScopeSet::parse("ledger:read").unwrap(),
            "t",
            "x",
        ))
        .unwrap();
    let token = verifier.verify(&issued.token).unwrap();
    assert_eq!(token.claims().jti, issued.claims.jti);
    assert_eq!(token.kid(), rotated["kid"].as_str().unwrap());

    // Nothing listens on port 9 of loopback here: the error says where it looked.
    let unreachable = agentiam_broker_client::jwks_fetcher("http://127.0.0.1:9")().unwrap_err();
    assert!(
        unreachable.contains("http://127.0.0.1:9/.well-known/jwks.json"),
        "{unreachable}"
    );
    // The client speaks plain HTTP: an https broker is refused, naming the URL, never fetched
    // some other way.
    let tls = agentiam_broker_client::jwks_fetcher("https://127.0.0.1:9")().unwrap_err();
    assert!(
        tls.contains("https://127.0.0.1:9/.well-known/jwks.json"),
        "{tls}"
    );
}
