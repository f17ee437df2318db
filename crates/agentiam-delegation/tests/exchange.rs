//! Token exchange never widens, chains are capped and revocation cascades.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "test harness: a panic is a failed test"
)]

use std::sync::Arc;

use agentiam_delegation::*;
use agentiam_identity::*;
use agentiam_token::*;
use proptest::prelude::*;
use serde_json::json;

const ISS: &str = "https://broker.test";
const AUD: &str = "ledger-api";
const T0: i64 = 1_800_000_000;

use agentiam_test_support::agent;

struct World {
    clock: Arc<FixedClock>,
    issuer: Arc<Issuer>,
    revoked: Arc<InMemoryRevocationSet>,
    root_agent: AgentIdentity,
}

fn world(root_scopes: &str) -> World {
    let clock = Arc::new(FixedClock::new(T0));
    let issuer = Arc::new(
        Issuer::new(
            ISS,
            KeySet::new(SigningKey::generate(Algorithm::EdDSA).unwrap()),
        )
        .with_clock(clock.clone()),
    );
    let root_agent = agent("orchestrator");
    issuer.register(
        root_agent.spiffe_id(),
        AgentRegistration::new(ScopeSet::parse(root_scopes).unwrap()),
    );
    World {
        clock,
        issuer,
        revoked: Arc::new(InMemoryRevocationSet::new()),
        root_agent,
    }
}

impl World {
    fn root(&self, scopes: &str, ttl: i64) -> IssuedToken {
        self.issuer
            .issue(
                &TokenRequest::new(
                    &self.root_agent,
                    AUD,
                    ScopeSet::parse(scopes).unwrap(),
                    "task-1",
                    "test",
                )
                .with_ttl(ttl),
            )
            .unwrap()
    }
    fn exchanger(&self) -> Exchanger {
        Exchanger::new(self.issuer.clone())
            .with_clock(self.clock.clone())
            .with_revocation(self.revoked.clone())
    }
    fn verifier(&self) -> Verifier {
        Verifier::new(self.issuer.jwks(), ISS, AUD)
            .with_clock(self.clock.clone())
            .with_revocation(self.revoked.clone())
    }
}

#[test]
fn child_is_narrower_carries_the_chain_and_binds_to_the_actor() {
    let w = world("ledger.*:read payments:approve{amount<=1000}");
    let root = w.root("ledger.*:read payments:approve{amount<=1000}", 600);
    let sub = agent("payer");
    let child = w
        .exchanger()
        .exchange(
            &ExchangeRequest::new(&root.token, &sub, AUD)
                .with_scopes(ScopeSet::parse("payments:approve{amount<=100}").unwrap())
                .with_ttl(60)
                .with_calls(3),
        )
        .unwrap();
    let token = w.verifier().verify_for_agent(&child.token, &sub).unwrap();
    let c = token.claims();
    assert_eq!(c.sub, w.root_agent.spiffe_id().to_string());
    assert_eq!(
        c.act,
        Some(json!({"sub": "spiffe://acme.test/agent/payer"}))
    );
    assert_eq!(c.dlg.len(), 1);
    assert_eq!(c.dlg[0].jti, root.claims.jti);
    assert_eq!(c.exp, T0 + 60);
    assert_eq!(c.budget.unwrap().calls, Some(3));
    assert!(
        token
            .scopes()
            .covers(&ScopeRequest::new("payments", "approve").with_args(&json!({"amount": 50})))
    );
    assert!(
        !token
            .scopes()
            .covers(&ScopeRequest::new("payments", "approve").with_args(&json!({"amount": 500})))
    );
    // The orchestrator cannot present its sub-agent's token.
    assert_eq!(
        w.verifier()
            .verify_for_agent(&child.token, &w.root_agent)
            .unwrap_err()
            .code(),
        "token.identity_mismatch"
    );
    // A grandchild nests the actors, newest outermost.
    let grand = w
        .exchanger()
        .exchange(&ExchangeRequest::new(&child.token, &agent("checker"), AUD))
        .unwrap();
    assert_eq!(
        grand.claims.act,
        Some(
            json!({"sub": "spiffe://acme.test/agent/checker", "act": {"sub": "spiffe://acme.test/agent/payer"}})
        )
    );
    assert_eq!(grand.claims.dlg.len(), 2);
}

