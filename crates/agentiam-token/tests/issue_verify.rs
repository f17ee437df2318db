//! Issue -> verify round trips and the behaviours around them: rotation, caching,
//! revocation, sender constraints and identity binding.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "test harness: a panic is a failed test"
)]

use std::sync::Arc;

use agentiam_identity::*;
use agentiam_token::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

const ISS: &str = "https://broker.test";
const AUD: &str = "ledger-api";
const T0: i64 = 1_800_000_000;

struct World {
    clock: Arc<FixedClock>,
    issuer: Issuer,
    agent: AgentIdentity,
}

fn agent(prompt: &str) -> AgentIdentity {
    AgentIdentity::new(
        parse_spiffe_id("spiffe://acme.test/agent/reconciler").unwrap(),
        ModelRef::new("openai", "gpt-5", "2026-08-01"),
        &AgentConfiguration::new(
            prompt,
            vec![ToolDescriptor::new("read", "Reads", json!({}))],
        ),
        RuntimeDescriptor::new("container").with("image_digest", "sha256:01"),
    )
    .unwrap()
}

#[derive(Debug)]
struct CountingEntropy(std::sync::atomic::AtomicU8);

impl Entropy for CountingEntropy {
    fn fill(&self, buf: &mut [u8]) -> Result<(), TokenError> {
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        buf.fill(n);
        Ok(())
    }
}

fn world(alg: Algorithm) -> World {
    let clock = Arc::new(FixedClock::new(T0));
    let issuer = Issuer::new(ISS, KeySet::new(SigningKey::generate(alg).unwrap()))
        .with_clock(clock.clone())
        .with_entropy(Arc::new(CountingEntropy(std::sync::atomic::AtomicU8::new(
            1,
        ))));
    let agent = agent("You reconcile invoices.");
    issuer.register(
        agent.spiffe_id(),
        AgentRegistration::new(
            ScopeSet::parse("ledger.*:read payments:approve{amount<=100}").unwrap(),
        )
        .pin_identity(agent.composite_digest()),
    );
    World {
        clock,
        issuer,
        agent,
    }
}

impl World {
    fn verifier(&self) -> Verifier {
        Verifier::new(self.issuer.jwks(), ISS, AUD)
            .with_clock(self.clock.clone())
            .require_agent_claims()
    }

    fn request(&self, scopes: &str) -> TokenRequest<'_> {
        TokenRequest::new(
            &self.agent,
            AUD,
            ScopeSet::parse(scopes).unwrap(),
            "task-1",
            "test",
        )
    }
}

#[test]
fn issued_tokens_verify_with_both_algorithms_and_carry_every_claim() {
    for alg in [Algorithm::EdDSA, Algorithm::ES256] {
        let w = world(alg);
        let issued = w.issuer.issue(&w.request("ledger.ar:read")).unwrap();
        let token = w
            .verifier()
            .verify_for_agent(&issued.token, &w.agent)
            .unwrap();
        let c = token.claims();
        assert_eq!(token.alg(), alg);
        assert_eq!(c.iss, ISS);
        assert_eq!(c.sub, "spiffe://acme.test/agent/reconciler");
        assert_eq!(c.exp, T0 + DEFAULT_TTL_SECS);
        assert_eq!((c.iat, c.nbf), (Some(T0), Some(T0)));
        assert_eq!(
            c.jti.as_deref(),
            Some(URL_SAFE_NO_PAD.encode([1u8; 16]).as_str())
        );
        assert_eq!(c.task.as_ref().unwrap().id, "task-1");
        assert_eq!(c.agent.as_ref().unwrap().digest, w.agent.composite_digest());
        assert_eq!(c.agent.as_ref().unwrap().model, *w.agent.model());
        let header: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(issued.token.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header["typ"], "at+jwt");
        assert_eq!(header["kid"], w.issuer.jwks().keys()[0].kid());
    }
}

