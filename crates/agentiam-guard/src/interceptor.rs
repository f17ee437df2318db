//! The tool-call interceptor: what framework integrations (the Python decorators, an MCP server)
//! call around every tool.
//!
//! `before` decides (and, with an approval channel, asks a human when policy requires one);
//! the tool runs only on [`Decision::Allow`]; `after` records the outcome and hands the output
//! to the content filter: a tool that returns untrusted content taints the session, and in a
//! tainted session risky tools need a human (the default policy's
//! `tainted-session-high-risk-needs-human` gate).

use std::borrow::Cow;
use std::sync::{Arc, RwLock};

use serde_json::Value;

use crate::approval::{Approval, ApprovalChannel, ApprovalResponse, AsyncApprovalChannel};
use crate::codes;
use crate::decision::{Decision, Denial};
use crate::engine::Guard;
use crate::hooks::{CallOutcome, OutputVerdict};
use crate::request::{GuardRequest, Principal, SessionContext};

/// One agent run: the principal it acts as and what it has read.
#[derive(Debug)]
pub struct Session {
    principal: Arc<Principal>,
    /// The session id, also in `context`: read without the lock or a copy of the context.
    id: String,
    context: RwLock<SessionContext>,
}

impl Session {
    /// A clean session.
    pub fn new(id: impl Into<String>, principal: Arc<Principal>) -> Self {
        let id = id.into();
        Self {
            principal,
            context: RwLock::new(SessionContext::new(id.clone())),
            id,
        }
    }

    /// The session (conversation) id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The principal.
    pub fn principal(&self) -> &Arc<Principal> {
        &self.principal
    }

    /// A snapshot of the session state.
    pub fn context(&self) -> SessionContext {
        // A poisoned lock means a writer panicked mid-update: treat the session as tainted.
        self.context.read().map_or_else(
            |_| SessionContext::default().taint("(session state lost)"),
            |c| c.clone(),
        )
    }

    /// Whether the session has read untrusted content.
    pub fn is_tainted(&self) -> bool {
        self.context.read().map_or(true, |c| c.tainted)
    }

    /// Marks the session as having read untrusted content. Taint never clears within a session.
    pub fn taint(&self, source: impl Into<String>) {
        self.taint_with(source.into(), None);
    }

    /// Marks the session as having read `text` from `source` (taint), and remembers the
    /// text's fingerprints so later arguments copied from it are flagged.
    pub fn read_untrusted(&self, source: impl Into<String>, text: &str) {
        self.taint_with(source.into(), Some(text));
    }

    fn taint_with(&self, source: String, text: Option<&str>) {
        match self.context.write() {
            Ok(mut c) => {
                c.tainted = true;
                if c.taint_sources.len() < 64 && !c.taint_sources.contains(&source) {
                    c.taint_sources.push(source);
                }
                if let Some(text) = text {
                    Arc::make_mut(&mut c.untrusted_text).remember(text);
                }
            }
            Err(poisoned) => {
                let mut c = poisoned.into_inner();
                c.tainted = true;
            }
        }
    }
}

/// A tool call as a framework presents it.
#[derive(Debug, Clone, Copy)]
pub struct ToolCall<'a> {
    /// The registered tool name.
    pub tool: &'a str,
    /// Its arguments (a JSON object), borrowed or shared with the audit sink.
    pub arguments: crate::arguments::Arguments<'a>,
    /// The framework's call id.
    pub call_id: Option<&'a str>,
    /// An approval obtained out of band (e.g. from the broker's console), never from the arguments.
    pub approval: Option<&'a Approval>,
}

impl<'a> ToolCall<'a> {
    /// A call without approval.
    pub fn new(tool: &'a str, arguments: &'a Value) -> Self {
        Self {
            tool,
            arguments: crate::arguments::Arguments::borrowed(arguments),
            call_id: None,
            approval: None,
        }
    }

    /// A call whose arguments the audit sink may keep without copying.
    pub fn shared(tool: &'a str, arguments: &'a Arc<Value>) -> Self {
        Self {
            arguments: crate::arguments::Arguments::shared(arguments),
            ..Self::new(tool, arguments)
        }
    }
}

/// Wraps a [`Guard`] for tool calls.
#[derive(Debug, Clone)]
pub struct ToolInterceptor {
    guard: Guard,
    approvals: Option<Arc<dyn ApprovalChannel>>,
    async_approvals: Option<Arc<dyn AsyncApprovalChannel>>,
}

