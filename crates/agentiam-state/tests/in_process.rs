//! The conformance suite against [`InProcessState`], the reference every backend matches.
#![allow(
    clippy::unwrap_used,
    missing_docs,
    reason = "test harness: a panic is a failed test"
)]

mod common;

use std::sync::Arc;

use agentiam_state::{InProcessState, SharedState};

#[test]
fn in_process_state_conforms() {
    common::conformance(&InProcessState::default());
}

#[test]
fn in_process_spends_exactly_the_budget_under_a_race() {
    let shared: Arc<dyn SharedState> = Arc::new(InProcessState::default());
    common::race_spend(&|| Arc::clone(&shared));
}

#[test]
fn in_process_spends_budget_chains_all_or_none_under_a_race() {
    let shared: Arc<dyn SharedState> = Arc::new(InProcessState::default());
    common::race_spend_chains(&|| Arc::clone(&shared));
}

#[test]
fn in_process_use_once_has_one_winner_under_a_race() {
    let shared: Arc<dyn SharedState> = Arc::new(InProcessState::default());
    common::race_use_once(&|| Arc::clone(&shared));
}