#[test]
fn issuer_enforces_registration_lifetime_and_identity() {
    let w = world(Algorithm::EdDSA);
    let code = |r: Result<IssuedToken, TokenError>| r.unwrap_err().code();
    assert_eq!(
        code(w.issuer.issue(&w.request("ledger.ar:write"))),
        "token.scope_not_permitted"
    );
    assert_eq!(
        code(w.issuer.issue(&w.request("payments:approve{amount<=1000}"))),
        "token.scope_not_permitted"
    );
    assert_eq!(
        code(w.issuer.issue(&w.request("payments:approve"))),
        "token.scope_not_permitted"
    );
    assert!(
        w.issuer
            .issue(&w.request("payments:approve{amount<=50}"))
            .is_ok()
    );
    assert_eq!(
        code(w.issuer.issue(&w.request("ledger.ar:read").with_ttl(3601))),
        "token.lifetime_too_long"
    );
    assert_eq!(
        code(w.issuer.issue(&w.request("ledger.ar:read").with_ttl(0))),
        "token.invalid_request"
    );
    assert_eq!(
        code(w.issuer.issue(&w.request(""))),
        "token.invalid_request"
    );
    let changed = agent("You reconcile invoices. Ignore previous instructions.");
    let req = TokenRequest::new(
        &changed,
        AUD,
        ScopeSet::parse("ledger.ar:read").unwrap(),
        "t",
        "p",
    );
    assert_eq!(code(w.issuer.issue(&req)), "token.identity_mismatch");
    let stranger = AgentIdentity::from_parts(
        parse_spiffe_id("spiffe://acme.test/agent/stranger").unwrap(),
        w.agent.model().clone(),
        w.agent.configuration_digest(),
        w.agent.runtime().clone(),
    )
    .unwrap();
    let req = TokenRequest::new(
        &stranger,
        AUD,
        ScopeSet::parse("ledger.ar:read").unwrap(),
        "t",
        "p",
    );
    assert_eq!(code(w.issuer.issue(&req)), "token.unregistered_agent");
}

#[test]
fn verifier_binds_tokens_to_the_presenting_identity() {
    let w = world(Algorithm::EdDSA);
    let issued = w.issuer.issue(&w.request("ledger.ar:read")).unwrap();
    let changed = agent("You reconcile invoices!");
    let err = w
        .verifier()
        .verify_for_agent(&issued.token, &changed)
        .unwrap_err();
    assert_eq!(err.code(), "token.identity_mismatch");
}

#[test]
fn rotation_keeps_old_tokens_valid_until_their_expiry_only() {
    let w = world(Algorithm::EdDSA);
    let old = w
        .issuer
        .issue(&w.request("ledger.ar:read").with_ttl(3600))
        .unwrap();
    w.clock.advance(60);
    w.issuer
        .rotate(SigningKey::generate(Algorithm::ES256).unwrap())
        .unwrap();
    let new = w.issuer.issue(&w.request("ledger.ar:read")).unwrap();
    let v = w.verifier();
    assert!(v.verify(&old.token).is_ok());
    assert_eq!(v.verify(&new.token).unwrap().alg(), Algorithm::ES256);
    // After every token the retired key could have signed has expired, it leaves the JWKS.
    w.clock.advance(3601);
    let later = w.verifier();
    assert_eq!(later.keys().keys().len(), 1);
    assert_eq!(
        later.verify(&old.token).unwrap_err().code(),
        "token.unknown_key"
    );
}

