//! Scope constraints compare numbers exactly: a constraint admits exactly the values its
//! mathematical reading admits, for integers of any size and decimals, checked against a model
//! in integer arithmetic (`i128`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "test harness: a panic is a failed test"
)]

use agentiam_token::{ScopeRequest, ScopeSet};
use proptest::prelude::*;
use serde_json::Value;

/// `m / 10^scale` written as a decimal literal (`-12.0340` for m = -120340, scale 4).
fn literal(m: i128, scale: u32) -> String {
    let digits = m.unsigned_abs().to_string();
    let sign = if m < 0 { "-" } else { "" };
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let scale = scale as usize;
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{sign}{int}.{frac}")
}

/// Exact order of `a / 10^sa` and `b / 10^sb` by cross-multiplication.
fn model_cmp((a, sa): (i128, u32), (b, sb): (i128, u32)) -> std::cmp::Ordering {
    let left = a * 10i128.pow(sb);
    let right = b * 10i128.pow(sa);
    left.cmp(&right)
}

fn admits(op: &str, bound: &str, argument: &str) -> bool {
    let scopes = ScopeSet::parse(&format!("orders:cancel{{n{op}{bound}}}")).unwrap();
    let args: Value = serde_json::from_str(&format!(r#"{{"n": {argument}}}"#)).unwrap();
    scopes
        .check(&ScopeRequest::new("orders", "cancel").with_args(&args))
        .is_ok()
}

fn holds(op: &str, ord: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match op {
        "=" => ord == Equal,
        "<" => ord == Less,
        "<=" => ord != Greater,
        ">" => ord == Greater,
        ">=" => ord != Less,
        _ => unreachable!(),
    }
}

fn any_number() -> impl Strategy<Value = (i128, u32)> {
    (-(10i128.pow(30))..10i128.pow(30), 0u32..6)
}

#[test]
fn a_large_order_id_admits_itself_and_not_its_float_neighbours() {
    let id = "1234567890123456789";
    assert!(admits("=", id, id));
    for neighbour in [
        "1234567890123456788",
        "1234567890123456790",
        "1234567890123456768",
        "1234567890123456800",
        "1234567890123456789.0000001",
    ] {
        assert!(!admits("=", id, neighbour), "{neighbour}");
    }
    // Beyond u64, and an exponent: still exact.
    assert!(admits(
        "<=",
        "99999999999999999999999",
        "99999999999999999999998"
    ));
    assert!(!admits(
        "<=",
        "99999999999999999999999",
        "100000000000000000000000"
    ));
    assert!(admits("<=", "1000", "1e3"));
    assert!(!admits("<=", "1000", "1.0000000000000000001e3"));
    assert!(!admits("<", "0.1", "0.1"));
    assert!(admits("<", "0.1", "0.09999999999999999999"));
    assert!(!admits("<=", "0.1", "0.10000000000000001"));
}

#[test]
fn a_number_too_long_to_read_exactly_is_never_admitted() {
    let long = format!("0.{}", "0".repeat(2000));
    assert!(
        !admits("<=", "1", &long),
        "a 2,000-digit literal is refused, not rounded"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn a_constraint_admits_exactly_what_its_mathematical_reading_admits(
        bound in any_number(),
        op in prop::sample::select(vec!["=", "<", "<=", ">", ">="]),
        argument in any_number(),
    ) {
        let want = holds(op, model_cmp(argument, bound));
        prop_assert_eq!(
            admits(op, &literal(bound.0, bound.1), &literal(argument.0, argument.1)),
            want,
            "{} {} {}", literal(argument.0, argument.1), op, literal(bound.0, bound.1)
        );
    }

    #[test]
    fn values_next_to_the_bound_are_decided_exactly(
        bound in any_number(),
        op in prop::sample::select(vec!["=", "<", "<=", ">", ">="]),
        pick in 0usize..3,
        extra in 0u32..4,
        delta in -3i128..=3,
    ) {
        let argument = match pick {
            0 => bound,
            _ => (bound.0 * 10i128.pow(extra) + delta, bound.1 + extra),
        };
        let want = holds(op, model_cmp(argument, bound));
        prop_assert_eq!(
            admits(op, &literal(bound.0, bound.1), &literal(argument.0, argument.1)),
            want
        );
    }
}
