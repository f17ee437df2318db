//! Interoperability with the jsonwebtoken crate: tokens it mints verify here, and it verifies ours.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "test harness: a panic is a failed test"
)]

use std::sync::Arc;

use agentiam_identity::{Algorithm, Jwks, PublicKey};
use agentiam_token::{FixedClock, Verifier};
use aws_lc_rs::signature::{self, KeyPair};
use serde_json::json;

const NOW: i64 = 1_800_000_000;

fn claims() -> serde_json::Value {
    json!({"iss": "https://i.test", "sub": "client", "aud": "svc", "iat": NOW, "exp": NOW + 60, "jti": "j", "scope": "a:b"})
}

fn verifier(key: PublicKey) -> Verifier {
    Verifier::new(Jwks::from_keys([key]), "https://i.test", "svc")
        .with_clock(Arc::new(FixedClock::new(NOW)))
}

#[test]
fn agentiam_verifies_jsonwebtoken_eddsa_and_es256() {
    let ed_pkcs8 =
        signature::Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).unwrap();
    let ed = signature::Ed25519KeyPair::from_pkcs8(ed_pkcs8.as_ref()).unwrap();
    let ed_pub = PublicKey::from_raw(Algorithm::EdDSA, ed.public_key().as_ref(), None).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(ed_pub.kid().to_owned());
    let token = jsonwebtoken::encode(
        &header,
        &claims(),
        &jsonwebtoken::EncodingKey::from_ed_der(ed_pkcs8.as_ref()),
    )
    .unwrap();
    assert_eq!(
        verifier(ed_pub).verify(&token).unwrap().claims().sub,
        "client"
    );

    let rng = aws_lc_rs::rand::SystemRandom::new();
    let ec_pkcs8 =
        signature::EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap();
    let ec = signature::EcdsaKeyPair::from_pkcs8(
        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        ec_pkcs8.as_ref(),
    )
    .unwrap();
    let ec_pub = PublicKey::from_raw(Algorithm::ES256, ec.public_key().as_ref(), None).unwrap();
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    let token = jsonwebtoken::encode(
        &header,
        &claims(),
        &jsonwebtoken::EncodingKey::from_ec_der(ec_pkcs8.as_ref()),
    )
    .unwrap();
    assert_eq!(
        verifier(ec_pub).verify(&token).unwrap().alg(),
        Algorithm::ES256
    );
}

#[test]
fn jsonwebtoken_verifies_agentiam_tokens_through_the_published_jwk() {
    for alg in [Algorithm::EdDSA, Algorithm::ES256] {
        let key = agentiam_identity::SigningKey::generate(alg).unwrap();
        let token = agentiam_token::sign_compact(
            &key,
            &Default::default(),
            claims().to_string().as_bytes(),
        )
        .unwrap();
        let jwk: jsonwebtoken::jwk::Jwk =
            serde_json::from_str(&serde_json::to_string(&key.public_key().to_jwk()).unwrap())
                .unwrap();
        let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
        let jalg = match alg {
            Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
            Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
        };
        let mut validation = jsonwebtoken::Validation::new(jalg);
        validation.set_audience(&["svc"]);
        validation.set_issuer(&["https://i.test"]);
        validation.validate_exp = false; // the claims use a fixed time; jsonwebtoken reads the wall clock
        let data =
            jsonwebtoken::decode::<serde_json::Value>(&token, &decoding, &validation).unwrap();
        assert_eq!(data.claims["scope"], "a:b");
    }
}
