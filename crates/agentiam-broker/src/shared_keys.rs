//! Keys shared by broker replicas through the store: the token signing key, the approver key and
//! the retired keys still in their overlap, sealed with AES-256-GCM under a key-encryption key
//! that only the replicas hold (never the database). A replica adopts what the store holds, a
//! rotation is a compare-and-swap on the material's version, and replicas re-read it every few
//! seconds, so every replica signs with the same key and publishes the same JWKS.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::BrokerError;

/// The keys, as sealed in the store.
#[derive(Serialize, Deserialize)]
pub(crate) struct KeyMaterial {
    /// The token signing key's private JWK.
    pub(crate) signing: String,
    /// The approver key's private JWK.
    pub(crate) approver: String,
    /// Retired signing keys (public JWKs) and until when each verifies.
    pub(crate) retired: Vec<RetiredKey>,
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("retired", &self.retired.len())
            .finish_non_exhaustive()
    }
}

impl Drop for KeyMaterial {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        self.signing.zeroize();
        self.approver.zeroize();
    }
}

/// A retired signing key and the end of its overlap.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RetiredKey {
    pub(crate) jwk: agentiam_identity::Jwk,
    pub(crate) until: i64,
}

#[derive(Serialize, Deserialize)]
struct Sealed {
    nonce: String,
    ciphertext: String,
}

/// The key that seals the shared key material (AES-256-GCM). Debug never shows it.
pub struct KeyEncryptionKey(LessSafeKey);

impl std::fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyEncryptionKey(<redacted>)")
    }
}

fn config(why: impl Into<String>) -> BrokerError {
    BrokerError::Config(why.into())
}

impl KeyEncryptionKey {
    /// A key from 32 random bytes in base64 (standard or URL-safe, padding optional), e.g.
    /// `head -c 32 /dev/urandom | base64`.
    pub fn from_base64(text: &str) -> Result<Self, BrokerError> {
        let text = text.trim();
        let bytes = Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(text.trim_end_matches('='))
                .or_else(|_| STANDARD.decode(text))
                .map_err(|_| config("the key-encryption key is not base64"))?,
        );
        if bytes.len() != 32 {
            return Err(config(format!(
                "the key-encryption key must be 32 bytes, not {}",
                bytes.len()
            )));
        }
        let key = UnboundKey::new(&AES_256_GCM, &bytes)
            .map_err(|_| config("the key-encryption key is unusable"))?;
        Ok(Self(LessSafeKey::new(key)))
    }

    fn aad(version: i64) -> String {
        format!("agentiam-broker-keys/1 version {version}")
    }

    /// Seals `material` as version `version` (the version is authenticated, so a sealed
    /// document cannot be replayed under another version).
    pub(crate) fn seal(&self, material: &KeyMaterial, version: i64) -> Result<String, BrokerError> {
        let mut plain = Zeroizing::new(
            serde_json::to_vec(material).map_err(|e| config(format!("key material: {e}")))?,
        );
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| config("no randomness for a nonce"))?;
        let aad = Self::aad(version);
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.as_bytes()),
                &mut *plain,
            )
            .map_err(|_| config("sealing the key material failed"))?;
        serde_json::to_string(&Sealed {
            nonce: URL_SAFE_NO_PAD.encode(nonce),
            ciphertext: URL_SAFE_NO_PAD.encode(&*plain),
        })
        .map_err(|e| config(e.to_string()))
    }

    /// Opens sealed material of `version`; refuses anything not sealed with this key for
    /// that version (`broker.config_invalid`).
    pub(crate) fn open(&self, sealed: &str, version: i64) -> Result<KeyMaterial, BrokerError> {
        let refused = || {
            config(
                "the shared key material does not open with this key-encryption key (another \
                 key, or altered in the store)",
            )
        };
        let sealed: Sealed = serde_json::from_str(sealed).map_err(|_| refused())?;
        let nonce: [u8; NONCE_LEN] = URL_SAFE_NO_PAD
            .decode(&sealed.nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or_else(refused)?;
        let mut data = Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(&sealed.ciphertext)
                .map_err(|_| refused())?,
        );
        let aad = Self::aad(version);
        let plain = self
            .0
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.as_bytes()),
                &mut data,
            )
            .map_err(|_| refused())?;
        serde_json::from_slice(plain).map_err(|_| refused())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Long enough that random base64 never holds it by chance (a short marker such as "kty"
    /// does, about once in 400 runs).
    const MARKER: &str = "private-key-material-that-must-never-be-readable-in-the-store";

    fn material() -> KeyMaterial {
        KeyMaterial {
            signing: format!("{{\"kty\":\"OKP\",\"d\":\"{MARKER}\"}}"),
            approver: format!("{{\"kty\":\"OKP\",\"d\":\"{MARKER}-2\"}}"),
            retired: vec![],
        }
    }

    #[test]
    fn sealed_material_opens_only_with_its_key_and_version() {
        let key = KeyEncryptionKey::from_base64(&STANDARD.encode([7u8; 32])).unwrap();
        let other = KeyEncryptionKey::from_base64(&URL_SAFE_NO_PAD.encode([8u8; 32])).unwrap();
        let sealed = key.seal(&material(), 3).unwrap();
        assert!(
            !sealed.contains(MARKER),
            "the private keys are not readable in the store"
        );
        assert_eq!(key.open(&sealed, 3).unwrap().approver, material().approver);
        for (k, v) in [(&other, 3), (&key, 4)] {
            assert_eq!(
                k.open(&sealed, v).unwrap_err().code(),
                "broker.config_invalid"
            );
        }
        let mut flipped: Sealed = serde_json::from_str(&sealed).unwrap();
        flipped.ciphertext.replace_range(
            0..1,
            if flipped.ciphertext.starts_with('A') {
                "B"
            } else {
                "A"
            },
        );
        let flipped = serde_json::to_string(&flipped).unwrap();
        assert!(key.open(&flipped, 3).is_err());
        assert!(KeyEncryptionKey::from_base64("c2hvcnQ").is_err());
        assert!(KeyEncryptionKey::from_base64("not base64!").is_err());
        assert_eq!(format!("{key:?}"), "KeyEncryptionKey(<redacted>)");
    }
}
