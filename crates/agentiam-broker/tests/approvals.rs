//! Approvals over loopback: an agent's guard asks for a human, the agent posts the request and
//! waits (long poll), an approver approves or denies, and the guard accepts the broker-signed
//! approval exactly once. Bad input, other agents' requests and replays are refused with their
//! codes and change nothing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "test harness: a panic is a failed test"
)]

mod common;

use std::sync::Arc;

use agentiam_broker::{ApprovalStatus, SqliteStore};
use agentiam_guard::{
    Approval, ApprovalRequest, ApproverKeys, Decision, Guard, PolicyEngine, Principal, Risk,
    Session, ToolCall, ToolInterceptor, ToolSpec,
};
use agentiam_identity::*;
use agentiam_token::*;
use common::*;
use serde_json::{Value, json};

struct Setup {
    r: Running,
    token: String,
    interceptor: ToolInterceptor,
    session: Session,
}

async fn setup() -> Setup {
    let r = start(Arc::new(SqliteStore::in_memory().unwrap())).await;
    let ap = agent("ap");
    r.issuer.register(
        ap.spiffe_id(),
        AgentRegistration::new(ScopeSet::parse("ledger.*:read ledger.*:void").unwrap()),
    );
    let issued = r
        .issuer
        .issue(&TokenRequest::new(
            &ap,
            "ledger",
            ScopeSet::parse("ledger.ar:read ledger.ar:void").unwrap(),
            "task-9",
            "close March",
        ))
        .unwrap();
    // The guard trusts the broker's approver key, fetched as a JWKS.
    let (status, _, keys) = call(&r, "GET", "/approvals/keys", None, "text/plain", "").await;
    assert_eq!(status, 200);
    let jwks = Jwks::from_json(&keys.to_string()).unwrap();
    let approver = jwks.keys()[0].clone();
    assert_eq!(approver.kid(), r.broker.approver_public_key().kid());
    let guard = Guard::builder(PolicyEngine::new(agentiam_guard::DEFAULT_POLICY, None).unwrap())
        .service("ledger")
        .tools([ToolSpec::new("void_invoice", Risk::Irreversible).with_scope("ledger.ar", "void")])
        .approvers(ApproverKeys::new().add("broker", approver).unwrap())
        .build()
        .unwrap();
    let token = Verifier::new(r.issuer.jwks(), ISS, "ledger")
        .verify(&issued.token)
        .unwrap();
    let session = Session::new("s-1", Arc::new(Principal::from_token(&token)));
    Setup {
        r,
        token: issued.token,
        interceptor: ToolInterceptor::new(guard),
        session,
    }
}

fn needs_human(s: &Setup, args: &Value) -> ApprovalRequest {
    match s
        .interceptor
        .before(&s.session, &ToolCall::new("void_invoice", args))
    {
        Decision::NeedsConfirmation(r) => *r,
        other => panic!("expected a confirmation request, got {other:?}"),
    }
}

