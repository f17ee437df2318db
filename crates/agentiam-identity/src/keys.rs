//! Signing keys (Ed25519 and P-256 on aws-lc-rs), public keys, JWKS and rotation.
//!
//! A key's algorithm is part of the key, never taken from a token: a [`PublicKey`]
//! verifies exactly one algorithm. Key IDs are RFC 7638 JWK thumbprints, so the
//! same key has the same `kid` everywhere.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::encoding::AsBigEndian;
use aws_lc_rs::signature::{self, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::IdentityError;

/// A signature algorithm agentiam accepts. There is no "none" and no HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Algorithm {
    /// Ed25519 (RFC 8037 `EdDSA`, also written `Ed25519` by RFC 9864).
    EdDSA,
    /// ECDSA on P-256 with SHA-256, fixed-width r||s signatures.
    ES256,
}

impl Algorithm {
    /// The JWS `alg` name this key signs with.
    pub fn jws_name(self) -> &'static str {
        match self {
            Self::EdDSA => "EdDSA",
            Self::ES256 => "ES256",
        }
    }

    /// Whether a JWS header's `alg` names this algorithm, exactly (case-sensitive).
    ///
    /// Ed25519 keys also accept the fully specified `Ed25519` name of RFC 9864.
    pub fn matches_header(self, alg: &str) -> bool {
        match self {
            Self::EdDSA => alg == "EdDSA" || alg == "Ed25519",
            Self::ES256 => alg == "ES256",
        }
    }

    /// Parses a JWS `alg` name.
    pub fn from_jws_name(alg: &str) -> Option<Self> {
        match alg {
            "EdDSA" | "Ed25519" => Some(Self::EdDSA),
            "ES256" => Some(Self::ES256),
            _ => None,
        }
    }

    fn verification(self) -> &'static dyn signature::VerificationAlgorithm {
        match self {
            Self::EdDSA => &signature::ED25519,
            Self::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
        }
    }
}

/// A JSON Web Key (RFC 7517) of the kinds agentiam reads: OKP/Ed25519 (RFC 8037) and EC/P-256.
///
/// Unknown members are ignored. A private JWK carries `d`; [`Jwk`] values with `d`
/// are only read by [`SigningKey::from_private_jwk`], never accepted as public keys.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Jwk {
    /// Key type: `OKP` or `EC`.
    pub kty: String,
    /// Curve: `Ed25519` or `P-256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// Public key (OKP) or x coordinate (EC), base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// y coordinate (EC), base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// Private key material, base64url. Redacted in Debug.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d: Option<String>,
    /// Key ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Intended algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Intended use (`sig`).
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
}

impl fmt::Debug for Jwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwk")
            .field("kty", &self.kty)
            .field("crv", &self.crv)
            .field("x", &self.x)
            .field("y", &self.y)
            .field("d", &self.d.as_ref().map(|_| "<redacted>"))
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("use", &self.use_)
            .finish()
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(field: &'static str, text: &str) -> Result<Vec<u8>, IdentityError> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| IdentityError::BadKey(format!("JWK member {field} is not base64url")))
}

/// A public verification key with its algorithm pinned.
#[derive(Clone)]
pub struct PublicKey {
    alg: Algorithm,
    kid: String,
    /// Whether the key ID was given (JWK `kid`) rather than derived from the thumbprint.
    kid_explicit: bool,
    /// 32 bytes for Ed25519, the 65-byte uncompressed point for P-256.
    raw: Arc<[u8]>,
    parsed: Arc<signature::ParsedPublicKey>,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish()
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.alg == other.alg && self.raw == other.raw && self.kid == other.kid
    }
}