fn denied_by_human(response: ApprovalResponse) -> Decision {
    match response {
        ApprovalResponse::Denied { reason } => Decision::Deny(Denial::new(
            codes::CONFIRMATION_DENIED,
            format!("a human refused the call: {reason}"),
        )),
        ApprovalResponse::TimedOut | ApprovalResponse::Approved(_) => Decision::Deny(Denial::new(
            codes::CONFIRMATION_DENIED,
            "no human approved the call in time",
        )),
    }
}

impl ToolInterceptor {
    /// An interceptor without approval channel: calls that need a human return
    /// [`Decision::NeedsConfirmation`] to the caller.
    pub fn new(guard: Guard) -> Self {
        Self {
            guard,
            approvals: None,
            async_approvals: None,
        }
    }

    /// Asks this channel (blocking) when a call needs a human.
    pub fn with_approvals(mut self, channel: Arc<dyn ApprovalChannel>) -> Self {
        self.approvals = Some(channel);
        self
    }

    /// Asks this channel (async, for [`ToolInterceptor::before_async`]) when a call needs a human.
    pub fn with_async_approvals(mut self, channel: Arc<dyn AsyncApprovalChannel>) -> Self {
        self.async_approvals = Some(channel);
        self
    }

    /// The guard.
    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// The guard's view of `call` in `session`.
    fn request<'a>(
        session: &'a Session,
        context: &'a SessionContext,
        call: &ToolCall<'a>,
    ) -> GuardRequest<'a> {
        let mut request =
            GuardRequest::with_arguments(&session.principal, call.tool, call.arguments)
                .with_session(context);
        request.call_id = call.call_id;
        request
    }

    fn decide(
        &self,
        session: &Session,
        context: &SessionContext,
        call: &ToolCall<'_>,
        approval: Option<&Approval>,
    ) -> Decision {
        let mut request = Self::request(session, context, call);
        request.approval = approval;
        self.guard.decide(&request)
    }

    /// Records that a human refused `call` (or did not answer in time) and returns the
    /// `guard.confirmation_denied` denial. For approval flows the caller runs itself (a
    /// framework's own approval step); the approval channels here record theirs already.
    pub fn refused(&self, session: &Session, call: &ToolCall<'_>, reason: &str) -> Decision {
        let refusal = denied_by_human(ApprovalResponse::Denied {
            reason: reason.to_owned(),
        });
        self.record_refusal(session, call, &refusal);
        refusal
    }

    /// Records a denial the caller decided before asking the guard (for example an approval
    /// that does not parse), so the activity log holds every refused call. Non-denials are ignored.
    pub fn record_refusal(&self, session: &Session, call: &ToolCall<'_>, refusal: &Decision) {
        let context = session.context();
        self.guard
            .record_refusal(&Self::request(session, &context, call), refusal);
    }

    /// Decides a call before the tool runs; asks the blocking approval channel when policy needs a human.
    pub fn before(&self, session: &Session, call: &ToolCall<'_>) -> Decision {
        let context = session.context();
        let decision = self.decide(session, &context, call, call.approval);
        match (&decision, &self.approvals) {
            (Decision::NeedsConfirmation(request), Some(channel)) => {
                match channel.request_approval(request) {
                    ApprovalResponse::Approved(approval) => {
                        self.decide(session, &context, call, Some(&approval))
                    }
                    other => {
                        let refusal = denied_by_human(other);
                        self.record_refusal(session, call, &refusal);
                        refusal
                    }
                }
            }
            _ => decision,
        }
    }

    /// [`ToolInterceptor::before`] with the async approval channel.
    pub async fn before_async(&self, session: &Session, call: &ToolCall<'_>) -> Decision {
        let context = session.context();
        let decision = self.decide(session, &context, call, call.approval);
        match (decision, &self.async_approvals) {
            (Decision::NeedsConfirmation(request), Some(channel)) => {
                match channel.request_approval(*request).await {
                    ApprovalResponse::Approved(approval) => {
                        self.decide(session, &context, call, Some(&approval))
                    }
                    other => {
                        let refusal = denied_by_human(other);
                        self.record_refusal(session, call, &refusal);
                        refusal
                    }
                }
            }
            (decision, _) => decision,
        }
    }

    /// Runs `tool` only if the guard allows the call, then the after-hook on its output.
    /// A refusal comes back as `Err(decision)` (a deny or a pending confirmation) and the tool never runs.
    pub fn guarded<F>(
        &self,
        session: &Session,
        call: &ToolCall<'_>,
        tool: F,
    ) -> Result<Result<String, String>, Decision>
    where
        F: FnOnce() -> Result<String, String>,
    {
        let decision = self.before(session, call);
        if !decision.is_allowed() {
            return Err(decision);
        }
        let result = tool();
        match &result {
            Ok(output) => self.after(session, call, output, false),
            Err(error) => self.after(session, call, error, true),
        };
        Ok(result)
    }

    /// Marks the session, and the task it works on, as having read untrusted content from
    /// `source`. Every session, guard and worker serving the task sees the taint (through the
    /// guard's shared state) for the token's life.
    pub fn taint(&self, session: &Session, source: &str) -> Result<(), crate::GuardError> {
        session.taint(source);
        self.guard
            .record_task_taint(session.principal(), source, None)
    }

    /// Like [`ToolInterceptor::taint`], and remembers the text's fingerprints for the task, so
    /// arguments copied from it are flagged in every session of the task.
    pub fn read_untrusted(
        &self,
        session: &Session,
        source: &str,
        text: &str,
    ) -> Result<(), crate::GuardError> {
        session.read_untrusted(source, text);
        self.guard
            .record_task_taint(session.principal(), source, Some(text))
    }

    /// Whether the session, or any other session of its task, has read untrusted content.
    /// A shared state that cannot answer counts as tainted.
    pub fn is_tainted(&self, session: &Session) -> bool {
        session.is_tainted() || self.guard.task_is_tainted(session.principal())
    }

    /// Records what an allowed call returned and judges its output; returns the verdict.
    /// Output from a tool registered with untrusted output, or judged untrusted by the filter, taints the session.
    pub fn after(
        &self,
        session: &Session,
        call: &ToolCall<'_>,
        output: &str,
        failed: bool,
    ) -> OutputVerdict {
        // What taints, and the text whose fingerprints flag copied arguments: the whole
        // output, or only the third-party fields of an otherwise trusted one (the trusted
        // rest, ids and the like, is what later arguments rightly repeat).
        let (verdict, untrusted) = match self.guard.tool(call.tool) {
            Some(tool) => {
                let verdict = self.guard.content_filter().scan_output(tool, output);
                match (verdict, tool.returns_untrusted_output()) {
                    (OutputVerdict::Clean, false) => {
                        match crate::untrusted_text::third_party_text(tool, output) {
                            Some(fields) => (OutputVerdict::Untrusted, Some(Cow::Owned(fields))),
                            None => (OutputVerdict::Clean, None),
                        }
                    }
                    (OutputVerdict::Clean, true) => {
                        (OutputVerdict::Untrusted, Some(Cow::Borrowed(output)))
                    }
                    (verdict, _) => (verdict, Some(Cow::Borrowed(output))),
                }
            }
            // Output of a tool the guard does not know is not trusted.
            None => (OutputVerdict::Untrusted, Some(Cow::Borrowed(output))),
        };
        if let Some(text) = untrusted {
            // The session is tainted whatever the shared state answers; a shared state that
            // cannot record it refuses this task's next decision anyway (state_unavailable).
            let source = taint_source(call.tool, self.guard.clock().now(), &verdict);
            let _ = self.read_untrusted(session, &source, &text);
        }
        let outcome = CallOutcome {
            principal: &session.principal,
            tool: call.tool,
            call_id: call.call_id,
            session_id: Some(session.id()),
            output,
            failed,
            verdict: &verdict,
        };
        self.guard.record_outcome(&outcome);
        verdict
    }
}

/// How a taint source reads in an approval request (signed with the approval) and on the
/// broker's console: the tool, when (UTC, to the second), and for output the filter flagged,
/// its finding with the flagged excerpt (`read_mail at 2026-12-04T10:00:00Z: injection score
/// 0.99: pi.ignore_instructions in body: "ignore previous instructions"`).
fn taint_source(tool: &str, now: i64, verdict: &OutputVerdict) -> String {
    let when = time::OffsetDateTime::from_unix_timestamp(now)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("unix time {now}"));
    match verdict {
        OutputVerdict::Injection(finding) => format!("{tool} at {when}: {}", finding.detail),
        OutputVerdict::Clean | OutputVerdict::Untrusted => format!("{tool} at {when}"),
    }
}
