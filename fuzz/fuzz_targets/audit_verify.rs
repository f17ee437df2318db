//! Any bytes as a log segment, and any text as a checkpoint note: verification returns a code, never panics.
#![no_main]

use std::sync::OnceLock;

use agentiam_telemetry::{MemStore, NoteSigner, NoteVerifier, verify_log};
use libfuzzer_sys::fuzz_target;

fn verifier() -> &'static NoteVerifier {
    static V: OnceLock<NoteVerifier> = OnceLock::new();
    V.get_or_init(|| {
        let signer = NoteSigner::generate("fuzz/audit").expect("key");
        NoteVerifier::from_verifier_key(&signer.verifier_key()).expect("vkey")
    })
}

fuzz_target!(|data: &[u8]| {
    let (segment, note) = match data.iter().position(|b| *b == 0xff) {
        Some(at) => (&data[..at], std::str::from_utf8(&data[at + 1..]).ok()),
        None => (data, None),
    };
    let store = MemStore::new();
    store.set_segment(0, segment.to_vec());
    if let Err(e) = verify_log(&store, note.map(|n| (n, verifier()))) {
        assert!(e.code().starts_with("audit."));
    }
    let _ = NoteVerifier::from_verifier_key(note.unwrap_or_default());
});
