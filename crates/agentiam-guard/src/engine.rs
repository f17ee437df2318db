//! The decision engine: [`Guard::decide`].

use std::collections::HashMap;
use std::sync::Arc;

use agentiam_identity::Jwks;
use agentiam_token::{
    Clock, Entropy, Revocation, RevocationSet, ScopeRequest, SystemClock, SystemEntropy,
};
use serde_json::Value;

use crate::approval::{
    APPROVAL_CONTEXT, Approval, ApprovalRequest, ApproverKeys, DEFAULT_MAX_APPROVAL_TTL_SECS,
    HashedCall, NonceStore, approval_is_for, check_approval, check_approval_alone, digest_of,
    new_nonce, shown_taint,
};
use crate::decision::{Allowance, Anomaly, Decision, Denial};
use crate::hooks::{BehaviourCheck, BehaviourChecks, ContentFilter, DecisionSink};
use crate::intent::{IntentCheck, OutboundCheck};
use crate::policy::{PolicyContext, PolicyEngine, PolicyOutcome};
use crate::request::{GuardRequest, Principal, SessionContext, ToolSpec};
use crate::{GuardError, codes};
use agentiam_state::{Counter, InProcessState, SharedState, TaskTaint};

/// How long a confirmation request stays answerable by default (seconds).
pub const DEFAULT_CONFIRMATION_TTL_SECS: i64 = 300;

/// Decides every tool call: token scope with argument constraints, content filter, behaviour,
/// Cedar policy, and confirmation gates. Build it once with [`GuardBuilder`] and share it.
///
/// ```
/// use agentiam_guard::{Guard, GuardRequest, PolicyEngine, Principal, Risk, ToolSpec};
/// # use agentiam_identity::*;
/// # use agentiam_token::*;
/// # let agent = AgentIdentity::new(parse_spiffe_id("spiffe://example.org/agent/invoices").unwrap(), ModelRef::new("p", "m", "1"), &AgentConfiguration::new("You pay invoices.", vec![]), RuntimeDescriptor::new("process")).unwrap();
/// # let issuer = Issuer::new("https://broker.example", KeySet::new(SigningKey::generate(Algorithm::EdDSA).unwrap()));
/// # let scopes = ScopeSet::parse("payments:transfer{amount<=100}").unwrap();
/// # issuer.register(agent.spiffe_id(), AgentRegistration::new(scopes.clone()));
/// # let issued = issuer.issue(&TokenRequest::new(&agent, "https://api.example", scopes, "task-1", "pay invoices")).unwrap();
/// # let verifier = Verifier::new(issuer.jwks(), "https://broker.example", "https://api.example");
/// # use serde_json::json;
/// let token = verifier.verify(&issued.token).unwrap();
/// let guard = Guard::builder(PolicyEngine::default_policy().unwrap())
///     .tool(ToolSpec::new("transfer", Risk::High).with_scope("payments", "transfer"))
///     .build()
///     .unwrap();
/// let principal = Principal::from_token(&token);
/// let small = json!({"amount": 40, "to": "ACME"});
/// assert!(guard.decide(&GuardRequest::new(&principal, "transfer", &small)).is_allowed());
/// let large = json!({"amount": 4000, "to": "ACME"});
/// let refused = guard.decide(&GuardRequest::new(&principal, "transfer", &large));
/// assert_eq!(refused.code(), Some("guard.constraint_violated"));
/// ```
#[derive(Debug, Clone)]
pub struct Guard {
    tools: Arc<HashMap<String, ToolSpec>>,
    policy: Arc<PolicyEngine>,
    approvers: Arc<ApproverKeys>,
    nonces: Arc<dyn NonceStore>,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
    filter: Arc<dyn ContentFilter>,
    behaviour: Arc<dyn BehaviourCheck>,
    revocation: Option<Arc<dyn RevocationSet>>,
    baselines: Option<crate::Baselines>,
    sinks: Vec<Arc<dyn DecisionSink>>,
    confirmation_ttl: i64,
    max_approval_ttl: i64,
    service: Option<String>,
    state: Arc<dyn SharedState>,
    outbound_hosts: Arc<agentiam_filter::ExfiltrationCheck>,
}

