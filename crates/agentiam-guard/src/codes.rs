//! Stable reason codes for guard decisions (see `agentiam-codes`).
//!
//! These strings are a contract shared by Rust, Python, the CLI, HTTP responses and audit
//! records: tests assert them, and they are never renamed.
//! Codes the guard returns but another crate raises (the token's scope check, credentials,
//! the shared state) are re-exported here under the names the guard has always used.

pub use agentiam_state::codes::STATE_UNAVAILABLE;
pub use agentiam_token::codes::{CONSTRAINT_VIOLATED, EXPIRED as TOKEN_EXPIRED, SCOPE_MISSING};

agentiam_codes::codes! {
    raised_by = "agentiam-guard";
    /// Deployment policy (Cedar) forbids the call, or no policy permits it.
    POLICY_DENIED = "guard.policy_denied", 403;
    /// Policy evaluation failed; the guard fails closed.
    POLICY_ERROR = "guard.policy_error", 403;
    /// A human must approve this call first (the answer carries the approval request).
    CONFIRMATION_REQUIRED = "guard.confirmation_required", 403;
    /// The approval presented is forged, expired, replayed, for another call, or by a key that
    /// may not approve.
    CONFIRMATION_INVALID = "guard.confirmation_invalid", 403;
    /// A human refused the call through an approval channel, or never answered.
    CONFIRMATION_DENIED = "guard.confirmation_denied", 403;
    /// The content filter found an injection or a data-carrying URL in the arguments.
    INJECTION_DETECTED = "guard.injection_detected", 403;
    /// The tool's description or schema is not the one pinned in the token (or the tool was not
    /// in its manifest).
    TOOL_CHANGED = "guard.tool_changed", 403;
    /// A tool's description carries instructions for the model; the guard refuses to register it.
    TOOL_POISONING = "guard.tool_poisoning", 0;
    /// The session read untrusted content and the call is too risky to take without a human.
    TAINTED_CONTEXT = "guard.tainted_context", 403;
    /// The task declared an intent, the session read untrusted content, and the intent leaves an
    /// argument of this call free (or the intent itself was declared after untrusted content was
    /// read): a human confirms it.
    INTENT_UNBOUND = "guard.intent_unbound", 403;
    /// A tool that reaches the network at a URL the agent chose, in a session that read untrusted
    /// content, to a host outside the outbound allowlist that the task's intent does not fix: a
    /// human confirms it.
    OUTBOUND_UNLISTED = "guard.outbound_unlisted", 403;
    /// The behaviour check found the call anomalous.
    ANOMALY = "guard.anomaly", 403;
    /// A declared limit (calls per window, running total) refuses the call.
    RATE_LIMITED = "guard.rate_limited", 403;
    /// The tool (or HTTP route) is not registered with the guard.
    UNKNOWN_ACTION = "guard.unknown_action", 403;
    /// The arguments are not a JSON object, hold a number policy cannot represent exactly, or
    /// (HTTP layer) the request body is not JSON.
    ARGUMENTS_INVALID = "guard.arguments_invalid", 400;
    /// The arguments are too large or too many to examine completely (nested deeper than
    /// `MAX_ARGUMENT_DEPTH`, more than `MAX_ARGUMENT_VALUES` values or `MAX_ARGUMENT_BYTES` bytes of
    /// strings): refused before any check reads them, so no check ever passes what it did not see.
    INPUT_TOO_LARGE = "guard.input_too_large", 413;
    /// A bounded table the decision needs (behaviour counters per agent) is full of live entries:
    /// the call is refused rather than decided without its state.
    CAPACITY_EXCEEDED = "guard.capacity_exceeded", 503;
    /// No credential was presented (HTTP layer).
    CREDENTIALS_MISSING = "guard.credentials_missing", 401;
    /// A hook (filter, behaviour, approval channel, audit) failed; the guard fails closed.
    HOOK_FAILED = "guard.hook_failed", 503;
    /// A delegated token's call budget (or an ancestor's) is spent.
    BUDGET_EXHAUSTED = "guard.budget_exhausted", 403;
    /// A client certificate without exactly one valid SPIFFE ID, or outside its validity.
    PEER_CERTIFICATE_INVALID = "guard.peer_certificate_invalid", 401;
    /// Cedar policy or schema text does not parse or validate.
    POLICY_INVALID = "guard.policy_invalid", 0;
    /// A tool specification or guard configuration is invalid.
    TOOL_SPEC_INVALID = "guard.tool_spec_invalid", 0;
    /// An approver key is unusable (not Ed25519, or also an agent or issuer key).
    APPROVER_KEY_REFUSED = "guard.approver_key_refused", 0;
    /// A file the guard reads or writes (configuration, baselines) could not be used.
    IO = "guard.io", 0;
    /// A TLS server configuration requiring client certificates could not be built.
    TLS_CONFIG_INVALID = "guard.tls_config_invalid", 0;
    /// A handler expected a verified principal but the guard layer is not in front of it.
    LAYER_MISSING = "guard.layer_missing", 500;
    /// Recorded in the activity log: a tool's output was untrusted (the session is now tainted).
    OUTPUT_UNTRUSTED = "guard.output_untrusted", 0;
    /// Recorded in the activity log: an allowed tool failed when it ran.
    TOOL_FAILED = "guard.tool_failed", 0;
    /// A behaviour baselines file could not be read or parsed, or a profile serialized.
    BASELINE_UNREADABLE = "baseline.unreadable", 0;
    /// No baseline profile has this role.
    BASELINE_UNKNOWN_ROLE = "baseline.unknown_role", 0;
    /// The guard (or its configuration) has no behaviour baselines.
    BASELINE_NOT_CONFIGURED = "baseline.not_configured", 0;
    /// A revocation handed to a guard is not one it can hold (Python `Guard(revoked=...)`).
    REVOCATION_INVALID = "guard.revocation_invalid", 0;
}
