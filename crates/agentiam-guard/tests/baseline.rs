//! Learned behaviour baselines through the guard: the seed's examples (a support agent reading
//! HR records, or reading in bulk, is stopped while its token is still valid), explanations,
//! revocation of a credential and its descendants mid-task, anomalies in the activity log and
//! OpenTelemetry, persistence, freezing and resetting, configuration, and property tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_precision_loss,
    missing_docs,
    reason = "test harness: a panic is a failed test"
)]

use std::sync::Arc;

use agentiam_delegation::{ExchangeRequest, Exchanger};
use agentiam_guard::behaviour::*;
use agentiam_guard::*;
#[allow(unused_imports, reason = "each test file uses some of them")]
use agentiam_guard::{approval::*, arguments::*, audit::*, config::*, hooks::*, policy::*};
use agentiam_identity::*;
use agentiam_token::*;
use proptest::prelude::*;
use serde_json::{Value, json};

/// Monday 2026-01-05 09:00 UTC.
const MONDAY_9AM: i64 = 1_767_571_200 + 9 * 3600;
const ISS: &str = "https://broker.test";
const AUD: &str = "https://api.test";
const SUPPORT: &str = "spiffe://acme.test/agent/support";
const SCOPES: &str = "support.tickets:read support.tickets:write kb.articles:read hr.records:read billing.refunds:create";

use agentiam_test_support::agent;

fn tools() -> Vec<ToolSpec> {
    vec![
        ToolSpec::new("tickets.read", Risk::Low).with_scope("support.tickets", "read"),
        ToolSpec::new("tickets.reply", Risk::Medium).with_scope("support.tickets", "write"),
        ToolSpec::new("kb.search", Risk::Low).with_scope("kb.articles", "read"),
        ToolSpec::new("hr.records.read", Risk::Medium).with_scope("hr.records", "read"),
        ToolSpec::new("refunds.issue", Risk::High).with_scope("billing.refunds", "create"),
    ]
}

fn roles() -> RoleMap {
    RoleMap::new()
        .role("support", SUPPORT)
        .role("research", "spiffe://acme.test/agent/research")
}

fn settings() -> BaselineSettings {
    BaselineSettings {
        min_observations: 200,
        ..BaselineSettings::default()
    }
}

struct World {
    clock: Arc<FixedClock>,
    issuer: Arc<Issuer>,
    revoked: Arc<InMemoryRevocationSet>,
    baselines: Baselines,
    guard: Guard,
}

fn world(settings: BaselineSettings) -> World {
    let clock = Arc::new(FixedClock::new(MONDAY_9AM));
    let issuer = Arc::new(
        Issuer::new(
            ISS,
            KeySet::new(SigningKey::ed25519_from_seed(&[7u8; 32]).unwrap()),
        )
        .with_clock(clock.clone())
        .with_lifetimes(3600, 30 * 86_400),
    );
    let revoked = Arc::new(InMemoryRevocationSet::new());
    let baselines = Baselines::new(roles(), settings).with_clock(clock.clone());
    let guard = Guard::builder(PolicyEngine::default_policy().unwrap())
        .clock(clock.clone())
        .tools(tools())
        .baselines(baselines.clone())
        .revocation(revoked.clone())
        .build()
        .unwrap();
    World {
        clock,
        issuer,
        revoked,
        baselines,
        guard,
    }
}

impl World {
    fn verifier(&self) -> Verifier {
        Verifier::new(self.issuer.jwks(), ISS, AUD)
            .with_clock(self.clock.clone())
            .with_revocation(self.revoked.clone())
    }

    /// A token for the support agent `support/<n>`, valid for 30 days.
    fn support_token(&self, n: u32) -> IssuedToken {
        let a = agent(&format!("support/{n}"));
        let scopes = ScopeSet::parse(SCOPES).unwrap();
        self.issuer
            .register(a.spiffe_id(), AgentRegistration::new(scopes.clone()));
        self.issuer
            .issue(
                &TokenRequest::new(&a, AUD, scopes, "tickets", "answer tickets")
                    .with_ttl(30 * 86_400),
            )
            .unwrap()
    }

    fn principal(&self, token: &str) -> Principal {
        Principal::from_token(&self.verifier().verify(token).unwrap())
    }

    fn decide(&self, p: &Principal, tool: &str, args: &Value) -> Decision {
        self.guard.decide(&GuardRequest::new(p, tool, args))
    }