/// Builds a [`Guard`].
#[derive(Debug)]
pub struct GuardBuilder {
    tools: HashMap<String, ToolSpec>,
    policy: PolicyEngine,
    approvers: ApproverKeys,
    agent_keys: Vec<String>,
    nonces: Option<Arc<dyn NonceStore>>,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
    filter: Arc<dyn ContentFilter>,
    behaviour: Vec<Arc<dyn BehaviourCheck>>,
    revocation: Option<Arc<dyn RevocationSet>>,
    baselines: Option<crate::Baselines>,
    sinks: Vec<Arc<dyn DecisionSink>>,
    confirmation_ttl: i64,
    max_approval_ttl: i64,
    service: Option<String>,
    state: Option<Arc<dyn SharedState>>,
    outbound_hosts: agentiam_filter::ExfiltrationCheck,
    error: Option<GuardError>,
}

impl Guard {
    /// Starts a guard with this policy, no tools and no approvers, and the injection filter
    /// ([`agentiam_filter::InjectionFilter::new`]) as its content filter: secure by default, so
    /// [`GuardBuilder::content_filter`] with [`crate::hooks::NoContentFilter`] is how to turn it off.
    pub fn builder(policy: PolicyEngine) -> GuardBuilder {
        GuardBuilder {
            tools: HashMap::new(),
            policy,
            approvers: ApproverKeys::new(),
            agent_keys: Vec::new(),
            nonces: None,
            clock: Arc::new(SystemClock),
            entropy: Arc::new(SystemEntropy),
            filter: Arc::new(agentiam_filter::InjectionFilter::new()),
            behaviour: Vec::new(),
            revocation: None,
            baselines: None,
            sinks: Vec::new(),
            confirmation_ttl: DEFAULT_CONFIRMATION_TTL_SECS,
            max_approval_ttl: DEFAULT_MAX_APPROVAL_TTL_SECS,
            service: None,
            state: None,
            outbound_hosts: agentiam_filter::ExfiltrationCheck::default(),
            error: None,
        }
    }

    /// The registered tool of that name.
    pub fn tool(&self, name: &str) -> Option<&ToolSpec> {
        self.tools.get(name)
    }

    /// The policy engine.
    pub fn policy(&self) -> &PolicyEngine {
        &self.policy
    }

    /// The registered approvers.
    pub fn approvers(&self) -> &ApproverKeys {
        &self.approvers
    }

    /// The clock decisions use.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The behaviour baselines given with [`GuardBuilder::baselines`].
    pub fn baselines(&self) -> Option<&crate::Baselines> {
        self.baselines.as_ref()
    }

    /// The content filter (the interceptor hands it tool output).
    pub fn content_filter(&self) -> &Arc<dyn ContentFilter> {
        &self.filter
    }

    /// Checks an approval handed over before the call it approves is made (a session keeps it
    /// until then): a registered approver that is not the calling agent, unexpired, within the
    /// guard's lifetime cap, a well-formed nonce, and a signature that verifies. The call is
    /// checked when it presents the approval ([`Guard::decide`]). Refusals are
    /// `guard.confirmation_invalid`.
    pub fn screen_approval(
        &self,
        principal: &Principal,
        approval: &Approval,
    ) -> Result<(), Denial> {
        check_approval_alone(
            approval,
            &self.approvers,
            principal,
            self.clock.now(),
            self.max_approval_ttl,
        )
        .map_err(|why| Denial::new(codes::CONFIRMATION_INVALID, why))
    }

    /// Whether `approval` is for exactly this call on this service: its call digest covers the
    /// tool, the arguments, the principal chain and task, the service, and its own nonce and
    /// expiry. How a session presents a kept approval only to the call it approves; the
    /// signature and what the approver was shown are checked by [`Guard::decide`].
    pub fn approval_fits(
        &self,
        principal: &Principal,
        tool: &str,
        arguments: &Value,
        approval: &Approval,
    ) -> bool {
        let arguments = arguments_or_empty(arguments);
        // Only the call part is compared; the shown part is checked at decision time.
        approval_is_for(
            approval,
            &HashedCall {
                anomaly: None,
                args: &arguments,
                aud: self.service.as_deref(),
                chain: principal.chain(),
                code: "",
                exp: approval.expires_at,
                nonce: &approval.nonce,
                policies: &[],
                risk: crate::Risk::Low,
                taint: &[],
                task: principal.task(),
                tool,
                v: APPROVAL_CONTEXT,
                intent: None,
            },
        )
        .unwrap_or(false)
    }

