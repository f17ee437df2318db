//! Any text as a DPoP proof: refused with a code, never a panic.
#![no_main]

use std::sync::{Arc, OnceLock};

use agentiam_token::{DpopRequest, DpopVerifier, FixedClock};
use libfuzzer_sys::fuzz_target;

fn verifier() -> &'static DpopVerifier {
    static V: OnceLock<DpopVerifier> = OnceLock::new();
    V.get_or_init(|| DpopVerifier::new(Arc::new(FixedClock::new(1_800_000_000))))
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let req = DpopRequest { method: "POST", url: "https://api.example/pay" };
        let _ = verifier().verify(text, &req, Some("token"));
    }
});
