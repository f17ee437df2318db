//! The behaviour baselines' evaluation: a seeded trace generator for three roles, replayed
//! through a real guard (default policy + `Baselines`), with attacks injected at known times.
//!
//! ```text
//! cargo run --release -p agentiam-guard --example behaviour_eval -- [--seed N] [--weeks N] [--attacks N]
//! ```
//!
//! Normal activity: support (6 agents, 06-22 UTC every day, lighter at weekends), finance
//! reconciliation (3 agents, weekdays 08-18) and an HR assistant (2 agents, weekdays 09-17),
//! each working in sessions of several tool calls with random gaps, plus sub-agents
//! (`research` for support and HR, `matcher` for finance), numeric arguments drawn from
//! log-normal distributions, output sizes per tool, and 2% of sessions at a random hour.
//! The first `weeks - 2` weeks are learning only; the last two carry the attacks.
//!
//! Attacks, each on an agent whose credentials stay valid: a new resource category, bulk
//! export (by rate or by a page-size argument), a slow ramp over a week, a payment far outside
//! the usual amounts, an off-hours burst, and a sub-agent doing what it never does for that
//! parent.
//!
//! "Flagged" means the guard asked a human (`guard.anomaly` confirmation) or refused
//! (`guard.anomaly`): a score of 60 or more. A false alarm is a normal call flagged; normal
//! calls of an attacked agent in the hour after its attack are left out of that count (the
//! attack's own rate lingers in the agent's counters), and reported separately.

#![allow(
    clippy::print_stdout,
    clippy::cast_precision_loss,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "an evaluation program: a panic is a failed run"
)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use agentiam_delegation::Grant;
use agentiam_guard::hooks::{CallOutcome, OutputVerdict};
use agentiam_guard::{
    BaselineSettings, Baselines, BehaviourCheck, Decision, Guard, GuardRequest, PolicyEngine,
    Principal, Risk, RoleMap, ToolSpec,
};
use agentiam_token::{FixedClock, ScopeSet};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

/// Monday 2026-01-05 00:00 UTC.
const START: i64 = 1_767_571_200;
const DAY: i64 = 86_400;
const WEEK: i64 = 7 * DAY;

struct Tool {
    name: &'static str,
    scope: &'static str,
    risk: Risk,
    /// Median output bytes.
    bytes: f64,
}

const TOOLS: &[Tool] = &[
    tool("tickets.search", "support.tickets:read", Risk::Low, 1500.0),
    tool("tickets.read", "support.tickets:read", Risk::Low, 4000.0),
    tool(
        "tickets.reply",
        "support.tickets:write",
        Risk::Medium,
        200.0,
    ),
    tool("kb.search", "kb.articles:read", Risk::Low, 2500.0),
    tool("web.search", "web.pages:read", Risk::Low, 6000.0),
    tool("customers.lookup", "crm.customers:read", Risk::Low, 1200.0),
    tool(
        "customers.update",
        "crm.customers:write",
        Risk::Medium,
        200.0,
    ),
    tool("refunds.issue", "billing.refunds:create", Risk::High, 150.0),
    tool("ledger.read", "finance.ledger:read", Risk::Medium, 0.0),
    tool("bank.statements", "finance.bank:read", Risk::Medium, 8000.0),
    tool(
        "invoices.match",
        "finance.invoices:write",
        Risk::Medium,
        300.0,
    ),
    tool(
        "payments.create",
        "payments.transfers:create",
        Risk::High,
        200.0,
    ),
    tool(
        "reports.export",
        "finance.reports:write",
        Risk::Medium,
        20000.0,
    ),
    tool("hr.policies.search", "hr.policies:read", Risk::Low, 3000.0),
    tool("hr.records.read", "hr.records:read", Risk::Medium, 3500.0),
    tool("leave.update", "hr.leave:write", Risk::Medium, 200.0),
    tool("email.send", "mail.outbound:send", Risk::High, 100.0),
];

