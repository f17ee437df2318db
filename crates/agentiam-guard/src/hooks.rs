//! Extension points the guard calls on every decision: the content filter, the behaviour
//! check and the decision sink (the activity log).
//! Each has a no-op default, so a guard without them still decides on scope and policy.

use std::fmt;
use std::sync::Arc;

use agentiam_identity::ToolDescriptor;
use serde_json::Value;

use crate::decision::{Decision, Denial};
use crate::request::{GuardRequest, ToolSpec};

/// Something the content filter found.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// What matched, for diagnostics (never the whole content).
    pub detail: String,
    /// Confidence in 0.0..=1.0.
    pub score: f64,
}

/// How the content filter judges a tool's output.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputVerdict {
    /// Nothing suspicious; the session's taint does not change.
    Clean,
    /// Untrusted content (from outside the trust boundary); the session becomes tainted.
    Untrusted,
    /// An injection attempt; the session becomes tainted and the finding is recorded.
    Injection(Finding),
}

/// Scans arguments before a call and tool output after it.
pub trait ContentFilter: Send + Sync + fmt::Debug {
    /// A finding in the arguments denies the call with `guard.injection_detected`.
    fn scan_arguments(&self, _tool: &ToolSpec, _arguments: &Value) -> Option<Finding> {
        None
    }
    /// Judges a tool's output.
    fn scan_output(&self, _tool: &ToolSpec, _output: &str) -> OutputVerdict {
        OutputVerdict::Clean
    }
    /// Judges what the model is shown for a tool, when the guard is built: a finding refuses
    /// the tool (`guard.tool_poisoning`).
    fn scan_tool(&self, _descriptor: &ToolDescriptor) -> Option<Finding> {
        None
    }
}

/// A filter that finds nothing: how to turn the guard's default injection filter off
/// (`GuardBuilder::content_filter(Arc::new(NoContentFilter))`).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoContentFilter;
impl ContentFilter for NoContentFilter {}

/// What the behaviour check makes of a call.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Assessment {
    /// 0 (usual) to 100 (never seen anything like it); policies read it as `context.anomaly_score`.
    pub anomaly_score: u8,
    /// A refusal (`guard.anomaly`, `guard.rate_limited`), decided before policy.
    pub refusal: Option<Denial>,
    /// Why the call is unusual, strongest first (recorded with the decision in the activity log).
    pub findings: Vec<String>,
    /// Revoke the credential and every credential delegated from it (the call is refused).
    pub revoke: bool,
    /// What the check counted for this call while assessing it (a limit's reservation); the
    /// guard releases it once the decision is final unless the call was allowed.
    pub reserved: Reserved,
}

/// Counts a behaviour check reserved for one call while assessing it, carried with that call's
/// [`Assessment`] (never in shared or thread-local state, so two checks, two guards or two
/// calls on one thread cannot release each other's). The guard releases it when the final
/// decision is anything but an allow (a refusal later in the pipeline, a call waiting for a
/// human, a decision the activity log could not take).
#[derive(Clone, Default)]
pub struct Reserved(Vec<Arc<dyn Fn() + Send + Sync>>);

impl Reserved {
    /// A reservation undone by `release`.
    pub fn new(release: impl Fn() + Send + Sync + 'static) -> Self {
        Self(vec![Arc::new(release)])
    }

    /// Adds another check's reservation to this one.
    pub fn join(&mut self, other: Reserved) {
        self.0.extend(other.0);
    }

    /// Whether nothing is reserved.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Undoes every reservation held, once.
    pub(crate) fn release(self) {
        for release in self.0 {
            release();
        }
    }
}

impl fmt::Debug for Reserved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reserved({})", self.0.len())
    }
}

impl PartialEq for Reserved {
    /// The same reservations, by identity.
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(&other.0)
                .all(|(a, b)| std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b)))
    }
}

/// Compares calls with the agent's baseline.
pub trait BehaviourCheck: Send + Sync + fmt::Debug {
    /// Assesses a call before policy runs. Counts taken for the call go in
    /// [`Assessment::reserved`], so the guard can release them if the call is not allowed.
    fn assess(&self, _request: &GuardRequest<'_>, _tool: &ToolSpec) -> Assessment {
        Assessment::default()
    }
    /// Sees every decision, to learn the baseline.
    fn observe(&self, _request: &GuardRequest<'_>, _tool: Option<&ToolSpec>, _decision: &Decision) {
    }
    /// Sees what an allowed call returned (bytes read).
    fn observe_outcome(&self, _outcome: &CallOutcome<'_>) {}
}

/// Several behaviour checks as one, in order: the first refusal stands (later checks are not
/// asked), the score is the highest, and findings and revocation requests add up.
/// Every check observes every decision.
#[derive(Debug, Clone, Default)]
pub struct BehaviourChecks(pub Vec<Arc<dyn BehaviourCheck>>);

impl BehaviourCheck for BehaviourChecks {
    fn assess(&self, request: &GuardRequest<'_>, tool: &ToolSpec) -> Assessment {
        let mut out = Assessment::default();
        for check in &self.0 {
            let a = check.assess(request, tool);
            out.anomaly_score = out.anomaly_score.max(a.anomaly_score);
            out.findings.extend(a.findings);
            out.revoke |= a.revoke;
            out.reserved.join(a.reserved);
            if a.refusal.is_some() {
                out.refusal = a.refusal;
                break;
            }
        }
        out
    }
    fn observe(&self, request: &GuardRequest<'_>, tool: Option<&ToolSpec>, decision: &Decision) {
        for check in &self.0 {
            check.observe(request, tool, decision);
        }
    }
    fn observe_outcome(&self, outcome: &CallOutcome<'_>) {
        for check in &self.0 {
            check.observe_outcome(outcome);
        }
    }
}

/// The default behaviour check: everything is usual.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoBehaviourCheck;
impl BehaviourCheck for NoBehaviourCheck {}

/// Receives every decision (the audit log, a metrics counter). Must not block: enqueue and return.
pub trait DecisionSink: Send + Sync + fmt::Debug {
    /// Records one decision. If it cannot be recorded, the guard turns an allow into a
    /// `guard.hook_failed` denial: an action that cannot be audited does not happen.
    fn record(
        &self,
        request: &GuardRequest<'_>,
        tool: Option<&ToolSpec>,
        decision: &Decision,
    ) -> Result<(), String>;

    /// Records what an allowed call returned (the interceptor's after-hook).
    fn record_outcome(&self, _outcome: &CallOutcome<'_>) -> Result<(), String> {
        Ok(())
    }
}

/// What a tool call returned, as the after-hook sees it.
#[derive(Debug, Clone)]
pub struct CallOutcome<'a> {
    /// The principal that made the call.
    pub principal: &'a crate::Principal,
    /// The tool.
    pub tool: &'a str,
    /// The framework's call id.
    pub call_id: Option<&'a str>,
    /// The session id.
    pub session_id: Option<&'a str>,
    /// The output text, or the error text if the tool failed.
    pub output: &'a str,
    /// The tool raised an error.
    pub failed: bool,
    /// The content filter's verdict on the output.
    pub verdict: &'a OutputVerdict,
}
