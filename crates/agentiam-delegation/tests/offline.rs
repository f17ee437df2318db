//! Offline attenuation: holder-signed links, walked from the broker-signed root to a final DPoP proof.
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
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

const ISS: &str = "https://broker.test";
const AUD: &str = "ledger-api";
const T0: i64 = 1_800_000_000;
const URL: &str = "https://ledger.test/ar";

struct World {
    clock: Arc<FixedClock>,
    issuer: Issuer,
    keys: Vec<SigningKey>,
    root: String,
}

fn world(scopes: &str) -> World {
    let clock = Arc::new(FixedClock::new(T0));
    let issuer = Issuer::new(
        ISS,
        KeySet::new(SigningKey::generate(Algorithm::EdDSA).unwrap()),
    )
    .with_clock(clock.clone());
    let agent = AgentIdentity::new(
        parse_spiffe_id("spiffe://acme.test/agent/orchestrator").unwrap(),
        ModelRef::new("p", "m", "1"),
        &AgentConfiguration::new("x", vec![]),
        RuntimeDescriptor::new("process"),
    )
    .unwrap();
    issuer.register(
        agent.spiffe_id(),
        AgentRegistration::new(ScopeSet::parse(scopes).unwrap()),
    );
    let keys: Vec<SigningKey> = (0..7)
        .map(|_| SigningKey::generate(Algorithm::EdDSA).unwrap())
        .collect();
    let root = issuer
        .issue(
            &TokenRequest::new(&agent, AUD, ScopeSet::parse(scopes).unwrap(), "t", "p")
                .with_ttl(600)
                .bind_dpop(keys[0].public_key().thumbprint()),
        )
        .unwrap()
        .token;
    World {
        clock,
        issuer,
        keys,
        root,
    }
}

fn link_claims(next: &SigningKey, scopes: &str, exp: i64) -> LinkClaims {
    LinkClaims {
        prv: String::new(),
        jkt: next.public_key().thumbprint(),
        scope: ScopeSet::parse(scopes).unwrap(),
        exp,
        iat: T0,
        budget: None,
        sub: None,
        jti: None,
        intent: None,
    }
}

fn proof(key: &SigningKey, last: &str, jti: &str) -> String {
    create_dpop_proof(key, &req(), T0, jti, Some(last)).unwrap()
}

impl World {
    fn chain(&self) -> ChainVerifier {
        let v = Verifier::new(self.issuer.jwks(), ISS, AUD).with_clock(self.clock.clone());
        ChainVerifier::new(v, DpopVerifier::new(self.clock.clone())).with_clock(self.clock.clone())
    }
    /// Links narrowing through `scopes`, each signed by the previous key.
    fn links(&self, scopes: &[&str]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (i, s) in scopes.iter().enumerate() {
            let parent = out.last().cloned().unwrap_or_else(|| self.root.clone());
            out.push(
                attenuate(
                    &self.keys[i],
                    &parent,
                    &link_claims(&self.keys[i + 1], s, T0 + 300 - i as i64),
                )
                .unwrap(),
            );
        }
        out
    }
}

fn req() -> DpopRequest<'static> {
    DpopRequest {
        method: "GET",
        url: URL,
    }
}

#[test]
fn a_four_link_chain_verifies_and_grants_the_last_scopes() {
    let w = world("ledger.*:read payments:approve{amount<=1000}");
    let links = w.links(&[
        "ledger.*:read payments:approve{amount<=500}",
        "ledger.*:read",
        "ledger.ar:read",
        "ledger.ar:read",
    ]);
    let refs: Vec<&str> = links.iter().map(String::as_str).collect();
    let grant = w
        .chain()
        .verify(&w.root, &refs, &proof(&w.keys[4], &links[3], "p1"), &req())
        .unwrap();
    assert_eq!(grant.scopes.to_string(), "ledger.ar:read");
    assert_eq!(grant.depth, 4);
    assert_eq!(grant.exp, T0 + 300 - 3);
    assert_eq!(grant.principal, "spiffe://acme.test/agent/orchestrator");
    // The root alone, proven by its own key.
    assert!(
        w.chain()
            .verify(&w.root, &[], &proof(&w.keys[0], &w.root, "p2"), &req())
            .is_ok()
    );
}