const fn tool(name: &'static str, scope: &'static str, risk: Risk, bytes: f64) -> Tool {
    Tool {
        name,
        scope,
        risk,
        bytes,
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Kind {
    NewCategory,
    BulkExport,
    SlowRamp,
    PaymentOutlier,
    OffHoursBurst,
    SubAgent,
}

const KINDS: [Kind; 6] = [
    Kind::NewCategory,
    Kind::BulkExport,
    Kind::SlowRamp,
    Kind::PaymentOutlier,
    Kind::OffHoursBurst,
    Kind::SubAgent,
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::NewCategory => "new resource category",
            Self::BulkExport => "bulk export",
            Self::SlowRamp => "slow ramp (over a week)",
            Self::PaymentOutlier => "payment far outside usual amounts",
            Self::OffHoursBurst => "off-hours burst",
            Self::SubAgent => "sub-agent doing what it never does for its parent",
        }
    }
}

/// One call in the trace.
struct Call {
    at: i64,
    agent: String,
    parent: Option<String>,
    tool: &'static str,
    args: Value,
    bytes: usize,
    /// Index of the attack this call belongs to.
    attack: Option<usize>,
}

struct Attack {
    kind: Kind,
    start: i64,
    agent: String,
    detected_at: Option<i64>,
    calls_before_detection: usize,
    example: Option<String>,
}

fn lognormal(rng: &mut ChaCha8Rng, median: f64, sigma: f64) -> f64 {
    // Box-Muller.
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random();
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    median * (sigma * z).exp()
}

fn output_bytes(rng: &mut ChaCha8Rng, tool: &str, args: &Value) -> usize {
    let t = TOOLS
        .iter()
        .find(|t| t.name == tool)
        .map_or(500.0, |t| t.bytes);
    let median = if tool == "ledger.read" {
        args["limit"].as_f64().unwrap_or(100.0) * 180.0
    } else {
        t
    };
    lognormal(rng, median.max(50.0), 0.5) as usize
}

/// How busy a role is at this moment, relative to its peak (0 = closed).
fn activity(role: &str, at: i64) -> f64 {
    let slot = agentiam_guard::behaviour::hour_of_week(at);
    let (day, hour) = (slot / 24, (slot % 24) as i64);
    let weekend = day >= 5;
    let (open, close, weekend_factor) = match role {
        "support" => (6, 22, 0.4),
        "finance" => (8, 18, 0.0),
        _ => (9, 17, 0.0),
    };
    if hour < open || hour >= close {
        return 0.0;
    }
    let mid = (open + close) as f64 / 2.0;
    let span = (close - open) as f64 / 2.0;
    let shape = 1.0 - 0.6 * ((hour as f64 + 0.5 - mid) / span).powi(2);
    shape * if weekend { weekend_factor } else { 1.0 }
}

struct Gen {
    rng: ChaCha8Rng,
    calls: Vec<Call>,
}

impl Gen {
    fn push(
        &mut self,
        at: i64,
        agent: &str,
        parent: Option<&str>,
        tool: &'static str,
        args: Value,
    ) {
        let bytes = output_bytes(&mut self.rng, tool, &args);
        self.calls.push(Call {
            at,
            agent: agent.to_owned(),
            parent: parent.map(str::to_owned),
            tool,
            args,
            bytes,
            attack: None,
        });
    }

    fn gap(&mut self) -> i64 {
        self.rng.random_range(5..90)
    }

