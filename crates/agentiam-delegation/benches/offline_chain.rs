//! Offline delegation chain verification: a depth-4 agentiam chain (broker-signed root, four
//! holder-signed links, a DPoP proof by the last key) verified once (a verifier without a chain
//! cache walks it every time) and presented again (the default verifier finds it in its cache and
//! re-checks key, expiry, revocation and the proof), beside one plain token verify (the targets'
//! denominator) and beside a biscuit-auth token with four attenuation blocks checked against the
//! same request. Interleaved rounds, median per-call times, ratios printed.
//!
//! Run with `cargo bench -p agentiam-delegation --bench offline_chain` (add `--quick` for a short run).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "benchmark harness: a failure is a failed run"
)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use agentiam_delegation::*;
use agentiam_identity::*;
use agentiam_token::*;
use biscuit_auth::macros::{authorizer, biscuit, block};

const ISS: &str = "https://broker.bench";
const AUD: &str = "ledger-api";
const URL: &str = "https://ledger.bench/ar";

fn now() -> i64 {
    SystemClock.now()
}

fn proof(key: &SigningKey, last: &str, jti: usize, t: i64) -> String {
    let request = DpopRequest {
        method: "GET",
        url: URL,
    };
    create_dpop_proof(key, &request, t, &format!("p{jti}"), Some(last)).unwrap()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = if quick { 5 } else { 25 };
    let per_round = if quick { 40 } else { 200 };
    let t = now();
    let clock = Arc::new(FixedClock::new(t));
    let issuer = Issuer::new(
        ISS,
        KeySet::new(SigningKey::generate(Algorithm::EdDSA).unwrap()),
    )
    .with_clock(clock.clone());
    let agent = AgentIdentity::new(
        parse_spiffe_id("spiffe://acme.bench/agent/orchestrator").unwrap(),
        ModelRef::new("openai", "gpt-5", "2026-08-01"),
        &AgentConfiguration::new("You orchestrate.", vec![]),
        RuntimeDescriptor::new("process"),
    )
    .unwrap();
    let scopes = "ledger.*:read payments:approve{amount<=1000,currency=USD}";
    issuer.register(
        agent.spiffe_id(),
        AgentRegistration::new(ScopeSet::parse(scopes).unwrap()),
    );
    let keys: Vec<SigningKey> = (0..5)
        .map(|_| SigningKey::generate(Algorithm::EdDSA).unwrap())
        .collect();
    let plain = issuer
        .issue(&TokenRequest::new(
            &agent,
            AUD,
            ScopeSet::parse(scopes).unwrap(),
            "t1",
            "bench",
        ))
        .unwrap()
        .token;
    let root = issuer
        .issue(
            &TokenRequest::new(&agent, AUD, ScopeSet::parse(scopes).unwrap(), "t2", "bench")
                .bind_dpop(keys[0].public_key().thumbprint()),
        )
        .unwrap()
        .token;
    let narrowing = [
        "ledger.*:read payments:approve{amount<=500,currency=USD}",
        "ledger.*:read payments:approve{amount<=100,currency=USD}",
        "ledger.ar:read payments:approve{amount<=100,currency=USD}",
        "ledger.ar:read",
    ];
    let mut links: Vec<String> = Vec::new();
    for (i, s) in narrowing.iter().enumerate() {
        let parent = links.last().cloned().unwrap_or_else(|| root.clone());
        let claims = LinkClaims {
            prv: String::new(),
            jkt: keys[i + 1].public_key().thumbprint(),
            scope: ScopeSet::parse(s).unwrap(),
            exp: t + 600,
            iat: t,
            budget: None,
            sub: None,
            jti: None,
            intent: None,
        };
        links.push(attenuate(&keys[i], &parent, &claims).unwrap());
    }
    let refs: Vec<&str> = links.iter().map(String::as_str).collect();
    let total = 2 * rounds * per_round;
    let proofs: Vec<String> = (0..total + 1)
        .map(|i| proof(&keys[4], &links[3], i, t))
        .collect();
    let verifier = Verifier::new(issuer.jwks(), ISS, AUD).with_clock(clock.clone());
    let chain = ChainVerifier::new(verifier.clone(), DpopVerifier::new(clock.clone()))
        .with_clock(clock.clone());
    let walking = ChainVerifier::new(verifier.clone(), DpopVerifier::new(clock.clone()))
        .with_clock(clock.clone())
        .with_cache(0);
    let request = DpopRequest {
        method: "GET",
        url: URL,
    };
    assert!(verifier.verify(&plain).is_ok());
    assert_eq!(
        chain
            .verify(&root, &refs, &proofs[total], &request)
            .unwrap()
            .scopes
            .to_string(),
        "ledger.ar:read"
    );

    // The biscuit peer: authority facts for the same rights, four blocks of narrowing checks,
    // verified from bytes with the root public key and authorized for the same request.
    let root_kp = biscuit_auth::KeyPair::new();
    let mut token = biscuit!(
        r#"right("ledger.ar", "read"); right("ledger.ap", "read"); right("payments", "approve"); amount_limit(1000); currency("USD");"#
    )
    .build(&root_kp)
    .unwrap();
    for check in [
        block!(r#"check if resource($r), operation("read") or operation("approve");"#),
        block!(r#"check if amount($a), $a <= 100 or operation("read");"#),
        block!(r#"check if resource($r), $r.starts_with("ledger.ar") or operation("approve");"#),
        block!(r#"check if operation("read"), resource("ledger.ar");"#),
    ] {
        token = token.append(check).unwrap();
    }
    let bytes = token.to_vec().unwrap();
    let public = root_kp.public();
    let biscuit_check = || {
        let b = biscuit_auth::Biscuit::from(&bytes, public).unwrap();
        let mut a = authorizer!(
            r#"resource("ledger.ar"); operation("read"); amount(0); allow if right($r, $op), resource($r), operation($op);"#
        )
        .build(&b)
        .unwrap();
        a.authorize().is_ok()
    };
    assert!(biscuit_check());

    let (mut one, mut four, mut again, mut bisc) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut next_proof = 0;
    for _ in 0..rounds {
        let s = Instant::now();
        for _ in 0..per_round {
            black_box(verifier.verify(black_box(&plain)).unwrap());
        }
        one.push(s.elapsed().as_nanos() as f64 / per_round as f64);
        let s = Instant::now();
        for _ in 0..per_round {
            black_box(
                walking
                    .verify(&root, &refs, &proofs[next_proof], &request)
                    .unwrap(),
            );
            next_proof += 1;
        }
        four.push(s.elapsed().as_nanos() as f64 / per_round as f64);
        let s = Instant::now();
        for _ in 0..per_round {
            black_box(
                chain
                    .verify(&root, &refs, &proofs[next_proof], &request)
                    .unwrap(),
            );
            next_proof += 1;
        }
        again.push(s.elapsed().as_nanos() as f64 / per_round as f64);
        let s = Instant::now();
        for _ in 0..per_round {
            assert!(black_box(biscuit_check()));
        }
        bisc.push(s.elapsed().as_nanos() as f64 / per_round as f64);
    }
    let (one, four, again, bisc) = (median(one), median(four), median(again), median(bisc));
    println!(
        "offline delegation chain ({rounds} interleaved rounds x {per_round} calls, median per call):"
    );
    println!(
        "  one EdDSA task token verify                      {:>9.1} us",
        one / 1e3
    );
    println!(
        "  agentiam depth-4 chain, first time (full walk)   {:>9.1} us   (6 Ed25519 verifies)",
        four / 1e3
    );
    println!(
        "  agentiam depth-4 chain, presented again (cache)  {:>9.1} us   (1 Ed25519 verify: the proof)",
        again / 1e3
    );
    println!(
        "  biscuit-auth 6, 4 attenuation blocks, authorize  {:>9.1} us   (5 Ed25519 verifies + Datalog)",
        bisc / 1e3
    );
    let verdict = |ok: bool| if ok { "MET" } else { "MISSED" };
    let ratio = four / one;
    println!(
        "agentiam depth-4 offline chain, first time / one token verify = {ratio:.2}x (target <= 6.5x: {})",
        verdict(ratio <= 6.5)
    );
    let ratio = again / one;
    println!(
        "agentiam depth-4 offline chain, presented again / one token verify = {ratio:.2}x (target <= 1.3x: {})",
        verdict(ratio <= 1.3)
    );
    println!(
        "agentiam depth-4 chain / biscuit depth-4 = {:.2}x first time, {:.2}x presented again",
        four / bisc,
        again / bisc
    );
}