#[test]
fn every_attack_on_a_chain_is_refused_with_its_code() {
    let w = world("ledger.*:read payments:approve{amount<=1000}");
    let links = w.links(&["ledger.*:read", "ledger.ar:read"]);
    let code = |links: &[&str], proof_key: &SigningKey, jti: &str| {
        let last = links.last().copied().unwrap_or(&w.root);
        w.chain()
            .verify(&w.root, links, &proof(proof_key, last, jti), &req())
            .unwrap_err()
            .code()
    };
    // A holder's own attenuate refuses to widen...
    let refused = attenuate(
        &w.keys[1],
        &links[0],
        &link_claims(&w.keys[2], "ledger.*:read payments:approve", T0 + 100),
    );
    assert_eq!(refused.unwrap_err().code(), "delegation.scope_widened");
    // ...and a verifier refuses a widening link signed by hand.
    let raw_link = |claims: serde_json::Value| {
        let mut header = serde_json::Map::new();
        header.insert("typ".into(), LINK_TYPE.into());
        header.insert(
            "jwk".into(),
            serde_json::to_value(w.keys[1].public_key().to_jwk()).unwrap(),
        );
        let mut c = claims;
        c["prv"] = URL_SAFE_NO_PAD
            .encode(Sha256Digest::of_bytes(links[0].as_bytes()).as_bytes())
            .into();
        c["jkt"] = w.keys[2].public_key().thumbprint().into();
        c["iat"] = T0.into();
        sign_compact(&w.keys[1], &header, c.to_string().as_bytes()).unwrap()
    };
    let wide = raw_link(json!({"scope": "ledger.*:read payments:approve", "exp": T0 + 100}));
    assert_eq!(
        code(&[&links[0], &wide], &w.keys[2], "a"),
        "delegation.scope_widened"
    );
    let long = raw_link(json!({"scope": "ledger.ar:read", "exp": T0 + 10_000}));
    assert_eq!(
        code(&[&links[0], &long], &w.keys[2], "b"),
        "delegation.expiry_extended"
    );
    // Swapped links.
    assert_eq!(
        code(&[&links[1], &links[0]], &w.keys[2], "c"),
        "delegation.broken_chain"
    );
    // A link signed by the wrong key (not the previous holder's).
    let forged = attenuate(
        &w.keys[5],
        &links[0],
        &link_claims(&w.keys[2], "ledger.ar:read", T0 + 100),
    )
    .unwrap();
    assert_eq!(
        code(&[&links[0], &forged], &w.keys[2], "d"),
        "delegation.broken_chain"
    );
    // The chain replayed by a different holder: the proof is not by the final key.
    assert_eq!(
        code(&[&links[0], &links[1]], &w.keys[6], "e"),
        "token.pop_invalid"
    );
    // A link cut out of the middle.
    assert_eq!(
        code(&[&links[1]], &w.keys[2], "f"),
        "delegation.broken_chain"
    );
    // Depth beyond the cap.
    let deep = w.links(&[
        "ledger.*:read",
        "ledger.*:read",
        "ledger.*:read",
        "ledger.*:read",
        "ledger.*:read",
    ]);
    let refs: Vec<&str> = deep.iter().map(String::as_str).collect();
    assert_eq!(code(&refs, &w.keys[5], "g"), "delegation.depth_exceeded");
    // Revoking a link by id revokes it and every link after it.
    let revoked = Arc::new(InMemoryRevocationSet::new());
    let mut first = link_claims(&w.keys[1], "ledger.*:read", T0 + 300);
    first.jti = Some("link-1".into());
    let l1 = attenuate(&w.keys[0], &w.root, &first).unwrap();
    let l2 = attenuate(
        &w.keys[1],
        &l1,
        &link_claims(&w.keys[2], "ledger.ar:read", T0 + 200),
    )
    .unwrap();
    revoked
        .revoke(Revocation::Token("link-1".into()), T0 + 1000)
        .unwrap();
    let v = Verifier::new(w.issuer.jwks(), ISS, AUD).with_clock(w.clock.clone());
    let chain = ChainVerifier::new(v, DpopVerifier::new(w.clock.clone()))
        .with_clock(w.clock.clone())
        .with_revocation(revoked);
    assert_eq!(
        chain
            .verify(&w.root, &[&l1, &l2], &proof(&w.keys[2], &l2, "r1"), &req())
            .unwrap_err()
            .code(),
        "delegation.revoked_ancestor"
    );
    assert_eq!(
        chain
            .verify(&w.root, &[&l1], &proof(&w.keys[1], &l1, "r2"), &req())
            .unwrap_err()
            .code(),
        "token.revoked"
    );
    // An expired link.
    w.clock.advance(300);
    assert_eq!(
        code(&[&links[0], &links[1]], &w.keys[2], "h"),
        "token.expired"
    );
    // A root that is not bound to a key cannot be attenuated offline.
    let w2 = world("a:b");
    let v = Verifier::new(w2.issuer.jwks(), ISS, AUD).with_clock(w2.clock.clone());
    let agent = AgentIdentity::new(
        parse_spiffe_id("spiffe://acme.test/agent/orchestrator").unwrap(),
        ModelRef::new("p", "m", "1"),
        &AgentConfiguration::new("x", vec![]),
        RuntimeDescriptor::new("process"),
    )
    .unwrap();
    let unbound = w2
        .issuer
        .issue(&TokenRequest::new(
            &agent,
            AUD,
            ScopeSet::parse("a:b").unwrap(),
            "t",
            "p",
        ))
        .unwrap()
        .token;
    let chain =
        ChainVerifier::new(v, DpopVerifier::new(w2.clock.clone())).with_clock(w2.clock.clone());
    assert_eq!(
        chain
            .verify(&unbound, &[], &proof(&w2.keys[0], &unbound, "i"), &req())
            .unwrap_err()
            .code(),
        "token.pop_required"
    );
}