#[test]
fn widening_is_refused_with_its_code_or_clipped_on_request() {
    let w = world("ledger.*:read payments:approve{amount<=1000}");
    let root = w.root("ledger.ar:read payments:approve{amount<=1000}", 600);
    let sub = agent("sub");
    let ex = w.exchanger();
    let code = |r: Result<IssuedToken, TokenError>| r.unwrap_err().code();
    assert_eq!(
        code(
            ex.exchange(
                &ExchangeRequest::new(&root.token, &sub, AUD)
                    .with_scopes(ScopeSet::parse("ledger.ap:read").unwrap())
            )
        ),
        "delegation.scope_widened"
    );
    assert_eq!(
        code(
            ex.exchange(
                &ExchangeRequest::new(&root.token, &sub, AUD)
                    .with_scopes(ScopeSet::parse("payments:approve{amount<=5000}").unwrap())
            )
        ),
        "delegation.scope_widened"
    );
    assert_eq!(
        code(ex.exchange(&ExchangeRequest::new(&root.token, &sub, AUD).with_ttl(601))),
        "delegation.expiry_extended"
    );
    let capped = ex
        .exchange(&ExchangeRequest::new(&root.token, &sub, AUD).with_calls(5))
        .unwrap();
    assert_eq!(
        code(ex.exchange(&ExchangeRequest::new(&capped.token, &agent("x"), AUD).with_calls(6))),
        "delegation.budget_widened"
    );
    assert_eq!(
        code(ex.exchange(&ExchangeRequest::new(&root.token, &sub, "payments-api"))),
        "token.wrong_audience"
    );
    let clipped = ex
        .exchange(
            &ExchangeRequest::new(&root.token, &sub, AUD)
                .with_scopes(ScopeSet::parse("ledger.ar:read ledger.ap:read").unwrap())
                .with_ttl(10_000)
                .clipping(),
        )
        .unwrap();
    assert_eq!(clipped.claims.scope.to_string(), "ledger.ar:read");
    assert_eq!(clipped.claims.exp, root.claims.exp);
}

#[test]
fn depth_is_capped_and_revocation_cascades() {
    let w = world("a:b");
    let mut token = w.root("a:b", 600).token;
    let mut tokens = vec![token.clone()];
    for i in 0..4 {
        token = w
            .exchanger()
            .exchange(&ExchangeRequest::new(
                &token,
                &agent(&format!("hop{i}")),
                AUD,
            ))
            .unwrap()
            .token;
        tokens.push(token.clone());
    }
    let err = w
        .exchanger()
        .exchange(&ExchangeRequest::new(&token, &agent("hop5"), AUD))
        .unwrap_err();
    assert_eq!(err.code(), "delegation.depth_exceeded");
    assert!(w.verifier().verify(&tokens[4]).is_ok());
    // A verifier with a lower cap refuses the deep token outright.
    assert_eq!(
        w.verifier()
            .with_max_delegation_depth(2)
            .verify(&tokens[4])
            .unwrap_err()
            .code(),
        "delegation.depth_exceeded"
    );
    // Revoking the second hop's token revokes every descendant, not its ancestors.
    let hop1 = w.verifier().verify(&tokens[1]).unwrap();
    w.revoked
        .revoke(
            Revocation::Token(hop1.claims().jti.clone().unwrap()),
            T0 + 10_000,
        )
        .unwrap();
    assert_eq!(
        w.verifier().verify(&tokens[1]).unwrap_err().code(),
        "token.revoked"
    );
    for t in &tokens[2..] {
        assert_eq!(
            w.verifier().verify(t).unwrap_err().code(),
            "delegation.revoked_ancestor"
        );
    }
    assert!(w.verifier().verify(&tokens[0]).is_ok());
    // Revoking an intermediate agent does the same for tokens below it.
    let w2 = world("a:b");
    let root = w2.root("a:b", 600).token;
    let mid = w2
        .exchanger()
        .exchange(&ExchangeRequest::new(&root, &agent("mid"), AUD))
        .unwrap()
        .token;
    let leaf = w2
        .exchanger()
        .exchange(&ExchangeRequest::new(&mid, &agent("leaf"), AUD))
        .unwrap()
        .token;
    w2.revoked
        .revoke(
            Revocation::Agent("spiffe://acme.test/agent/mid".into()),
            T0 + 10_000,
        )
        .unwrap();
    assert_eq!(
        w2.verifier().verify(&leaf).unwrap_err().code(),
        "delegation.revoked_ancestor"
    );
    assert_eq!(
        w2.exchanger()
            .exchange(&ExchangeRequest::new(&leaf, &agent("x"), AUD))
            .unwrap_err()
            .code(),
        "delegation.revoked_ancestor"
    );
}