    /// Decides one call. Never panics and never errors: anything that goes wrong is a denial.
    pub fn decide(&self, request: &GuardRequest<'_>) -> Decision {
        let tool = self.tools.get(request.tool);
        // What behaviour checks counted for this call: released below unless it is allowed.
        let mut reserved = crate::hooks::Reserved::default();
        // The credential first, as documented: an expired or revoked credential must not learn
        // which tool names are registered (unknown_action for some, token.* for others).
        let mut decision = match (self.credential_refusal(request.principal), tool) {
            (Some(refusal), _) => refusal,
            (None, Some(tool)) => self.decide_tool(request, tool, &mut reserved),
            (None, None) => Decision::deny(
                codes::UNKNOWN_ACTION,
                format!(
                    "no tool {:?} is registered with the guard",
                    clip(request.tool)
                ),
            ),
        };
        self.behaviour.observe(request, tool, &decision);
        for sink in &self.sinks {
            if let Err(e) = sink.record(request, tool, &decision)
                && !matches!(decision, Decision::Deny(_))
            {
                decision = Decision::deny(
                    codes::HOOK_FAILED,
                    format!("the decision could not be recorded, so the call may not proceed: {e}"),
                );
            }
        }
        if !matches!(decision, Decision::Allow(_)) {
            reserved.release();
        }
        decision
    }

    /// Records a denial decided outside [`Guard::decide`] (a human refused, or never answered,
    /// a call that needed confirmation) with every sink, so the activity log shows who said no.
    /// Non-denials are ignored: only `decide` allows.
    pub fn record_refusal(&self, request: &GuardRequest<'_>, refusal: &Decision) {
        if !matches!(refusal, Decision::Deny(_)) {
            return;
        }
        let tool = self.tools.get(request.tool);
        for sink in &self.sinks {
            // A refusal stands whether or not it could be recorded.
            let _ = sink.record(request, tool, refusal);
        }
    }

    /// Hands a call's outcome to every sink (the interceptor's after-hook).
    pub fn record_outcome(&self, outcome: &crate::hooks::CallOutcome<'_>) {
        self.behaviour.observe_outcome(outcome);
        for sink in &self.sinks {
            // The tool already ran; a sink that cannot record it has reported that itself.
            let _ = sink.record_outcome(outcome);
        }
    }

    /// The credential's own refusal (expired, revoked), before anything about the call.
    fn credential_refusal(&self, principal: &crate::Principal) -> Option<Decision> {
        if principal.expires_at() < self.clock.now() {
            return Some(Decision::deny(
                codes::TOKEN_EXPIRED,
                "the principal's credential has expired",
            ));
        }
        self.revoked(principal)
    }

    fn decide_tool(
        &self,
        request: &GuardRequest<'_>,
        tool: &ToolSpec,
        reserved: &mut crate::hooks::Reserved,
    ) -> Decision {
        let now = self.clock.now();
        let principal = request.principal;
        if let Some(refusal) = pin_refusal(principal, tool) {
            return refusal;
        }
        if !matches!(request.arguments(), Value::Object(_) | Value::Null) {
            return Decision::deny(
                codes::ARGUMENTS_INVALID,
                "tool arguments must be a JSON object",
            );
        }
        // Before anything reads the arguments: what is too large to examine completely is
        // refused here, so no later check needs a cap of its own or stops early.
        if let Some(why) = crate::arguments::too_large(request.arguments()) {
            return Decision::deny(codes::INPUT_TOO_LARGE, why);
        }
        let scope_request =
            ScopeRequest::new(tool.resource(), tool.action()).with_args(request.arguments());
        if let Err(denial) = principal.scopes().check(&scope_request) {
            return Decision::deny(denial.code(), denial.to_string());
        }
        if let Some(finding) = self.filter.scan_arguments(tool, request.arguments()) {
            return Decision::deny(codes::INJECTION_DETECTED, finding.detail);
        }
        // The task's taint, from every session, guard and worker that served it.
        let (shared_session, intent_trusted) = match self.task_session(request, now) {
            Ok(s) => s,
            Err(refusal) => return refusal,
        };
        let session = shared_session.as_ref().unwrap_or(request.session);
        let intent = IntentCheck::of(principal, tool, request.arguments(), intent_trusted);
        let outbound = OutboundCheck::of(tool, request.arguments(), &self.outbound_hosts);
        let mut assessment = self.behaviour.assess(request, tool);
        *reserved = std::mem::take(&mut assessment.reserved);
        let anomaly =
            (assessment.anomaly_score > 0 || !assessment.findings.is_empty()).then(|| Anomaly {
                findings: assessment.findings.clone(),
                score: assessment.anomaly_score,
            });
        if assessment.revoke {
            let refusal = self.revoke_for_anomaly(principal, now);
            return Decision::Deny(refusal).with_anomaly(anomaly);
        }
        if let Some(refusal) = assessment.refusal {
            return Decision::Deny(refusal).with_anomaly(anomaly);
        }
        let decision = self
            .decide_policy(
                request,
                session,
                &intent,
                &outbound,
                tool,
                now,
                anomaly.as_ref(),
            )
            .with_anomaly(anomaly)
            .with_intent(&intent);
        self.spend_budgets(principal, decision, now)
    }