mod never_widens {
    use super::*;
    use proptest::prelude::*;

    fn arb_scopes() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            (
                prop_oneof![Just("a"), Just("a.b"), Just("a.*"), Just("*")],
                prop_oneof![Just("r"), Just("*")],
                prop_oneof![Just(""), Just("{n<=5}"), Just("{n<=9}")],
            )
                .prop_map(|(r, a, c)| format!("{r}:{a}{c}")),
            1..3,
        )
        .prop_map(|v| v.join(" "))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Links signed by hand with any scopes and expiries: an accepted chain never grants a
        /// request the root does not allow, nor outlives it.
        #[test]
        fn an_accepted_offline_chain_never_widens(
            root_scopes in arb_scopes(),
            hops in proptest::collection::vec((arb_scopes(), 1i64..700), 1..4),
            probe in (prop_oneof![Just("a"), Just("a.b"), Just("a.b.c"), Just("z")], 0i64..12),
        ) {
            let w = world(&root_scopes);
            let mut links: Vec<String> = Vec::new();
            for (i, (scopes, life)) in hops.iter().enumerate() {
                let parent = links.last().cloned().unwrap_or_else(|| w.root.clone());
                let mut header = serde_json::Map::new();
                header.insert("typ".into(), LINK_TYPE.into());
                header.insert("jwk".into(), serde_json::to_value(w.keys[i].public_key().to_jwk()).unwrap());
                let claims = json!({
                    "prv": URL_SAFE_NO_PAD.encode(Sha256Digest::of_bytes(parent.as_bytes()).as_bytes()),
                    "jkt": w.keys[i + 1].public_key().thumbprint(),
                    "scope": scopes, "exp": T0 + life, "iat": T0,
                });
                links.push(sign_compact(&w.keys[i], &header, claims.to_string().as_bytes()).unwrap());
            }
            let refs: Vec<&str> = links.iter().map(String::as_str).collect();
            let last_key = &w.keys[links.len()];
            let result = w.chain().verify(&w.root, &refs, &proof(last_key, links.last().unwrap(), "p"), &req());
            if let Ok(grant) = result {
                let root_scopes = ScopeSet::parse(&root_scopes).unwrap();
                prop_assert!(grant.scopes.is_subset_of(&root_scopes));
                prop_assert!(grant.exp <= T0 + 600);
                let (resource, n) = probe;
                let args = json!({"n": n});
                let request = ScopeRequest::new(resource, "r").with_args(&args);
                if grant.scopes.covers(&request) {
                    prop_assert!(root_scopes.covers(&request));
                }
            } else {
                let code = result.unwrap_err().code();
                prop_assert!(code.starts_with("delegation.") , "{}", code);
            }
        }
    }
}

