//! The reason code this crate raises (see `agentiam-codes`).

agentiam_codes::codes! {
    raised_by = "agentiam-state";
    /// The state the service's workers share (approval nonces, DPoP proof ids, budgets, task
    /// taint) could not be read or written; the guard fails closed.
    STATE_UNAVAILABLE = "guard.state_unavailable", 503;
}
