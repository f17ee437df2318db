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
use agentiam_token::{AgentRegistration, FixedClock, Issuer, ScopeSet};

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
