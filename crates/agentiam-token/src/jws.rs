//! Compact JWS: the only serialization accepted. Parsing is bounded and never trusts the header
//! to choose a key or an algorithm.

use std::sync::Arc;

use agentiam_identity::{Algorithm, IdentityError, SigningKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use crate::TokenError;
use crate::error::clip;

/// Largest token accepted, checked before any decoding (8 KiB).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

pub(crate) fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn unb64url(part: &'static str, text: &str) -> Result<Vec<u8>, TokenError> {
    // The decoder is strict: no padding, no whitespace, no non-canonical trailing bits.
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| TokenError::Malformed(format!("{part} is not base64url")))
}

/// The protected header members agentiam reads. `jwk`, `jku`, `x5u` and `x5c` are
/// deliberately not read: a key is never taken from the token it is meant to check.
#[derive(Debug, Deserialize)]
pub(crate) struct Header {
    pub(crate) alg: Option<String>,
    #[serde(default)]
    pub(crate) typ: Option<String>,
    #[serde(default)]
    pub(crate) kid: Option<String>,
    #[serde(default)]
    pub(crate) crit: Option<serde_json::Value>,
    /// Only for DPoP proofs, where RFC 9449 puts the proof key in the header.
    #[serde(default)]
    pub(crate) jwk: Option<agentiam_identity::Jwk>,
}

/// A compact JWS split and decoded, signature not yet checked.
#[derive(Debug, Clone)]
pub(crate) struct CompactJws {
    pub(crate) header: Arc<HeaderParts>,
    /// `base64url(header) "." base64url(payload)`: the signed bytes.
    pub(crate) signing_input_len: usize,
    pub(crate) raw: Arc<str>,
    pub(crate) payload: Vec<u8>,
    pub(crate) signature: Vec<u8>,
}

#[derive(Debug)]
pub(crate) struct HeaderParts {
    pub(crate) alg: String,
    pub(crate) typ: Option<String>,
    pub(crate) kid: Option<String>,
    pub(crate) jwk: Option<agentiam_identity::Jwk>,
}

impl CompactJws {
    pub(crate) fn parse(token: &str) -> Result<Self, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLarge {
                size: token.len(),
                max: MAX_TOKEN_BYTES,
            });
        }
        if token.starts_with('{') {
            return Err(TokenError::Malformed(
                "JWS JSON serialization is not accepted; use the compact form".into(),
            ));
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed(
                "expected three dot-separated parts (JWE and unsigned tokens are not accepted)"
                    .into(),
            ));
        };
        let header_bytes = unb64url("header", h)?;
        let header: Header = serde_json::from_slice(&header_bytes)
            .map_err(|e| TokenError::Malformed(format!("header: {e}")))?;
        if let Some(crit) = &header.crit {
            return Err(TokenError::CritUnsupported(clip(&crit.to_string())));
        }
        let alg = header
            .alg
            .ok_or_else(|| TokenError::Malformed("header has no alg".into()))?;
        let payload = unb64url("payload", p)?;
        let signature = unb64url("signature", s)?;
        Ok(Self {
            header: Arc::new(HeaderParts {
                alg,
                typ: header.typ,
                kid: header.kid,
                jwk: header.jwk,
            }),
            signing_input_len: h.len() + 1 + p.len(),
            raw: Arc::from(token),
            payload,
            signature,
        })
    }

    pub(crate) fn signing_input(&self) -> &[u8] {
        self.raw
            .as_bytes()
            .get(..self.signing_input_len)
            .unwrap_or_default()
    }
}

/// Signs `payload` as a compact JWS with `key`, putting `alg` (from the key) and `kid` in
/// the header along with `extra` members (`typ`, and `jwk` for DPoP proofs).
pub fn sign_compact(
    key: &SigningKey,
    extra: &serde_json::Map<String, serde_json::Value>,
    payload: &[u8],
) -> Result<String, TokenError> {
    let mut header = extra.clone();
    header.insert("alg".into(), key.alg().jws_name().into());
    header.entry("kid").or_insert_with(|| key.kid().into());
    let header = serde_json::to_vec(&header).map_err(|e| TokenError::Signing(e.to_string()))?;
    let mut out = b64url(&header);
    out.push('.');
    out.push_str(&b64url(payload));
    let sig = key
        .sign(out.as_bytes())
        .map_err(|e: IdentityError| TokenError::Signing(e.to_string()))?;
    out.push('.');
    out.push_str(&b64url(&sig));
    Ok(out)
}

/// Checks the header's algorithm against the key's pinned one, then the signature.
pub(crate) fn check_signature(
    jws: &CompactJws,
    key: &agentiam_identity::PublicKey,
) -> Result<(), TokenError> {
    if Algorithm::from_jws_name(&jws.header.alg).is_none()
        || !key.alg().matches_header(&jws.header.alg)
    {
        return Err(TokenError::AlgNotAllowed(clip(&jws.header.alg)));
    }
    if key.verify(jws.signing_input(), &jws.signature) {
        Ok(())
    } else {
        Err(TokenError::BadSignature)
    }
}
