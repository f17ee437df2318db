//! OCSF-shaped SIEM export: class and type ids, status, actor, api, time, metadata, and one
//! parseable JSON line per event.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "test harness: a panic is a failed test"
)]

use std::io::{self, Write};

use agentiam_telemetry::ocsf::*;
use agentiam_telemetry::{AgentRef, AuditEvent, Decision, Outcome, RedactionPolicy};
use serde_json::{Value, json};

const AGENT: &str = "spiffe://acme.test/agent/payments";
const T0: i64 = 1_800_000_000_123;

fn tool_event(decision: Decision) -> AuditEvent {
    let mut e = AuditEvent::new(
        "tool_call",
        AgentRef {
            spiffe_id: AGENT.into(),
            composite_digest: Some("sha256:abcd".into()),
        },
        T0,
        decision,
    );
    e.tool = Some(
        RedactionPolicy::default()
            .tool_call(
                "transfer_funds",
                Some("call_01"),
                &json!({"to": "acct-9", "amount": 250, "password": "hunter2"}),
            )
            .unwrap(),
    );
    e.on_behalf_of = Some("user:alice@acme.test".into());
    e.delegation_chain = vec!["spiffe://acme.test/agent/planner".into()];
    e.task_id = Some("task-42".into());
    e.token_jti = Some("jti-7f3a".into());
    e.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
    e.span_id = Some("00f067aa0ba902b7".into());
    e.input = Some(RedactionPolicy::default().content("wire 250 to acct-9"));
    e.data_accessed = vec!["ledger:acct-9".into()];
    e.duration_us = Some(2_500);
    e
}

fn assert_metadata(v: &Value, e: &AuditEvent) {
    assert_eq!(v["metadata"]["version"], "1.1.0");
    assert_eq!(v["metadata"]["uid"], e.event_id.as_str());
    assert_eq!(v["metadata"]["product"]["name"], "agentiam");
    assert_eq!(v["metadata"]["product"]["vendor_name"], "agentiam");
    assert_eq!(
        v["metadata"]["product"]["version"],
        env!("CARGO_PKG_VERSION")
    );
}

#[test]
fn an_allowed_tool_call_is_a_successful_api_activity() {
    let mut decision = Decision::allow();
    decision.policy_id = Some("payments-v2".into());
    decision.policy_version = Some("7".into());
    let e = tool_event(decision);
    let v = to_ocsf(&e);

    assert_eq!(v["class_uid"], 6003);
    assert_eq!(v["class_name"], "API Activity");
    assert_eq!(v["category_uid"], 6);
    assert_eq!(v["activity_id"], 99);
    assert_eq!(v["activity_name"], "tool_call");
    assert_eq!(v["type_uid"], 600_399);
    assert_eq!(v["type_name"], "API Activity: tool_call");
    assert_eq!(v["status_id"], 1);
    assert_eq!(v["status"], "Success");
    assert!(v.get("status_code").is_none());
    assert_eq!(v["severity_id"], 1);
    assert_eq!(v["time"], T0);
    assert_eq!(v["duration"], 2);
    assert_eq!(v["message"], "tool_call transfer_funds: allow");
    assert_eq!(v["actor"], json!({"user": {"uid": AGENT}}));
    assert!(v.get("user").is_none());
    assert_eq!(
        v["api"],
        json!({"operation": "transfer_funds", "request": {"uid": "call_01"}})
    );
    assert_eq!(v["resources"], json!([{"uid": "ledger:acct-9"}]));
    assert_metadata(&v, &e);
    assert_eq!(
        v["metadata"]["correlation_uid"],
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );

    let u = &v["unmapped"];
    assert_eq!(u["kind"], "tool_call");
    assert_eq!(u["decision"], "allow");
    assert!(u.get("reason_code").is_none());
    assert_eq!(u["policy_id"], "payments-v2");
    assert_eq!(u["policy_version"], "7");
    assert_eq!(
        u["args_sha256"],
        e.tool.as_ref().unwrap().args_sha256.as_str()
    );
    assert_eq!(u["composite_digest"], "sha256:abcd");
    assert_eq!(u["on_behalf_of"], "user:alice@acme.test");
    assert_eq!(
        u["delegation_chain"],
        json!(["spiffe://acme.test/agent/planner"])
    );
    assert_eq!(u["task_id"], "task-42");
    assert_eq!(u["token_jti"], "jti-7f3a");
    assert_eq!(u["span_id"], "00f067aa0ba902b7");
    assert_eq!(u["input_sha256"], e.input.as_ref().unwrap().sha256.as_str());
    assert_eq!(u["duration_us"], 2_500);
    assert_eq!(u["schema"], 1);

    // Arguments and input content never reach the SIEM, not even redacted.
    let text = v.to_string();
    for secret in ["hunter2", "\"acct-9\"", "wire 250", "[REDACTED]", "amount"] {
        assert!(!text.contains(secret), "{secret} exported");
    }
}

