//! A long-running verifier follows the issuer's key rotation: an unknown `kid` fetches the
//! issuer's JWKS again, at most once per interval, and a failed fetch keeps the keys it had.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "test harness: a panic is a failed test"
)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use agentiam_identity::{Algorithm, Jwks, SigningKey};
use agentiam_token::*;

const NOW: i64 = 1_800_000_000;

fn token(key: &SigningKey, kid: Option<&str>) -> String {
    let claims =
        serde_json::json!({"iss": "iss", "sub": "a", "aud": "aud", "iat": NOW, "exp": NOW + 600});
    let mut header = serde_json::Map::new();
    if let Some(kid) = kid {
        header.insert("kid".into(), kid.into());
    }
    sign_compact(key, &header, claims.to_string().as_bytes()).unwrap()
}

#[test]
fn an_unknown_kid_fetches_once_per_interval_and_a_failed_fetch_keeps_the_keys() {
    let old = SigningKey::ed25519_from_seed(&[1u8; 32]).unwrap();
    let new = SigningKey::ed25519_from_seed(&[2u8; 32]).unwrap();
    let clock = Arc::new(FixedClock::new(NOW));
    let verifier = Verifier::new(Jwks::from_keys([old.public_key().clone()]), "iss", "aud")
        .with_clock(clock.clone());
    let fetches = Arc::new(AtomicUsize::new(0));
    let published = Arc::new(Mutex::new(Err::<Jwks, String>("broker down".into())));
    {
        let (fetches, published) = (fetches.clone(), published.clone());
        verifier.follow_jwks(
            move || {
                fetches.fetch_add(1, Ordering::SeqCst);
                published.lock().unwrap().clone()
            },
            30,
        );
    }
    // The broker rotated, but is unreachable: the new token fails, old tokens still verify.
    let fresh = token(&new, None);
    assert_eq!(
        verifier.verify(&fresh).unwrap_err().code(),
        "token.unknown_key"
    );
    assert!(verifier.verify(&token(&old, None)).is_ok());
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    // A flood of made-up kids within the interval fetches nothing more.
    for i in 0..100 {
        let forged = token(&new, Some(&format!("made-up-{i}")));
        assert_eq!(
            verifier.verify(&forged).unwrap_err().code(),
            "token.unknown_key"
        );
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    // The broker is back; after the interval the next unknown kid fetches and verifies.
    *published.lock().unwrap() = Ok(Jwks::from_keys([
        new.public_key().clone(),
        old.public_key().clone(),
    ]));
    clock.advance(30);
    let clone = verifier.clone();
    assert!(
        clone.verify(&fresh).is_ok(),
        "clones share the followed keys"
    );
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    assert!(verifier.verify(&fresh).is_ok());
    assert_eq!(verifier.keys().keys().len(), 2);
    // A token by a key nobody publishes is still refused.
    let stranger = SigningKey::generate(Algorithm::EdDSA).unwrap();
    clock.advance(30);
    assert_eq!(
        verifier.verify(&token(&stranger, None)).unwrap_err().code(),
        "token.unknown_key"
    );
}