    /// One working session of `role`'s agent starting at `t`.
    fn session(&mut self, role: &str, agent: &str, mut t: i64) {
        let n = self.rng.random_range(1..=4);
        let sub = format!(
            "spiffe://example.org/agent/{}/{}",
            if role == "finance" {
                "matcher"
            } else {
                "research"
            },
            self.rng.random_range(1..=4)
        );
        let delegate = self.rng.random::<f64>() < 0.2;
        match role {
            "support" => {
                self.push(
                    t,
                    agent,
                    None,
                    "tickets.search",
                    json!({"query": "order", "limit": 20}),
                );
                for _ in 0..n {
                    t += self.gap();
                    self.push(t, agent, None, "tickets.read", json!({"id": 1}));
                }
                if self.rng.random::<f64>() < 0.6 {
                    t += self.gap();
                    self.push(
                        t,
                        agent,
                        None,
                        "kb.search",
                        json!({"query": "refund policy"}),
                    );
                }
                if delegate {
                    for _ in 0..self.rng.random_range(1..=4) {
                        t += self.gap();
                        let tool = if self.rng.random::<f64>() < 0.7 {
                            "kb.search"
                        } else {
                            "web.search"
                        };
                        self.push(t, &sub, Some(agent), tool, json!({"query": "error code"}));
                    }
                }
                if self.rng.random::<f64>() < 0.5 {
                    t += self.gap();
                    self.push(t, agent, None, "customers.lookup", json!({"email": "x"}));
                }
                if self.rng.random::<f64>() < 0.03 {
                    t += self.gap();
                    self.push(
                        t,
                        agent,
                        None,
                        "customers.update",
                        json!({"field": "address"}),
                    );
                }
                t += self.gap();
                self.push(
                    t,
                    agent,
                    None,
                    "tickets.reply",
                    json!({"id": 1, "text": "..."}),
                );
                if self.rng.random::<f64>() < 0.1 {
                    t += self.gap();
                    let amount = (lognormal(&mut self.rng, 30.0, 0.8) * 100.0).round() / 100.0;
                    self.push(t, agent, None, "refunds.issue", json!({"amount": amount}));
                }
            }
            "finance" => {
                let limit = self.rng.random_range(100..=500);
                self.push(t, agent, None, "ledger.read", json!({"limit": limit}));
                t += self.gap();
                let days = self.rng.random_range(1..=7);
                self.push(t, agent, None, "bank.statements", json!({ "days": days }));
                for _ in 0..self.rng.random_range(2..=8) {
                    t += self.gap();
                    let who = if delegate { sub.as_str() } else { agent };
                    let parent = delegate.then_some(agent);
                    self.push(t, who, parent, "invoices.match", json!({"batch": 1}));
                }
                if self.rng.random::<f64>() < 0.3 {
                    t += self.gap();
                    let amount = (lognormal(&mut self.rng, 2500.0, 1.0) * 100.0).round() / 100.0;
                    self.push(
                        t,
                        agent,
                        None,
                        "payments.create",
                        json!({"amount": amount, "to": "V-1"}),
                    );
                }
                if self.rng.random::<f64>() < 0.1 {
                    t += self.gap();
                    let rows = self.rng.random_range(100..2000);
                    self.push(t, agent, None, "reports.export", json!({ "rows": rows }));
                }
            }
            _ => {
                self.push(
                    t,
                    agent,
                    None,
                    "hr.policies.search",
                    json!({"query": "leave"}),
                );
                if delegate {
                    for _ in 0..self.rng.random_range(1..=3) {
                        t += self.gap();
                        let tool = if self.rng.random::<f64>() < 0.6 {
                            "hr.policies.search"
                        } else {
                            "kb.search"
                        };
                        self.push(t, &sub, Some(agent), tool, json!({"query": "benefits"}));
                    }
                }
                for _ in 0..self.rng.random_range(1..=3) {
                    t += self.gap();
                    self.push(t, agent, None, "hr.records.read", json!({"employee": 7}));
                }
                if self.rng.random::<f64>() < 0.3 {
                    t += self.gap();
                    let days = self.rng.random_range(1..=10);
                    self.push(t, agent, None, "leave.update", json!({ "days": days }));
                }
                if self.rng.random::<f64>() < 0.4 {
                    t += self.gap();
                    self.push(t, agent, None, "email.send", json!({"to": "employee"}));
                }
            }
        }
    }
}

