//! Runs `testvectors/tokens.json` (the attack catalogue) against the verifier.
//! pytest reads the same file through the CLI, so Rust and Python agree by construction.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "test harness: a panic is a failed test"
)]

use std::sync::Arc;

use agentiam_identity::{Jwks, Sha256Digest};
use agentiam_token::{
    FixedClock, InMemoryRevocationSet, Revocation, RevocationSet, TokenError, Verifier,
};
use serde_json::Value;

fn load() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testvectors/tokens.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn verifier(doc: &Value) -> Verifier {
    let cfg = &doc["verifier"];
    let jwks = Jwks::from_json(&cfg["jwks"].to_string()).unwrap();
    let revoked = InMemoryRevocationSet::new();
    for jti in cfg["revoked_jtis"].as_array().unwrap() {
        revoked
            .revoke(Revocation::Token(jti.as_str().unwrap().into()), i64::MAX)
            .unwrap();
    }
    Verifier::new(
        jwks,
        cfg["issuer"].as_str().unwrap(),
        cfg["audience"].as_str().unwrap(),
    )
    .with_clock(Arc::new(FixedClock::new(cfg["now"].as_i64().unwrap())))
    .with_leeway(cfg["leeway"].as_i64().unwrap())
    .with_revocation(Arc::new(revoked))
}

/// The one check for this boundary: token in, `Ok` or a stable code out.
fn check(verifier: &Verifier, test: &Value) -> Result<(), &'static str> {
    let token = verifier
        .verify(test["token"].as_str().unwrap())
        .map_err(|e: TokenError| e.code())?;
    if let Some(p) = test.get("presented_by") {
        let digest = Sha256Digest::parse(p["digest"].as_str().unwrap()).unwrap();
        token
            .check_bound_to_digest(p["spiffe_id"].as_str().unwrap(), digest)
            .map_err(|e| e.code())?;
    }
    Ok(())
}

#[test]
fn every_vector_gets_its_expected_result() {
    let doc = load();
    let verifier = verifier(&doc);
    let tests = doc["tests"].as_array().unwrap();
    assert_eq!(tests.len() as u64, doc["numberOfTests"].as_u64().unwrap());
    assert!(tests.len() >= 60, "the catalogue shrank to {}", tests.len());
    let mut failures = Vec::new();
    for t in tests {
        let expected = match t["result"].as_str().unwrap() {
            "valid" => Ok(()),
            "invalid" => Err(t["error"].as_str().unwrap().to_owned()),
            other => panic!("unknown result {other}"),
        };
        let got = check(&verifier, t).map_err(str::to_owned);
        if got != expected {
            failures.push(format!(
                "tcId {} ({}): expected {expected:?}, got {got:?}",
                t["tcId"], t["comment"]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} vectors failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_flag_is_explained_in_notes() {
    let doc = load();
    let notes = doc["notes"].as_object().unwrap();
    for t in doc["tests"].as_array().unwrap() {
        for flag in t["flags"].as_array().unwrap() {
            assert!(
                notes.contains_key(flag.as_str().unwrap()),
                "flag {flag} has no note"
            );
        }
    }
}