#[test]
fn a_declared_intent_is_carried_down_the_chain_and_never_dropped_or_replaced() {
    let w = world("mail:send a:b");
    let root = w.root("mail:send a:b", 600);
    assert!(root.claims.intent.is_none());
    let declare = |parent: &str| {
        w.exchanger().exchange(
            &ExchangeRequest::new(parent, &w.root_agent, AUD)
                .with_scopes(ScopeSet::parse("mail:send{to=['alice@acme.example']}").unwrap())
                .declaring_intent(),
        )
    };
    let intent = declare(&root.token).unwrap();
    let id = intent
        .claims
        .intent
        .clone()
        .expect("the exchange declared an intent");
    assert_eq!(Some(&id.id), intent.claims.jti.as_ref());
    assert!(intent.claims.dlg[0].intent.is_none(), "the root had none");
    assert_eq!(
        declare(&intent.token).unwrap_err().code(),
        "delegation.intent_redeclared"
    );
    let child = w
        .exchanger()
        .exchange(&ExchangeRequest::new(&intent.token, &agent("sub"), AUD))
        .unwrap();
    assert_eq!(child.claims.intent.as_ref(), Some(&id));
    assert_eq!(child.claims.dlg[1].intent.as_ref(), Some(&id));
    assert!(w.verifier().verify(&child.token).is_ok());
    // A chain that drops the intent, or swaps in another, does not verify.
    let mut dropped = child.claims.clone();
    dropped.intent = None;
    let mut replaced = child.claims.clone();
    replaced.intent = Some(IntentClaim {
        id: "attacker".into(),
    });
    let mut hop_dropped = child.claims.clone();
    hop_dropped.dlg[1].intent = None;
    for forged in [dropped, replaced, hop_dropped] {
        assert_eq!(
            w.verifier()
                .verify(&w.issuer.sign(&forged).unwrap())
                .unwrap_err()
                .code(),
            "delegation.broken_chain",
            "{:?}",
            forged.intent
        );
    }
}

#[test]
fn verifiers_recheck_the_chain_even_if_a_broker_signed_a_widening() {
    let w = world("a:b");
    let root = w.root("a:b", 600);
    let child = w
        .exchanger()
        .exchange(&ExchangeRequest::new(&root.token, &agent("sub"), AUD))
        .unwrap();
    let mut forged = child.claims.clone();
    forged.scope = ScopeSet::parse("a:b c:d").unwrap();
    assert_eq!(
        w.verifier()
            .verify(&w.issuer.sign(&forged).unwrap())
            .unwrap_err()
            .code(),
        "delegation.scope_widened"
    );
    let mut forged = child.claims.clone();
    forged.exp = root.claims.exp + 1;
    assert_eq!(
        w.verifier()
            .verify(&w.issuer.sign(&forged).unwrap())
            .unwrap_err()
            .code(),
        "delegation.expiry_extended"
    );
    let mut forged = child.claims.clone();
    forged.act = None;
    forged.dlg.push(forged.dlg[0].clone());
    forged.dlg.push(forged.dlg[0].clone());
    assert_eq!(
        w.verifier()
            .verify(&w.issuer.sign(&forged).unwrap())
            .unwrap_err()
            .code(),
        "delegation.broken_chain"
    );
}

