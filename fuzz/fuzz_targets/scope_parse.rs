//! Any text as a scope set: parsing never panics, and what parses prints back to an equal set.
#![no_main]

use agentiam_token::{ScopeRequest, ScopeSet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(set) = ScopeSet::parse(text) {
            let again = ScopeSet::parse(&set.to_string()).expect("printed scopes parse");
            assert_eq!(again, set);
            assert!(set.is_subset_of(&set));
            let args = serde_json::json!({"amount": 5, "currency": "USD"});
            let _ = set.covers(&ScopeRequest::new("ledger.ar", "read").with_args(&args));
        }
    }
});
