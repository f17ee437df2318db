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
    if is_plain(v) {
        serde_json::to_string(v).map_err(|e| AuditError::Serialize(e.to_string()))
    } else {
        exact(v)
    }
}

/// Canonical JSON of an event.
pub(crate) fn event_to_string(e: &AuditEvent) -> Result<String, AuditError> {
    let plain = e.tool.as_ref().is_none_or(|t| is_plain(&t.args))
        && e.time_unix_ms.unsigned_abs() <= MAX_SAFE
        && e.duration_us.is_none_or(|d| d <= MAX_SAFE);
    if plain {
        // Sized for a typical event up front: `to_string` starts at 128 bytes and grows by copying.
        let mut out = Vec::with_capacity(1024);
        serde_json::to_writer(&mut out, e).map_err(|e| AuditError::Serialize(e.to_string()))?;
        String::from_utf8(out).map_err(|e| AuditError::Serialize(e.to_string()))
    } else {
        exact(e)
    }
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