impl PublicKey {
    /// A public key from raw bytes: 32 bytes (Ed25519) or a 65-byte uncompressed P-256 point.
    ///
    /// The key is validated now (point on curve), so a bad key fails at load, not at verify.
    pub fn from_raw(
        alg: Algorithm,
        raw: &[u8],
        kid: Option<String>,
    ) -> Result<Self, IdentityError> {
        let expected_len = match alg {
            Algorithm::EdDSA => 32,
            Algorithm::ES256 => 65,
        };
        if raw.len() != expected_len {
            return Err(IdentityError::BadKey(format!(
                "{} public key must be {expected_len} bytes, got {}",
                alg.jws_name(),
                raw.len()
            )));
        }
        if alg == Algorithm::EdDSA && is_small_order_ed25519(raw) {
            // aws-lc-rs accepts these keys, and with one of them the signature R = identity, S = 0
            // verifies for every message: a key anyone can sign for. Refuse them at load.
            return Err(IdentityError::BadKey(
                "Ed25519 public key has small order".into(),
            ));
        }
        let parsed = signature::ParsedPublicKey::new(alg.verification(), raw).map_err(|e| {
            IdentityError::BadKey(format!("{} public key rejected: {e}", alg.jws_name()))
        })?;
        let mut key = Self {
            alg,
            kid: String::new(),
            kid_explicit: true,
            raw: Arc::from(raw),
            parsed: Arc::new(parsed),
        };
        key.kid = match kid {
            Some(k) => k,
            None => key.thumbprint(),
        };
        Ok(key)
    }

    /// Reads a public JWK. `alg`, when present, must agree with the key type;
    /// `use`, when present, must be `sig`; a JWK with private material `d` is refused.
    /// Without `kid`, the RFC 7638 thumbprint becomes the key ID.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, IdentityError> {
        if jwk.d.is_some() {
            return Err(IdentityError::BadKey(
                "a public key set must not contain private key material (d)".into(),
            ));
        }
        if let Some(u) = &jwk.use_
            && u != "sig"
        {
            return Err(IdentityError::UnsupportedKey(format!(
                "key use {u:?} is not sig"
            )));
        }
        let (alg, raw) = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
            ("OKP", Some("Ed25519")) => {
                let x = unb64("x", jwk.x.as_deref().unwrap_or_default())?;
                (Algorithm::EdDSA, x)
            }
            ("EC", Some("P-256")) => {
                let x = unb64("x", jwk.x.as_deref().unwrap_or_default())?;
                let y = unb64("y", jwk.y.as_deref().unwrap_or_default())?;
                if x.len() != 32 || y.len() != 32 {
                    return Err(IdentityError::BadKey(
                        "P-256 JWK coordinates must be 32 bytes each".into(),
                    ));
                }
                let mut raw = Vec::with_capacity(65);
                raw.push(4u8);
                raw.extend_from_slice(&x);
                raw.extend_from_slice(&y);
                (Algorithm::ES256, raw)
            }
            (kty, crv) => {
                return Err(IdentityError::UnsupportedKey(format!(
                    "kty {kty:?} crv {crv:?}: only OKP/Ed25519 and EC/P-256 are accepted"
                )));
            }
        };
        if let Some(a) = &jwk.alg
            && !alg.matches_header(a)
        {
            return Err(IdentityError::UnsupportedKey(format!(
                "JWK alg {a:?} does not match its key type {}",
                alg.jws_name()
            )));
        }
        let mut key = Self::from_raw(alg, &raw, jwk.kid.clone())?;
        key.kid_explicit = jwk.kid.is_some();
        Ok(key)
    }

    /// The public JWK, with `kid`, `alg` and `use: sig`.
    pub fn to_jwk(&self) -> Jwk {
        let mut jwk = self.bare_jwk();
        jwk.kid = Some(self.kid.clone());
        jwk.alg = Some(self.alg.jws_name().to_owned());
        jwk.use_ = Some("sig".to_owned());
        jwk
    }

    fn bare_jwk(&self) -> Jwk {
        match self.alg {
            Algorithm::EdDSA => Jwk {
                kty: "OKP".into(),
                crv: Some("Ed25519".into()),
                x: Some(b64(&self.raw)),
                ..Jwk::default()
            },
            Algorithm::ES256 => Jwk {
                kty: "EC".into(),
                crv: Some("P-256".into()),
                x: Some(b64(self.raw.get(1..33).unwrap_or_default())),
                y: Some(b64(self.raw.get(33..65).unwrap_or_default())),
                ..Jwk::default()
            },
        }
    }

    /// The RFC 7638 JWK thumbprint (SHA-256, base64url): the required members in
    /// lexicographic order with no whitespace.
    pub fn thumbprint(&self) -> String {
        let jwk = self.bare_jwk();
        // RFC 7638 section 3.2: required members only, sorted, no whitespace.
        let text = match self.alg {
            Algorithm::EdDSA => format!(
                r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
                jwk.x.as_deref().unwrap_or_default()
            ),
            Algorithm::ES256 => format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                jwk.x.as_deref().unwrap_or_default(),
                jwk.y.as_deref().unwrap_or_default()
            ),
        };
        b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes()).as_ref())
    }

    /// The algorithm this key verifies. The only one it verifies.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The key ID.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// False only for a key read from a JWK without `kid` (its key ID is then the thumbprint).
    /// A verifier may try a key without an explicit `kid` for a token whose `kid` matches nothing.
    pub fn has_explicit_kid(&self) -> bool {
        self.kid_explicit
    }

    /// The raw public key bytes.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// Verifies `sig` over `msg` with this key's pinned algorithm.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        self.parsed.verify_sig(msg, sig).is_ok()
    }
}

