//! Writes `testvectors/delegation.json`: delegated tokens and attacks on delegation chains,
//! each with the code a verifier must return. Read by `cargo test` and by pytest (through the CLI).
//!
//! ```text
//! cargo run -p agentiam-delegation --example gen_delegation_vectors > testvectors/delegation.json
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs,
    reason = "a generator run by developers"
)]

use std::sync::Arc;

use agentiam_delegation::*;
use agentiam_identity::*;
use agentiam_token::*;
use serde_json::{Value, json};

const NOW: i64 = 1_800_000_000;
const ISS: &str = "https://broker.agentiam.test";
const AUD: &str = "ledger-api";

fn agent(name: &str) -> AgentIdentity {
    AgentIdentity::new(
        parse_spiffe_id(&format!("spiffe://acme.test/agent/{name}")).unwrap(),
        ModelRef::new("openai", "gpt-5", "2026-08-01"),
        &AgentConfiguration::new(format!("You are the {name}."), vec![]),
        RuntimeDescriptor::new("process"),
    )
    .unwrap()
}

fn main() {
    println!("{}", serde_json::to_string_pretty(&document()).unwrap());
}

/// The vector document (also built by the crate's `vectors_fresh` test, which checks that the
/// committed file is what this generator writes).
pub(crate) fn document() -> serde_json::Value {
    let clock = Arc::new(FixedClock::new(NOW - 60));
    let broker_key = SigningKey::ed25519_from_seed(&[21u8; 32]).unwrap();
    let issuer = Arc::new(Issuer::new(ISS, KeySet::new(broker_key)).with_clock(clock.clone()));
    let rogue = SigningKey::ed25519_from_seed(&[99u8; 32]).unwrap();
    let (orchestrator, payer, checker, mailer) = (
        agent("orchestrator"),
        agent("payer"),
        agent("checker"),
        agent("mailer"),
    );
    issuer.register(
        orchestrator.spiffe_id(),
        AgentRegistration::new(
            ScopeSet::parse("ledger.*:read payments:approve{amount<=1000,currency=USD}").unwrap(),
        ),
    );
    // The orchestrator's own task token holds no payments scope: its policy forbids paying.
    let root = issuer
        .issue(
            &TokenRequest::new(
                &orchestrator,
                AUD,
                ScopeSet::parse("ledger.*:read").unwrap(),
                "task-7",
                "reconcile",
            )
            .with_ttl(900),
        )
        .unwrap();
    let payer_root = issuer
        .issue(
            &TokenRequest::new(
                &orchestrator,
                AUD,
                ScopeSet::parse("ledger.*:read payments:approve{amount<=1000,currency=USD}")
                    .unwrap(),
                "task-8",
                "pay",
            )
            .with_ttl(900),
        )
        .unwrap();
    let ex = Exchanger::new(issuer.clone())
        .with_clock(clock.clone())
        .with_max_depth(8);
    let child = ex
        .exchange(
            &ExchangeRequest::new(&payer_root.token, &payer, AUD)
                .with_scopes(ScopeSet::parse("payments:approve{amount<=100,currency=USD}").unwrap())
                .with_ttl(600)
                .with_calls(3),
        )
        .unwrap();
    let grand = ex
        .exchange(&ExchangeRequest::new(&child.token, &checker, AUD).with_ttl(300))
        .unwrap();
    let mut deep = grand.clone();
    let mut depth_tokens = vec![];
    for i in 0..3 {
        deep = ex
            .exchange(&ExchangeRequest::new(
                &deep.token,
                &agent(&format!("hop{i}")),
                AUD,
            ))
            .unwrap();
        depth_tokens.push(deep.clone());
    }
    let reader = ex
        .exchange(
            &ExchangeRequest::new(&root.token, &mailer, AUD)
                .with_scopes(ScopeSet::parse("ledger.ar:read").unwrap()),
        )
        .unwrap();

    let who = |a: &AgentIdentity| json!({"spiffe_id": a.spiffe_id().to_string(), "digest": a.composite_digest().to_string()});
    let mut tests: Vec<Value> = Vec::new();
    let mut add = |comment: &str,
                   flags: &[&str],
                   token: &str,
                   presented_by: Value,
                   request: Value,
                   error: Option<&str>| {
        let mut t = json!({
            "tcId": tests.len() + 1, "comment": comment, "flags": flags, "token": token,
            "result": if error.is_some() { "invalid" } else { "valid" },
        });
        if !presented_by.is_null() {
            t["presented_by"] = presented_by;
        }
        if !request.is_null() {
            t["request"] = request;
        }
        if let Some(e) = error {
            t["error"] = e.into();
        }
        tests.push(t);
    };
    let pay = |amount: i64| json!({"resource": "payments", "action": "approve", "args": {"amount": amount, "currency": "USD"}});

    add(
        "A one-hop child presented by its sub-agent",
        &["Valid"],
        &child.token,
        who(&payer),
        pay(90),
        None,
    );
    add(
        "A two-hop grandchild presented by its sub-agent",
        &["Valid"],
        &grand.token,
        who(&checker),
        pay(90),
        None,
    );
    add(
        "The child used above its narrowed limit",
        &["Narrowed"],
        &child.token,
        who(&payer),
        pay(500),
        Some("guard.constraint_violated"),
    );
    add(
        "The child replayed by the orchestrator that delegated it",
        &["WrongHolder"],
        &child.token,
        who(&orchestrator),
        Value::Null,
        Some("token.identity_mismatch"),
    );
    add(
        "The child replayed by another sub-agent",
        &["WrongHolder"],
        &child.token,
        who(&mailer),
        Value::Null,
        Some("token.identity_mismatch"),
    );
    add(
        "Confused deputy: a sub-agent of an orchestrator that may not pay asks to pay",
        &["ConfusedDeputy"],
        &reader.token,
        who(&mailer),
        pay(1),
        Some("guard.scope_missing"),
    );

    let sign = |c: &Claims| issuer.sign(c).unwrap();
    let mut widened = child.claims.clone();
    widened.scope = ScopeSet::parse("payments:approve{amount<=5000,currency=USD}").unwrap();
    add(
        "A child whose scope is wider than its parent's",
        &["Widened"],
        &sign(&widened),
        Value::Null,
        Value::Null,
        Some("delegation.scope_widened"),
    );
    let mut deputy = reader.claims.clone();
    deputy.scope =
        ScopeSet::parse("ledger.ar:read payments:approve{amount<=10,currency=USD}").unwrap();
    add(
        "Confused deputy: the sub-agent's token claims a scope its orchestrator never held",
        &["ConfusedDeputy", "Widened"],
        &sign(&deputy),
        Value::Null,
        Value::Null,
        Some("delegation.scope_widened"),
    );
    let mut longer = child.claims.clone();
    longer.exp = payer_root.claims.exp + 60;
    add(
        "A child that outlives its parent",
        &["Extended"],
        &sign(&longer),
        Value::Null,
        Value::Null,
        Some("delegation.expiry_extended"),
    );
    let mut budget = grand.claims.clone();
    budget.budget = Some(Budget { calls: Some(30) });
    add(
        "A grandchild with a larger call budget than its parent",
        &["Budget"],
        &sign(&budget),
        Value::Null,
        Value::Null,
        Some("delegation.budget_widened"),
    );
    let mut swapped = grand.claims.clone();
    swapped.dlg.swap(0, 1);
    add(
        "The chain's links swapped",
        &["Swapped"],
        &sign(&swapped),
        Value::Null,
        Value::Null,
        Some("delegation.scope_widened"),
    );
    let mut dropped = grand.claims.clone();
    dropped.dlg.remove(1);
    add(
        "A link removed from the chain",
        &["BrokenChain"],
        &sign(&dropped),
        Value::Null,
        Value::Null,
        Some("delegation.broken_chain"),
    );
    let mut header = serde_json::Map::new();
    header.insert("typ".into(), "at+jwt".into());
    header.insert("kid".into(), issuer.jwks().keys()[0].kid().into());
    let resigned = sign_compact(
        &rogue,
        &header,
        serde_json::to_string(&child.claims).unwrap().as_bytes(),
    )
    .unwrap();
    add(
        "A link re-signed by an untrusted key under the broker's kid",
        &["WrongKey"],
        &resigned,
        Value::Null,
        Value::Null,
        Some("token.bad_signature"),
    );
    add(
        "Depth 4: allowed",
        &["Valid", "Depth"],
        &depth_tokens[1].token,
        Value::Null,
        Value::Null,
        None,
    );
    add(
        "Depth 5: one hop beyond the cap",
        &["Depth"],
        &depth_tokens[2].token,
        Value::Null,
        Value::Null,
        Some("delegation.depth_exceeded"),
    );
    add(
        "A grandchild whose ancestor token was revoked",
        &["RevokedAncestor"],
        &grand.token,
        Value::Null,
        Value::Null,
        Some("delegation.revoked_ancestor"),
    );
    if let Some(last) = tests.last_mut() {
        last["revoked_jtis"] = json!([child.claims.jti.clone().unwrap()]);
    }

    let doc = json!({
        "algorithm": "agentiam delegated token verification",
        "generator": "cargo run -p agentiam-delegation --example gen_delegation_vectors > testvectors/delegation.json",
        "numberOfTests": tests.len(),
        "notes": {
            "Valid": "A chain that narrows at every hop, presented by its outermost actor.",
            "Narrowed": "The delegated constraint, not the parent's, limits the sub-agent.",
            "WrongHolder": "A delegated token binds to its outermost actor (act.sub) and composite digest.",
            "ConfusedDeputy": "A sub-agent cannot obtain or use a right its delegating orchestrator did not hold.",
            "Widened": "A token (even one the broker signed) whose scopes exceed an ancestor's in its chain.",
            "Extended": "A token that outlives an ancestor.",
            "Budget": "A call budget larger than an ancestor's.",
            "Swapped": "Chain records out of order, so a later hop holds more than an earlier one.",
            "BrokenChain": "Chain records and act nesting disagree.",
            "WrongKey": "A token in the chain re-signed with an untrusted key.",
            "Depth": "At most 4 ancestors by default.",
            "RevokedAncestor": "Revoking any ancestor token revokes every descendant (the test lists the revoked jtis)."
        },
        "verifier": {
            "issuer": ISS,
            "audience": AUD,
            "now": NOW,
            "max_depth": 4,
            "jwks": serde_json::from_str::<Value>(&issuer.jwks().to_json()).unwrap()
        },
        "tests": tests,
    });
    doc
}
