//! Any text as a JWKS or a private JWK: an error or a key, never a panic.
#![no_main]

use agentiam_identity::{Jwks, SigningKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(jwks) = Jwks::from_json(text) {
            for key in jwks.keys() {
                let _ = key.verify(b"message", &[0u8; 64]);
            }
        }
        let _ = SigningKey::from_private_jwk(text);
    }
});
