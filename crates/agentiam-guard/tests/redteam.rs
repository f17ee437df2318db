//! The red-team suite: each test attacks one guarantee the README states, as an attacker would,
//! and fails if the guarantee breaks. `testvectors/redteam.json` holds the attacks that fit as
//! data (pytest runs the same file through the Python package and each framework integration);
//! the tests below it attack what needs several tokens, guards or workers.
//! The README's "Guarantees, scope and limits" section links every test here to its promise.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "test harness: a panic is a failed test"
)]

use std::cell::Cell;
use std::sync::Arc;

use agentiam_guard::*;
use agentiam_identity::{Algorithm, SigningKey};
use agentiam_token::FixedClock;
use serde_json::{Value, json};

fn load(name: &str) -> Value {
    let path = format!("{}/../../testvectors/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn kind(d: &Decision) -> &'static str {
    match d {
        Decision::Allow(_) => "allow",
        Decision::Deny(_) => "deny",
        Decision::NeedsConfirmation(_) => "confirm",
    }
}

/// The deployment of `testvectors/guard.json` with a case's overrides and `human` as the only
/// approver: the guard, and the principal of the token of guard.json's tcId 1.
fn deployment(case: &Value, human: &SigningKey) -> (ToolInterceptor, Arc<Principal>) {
    let guard_doc = load("guard.json");
    let mut config = guard_doc["config"].clone();
    config["approvers"] = json!([{"name": "alice", "jwk": human.public_key().to_jwk()}]);
    if let Some(overrides) = case.get("config").and_then(Value::as_object) {
        for (key, value) in overrides {
            match value {
                Value::Null => {
                    config.as_object_mut().unwrap().remove(key);
                }
                other => config[key.as_str()] = other.clone(),
            }
        }
    }
    let config = GuardConfig::from_json(&config.to_string()).unwrap();
    let clock = Arc::new(FixedClock::new(guard_doc["now"].as_i64().unwrap()));
    let (guard, auth) = config.build(clock).unwrap();
    let token = guard_doc["tests"][0]["calls"][0]["token"].as_str().unwrap();
    let principal = auth
        .authenticate(&Presented {
            token: Some(token),
            method: "POST",
            ..Presented::default()
        })
        .unwrap();
    (ToolInterceptor::new(guard), principal)
}

/// One red-team case: every call but the last allowed, the last as expected; a tool runs exactly
/// when its call is allowed.
fn check_case(case: &Value) -> Result<(), String> {
    let human = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let (tools, principal) = deployment(case, &human);
    let session = Session::new("redteam", principal);
    let calls = case["calls"].as_array().unwrap();
    let mut previous: Option<Approval> = None;
    for (i, call) in calls.iter().enumerate() {
        let tool = call["tool"].as_str().unwrap();
        let arguments = &call["arguments"];
        let approval = match call.get("approval") {
            None => None,
            Some(spec) if spec.get("reuse").is_some() => previous.clone(),
            Some(spec) => {
                let signed_for = spec.get("signed_for").unwrap_or(call);
                let asked = tools.before(
                    &session,
                    &ToolCall::new(
                        signed_for["tool"].as_str().unwrap(),
                        &signed_for["arguments"],
                    ),
                );
                let Decision::NeedsConfirmation(request) = asked else {
                    return Err(format!(
                        "call {i}: the call to approve did not ask for a human: {asked:?}"
                    ));
                };
                Some(Approval::sign(&request, &human).map_err(|e| e.to_string())?)
            }
        };
        let mut tool_call = ToolCall::new(tool, arguments);
        tool_call.approval = approval.as_ref();
        let ran = Cell::new(false);
        let returns = call["returns"].as_str().unwrap_or("ok").to_owned();
        let decision = match tools.guarded(&session, &tool_call, || {
            ran.set(true);
            Ok(returns)
        }) {
            Ok(_) => None,
            Err(decision) => Some(decision),
        };
        let (got_kind, got_code) = match &decision {
            None => ("allow", None),
            Some(d) => (kind(d), d.code()),
        };
        if ran.get() != (got_kind == "allow") {
            return Err(format!(
                "call {i}: the tool ran = {} on {got_kind}",
                ran.get()
            ));
        }
        let last = i + 1 == calls.len();
        let (want_kind, want_code) = if last {
            (case["result"].as_str().unwrap(), case["error"].as_str())
        } else {
            ("allow", None)
        };
        if (got_kind, got_code) != (want_kind, want_code) {
            return Err(format!(
                "call {i} ({tool}): want {want_kind} {want_code:?}, got {got_kind} {got_code:?}: {decision:?}"
            ));
        }
        previous = approval;
    }
    Ok(())
}

#[test]
fn every_redteam_vector_holds_its_promise() {
    let doc = load("redteam.json");
    let tests = doc["tests"].as_array().unwrap();
    assert_eq!(tests.len() as u64, doc["numberOfTests"].as_u64().unwrap());
    assert!(tests.len() >= 60, "the red-team catalogue shrank");
    let failures: Vec<String> = tests
        .iter()
        .filter_map(|t| {
            check_case(t)
                .err()
                .map(|e| format!("tc{} [{}] {}: {e}", t["tcId"], t["promise"], t["comment"]))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_redteam_vector_names_a_stated_promise_and_explained_flags() {
    let doc = load("redteam.json");
    for (i, t) in doc["tests"].as_array().unwrap().iter().enumerate() {
        assert_eq!(t["tcId"].as_u64(), Some(i as u64 + 1), "tcIds run 1..n");
        let promise = t["promise"].as_str().unwrap();
        assert!(
            doc["promises"].get(promise).is_some(),
            "tc{}: promise {promise:?} is not in `promises`",
            t["tcId"]
        );
        for f in t["flags"].as_array().unwrap() {
            assert!(
                doc["notes"].get(f.as_str().unwrap()).is_some(),
                "tc{}: flag {f} has no note",
                t["tcId"]
            );
        }
        match (t["result"].as_str().unwrap(), t["error"].as_str()) {
            ("allow", None) => {}
            ("deny" | "confirm", Some(code)) => assert!(code.contains('.'), "{code}"),
            other => panic!("tc{}: result/error {other:?}", t["tcId"]),
        }
    }
}