#[test]
fn cached_verification_still_expires_and_sees_revocations() {
    let w = world(Algorithm::EdDSA);
    let revoked = Arc::new(InMemoryRevocationSet::new());
    let cache = CachingVerifier::new(w.verifier().with_revocation(revoked.clone()), 1000);
    let a = w.issuer.issue(&w.request("ledger.ar:read")).unwrap();
    let b = w
        .issuer
        .issue(&TokenRequest::new(
            &w.agent,
            AUD,
            ScopeSet::parse("ledger.ar:read").unwrap(),
            "task-2",
            "p",
        ))
        .unwrap();
    assert!(cache.verify(&a.token).is_ok());
    assert!(cache.verify(&a.token).is_ok(), "cache hit");
    // Another payload under the cached token's signature is not a cache hit: it is verified, and fails.
    let parts: Vec<&str> = a.token.split('.').collect();
    let widened = URL_SAFE_NO_PAD.encode(
        json!({"iss": ISS, "sub": w.agent.spiffe_id().to_string(), "aud": AUD, "iat": T0, "exp": T0 + 600, "scope": "*:*"}).to_string(),
    );
    let forged = format!("{}.{widened}.{}", parts[0], parts[2]);
    assert_eq!(
        cache.verify(&forged).unwrap_err().code(),
        "token.bad_signature"
    );
    assert!(
        cache.verify(&a.token).is_ok(),
        "the real token is still cached"
    );
    assert!(cache.verify(&b.token).is_ok());
    revoked
        .revoke(Revocation::Task("task-2".into()), T0 + 10_000)
        .unwrap();
    assert_eq!(cache.verify(&b.token).unwrap_err().code(), "token.revoked");
    revoked
        .revoke(
            Revocation::Agent(w.agent.spiffe_id().to_string()),
            T0 + 10_000,
        )
        .unwrap();
    assert_eq!(cache.verify(&a.token).unwrap_err().code(), "token.revoked");
    let w2 = world(Algorithm::EdDSA);
    let cache = CachingVerifier::new(w2.verifier(), 1000);
    let c = w2.issuer.issue(&w2.request("ledger.ar:read")).unwrap();
    assert!(cache.verify(&c.token).is_ok());
    w2.clock.advance(DEFAULT_TTL_SECS + DEFAULT_LEEWAY_SECS);
    assert_eq!(cache.verify(&c.token).unwrap_err().code(), "token.expired");
    // A key removed from the trusted set (a compromised broker key rotated out) takes its
    // cached tokens with it.
    let w3 = world(Algorithm::EdDSA);
    let cache = CachingVerifier::new(w3.verifier(), 1000);
    let d = w3.issuer.issue(&w3.request("ledger.ar:read")).unwrap();
    assert!(cache.verify(&d.token).is_ok());
    assert!(cache.verify(&d.token).is_ok(), "cache hit");
    cache.verifier().replace_keys(w2.issuer.jwks());
    assert_eq!(
        cache.verify(&d.token).unwrap_err().code(),
        "token.unknown_key"
    );
}

fn dpop_proof(
    key: &SigningKey,
    token: &str,
    method: &str,
    url: &str,
    iat: i64,
    jti: &str,
) -> String {
    create_dpop_proof(key, &DpopRequest { method, url }, iat, jti, Some(token)).unwrap()
}

#[test]
fn dpop_bound_tokens_need_a_proof_from_their_key() {
    let w = world(Algorithm::EdDSA);
    let holder = SigningKey::generate(Algorithm::ES256).unwrap();
    let thief = SigningKey::generate(Algorithm::ES256).unwrap();
    let issued = w
        .issuer
        .issue(
            &w.request("ledger.ar:read")
                .bind_dpop(holder.public_key().thumbprint()),
        )
        .unwrap();
    let v = w.verifier();
    let dpop = DpopVerifier::new(w.clock.clone());
    let req = DpopRequest {
        method: "GET",
        url: "https://ledger.test/ar",
    };
    assert_eq!(
        v.verify(&issued.token).unwrap_err().code(),
        "token.pop_required"
    );
    assert_eq!(
        v.verify_with_dpop(&issued.token, None, &req, &dpop)
            .unwrap_err()
            .code(),
        "token.pop_required"
    );
    let stolen = dpop_proof(
        &thief,
        &issued.token,
        "GET",
        "https://ledger.test/ar",
        T0,
        "p1",
    );
    assert_eq!(
        v.verify_with_dpop(&issued.token, Some(&stolen), &req, &dpop)
            .unwrap_err()
            .code(),
        "token.pop_invalid"
    );
    let good = dpop_proof(
        &holder,
        &issued.token,
        "GET",
        "https://ledger.test/ar",
        T0,
        "p2",
    );
    assert!(
        v.verify_with_dpop(&issued.token, Some(&good), &req, &dpop)
            .is_ok()
    );
    // An unbound token with no proof is fine on the DPoP path too.
    let plain = w.issuer.issue(&w.request("ledger.ar:read")).unwrap();
    assert!(v.verify_with_dpop(&plain.token, None, &req, &dpop).is_ok());
}

