//! The broker's signing keys for a service that verifies its tokens offline.

use std::time::Duration;

use agentiam_identity::Jwks;

use crate::{BrokerClient, RequestBody};

/// Longest one JWKS fetch may take, connection and answer together.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// A blocking fetch of the broker's JWKS (`GET {base_url}/.well-known/jwks.json`), for
/// `Verifier::follow_jwks`: the verifier calls it when a token names a key it does not hold
/// (the broker rotates its signing key daily by default), at most once per interval, and keeps
/// the keys it had when a fetch fails.
///
/// Each call runs on a thread of its own with its own small runtime, so it may be called from
/// inside an async service (a tower layer on tokio) as well as from plain code. It fails, with
/// a message naming the URL, when the broker is unreachable, answers anything but 200, or
/// answers something that is not a JWKS, or after 10 seconds. Like [`BrokerClient`] it speaks
/// plain HTTP: an `https://` broker is an error naming the URL (put a TLS-terminating sidecar in
/// front, or load the keys with `Jwks::from_json`).
///
/// ```no_run
/// use agentiam_token::Verifier;
/// # fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let fetch = agentiam_broker_client::jwks_fetcher("http://127.0.0.1:8700");
/// let verifier = Verifier::new(fetch()?, "http://127.0.0.1:8700", "payments-api");
/// verifier.follow_jwks(fetch, 30);
/// # Ok(()) }
/// ```
pub fn jwks_fetcher(
    base_url: impl Into<String>,
) -> impl Fn() -> Result<Jwks, String> + Send + Sync + 'static {
    let base = base_url.into();
    move || {
        let base = base.clone();
        std::thread::spawn(move || fetch_jwks(&base))
            .join()
            .unwrap_or_else(|_| Err("the JWKS fetch thread panicked".to_owned()))
    }
}

/// One fetch on a current-thread runtime.
fn fetch_jwks(base: &str) -> Result<Jwks, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime to fetch the JWKS: {e}"))?;
    let client = BrokerClient::new(base);
    let url = format!("{}/.well-known/jwks.json", client.base_url());
    let answer = runtime.block_on(async {
        tokio::time::timeout(
            FETCH_TIMEOUT,
            client.send("GET", "/.well-known/jwks.json", &[], RequestBody::Empty),
        )
        .await
    });
    let (status, body) = match answer {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => return Err(format!("GET {url}: no answer within {FETCH_TIMEOUT:?}")),
    };
    if status != 200 {
        return Err(format!("GET {url}: HTTP {status}"));
    }
    Jwks::from_json(&body.to_string()).map_err(|e| format!("GET {url}: not a JWKS: {e}"))
}
