//! Any text as two JSON number literals compared exactly (`ExactNumber`), the way scope
//! constraints, Cedar contexts and approval digests read arguments. Never a panic; the
//! printed form reads back as the same number; the order is antisymmetric and, for whole
//! numbers that fit an i64, is the integers' order; a scope constraint over the literal
//! agrees with the comparison.
#![no_main]

use agentiam_token::{ExactNumber, ScopeRequest, ScopeSet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (a, b) = text.split_once(' ').unwrap_or((text, "0"));
    let (Ok(x), Ok(y)) = (ExactNumber::parse(a), ExactNumber::parse(b)) else {
        return;
    };
    for n in [&x, &y] {
        let again = ExactNumber::parse(&n.to_string()).expect("the printed form parses");
        assert_eq!(&again, n, "{n} does not read back");
    }
    assert_eq!(x.cmp(&y), y.cmp(&x).reverse());
    if let (Some(i), Some(j)) = (x.to_i64(), y.to_i64()) {
        assert_eq!(x.cmp(&y), i.cmp(&j));
    }
    // The scope grammar takes plain decimals; where `b` is one, the constraint agrees.
    if !b.contains(['e', 'E', '+']) && b.len() < 200 {
        if let Ok(scopes) = ScopeSet::parse(&format!("orders:cancel{{n<={b}}}")) {
            if let Ok(args) = serde_json::from_str::<serde_json::Value>(&format!("{{\"n\": {a}}}")) {
                let admitted = scopes
                    .check(&ScopeRequest::new("orders", "cancel").with_args(&args))
                    .is_ok();
                assert_eq!(admitted, x <= y, "{a} <= {b}");
            }
        }
    }
});