/// A link may declare the task's intent (its `jti` is the intent's id); later links carry it,
/// and a link that drops or swaps it does not verify, however it was signed.
#[test]
fn an_offline_link_declares_the_intent_once_and_later_links_carry_it() {
    let w = world("mail:send ledger.*:read");
    let mut declaring = link_claims(&w.keys[1], "mail:send{to=['alice@acme.example']}", T0 + 300);
    declaring.jti = Some("intent-1".into());
    declaring.intent = Some(IntentClaim {
        id: "intent-1".into(),
    });
    let first = attenuate(&w.keys[0], &w.root, &declaring).unwrap();
    // The next link leaves intent unset: attenuate carries the parent's.
    let second = attenuate(
        &w.keys[1],
        &first,
        &link_claims(&w.keys[2], "mail:send{to=['alice@acme.example']}", T0 + 200),
    )
    .unwrap();
    let grant = w
        .chain()
        .verify(
            &w.root,
            &[&first, &second],
            &proof(&w.keys[2], &second, "i1"),
            &req(),
        )
        .unwrap();
    assert_eq!(grant.intent.as_deref(), Some("intent-1"));
    // Declaring another is refused by the holder's own check.
    let mut again = link_claims(&w.keys[2], "mail:send{to=['alice@acme.example']}", T0 + 200);
    again.jti = Some("intent-2".into());
    again.intent = Some(IntentClaim {
        id: "intent-2".into(),
    });
    assert_eq!(
        attenuate(&w.keys[1], &first, &again).unwrap_err().code(),
        "delegation.intent_redeclared"
    );
    // An intent whose id is not the declaring link's jti is refused.
    let mut wrong_id = declaring.clone();
    wrong_id.jti = Some("other".into());
    assert_eq!(
        attenuate(&w.keys[0], &w.root, &wrong_id)
            .unwrap_err()
            .code(),
        "delegation.broken_chain"
    );
    // A hand-signed link that drops the intent (attenuate would have carried it) is refused by
    // every verifier.
    let mut dropped = link_claims(&w.keys[2], "mail:send{to=['alice@acme.example']}", T0 + 200);
    dropped.prv = URL_SAFE_NO_PAD.encode(Sha256Digest::of_bytes(first.as_bytes()).as_bytes());
    let mut header = serde_json::Map::new();
    header.insert("typ".into(), LINK_TYPE.into());
    header.insert(
        "jwk".into(),
        serde_json::to_value(w.keys[1].public_key().to_jwk()).unwrap(),
    );
    let forged = sign_compact(&w.keys[1], &header, &serde_json::to_vec(&dropped).unwrap()).unwrap();
    let err = w
        .chain()
        .verify(
            &w.root,
            &[&first, &forged],
            &proof(&w.keys[2], &forged, "i2"),
            &req(),
        )
        .unwrap_err();
    assert_eq!(err.code(), "delegation.broken_chain");
}

/// A chain presented again is found in the cache; a hit must answer exactly what a full walk
/// would, for everything that can change after the first verification.
mod presented_again {
    use super::*;
    use proptest::prelude::*;

    /// The root (with a jti, revocable) and two links with jti and sub, from `w`.
    fn revocable_chain(w: &World) -> Vec<String> {
        let mut first = link_claims(&w.keys[1], "ledger.*:read", T0 + 300);
        first.jti = Some("link-0".into());
        first.sub = Some("spiffe://acme.test/agent/sub-0".into());
        let l0 = attenuate(&w.keys[0], &w.root, &first).unwrap();
        let mut second = link_claims(&w.keys[2], "ledger.ar:read", T0 + 200);
        second.jti = Some("link-1".into());
        second.sub = Some("spiffe://acme.test/agent/sub-1".into());
        let l1 = attenuate(&w.keys[1], &l0, &second).unwrap();
        vec![l0, l1]
    }

    /// A proof made now (the clock moves in these tests).
    fn proof(key: &SigningKey, last: &str, jti: &str, now: i64) -> String {
        create_dpop_proof(key, &req(), now, jti, Some(last)).unwrap()
    }

    fn verifiers(
        w: &World,
        revoked: &Arc<InMemoryRevocationSet>,
    ) -> (Verifier, ChainVerifier, ChainVerifier) {
        let v = Verifier::new(w.issuer.jwks(), ISS, AUD)
            .with_clock(w.clock.clone())
            .with_revocation(revoked.clone());
        let make = |cache: usize| {
            ChainVerifier::new(v.clone(), DpopVerifier::new(w.clock.clone()))
                .with_clock(w.clock.clone())
                .with_revocation(revoked.clone())
                .with_cache(cache)
        };
        (v.clone(), make(DEFAULT_CHAIN_CACHE), make(0))
    }