    /// Two weeks of ordinary support work by three agents: ticket sessions of a few calls a
    /// few minutes apart, during the day, with refunds of tens of dollars now and then.
    fn learn_ordinary_work(&self, principals: &[Principal]) {
        let mut i = 0u64;
        for day in 0..14 {
            for session in 0..12 {
                for (n, p) in principals.iter().enumerate() {
                    let start = MONDAY_9AM + day * 86_400 + session * 1800 + n as i64 * 300;
                    self.clock.set(start);
                    for (k, tool) in ["tickets.read", "kb.search", "tickets.read", "tickets.reply"]
                        .iter()
                        .enumerate()
                    {
                        self.clock.set(start + k as i64 * 40);
                        let d = self.decide(p, tool, &json!({"id": i}));
                        assert!(d.is_allowed(), "{tool}: {d:?}");
                        i += 1;
                    }
                    if (i / 4).is_multiple_of(5) {
                        let amount = 10.0 + (i % 90) as f64;
                        let d = self.decide(p, "refunds.issue", &json!({"amount": amount}));
                        assert!(d.is_allowed(), "{d:?}");
                    }
                }
            }
        }
        // Back to a working hour on the next Monday.
        self.clock.set(MONDAY_9AM + 14 * 86_400 + 3600);
    }
}

fn anomaly_code(d: &Decision) -> bool {
    d.code() == Some("guard.anomaly")
}

fn findings(d: &Decision) -> String {
    d.anomaly()
        .map(|a| a.findings.join(" | "))
        .unwrap_or_default()
}

#[test]
fn a_support_agent_reading_hr_records_is_stopped_while_its_token_is_valid() {
    let w = world(settings());
    let tokens: Vec<IssuedToken> = (1..=3).map(|n| w.support_token(n)).collect();
    let principals: Vec<Principal> = tokens.iter().map(|t| w.principal(&t.token)).collect();
    w.learn_ordinary_work(&principals);
    let profile = w.baselines.profile("support").unwrap();
    assert!(profile.observations > 1000, "{}", profile.observations);

    // The token still verifies and covers hr.records:read; its behaviour does not.
    let p = w.principal(&tokens[0].token);
    let d = w.decide(&p, "hr.records.read", &json!({"employee": 12}));
    assert!(anomaly_code(&d), "{d:?}");
    assert!(
        matches!(d, Decision::Deny(_)),
        "a new resource category is refused: {d:?}"
    );
    let why = findings(&d);
    assert!(
        why.contains("first access to resource category hr") && why.contains("role support"),
        "{why}"
    );
    assert!(d.anomaly().unwrap().score >= 90);
    assert!(w.verifier().verify(&tokens[0].token).is_ok());

    // Ordinary work by another agent of the role goes on.
    let other = w.principal(&tokens[1].token);
    assert!(
        w.decide(&other, "tickets.read", &json!({"id": 1}))
            .is_allowed()
    );
}

#[test]
fn a_support_agent_reading_in_bulk_is_escalated() {
    let w = world(settings());
    let tokens: Vec<IssuedToken> = (1..=3).map(|n| w.support_token(n)).collect();
    let principals: Vec<Principal> = tokens.iter().map(|t| w.principal(&t.token)).collect();
    w.learn_ordinary_work(&principals);
    let p = &principals[2];
    let start = w.clock.now();
    let mut flagged = None;
    for k in 0..300 {
        w.clock.set(start + k * 3);
        let d = w.decide(p, "tickets.read", &json!({"id": k}));
        if anomaly_code(&d) {
            flagged = Some((k, d));
            break;
        }
    }
    let (k, d) = flagged.expect("bulk reading was never flagged");
    assert!(k < 60, "flagged only after {k} calls");
    assert!(
        findings(&d).contains("calls in the last"),
        "{}",
        findings(&d)
    );
    // Flagged calls wait for a human (or are refused); they do not run unasked.
    assert!(!d.is_allowed());
}

#[test]
fn a_payment_far_outside_the_usual_amounts_is_explained() {
    let w = world(settings());
    let tokens: Vec<IssuedToken> = (1..=3).map(|n| w.support_token(n)).collect();
    let principals: Vec<Principal> = tokens.iter().map(|t| w.principal(&t.token)).collect();
    w.learn_ordinary_work(&principals);
    let usual = w.decide(&principals[0], "refunds.issue", &json!({"amount": 60}));
    assert!(usual.is_allowed(), "{usual:?}");
    let d = w.decide(
        &principals[0],
        "refunds.issue",
        &json!({"amount": 2_000_000}),
    );
    assert!(anomaly_code(&d), "{d:?}");
    let why = findings(&d);
    assert!(why.contains("amount 2,000,000 vs p99"), "{why}");
}

