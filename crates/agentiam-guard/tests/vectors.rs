//! Runs `testvectors/guard.json` against the guard. pytest runs the same file through `agentiam guard decide`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "test harness: a panic is a failed test"
)]

use std::sync::Arc;

use agentiam_guard::config::CallInput;
use agentiam_guard::{Decision, GuardConfig};
use agentiam_token::FixedClock;
use serde_json::Value;

fn kind(d: &Decision) -> &'static str {
    match d {
        Decision::Allow(_) => "allow",
        Decision::Deny(_) => "deny",
        Decision::NeedsConfirmation(_) => "confirm",
    }
}

/// One case: a fresh guard (fresh nonce store), every call but the last allowed, the last as expected.
fn check(doc: &Value, case: &Value) -> Result<(), String> {
    let config = GuardConfig::from_json(&doc["config"].to_string()).map_err(|e| e.to_string())?;
    let (guard, auth) = config
        .build(Arc::new(FixedClock::new(doc["now"].as_i64().unwrap())))
        .map_err(|e| e.to_string())?;
    let calls = case["calls"].as_array().unwrap();
    let (last, before) = calls.split_last().unwrap();
    for call in before {
        let input: CallInput = serde_json::from_value(call.clone()).map_err(|e| e.to_string())?;
        let d = input.decide(&guard, &auth);
        if !d.is_allowed() {
            return Err(format!("setup call not allowed: {d:?}"));
        }
    }
    let input: CallInput = serde_json::from_value(last.clone()).map_err(|e| e.to_string())?;
    let d = input.decide(&guard, &auth);
    let (want_kind, want_code) = (case["result"].as_str().unwrap(), case["error"].as_str());
    if kind(&d) != want_kind || d.code() != want_code {
        return Err(format!("want {want_kind} {want_code:?}, got {d:?}"));
    }
    Ok(())
}

#[test]
fn every_guard_vector_gets_its_expected_decision() {
    let doc: Value = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testvectors/guard.json"
    )))
    .unwrap();
    let tests = doc["tests"].as_array().unwrap();
    assert!(tests.len() >= 30, "the catalogue shrank");
    let failures: Vec<String> = tests
        .iter()
        .filter_map(|t| {
            check(&doc, t)
                .err()
                .map(|e| format!("tc{} {}: {e}", t["tcId"], t["comment"]))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every flag used is explained.
    for t in tests {
        for f in t["flags"].as_array().unwrap() {
            assert!(
                doc["notes"].get(f.as_str().unwrap()).is_some(),
                "flag {f} has no note"
            );
        }
    }
}