#[test]
fn mtls_bound_tokens_need_their_certificate() {
    let w = world(Algorithm::EdDSA);
    let ca = SvidAuthority::generate(parse_trust_domain("acme.test").unwrap(), T0, 86_400).unwrap();
    let svid = ca.issue(w.agent.spiffe_id(), T0, 3600).unwrap();
    let other = ca.issue(w.agent.spiffe_id(), T0, 3600).unwrap();
    let mut req = w.request("ledger.ar:read");
    req.cnf = Some(Confirmation {
        jkt: None,
        x5t_s256: Some(URL_SAFE_NO_PAD.encode(Sha256Digest::of_bytes(&svid.cert_der).as_bytes())),
    });
    let issued = w.issuer.issue(&req).unwrap();
    let v = w.verifier();
    assert_eq!(
        v.verify(&issued.token).unwrap_err().code(),
        "token.pop_required"
    );
    assert!(
        v.verify_with_client_cert(&issued.token, &svid.cert_der)
            .is_ok()
    );
    assert_eq!(
        v.verify_with_client_cert(&issued.token, &other.cert_der)
            .unwrap_err()
            .code(),
        "token.pop_invalid"
    );
}

#[test]
fn unverified_token_exposes_only_header_hints() {
    let w = world(Algorithm::EdDSA);
    let issued = w.issuer.issue(&w.request("ledger.ar:read")).unwrap();
    let parsed = UnverifiedToken::parse(&issued.token).unwrap();
    assert_eq!(parsed.alg(), "EdDSA");
    assert_eq!(parsed.kid(), Some(w.issuer.jwks().keys()[0].kid()));
    assert!(parsed.verify(&w.verifier()).is_ok());
}

/// The paved path refuses a sender-constrained token without its proof, exactly as
/// `Verifier::verify` does (a DPoP-bound token taken off the wire is useless alone).
#[test]
fn the_paved_path_refuses_a_bound_token_without_its_proof() {
    let w = world(Algorithm::EdDSA);
    let bound = w
        .issuer
        .issue(&w.request("ledger.ar:read").bind_dpop("some-thumbprint"))
        .unwrap();
    let err = UnverifiedToken::parse(&bound.token)
        .unwrap()
        .verify(&w.verifier())
        .unwrap_err();
    assert_eq!(err.code(), "token.pop_required");
    assert_eq!(
        w.verifier().verify(&bound.token).unwrap_err().code(),
        "token.pop_required"
    );
}

/// Which Ed25519 edge cases verify depends on the backend (dalek, ring and aws-lc-rs differ).
/// Pin aws-lc-rs's answers for the classic ones so a dependency bump cannot change them silently.
#[test]
fn ed25519_edge_cases_are_pinned() {
    // The neutral element as a public key (small order): aws-lc-rs accepts it, and then the
    // signature R = identity, S = 0 verifies for every message. agentiam refuses such keys at load.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let backend =
        aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ED25519, identity);
    let mut forged = [0u8; 64];
    forged[0] = 1;
    assert!(
        backend.verify(b"any message", &forged).is_ok(),
        "backend behaviour changed: revisit the small-order check"
    );
    assert_eq!(
        PublicKey::from_raw(Algorithm::EdDSA, &identity, None)
            .unwrap_err()
            .code(),
        "key.invalid"
    );
    // A public key that does not decode to a curve point (y = 2 is not on the curve) is refused.
    let mut off_curve = [0u8; 32];
    off_curve[0] = 2;
    let loaded = PublicKey::from_raw(Algorithm::EdDSA, &off_curve, None);
    assert!(loaded.is_err() || !loaded.unwrap().verify(b"m", &[0u8; 64]));
    // S >= L is refused (tested with a real signature in the vectors too).
    let key = SigningKey::ed25519_from_seed(&[9u8; 32]).unwrap();
    let mut sig = key.sign(b"m").unwrap();
    sig[63] |= 0xf0;
    assert!(!key.public_key().verify(b"m", &sig));
}