async fn post(s: &Setup, auth: Option<&str>, body: String) -> (u16, Value) {
    let (status, _, json) = call(&s.r, "POST", "/approvals", auth, "application/json", body).await;
    (status, json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_agent_proceeds_once_a_human_approves() {
    let s = setup().await;
    let args = json!({"invoice": "INV-7"});
    let request = needs_human(&s, &args);
    let body = json!({"request": request, "findings": [{"kind": "taint", "detail": "read vendor.example"}]});
    let (status, posted) = post(&s, Some(&s.token), body.to_string()).await;
    assert_eq!(status, 201, "{posted}");
    let id = posted["id"].as_str().unwrap().to_owned();

    // The agent waits; an approver answers while it does.
    let waiting = {
        let (base, token, id) = (s.r.base.clone(), s.token.clone(), id.clone());
        tokio::spawn(async move {
            let r = Running {
                base,
                ..start(Arc::new(SqliteStore::in_memory().unwrap())).await
            };
            let (status, _, json) = call(
                &r,
                "GET",
                &format!("/approvals/{id}?wait=30"),
                Some(&token),
                "text/plain",
                "",
            )
            .await;
            (status, json)
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (status, _, listed) = call(
        &s.r,
        "GET",
        "/admin/approvals?status=pending",
        Some(ADMIN),
        "text/plain",
        "",
    )
    .await;
    assert_eq!(status, 200);
    let pending = listed["approvals"].as_array().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        pending[0]["requester"]["agent"],
        "spiffe://acme.test/agent/ap"
    );
    assert_eq!(pending[0]["requester"]["model"], "p/m@1");
    assert_eq!(pending[0]["requester"]["purpose"], "close March");
    assert_eq!(pending[0]["findings"][0]["kind"], "taint");

    let (status, settled) = settle(
        &s.r,
        &id,
        "approve",
        json!({"approver": "controller@acme.test"}),
    )
    .await;
    assert_eq!(status, 200, "{settled}");
    let (status, answer) = waiting.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(answer["status"], "approved");
    assert_eq!(answer["settled_by"], "controller@acme.test");
    // A long poll that timed out would answer "pending": "approved" means the answer woke it.

    // The guard accepts the broker's signature once.
    let approval: Approval = serde_json::from_value(answer["approval"].clone()).unwrap();
    let with_approval = |a: &Value| {
        let mut c = ToolCall::new("void_invoice", a);
        c.approval = Some(&approval);
        s.interceptor.before(&s.session, &c)
    };
    assert!(
        matches!(with_approval(&json!({"invoice": "INV-8"})), Decision::Deny(d) if d.code() == "guard.confirmation_invalid")
    );
    assert!(matches!(with_approval(&args), Decision::Allow(_)));
    assert!(
        matches!(with_approval(&args), Decision::Deny(d) if d.code() == "guard.confirmation_invalid")
    );

    // Settling again, either way, is refused and changes nothing.
    for verb in ["approve", "deny"] {
        let (status, json) = settle(&s.r, &id, verb, json!({"approver": "mallory"})).await;
        assert_eq!(
            (status, json["agentiam_code"].as_str()),
            (409, Some("broker.approval_settled"))
        );
    }
    let record = s.r.store.approval(&id).unwrap().unwrap();
    assert_eq!(record.status, ApprovalStatus::Approved);
    assert_eq!(record.settled_by.as_deref(), Some("controller@acme.test"));
}

#[tokio::test]
async fn a_denial_reaches_the_agent_with_its_reason() {
    let s = setup().await;
    let request = needs_human(&s, &json!({"invoice": "INV-9"}));
    let (_, posted) = post(&s, Some(&s.token), json!({"request": request}).to_string()).await;
    let id = posted["id"].as_str().unwrap();
    let (status, _) = settle(
        &s.r,
        id,
        "deny",
        json!({"approver": "controller", "reason": "not on the close list"}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, answer) = call(
        &s.r,
        "GET",
        &format!("/approvals/{id}"),
        Some(&s.token),
        "text/plain",
        "",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(answer["status"], "denied");
    assert_eq!(answer["reason"], "not on the close list");
    assert!(answer.get("approval").is_none());
}

#[tokio::test]
async fn bad_approval_requests_are_refused_and_nothing_is_stored() {
    let s = setup().await;
    let request = needs_human(&s, &json!({"invoice": "INV-7"}));
    let valid = json!({"request": request});
    let mut tampered = valid.clone();
    tampered["request"]["arguments"] = json!({"invoice": "INV-1000"});
    let mut other_chain = valid.clone();
    other_chain["request"]["chain"] = json!(["spiffe://acme.test/agent/boss"]);
    let mut unknown_field = valid.clone();
    unknown_field["approved"] = json!(true);

    let other = agent("other");
    s.r.issuer.register(
        other.spiffe_id(),
        AgentRegistration::new(ScopeSet::parse("ledger.*:read").unwrap()),
    );
    let other_token =
        s.r.issuer
            .issue(&TokenRequest::new(
                &other,
                "ledger",
                ScopeSet::parse("ledger.ar:read").unwrap(),
                "task-9",
                "x",
            ))
            .unwrap()
            .token;
    // The same agent's token, minted two hours ago (expired), and one from a foreign issuer.
    let ap = agent("ap");
    let mint = |issuer: Issuer| {
        issuer.register(
            ap.spiffe_id(),
            AgentRegistration::new(ScopeSet::parse("ledger.*:void").unwrap()),
        );
        issuer
            .issue(&TokenRequest::new(
                &ap,
                "ledger",
                ScopeSet::parse("ledger.ar:void").unwrap(),
                "task-9",
                "x",
            ))
            .unwrap()
            .token
    };
    let expired = mint(
        Issuer::new(
            ISS,
            KeySet::new(SigningKey::ed25519_from_seed(&[3u8; 32]).unwrap()),
        )
        .with_clock(Arc::new(FixedClock::new(SystemClock.now() - 7200))),
    );
    let foreign = mint(Issuer::new(
        ISS,
        KeySet::new(agentiam_test_support::fresh_key()),
    ));
    for (what, auth, body, status, code) in [
        (
            "no token",
            None,
            valid.to_string(),
            401,
            "broker.unauthorized",
        ),
        (
            "an expired token",
            Some(expired.as_str()),
            valid.to_string(),
            401,
            "token.expired",
        ),
        (
            "a foreign issuer's token",
            Some(foreign.as_str()),
            valid.to_string(),
            401,
            "token.unknown_key",
        ),
        (
            "garbage token",
            Some("x.y.z"),
            valid.to_string(),
            401,
            "token.malformed",
        ),
        (
            "arguments changed after the guard hashed them",
            Some(s.token.as_str()),
            tampered.to_string(),
            400,
            "guard.confirmation_invalid",
        ),
        (
            "someone else's chain",
            Some(s.token.as_str()),
            other_chain.to_string(),
            400,
            "guard.confirmation_invalid",
        ),
        (
            "another agent posting this agent's request",
            Some(other_token.as_str()),
            valid.to_string(),
            403,
            "broker.chain_mismatch",
        ),
        (
            "an unknown field",
            Some(s.token.as_str()),
            unknown_field.to_string(),
            400,
            "broker.bad_request",
        ),
        (
            "not JSON",
            Some(s.token.as_str()),
            "{".to_owned(),
            400,
            "broker.bad_request",
        ),
    ] {
        let (got, json) = post(&s, auth, body).await;
        assert_eq!(
            (got, json["agentiam_code"].as_str()),
            (status, Some(code)),
            "{what}: {json}"
        );
    }
    assert!(s.r.store.approvals(None, 10).unwrap().is_empty());
    let (got, json) = post(&s, Some(&s.token), "x".repeat(70_000)).await;
    assert_eq!(
        (got, json["agentiam_code"].as_str()),
        (413, Some("broker.body_too_large"))
    );

    // The valid one, then the same nonce again.
    let (got, first) = post(&s, Some(&s.token), valid.to_string()).await;
    assert_eq!(got, 201);
    let (got, json) = post(&s, Some(&s.token), valid.to_string()).await;
    assert_eq!(
        (got, json["agentiam_code"].as_str()),
        (409, Some("broker.approval_duplicate"))
    );
    assert_eq!(s.r.store.approvals(None, 10).unwrap().len(), 1);

    // Other agents cannot read it; unknown ids are 404; approvers need the administrator.
    let id = first["id"].as_str().unwrap();
    let (got, _, json) = call(
        &s.r,
        "GET",
        &format!("/approvals/{id}"),
        Some(&other_token),
        "text/plain",
        "",
    )
    .await;
    assert_eq!(
        (got, json["agentiam_code"].as_str()),
        (404, Some("broker.not_found"))
    );
    let (got, _, _) = call(
        &s.r,
        "GET",
        "/approvals/nope",
        Some(&s.token),
        "text/plain",
        "",
    )
    .await;
    assert_eq!(got, 404);
    let (got, _, _) = call(
        &s.r,
        "POST",
        &format!("/admin/approvals/{id}/approve"),
        Some(&s.token),
        "application/json",
        json!({"approver": "me"}).to_string(),
    )
    .await;
    assert_eq!(got, 401, "an agent cannot approve its own request");
    let (got, _, json) = call(
        &s.r,
        "POST",
        &format!("/admin/approvals/{id}/approve"),
        Some(ADMIN),
        "application/json",
        "{}",
    )
    .await;
    assert_eq!(
        (got, json["agentiam_code"].as_str()),
        (400, Some("broker.bad_request"))
    );
    assert_eq!(
        s.r.store.approval(id).unwrap().unwrap().status,
        ApprovalStatus::Pending
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_waits_on_the_broker_through_broker_approvals() {
    let s = setup().await;
    let channel = agentiam_broker::BrokerApprovals::new(&s.r.base, &s.token).with_findings(|r| {
        vec![agentiam_broker::ApprovalFinding {
            kind: "note".into(),
            detail: format!("asked by the guard for {}", r.tool),
        }]
    });
    let interceptor = ToolInterceptor::new(
        Guard::builder(PolicyEngine::new(agentiam_guard::DEFAULT_POLICY, None).unwrap())
            .service("ledger")
            .tools([
                ToolSpec::new("void_invoice", Risk::Irreversible).with_scope("ledger.ar", "void")
            ])
            .approvers(
                ApproverKeys::new()
                    .add("broker", s.r.broker.approver_public_key().clone())
                    .unwrap(),
            )
            .build()
            .unwrap(),
    )
    .with_async_approvals(Arc::new(channel));
    // A scripted approver: approves INV-7, denies anything else.
    let approver = {
        let base = s.r.base.clone();
        tokio::spawn(async move {
            let r = Running {
                base,
                ..start(Arc::new(SqliteStore::in_memory().unwrap())).await
            };
            let mut settled = 0;
            while settled < 2 {
                let (_, _, listed) = call(
                    &r,
                    "GET",
                    "/admin/approvals?status=pending",
                    Some(ADMIN),
                    "text/plain",
                    "",
                )
                .await;
                for p in listed["approvals"].as_array().unwrap() {
                    assert_eq!(p["findings"][0]["kind"], "note");
                    let verb = if p["request"]["arguments"]["invoice"] == "INV-7" {
                        "approve"
                    } else {
                        "deny"
                    };
                    let (status, _, _) = call(
                        &r,
                        "POST",
                        &format!("/admin/approvals/{}/{verb}", p["id"].as_str().unwrap()),
                        Some(ADMIN),
                        "application/json",
                        json!({"approver": "script", "reason": "not this one"}).to_string(),
                    )
                    .await;
                    assert_eq!(status, 200);
                    settled += 1;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        })
    };
    let approved = json!({"invoice": "INV-7"});
    let decision = interceptor
        .before_async(&s.session, &ToolCall::new("void_invoice", &approved))
        .await;
    assert!(matches!(decision, Decision::Allow(_)), "{decision:?}");
    let denied = json!({"invoice": "INV-666"});
    match interceptor
        .before_async(&s.session, &ToolCall::new("void_invoice", &denied))
        .await
    {
        Decision::Deny(d) => {
            assert_eq!(d.code(), "guard.confirmation_denied");
            assert!(d.to_string().contains("not this one"), "{d}");
        }
        other => panic!("expected a denial, got {other:?}"),
    }
    approver.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_requests_expire_and_an_agent_cannot_flood_the_approvers() {
    let mut s = setup().await;
    // The same broker with a clock the test moves.
    let clock = Arc::new(FixedClock::new(SystemClock.now()));
    let store = s.r.store.clone();
    let moved = clock.clone();
    let issuer = s.r.issuer.clone();
    s.r = start_with(store.clone(), move |_| {
        agentiam_broker::Broker::builder(issuer, store, "http://broker.test", ADMIN).clock(moved)
    })
    .await;
    let first = needs_human(&s, &json!({"invoice": "INV-0"}));
    // Each request's expiry comes from the wall clock when the guard made it, so on a busy
    // machine later ones expire a second or more after the first: the clock is moved past
    // the last of them.
    let mut expires_at = first.expires_at;
    let (status, posted) = post(&s, Some(&s.token), json!({"request": first}).to_string()).await;
    assert_eq!(status, 201, "{posted}");
    let id = posted["id"].as_str().unwrap().to_owned();
    for n in 1..agentiam_broker::MAX_PENDING_PER_AGENT {
        let request = needs_human(&s, &json!({"invoice": format!("INV-{n}")}));
        expires_at = expires_at.max(request.expires_at);
        let (status, _) = post(&s, Some(&s.token), json!({"request": request}).to_string()).await;
        assert_eq!(status, 201);
    }
    let one_more = needs_human(&s, &json!({"invoice": "INV-99"}));
    let (status, json) = post(&s, Some(&s.token), json!({"request": one_more}).to_string()).await;
    assert_eq!(
        (status, json["agentiam_code"].as_str()),
        (429, Some("broker.too_many_pending"))
    );

    // Past their expiry nobody answered: the agent reads "expired", the record says so, and an
    // approver can no longer answer.
    clock.set(expires_at + 1);
    let (status, _, answer) = call(
        &s.r,
        "GET",
        &format!("/approvals/{id}"),
        Some(&s.token),
        "text/plain",
        "",
    )
    .await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("expired")));
    assert_eq!(
        s.r.store.approval(&id).unwrap().unwrap().status,
        ApprovalStatus::Expired
    );
    let (status, json) = settle(&s.r, &id, "approve", json!({"approver": "late"})).await;
    assert_eq!(
        (status, json["agentiam_code"].as_str()),
        (409, Some("broker.approval_expired"))
    );
    let (_, _, listed) = call(
        &s.r,
        "GET",
        "/admin/approvals?status=pending",
        Some(ADMIN),
        "text/plain",
        "",
    )
    .await;
    assert_eq!(
        listed["approvals"].as_array().unwrap().len(),
        0,
        "all of them expired"
    );
    assert_eq!(
        s.r.store
            .approvals(Some(ApprovalStatus::Expired), 100)
            .unwrap()
            .len(),
        agentiam_broker::MAX_PENDING_PER_AGENT
    );
}