#[test]
fn a_sub_agent_doing_what_it_never_does_for_its_parent_is_flagged() {
    let w = world(settings());
    let parent = w.support_token(1);
    let exchanger = Exchanger::new(w.issuer.clone()).with_clock(w.clock.clone());
    let researcher = agent("research/1");
    let child = exchanger
        .exchange(
            &ExchangeRequest::new(&parent.token, &researcher, AUD)
                .with_scopes(ScopeSet::parse("kb.articles:read hr.records:read").unwrap()),
        )
        .unwrap();
    let sub = w.principal(&child.token);
    assert_eq!(sub.delegation_depth(), 1);
    for k in 0..120 {
        w.clock.set(MONDAY_9AM + k * 600);
        assert!(w.decide(&sub, "kb.search", &json!({"q": k})).is_allowed());
    }
    let d = w.decide(&sub, "hr.records.read", &json!({"employee": 1}));
    assert!(anomaly_code(&d), "{d:?}");
    assert!(
        findings(&d).contains("working for support"),
        "{}",
        findings(&d)
    );
}

#[test]
fn revoking_mid_task_stops_the_token_and_everything_delegated_from_it() {
    let w = world(BaselineSettings {
        revoke_at: Some(90),
        ..settings()
    });
    let tokens: Vec<IssuedToken> = (1..=3).map(|n| w.support_token(n)).collect();
    let principals: Vec<Principal> = tokens.iter().map(|t| w.principal(&t.token)).collect();
    w.learn_ordinary_work(&principals);
    // The agent hands part of its task to a sub-agent before it goes astray.
    let exchanger = Exchanger::new(w.issuer.clone()).with_clock(w.clock.clone());
    let child = exchanger
        .exchange(
            &ExchangeRequest::new(&tokens[0].token, &agent("research/1"), AUD)
                .with_scopes(ScopeSet::parse("kb.articles:read").unwrap()),
        )
        .unwrap();
    let sub = w.principal(&child.token);
    assert!(w.decide(&sub, "kb.search", &json!({})).is_allowed());

    let d = w.decide(&principals[0], "hr.records.read", &json!({"employee": 3}));
    let Decision::Deny(denial) = &d else {
        panic!("{d:?}")
    };
    assert_eq!(denial.code(), "guard.anomaly");
    assert!(denial.message().contains("revoked"), "{}", denial.message());
    // The same credential, already verified, is refused from now on, and so is its sub-agent's.
    assert_eq!(
        w.decide(&principals[0], "tickets.read", &json!({})).code(),
        Some("token.revoked")
    );
    assert_eq!(
        w.decide(&sub, "kb.search", &json!({})).code(),
        Some("token.revoked")
    );
    // Verifiers sharing the revocation set refuse both tokens; other agents carry on.
    assert_eq!(
        w.verifier().verify(&tokens[0].token).unwrap_err().code(),
        "token.revoked"
    );
    assert!(w.verifier().verify(&child.token).is_err());
    assert!(w.verifier().verify(&tokens[1].token).is_ok());
    assert!(
        w.decide(&principals[1], "tickets.read", &json!({}))
            .is_allowed()
    );
}

#[derive(Debug)]
struct Odd(u8);
impl BehaviourCheck for Odd {
    fn assess(&self, _r: &GuardRequest<'_>, _t: &ToolSpec) -> Assessment {
        Assessment {
            anomaly_score: self.0,
            findings: vec!["an odd call".into()],
            ..Assessment::default()
        }
    }
}

