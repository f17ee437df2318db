//! One log record per line: `{"event":{...},"hash":"<hex>","prev":"<hex>","seq":N}` in RFC 8785
//! canonical form, where `hash` = RFC 6962 leaf hash of the canonical `{"event","prev","seq"}`
//! and `prev` = the previous record's `hash` (64 zeros for the first).
//!
//! A line must be byte-for-byte its own canonical form, so no edit, however small, can keep
//! a record valid without changing its hash.

use serde_json::Value;

use crate::AuditError;
use crate::merkle::{Hash, leaf_hash};

/// `prev` of the first record.
pub const GENESIS: Hash = [0u8; 32];

pub(crate) fn hex(h: &Hash) -> String {
    hex::encode(h)
}

fn unhex(s: &str) -> Option<Hash> {
    if s.len() != 64 || !s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Encodes a record around an event already in canonical JSON.
pub(crate) fn encode_canonical(
    seq: u64,
    prev: &Hash,
    event_json: &str,
) -> Result<(Vec<u8>, Hash), AuditError> {
    let prev_hex = hex(prev);
    // Canonical key order is event, hash, prev, seq; the hashed body omits hash.
    let body = format!(r#"{{"event":{event_json},"prev":"{prev_hex}","seq":{seq}}}"#);
    let hash = leaf_hash(body.as_bytes());
    let line = format!(
        r#"{{"event":{event_json},"hash":"{}","prev":"{prev_hex}","seq":{seq}}}"#,
        hex(&hash)
    ) + "\n";
    Ok((line.into_bytes(), hash))
}

/// A record read back and checked on its own (not yet against its neighbours).
#[derive(Debug, Clone)]
pub struct Record {
    /// Sequence number.
    pub seq: u64,
    /// The previous record's hash.
    pub prev: Hash,
    /// This record's leaf hash.
    pub hash: Hash,
}

/// Why a line is not a valid record.
#[derive(Debug)]
pub(crate) enum LineError {
    /// Not JSON, not canonical, missing members, or the hash does not match.
    Invalid(String),
}

/// Parses and checks one line (without its newline).
pub(crate) fn decode(line: &[u8]) -> Result<Record, LineError> {
    let value: Value =
        serde_json::from_slice(line).map_err(|e| LineError::Invalid(format!("not JSON: {e}")))?;
    let canonical =
        crate::canonical::value_to_string(&value).map_err(|e| LineError::Invalid(e.to_string()))?;
    if canonical.as_bytes() != line {
        return Err(LineError::Invalid("record is not in canonical form".into()));
    }
    let obj = value
        .as_object()
        .ok_or_else(|| LineError::Invalid("record is not an object".into()))?;
    if obj.len() != 4 {
        return Err(LineError::Invalid(
            "record must have exactly event, hash, prev, seq".into(),
        ));
    }
    let seq = obj
        .get("seq")
        .and_then(Value::as_u64)
        .ok_or_else(|| LineError::Invalid("bad seq".into()))?;
    let prev = obj
        .get("prev")
        .and_then(Value::as_str)
        .and_then(unhex)
        .ok_or_else(|| LineError::Invalid("bad prev".into()))?;
    let hash = obj
        .get("hash")
        .and_then(Value::as_str)
        .and_then(unhex)
        .ok_or_else(|| LineError::Invalid("bad hash".into()))?;
    if !obj.contains_key("event") {
        return Err(LineError::Invalid("no event".into()));
    }
    // The line is canonical with exactly these members, so it is laid out as
    // {"event":E,"hash":"H","prev":"P","seq":N} and E is the event's canonical JSON.
    let suffix = format!(
        r#","hash":"{}","prev":"{}","seq":{seq}}}"#,
        hex(&hash),
        hex(&prev)
    );
    let event_json = line
        .strip_prefix(br#"{"event":"#)
        .and_then(|rest| rest.strip_suffix(suffix.as_bytes()))
        .and_then(|e| std::str::from_utf8(e).ok())
        .ok_or_else(|| LineError::Invalid("record layout".into()))?;
    let (_, expected) =
        encode_canonical(seq, &prev, event_json).map_err(|e| LineError::Invalid(e.to_string()))?;
    if expected != hash {
        return Err(LineError::Invalid(
            "record hash does not match its contents".into(),
        ));
    }
    Ok(Record { seq, prev, hash })
}