/// Encodings of the eight points of small order on edwards25519 and the non-canonical
/// encodings of order-1 and order-4 points, compared with the sign bit masked
/// (the same list libsodium uses in `crypto_sign_verify_detached`).
const ED25519_SMALL_ORDER: [[u8; 32]; 7] = [
    [0; 32],
    [
        1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0,
    ],
    [
        0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98,
        0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53,
        0xfc, 0x05,
    ],
    [
        0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67,
        0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac,
        0x03, 0x7a,
    ],
    [
        0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
    [
        0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
    [
        0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
];

fn is_small_order_ed25519(raw: &[u8]) -> bool {
    ED25519_SMALL_ORDER.iter().any(|bad| {
        raw.len() == 32
            && raw
                .iter()
                .zip(bad.iter())
                .enumerate()
                .all(|(i, (a, b))| if i == 31 { a & 0x7f == *b } else { a == b })
    })
}

enum KeyMaterial {
    Ed25519(signature::Ed25519KeyPair),
    P256(signature::EcdsaKeyPair),
}

/// A private signing key. Debug and Display never show key material; the backend
/// clears the private key from memory when the key is dropped.
pub struct SigningKey {
    material: KeyMaterial,
    public: PublicKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.public.alg)
            .field("kid", &self.public.kid)
            .field("private", &"<redacted>")
            .finish()
    }
}

impl SigningKey {
    /// Generates a fresh key from the operating system's CSPRNG.
    pub fn generate(alg: Algorithm) -> Result<Self, IdentityError> {
        let material = match alg {
            Algorithm::EdDSA => KeyMaterial::Ed25519(
                signature::Ed25519KeyPair::generate()
                    .map_err(|_| IdentityError::BadKey("Ed25519 key generation failed".into()))?,
            ),
            Algorithm::ES256 => KeyMaterial::P256(
                signature::EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(|_| IdentityError::BadKey("P-256 key generation failed".into()))?,
            ),
        };
        Self::from_material(material, None)
    }

    /// An Ed25519 key from a 32-byte seed (deterministic: for tests and test vectors).
    pub fn ed25519_from_seed(seed: &[u8; 32]) -> Result<Self, IdentityError> {
        let pair = signature::Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|e| IdentityError::BadKey(format!("Ed25519 seed rejected: {e}")))?;
        Self::from_material(KeyMaterial::Ed25519(pair), None)
    }

    fn from_material(material: KeyMaterial, kid: Option<String>) -> Result<Self, IdentityError> {
        let (alg, raw) = match &material {
            KeyMaterial::Ed25519(k) => (Algorithm::EdDSA, k.public_key().as_ref().to_vec()),
            KeyMaterial::P256(k) => (Algorithm::ES256, k.public_key().as_ref().to_vec()),
        };
        let public = PublicKey::from_raw(alg, &raw, kid)?;
        Ok(Self { material, public })
    }

    /// Reads a private JWK (`d` present) as written by [`SigningKey::to_private_jwk`]
    /// or by any JOSE library.
    pub fn from_private_jwk(json: &str) -> Result<Self, IdentityError> {
        let mut public_jwk: Jwk = serde_json::from_str(json)
            .map_err(|e| IdentityError::BadKey(format!("private JWK is not valid JSON: {e}")))?;
        let d_text = Zeroizing::new(public_jwk.d.take().unwrap_or_default());
        let d = Zeroizing::new(unb64("d", &d_text)?);
        let kid = public_jwk.kid.clone();
        let public = PublicKey::from_jwk(&public_jwk)?;
        let material = match public.alg {
            Algorithm::EdDSA => KeyMaterial::Ed25519(
                signature::Ed25519KeyPair::from_seed_and_public_key(&d, public.raw()).map_err(
                    |e| IdentityError::BadKey(format!("Ed25519 private key rejected: {e}")),
                )?,
            ),
            Algorithm::ES256 => KeyMaterial::P256(
                signature::EcdsaKeyPair::from_private_key_and_public_key(
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    &d,
                    public.raw(),
                )
                .map_err(|e| IdentityError::BadKey(format!("P-256 private key rejected: {e}")))?,
            ),
        };
        Self::from_material(material, kid)
    }

    /// The private JWK (with `d`), in a buffer that is zeroized on drop.
    pub fn to_private_jwk(&self) -> Result<Zeroizing<String>, IdentityError> {
        let secret: Zeroizing<Vec<u8>> = match &self.material {
            KeyMaterial::Ed25519(k) => {
                let seed = k
                    .seed()
                    .and_then(|s| s.as_be_bytes())
                    .map_err(|_| IdentityError::BadKey("cannot export Ed25519 seed".into()))?;
                Zeroizing::new(seed.as_ref().to_vec())
            }
            KeyMaterial::P256(k) => {
                let scalar = k
                    .private_key()
                    .as_be_bytes()
                    .map_err(|_| IdentityError::BadKey("cannot export P-256 scalar".into()))?;
                Zeroizing::new(scalar.as_ref().to_vec())
            }
        };
        let mut jwk = self.public.to_jwk();
        jwk.d = Some(b64(&secret));
        let text = serde_json::to_string_pretty(&jwk)
            .map_err(|e| IdentityError::BadKey(format!("cannot serialize JWK: {e}")));
        if let Some(d) = jwk.d.as_mut() {
            zeroize::Zeroize::zeroize(d);
        }
        Ok(Zeroizing::new(text?))
    }

    /// Signs `msg`: 64 bytes for both algorithms (ES256 is r||s, not DER).
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, IdentityError> {
        match &self.material {
            KeyMaterial::Ed25519(k) => Ok(k.sign(msg).as_ref().to_vec()),
            KeyMaterial::P256(k) => k
                .sign(&aws_lc_rs::rand::SystemRandom::new(), msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| IdentityError::BadKey("P-256 signing failed".into())),
        }
    }

    /// The public half.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The key ID (RFC 7638 thumbprint unless the key was loaded with another).
    pub fn kid(&self) -> &str {
        self.public.kid()
    }

    /// The algorithm.
    pub fn alg(&self) -> Algorithm {
        self.public.alg()
    }
}

