//! RFC 8785 (JCS) canonical JSON, fast.
//!
//! `serde_json_canonicalizer` is exact but costs ~24 µs for an 800-byte event (it re-parses every
//! key). For the common case serde_json's own output is already canonical: object keys sorted
//! (serde_json's `Map` is a `BTreeMap`, and `AuditEvent` declares its fields in key order),
//! integers that a double holds exactly, and ASCII keys (whose UTF-8 and UTF-16 orders agree).
//! Anything else (fractional or huge numbers, non-ASCII keys, an insertion-ordered map) takes the
//! exact path. A property test compares both paths.

use serde_json::Value;

use crate::{AuditError, AuditEvent};

/// Largest integer every JSON number (an IEEE double) holds exactly.
const MAX_SAFE: u64 = 1 << 53;

/// Whether serde_json writes `v` in canonical form.
pub(crate) fn is_plain(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(_) | Value::String(_) => true,
        Value::Number(n) => {
            n.as_u64().is_some_and(|u| u <= MAX_SAFE)
                || n.as_i64().is_some_and(|i| i.unsigned_abs() <= MAX_SAFE)
        }
        Value::Array(items) => items.iter().all(is_plain),
        Value::Object(map) => {
            map.keys().all(|k| k.is_ascii())
                && map.keys().zip(map.keys().skip(1)).all(|(a, b)| a < b)
                && map.values().all(is_plain)
        }
    }
}

fn exact<T: serde::Serialize>(v: &T) -> Result<String, AuditError> {
    serde_json_canonicalizer::to_string(v).map_err(|e| AuditError::Serialize(e.to_string()))
}

/// Canonical JSON of any value.
pub(crate) fn value_to_string(v: &Value) -> Result<String, AuditError> {
    with_value_json(v, |json| {
        String::from_utf8(json.to_vec()).map_err(|e| AuditError::Serialize(e.to_string()))
    })
}

/// Largest serialization buffer a thread keeps between events.
const MAX_SCRATCH: usize = 64 << 10;

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn is_plain_event(e: &AuditEvent) -> bool {
    e.tool.as_ref().is_none_or(|t| is_plain(&t.args))
        && e.time_unix_ms.unsigned_abs() <= MAX_SAFE
        && e.duration_us.is_none_or(|d| d <= MAX_SAFE)
}

/// Appends an event's canonical JSON to `out`.
fn write_event(e: &AuditEvent, out: &mut Vec<u8>) -> Result<(), AuditError> {
    if is_plain_event(e) {
        serde_json::to_writer(&mut *out, e).map_err(|e| AuditError::Serialize(e.to_string()))
    } else {
        out.extend_from_slice(exact(e)?.as_bytes());
        Ok(())
    }
}

/// Runs `f` with a buffer the thread keeps (so a stream of calls allocates nothing here).
fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    let kept = SCRATCH.try_with(|s| s.try_borrow_mut().map(|mut s| std::mem::take(&mut *s)).ok());
    // Re-entered (or during thread teardown): a buffer of its own.
    let mut out = kept.ok().flatten().unwrap_or_default();
    out.clear();
    let result = f(&mut out);
    if out.capacity() <= MAX_SCRATCH {
        let _ = SCRATCH.try_with(|s| {
            if let Ok(mut s) = s.try_borrow_mut() {
                *s = out;
            }
        });
    }
    result
}

/// Runs `f` on a value's canonical JSON, written into the thread's buffer.
pub(crate) fn with_value_json<R>(
    v: &Value,
    f: impl FnOnce(&[u8]) -> Result<R, AuditError>,
) -> Result<R, AuditError> {
    with_scratch(|out| {
        if is_plain(v) {
            serde_json::to_writer(&mut *out, v)
                .map_err(|e| AuditError::Serialize(e.to_string()))?;
        } else {
            out.extend_from_slice(exact(v)?.as_bytes());
        }
        f(out)
    })
}

/// Runs `f` on the events' canonical JSON, written into the thread's buffer. An event that
/// cannot be serialized fails the call before `f` runs.
pub(crate) fn with_events_json<R>(
    events: &[AuditEvent],
    f: impl FnOnce(&mut dyn Iterator<Item = &[u8]>) -> Result<R, AuditError>,
) -> Result<R, AuditError> {
    with_scratch(|out| {
        let mut ends = Vec::with_capacity(events.len());
        for e in events {
            write_event(e, out)?;
            ends.push(out.len());
        }
        let mut start = 0;
        let mut jsons = ends.iter().map(|&end| {
            let json = out.get(start..end).unwrap_or_default();
            start = end;
            json
        });
        f(&mut jsons)
    })
}

/// Runs `f` on one event's canonical JSON (see [`with_events_json`]).
pub(crate) fn with_event_json<R>(
    event: &AuditEvent,
    f: impl FnOnce(&[u8]) -> Result<R, AuditError>,
) -> Result<R, AuditError> {
    with_scratch(|out| {
        write_event(event, out)?;
        f(out)
    })
}

/// Canonical JSON of an event.
#[cfg(test)]
pub(crate) fn event_to_string(e: &AuditEvent) -> Result<String, AuditError> {
    with_event_json(e, |json| {
        String::from_utf8(json.to_vec()).map_err(|e| AuditError::Serialize(e.to_string()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AgentRef, Decision, RedactionPolicy};
    use proptest::prelude::*;
    use serde_json::json;

    fn full_event(args: Value) -> AuditEvent {
        let mut e = AuditEvent::new(
            "tool_call",
            AgentRef {
                spiffe_id: "spiffe://a/b".into(),
                composite_digest: Some("sha256:00".into()),
            },
            1_800_000_000_000,
            Decision::deny("guard.x"),
        );
        e.on_behalf_of = Some("user".into());
        e.delegation_chain = vec!["spiffe://a/p".into()];
        e.task_id = Some("t".into());
        e.token_jti = Some("j".into());
        e.trace_id = Some("0".repeat(32));
        e.span_id = Some("0".repeat(16));
        e.input = Some(
            RedactionPolicy {
                record_input_content: true,
                ..RedactionPolicy::default()
            }
            .content("héllo \u{2028} \"q\" \n"),
        );
        e.tool = Some(
            RedactionPolicy::default()
                .tool_call("t", Some("c"), &args)
                .unwrap(),
        );
        e.data_accessed = vec!["r".into()];
        e.decision.policy_id = Some("p".into());
        e.decision.policy_version = Some("1".into());
        e.approval_ref = Some("a".into());
        e.output_sha256 = Some("sha256:11".into());
        e.duration_us = Some(5);
        e
    }

    #[test]
    fn fast_path_equals_jcs_for_a_full_event() {
        let e = full_event(json!({"b": [1, -2, true, null], "a": {"y": "\u{0001}", "x": "é"}}));
        assert_eq!(event_to_string(&e).unwrap(), exact(&e).unwrap());
    }

    #[test]
    fn floats_big_numbers_and_non_ascii_keys_take_the_exact_path() {
        for args in [
            json!({"x": 1.5}),
            json!({"x": 1e21}),
            json!({"x": 9_007_199_254_740_993u64}),
            json!({"é": 1, "z": 2}),
        ] {
            let e = full_event(args);
            assert_eq!(event_to_string(&e).unwrap(), exact(&e).unwrap());
        }
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|i| json!(i)),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            "\\PC{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("\\PC{0,4}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn fast_path_always_equals_jcs(v in arb_json()) {
            prop_assert_eq!(value_to_string(&v).unwrap(), exact(&v).unwrap());
        }
    }
}
