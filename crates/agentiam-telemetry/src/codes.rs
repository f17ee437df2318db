//! The reason codes this crate raises (see `agentiam-codes`): the activity log.

agentiam_codes::codes! {
    raised_by = "agentiam-telemetry";
    /// A record was altered, inserted, removed or reordered.
    TAMPERED = "audit.tampered", 0;
    /// The log is shorter than a checkpoint says, or a record is torn.
    TRUNCATED = "audit.truncated", 0;
    /// A checkpoint is malformed, badly signed, or does not match the log.
    BAD_CHECKPOINT = "audit.bad_checkpoint", 0;
    /// An event could not be serialized.
    SERIALIZE = "audit.serialize", 0;
    /// The log's storage failed.
    IO = "audit.io", 0;
    /// The log writer has stopped.
    CLOSED = "audit.closed", 0;
}