    /// `token.revoked` when the revocation set holds the credential, an agent in its chain,
    /// its task or an ancestor token; fails closed when the set cannot be read.
    fn revoked(&self, principal: &crate::Principal) -> Option<Decision> {
        let set = self.revocation.as_ref()?;
        if set.is_empty() {
            return None;
        }
        let tokens = principal
            .token_id()
            .into_iter()
            .chain(principal.ancestor_tokens().iter().map(String::as_str))
            .map(|jti| Revocation::Token(jti.to_owned()));
        let agents = principal
            .chain()
            .iter()
            .chain(std::iter::once(&principal.presenter().to_owned()))
            .map(|id| Revocation::Agent(id.clone()))
            .collect::<Vec<_>>();
        let task = principal.task().map(|t| Revocation::Task(t.to_owned()));
        for entry in tokens.chain(agents).chain(task) {
            match set.contains(&entry) {
                Ok(false) => {}
                Ok(true) => {
                    return Some(Decision::deny(
                        agentiam_token::codes::REVOKED,
                        "the credential (or one it was delegated from) has been revoked",
                    ));
                }
                Err(e) => {
                    return Some(Decision::deny(
                        agentiam_token::codes::REVOCATION_UNAVAILABLE,
                        format!("revocation status unavailable: {e}"),
                    ));
                }
            }
        }
        None
    }

    /// Revokes the credential (by `jti`, which also revokes everything delegated from it; by
    /// agent when the credential has no id) and says so in the refusal.
    fn revoke_for_anomaly(&self, principal: &crate::Principal, now: i64) -> Denial {
        let what = match principal.token_id() {
            Some(jti) => Revocation::Token(jti.to_owned()),
            None => Revocation::Agent(principal.presenter().to_owned()),
        };
        let until = principal.expires_at().max(now);
        let outcome = match &self.revocation {
            None => "no revocation set is configured, so only this call is refused".to_owned(),
            Some(set) => match set.revoke(what, until) {
                Ok(()) => {
                    "the credential and every credential delegated from it are revoked".to_owned()
                }
                Err(e) => format!("revoking the credential failed ({e}); this call is refused"),
            },
        };
        Denial::new(
            codes::ANOMALY,
            format!("behaviour far from the role's baseline: {outcome}"),
        )
    }

    /// The session as the task's shared state sees it: `None` when the request's own session
    /// already holds everything the task read, else a copy with the task's taint merged in;
    /// and, for a credential with a declared intent, whether the intent is trusted (the tokens
    /// it was declared from read nothing untrusted; their taint joins the session's too).
    fn task_session(
        &self,
        request: &GuardRequest<'_>,
        now: i64,
    ) -> Result<(Option<SessionContext>, bool), Decision> {
        let read = |key: &str| {
            self.state
                .task_taint(key, now)
                .map_err(|e| Decision::deny(codes::STATE_UNAVAILABLE, e.to_string()))
        };
        let mut shared = read(request.principal.task_key())?;
        let mut intent_trusted = false;
        if let Some(ancestry) = request.principal.intent_ancestry_key() {
            let before = read(ancestry)?;
            intent_trusted = !before.is_tainted();
            shared.merge(&before);
        }
        Ok((
            Self::merged_session(request.session, &shared),
            intent_trusted,
        ))
    }

    fn merged_session(own: &SessionContext, shared: &TaskTaint) -> Option<SessionContext> {
        if !shared.is_tainted() {
            return None;
        }
        let known = own.tainted
            && (!shared.overflowed || own.untrusted_text.overflowed())
            && shared.sources.iter().all(|s| own.taint_sources.contains(s))
            && own.untrusted_text.holds_all(shared.fingerprints.iter());
        if known {
            return None;
        }
        let mut merged = own.clone();
        merged.tainted = true;
        for s in &shared.sources {
            if merged.taint_sources.len() < 64 && !merged.taint_sources.contains(s) {
                merged.taint_sources.push(s.clone());
            }
        }
        if shared.tainted && merged.taint_sources.is_empty() {
            merged.taint_sources.push("(task state)".into());
        }
        Arc::make_mut(&mut merged.untrusted_text)
            .add_fingerprints(shared.fingerprints.iter().copied());
        if shared.overflowed {
            Arc::make_mut(&mut merged.untrusted_text).mark_overflowed();
        }
        Some(merged)
    }

