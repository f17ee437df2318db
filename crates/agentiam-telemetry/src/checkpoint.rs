//! Signed checkpoints in the C2SP tlog-checkpoint format, as signed notes (C2SP signed-note)
//! with Ed25519 keys.
//!
//! ```text
//! agentiam.example/audit/prod          <- origin
//! 1234                                 <- tree size
//! 3q2+7w...base64 root hash...=        <- RFC 6962 root, standard base64
//!                                      <- blank line ends the body
//! — agentiam.example/audit/prod AbCd...base64(key hash || signature)...
//! ```
//!
//! Verifier keys are written `name+hex(key hash)+base64(0x01 || public key)`, the format the
//! Go `note` package and other transparency-log tools read; a signer key is
//! `PRIVATE+KEY+name+hex(key hash)+base64(0x01 || seed)`.

use aws_lc_rs::signature::{self, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use crate::AuditError;
use crate::merkle::Hash;

/// A checkpoint: the log's origin, its size and its RFC 6962 root at that size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's name (unique per log).
    pub origin: String,
    /// Number of records covered.
    pub size: u64,
    /// Merkle root of those records.
    pub root: Hash,
}

fn bad(why: impl Into<String>) -> AuditError {
    AuditError::BadCheckpoint(why.into())
}

fn key_hash(name: &str, public: &[u8]) -> [u8; 4] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(name.as_bytes());
    ctx.update(b"\n");
    ctx.update(&[1u8]);
    ctx.update(public);
    let d = ctx.finish();
    let mut out = [0u8; 4];
    out.copy_from_slice(d.as_ref().get(..4).unwrap_or(&[0; 4]));
    out
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.contains(['+', ' ', '\n', '\t'])
        && name.chars().all(|c| !c.is_control())
}

impl Checkpoint {
    /// The note body: origin, size and base64 root, each on its own line.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        )
    }

    /// Parses a body (the part before the blank line).
    fn parse_body(body: &str) -> Result<Self, AuditError> {
        let mut lines = body.split('\n');
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or_else(|| bad("no origin line"))?;
        let size_text = lines.next().ok_or_else(|| bad("no size line"))?;
        if size_text.is_empty()
            || !size_text.bytes().all(|b| b.is_ascii_digit())
            || (size_text.len() > 1 && size_text.starts_with('0'))
        {
            return Err(bad("size is not a decimal number"));
        }
        let size: u64 = size_text.parse().map_err(|_| bad("size out of range"))?;
        let root_text = lines.next().ok_or_else(|| bad("no root hash line"))?;
        let root_bytes = STANDARD
            .decode(root_text)
            .map_err(|_| bad("root hash is not base64"))?;
        let root: Hash = root_bytes
            .try_into()
            .map_err(|_| bad("root hash is not 32 bytes"))?;
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
        })
    }
}

/// Signs checkpoints with an Ed25519 key under a name.
pub struct NoteSigner {
    name: String,
    key: signature::Ed25519KeyPair,
    hash: [u8; 4],
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl NoteSigner {
    /// A new random key for `name` (usually the log's origin).
    pub fn generate(name: &str) -> Result<Self, AuditError> {
        if !valid_name(name) {
            return Err(bad(
                "key name must be non-empty without '+', spaces or control characters",
            ));
        }
        let key =
            signature::Ed25519KeyPair::generate().map_err(|_| bad("key generation failed"))?;
        let hash = key_hash(name, key.public_key().as_ref());
        Ok(Self {
            name: name.to_owned(),
            key,
            hash,
        })
    }

    /// Reads a `PRIVATE+KEY+name+hash+base64(0x01 || seed)` signer key.
    pub fn from_private_key(text: &str) -> Result<Self, AuditError> {
        let rest = text
            .trim()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or_else(|| bad("not a PRIVATE+KEY+ signer key"))?;
        // Names contain no '+', hashes are hex; the base64 key may contain '+'.
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(_hash), Some(b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("signer key must be PRIVATE+KEY+name+hash+key"));
        };
        let raw = Zeroizing::new(
            STANDARD
                .decode(b64)
                .map_err(|_| bad("signer key is not base64"))?,
        );
        let seed = match raw.split_first() {
            Some((1, seed)) if seed.len() == 32 => seed,
            _ => return Err(bad("signer key must be an Ed25519 seed (type byte 1)")),
        };
        let key = signature::Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|_| bad("bad Ed25519 seed"))?;
        let hash = key_hash(name, key.public_key().as_ref());
        Ok(Self {
            name: name.to_owned(),
            key,
            hash,
        })
    }

    /// The signer key string (secret; zeroized on drop).
    pub fn private_key(&self) -> Result<Zeroizing<String>, AuditError> {
        use aws_lc_rs::encoding::AsBigEndian;
        let seed = self
            .key
            .seed()
            .and_then(|s| s.as_be_bytes())
            .map_err(|_| bad("cannot export seed"))?;
        let mut raw = Zeroizing::new(vec![1u8]);
        raw.extend_from_slice(seed.as_ref());
        Ok(Zeroizing::new(format!(
            "PRIVATE+KEY+{}+{}+{}",
            self.name,
            hex(&self.hash),
            STANDARD.encode(raw.as_slice())
        )))
    }

    /// The verifier key string to hand to auditors.
    pub fn verifier_key(&self) -> String {
        let mut raw = vec![1u8];
        raw.extend_from_slice(self.key.public_key().as_ref());
        format!("{}+{}+{}", self.name, hex(&self.hash), STANDARD.encode(raw))
    }

    /// Signs a checkpoint as a note.
    pub fn sign(&self, checkpoint: &Checkpoint) -> String {
        let body = checkpoint.body();
        let sig = self.key.sign(body.as_bytes());
        let mut blob = self.hash.to_vec();
        blob.extend_from_slice(sig.as_ref());
        format!("{body}\n\u{2014} {} {}\n", self.name, STANDARD.encode(blob))
    }
}

fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// Verifies checkpoints signed by one key.
#[derive(Debug, Clone)]
pub struct NoteVerifier {
    name: String,
    hash: [u8; 4],
    key: std::sync::Arc<signature::ParsedPublicKey>,
}

/// Largest checkpoint note read.
const MAX_NOTE_BYTES: usize = 16 * 1024;

impl NoteVerifier {
    /// Reads a `name+hash+base64(0x01 || public key)` verifier key.
    pub fn from_verifier_key(text: &str) -> Result<Self, AuditError> {
        let mut parts = text.trim().splitn(3, '+');
        let (Some(name), Some(hash_hex), Some(b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("verifier key must be name+hash+key"));
        };
        if !valid_name(name) {
            return Err(bad("bad key name"));
        }
        let raw = STANDARD
            .decode(b64)
            .map_err(|_| bad("verifier key is not base64"))?;
        let public = match raw.split_first() {
            Some((1, public)) if public.len() == 32 => public,
            _ => return Err(bad("verifier key must be an Ed25519 key (type byte 1)")),
        };
        let hash = key_hash(name, public);
        if hex(&hash) != hash_hex {
            return Err(bad("verifier key hash does not match its name and key"));
        }
        let key = signature::ParsedPublicKey::new(&signature::ED25519, public)
            .map_err(|_| bad("bad Ed25519 public key"))?;
        Ok(Self {
            name: name.to_owned(),
            hash,
            key: std::sync::Arc::new(key),
        })
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Parses a signed checkpoint note and checks it carries a valid signature by this key.
    /// Signatures by other keys are ignored, as the signed-note format allows co-signers.
    pub fn verify(&self, note: &str) -> Result<Checkpoint, AuditError> {
        Checkpoint::parse_body(&self.verify_note(note)?)
    }

    /// Checks a signed note (any text) carries a valid signature by this key; returns its body.
    pub fn verify_note(&self, note: &str) -> Result<String, AuditError> {
        if note.len() > MAX_NOTE_BYTES {
            return Err(bad("note too large"));
        }
        let (body, sigs) = note
            .split_once("\n\n")
            .ok_or_else(|| bad("no blank line between body and signatures"))?;
        let body = format!("{body}\n");
        let mut found = false;
        for line in sigs.lines() {
            let Some(rest) = line.strip_prefix("\u{2014} ") else {
                return Err(bad("signature line does not start with an em dash"));
            };
            let Some((name, b64)) = rest.split_once(' ') else {
                return Err(bad("signature line has no key name"));
            };
            if name != self.name {
                continue;
            }
            let blob = STANDARD
                .decode(b64)
                .map_err(|_| bad("signature is not base64"))?;
            if blob.len() != 68 || blob.get(..4) != Some(&self.hash[..]) {
                continue;
            }
            if self
                .key
                .verify_sig(body.as_bytes(), blob.get(4..).unwrap_or_default())
                .is_err()
            {
                return Err(bad("signature does not verify"));
            }
            found = true;
        }
        if !found {
            return Err(bad(format!("no signature by key {}", self.name)));
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_key_strings_round_trip() {
        let signer = NoteSigner::generate("audit.example/log").unwrap();
        let cp = Checkpoint {
            origin: "audit.example/log".into(),
            size: 42,
            root: [7u8; 32],
        };
        let note = signer.sign(&cp);
        assert!(note.starts_with("audit.example/log\n42\nBwcH"));
        let verifier = NoteVerifier::from_verifier_key(&signer.verifier_key()).unwrap();
        assert_eq!(verifier.verify(&note).unwrap(), cp);
        let again = NoteSigner::from_private_key(&signer.private_key().unwrap()).unwrap();
        assert_eq!(again.verifier_key(), signer.verifier_key());
        assert!(!format!("{signer:?}").contains(&*signer.private_key().unwrap()));
    }

    #[test]
    fn verifies_the_signed_note_example_of_the_go_note_package() {
        // The example key and note from the documentation of golang.org/x/mod/sumdb/note.
        let v = NoteVerifier::from_verifier_key(
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        )
        .unwrap();
        let note = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
        let body = v.verify_note(note).unwrap();
        assert!(body.starts_with("If you think"));
        assert!(v.verify_note(&note.replace("answer", "Answer")).is_err());
    }

    #[test]
    fn edits_and_wrong_keys_are_refused() {
        let signer = NoteSigner::generate("log").unwrap();
        let other = NoteSigner::generate("log").unwrap();
        let cp = Checkpoint {
            origin: "log".into(),
            size: 3,
            root: [1u8; 32],
        };
        let note = signer.sign(&cp);
        let v = NoteVerifier::from_verifier_key(&signer.verifier_key()).unwrap();
        let code = |n: &str| v.verify(n).unwrap_err().code();
        assert_eq!(
            code(&note.replace("\n3\n", "\n4\n")),
            "audit.bad_checkpoint"
        );
        assert_eq!(code(&other.sign(&cp)), "audit.bad_checkpoint");
        assert_eq!(code(&cp.body()), "audit.bad_checkpoint");
        assert_eq!(code(""), "audit.bad_checkpoint");
        assert!(NoteVerifier::from_verifier_key("log+00000000+AQ==").is_err());
    }
}
