//! The worlds agentiam's Rust tests build on, written once: agents, clocks, keys and issuers.
//!
//! Test-only (`publish = false`): everything here panics on failure, which in a test is a
//! failed test.
//!
//! ```
//! use agentiam_test_support as world;
//! let clock = world::clock(1_800_000_000);
//! let issuer = world::issuer("https://broker.acme.test", &clock);
//! let agent = world::agent("orchestrator");
//! assert_eq!(agent.spiffe_id().to_string(), "spiffe://acme.test/agent/orchestrator");
//! world::register(&issuer, &agent, "ledger.*:read");
//! ```

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test support: a failure here is a failed test"
)]

use std::sync::Arc;

use agentiam_identity::{
    AgentConfiguration, AgentIdentity, Algorithm, KeySet, ModelRef, RuntimeDescriptor, SigningKey,
    parse_spiffe_id,
};
use agentiam_token::{
    AgentRegistration, FixedClock, Issuer, ScopeSet, Token, TokenRequest, Verifier,
};
use base64::Engine as _;
use serde_json::{Map, Value};

/// The trust domain every test agent lives in.
pub const TRUST_DOMAIN: &str = "acme.test";

/// An agent `spiffe://acme.test/agent/<name>`: model `p/m/1`, the prompt `You are <name>.`, no
/// tools, a plain process runtime.
pub fn agent(name: &str) -> AgentIdentity {
    AgentIdentity::new(
        parse_spiffe_id(&format!("spiffe://{TRUST_DOMAIN}/agent/{name}")).expect("a SPIFFE ID"),
        ModelRef::new("p", "m", "1"),
        &AgentConfiguration::new(format!("You are {name}."), vec![]),
        RuntimeDescriptor::new("process"),
    )
    .expect("an agent identity")
}

/// A clock fixed at `now` (seconds since the epoch), shared by the issuer, verifiers and guards
/// of one test.
pub fn clock(now: i64) -> Arc<FixedClock> {
    Arc::new(FixedClock::new(now))
}

/// An Ed25519 key derived from one byte, the same in every run (for vectors and fixtures).
pub fn seeded_key(seed: u8) -> SigningKey {
    SigningKey::ed25519_from_seed(&[seed; 32]).expect("an Ed25519 key")
}

/// A fresh Ed25519 key.
pub fn fresh_key() -> SigningKey {
    SigningKey::generate(Algorithm::EdDSA).expect("an Ed25519 key")
}

/// An issuer named `iss` on `clock`, signing with a fresh Ed25519 key.
pub fn issuer(iss: &str, clock: &Arc<FixedClock>) -> Issuer {
    issuer_with_key(iss, clock, fresh_key())
}

/// An issuer named `iss` on `clock`, signing with `key`.
pub fn issuer_with_key(iss: &str, clock: &Arc<FixedClock>, key: SigningKey) -> Issuer {
    Issuer::new(iss, KeySet::new(key)).with_clock(clock.clone())
}

/// Registers `agent` with `issuer`, allowed at most `max_scopes`.
pub fn register(issuer: &Issuer, agent: &AgentIdentity, max_scopes: &str) {
    issuer.register(
        agent.spiffe_id(),
        AgentRegistration::new(ScopeSet::parse(max_scopes).expect("scopes")),
    );
}

/// A task token (task `task-1`) for `audience` issued by `issuer` (named `iss`, on `clock`) to
/// `agent`, registered for `scopes` first, and verified: what a guard sees after authentication.
pub fn verified_task_token(
    issuer: &Issuer,
    iss: &str,
    clock: &Arc<FixedClock>,
    agent: &AgentIdentity,
    audience: &str,
    scopes: &str,
) -> Token {
    register(issuer, agent, scopes);
    let token = issuer
        .issue(&TokenRequest::new(
            agent,
            audience,
            ScopeSet::parse(scopes).expect("scopes"),
            "task-1",
            "test",
        ))
        .expect("a task token")
        .token;
    Verifier::new(issuer.jwks(), iss, audience)
        .with_clock(clock.clone())
        .verify(&token)
        .expect("a verified token")
}