    fn root_jti(w: &World) -> String {
        let payload = w.root.split('.').nth(1).unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        claims["jti"].as_str().unwrap().to_owned()
    }

    #[test]
    fn a_cached_chain_still_honours_revocation_expiry_key_removal_and_the_proof() {
        let w = world("ledger.*:read payments:approve{amount<=1000}");
        let links = revocable_chain(&w);
        let refs: Vec<&str> = links.iter().map(String::as_str).collect();
        let revoked = Arc::new(InMemoryRevocationSet::new());
        let (v, cached, _) = verifiers(&w, &revoked);
        let present = |chain: &ChainVerifier, refs: &[&str], key: &SigningKey, jti: &str| {
            let last = refs.last().copied().unwrap_or(&w.root);
            chain.verify(&w.root, refs, &proof(key, last, jti, w.clock.now()), &req())
        };
        assert!(present(&cached, &refs, &w.keys[2], "a1").is_ok());
        // The hit: same grant again.
        let again = present(&cached, &refs, &w.keys[2], "a2").unwrap();
        assert_eq!(again.scopes.to_string(), "ledger.ar:read");
        assert_eq!(again.exp, T0 + 200);
        // A proof replayed, or by another key, is refused on a hit.
        assert_eq!(
            cached
                .verify(
                    &w.root,
                    &refs,
                    &proof(&w.keys[2], &links[1], "a2", w.clock.now()),
                    &req()
                )
                .unwrap_err()
                .code(),
            "token.pop_invalid"
        );
        assert_eq!(
            present(&cached, &refs, &w.keys[6], "a3")
                .unwrap_err()
                .code(),
            "token.pop_invalid"
        );
        // The cached last link behind another root, or with its parent swapped, is not a hit.
        let w2 = world("ledger.*:read payments:approve{amount<=1000}");
        assert_eq!(
            cached
                .verify(
                    &w2.root,
                    &refs,
                    &proof(&w.keys[2], &links[1], "a4", w.clock.now()),
                    &req()
                )
                .unwrap_err()
                .code(),
            "token.unknown_key"
        );
        let other_first = attenuate(
            &w.keys[0],
            &w.root,
            &link_claims(&w.keys[1], "ledger.ar:read", T0 + 300),
        )
        .unwrap();
        assert_eq!(
            present(&cached, &[&other_first, &links[1]], &w.keys[2], "a5")
                .unwrap_err()
                .code(),
            "delegation.broken_chain"
        );
        // The cached links joined into one (the same text, split differently) are not a hit.
        let joined = format!("{}\n{}", links[0], links[1]);
        assert!(present(&cached, &[&joined], &w.keys[2], "a6").is_err());
        let joined = format!("{}.{}", links[0], links[1]);
        assert!(present(&cached, &[&joined], &w.keys[2], "a7").is_err());
        // Revocation after the chain was cached: by the first link's sub (an ancestor), by the
        // last link's id, by the root's id.
        assert!(present(&cached, &refs, &w.keys[2], "b1").is_ok());
        revoked
            .revoke(
                Revocation::Agent("spiffe://acme.test/agent/sub-0".into()),
                T0 + 1000,
            )
            .unwrap();
        assert_eq!(
            present(&cached, &refs, &w.keys[2], "b2")
                .unwrap_err()
                .code(),
            "delegation.revoked_ancestor"
        );
        assert_eq!(
            present(&cached, &refs[..1], &w.keys[1], "b3")
                .unwrap_err()
                .code(),
            "token.revoked"
        );
        let revoked = Arc::new(InMemoryRevocationSet::new());
        let (_, cached, _) = verifiers(&w, &revoked);
        assert!(present(&cached, &refs, &w.keys[2], "c1").is_ok());
        revoked
            .revoke(Revocation::Token(root_jti(&w)), T0 + 1000)
            .unwrap();
        assert_eq!(
            present(&cached, &refs, &w.keys[2], "c2")
                .unwrap_err()
                .code(),
            "token.revoked"
        );
        // The broker's key removed from the trusted set takes the cached chain with it.
        let revoked = Arc::new(InMemoryRevocationSet::new());
        let (v2, cached, _) = verifiers(&w, &revoked);
        assert!(present(&cached, &refs, &w.keys[2], "d1").is_ok());
        v2.replace_keys(w2.issuer.jwks());
        assert_eq!(
            present(&cached, &refs, &w.keys[2], "d2")
                .unwrap_err()
                .code(),
            "token.unknown_key"
        );
        drop(v);
        // Expiry: the last link at T0 + 200, before the root's T0 + 600.
        let revoked = Arc::new(InMemoryRevocationSet::new());
        let (_, cached, _) = verifiers(&w, &revoked);
        assert!(present(&cached, &refs, &w.keys[2], "e1").is_ok());
        w.clock.advance(199);
        assert!(present(&cached, &refs, &w.keys[2], "e2").is_ok());
        w.clock.advance(1);
        assert_eq!(
            present(&cached, &refs, &w.keys[2], "e3")
                .unwrap_err()
                .code(),
            "token.expired"
        );
    }