/// A set of public keys found by `kid`: what a verifier trusts.
///
/// ```
/// use agentiam_identity::*;
/// let key = SigningKey::generate(Algorithm::EdDSA)?;
/// let jwks = Jwks::from_keys([key.public_key().clone()]);
/// let text = jwks.to_json();
/// let back = Jwks::from_json(&text)?;
/// assert_eq!(back.find(key.kid()).map(|k| k.alg()), Some(Algorithm::EdDSA));
/// # Ok::<(), IdentityError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Jwks {
    keys: Vec<PublicKey>,
    skipped: Vec<String>,
}

/// Largest JWKS document read (256 KiB) and most keys kept (256).
const MAX_JWKS_BYTES: usize = 256 * 1024;
const MAX_JWKS_KEYS: usize = 256;

impl Jwks {
    /// A set of the given keys.
    pub fn from_keys(keys: impl IntoIterator<Item = PublicKey>) -> Self {
        Self {
            keys: keys.into_iter().collect(),
            skipped: Vec::new(),
        }
    }

    /// Reads a JWKS document (`{"keys": [...]}`).
    ///
    /// Keys agentiam cannot use (RSA, other curves, `use: enc`) are skipped and listed
    /// in [`Jwks::skipped`], so a mixed JWKS from an identity provider still loads; a
    /// malformed key of a supported type, private material, or a duplicate `kid` is an error.
    pub fn from_json(json: &str) -> Result<Self, IdentityError> {
        if json.len() > MAX_JWKS_BYTES {
            return Err(IdentityError::BadJwks(format!(
                "larger than {MAX_JWKS_BYTES} bytes"
            )));
        }
        #[derive(Deserialize)]
        struct Doc {
            keys: Vec<Jwk>,
        }
        let doc: Doc = serde_json::from_str(json)
            .map_err(|e| IdentityError::BadJwks(format!("not a JWKS document: {e}")))?;
        if doc.keys.len() > MAX_JWKS_KEYS {
            return Err(IdentityError::BadJwks(format!(
                "more than {MAX_JWKS_KEYS} keys"
            )));
        }
        let mut out = Self::default();
        for jwk in &doc.keys {
            match PublicKey::from_jwk(jwk) {
                Ok(key) => {
                    if out.find(key.kid()).is_some() {
                        return Err(IdentityError::BadJwks(format!(
                            "duplicate kid {:?}",
                            key.kid()
                        )));
                    }
                    out.keys.push(key);
                }
                Err(IdentityError::UnsupportedKey(why)) => {
                    out.skipped.push(format!(
                        "{}: {why}",
                        jwk.kid.as_deref().unwrap_or("<no kid>")
                    ));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The JWKS document.
    pub fn to_json(&self) -> String {
        let keys: Vec<Jwk> = self.keys.iter().map(PublicKey::to_jwk).collect();
        serde_json::json!({ "keys": keys }).to_string()
    }

    /// The key with this `kid` (key IDs are public, so a plain comparison is fine).
    pub fn find(&self, kid: &str) -> Option<&PublicKey> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    /// The keys.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// Why each unusable key in the document was skipped.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// Whether the set has no usable keys.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// An issuer's signing keys: one active key and retired keys that still verify
/// until the last token they signed has expired.
///
/// Time is passed in (seconds since the Unix epoch): this crate reads no clock.
///
/// ```
/// use agentiam_identity::*;
/// let mut keys = KeySet::new(SigningKey::generate(Algorithm::EdDSA)?);
/// let old_kid = keys.active().kid().to_owned();
/// keys.rotate(SigningKey::generate(Algorithm::EdDSA)?, 1_000, 3_600);
/// assert!(keys.jwks(1_000 + 3_599).find(&old_kid).is_some()); // still verifies old tokens
/// assert!(keys.jwks(1_000 + 3_601).find(&old_kid).is_none()); // gone after the last expiry
/// # Ok::<(), IdentityError>(())
/// ```
#[derive(Debug)]
pub struct KeySet {
    active: SigningKey,
    retired: Vec<(PublicKey, i64)>,
}

impl KeySet {
    /// A key set with one active key.
    pub fn new(active: SigningKey) -> Self {
        Self {
            active,
            retired: Vec::new(),
        }
    }

    /// The key that signs new tokens.
    pub fn active(&self) -> &SigningKey {
        &self.active
    }

    /// Makes `next` the active key. The old key keeps verifying until
    /// `now + max_token_lifetime` (the expiry of the last token it can have signed).
    pub fn rotate(&mut self, next: SigningKey, now: i64, max_token_lifetime: i64) {
        let old = std::mem::replace(&mut self.active, next);
        self.retired.push((
            old.public_key().clone(),
            now.saturating_add(max_token_lifetime),
        ));
    }

    /// Adds a retired key that keeps verifying until `until` (e.g. restored after a restart).
    pub fn with_retired(mut self, key: PublicKey, until: i64) -> Self {
        self.retired.push((key, until));
        self
    }

    /// The retired keys and until when each verifies.
    pub fn retired(&self) -> &[(PublicKey, i64)] {
        &self.retired
    }

    /// Drops retired keys whose tokens have all expired.
    pub fn prune(&mut self, now: i64) {
        self.retired.retain(|(_, until)| *until >= now);
    }

    /// The public keys that verify at `now`: the active key and unexpired retired keys.
    pub fn jwks(&self, now: i64) -> Jwks {
        let mut keys = vec![self.active.public_key().clone()];
        keys.extend(
            self.retired
                .iter()
                .filter(|(_, until)| *until >= now)
                .map(|(k, _)| k.clone()),
        );
        Jwks::from_keys(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_both_algorithms_and_pin_alg() {
        for alg in [Algorithm::EdDSA, Algorithm::ES256] {
            let key = SigningKey::generate(alg).unwrap();
            let sig = key.sign(b"msg").unwrap();
            assert_eq!(sig.len(), 64);
            assert!(key.public_key().verify(b"msg", &sig));
            assert!(!key.public_key().verify(b"msh", &sig));
        }
    }

    #[test]
    fn private_jwk_round_trip_keeps_kid_and_signs() {
        for alg in [Algorithm::EdDSA, Algorithm::ES256] {
            let key = SigningKey::generate(alg).unwrap();
            let text = key.to_private_jwk().unwrap();
            let back = SigningKey::from_private_jwk(&text).unwrap();
            assert_eq!(back.kid(), key.kid());
            let sig = back.sign(b"m").unwrap();
            assert!(key.public_key().verify(b"m", &sig));
        }
    }

    #[test]
    fn debug_never_shows_private_material() {
        let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
        let text = key.to_private_jwk().unwrap();
        let jwk: Jwk = serde_json::from_str(&text).unwrap();
        let d = jwk.d.clone().unwrap();
        assert!(!format!("{key:?}").contains(&d));
        assert!(!format!("{jwk:?}").contains(&d));
    }

    #[test]
    fn rfc_7638_thumbprint_of_rfc_8037_example_key() {
        // RFC 8037 appendix A.3: the thumbprint of the example Ed25519 public key.
        let jwk = Jwk {
            kty: "OKP".into(),
            crv: Some("Ed25519".into()),
            x: Some("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo".into()),
            ..Jwk::default()
        };
        let key = PublicKey::from_jwk(&jwk).unwrap();
        assert_eq!(
            key.thumbprint(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
        assert_eq!(key.kid(), key.thumbprint());
    }

    #[test]
    fn jwks_rejects_private_keys_and_skips_unsupported() {
        let key = SigningKey::generate(Algorithm::ES256).unwrap();
        let private = key.to_private_jwk().unwrap();
        let doc = format!(r#"{{"keys":[{}]}}"#, private.as_str());
        assert_eq!(Jwks::from_json(&doc).unwrap_err().code(), "key.invalid");
        let doc = r#"{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB","kid":"r"}]}"#;
        let jwks = Jwks::from_json(doc).unwrap();
        assert!(jwks.is_empty());
        assert_eq!(jwks.skipped().len(), 1);
    }

    #[test]
    fn off_curve_p256_point_is_rejected_at_load() {
        let jwk = Jwk {
            kty: "EC".into(),
            crv: Some("P-256".into()),
            x: Some(b64(&[1u8; 32])),
            y: Some(b64(&[2u8; 32])),
            ..Jwk::default()
        };
        assert_eq!(PublicKey::from_jwk(&jwk).unwrap_err().code(), "key.invalid");
    }

    #[test]
    fn small_order_ed25519_keys_are_refused() {
        for bad in ED25519_SMALL_ORDER {
            for sign_bit in [0u8, 0x80] {
                let mut raw = bad;
                raw[31] |= sign_bit;
                assert_eq!(
                    PublicKey::from_raw(Algorithm::EdDSA, &raw, None)
                        .unwrap_err()
                        .code(),
                    "key.invalid",
                    "{raw:02x?}"
                );
            }
        }
        let good = SigningKey::generate(Algorithm::EdDSA).unwrap();
        assert!(!is_small_order_ed25519(good.public_key().raw()));
    }

    #[test]
    fn jwk_alg_must_match_key_type() {
        let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
        let mut jwk = key.public_key().to_jwk();
        jwk.alg = Some("ES256".into());
        assert_eq!(
            PublicKey::from_jwk(&jwk).unwrap_err().code(),
            "key.unsupported"
        );
    }
}
