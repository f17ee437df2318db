//! The registry of stable reason codes, across the library crates and the Python package.

pub use agentiam_codes::{CodeInfo, ReasonCode, is_well_formed};

/// Codes only the Python package raises (it writes them as strings; a test checks each is
/// registered).
pub mod python {
    agentiam_codes::codes! {
        raised_by = "agentiam (Python)";
        /// A session was used with a guard that did not open it.
        SESSION_FOREIGN = "guard.session_foreign", 0;
        /// The guard has no activity log to read (give `audit_dir` or `audit_log`).
        AUDIT_NOT_CONFIGURED = "audit.not_configured", 0;
    }
}

/// Every code the library crates (identity, token, state, telemetry, guard) and the Python
/// package declare, in that order.
pub fn library() -> impl Iterator<Item = &'static CodeInfo> {
    [
        agentiam_identity::codes::ALL,
        agentiam_token::codes::ALL,
        agentiam_state::codes::ALL,
        agentiam_telemetry::codes::ALL,
        agentiam_guard::codes::ALL,
        python::ALL,
    ]
    .into_iter()
    .flatten()
}