/// Members whose values a vector generator draws at random on every run (nonces, signatures
/// over them, certificates of a fresh CA, checkpoints signed by a fresh key, token ids).
const VOLATILE_MEMBERS: &[&str] = &[
    "nonce",
    "digest",
    "signature",
    "client_certificate",
    "checkpoint",
    "verifier_key",
    "revoked_jtis",
    "jti",
    "call",
    "ath",
    "x5t#S256",
    "pad",
];

/// A vector document with what its generator draws at random replaced by placeholders, so a
/// regenerated document can be compared with the committed one: every compact JWS (tokens,
/// DPoP proofs, assertions) becomes its header and its claims without `jti`, and the values of
/// volatile members (nonces, signatures, certificates, checkpoints) become `"<volatile>"`.
/// Everything else (descriptions, inputs, expected decisions and codes, claims) must be equal.
///
/// ```
/// use agentiam_test_support::normalize_vectors;
/// let a = serde_json::json!({"expected": "token.expired", "nonce": "n1"});
/// let b = serde_json::json!({"expected": "token.expired", "nonce": "n2"});
/// assert_eq!(normalize_vectors(&a), normalize_vectors(&b));
/// let c = serde_json::json!({"expected": "token.revoked", "nonce": "n1"});
/// assert_ne!(normalize_vectors(&a), normalize_vectors(&c));
/// ```
pub fn normalize_vectors(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if VOLATILE_MEMBERS.contains(&k.as_str()) {
                        Value::String("<volatile>".to_owned())
                    } else {
                        normalize_vectors(v)
                    };
                    (k.clone(), v)
                })
                .collect::<Map<String, Value>>(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(normalize_vectors).collect()),
        Value::String(s) => jws_shape(s).unwrap_or_else(|| value.clone()),
        _ => value.clone(),
    }
}

/// A compact JWS as `{"jws": {"header", "claims"}}` with its random parts dropped, or `None`
/// when `text` is not one.
fn jws_shape(text: &str) -> Option<Value> {
    let mut parts = text.split('.');
    let (header, claims, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let decode = |part: &str| -> Option<Value> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .ok()?;
        serde_json::from_slice(&bytes).ok()
    };
    let header = decode(header)?;
    header.get("alg")?;
    let claims = decode(claims).map_or(Value::String("<not JSON>".to_owned()), |c| {
        normalize_vectors(&c)
    });
    Some(serde_json::json!({"jws": {"header": header, "claims": claims}}))
}

/// Asserts that the committed vector file `testvectors/<name>` is what its generator writes
/// today (after [`normalize_vectors`]); on a difference, names the first differing path and
/// the command that regenerates the file.
pub fn assert_vectors_fresh(name: &str, generated: &Value, regenerate: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testvectors")
        .join(name);
    let committed: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("the vector file"))
            .expect("the vector file is JSON");
    // As written to the file and read back (numbers compare as parsed text).
    let generated: Value = serde_json::from_str(&generated.to_string()).expect("JSON");
    let (want, got) = (normalize_vectors(&committed), normalize_vectors(&generated));
    if want != got {
        let at = first_difference(&want, &got, String::new()).unwrap_or_default();
        let pointer = at.replace(['.', '['], "/").replace(']', "");
        panic!(
            "testvectors/{name} is stale (first difference at {at:?}: committed {}, generated {}): regenerate it with `{regenerate}`",
            want.pointer(&pointer).unwrap_or(&Value::Null),
            got.pointer(&pointer).unwrap_or(&Value::Null)
        );
    }
}

fn first_difference(a: &Value, b: &Value, path: String) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys()) {
                let (Some(v), Some(w)) = (x.get(k), y.get(k)) else {
                    return Some(format!("{path}.{k}"));
                };
                if let Some(p) = first_difference(v, w, format!("{path}.{k}")) {
                    return Some(p);
                }
            }
            None
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (v, w))| first_difference(v, w, format!("{path}[{i}]"))),
        _ => (a != b).then_some(path),
    }
}