    /// Records what a task read from outside its trust boundary in the shared state, so every
    /// session, guard and worker of the task sees it for the token's life.
    pub fn record_task_taint(
        &self,
        principal: &crate::Principal,
        source: &str,
        text: Option<&str>,
    ) -> Result<(), GuardError> {
        let mut add = TaskTaint::default();
        add.add_source(source);
        if let Some(text) = text {
            let mut read = crate::UntrustedText::default();
            read.remember(text);
            add.add_fingerprints(read.fingerprints());
            add.overflowed |= read.overflowed();
        }
        let now = self.clock.now();
        self.state
            .extend_task_taint(principal.task_key(), &add, principal.task_expires_at(), now)
            .map_err(|e| GuardError::State(e.to_string()))
    }

    /// Revokes a token (by `jti`, with everything delegated from it), an agent or a task at this
    /// guard until `until`; from the next decision on, calls under it are refused
    /// (`token.revoked`). Needs a revocation set ([`GuardBuilder::revocation`]; a guard built
    /// from a configuration has one, shared with its verifier).
    pub fn revoke(&self, what: Revocation, until: i64) -> Result<(), GuardError> {
        let set = self.revocation.as_ref().ok_or_else(|| {
            GuardError::State("this guard has no revocation set (GuardBuilder::revocation)".into())
        })?;
        set.revoke(what, until)
            .map_err(|e| GuardError::State(format!("revocation failed: {e}")))
    }

    /// Whether the principal's task is tainted in the shared state (`true` when it cannot say);
    /// for a credential with a declared intent, the task it was declared from counts too.
    pub fn task_is_tainted(&self, principal: &crate::Principal) -> bool {
        let now = self.clock.now();
        std::iter::once(principal.task_key())
            .chain(principal.intent_ancestry_key())
            .any(|key| {
                self.state
                    .task_taint(key, now)
                    .map_or(true, |t| t.is_tainted())
            })
    }

    /// Counts an allowed call against every budget in the principal's chain, all or none.
    fn spend_budgets(
        &self,
        principal: &crate::Principal,
        decision: Decision,
        now: i64,
    ) -> Decision {
        if !matches!(decision, Decision::Allow(_)) || principal.budgets().is_empty() {
            return decision;
        }
        let counters: Vec<Counter> = principal
            .budgets()
            .iter()
            .map(|(key, calls)| Counter::new(key.clone(), *calls))
            .collect();
        match self
            .state
            .spend(&counters, principal.task_expires_at(), now)
        {
            Ok(true) => decision,
            Ok(false) => Decision::deny(
                codes::BUDGET_EXHAUSTED,
                "the call budget of this token, or of one it was delegated from, is spent",
            ),
            Err(e) => Decision::deny(codes::STATE_UNAVAILABLE, e.to_string()),
        }
    }