#[test]
fn every_anomaly_is_an_audit_event_and_a_span_event_whatever_the_action() {
    use opentelemetry::trace::TracerProvider as _;
    let exporter = opentelemetry_sdk::trace::InMemorySpanExporter::default();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let spans = Arc::new(
        agentiam_telemetry::otel::SpanQueue::new(provider.tracer("baseline-test"), 64).unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(
        agentiam_telemetry::AuditLog::open_dir(
            dir.path(),
            agentiam_telemetry::LogConfig::new("t"),
            None,
        )
        .unwrap(),
    );
    let sink = Arc::new(AuditSink::with_spans(
        log.clone(),
        spans,
        agentiam_telemetry::RedactionPolicy::default(),
        "v1",
        64,
    ));
    let p = Principal::from_workload(
        &agentiam_guard::VerifiedPeer::verified_elsewhere(SUPPORT, i64::MAX).unwrap(),
        ScopeSet::parse(SCOPES).unwrap(),
    );
    for (score, allowed) in [(40u8, true), (70, false), (0, true)] {
        let guard = Guard::builder(PolicyEngine::default_policy().unwrap())
            .tools(tools())
            .behaviour(Arc::new(Odd(score)))
            .sink(sink.clone())
            .build()
            .unwrap();
        let d = guard.decide(&GuardRequest::new(&p, "kb.search", &json!({})));
        assert_eq!(d.is_allowed(), allowed, "{score}: {d:?}");
    }
    sink.drain().unwrap();
    log.flush().unwrap();
    let report = agentiam_telemetry::verify_log(
        &agentiam_telemetry::FileStore::open(dir.path()).unwrap(),
        None,
    )
    .unwrap();
    assert_eq!(report.records, 3);
    let text: String = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    let events: Vec<agentiam_telemetry::AuditEvent> = text
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            serde_json::from_value(v.get("event").cloned().unwrap_or(v)).unwrap()
        })
        .collect();
    let anomalies: Vec<Option<u8>> = events
        .iter()
        .map(|e| e.anomaly.as_ref().map(|a| a.score))
        .collect();
    // Allowed and recorded at 40, escalated at 60+ (`guard.anomaly`); an Odd(0) still found something.
    assert_eq!(anomalies, [Some(40), Some(70), Some(0)]);
    assert_eq!(events[1].decision.code.as_deref(), Some("guard.anomaly"));
    assert_eq!(
        events[0].anomaly.as_ref().unwrap().findings,
        ["an odd call"]
    );
    let finished = exporter.get_finished_spans().unwrap();
    let with_event = finished
        .iter()
        .filter(|s| s.events.iter().any(|e| e.name == "agentiam.anomaly"))
        .count();
    assert_eq!(with_event, 3);
    let risk = finished[1]
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == "gen_ai.guardrail.security.risk.score")
        .map(|kv| kv.value.to_string());
    assert_eq!(risk.as_deref(), Some("0.7"));
}

#[test]
fn baselines_persist_and_can_be_frozen_reset_and_shown() {
    let w = world(settings());
    let tokens: Vec<IssuedToken> = (1..=3).map(|n| w.support_token(n)).collect();
    let principals: Vec<Principal> = tokens.iter().map(|t| w.principal(&t.token)).collect();
    w.learn_ordinary_work(&principals);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("baselines.json");
    w.baselines.save(&file).unwrap();
    let copy = Baselines::new(roles(), settings());
    copy.load(&file).unwrap();
    let (a, b) = (
        w.baselines.profile("support").unwrap(),
        copy.profile("support").unwrap(),
    );
    assert_eq!(a, b);
    assert!(b.tools.contains_key("tickets.read"), "{b:?}");
    assert!(
        b.arguments
            .get("refunds.issue")
            .is_some_and(|a| a.contains_key("amount")),
        "{b:?}"
    );

    // Frozen: nothing is learned.
    assert!(w.baselines.freeze("support", true));
    let before = w.baselines.profile("support").unwrap();
    assert!(
        w.decide(&principals[0], "kb.search", &json!({}))
            .is_allowed()
    );
    assert_eq!(w.baselines.profile("support").unwrap(), before);
    assert!(w.baselines.freeze("support", false));
    assert!(
        w.decide(&principals[0], "kb.search", &json!({}))
            .is_allowed()
    );
    assert_eq!(
        w.baselines.profile("support").unwrap().observations,
        before.observations + 1
    );
    // Reset: back to learning from scratch, and nothing scores until it is established again.
    assert!(w.baselines.reset("support"));
    assert_eq!(w.baselines.profile("support").unwrap().observations, 0);
    assert!(
        w.decide(&principals[0], "hr.records.read", &json!({}))
            .is_allowed()
    );
    assert!(!w.baselines.reset("nobody"));

    // A damaged or foreign file is refused, not half-loaded.
    std::fs::write(&file, b"{\"format\":\"other\",\"profiles\":{}}").unwrap();
    assert!(copy.load(&file).unwrap_err().contains("format"));
    std::fs::write(
        &file,
        b"{\"format\":\"agentiam.baselines.v1\",\"profiles\":{\"x\":{\"rates\":[]}}}",
    )
    .unwrap();
    assert!(copy.load(&file).is_err());
    assert_eq!(copy.profile("support").unwrap(), b);
}