#[test]
fn a_denied_tool_call_is_a_failed_api_activity_with_its_code() {
    let e = tool_event(Decision::deny("guard.scope_missing"));
    let v = to_ocsf(&e);
    assert_eq!(v["class_uid"], 6003);
    assert_eq!(v["type_uid"], 600_399);
    assert_eq!(v["status_id"], 2);
    assert_eq!(v["status"], "Failure");
    assert_eq!(v["status_code"], "guard.scope_missing");
    assert_eq!(v["severity_id"], 3);
    assert_eq!(v["severity"], "Medium");
    assert_eq!(v["time"], T0);
    assert_eq!(v["actor"]["user"]["uid"], AGENT);
    assert_eq!(v["api"]["operation"], "transfer_funds");
    assert_eq!(
        v["api"]["response"],
        json!({"error": "guard.scope_missing"})
    );
    assert_eq!(
        v["message"],
        "tool_call transfer_funds: deny (guard.scope_missing)"
    );
    assert_eq!(v["unmapped"]["reason_code"], "guard.scope_missing");
    assert_eq!(v["unmapped"]["decision"], "deny");
    assert_metadata(&v, &e);
}

#[test]
fn token_issuance_and_denial_are_authentication_events() {
    let agent = AgentRef {
        spiffe_id: AGENT.into(),
        composite_digest: None,
    };
    let issued = AuditEvent::new("token_issued", agent.clone(), T0, Decision::allow());
    let v = to_ocsf(&issued);
    assert_eq!(v["class_uid"], 3002);
    assert_eq!(v["class_name"], "Authentication");
    assert_eq!(v["category_uid"], 3);
    assert_eq!(v["activity_id"], 4);
    assert_eq!(v["activity_name"], "Service Ticket Request");
    assert_eq!(v["type_uid"], 300_204);
    assert_eq!(v["status_id"], 1);
    assert_eq!(v["user"], json!({"uid": AGENT}));
    assert_eq!(v["actor"], json!({"user": {"uid": AGENT}}));
    assert_eq!(v["api"], json!({"operation": "token_issued"}));
    assert_eq!(v["message"], "token_issued: allow");
    assert!(v["unmapped"].get("args_sha256").is_none());
    assert!(v.get("resources").is_none());
    assert!(v.get("duration").is_none());
    assert!(v["metadata"].get("correlation_uid").is_none());

    let denied = AuditEvent::new(
        "token_denied",
        agent.clone(),
        T0,
        Decision::deny("token.scope_not_delegable"),
    );
    let v = to_ocsf(&denied);
    assert_eq!(
        (v["class_uid"].clone(), v["type_uid"].clone()),
        (json!(3002), json!(300_204))
    );
    assert_eq!(v["status_id"], 2);
    assert_eq!(v["status"], "Failure");
    assert_eq!(v["status_code"], "token.scope_not_delegable");

    let revoked = AuditEvent::new("token_revoked", agent, T0, Decision::allow());
    let v = to_ocsf(&revoked);
    assert_eq!(v["activity_id"], 99);
    assert_eq!(v["type_uid"], 300_299);
}

#[test]
fn escalate_and_record_have_their_own_status() {
    let agent = AgentRef {
        spiffe_id: AGENT.into(),
        composite_digest: None,
    };
    let mut d = Decision::allow();
    d.outcome = Outcome::Escalate;
    d.code = Some("guard.approval_required".into());
    let v = to_ocsf(&AuditEvent::new("http_request", agent.clone(), T0, d));
    assert_eq!(
        (v["status_id"].clone(), v["status"].clone()),
        (json!(99), json!("Escalated"))
    );
    assert_eq!(v["severity_id"], 2);
    assert!(v["api"].get("response").is_none());

    let mut d = Decision::allow();
    d.outcome = Outcome::Record;
    let v = to_ocsf(&AuditEvent::new("agent_invocation", agent, T0, d));
    assert_eq!(v["class_uid"], 6003);
    assert_eq!(v["activity_name"], "agent_invocation");
    assert_eq!(
        (v["status_id"].clone(), v["status"].clone()),
        (json!(0), json!("Unknown"))
    );
    assert_eq!(v["severity_id"], 1);
}

#[test]
fn the_sink_writes_one_parseable_line_per_event() {
    let events = [
        tool_event(Decision::allow()),
        tool_event(Decision::deny("guard.scope_missing")),
        AuditEvent::new(
            "token_issued",
            AgentRef {
                spiffe_id: AGENT.into(),
                composite_digest: None,
            },
            T0,
            Decision::allow(),
        ),
    ];
    let mut sink = OcsfSink::new(Vec::new());
    for e in &events {
        sink.write(e).unwrap();
    }
    sink.flush().unwrap();
    assert_eq!(sink.written(), 3);
    let bytes = sink.into_inner();
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.ends_with('\n'));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), events.len());
    for (line, e) in lines.iter().zip(&events) {
        assert!(!line.is_empty());
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v, to_ocsf(e));
        assert_eq!(v["metadata"]["uid"], e.event_id.as_str());
    }
}

/// A writer that fails, and counts flushes.
struct Failing {
    flushes: usize,
}

impl Write for Failing {
    fn write(&mut self, _buf: &[u8]) -> io::Result<usize> {
        Err(io::Error::other("disk full"))
    }
    fn flush(&mut self) -> io::Result<()> {
        self.flushes += 1;
        Ok(())
    }
}

#[test]
fn the_sink_reports_write_errors_and_flushes_its_writer() {
    let mut sink = OcsfSink::new(Failing { flushes: 0 });
    let err = sink.write(&tool_event(Decision::allow())).unwrap_err();
    assert_eq!(err.code(), "audit.io");
    assert_eq!(sink.written(), 0);
    sink.flush().unwrap();
    assert_eq!(sink.get_ref().flushes, 1);
}