    #[allow(clippy::too_many_arguments, reason = "one private step of decide_tool")]
    fn decide_policy(
        &self,
        request: &GuardRequest<'_>,
        session: &SessionContext,
        intent: &IntentCheck,
        outbound: &OutboundCheck,
        tool: &ToolSpec,
        now: i64,
        anomaly: Option<&Anomaly>,
    ) -> Decision {
        let principal = request.principal;
        let anomaly_score = anomaly.map_or(0, |a| a.score);
        // A fingerprint set that overflowed (here or in another worker of the task) cannot
        // clear anything: every argument holding a string then counts as copied.
        let copied = session.untrusted_text.copied_arguments(request.arguments());
        let mut ctx = PolicyContext {
            arguments: request.arguments(),
            tainted: session.tainted,
            untrusted_arguments: !copied.is_empty(),
            copied_arguments: &copied,
            approved: false,
            anomaly_score,
            intent,
            outbound,
            http: request.http,
        };
        match self.policy.evaluate(principal, tool, &ctx) {
            PolicyOutcome::Permit => Decision::Allow(Allowance::default()),
            PolicyOutcome::Forbid { code, policies } => Decision::Deny(
                Denial::new(code, format!("policy forbids {}", tool.name()))
                    .with_policies(policies),
            ),
            PolicyOutcome::Error { code, message } => Decision::deny(code, message),
            PolicyOutcome::Confirm { code, policies } => match request.approval {
                None => self.confirmation_request(
                    request, session, intent, tool, now, code, policies, anomaly,
                ),
                Some(approval) => {
                    // What the approver must have been shown, as this guard sees it now.
                    let taint = shown_taint(&session.taint_sources);
                    let arguments = arguments_or_empty(request.arguments());
                    let call = HashedCall {
                        anomaly,
                        args: &arguments,
                        aud: self.service.as_deref(),
                        chain: principal.chain(),
                        code: &code,
                        exp: approval.expires_at,
                        nonce: &approval.nonce,
                        policies: &policies,
                        risk: tool.risk(),
                        taint: &taint,
                        task: principal.task(),
                        tool: tool.name(),
                        v: APPROVAL_CONTEXT,
                        intent: intent.declared.then_some(intent),
                    };
                    if let Err(why) = check_approval(
                        approval,
                        &self.approvers,
                        principal,
                        &call,
                        now,
                        self.max_approval_ttl,
                    ) {
                        return Decision::deny(codes::CONFIRMATION_INVALID, why);
                    }
                    ctx.approved = true;
                    match self.policy.evaluate(principal, tool, &ctx) {
                        PolicyOutcome::Permit => {}
                        PolicyOutcome::Error { code, message } => {
                            return Decision::deny(code, message);
                        }
                        PolicyOutcome::Forbid { code, policies }
                        | PolicyOutcome::Confirm { code, policies } => {
                            return Decision::Deny(
                                Denial::new(
                                    code,
                                    format!("policy forbids {} even when approved", tool.name()),
                                )
                                .with_policies(policies),
                            );
                        }
                    }
                    // Consume the nonce last, so a refused call does not burn the approval.
                    match self
                        .nonces
                        .consume(&approval.nonce, approval.expires_at, now)
                    {
                        Ok(true) => Decision::Allow(Allowance {
                            approval: Some(approval.nonce.clone()),
                            approver: Some(approval.approver.clone()),
                            ..Allowance::default()
                        }),
                        Ok(false) => {
                            Decision::deny(codes::CONFIRMATION_INVALID, "approval was already used")
                        }
                        Err(e) => {
                            Decision::deny(codes::HOOK_FAILED, format!("approval nonce store: {e}"))
                        }
                    }
                }
            },
        }
    }

    #[allow(clippy::too_many_arguments, reason = "one private step of decide_tool")]
    fn confirmation_request(
        &self,
        request: &GuardRequest<'_>,
        session: &SessionContext,
        intent: &IntentCheck,
        tool: &ToolSpec,
        now: i64,
        code: String,
        policies: Vec<String>,
        anomaly: Option<&Anomaly>,
    ) -> Decision {
        let nonce = match new_nonce(self.entropy.as_ref()) {
            Ok(n) => n,
            Err(e) => return Decision::deny(codes::HOOK_FAILED, e),
        };
        // An approval never outlives the credential it approves a call for.
        let expires_at = now
            .saturating_add(self.confirmation_ttl)
            .min(request.principal.expires_at());
        let arguments = arguments_or_empty(request.arguments());
        let taint_sources = shown_taint(&session.taint_sources);
        let digest = match digest_of(&HashedCall {
            anomaly,
            args: &arguments,
            aud: self.service.as_deref(),
            chain: request.principal.chain(),
            code: &code,
            exp: expires_at,
            nonce: &nonce,
            policies: &policies,
            risk: tool.risk(),
            taint: &taint_sources,
            task: request.principal.task(),
            tool: tool.name(),
            v: APPROVAL_CONTEXT,
            intent: intent.declared.then_some(intent),
        }) {
            Ok(d) => d,
            Err(e) => return Decision::deny(codes::ARGUMENTS_INVALID, e),
        };
        Decision::NeedsConfirmation(Box::new(ApprovalRequest {
            digest,
            tool: tool.name().to_owned(),
            risk: tool.risk(),
            arguments,
            chain: request.principal.chain().to_vec(),
            task: request.principal.task().map(str::to_owned),
            nonce,
            expires_at,
            code,
            policies,
            anomaly: anomaly.cloned(),
            audience: self.service.clone(),
            taint_sources,
            intent: intent.declared.then(|| intent.clone()),
        }))
    }
}

