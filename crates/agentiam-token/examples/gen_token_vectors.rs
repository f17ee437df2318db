//! Writes `testvectors/tokens.json`: the token attack catalogue as data, read by `cargo test`
//! and by pytest. Run from the workspace root:
//!
//! ```text
//! cargo run -p agentiam-token --example gen_token_vectors > testvectors/tokens.json
//! ```
//!
//! Ed25519 keys come from fixed seeds and the P-256 key from a fixed scalar, so tokens are
//! stable except ES256 signatures, which are randomized by the backend.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs,
    reason = "a generator run by developers: a failure is a loud, immediate bug"
)]

use agentiam_identity::{Jwks, SigningKey};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use serde_json::{Map, Value, json};

const NOW: i64 = 1_800_000_000;
const ISS: &str = "https://broker.agentiam.test";
const AUD: &str = "ledger-api";
const AGENT_A: &str = "spiffe://acme.test/agent/reconciler";
const AGENT_B: &str = "spiffe://acme.test/agent/mailer";
const DIGEST_A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const DIGEST_A2: &str = "sha256:a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2";
const DIGEST_B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn claims() -> Value {
    json!({
        "iss": ISS,
        "sub": AGENT_A,
        "aud": AUD,
        "iat": NOW - 60,
        "nbf": NOW - 60,
        "exp": NOW + 840,
        "jti": "tok-0001",
        "client_id": AGENT_A,
        "scope": "ledger.ar:read payments:approve{amount<=10000,currency=USD}",
        "task": {"id": "task-42", "purpose": "reconcile March receivables"},
        "agent": {
            "model": {"provider": "openai", "name": "gpt-5", "version": "2026-08-01"},
            "config_digest": "sha256:1111111111111111111111111111111111111111111111111111111111111111",
            "runtime_digest": "sha256:2222222222222222222222222222222222222222222222222222222222222222",
            "digest": DIGEST_A
        }
    })
}

fn with(mut base: Value, edits: &[(&str, Value)]) -> Value {
    for (k, v) in edits {
        if v.is_null() && *k != "exp_null" {
            base.as_object_mut().unwrap().remove(*k);
        } else {
            base[*k] = v.clone();
        }
    }
    base
}

/// JSON with every object's members in key order, whichever map serde_json was built with (the
/// `preserve_order` feature, which a workspace build unifies in, keeps insertion order): the
/// vectors are the same bytes however the generator is built.
fn sorted_json(value: &impl serde::Serialize) -> Vec<u8> {
    fn sorted(value: Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut members: Vec<(String, Value)> = map.into_iter().collect();
                members.sort_by(|a, b| a.0.cmp(&b.0));
                Value::Object(members.into_iter().map(|(k, v)| (k, sorted(v))).collect())
            }
            Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
            other => other,
        }
    }
    serde_json::to_vec(&sorted(serde_json::to_value(value).unwrap())).unwrap()
}

fn header(key: &SigningKey, extra: &[(&str, Value)]) -> Map<String, Value> {
    let mut h = Map::new();
    h.insert("typ".into(), "at+jwt".into());
    h.insert("alg".into(), key.alg().jws_name().into());
    h.insert("kid".into(), key.kid().into());
    for (k, v) in extra {
        if v.is_null() {
            h.remove(*k);
        } else {
            h.insert((*k).into(), v.clone());
        }
    }
    h
}

/// Signs raw header and payload bytes with `key` (whatever `alg` the header claims).
fn sign_raw(key: &SigningKey, header: &[u8], payload: &[u8]) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let sig = key.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", b64(&sig))
}

fn sign(key: &SigningKey, header: &Map<String, Value>, claims: &Value) -> String {
    sign_raw(key, &sorted_json(header), &sorted_json(claims))
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    aws_lc_rs::hmac::sign(&k, msg).as_ref().to_vec()
}

/// Adds the Ed25519 group order L to the little-endian scalar S: same point, non-canonical S.
fn add_group_order(s: &mut [u8]) {
    let l: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(s[i]) + u16::from(l[i]) + carry;
        s[i] = (sum & 0xff) as u8;
        carry = sum >> 8;
    }
}

struct Vectors {
    tests: Vec<Value>,
}

