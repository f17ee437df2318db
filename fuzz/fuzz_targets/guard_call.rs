//! Any bytes as a call document (token, DPoP proof, client certificate, tool, arguments, approval)
//! against the guard of testvectors/guard.json: deciding never panics, and an allow is only ever
//! for a registered tool.
//! Seed corpus: `python3 -c` over testvectors/guard.json's calls (see fuzz/README or run with -seed_inputs).
#![no_main]

use std::sync::{Arc, OnceLock};

use agentiam_guard::{Authenticator, CallInput, Guard, GuardConfig};
use agentiam_token::FixedClock;
use libfuzzer_sys::fuzz_target;

fn world() -> &'static (Guard, Authenticator) {
    static WORLD: OnceLock<(Guard, Authenticator)> = OnceLock::new();
    WORLD.get_or_init(|| {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../../testvectors/guard.json")).expect("vectors");
        let config = GuardConfig::from_json(&doc["config"].to_string()).expect("config");
        config
            .build(Arc::new(FixedClock::new(doc["now"].as_i64().expect("now"))))
            .expect("guard")
    })
}

fuzz_target!(|data: &[u8]| {
    let (guard, auth) = world();
    let Ok(text) = std::str::from_utf8(data) else { return };
    if text.len() > agentiam_guard::MAX_DOCUMENT_BYTES {
        return;
    }
    if let Ok(input) = serde_json::from_str::<CallInput>(text) {
        let decision = input.decide(guard, auth);
        if decision.is_allowed() {
            assert!(guard.tool(&input.tool).is_some(), "allowed an unregistered tool");
        }
    }
});