/// Approval nonces kept in the guard's shared state.
#[derive(Debug)]
struct StateNonces(Arc<dyn SharedState>);

impl NonceStore for StateNonces {
    fn consume(&self, nonce: &str, expires_at: i64, now: i64) -> Result<bool, String> {
        self.0
            .use_once(&format!("approval:{nonce}"), expires_at, now)
            .map_err(|e| e.to_string())
    }
}

/// The arguments as an approval shows and signs them: `null` reads as no arguments.
fn arguments_or_empty(arguments: &Value) -> Value {
    match arguments {
        Value::Null => Value::Object(serde_json::Map::new()),
        other => other.clone(),
    }
}

/// `guard.tool_changed` when the credential pins tools and this one is not as pinned.
/// A tool registered without a descriptor has nothing to compare and is not pinned.
fn pin_refusal(principal: &crate::Principal, tool: &ToolSpec) -> Option<Decision> {
    let pins = principal.tool_pins();
    if pins.is_empty() {
        return None;
    }
    let current = tool.pin()?;
    match pins.get(tool.name()) {
        Some(pinned) if *pinned == current => None,
        Some(pinned) => Some(Decision::deny(
            codes::TOOL_CHANGED,
            format!(
                "tool {:?} changed since the credential was issued: its description or schema digests to {current}, the credential pins {pinned}",
                clip(tool.name())
            ),
        )),
        None => Some(Decision::deny(
            codes::TOOL_CHANGED,
            format!(
                "tool {:?} was not in the tool manifest the credential was issued for",
                clip(tool.name())
            ),
        )),
    }
}

