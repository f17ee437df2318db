//! Runs `testvectors/audit_log.json` (tampering as data) against `verify_log`.
//! pytest runs the same file through `agentiam audit verify`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "test harness: a panic is a failed test"
)]

use agentiam_telemetry::{MemStore, NoteVerifier, verify_log};
use serde_json::Value;

fn load() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testvectors/audit_log.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The one check for this boundary: a log and maybe a checkpoint in, `Ok` or (code, seq) out.
fn check(verifier: &NoteVerifier, test: &Value) -> Result<(), (String, Option<u64>)> {
    let store = MemStore::new();
    store.set_segment(0, test["segment"].as_str().unwrap().as_bytes().to_vec());
    let checkpoint = test["checkpoint"].as_str();
    verify_log(&store, checkpoint.map(|c| (c, verifier)))
        .map(|_| ())
        .map_err(|e| (e.code().to_owned(), e.seq()))
}

#[test]
fn every_tamper_vector_gets_its_expected_result() {
    let doc = load();
    let verifier = NoteVerifier::from_verifier_key(doc["verifier_key"].as_str().unwrap()).unwrap();
    let tests = doc["tests"].as_array().unwrap();
    assert!(tests.len() >= 20);
    let mut failures = Vec::new();
    for t in tests {
        let got = check(&verifier, t);
        let ok = match t["result"].as_str().unwrap() {
            "valid" => got.is_ok(),
            _ => match &got {
                Err((code, seq)) => {
                    code == t["error"].as_str().unwrap()
                        && (code == "audit.bad_checkpoint" || *seq == t["seq"].as_u64())
                }
                Ok(()) => false,
            },
        };
        if !ok {
            failures.push(format!(
                "tcId {} ({}): expected {} {:?} {:?}, got {got:?}",
                t["tcId"], t["comment"], t["result"], t["error"], t["seq"]
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_flag_is_explained() {
    let doc = load();
    let notes = doc["notes"].as_object().unwrap();
    for t in doc["tests"].as_array().unwrap() {
        for f in t["flags"].as_array().unwrap() {
            assert!(notes.contains_key(f.as_str().unwrap()), "{f}");
        }
    }
}
