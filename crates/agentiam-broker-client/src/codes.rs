//! The reason codes the broker's client raises (see `agentiam-codes`); the broker raises them
//! too and re-exports them.

agentiam_codes::codes! {
    raised_by = "agentiam-broker-client";
    /// A request is malformed: the broker refuses it (400), or the client could not build it.
    BAD_REQUEST = "broker.bad_request", 400;
    /// The broker (or, from the broker, an upstream it needs) could not be reached or its answer
    /// read.
    UNREACHABLE = "broker.unreachable", 502;
}