fn agents(role: &str) -> Vec<String> {
    let n = match role {
        "support" => 6,
        "finance" => 3,
        _ => 2,
    };
    (1..=n)
        .map(|i| format!("spiffe://example.org/agent/{role}/{i}"))
        .collect()
}

/// Sessions per agent per hour at peak.
fn peak_sessions(role: &str) -> f64 {
    match role {
        "support" => 3.0,
        "finance" => 1.5,
        _ => 1.0,
    }
}

fn normal_traffic(g: &mut Gen, weeks: i64) {
    for role in ["support", "finance", "hr"] {
        for agent in agents(role) {
            let mut t = START;
            while t < START + weeks * WEEK {
                // Thinned Poisson process at the peak rate, one-minute steps.
                t += 60;
                let a = activity(role, t);
                let stray = 0.02 * peak_sessions(role) * 0.3 / 24.0;
                let p = (a * peak_sessions(role) + stray) / 60.0;
                if g.rng.random::<f64>() < p {
                    let start = t + g.rng.random_range(0..60);
                    g.session(role, &agent, start);
                }
            }
        }
    }
}

fn business_time(g: &mut Gen, role: &str, from: i64, to: i64) -> i64 {
    loop {
        let t = g.rng.random_range(from..to);
        if activity(role, t) > 0.7 {
            return t;
        }
    }
}

fn inject(g: &mut Gen, attacks: &mut Vec<Attack>, kind: Kind, from: i64, to: i64) {
    let idx = attacks.len();
    let before = g.calls.len();
    let role = ["support", "finance", "hr"][g.rng.random_range(0..3)];
    let agent = agents(role)[0].clone();
    let start;
    match kind {
        Kind::NewCategory => {
            start = business_time(g, role, from, to);
            let (tool, args) = match role {
                "support" => ("hr.records.read", json!({"employee": 12})),
                "finance" => ("hr.records.read", json!({"employee": 3})),
                _ => ("payments.create", json!({"amount": 900, "to": "V-9"})),
            };
            for i in 0..g.rng.random_range(1..=5) {
                g.push(start + i * 20, &agent, None, tool, args.clone());
            }
        }
        Kind::BulkExport => {
            start = business_time(g, role, from, to);
            let by_argument = g.rng.random::<bool>();
            let (tool, args) = match (role, by_argument) {
                ("support", false) => ("tickets.read", json!({"id": 2})),
                ("support", true) => ("tickets.search", json!({"query": "*", "limit": 50_000})),
                ("finance", false) => ("bank.statements", json!({"days": 3})),
                ("finance", true) => ("ledger.read", json!({"limit": 100_000})),
                (_, false) => ("hr.records.read", json!({"employee": 1})),
                (_, true) => ("leave.update", json!({"days": 3650})),
            };
            let n = if by_argument {
                3
            } else {
                g.rng.random_range(100..300)
            };
            let mut t = start;
            for _ in 0..n {
                g.push(t, &agent, None, tool, args.clone());
                t += g.rng.random_range(2..8);
            }
        }
        Kind::SlowRamp => {
            // Extra reads growing 1.5x a day for a week, at business hours.
            start = from;
            let tool = match role {
                "support" => "tickets.read",
                "finance" => "bank.statements",
                _ => "hr.records.read",
            };
            let mut per_hour = 2.0;
            for day in 0..7 {
                for hour in 0..24 {
                    let h0 = start + day * DAY + hour * 3600;
                    if activity(role, h0) <= 0.0 {
                        continue;
                    }
                    for _ in 0..per_hour as i64 {
                        let t = h0 + g.rng.random_range(0..3600);
                        g.push(t, &agent, None, tool, json!({"id": 3}));
                    }
                }
                per_hour *= 1.5;
            }
        }
        Kind::PaymentOutlier => {
            start = business_time(g, role, from, to);
            let (tool, arg, median): (&str, &str, f64) = match role {
                "support" => ("refunds.issue", "amount", 30.0),
                "finance" => ("payments.create", "amount", 2500.0),
                _ => ("leave.update", "days", 5.0),
            };
            let factor: f64 = g.rng.random_range(50.0..1000.0);
            let value = (median * factor).round();
            g.push(
                start,
                &agent,
                None,
                tool,
                json!({ arg: value, "to": "V-77" }),
            );
        }
        Kind::OffHoursBurst => {
            // 01:00-04:00 UTC on a random day: every role is closed.
            let day = g.rng.random_range(0..(to - from) / DAY);
            start = from + day * DAY + 3600 + g.rng.random_range(0..3 * 3600);
            let tool = match role {
                "support" => "tickets.read",
                "finance" => "ledger.read",
                _ => "hr.records.read",
            };
            let mut t = start;
            for _ in 0..g.rng.random_range(20..60) {
                g.push(t, &agent, None, tool, json!({"id": 4, "limit": 200}));
                t += g.rng.random_range(5..30);
            }
        }
        Kind::SubAgent => {
            start = business_time(g, role, from, to);
            let (sub, tool) = match role {
                "support" => (
                    "spiffe://example.org/agent/research/2",
                    "hr.policies.search",
                ),
                "finance" => ("spiffe://example.org/agent/matcher/2", "bank.statements"),
                _ => ("spiffe://example.org/agent/research/3", "web.search"),
            };
            for i in 0..g.rng.random_range(1..=3) {
                g.push(
                    start + i * 30,
                    sub,
                    Some(&agent),
                    tool,
                    json!({"query": "x", "days": 2}),
                );
            }
        }
    }
    for call in &mut g.calls[before..] {
        call.attack = Some(idx);
    }
    attacks.push(Attack {
        kind,
        start,
        agent: g.calls[before].agent.clone(),
        detected_at: None,
        calls_before_detection: 0,
        example: None,
    });
}

