//! The committed `testvectors/guard.json` is what `examples/gen_guard_vectors.rs` writes today, apart from
//! what the generator draws at random (see `agentiam_test_support::normalize_vectors`):
//! a generator changed without regenerating its file fails here.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "test harness: a panic is a failed test"
)]

#[allow(dead_code, reason = "the generator's main is for cargo run")]
#[path = "../examples/gen_guard_vectors.rs"]
mod generator;

#[test]
fn the_committed_vectors_are_what_the_generator_writes() {
    agentiam_test_support::assert_vectors_fresh(
        "guard.json",
        &generator::document(),
        "cargo run -p agentiam-guard --example gen_guard_vectors > testvectors/guard.json",
    );
}