#[test]
fn declared_baselines_in_configuration_hold_from_the_first_call() {
    let jwks = KeySet::new(SigningKey::ed25519_from_seed(&[7u8; 32]).unwrap()).jwks(MONDAY_9AM);
    let config: GuardConfig = serde_json::from_value(json!({
        "issuer": ISS,
        "audience": AUD,
        "jwks": serde_json::from_str::<Value>(&jwks.to_json()).unwrap(),
        "tools": [
            {"name": "tickets.read", "risk": "low", "scope": "support.tickets:read"},
            {"name": "hr.records.read", "risk": "medium", "scope": "hr.records:read"},
            {"name": "refunds.issue", "risk": "high", "scope": "billing.refunds:create"}
        ],
        "baselines": {
            "roles": {"support": [SUPPORT]},
            "declared": {"support": {
                "tools": ["tickets.read", "refunds.issue"],
                "arguments": {"refunds.issue.amount": 500}
            }}
        }
    }))
    .unwrap();
    let (guard, _) = config.build(Arc::new(FixedClock::new(MONDAY_9AM))).unwrap();
    assert!(guard.baselines().is_some());
    let p = Principal::from_workload(
        &agentiam_guard::VerifiedPeer::verified_elsewhere(&format!("{SUPPORT}/7"), i64::MAX)
            .unwrap(),
        ScopeSet::parse(SCOPES).unwrap(),
    );
    let decide = |tool: &str, args: Value| guard.decide(&GuardRequest::new(&p, tool, &args));
    assert!(decide("tickets.read", json!({})).is_allowed());
    assert!(decide("refunds.issue", json!({"amount": 40})).is_allowed());
    let big = decide("refunds.issue", json!({"amount": 5000}));
    assert!(anomaly_code(&big), "{big:?}");
    assert!(
        findings(&big).contains("above the 500 declared"),
        "{}",
        findings(&big)
    );
    let hr = decide("hr.records.read", json!({}));
    assert!(
        anomaly_code(&hr) && matches!(hr, Decision::Deny(_)),
        "{hr:?}"
    );

    // Bad settings are refused when the guard is built.
    let mut bad = config.clone();
    bad.baselines.as_mut().unwrap().revoke_at = Some(50);
    assert!(bad.build(Arc::new(FixedClock::new(0))).is_err());
    let mut bad = config;
    bad.baselines.as_mut().unwrap().roles =
        [("x".to_owned(), vec!["not-a-spiffe-id".to_owned()])].into();
    assert!(bad.build(Arc::new(FixedClock::new(0))).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Quantiles are ordered, and every recorded value is at most the maximum.
    #[test]
    fn histogram_quantiles_are_ordered(values in prop::collection::vec(0.0f64..1e9, 1..400)) {
        let mut h = LogHistogram::default();
        for v in &values {
            h.record(*v);
        }
        prop_assert!(h.p50() <= h.p99() && h.p99() <= h.max());
        let top = values.iter().cloned().fold(0.0, f64::max);
        prop_assert!(top <= h.max() * 1.000_001, "{top} > {}", h.max());
        prop_assert_eq!(h.count(), values.len() as u64);
    }

    /// A refused call is never learned, and a frozen profile never changes.
    #[test]
    fn nothing_refused_or_frozen_is_learned(calls in prop::collection::vec((0usize..5, 0i64..5000, 0u32..3), 1..60)) {
        let clock = Arc::new(FixedClock::new(MONDAY_9AM));
        let baselines = Baselines::new(roles(), settings()).with_clock(clock.clone());
        let deny_all = Guard::builder(PolicyEngine::new("forbid (principal, action, resource);", None).unwrap())
            .clock(clock.clone())
            .tools(tools())
            .baselines(baselines.clone())
            .build()
            .unwrap();
        let p = Principal::from_workload(&agentiam_guard::VerifiedPeer::verified_elsewhere(SUPPORT, i64::MAX).unwrap(), ScopeSet::parse(SCOPES).unwrap());
        let names = ["tickets.read", "tickets.reply", "kb.search", "hr.records.read", "refunds.issue"];
        for (tool, dt, _) in &calls {
            clock.advance(*dt);
            let d = deny_all.decide(&GuardRequest::new(&p, names[*tool], &json!({"amount": dt})));
            prop_assert!(!d.is_allowed());
        }
        prop_assert!(baselines.profile("support").is_none());

        let allow_all = Guard::builder(PolicyEngine::default_policy().unwrap())
            .clock(clock.clone())
            .tools(tools())
            .baselines(baselines.clone())
            .build()
            .unwrap();
        baselines.declare("support", DeclaredProfile::default());
        prop_assert!(baselines.freeze("support", true));
        let before = baselines.profile("support");
        for (tool, dt, _) in &calls {
            clock.advance(*dt);
            let _ = allow_all.decide(&GuardRequest::new(&p, names[*tool], &json!({"amount": dt})));
        }
        prop_assert_eq!(baselines.profile("support"), before);
    }
}