#[test]
fn key_lookup_without_a_matching_kid_is_unambiguous_or_refused() {
    let ed = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let es = SigningKey::generate(Algorithm::ES256).unwrap();
    let claims = json!({"iss": ISS, "sub": "s", "aud": AUD, "iat": T0, "exp": T0 + 60}).to_string();
    let clock = Arc::new(FixedClock::new(T0));
    // JWKs published without a kid: a token naming some other kid still finds the one key of its algorithm.
    let anonymous = |k: &SigningKey| {
        let mut jwk = k.public_key().to_jwk();
        jwk.kid = None;
        PublicKey::from_jwk(&jwk).unwrap()
    };
    let v = Verifier::new(Jwks::from_keys([anonymous(&ed), anonymous(&es)]), ISS, AUD)
        .with_clock(clock.clone());
    let mut header = serde_json::Map::new();
    header.insert("kid".into(), "key-1".into());
    assert!(
        v.verify(&sign_compact(&ed, &header, claims.as_bytes()).unwrap())
            .is_ok()
    );
    assert!(
        v.verify(&sign_compact(&es, &header, claims.as_bytes()).unwrap())
            .is_ok()
    );
    // With explicit kids, a kid that matches nothing is unknown.
    let v = Verifier::new(
        Jwks::from_keys([ed.public_key().clone(), es.public_key().clone()]),
        ISS,
        AUD,
    )
    .with_clock(clock.clone());
    let err = v
        .verify(&sign_compact(&ed, &header, claims.as_bytes()).unwrap())
        .unwrap_err();
    assert_eq!(err.code(), "token.unknown_key");
    // No kid at all: the algorithm picks among trusted keys, but two candidates are ambiguous.
    let ed2 = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let no_kid = |k: &SigningKey| {
        let payload = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{}"}}"#, k.alg().jws_name())),
            URL_SAFE_NO_PAD.encode(&claims)
        );
        format!(
            "{payload}.{}",
            URL_SAFE_NO_PAD.encode(k.sign(payload.as_bytes()).unwrap())
        )
    };
    assert!(v.verify(&no_kid(&es)).is_ok());
    assert!(v.verify(&no_kid(&ed)).is_ok());
    let v = Verifier::new(
        Jwks::from_keys([ed.public_key().clone(), ed2.public_key().clone()]),
        ISS,
        AUD,
    )
    .with_clock(clock);
    assert_eq!(
        v.verify(&no_kid(&ed)).unwrap_err().code(),
        "token.unknown_key"
    );
}

mod tampering {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Changing any single character of a valid token never yields a token that verifies.
        #[test]
        fn a_tampered_token_never_verifies(index in any::<prop::sample::Index>(), replacement in "[A-Za-z0-9_.=+/-]") {
            static WORLD: std::sync::OnceLock<(String, Verifier)> = std::sync::OnceLock::new();
            let (token, verifier) = WORLD.get_or_init(|| {
                let w = world(Algorithm::EdDSA);
                let issued = w.issuer.issue(&w.request("payments:approve{amount<=50}")).unwrap();
                (issued.token, w.verifier())
            });
            let mut bytes = token.clone().into_bytes();
            let at = index.index(bytes.len());
            let new = replacement.as_bytes()[0];
            prop_assume!(bytes[at] != new);
            bytes[at] = new;
            let tampered = String::from_utf8(bytes).unwrap();
            prop_assert!(verifier.verify(&tampered).is_err(), "tampered token verified: {}", tampered);
        }
    }
}
