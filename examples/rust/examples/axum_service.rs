//! A payments API behind the guard: it verifies the broker's task tokens (following its key
//! rotation), checks each request's scope and arguments, and serves on `LISTEN`.
//!
//! `cargo run --example axum_service` (with `agentiam serve` running)
use std::sync::Arc;

use agentiam::guard::Authenticator;
use agentiam::guard::http::{Authenticated, GuardLayer, RouteMap};
use agentiam::prelude::*;

async fn pay(Authenticated(principal): Authenticated) -> String {
    format!("paid on behalf of {}\n", principal.subject())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The broker (`agentiam serve`), this service's name in its tokens, and where it listens.
    let broker = std::env::var("BROKER_URL").unwrap_or_else(|_| "http://127.0.0.1:8700".into());
    let audience = std::env::var("AUDIENCE").unwrap_or_else(|_| "payments-api".into());
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".into());

    // The broker's keys, fetched now and again whenever a token names a key this service has not
    // seen (the broker rotates daily), at most every 30 seconds.
    let fetch = agentiam_broker_client::jwks_fetcher(&broker);
    let verifier = Verifier::new(fetch()?, &broker, &audience);
    verifier.follow_jwks(fetch, 30);

    let guard = Guard::builder(PolicyEngine::default_policy()?)
        .tool(ToolSpec::new("approve_payment", Risk::High).with_scope("payments", "approve"))
        .build()?;
    let authenticator = Authenticator::new(
        CachingVerifier::new(verifier, 10_000),
        DpopVerifier::new(Arc::new(SystemClock)),
    );
    let routes = RouteMap::new().route("POST", "/payments", "approve_payment")?;
    let app = axum::Router::new()
        .route("/payments", axum::routing::post(pay))
        .layer(GuardLayer::new(
            guard,
            authenticator,
            routes,
            format!("http://{listen}"),
        ));

    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!(
        "payments-api listening on http://{}",
        listener.local_addr()?
    );
    axum::serve(listener, app).await?;
    Ok(())
}
