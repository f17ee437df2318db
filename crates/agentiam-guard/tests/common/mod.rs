//! The world the multi-token tests share: an issuer on a pinned clock, a human approver, tokens
//! and delegated tokens, and guards for one service on a given shared state.
#![allow(
    clippy::unwrap_used,
    dead_code,
    unreachable_pub,
    reason = "test harness: each test file uses part of it; a panic is a failed test"
)]

use std::sync::Arc;

use agentiam_delegation::{ExchangeRequest, Exchanger};
use agentiam_guard::*;
use agentiam_identity::{
    AgentConfiguration, AgentIdentity, Algorithm, KeySet, ModelRef, RuntimeDescriptor, SigningKey,
    parse_spiffe_id,
};
use agentiam_state::SharedState;
use agentiam_token::{AgentRegistration, FixedClock, Issuer, ScopeSet, TokenRequest, Verifier};
use serde_json::json;

pub const NOW: i64 = 1_800_000_000;
pub const ISS: &str = "https://broker.redteam.test";
pub const AUD: &str = "https://api.redteam.test";
pub const SCOPES: &str = "web:fetch payments:transfer{amount<=100} notes:write";

pub fn agent(name: &str) -> AgentIdentity {
    AgentIdentity::new(
        parse_spiffe_id(&format!("spiffe://redteam.test/agent/{name}")).unwrap(),
        ModelRef::new("p", "m", "1"),
        &AgentConfiguration::new(format!("You are {name}."), vec![]),
        RuntimeDescriptor::new("process"),
    )
    .unwrap()
}

/// An issuer on a pinned clock, a human approver, and guards for one service.
pub struct World {
    pub issuer: Arc<Issuer>,
    pub clock: Arc<FixedClock>,
    pub human: SigningKey,
}

pub fn world() -> World {
    let clock = Arc::new(FixedClock::new(NOW));
    let issuer = Arc::new(
        Issuer::new(
            ISS,
            KeySet::new(SigningKey::generate(Algorithm::EdDSA).unwrap()),
        )
        .with_clock(clock.clone()),
    );
    World {
        issuer,
        clock,
        human: SigningKey::generate(Algorithm::EdDSA).unwrap(),
    }
}

impl World {
    pub fn issue_with(&self, who: &AgentIdentity, task: &str, ttl: i64) -> String {
        self.issuer.register(
            who.spiffe_id(),
            AgentRegistration::new(ScopeSet::parse(SCOPES).unwrap()),
        );
        let request =
            TokenRequest::new(who, AUD, ScopeSet::parse(SCOPES).unwrap(), task, "redteam")
                .with_ttl(ttl);
        self.issuer.issue(&request).unwrap().token
    }

    pub fn issue(&self, who: &AgentIdentity, task: &str) -> String {
        self.issue_with(who, task, 900)
    }

    /// A child of `parent` for `to`, with a call budget when `calls` is given.
    pub fn delegate(&self, parent: &str, to: &AgentIdentity, calls: Option<u64>) -> String {
        self.issuer.register(
            to.spiffe_id(),
            AgentRegistration::new(ScopeSet::parse(SCOPES).unwrap()),
        );
        let mut request = ExchangeRequest::new(parent, to, AUD);
        if let Some(calls) = calls {
            request = request.with_calls(calls);
        }
        Exchanger::new(self.issuer.clone())
            .with_clock(self.clock.clone())
            .exchange(&request)
            .unwrap()
            .token
    }

    pub fn verifier(&self) -> Verifier {
        Verifier::new(self.issuer.jwks(), ISS, AUD).with_clock(self.clock.clone())
    }

    pub fn principal(&self, token: &str) -> Arc<Principal> {
        Arc::new(Principal::from_token(
            &self.verifier().verify(token).unwrap(),
        ))
    }

    /// A guard (the default content filter unless `filter` is given) on `state`.
    pub fn guard(
        &self,
        state: Arc<dyn SharedState>,
        filter: Option<Arc<dyn ContentFilter>>,
    ) -> Guard {
        let mut builder = Guard::builder(PolicyEngine::default_policy().unwrap())
            .service(AUD)
            .clock(self.clock.clone())
            .shared_state(state)
            .approvers(
                ApproverKeys::new()
                    .add("alice", self.human.public_key().clone())
                    .unwrap(),
            )
            .tools([
                ToolSpec::new("fetch", Risk::Low)
                    .with_scope("web", "fetch")
                    .with_untrusted_output(),
                ToolSpec::new("transfer", Risk::High).with_scope("payments", "transfer"),
                ToolSpec::new("note", Risk::Low).with_scope("notes", "write"),
                ToolSpec::new("summarise", Risk::Low).with_scope("notes", "write"),
            ]);
        if let Some(filter) = filter {
            builder = builder.content_filter(filter);
        }
        builder.build().unwrap()
    }
}

pub fn note(guard: &Guard, p: &Principal) -> Decision {
    guard.decide(&GuardRequest::new(p, "note", &json!({"text": "hi"})))
}
