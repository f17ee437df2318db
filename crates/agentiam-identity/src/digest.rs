//! SHA-256 digests over RFC 8785 canonical JSON.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::IdentityError;

/// A SHA-256 digest, written as `sha256:` followed by 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Digest([u8; 32]);

impl Sha256Digest {
    /// Hashes raw bytes.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        Self(out)
    }

    /// Hashes the RFC 8785 (JCS) canonical JSON form of `value`.
    ///
    /// Canonical JSON makes the digest independent of key order and whitespace,
    /// so two parties that serialize the same value differently agree on it.
    pub fn of_canonical_json<T: Serialize>(
        value: &T,
        what: &'static str,
    ) -> Result<Self, IdentityError> {
        let bytes = serde_json_canonicalizer::to_vec(value)
            .map_err(|_| IdentityError::Canonicalization(what))?;
        Ok(Self::of_bytes(&bytes))
    }

    /// The 32 raw digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Builds a digest from 32 raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses the `sha256:<hex>` form.
    pub fn parse(text: &str) -> Option<Self> {
        let hex = text.strip_prefix("sha256:")?;
        if hex.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            let pair = hex.get(i * 2..i * 2 + 2)?;
            if !pair.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
                return None;
            }
            *byte = u8::from_str_radix(pair, 16).ok()?;
        }
        Some(Self(out))
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = [0u8; 64];
        hex::encode_to_slice(self.0, &mut out).map_err(|_| fmt::Error)?;
        f.write_str("sha256:")?;
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Sha256Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Sha256Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&text)
            .ok_or_else(|| serde::de::Error::custom("expected sha256:<64 lowercase hex digits>"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_parse_round_trip() {
        let d = Sha256Digest::of_bytes(b"abc");
        assert_eq!(
            d.to_string(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Sha256Digest::parse(&d.to_string()), Some(d));
        assert_eq!(Sha256Digest::parse("sha256:BA7816"), None);
        assert_eq!(Sha256Digest::parse("md5:00"), None);
    }

    #[test]
    fn canonical_json_ignores_key_order_and_whitespace() {
        let a: serde_json::Value = serde_json::from_str(r#"{"b":1,"a":[1,2]}"#).unwrap_or_default();
        let b: serde_json::Value =
            serde_json::from_str("{ \"a\" : [1, 2], \"b\": 1.0 }").unwrap_or_default();
        assert_eq!(
            Sha256Digest::of_canonical_json(&a, "a").ok(),
            Sha256Digest::of_canonical_json(&b, "b").ok()
        );
    }
}