fn arg_value(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Every agent family's role, by SPIFFE ID prefix.
fn roles() -> RoleMap {
    ["support", "finance", "hr", "research", "matcher"]
        .into_iter()
        .fold(RoleMap::new(), |map, role| {
            map.role(role, format!("spiffe://example.org/agent/{role}"))
        })
}

fn scopes() -> ScopeSet {
    let all: Vec<&str> = TOOLS.iter().map(|t| t.scope).collect();
    ScopeSet::parse(&all.join(" ")).expect("scopes")
}

fn principal(call: &Call, scopes: &ScopeSet, exp: i64) -> Principal {
    match &call.parent {
        None => Principal::from_workload(
            &agentiam_guard::VerifiedPeer::verified_elsewhere(&call.agent, exp)
                .expect("a SPIFFE ID"),
            scopes.clone(),
        ),
        Some(parent) => Principal::from_grant(&Grant {
            scopes: scopes.clone(),
            exp,
            budget: None,
            principal: parent.clone(),
            holder: Some(call.agent.clone()),
            depth: 1,
            task: None,
            holder_jkt: "jkt".into(),
            budgets: Vec::new(),
            root_exp: exp,
            intent: None,
        }),
    }
}

fn guard(clock: &Arc<FixedClock>, baselines: Option<&Baselines>) -> Guard {
    let mut builder =
        Guard::builder(PolicyEngine::default_policy().expect("policy")).clock(clock.clone());
    for t in TOOLS {
        let (resource, action) = t.scope.split_once(':').expect("scope");
        builder = builder.tool(ToolSpec::new(t.name, t.risk).with_scope(resource, action));
    }
    if let Some(b) = baselines {
        builder = builder.baselines(b.clone());
    }
    builder.build().expect("guard")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seed = arg_value(&args, "--seed", 7);
    let weeks = arg_value(&args, "--weeks", 6).max(3) as i64;
    let per_kind = arg_value(&args, "--attacks", 12) as usize;
    let mut g = Gen {
        rng: ChaCha8Rng::seed_from_u64(seed),
        calls: Vec::new(),
    };
    normal_traffic(&mut g, weeks);
    let eval_from = START + (weeks - 2) * WEEK;
    let eval_to = START + weeks * WEEK - WEEK; // ramps need a week to run
    let mut attacks = Vec::new();
    for kind in KINDS {
        for _ in 0..per_kind {
            inject(&mut g, &mut attacks, kind, eval_from, eval_to);
        }
    }
    let mut calls = std::mem::take(&mut g.calls);
    calls.sort_by_key(|c| c.at);

    let clock = Arc::new(FixedClock::new(START));
    let baselines = Baselines::new(roles(), BaselineSettings::default()).with_clock(clock.clone());
    let with = guard(&clock, Some(&baselines));
    let scopes = scopes();
    let exp = START + 100 * WEEK;
    let principals: Vec<Principal> = calls.iter().map(|c| principal(c, &scopes, exp)).collect();
    let filler = "x".repeat(1 << 22);

    let (mut normal_eval, mut false_alarms, mut after_attack, mut after_attack_flagged) =
        (0usize, 0usize, 0usize, 0usize);
    let mut false_examples: Vec<String> = Vec::new();
    let mut last_attack_on: BTreeMap<String, i64> = BTreeMap::new();
    let mut decide_ns = 0u128;
    for (call, principal) in calls.iter().zip(&principals) {
        clock.set(call.at);
        let request = GuardRequest::new(principal, call.tool, &call.args);
        let t0 = Instant::now();
        let decision = with.decide(&request);
        decide_ns += t0.elapsed().as_nanos();
        let flagged = matches!(&decision, Decision::Deny(d) if d.code() == "guard.anomaly")
            || matches!(&decision, Decision::NeedsConfirmation(r) if r.code == "guard.anomaly");
        if decision.is_allowed() {
            with.record_outcome(&CallOutcome {
                principal,
                tool: call.tool,
                call_id: None,
                session_id: None,
                output: &filler[..call.bytes.min(filler.len())],
                failed: false,
                verdict: &OutputVerdict::Clean,
            });
        }
        match call.attack {
            Some(i) => {
                let attack = &mut attacks[i];
                last_attack_on.insert(call.agent.clone(), call.at);
                if attack.detected_at.is_none() {
                    if flagged {
                        attack.detected_at = Some(call.at);
                        attack.example =
                            decision.anomaly().and_then(|a| a.findings.first().cloned());
                    } else {
                        attack.calls_before_detection += 1;
                    }
                }
            }
            None if call.at >= eval_from => {
                let lingering = last_attack_on
                    .get(&call.agent)
                    .is_some_and(|t| call.at - t < 3600);
                if lingering {
                    after_attack += 1;
                    after_attack_flagged += usize::from(flagged);
                    continue;
                }
                normal_eval += 1;
                if flagged {
                    false_alarms += 1;
                    if false_examples.len() < 5 {
                        false_examples.push(format!(
                            "{} {}: {}",
                            call.agent,
                            call.tool,
                            decision
                                .anomaly()
                                .map(|a| a.findings.join("; "))
                                .unwrap_or_default()
                        ));
                    }
                }
            }
            None => {}
        }
    }

    // Per-decision cost: the same trace through a guard without baselines, and the baselines alone.
    let clock2 = Arc::new(FixedClock::new(START));
    let without = guard(&clock2, None);
    let t0 = Instant::now();
    for (call, principal) in calls.iter().zip(&principals) {
        clock2.set(call.at);
        let _ = without.decide(&GuardRequest::new(principal, call.tool, &call.args));
    }
    let plain_ns = t0.elapsed().as_nanos();
    let clock3 = Arc::new(FixedClock::new(START));
    let alone = Baselines::new(roles(), BaselineSettings::default()).with_clock(clock3.clone());
    let specs: BTreeMap<&str, ToolSpec> = TOOLS
        .iter()
        .map(|t| {
            let (r, a) = t.scope.split_once(':').expect("scope");
            (t.name, ToolSpec::new(t.name, t.risk).with_scope(r, a))
        })
        .collect();
    let allow = Decision::Allow(agentiam_guard::Allowance::default());
    let t0 = Instant::now();
    for (call, principal) in calls.iter().zip(&principals) {
        clock3.set(call.at);
        let request = GuardRequest::new(principal, call.tool, &call.args);
        let spec = &specs[call.tool];
        let a = alone.assess(&request, spec);
        let decision = if a.anomaly_score >= 60 {
            &Decision::deny_placeholder()
        } else {
            &allow
        };
        alone.observe(&request, Some(spec), decision);
    }
    let alone_ns = t0.elapsed().as_nanos();

    let n = calls.len() as f64;
    println!(
        "# Behaviour baselines: evaluation (seed {seed}, {weeks} weeks, {} calls)\n",
        calls.len()
    );
    println!(
        "Learning: weeks 1-{}; attacks and false alarms: the last two weeks.\n",
        weeks - 2
    );
    println!(
        "| attack | injected | flagged | rate | median time to detection | median calls before |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let (mut total, mut caught) = (0, 0);
    for kind in KINDS {
        let mine: Vec<&Attack> = attacks.iter().filter(|a| a.kind == kind).collect();
        let hit: Vec<&&Attack> = mine.iter().filter(|a| a.detected_at.is_some()).collect();
        let mut ttd: Vec<i64> = hit
            .iter()
            .map(|a| a.detected_at.unwrap_or(0) - a.start)
            .collect();
        ttd.sort_unstable();
        let mut before: Vec<usize> = hit.iter().map(|a| a.calls_before_detection).collect();
        before.sort_unstable();
        total += mine.len();
        caught += hit.len();
        println!(
            "| {} | {} | {} | {:.0}% | {} | {} |",
            kind.name(),
            mine.len(),
            hit.len(),
            100.0 * hit.len() as f64 / mine.len().max(1) as f64,
            ttd.get(ttd.len() / 2)
                .map_or("-".into(), |s| human_duration(*s)),
            before
                .get(before.len() / 2)
                .map_or("-".into(), ToString::to_string),
        );
    }
    println!(
        "| **all** | {total} | {caught} | **{:.1}%** | | |\n",
        100.0 * caught as f64 / total.max(1) as f64
    );
    println!(
        "False alarms: {false_alarms} of {normal_eval} normal decisions in the last two weeks = **{:.2} per 1,000**.",
        1000.0 * false_alarms as f64 / normal_eval.max(1) as f64
    );
    println!(
        "Normal calls by an attacked agent within an hour after its attack (not counted above): {after_attack}, of which {after_attack_flagged} flagged.\n"
    );
    println!(
        "Per decision: guard with baselines {:.0} ns, guard without {:.0} ns, baselines alone (assess + observe) **{:.0} ns**.\n",
        decide_ns as f64 / n,
        plain_ns as f64 / n,
        alone_ns as f64 / n
    );
    println!("Missed attacks:");
    for a in attacks.iter().filter(|a| a.detected_at.is_none()) {
        println!("- {} on {} at {}", a.kind.name(), a.agent, a.start);
    }
    println!("\nOne explanation per attack type:");
    for kind in KINDS {
        if let Some(e) = attacks
            .iter()
            .find(|a| a.kind == kind)
            .and_then(|a| a.example.as_ref())
        {
            println!("- {}: {e}", kind.name());
        }
    }
    if !false_examples.is_empty() {
        println!("\nFalse alarms (first {}):", false_examples.len());
        for e in &false_examples {
            println!("- {e}");
        }
    }
}

trait Placeholder {
    fn deny_placeholder() -> Decision;
}
impl Placeholder for Decision {
    fn deny_placeholder() -> Decision {
        Decision::Deny(agentiam_guard::Denial::new("guard.anomaly", "flagged"))
    }
}

fn human_duration(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 2 * DAY => format!("{:.1} h", s as f64 / 3600.0),
        s => format!("{:.1} days", s as f64 / DAY as f64),
    }
}