    #[derive(Debug, Clone)]
    enum Step {
        /// Present the chain cut to this many links, proven by the holder or another key.
        Present(usize, bool),
        RevokeLinkId(usize),
        RevokeLinkSub(usize),
        RevokeRoot,
        Advance(i64),
        RemoveBrokerKey,
    }

    fn arb_step() -> impl Strategy<Value = Step> {
        prop_oneof![
            6 => (0usize..3, proptest::bool::weighted(0.85)).prop_map(|(n, ok)| Step::Present(n, ok)),
            1 => (0usize..2).prop_map(Step::RevokeLinkId),
            1 => (0usize..2).prop_map(Step::RevokeLinkSub),
            1 => Just(Step::RevokeRoot),
            2 => (1i64..150).prop_map(Step::Advance),
            1 => Just(Step::RemoveBrokerKey),
        ]
    }

    fn summary(r: Result<Grant, TokenError>) -> Result<String, String> {
        r.map(|g| {
            format!(
                "{} {} {} {} {:?} {:?} {:?}",
                g.scopes, g.exp, g.depth, g.holder_jkt, g.holder, g.budgets, g.intent
            )
        })
        .map_err(|e| e.code().to_owned())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Whatever happens between presentations (revocations, time, a key removed), the
        /// caching verifier answers every presentation exactly as a verifier without a cache.
        #[test]
        fn a_cache_hit_never_answers_differently_from_a_full_walk(
            steps in proptest::collection::vec(arb_step(), 1..24),
        ) {
            let w = world("ledger.*:read payments:approve{amount<=1000}");
            let other = world("a:b");
            let links = revocable_chain(&w);
            let refs: Vec<&str> = links.iter().map(String::as_str).collect();
            let revoked = Arc::new(InMemoryRevocationSet::new());
            let (v, cached, fresh) = verifiers(&w, &revoked);
            let subs = ["spiffe://acme.test/agent/sub-0", "spiffe://acme.test/agent/sub-1"];
            for (n, step) in steps.iter().enumerate() {
                match step {
                    Step::Present(len, by_holder) => {
                        let part = &refs[..*len];
                        let last = part.last().copied().unwrap_or(&w.root);
                        let key = if *by_holder { &w.keys[*len] } else { &w.keys[6] };
                        let jti = format!("s{n}");
                        let a = cached.verify(&w.root, part, &proof(key, last, &jti, w.clock.now()), &req());
                        let b = fresh.verify(&w.root, part, &proof(key, last, &jti, w.clock.now()), &req());
                        prop_assert_eq!(summary(a), summary(b));
                    }
                    Step::RevokeLinkId(i) => revoked
                        .revoke(Revocation::Token(format!("link-{i}")), T0 + 10_000)
                        .unwrap(),
                    Step::RevokeLinkSub(i) => revoked
                        .revoke(Revocation::Agent(subs[*i].into()), T0 + 10_000)
                        .unwrap(),
                    Step::RevokeRoot => revoked
                        .revoke(Revocation::Token(root_jti(&w)), T0 + 10_000)
                        .unwrap(),
                    Step::Advance(secs) => w.clock.advance(*secs),
                    Step::RemoveBrokerKey => v.replace_keys(other.issuer.jwks()),
                }
            }
        }
    }
}