impl Vectors {
    fn add(&mut self, comment: &str, flags: &[&str], token: String, error: Option<&str>) {
        self.add_with(comment, flags, token, error, Value::Null);
    }

    fn add_with(
        &mut self,
        comment: &str,
        flags: &[&str],
        token: String,
        error: Option<&str>,
        presented_by: Value,
    ) {
        let mut t = json!({
            "tcId": self.tests.len() + 1,
            "comment": comment,
            "flags": flags,
            "token": token,
            "result": if error.is_some() { "invalid" } else { "valid" },
        });
        if let Some(e) = error {
            t["error"] = e.into();
        }
        if !presented_by.is_null() {
            t["presented_by"] = presented_by;
        }
        self.tests.push(t);
    }
}

fn main() {
    println!("{}", serde_json::to_string_pretty(&document()).unwrap());
}

/// The vector document (also built by the crate's `vectors_fresh` test, which checks that the
/// committed file is what this generator writes).
pub(crate) fn document() -> serde_json::Value {
    let ed = SigningKey::ed25519_from_seed(&[7u8; 32]).unwrap();
    let ed2 = SigningKey::ed25519_from_seed(&[8u8; 32]).unwrap();
    let attacker = SigningKey::ed25519_from_seed(&[66u8; 32]).unwrap();
    let es_jwk = json!({
        "kty": "EC", "crv": "P-256",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
        "d": "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"
    });
    let es = SigningKey::from_private_jwk(&es_jwk.to_string()).unwrap();
    let jwks = Jwks::from_keys([
        ed.public_key().clone(),
        es.public_key().clone(),
        ed2.public_key().clone(),
    ]);

    let mut v = Vectors { tests: Vec::new() };
    let c = claims();
    let good = sign(&ed, &header(&ed, &[]), &c);

    // --- valid tokens -------------------------------------------------------------------
    v.add(
        "EdDSA token with agentiam claims",
        &["Valid"],
        good.clone(),
        None,
    );
    v.add(
        "ES256 token with agentiam claims",
        &["Valid"],
        sign(&es, &header(&es, &[]), &c),
        None,
    );
    let rfc9068 = json!({"iss": ISS, "sub": "client-7", "aud": AUD, "exp": NOW + 300, "iat": NOW, "jti": "j-9068", "client_id": "client-7", "scope": "ledger.ar:read"});
    v.add(
        "Only the RFC 9068 claims",
        &["Valid", "Rfc9068"],
        sign(&ed, &header(&ed, &[]), &rfc9068),
        None,
    );
    v.add(
        "typ JWT instead of at+jwt",
        &["Valid"],
        sign(&ed, &header(&ed, &[("typ", json!("JWT"))]), &c),
        None,
    );
    v.add(
        "No typ header",
        &["Valid"],
        sign(&ed, &header(&ed, &[("typ", Value::Null)]), &c),
        None,
    );
    v.add(
        "aud is an array containing the audience",
        &["Valid"],
        sign(
            &ed,
            &header(&ed, &[]),
            &with(c.clone(), &[("aud", json!(["other", AUD]))]),
        ),
        None,
    );
    v.add(
        "RFC 9864 alg name Ed25519",
        &["Valid"],
        sign(&ed, &header(&ed, &[("alg", json!("Ed25519"))]), &c),
        None,
    );
    v.add(
        "Expired 4 s ago: inside the 5 s leeway",
        &["Valid", "Leeway"],
        sign(
            &ed,
            &header(&ed, &[]),
            &with(c.clone(), &[("exp", json!(NOW - 4))]),
        ),
        None,
    );
    v.add(
        "Fractional NumericDate exp",
        &["Valid"],
        sign(
            &ed,
            &header(&ed, &[]),
            &with(c.clone(), &[("exp", json!(NOW as f64 + 300.5))]),
        ),
        None,
    );
    v.add(
        "Unknown extra claims are ignored",
        &["Valid"],
        sign(
            &ed,
            &header(&ed, &[]),
            &with(c.clone(), &[("x-tenant", json!({"id": 3}))]),
        ),
        None,
    );
    v.add_with(
        "Presented by the agent it was issued to",
        &["Valid", "IdentityBinding"],
        good.clone(),
        None,
        json!({"spiffe_id": AGENT_A, "digest": DIGEST_A}),
    );

    // --- algorithm attacks --------------------------------------------------------------
    for none in ["none", "None", "NONE", "nOnE"] {
        let h = sorted_json(&header(&ed, &[("alg", json!(none))]));
        let p = sorted_json(&c);
        v.add(
            &format!("alg {none} with empty signature"),
            &["AlgNone"],
            format!("{}.{}.", b64(&h), b64(&p)),
            Some("token.alg_not_allowed"),
        );
    }
    let h = sorted_json(&header(&ed, &[("alg", json!("none"))]));
    v.add(
        "alg none with a real signature attached",
        &["AlgNone"],
        sign_raw(&ed, &h, &sorted_json(&c)),
        Some("token.alg_not_allowed"),
    );
    for (label, secret) in [
        (
            "raw Ed25519 public key bytes",
            ed.public_key().raw().to_vec(),
        ),
        ("the JWKS JSON text", jwks.to_json().into_bytes()),
        (
            "the public JWK's x member",
            ed.public_key().to_jwk().x.unwrap().into_bytes(),
        ),
    ] {
        let h = sorted_json(&header(&ed, &[("alg", json!("HS256"))]));
        let input = format!("{}.{}", b64(&h), b64(&sorted_json(&c)));
        let mac = hmac_sha256(&secret, input.as_bytes());
        v.add(
            &format!("HS256 keyed with {label}"),
            &["AlgConfusion"],
            format!("{input}.{}", b64(&mac)),
            Some("token.alg_not_allowed"),
        );
    }
    for alg in [
        "RS256", "PS256", "ES384", "ES512", "HS512", "ES256K", "EdDSA ", "eddsa",
    ] {
        v.add(
            &format!("alg {alg:?} is not accepted"),
            &["AlgNotAllowed"],
            sign(&ed, &header(&ed, &[("alg", json!(alg))]), &c),
            Some("token.alg_not_allowed"),
        );
    }
    v.add(
        "alg ES256 in the header, kid of the Ed25519 key",
        &["AlgConfusion"],
        sign(&es, &header(&ed, &[("alg", json!("ES256"))]), &c),
        Some("token.alg_not_allowed"),
    );
    v.add(
        "alg EdDSA in the header, kid of the P-256 key",
        &["AlgConfusion"],
        sign(&ed, &header(&es, &[("alg", json!("EdDSA"))]), &c),
        Some("token.alg_not_allowed"),
    );
    v.add(
        "alg as a JSON array",
        &["Malformed"],
        sign(&ed, &header(&ed, &[("alg", json!(["EdDSA"]))]), &c),
        Some("token.malformed"),
    );
    v.add(
        "No alg header",
        &["Malformed"],
        sign(&ed, &header(&ed, &[("alg", Value::Null)]), &c),
        Some("token.malformed"),
    );

    // --- key-injection headers ------------------------------------------------------------
    let attacker_jwk = serde_json::to_value(attacker.public_key().to_jwk()).unwrap();
    v.add(
        "Embedded jwk of the attacker, attacker kid",
        &["EmbeddedKey"],
        sign(
            &attacker,
            &header(&attacker, &[("jwk", attacker_jwk.clone())]),
            &c,
        ),
        Some("token.unknown_key"),
    );
    v.add(
        "Embedded jwk of the attacker, trusted kid",
        &["EmbeddedKey"],
        sign(
            &attacker,
            &header(&ed, &[("jwk", attacker_jwk.clone())]),
            &c,
        ),
        Some("token.bad_signature"),
    );
    v.add(
        "Embedded jwk, no kid, several trusted keys",
        &["EmbeddedKey"],
        sign(
            &attacker,
            &header(&attacker, &[("jwk", attacker_jwk), ("kid", Value::Null)]),
            &c,
        ),
        Some("token.unknown_key"),
    );
    v.add(
        "jku pointing at the attacker's JWKS",
        &["EmbeddedKey"],
        sign(
            &attacker,
            &header(&attacker, &[("jku", json!("https://evil.test/jwks.json"))]),
            &c,
        ),
        Some("token.unknown_key"),
    );
    v.add(
        "x5u pointing at the attacker's certificate",
        &["EmbeddedKey"],
        sign(
            &attacker,
            &header(&attacker, &[("x5u", json!("https://evil.test/cert.pem"))]),
            &c,
        ),
        Some("token.unknown_key"),
    );
    v.add(
        "x5c with the attacker's certificate",
        &["EmbeddedKey"],
        sign(
            &attacker,
            &header(&attacker, &[("x5c", json!(["MIIBszCCAVmgAwIBAgIUFAKE"]))]),
            &c,
        ),
        Some("token.unknown_key"),
    );
    for kid in [
        "../../../../../../dev/null",
        "/etc/passwd",
        "' OR '1'='1",
        "key\u{0}id",
        "",
    ] {
        v.add(
            &format!("kid {kid:?}"),
            &["KidInjection"],
            sign(&attacker, &header(&attacker, &[("kid", json!(kid))]), &c),
            Some("token.unknown_key"),
        );
    }
    v.add(
        "kid is a number",
        &["Malformed"],
        sign(&ed, &header(&ed, &[("kid", json!(7))]), &c),
        Some("token.malformed"),
    );

    // --- critical headers and types -------------------------------------------------------
    v.add(
        "crit lists an unknown extension",
        &["Crit"],
        sign(
            &ed,
            &header(&ed, &[("crit", json!(["exp"])), ("exp", json!(NOW))]),
            &c,
        ),
        Some("token.crit_unsupported"),
    );
    v.add(
        "crit with b64 false (RFC 7797)",
        &["Crit"],
        sign(
            &ed,
            &header(&ed, &[("crit", json!(["b64"])), ("b64", json!(false))]),
            &c,
        ),
        Some("token.crit_unsupported"),
    );
    v.add(
        "crit empty array",
        &["Crit"],
        sign(&ed, &header(&ed, &[("crit", json!([]))]), &c),
        Some("token.crit_unsupported"),
    );
    v.add(
        "A DPoP proof presented as an access token",
        &["WrongType"],
        sign(&ed, &header(&ed, &[("typ", json!("dpop+jwt"))]), &c),
        Some("token.wrong_type"),
    );
    v.add(
        "An ID token (typ id_token+jwt)",
        &["WrongType"],
        sign(&ed, &header(&ed, &[("typ", json!("logout+jwt"))]), &c),
        Some("token.wrong_type"),
    );

    // --- claim types -----------------------------------------------------------------------
    for (label, claim, value) in [
        ("exp as a string", "exp", json!((NOW + 300).to_string())),
        ("exp as a boolean", "exp", json!(true)),
        ("exp as null", "exp", Value::Null),
        ("exp as an object", "exp", json!({"$date": NOW + 300})),
        ("exp beyond any date", "exp", json!(1e300)),
        ("nbf as a string", "nbf", json!((NOW + 3600).to_string())),
        ("iat as a string", "iat", json!("yesterday")),
        ("aud as a number", "aud", json!(7)),
        ("iss as an array", "iss", json!([ISS])),
        (
            "scope that breaks the grammar",
            "scope",
            json!("payments approve"),
        ),
        ("scope as an array", "scope", json!(["ledger.ar:read"])),
        (
            "agent digest not a sha256 digest",
            "agent",
            json!({"model": {"provider": "p", "name": "n", "version": "v"}, "config_digest": "md5:00", "runtime_digest": DIGEST_A, "digest": DIGEST_A}),
        ),
    ] {
        let claims = if value.is_null() {
            let mut x = c.clone();
            x[claim] = Value::Null;
            x
        } else {
            with(c.clone(), &[(claim, value)])
        };
        v.add(
            label,
            &["ClaimType"],
            sign(&ed, &header(&ed, &[]), &claims),
            Some("token.invalid_claim"),
        );
    }
    let dup = format!(
        r#"{{"iss":"{ISS}","sub":"{AGENT_A}","aud":"{AUD}","iat":{},"jti":"d","exp":{},"exp":{}}}"#,
        NOW - 10,
        NOW - 100,
        NOW + 100
    );
    v.add(
        "Duplicate exp member",
        &["ClaimType"],
        sign_raw(&ed, &sorted_json(&header(&ed, &[])), dup.as_bytes()),
        Some("token.invalid_claim"),
    );

    // --- time ----------------------------------------------------------------------------------
    v.add(
        "Expired 6 s ago: beyond the leeway",
        &["Expired"],
        sign(
            &ed,
            &header(&ed, &[]),
            &with(c.clone(), &[("exp", json!(NOW - 6))]),
        ),
        Some("token.expired"),
    );
    v.add(
        "Expired a year ago",
        &["Expired"],
        sign(
            &ed,
            &header(&ed, &[]),
            &with(c.clone(), &[("exp", json!(NOW - 31_536_000))]),
        ),
        Some("token.expired"),
    );
    v.add(
        "exp 0",
        &["Expired"],
        sign(
            &ed,
            &header(&ed, &[]),
            &with(c.clone(), &[("exp", json!(0))]),
        ),
        Some("token.expired"),
    );
    v.add(
        "exp negative",
        &["Expired"],
        sign(
            &ed,
            &header(&ed, &[]),
            &with(c.clone(), &[("exp", json!(-1))]),
        ),
        Some("token.expired"),
    );
    v.add(
        "nbf in a minute",
        &["NotYetValid"],
        sign(
            &ed,
            &header(&ed, &[]),
            &with(c.clone(), &[("nbf", json!(NOW + 60))]),
        ),
        Some("token.not_yet_valid"),
    );
    v.add(
        "iat in the future",
        &["NotYetValid"],
        sign(
            &ed,
            &header(&ed, &[]),
            &with(
                c.clone(),
                &[("iat", json!(NOW + 3600)), ("nbf", json!(NOW - 1))],
            ),
        ),
        Some("token.not_yet_valid"),
    );

    // --- issuer and audience -------------------------------------------------------------------
    v.add(
        "Wrong audience",
        &["Audience"],
        sign(
            &ed,
            &header(&ed, &[]),
            &with(c.clone(), &[("aud", json!("payments-api"))]),
        ),
        Some("token.wrong_audience"),
    );
    v.add(
        "Audience array without ours",
        &["Audience"],
        sign(
            &ed,
            &header(&ed, &[]),
            &with(c.clone(), &[("aud", json!(["a", "b"]))]),
        ),
        Some("token.wrong_audience"),
    );
    v.add(
        "Audience differs in case",
        &["Audience"],
        sign(
            &ed,
            &header(&ed, &[]),
            &with(c.clone(), &[("aud", json!("LEDGER-API"))]),
        ),
        Some("token.wrong_audience"),
    );
    v.add(
        "Empty audience array",
        &["Audience"],
        sign(
            &ed,
            &header(&ed, &[]),
            &with(c.clone(), &[("aud", json!([]))]),
        ),
        Some("token.wrong_audience"),
    );
    v.add(
        "Wrong issuer",
        &["Issuer"],
        sign(
            &ed,
            &header(&ed, &[]),
            &with(c.clone(), &[("iss", json!("https://evil.test"))]),
        ),
        Some("token.wrong_issuer"),
    );
    v.add(
        "Issuer with a trailing slash",
        &["Issuer"],
        sign(
            &ed,
            &header(&ed, &[]),
            &with(c.clone(), &[("iss", json!(format!("{ISS}/")))]),
        ),
        Some("token.wrong_issuer"),
    );
    v.add(
        "Issuer differing in case",
        &["Issuer"],
        sign(
            &ed,
            &header(&ed, &[]),
            &with(c.clone(), &[("iss", json!(ISS.to_uppercase()))]),
        ),
        Some("token.wrong_issuer"),
    );

    // --- missing claims -----------------------------------------------------------------------
    for claim in ["iss", "sub", "aud", "exp", "iat"] {
        let mut x = c.clone();
        x.as_object_mut().unwrap().remove(claim);
        v.add(
            &format!("Missing {claim}"),
            &["MissingClaim"],
            sign(&ed, &header(&ed, &[]), &x),
            Some("token.missing_claim"),
        );
    }

    // --- signatures ---------------------------------------------------------------------------
    let es_input = {
        let h = sorted_json(&header(&es, &[]));
        format!("{}.{}", b64(&h), b64(&sorted_json(&c)))
    };
    v.add(
        "ES256 with r = s = 0",
        &["EcdsaZero"],
        format!("{es_input}.{}", b64(&[0u8; 64])),
        Some("token.bad_signature"),
    );
    let es_sig = es.sign(es_input.as_bytes()).unwrap();
    let mut r_only = es_sig.clone();
    r_only[32..].fill(0);
    v.add(
        "ES256 with s = 0",
        &["EcdsaZero"],
        format!("{es_input}.{}", b64(&r_only)),
        Some("token.bad_signature"),
    );
    // DER encoding of (r, s) instead of the fixed 64-byte form JWS requires.
    let der = {
        let int = |x: &[u8]| {
            let x: Vec<u8> = x.iter().copied().skip_while(|b| *b == 0).collect();
            let mut v = vec![0x02];
            if x.first().is_some_and(|b| b & 0x80 != 0) {
                v.push((x.len() + 1) as u8);
                v.push(0);
            } else {
                v.push(x.len() as u8);
            }
            v.extend(x);
            v
        };
        let (r, s) = (int(&es_sig[..32]), int(&es_sig[32..]));
        let mut d = vec![0x30, (r.len() + s.len()) as u8];
        d.extend(r);
        d.extend(s);
        d
    };
    v.add(
        "ES256 signature in DER instead of r||s",
        &["EcdsaDer"],
        format!("{es_input}.{}", b64(&der)),
        Some("token.bad_signature"),
    );
    let ed_parts: Vec<&str> = good.split('.').collect();
    let mut sig = URL_SAFE_NO_PAD.decode(ed_parts[2]).unwrap();
    add_group_order(&mut sig[32..]);
    v.add(
        "Ed25519 with non-canonical S (S + L)",
        &["Ed25519Malleable"],
        format!("{}.{}.{}", ed_parts[0], ed_parts[1], b64(&sig)),
        Some("token.bad_signature"),
    );
    let mut sig = URL_SAFE_NO_PAD.decode(ed_parts[2]).unwrap();
    sig[10] ^= 1;
    v.add(
        "Ed25519 signature with one bit flipped",
        &["BitFlip"],
        format!("{}.{}.{}", ed_parts[0], ed_parts[1], b64(&sig)),
        Some("token.bad_signature"),
    );
    let sig = URL_SAFE_NO_PAD.decode(ed_parts[2]).unwrap();
    v.add(
        "Ed25519 signature truncated to 63 bytes",
        &["BitFlip"],
        format!("{}.{}.{}", ed_parts[0], ed_parts[1], b64(&sig[..63])),
        Some("token.bad_signature"),
    );
    let forged = with(c.clone(), &[("scope", json!("*:*"))]);
    v.add(
        "Payload widened to *:* after signing",
        &["Tampered"],
        format!(
            "{}.{}.{}",
            ed_parts[0],
            b64(&sorted_json(&forged)),
            ed_parts[2]
        ),
        Some("token.bad_signature"),
    );
    v.add(
        "Signed by a key that is not trusted under a trusted kid",
        &["WrongKey"],
        sign(&ed2, &header(&ed, &[]), &c),
        Some("token.bad_signature"),
    );
    v.add(
        "Empty signature",
        &["BitFlip"],
        format!("{}.{}.", ed_parts[0], ed_parts[1]),
        Some("token.bad_signature"),
    );

    // --- serialization -----------------------------------------------------------------------
    let flattened =
        json!({"protected": ed_parts[0], "payload": ed_parts[1], "signature": ed_parts[2]});
    v.add(
        "JWS JSON serialization (flattened)",
        &["JsonSerialization"],
        String::from_utf8(sorted_json(&flattened)).unwrap(),
        Some("token.malformed"),
    );
    let general = json!({"payload": ed_parts[1], "signatures": [{"protected": ed_parts[0], "signature": ed_parts[2]}]});
    v.add(
        "JWS JSON serialization (general)",
        &["JsonSerialization"],
        String::from_utf8(sorted_json(&general)).unwrap(),
        Some("token.malformed"),
    );
    v.add(
        "Two parts",
        &["Malformed"],
        format!("{}.{}", ed_parts[0], ed_parts[1]),
        Some("token.malformed"),
    );
    v.add(
        "Five parts (JWE shape)",
        &["Malformed"],
        format!(
            "{}.{}.{}.{}.{}",
            ed_parts[0], ed_parts[1], ed_parts[2], "AA", "AA"
        ),
        Some("token.malformed"),
    );
    v.add(
        "Empty string",
        &["Malformed"],
        String::new(),
        Some("token.malformed"),
    );
    v.add(
        "Trailing newline",
        &["Malformed"],
        format!("{good}\n"),
        Some("token.malformed"),
    );
    let mut pad = String::new();
    let padded_header = loop {
        let h = sorted_json(&header(&ed, &[("x", json!(pad))]));
        if !h.len().is_multiple_of(3) {
            break h;
        }
        pad.push('x');
    };
    let padded_input = format!("{}.{}", URL_SAFE.encode(&padded_header), ed_parts[1]);
    let padded_sig = ed.sign(padded_input.as_bytes()).unwrap();
    v.add(
        "Header with base64 padding (validly signed)",
        &["Base64"],
        format!("{padded_input}.{}", b64(&padded_sig)),
        Some("token.malformed"),
    );
    // A token whose signature has a `+` or `/` in standard base64 (a pad claim grows until it
    // does), so the vector exists whatever the claims serialize to.
    let mut pad = String::new();
    let (signed, std_sig) = loop {
        let token = sign(
            &ed,
            &header(&ed, &[]),
            &with(c.clone(), &[("pad", json!(pad))]),
        );
        let sig = token.rsplit('.').next().unwrap().to_owned();
        let std_sig = STANDARD
            .encode(URL_SAFE_NO_PAD.decode(&sig).unwrap())
            .replace('=', "");
        if std_sig != sig {
            break (token, std_sig);
        }
        pad.push('x');
    };
    let signed_parts: Vec<&str> = signed.split('.').collect();
    v.add(
        "Signature in standard base64 (+ and /)",
        &["Base64"],
        format!("{}.{}.{}", signed_parts[0], signed_parts[1], std_sig),
        Some("token.malformed"),
    );
    v.add(
        "Header is not JSON",
        &["Malformed"],
        sign_raw(&ed, b"not json", &sorted_json(&c)),
        Some("token.malformed"),
    );
    v.add(
        "Payload is not JSON",
        &["Malformed"],
        sign_raw(&ed, &sorted_json(&header(&ed, &[])), b"\xff\xfe"),
        Some("token.malformed"),
    );
    v.add(
        "Payload is a JSON array",
        &["Malformed"],
        sign_raw(&ed, &sorted_json(&header(&ed, &[])), b"[1,2]"),
        Some("token.malformed"),
    );
    let huge = with(c.clone(), &[("pad", json!("x".repeat(9000)))]);
    v.add(
        "Token over 8 KiB",
        &["TooLarge"],
        sign(&ed, &header(&ed, &[]), &huge),
        Some("token.too_large"),
    );
    let mut deep = serde_json::to_string(&c).unwrap();
    deep.pop();
    deep.push_str(&format!(
        r#","act":{}1{}}}"#,
        "[".repeat(1000),
        "]".repeat(1000)
    ));
    v.add(
        "act claim nested 1000 levels deep, under the size cap",
        &["Malformed"],
        sign_raw(&ed, &sorted_json(&header(&ed, &[])), deep.as_bytes()),
        Some("token.malformed"),
    );

    // --- binding, revocation and sender constraint -----------------------------------------
    v.add_with(
        "Token for agent A presented by agent B",
        &["IdentityBinding"],
        good.clone(),
        Some("token.identity_mismatch"),
        json!({"spiffe_id": AGENT_B, "digest": DIGEST_B}),
    );
    v.add_with(
        "Token for agent A presented by A after its prompt changed",
        &["IdentityBinding"],
        good.clone(),
        Some("token.identity_mismatch"),
        json!({"spiffe_id": AGENT_A, "digest": DIGEST_A2}),
    );
    let mut unbound = c.clone();
    unbound.as_object_mut().unwrap().remove("agent");
    v.add_with(
        "Token without an agent claim, identity binding required",
        &["IdentityBinding"],
        sign(&ed, &header(&ed, &[]), &unbound),
        Some("token.identity_mismatch"),
        json!({"spiffe_id": AGENT_A, "digest": DIGEST_A}),
    );
    v.add(
        "Revoked token (jti on the revocation list)",
        &["Revoked"],
        sign(
            &ed,
            &header(&ed, &[]),
            &with(c.clone(), &[("jti", json!("revoked-7"))]),
        ),
        Some("token.revoked"),
    );
    v.add(
        "DPoP-bound token presented without a proof",
        &["SenderConstrained"],
        sign(
            &ed,
            &header(&ed, &[]),
            &with(
                c.clone(),
                &[("cnf", json!({"jkt": attacker.public_key().thumbprint()}))],
            ),
        ),
        Some("token.pop_required"),
    );
    v.add(
        "Unknown kid",
        &["UnknownKey"],
        sign(&ed, &header(&ed, &[("kid", json!("rotated-away"))]), &c),
        Some("token.unknown_key"),
    );
    v.add(
        "No kid, several trusted keys",
        &["UnknownKey"],
        sign(&ed, &header(&ed, &[("kid", Value::Null)]), &c),
        Some("token.unknown_key"),
    );

    let doc = json!({
        "algorithm": "agentiam access token verification",
        "generator": "cargo run -p agentiam-token --example gen_token_vectors > testvectors/tokens.json",
        "numberOfTests": v.tests.len(),
        "notes": {
            "Valid": "A token every conforming verifier with this configuration accepts.",
            "Rfc9068": "Only the standard RFC 9068 access-token claims; agentiam's own claims are optional to a verifier.",
            "Leeway": "The default clock-skew leeway is 5 seconds.",
            "IdentityBinding": "The verifier also checks the token against the presenting agent (presented_by: SPIFFE ID and composite digest).",
            "AlgNone": "Unsigned tokens in any casing of none.",
            "AlgConfusion": "The header names another algorithm than the key's: the key pins the algorithm.",
            "AlgNotAllowed": "Only EdDSA (Ed25519) and ES256 are accepted, spelled exactly.",
            "EmbeddedKey": "Keys offered in the header (jwk, jku, x5u, x5c) are never used.",
            "KidInjection": "kid values that would be dangerous if used as a path or query.",
            "Crit": "Critical header extensions are not implemented, so any crit is refused.",
            "WrongType": "Another kind of JWT presented as an access token.",
            "ClaimType": "A claim present with the wrong JSON type or an invalid value: never treated as absent.",
            "Expired": "exp has passed beyond the leeway.",
            "NotYetValid": "nbf or iat lies beyond the leeway in the future.",
            "Audience": "aud must contain the verifier's audience exactly.",
            "Issuer": "iss must equal the trusted issuer exactly.",
            "MissingClaim": "iss, sub, aud and exp are always required; iat by default. jti is optional unless required.",
            "EcdsaZero": "ECDSA signatures with a zero component.",
            "EcdsaDer": "JWS ES256 signatures are the 64-byte r||s form, not DER.",
            "Ed25519Malleable": "A non-canonical S is refused by the backend.",
            "BitFlip": "A damaged signature.",
            "Tampered": "The payload was changed after signing.",
            "WrongKey": "Signed by a key that is not the one the kid names.",
            "JsonSerialization": "Only the compact serialization is accepted.",
            "Malformed": "Not a well-formed compact JWS with JSON header and JSON object payload.",
            "Base64": "Parts must be unpadded base64url.",
            "TooLarge": "Tokens over 8 KiB are refused before any decoding.",
            "Revoked": "The verifier's revocation set lists this token's jti.",
            "SenderConstrained": "A token with cnf needs a proof of possession.",
            "UnknownKey": "No trusted key matches."
        },
        "verifier": {
            "issuer": ISS,
            "audience": AUD,
            "now": NOW,
            "leeway": 5,
            "revoked_jtis": ["revoked-7"],
            "jwks": serde_json::from_str::<Value>(&jwks.to_json()).unwrap()
        },
        "tests": v.tests,
    });
    doc
}
