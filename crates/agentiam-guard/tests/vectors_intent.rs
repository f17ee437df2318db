//! `testvectors/intent.json` through the Rust interceptor: intent-bound task tokens, outbound
//! channels and third-party fields, each case a session, what it read, and one call.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test harness: a panic is a failed test"
)]

use std::sync::Arc;

use agentiam_delegation::{ExchangeRequest, Exchanger};
use agentiam_guard::*;
use agentiam_test_support::agent;
use agentiam_token::{AgentRegistration, ScopeSet, TokenRequest, Verifier};
use serde_json::Value;

const NOW: i64 = 1_800_000_000;
const ISS: &str = "https://broker.vectors.test";
const AUD: &str = "https://api.vectors.test";

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn tool(spec: &Value) -> ToolSpec {
    let risk = Risk::parse(spec["risk"].as_str().unwrap()).unwrap();
    let (resource, action) = spec["scope"].as_str().unwrap().split_once(':').unwrap();
    let mut t = ToolSpec::new(spec["name"].as_str().unwrap(), risk).with_scope(resource, action);
    if spec["untrusted_output"].as_bool() == Some(true) {
        t = t.with_untrusted_output();
    }
    if spec.get("intent_arguments").is_some() {
        t = t.with_intent_arguments(strings(&spec["intent_arguments"]));
    }
    if spec.get("outbound_arguments").is_some() {
        t = t.with_outbound_arguments(strings(&spec["outbound_arguments"]));
    }
    if spec.get("untrusted_fields").is_some() {
        t = t.with_untrusted_fields(strings(&spec["untrusted_fields"]));
    }
    t
}

#[test]
fn every_intent_vector_gets_its_decision() {
    let doc: Value =
        serde_json::from_str(include_str!("../../../testvectors/intent.json")).unwrap();
    let tests = doc["tests"].as_array().unwrap();
    assert_eq!(tests.len() as u64, doc["numberOfTests"].as_u64().unwrap());
    let clock = agentiam_test_support::clock(NOW);
    let issuer = Arc::new(agentiam_test_support::issuer(ISS, &clock));
    let assistant = agent("assistant");
    let registration = ScopeSet::parse(doc["registration"].as_str().unwrap()).unwrap();
    issuer.register(
        assistant.spiffe_id(),
        AgentRegistration::new(registration.clone()),
    );
    let verifier = Verifier::new(issuer.jwks(), ISS, AUD).with_clock(clock.clone());
    let tools: Vec<ToolSpec> = doc["tools"].as_array().unwrap().iter().map(tool).collect();
    let mut failures = Vec::new();
    for case in tests {
        let id = case["tcId"].as_u64().unwrap();
        // A fresh guard and state per case: taint never leaks from one case into the next.
        let interceptor = ToolInterceptor::new(
            Guard::builder(PolicyEngine::default_policy().unwrap())
                .service(AUD)
                .clock(clock.clone())
                .outbound_hosts(strings(&doc["outbound_hosts"]))
                .tools(tools.clone())
                .build()
                .unwrap(),
        );
        let session = |token: &str| {
            Session::new(
                format!("case-{id}"),
                Arc::new(Principal::from_token(&verifier.verify(token).unwrap())),
            )
        };
        let read = |s: &Session| {
            for r in case["reads"].as_array().unwrap() {
                let call = ToolCall::new(r[0].as_str().unwrap(), &r[1]);
                assert!(
                    interceptor.before(s, &call).is_allowed(),
                    "case {id}: the read"
                );
                interceptor.after(s, &call, r[2].as_str().unwrap(), false);
            }
        };
        let scopes = ScopeSet::parse(case["scopes"].as_str().unwrap()).unwrap();
        let task = format!("task-{id}");
        let issue = |scopes: ScopeSet, intent: bool| {
            let mut request = TokenRequest::new(&assistant, AUD, scopes, task.as_str(), "vectors");
            request.declare_intent = intent;
            issuer.issue(&request).unwrap().token
        };
        let s = match case["token"].as_str().unwrap() {
            "late" => {
                let broad = issue(registration.clone(), false);
                read(&session(&broad));
                let narrowed = Exchanger::new(issuer.clone())
                    .with_clock(clock.clone())
                    .exchange(
                        &ExchangeRequest::new(&broad, &assistant, AUD)
                            .with_scopes(scopes)
                            .declaring_intent(),
                    )
                    .unwrap();
                session(&narrowed.token)
            }
            kind => {
                let s = session(&issue(scopes, kind == "intent"));
                read(&s);
                s
            }
        };
        let d = interceptor.before(
            &s,
            &ToolCall::new(case["call"][0].as_str().unwrap(), &case["call"][1]),
        );
        let result = match d {
            Decision::Allow(_) => "allow",
            Decision::Deny(_) => "deny",
            Decision::NeedsConfirmation(_) => "confirm",
        };
        if (result, d.code()) != (case["result"].as_str().unwrap(), case["code"].as_str()) {
            failures.push(format!("case {id} ({}): {d:?}", case["comment"]));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
