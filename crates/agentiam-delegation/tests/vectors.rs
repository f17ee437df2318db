//! Runs `testvectors/delegation.json` against the verifier. pytest runs it through the CLI.
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
    FixedClock, InMemoryRevocationSet, Revocation, RevocationSet, ScopeRequest, Verifier,
};
use serde_json::Value;

fn check(cfg: &Value, t: &Value) -> Result<(), String> {
    let revoked = InMemoryRevocationSet::new();
    for jti in t["revoked_jtis"].as_array().into_iter().flatten() {
        revoked
            .revoke(Revocation::Token(jti.as_str().unwrap().into()), i64::MAX)
            .unwrap();
    }
    let verifier = Verifier::new(
        Jwks::from_json(&cfg["jwks"].to_string()).unwrap(),
        cfg["issuer"].as_str().unwrap(),
        cfg["audience"].as_str().unwrap(),
    )
    .with_clock(Arc::new(FixedClock::new(cfg["now"].as_i64().unwrap())))
    .with_max_delegation_depth(cfg["max_depth"].as_u64().unwrap() as usize)
    .with_revocation(Arc::new(revoked));
    let token = verifier
        .verify(t["token"].as_str().unwrap())
        .map_err(|e| e.code().to_owned())?;
    if let Some(p) = t.get("presented_by") {
        token
            .check_bound_to_digest(
                p["spiffe_id"].as_str().unwrap(),
                Sha256Digest::parse(p["digest"].as_str().unwrap()).unwrap(),
            )
            .map_err(|e| e.code().to_owned())?;
    }
    if let Some(r) = t.get("request") {
        let req = ScopeRequest::new(
            r["resource"].as_str().unwrap(),
            r["action"].as_str().unwrap(),
        )
        .with_args(&r["args"]);
        token
            .scopes()
            .check(&req)
            .map_err(|d| d.code().to_owned())?;
    }
    Ok(())
}

#[test]
fn every_delegation_vector_gets_its_expected_result() {
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testvectors/delegation.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let notes = doc["notes"].as_object().unwrap();
    let mut failures = Vec::new();
    for t in doc["tests"].as_array().unwrap() {
        for f in t["flags"].as_array().unwrap() {
            assert!(notes.contains_key(f.as_str().unwrap()), "{f}");
        }
        let expected = match t["result"].as_str().unwrap() {
            "valid" => Ok(()),
            _ => Err(t["error"].as_str().unwrap().to_owned()),
        };
        let got = check(&doc["verifier"], t);
        if got != expected {
            failures.push(format!(
                "tcId {} ({}): expected {expected:?}, got {got:?}",
                t["tcId"], t["comment"]
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
