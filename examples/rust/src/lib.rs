//! The programs in `examples/` are the user stories of agentiam, each one file that
//! `cargo run --example <name>` runs:
//!
//! - `guard_tool_call`: a guard in front of an agent's tool calls (scope, Cedar policy, a human's
//!   approval, taint);
//! - `axum_service`: the guard's tower layer in front of an axum service, with the broker's keys
//!   (the README's HTTP section is this file, and `tests/python/test_readme_rust_http.py` builds
//!   it in a fresh cargo project);
//! - `issue_and_exchange`: a task token for an agent and a narrower one for its sub-agent;
//! - `verify_audit_log`: write an activity log, verify it offline, and see a tampered copy refused.
//!
//! The crate itself holds nothing else.
#![forbid(unsafe_code)]
