//! One log record per line: `{"event":{...},"hash":"<hex>","prev":"<hex>","seq":N}` in RFC 8785
//! canonical form, where `hash` = RFC 6962 leaf hash of the canonical `{"event","prev","seq"}`
//! and `prev` = the previous record's `hash` (64 zeros for the first).
//!
//! A line must be byte-for-byte its own canonical form, so no edit, however small, can keep
//! a record valid without changing its hash.

use serde_json::Value;

use crate::AuditError;
use crate::merkle::Hash;

/// `prev` of the first record.
pub const GENESIS: Hash = [0u8; 32];

pub(crate) fn hex(h: &Hash) -> String {
    // Through a stack buffer: `hex::encode` builds its String a char at a time.
    let mut out = [0u8; 64];
    match hex::encode_to_slice(h, &mut out) {
        Ok(()) => String::from_utf8_lossy(&out).into_owned(),
        Err(_) => String::new(),
    }
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
    let mut line = Vec::with_capacity(event_json.len() + 180);
    let hash = encode_into(seq, prev, event_json.as_bytes(), &mut line);
    Ok((line, hash))
}

/// Appends the record's line (with its newline) to `out` and returns its hash, hashing the
/// body's pieces in place instead of building it.
pub(crate) fn encode_into(seq: u64, prev: &Hash, event_json: &[u8], out: &mut Vec<u8>) -> Hash {
    let mut prev_hex = [0u8; 64];
    let _ = hex::encode_to_slice(prev, &mut prev_hex);
    let mut seq_text = itoa::Buffer::new();
    let seq_text = seq_text.format(seq).as_bytes();
    // Canonical key order is event, hash, prev, seq; the hashed body omits hash.
    let hash = crate::merkle::sha256(&[
        &[0u8],
        br#"{"event":"#,
        event_json,
        br#","prev":""#,
        &prev_hex,
        br#"","seq":"#,
        seq_text,
        b"}",
    ]);
    let mut hash_hex = [0u8; 64];
    let _ = hex::encode_to_slice(hash, &mut hash_hex);
    for piece in [
        br#"{"event":"#.as_slice(),
        event_json,
        br#","hash":""#,
        &hash_hex,
        br#"","prev":""#,
        &prev_hex,
        br#"","seq":"#,
        seq_text,
        b"}\n",
    ] {
        out.extend_from_slice(piece);
    }
    hash
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
