//! Any bytes as a token: parse and verify must return an error code, never panic.
#![no_main]

use std::sync::{Arc, OnceLock};

use agentiam_identity::{Jwks, SigningKey};
use agentiam_token::{FixedClock, Verifier};
use libfuzzer_sys::fuzz_target;

fn verifier() -> &'static Verifier {
    static V: OnceLock<Verifier> = OnceLock::new();
    V.get_or_init(|| {
        let key = SigningKey::ed25519_from_seed(&[7u8; 32]).expect("fixed seed");
        Verifier::new(Jwks::from_keys([key.public_key().clone()]), "https://broker.agentiam.test", "ledger-api")
            .with_clock(Arc::new(FixedClock::new(1_800_000_000)))
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(e) = verifier().verify(text) {
            assert!(e.code().contains('.'));
        }
    }
});
