//! A platform team's story: an orchestrator gets a 15-minute token for one task, hands a
//! sub-agent a narrower one by RFC 8693 token exchange, and every attempt to widen it is refused.
//!
//! `cargo run --example issue_and_exchange`
use std::sync::Arc;

use agentiam::delegation::{ExchangeRequest, Exchanger};
use agentiam::prelude::*;

fn agent(name: &str, prompt: &str) -> Result<AgentIdentity, IdentityError> {
    AgentIdentity::new(
        parse_spiffe_id(&format!("spiffe://acme.example/agent/{name}"))?,
        ModelRef::new("openai", "gpt-5", "2026-08-01"),
        &AgentConfiguration::new(prompt, vec![]),
        RuntimeDescriptor::new("container").with("image_digest", "sha256:0123"),
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let orchestrator = agent("orchestrator", "You close the month.")?;
    let payer = agent("payer", "You pay approved invoices.")?;

    // The broker: each agent registered with the most it may ever hold, pinned to its identity.
    let issuer = Arc::new(Issuer::new(
        "https://broker.acme.example",
        KeySet::new(SigningKey::generate(Algorithm::EdDSA)?),
    ));
    issuer.register(
        orchestrator.spiffe_id(),
        AgentRegistration::new(ScopeSet::parse(
            "ledger.*:read payments:approve{amount<=10000}",
        )?)
        .pin_identity(orchestrator.composite_digest()),
    );
    issuer.register(
        payer.spiffe_id(),
        AgentRegistration::new(ScopeSet::parse("payments:approve{amount<=5000}")?)
            .pin_identity(payer.composite_digest()),
    );

    // One task, the scopes it needs, 15 minutes by default.
    let parent = issuer.issue(&TokenRequest::new(
        &orchestrator,
        "payments-api",
        ScopeSet::parse("ledger.ap:read payments:approve{amount<=2000}")?,
        "close-march",
        "pay March's approved invoices",
    ))?;
    println!("orchestrator's token: {}", parent.claims.scope);

    // The sub-agent gets less: one scope, a lower ceiling, five minutes, three calls.
    let exchanger = Exchanger::new(issuer.clone());
    let child = exchanger.exchange(
        &ExchangeRequest::new(&parent.token, &payer, "payments-api")
            .with_scopes(ScopeSet::parse("payments:approve{amount<=500}")?)
            .with_ttl(300)
            .with_calls(3),
    )?;
    println!(
        "payer's token: {} (acting for {})",
        child.claims.scope, child.claims.sub
    );

    // The service verifies it for the agent presenting it, and checks each call against it.
    let verifier = Verifier::new(issuer.jwks(), "https://broker.acme.example", "payments-api");
    let token = verifier.verify_for_agent(&child.token, &payer)?;
    let (ok, over) = (
        serde_json::json!({"amount": 420}),
        serde_json::json!({"amount": 900}),
    );
    assert!(
        token
            .scopes()
            .covers(&ScopeRequest::new("payments", "approve").with_args(&ok))
    );
    let over = token
        .scopes()
        .check(&ScopeRequest::new("payments", "approve").with_args(&over))
        .err()
        .ok_or("900 is over the ceiling")?;
    println!("payer approving 900: refused, {}", over.code());

    // Asking for more than the parent holds is refused, never granted.
    let widened = exchanger
        .exchange(
            &ExchangeRequest::new(&parent.token, &payer, "payments-api")
                .with_scopes(ScopeSet::parse("payments:approve{amount<=5000}")?),
        )
        .err()
        .ok_or("a widening exchange was granted")?;
    println!("payer asking for 5000: refused, {}", widened.code());

    // The orchestrator cannot present its sub-agent's token as its own.
    let stolen = verifier
        .verify_for_agent(&child.token, &orchestrator)
        .err()
        .ok_or("accepted from the wrong agent")?;
    println!(
        "orchestrator presenting the payer's token: refused, {}",
        stolen.code()
    );
    Ok(())
}