fn clip(s: &str) -> &str {
    let mut end = s.len().min(64);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

impl GuardBuilder {
    /// Registers a tool.
    pub fn tool(mut self, spec: ToolSpec) -> Self {
        if let Err(e) = spec.validate() {
            self.error.get_or_insert(e);
        }
        if self
            .tools
            .insert(spec.name().to_owned(), spec.clone())
            .is_some()
        {
            self.error.get_or_insert(GuardError::ToolSpec(format!(
                "tool {:?} registered twice",
                spec.name()
            )));
        }
        self
    }

    /// Registers several tools.
    pub fn tools(self, specs: impl IntoIterator<Item = ToolSpec>) -> Self {
        specs.into_iter().fold(self, Self::tool)
    }

    /// The keys whose signatures approve confirmation requests.
    pub fn approvers(mut self, approvers: ApproverKeys) -> Self {
        self.approvers = approvers;
        self
    }

    /// Refuses to build if an approver key is one of these (token-signing or agent) keys.
    pub fn refuse_approver_keys_in(mut self, keys: &Jwks) -> Self {
        for key in keys.keys() {
            self.agent_keys.push(key.thumbprint());
        }
        self
    }

    /// Where used approval nonces are remembered (default: in process; the broker shares one).
    pub fn nonce_store(mut self, store: Arc<dyn NonceStore>) -> Self {
        self.nonces = Some(store);
        self
    }

    /// The clock (tests pin it).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The randomness for approval nonces.
    pub fn entropy(mut self, entropy: Arc<dyn Entropy>) -> Self {
        self.entropy = entropy;
        self
    }

    /// The content filter hook (default: [`agentiam_filter::InjectionFilter::new`]; give
    /// [`crate::hooks::NoContentFilter`] to turn filtering off).
    pub fn content_filter(mut self, filter: Arc<dyn ContentFilter>) -> Self {
        self.filter = filter;
        self
    }

    /// Adds a behaviour check ([`crate::Limits`], [`crate::Baselines`], your own). Checks run in
    /// the order added: the first refusal stands, and the anomaly score is the highest.
    pub fn behaviour(mut self, check: Arc<dyn BehaviourCheck>) -> Self {
        self.behaviour.push(check);
        self
    }

    /// Adds learned behaviour baselines as a behaviour check, and keeps them reachable through
    /// [`Guard::baselines`] (to save, freeze, reset or inspect).
    pub fn baselines(mut self, baselines: crate::Baselines) -> Self {
        self.behaviour.push(Arc::new(baselines.clone()));
        self.baselines = Some(baselines);
        self
    }

    /// The revocation set the guard consults on every decision (a credential revoked after it
    /// was verified, or whose ancestor in the delegation chain was, is refused with
    /// `token.revoked`) and writes to when a behaviour check asks for a revocation.
    pub fn revocation(mut self, revocation: Arc<dyn RevocationSet>) -> Self {
        self.revocation = Some(revocation);
        self
    }

    /// Adds a sink that sees every decision (e.g. [`crate::AuditSink`]).
    pub fn sink(mut self, sink: Arc<dyn DecisionSink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// How long a confirmation request stays answerable (1 s ..= the maximum approval lifetime).
    pub fn confirmation_ttl(mut self, secs: i64) -> Self {
        self.confirmation_ttl = secs;
        self
    }

    /// The state every worker of this service shares: approval nonces, call budgets, and each
    /// task's taint and copied-text fingerprints. The default is in this process only; give
    /// every worker, process and replica the same SQLite file, PostgreSQL database or Redis
    /// server (`agentiam_state`) to make single-use and counted things hold across all of them.
    /// An approval-nonce store set with [`GuardBuilder::nonce_store`] takes precedence for nonces.
    pub fn shared_state(mut self, state: Arc<dyn SharedState>) -> Self {
        self.state = Some(state);
        self
    }

    /// The service this guard stands for: the token audience it accepts.
    /// Every approval request names it and every approval is signed over it, so an approval for
    /// a call on one service never opens the same call on another service that trusts the same
    /// approvers. Required when approvers are registered.
    pub fn service(mut self, audience: impl Into<String>) -> Self {
        self.service = Some(audience.into());
        self
    }

    /// The hosts tools with outbound arguments may reach from a tainted session without a human
    /// (a parent domain allows its subdomains; IP addresses match exactly). Empty by default:
    /// after untrusted content, every agent-chosen URL is confirmed unless the intent fixes it.
    pub fn outbound_hosts<I, S>(mut self, hosts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.outbound_hosts = agentiam_filter::ExfiltrationCheck::allowing(hosts);
        self
    }

    /// The longest approval lifetime accepted.
    pub fn max_approval_ttl(mut self, secs: i64) -> Self {
        self.max_approval_ttl = secs;
        self
    }

    /// Builds the guard.
    pub fn build(mut self) -> Result<Guard, GuardError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.max_approval_ttl < 1
            || self.confirmation_ttl < 1
            || self.confirmation_ttl > self.max_approval_ttl
        {
            return Err(GuardError::ToolSpec(format!(
                "confirmation ttl {} s must be within 1 ..= max approval ttl {} s",
                self.confirmation_ttl, self.max_approval_ttl
            )));
        }
        if !self.approvers.is_empty() && self.service.as_deref().is_none_or(str::is_empty) {
            return Err(GuardError::ApproverKey(
                "a guard that accepts approvals must name the service it guards (GuardBuilder::service, the token audience), so an approval cannot be replayed on another service".into(),
            ));
        }
        let mut tools: Vec<&ToolSpec> = self.tools.values().collect();
        tools.sort_by(|a, b| a.name().cmp(b.name()));
        for tool in tools {
            if let Some(descriptor) = tool.descriptor()
                && let Some(finding) = self.filter.scan_tool(descriptor)
            {
                return Err(GuardError::ToolPoisoning {
                    tool: tool.name().to_owned(),
                    detail: finding.detail,
                });
            }
        }
        for kid in self.approvers.kids() {
            let Some(key) = self.approvers.get(kid) else {
                continue;
            };
            if self.agent_keys.contains(&key.thumbprint()) {
                return Err(GuardError::ApproverKey(format!(
                    "{kid} is also a token-signing or agent key; approver keys must be held only by people"
                )));
            }
        }
        let state = self
            .state
            .unwrap_or_else(|| Arc::new(InProcessState::default()));
        Ok(Guard {
            tools: Arc::new(self.tools),
            policy: Arc::new(self.policy),
            approvers: Arc::new(self.approvers),
            nonces: self
                .nonces
                .unwrap_or_else(|| Arc::new(StateNonces(Arc::clone(&state)))),
            clock: self.clock,
            entropy: self.entropy,
            filter: self.filter,
            behaviour: if self.behaviour.len() == 1 {
                self.behaviour.swap_remove(0)
            } else {
                Arc::new(BehaviourChecks(self.behaviour))
            },
            revocation: self.revocation,
            baselines: self.baselines,
            sinks: self.sinks,
            confirmation_ttl: self.confirmation_ttl,
            max_approval_ttl: self.max_approval_ttl,
            service: self.service,
            state,
            outbound_hosts: Arc::new(self.outbound_hosts),
        })
    }
}