#[test]
fn a_dpop_bound_parent_must_prove_possession_to_delegate() {
    let w = world("a:b");
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let bound = w
        .issuer
        .issue(
            &TokenRequest::new(
                &w.root_agent,
                AUD,
                ScopeSet::parse("a:b").unwrap(),
                "t",
                "p",
            )
            .bind_dpop(key.public_key().thumbprint()),
        )
        .unwrap();
    let ex = w.exchanger().with_dpop(DpopVerifier::new(w.clock.clone()));
    assert_eq!(
        ex.exchange(&ExchangeRequest::new(&bound.token, &agent("sub"), AUD))
            .unwrap_err()
            .code(),
        "token.pop_required"
    );
    let mut header = serde_json::Map::new();
    header.insert("typ".into(), "dpop+jwt".into());
    header.insert(
        "jwk".into(),
        serde_json::to_value(key.public_key().to_jwk()).unwrap(),
    );
    use base64::Engine;
    let ath = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256Digest::of_bytes(bound.token.as_bytes()).as_bytes());
    let proof = sign_compact(&key, &header, json!({"jti": "x1", "htm": "POST", "htu": "https://broker.test/token", "iat": T0, "ath": ath}).to_string().as_bytes()).unwrap();
    let sub = agent("sub");
    let mut req = ExchangeRequest::new(&bound.token, &sub, AUD);
    req.subject_proof = Some((
        &proof,
        DpopRequest {
            method: "POST",
            url: "https://broker.test/token",
        },
    ));
    let child = ex.exchange(&req).unwrap();
    assert_eq!(child.claims.dlg[0].jkt, Some(key.public_key().thumbprint()));
}

fn arb_scope() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("a"), Just("a.b"), Just("a.*"), Just("*")],
        prop_oneof![Just("r"), Just("w"), Just("*")],
        proptest::option::of(prop_oneof![
            Just("{n<=5}"),
            Just("{n<=10}"),
            Just("{n<5}"),
            Just("{n=3}")
        ]),
    )
        .prop_map(|(r, a, c)| format!("{r}:{a}{}", c.unwrap_or("")))
}

fn arb_set() -> impl Strategy<Value = String> {
    proptest::collection::vec(arb_scope(), 1..3).prop_map(|v| v.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// No accepted chain ever grants what an ancestor did not, and every widening is refused
    /// with its code.
    #[test]
    fn no_chain_ever_widens(
        root in arb_set(),
        steps in proptest::collection::vec((arb_set(), 1i64..900, proptest::option::of(0u64..10), any::<bool>()), 1..6),
        probe in (prop_oneof![Just("a"), Just("a.b"), Just("a.b.c"), Just("x")], prop_oneof![Just("r"), Just("w")], 0i64..12),
    ) {
        let w = world("*:*");
        let root_token = w.root(&root, 600);
        let mut chain = vec![root_token.claims.clone()];
        let mut current = root_token.token;
        for (i, (asked, ttl, calls, clip)) in steps.into_iter().enumerate() {
            let parent = chain.last().unwrap().clone();
            let asked = ScopeSet::parse(&asked).unwrap();
            let actor = agent(&format!("h{i}"));
            let mut req = ExchangeRequest::new(&current, &actor, AUD).with_scopes(asked.clone()).with_ttl(ttl);
            req.calls = calls;
            req.clip = clip;
            match w.exchanger().exchange(&req) {
                Ok(child) => {
                    let c = &child.claims;
                    prop_assert!(c.scope.is_subset_of(&parent.scope));
                    prop_assert!(c.exp <= parent.exp);
                    prop_assert!(Budget::is_within(c.budget.as_ref(), parent.budget.as_ref()));
                    if !clip {
                        prop_assert!(asked.is_subset_of(&parent.scope));
                    }
                    prop_assert!(w.verifier().verify(&child.token).is_ok());
                    current = child.token;
                    chain.push(child.claims);
                }
                Err(e) => {
                    let code = e.code();
                    prop_assert!(["delegation.scope_widened", "delegation.expiry_extended", "delegation.budget_widened", "delegation.depth_exceeded"].contains(&code), "{}", code);
                    if code == "delegation.scope_widened" && !clip {
                        prop_assert!(!asked.is_subset_of(&parent.scope));
                    }
                    if code == "delegation.depth_exceeded" {
                        prop_assert_eq!(chain.len(), 5);
                    }
                    break;
                }
            }
        }
        // Whatever the last token covers, every ancestor covers.
        let (resource, action, n) = probe;
        let args = json!({"n": n});
        let request = ScopeRequest::new(resource, action).with_args(&args);
        if chain.last().unwrap().scope.covers(&request) {
            for ancestor in &chain {
                prop_assert!(ancestor.scope.covers(&request));
            }
        }
    }
}
