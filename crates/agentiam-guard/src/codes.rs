//! Stable reason codes for guard decisions.
//!
//! These strings are a contract shared by Rust, Python, the CLI, HTTP responses and audit
//! records: tests assert them, and they are never renamed.
//! Token and delegation failures keep their own `token.*` / `delegation.*` codes.

/// No scope of the token covers the tool (resource and action).
pub const SCOPE_MISSING: &str = "guard.scope_missing";
/// A scope covers the tool but an argument breaks its constraint.
pub const CONSTRAINT_VIOLATED: &str = "guard.constraint_violated";
/// Deployment policy (Cedar) forbids the call, or no policy permits it.
pub const POLICY_DENIED: &str = "guard.policy_denied";
/// Policy evaluation failed; the guard fails closed.
pub const POLICY_ERROR: &str = "guard.policy_error";
/// A human must approve this call first.
pub const CONFIRMATION_REQUIRED: &str = "guard.confirmation_required";
/// The approval presented is forged, expired, replayed, for another call, or by a key that may not approve.
pub const CONFIRMATION_INVALID: &str = "guard.confirmation_invalid";
/// A human refused the call through an approval channel.
pub const CONFIRMATION_DENIED: &str = "guard.confirmation_denied";
/// The content filter found an injection in the arguments.
pub const INJECTION_DETECTED: &str = "guard.injection_detected";
/// The tool's description or schema is not the one pinned in the token (or the tool was not in its manifest).
pub const TOOL_CHANGED: &str = "guard.tool_changed";
/// A tool's description carries instructions for the model; the guard refuses to register it.
pub const TOOL_POISONING: &str = "guard.tool_poisoning";
/// The session read untrusted content and the call is too risky to take without a human.
pub const TAINTED_CONTEXT: &str = "guard.tainted_context";
/// The behaviour check found the call anomalous.
pub const ANOMALY: &str = "guard.anomaly";
/// The behaviour check found the call over a rate.
pub const RATE_LIMITED: &str = "guard.rate_limited";
/// The tool (or HTTP route) is not registered with the guard.
pub const UNKNOWN_ACTION: &str = "guard.unknown_action";
/// The arguments are not a JSON object, hold a number policy cannot represent exactly, or (HTTP
/// layer) the request body is over its cap or not JSON.
pub const ARGUMENTS_INVALID: &str = "guard.arguments_invalid";
/// The arguments are too large or too many to examine completely (nested deeper than
/// `MAX_ARGUMENT_DEPTH`, more than `MAX_ARGUMENT_VALUES` values or `MAX_ARGUMENT_BYTES` bytes of
/// strings): refused before any check reads them, so no check ever passes what it did not see.
pub const INPUT_TOO_LARGE: &str = "guard.input_too_large";
/// A bounded table the decision needs (behaviour counters per agent) is full of live entries:
/// the call is refused rather than decided without its state.
pub const CAPACITY_EXCEEDED: &str = "guard.capacity_exceeded";
/// The principal's token has expired since it was verified.
pub const TOKEN_EXPIRED: &str = "token.expired";
/// No credential was presented (HTTP layer).
pub const CREDENTIALS_MISSING: &str = "guard.credentials_missing";
/// A hook (filter, behaviour, approval channel, audit) failed; the guard fails closed.
pub const HOOK_FAILED: &str = "guard.hook_failed";
/// A delegated token's call budget (or an ancestor's) is spent.
pub const BUDGET_EXHAUSTED: &str = "guard.budget_exhausted";
/// The state the service's workers share (nonces, budgets, task taint) could not be read or
/// written; the guard fails closed.
pub const STATE_UNAVAILABLE: &str = "guard.state_unavailable";
