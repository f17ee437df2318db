//! What the guard decides on: who (the [`Principal`]), which tool ([`ToolSpec`]), with which
//! arguments, in which session ([`SessionContext`]).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use agentiam_delegation::Grant;
use agentiam_identity::{Sha256Digest, ToolDescriptor};
use agentiam_token::{ScopeSet, Token};
use serde_json::Value;

use crate::GuardError;
use crate::approval::Approval;
use crate::arguments::Arguments;

/// How much harm a tool can do. Policy decides which levels need a human.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    /// Reads public or the caller's own data.
    Low,
    /// Reads sensitive data or writes reversibly.
    Medium,
    /// Moves money, sends mail, changes access: reversible only with effort.
    High,
    /// Cannot be undone (delete, wire transfer, publish).
    Irreversible,
}

impl Risk {
    /// The level as policies see it (`context.risk`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Irreversible => "irreversible",
        }
    }

    /// Parses `low`, `medium`, `high` or `irreversible`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "low" => Some(Self::Low),
            "medium" => Some(Self::Medium),
            "high" => Some(Self::High),
            "irreversible" => Some(Self::Irreversible),
            _ => None,
        }
    }
}

impl fmt::Display for Risk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tool the guard knows: its name, the scope that covers it and its risk.
///
/// The scope is `resource:action` in the token grammar; a token scope such as
/// `payments:transfer{amount<=100}` covers the tool `ToolSpec::new("transfer", Risk::High).with_scope("payments", "transfer")`
/// when the call's `amount` argument is at most 100.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolSpec {
    name: String,
    resource: String,
    action: String,
    risk: Risk,
    untrusted_output: bool,
    descriptor: Option<Arc<ToolDescriptor>>,
    pin: Option<Sha256Digest>,
    intent_arguments: Option<Arc<[String]>>,
    outbound_arguments: Option<Arc<[String]>>,
    untrusted_fields: Option<Arc<[String]>>,
}

fn valid_scope_part(part: &str, dots: bool) -> bool {
    !part.is_empty()
        && part.len() <= 128
        && part.split('.').all(|s| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
        && (dots || !part.contains('.'))
}

impl ToolSpec {
    /// A tool covered by the scope `name:call` unless [`ToolSpec::with_scope`] says otherwise.
    pub fn new(name: impl Into<String>, risk: Risk) -> Self {
        let name = name.into();
        Self {
            resource: name.clone(),
            action: "call".to_owned(),
            name,
            risk,
            untrusted_output: false,
            descriptor: None,
            pin: None,
            intent_arguments: None,
            outbound_arguments: None,
            untrusted_fields: None,
        }
    }

    /// The parts of the tool's (JSON) output that are third-party text: dotted paths of member
    /// names, `*` for every item of an array or member of an object (`channels.*.name`,
    /// `messages.*.body`). A tool whose output is otherwise trusted (a workspace's own API)
    /// still taints the session when it returns text there (a channel name, a review title
    /// an outsider wrote), and that text's fingerprints flag arguments copied from it. Output
    /// that is not JSON, or deeper than the walk can follow, taints as a whole (fail closed).
    pub fn with_untrusted_fields<I, S>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.untrusted_fields = Some(paths.into_iter().map(Into::into).collect());
        self
    }

    /// The paths given with [`ToolSpec::with_untrusted_fields`].
    pub fn untrusted_fields(&self) -> Option<&[String]> {
        self.untrusted_fields.as_deref()
    }

    /// The arguments holding the URL (or list of URLs) the tool contacts: the tool reaches the
    /// network at an address the agent chose (a fetch, a webhook, a post), so it is an
    /// exfiltration channel whatever its risk level. In a tainted session the default policy
    /// lets it reach only hosts on the guard's outbound allowlist
    /// ([`GuardBuilder::outbound_hosts`](crate::GuardBuilder::outbound_hosts)), or URLs the
    /// task's declared intent fixes, without a human (`guard.outbound_unlisted`).
    pub fn with_outbound_arguments<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.outbound_arguments = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// The names given with [`ToolSpec::with_outbound_arguments`].
    pub fn outbound_arguments(&self) -> Option<&[String]> {
        self.outbound_arguments.as_deref()
    }

    /// The arguments that decide what the call does and to whom (a payment's recipient and
    /// amount, a message's recipients, a fetch's URL), as opposed to content the agent writes
    /// (a message's body). A call is intent-bound when the task's declared intent fixes every one
    /// of them that the call passes (see [`IntentCheck`](crate::IntentCheck)). Without this, every
    /// argument counts.
    pub fn with_intent_arguments<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.intent_arguments = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// The names given with [`ToolSpec::with_intent_arguments`]; `None`: every argument counts.
    pub fn intent_arguments(&self) -> Option<&[String]> {
        self.intent_arguments.as_deref()
    }

    /// What the model is shown for this tool: its description and argument schema.
    ///
    /// The guard then pins the tool: a token whose agent claim carries the manifest's
    /// tool digests ([`agentiam_identity::AgentConfiguration::tool_digests`]) may call it only
    /// while the description and schema are the ones it was issued for (`guard.tool_changed`),
    /// and the content filter scans the description when the guard is built (`guard.tool_poisoning`).
    pub fn with_descriptor(mut self, description: impl Into<String>, input_schema: Value) -> Self {
        let descriptor = ToolDescriptor::new(self.name.clone(), description, input_schema);
        self.pin = descriptor.digest().ok();
        self.descriptor = Some(Arc::new(descriptor));
        self
    }

    /// The descriptor given with [`ToolSpec::with_descriptor`].
    pub fn descriptor(&self) -> Option<&ToolDescriptor> {
        self.descriptor.as_deref()
    }

    /// The descriptor's digest, compared with the token's pin for this tool.
    pub fn pin(&self) -> Option<Sha256Digest> {
        self.pin
    }

    /// The tool returns content from outside the trust boundary (web pages, mail, tickets):
    /// after it runs, the session is tainted whatever the content filter says.
    pub fn with_untrusted_output(mut self) -> Self {
        self.untrusted_output = true;
        self
    }

    /// Whether the tool's output taints the session.
    pub fn returns_untrusted_output(&self) -> bool {
        self.untrusted_output
    }

    /// The scope (`resource:action`) a token needs for this tool.
    pub fn with_scope(mut self, resource: impl Into<String>, action: impl Into<String>) -> Self {
        self.resource = resource.into();
        self.action = action.into();
        self
    }

    /// Checks the name and the scope parts against the scope grammar.
    pub fn validate(&self) -> Result<(), GuardError> {
        if self.name.is_empty() || self.name.len() > 256 || self.name.chars().any(char::is_control)
        {
            return Err(GuardError::ToolSpec(format!(
                "bad tool name {:?}",
                self.name
            )));
        }
        if !valid_scope_part(&self.resource, true) || !valid_scope_part(&self.action, false) {
            return Err(GuardError::ToolSpec(format!(
                "tool {:?}: scope {}:{} is not in the scope grammar (names of letters, digits, _ and -, resources joined by .)",
                self.name, self.resource, self.action
            )));
        }
        for (what, names) in [
            ("intent", &self.intent_arguments),
            ("outbound", &self.outbound_arguments),
            ("untrusted-field", &self.untrusted_fields),
        ] {
            if let Some(names) = names
                && (names.len() > 256
                    || names
                        .iter()
                        .any(|n| n.is_empty() || n.len() > 128 || n.chars().any(char::is_control)))
            {
                return Err(GuardError::ToolSpec(format!(
                    "tool {:?}: {what} arguments must be at most 256 names of 1 to 128 bytes",
                    self.name
                )));
            }
        }
        if let Some(paths) = &self.untrusted_fields
            && paths.iter().any(|p| p.split('.').any(str::is_empty))
        {
            // A path with an empty segment would match nothing and taint nothing.
            return Err(GuardError::ToolSpec(format!(
                "tool {:?}: an untrusted-field path is member names or * joined by dots",
                self.name
            )));
        }
        if self.descriptor.is_some() && self.pin.is_none() {
            return Err(GuardError::ToolSpec(format!(
                "tool {:?}: the input schema has no canonical JSON form (numbers out of range?)",
                self.name
            )));
        }
        Ok(())
    }

    /// The tool's name (the Cedar resource `Tool::"<name>"`).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The scope resource.
    pub fn resource(&self) -> &str {
        &self.resource
    }
    /// The scope action.
    pub fn action(&self) -> &str {
        &self.action
    }
    /// The risk level.
    pub fn risk(&self) -> Risk {
        self.risk
    }
    /// Whether the tool's output comes from outside the trust boundary (it taints the session).
    pub fn untrusted_output(&self) -> bool {
        self.untrusted_output
    }
}

/// Who is acting: built from a verified [`Token`] or offline delegation [`Grant`], never from unverified input.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    subject: String,
    presenter: String,
    chain: Vec<String>,
    scopes: ScopeSet,
    task: Option<String>,
    agent_digest: Option<String>,
    delegation_depth: usize,
    token_id: Option<String>,
    expires_at: i64,
    key_thumbprint: Option<String>,
    tool_pins: Arc<BTreeMap<String, Sha256Digest>>,
    ancestor_tokens: Vec<String>,
    budgets: Vec<(String, u64)>,
    task_expires_at: i64,
    task_key: Arc<str>,
    intent: Option<Arc<str>>,
    /// With an intent: the task key of the tokens it was declared from.
    intent_ancestry_key: Option<Arc<str>>,
}

fn actors_oldest_first(act: Option<&Value>) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = act;
    // `act` nests newest outermost. Every actor is kept: dropping the oldest would hide them
    // from revocation checks and from policy's `context.chain`. The loop is bounded by the
    // token (8 KiB, and a verified token's `act` nesting matches its capped delegation depth).
    while let Some(Value::Object(map)) = cur {
        if let Some(Value::String(sub)) = map.get("sub") {
            out.push(sub.clone());
        }
        cur = map.get("act");
    }
    out.reverse();
    out
}

impl Principal {
    /// The principal a verified token speaks for.
    pub fn from_token(token: &Token) -> Self {
        let claims = token.claims();
        let mut chain = vec![claims.sub.clone()];
        for actor in actors_oldest_first(claims.act.as_ref()) {
            if chain.last() != Some(&actor) {
                chain.push(actor);
            }
        }
        Self {
            subject: claims.sub.clone(),
            presenter: claims.presenter().to_owned(),
            chain,
            scopes: claims.scope.clone(),
            task: claims.task.as_ref().map(|t| t.id.clone()),
            agent_digest: claims.agent.as_ref().map(|a| a.digest.to_string()),
            delegation_depth: claims.dlg.len(),
            token_id: claims.jti.clone(),
            expires_at: claims.exp,
            key_thumbprint: claims.cnf.as_ref().and_then(|c| c.jkt.clone()),
            tool_pins: Arc::new(
                claims
                    .agent
                    .as_ref()
                    .map(|a| a.tools.clone())
                    .unwrap_or_default(),
            ),
            ancestor_tokens: claims
                .dlg
                .iter()
                .filter_map(|hop| hop.jti.clone())
                .collect(),
            // Every ancestor's budget, oldest first, then the token's own: a call counts
            // against each of them.
            budgets: claims
                .dlg
                .iter()
                .filter_map(|hop| {
                    let calls = hop.budget.and_then(|b| b.calls)?;
                    Some((
                        agentiam_token::Budget::counter_key(hop.jti.as_deref(), &hop.sub, hop.exp),
                        calls,
                    ))
                })
                .chain(claims.budget.and_then(|b| b.calls).map(|calls| {
                    (
                        agentiam_token::Budget::counter_key(
                            claims.jti.as_deref(),
                            claims.presenter(),
                            claims.exp,
                        ),
                        calls,
                    )
                }))
                .collect(),
            task_expires_at: claims.dlg.iter().map(|h| h.exp).fold(claims.exp, i64::max),
            task_key: Arc::from(""),
            intent: claims.intent.as_ref().map(|i| Arc::from(i.id.as_str())),
            intent_ancestry_key: None,
        }
        .with_task_key()
    }

    /// The principal of a verified offline delegation chain.
    pub fn from_grant(grant: &Grant) -> Self {
        let mut chain = vec![grant.principal.clone()];
        if let Some(holder) = &grant.holder
            && holder != &grant.principal
        {
            chain.push(holder.clone());
        }
        Self {
            subject: grant.principal.clone(),
            presenter: grant
                .holder
                .clone()
                .unwrap_or_else(|| grant.principal.clone()),
            chain,
            scopes: grant.scopes.clone(),
            task: grant.task.clone(),
            agent_digest: None,
            delegation_depth: grant.depth,
            token_id: None,
            expires_at: grant.exp,
            key_thumbprint: Some(grant.holder_jkt.clone()),
            tool_pins: Arc::default(),
            ancestor_tokens: Vec::new(),
            budgets: grant.budgets.clone(),
            task_expires_at: grant.root_exp.max(grant.exp),
            task_key: Arc::from(""),
            intent: grant.intent.as_deref().map(Arc::from),
            intent_ancestry_key: None,
        }
        .with_task_key()
    }

    /// A workload authenticated only by its X.509-SVID (mTLS without a token): the SPIFFE ID it
    /// proved and the scopes the service grants that ID, valid until its certificate expires.
    pub fn from_workload(peer: &crate::VerifiedPeer, scopes: ScopeSet) -> Self {
        let id = peer.spiffe_id().to_owned();
        let expires_at = peer.not_after();
        Self {
            subject: id.clone(),
            presenter: id.clone(),
            chain: vec![id],
            scopes,
            task: None,
            agent_digest: None,
            delegation_depth: 0,
            token_id: None,
            expires_at,
            key_thumbprint: None,
            tool_pins: Arc::default(),
            ancestor_tokens: Vec::new(),
            budgets: Vec::new(),
            task_expires_at: expires_at,
            task_key: Arc::from(""),
            intent: None,
            intent_ancestry_key: None,
        }
        .with_task_key()
    }

    /// The principal on whose behalf the call is made (`sub`).
    pub fn subject(&self) -> &str {
        &self.subject
    }
    /// The agent presenting the credential (the newest actor, or `sub`); the Cedar principal `Agent::"<presenter>"`.
    pub fn presenter(&self) -> &str {
        &self.presenter
    }
    /// The principal, then each actor oldest first.
    pub fn chain(&self) -> &[String] {
        &self.chain
    }
    /// Granted scopes.
    pub fn scopes(&self) -> &ScopeSet {
        &self.scopes
    }
    /// The task id, if the token names one.
    pub fn task(&self) -> Option<&str> {
        self.task.as_deref()
    }
    /// The composite identity digest the token is bound to.
    pub fn agent_digest(&self) -> Option<&str> {
        self.agent_digest.as_deref()
    }
    /// Number of delegation hops behind this principal.
    pub fn delegation_depth(&self) -> usize {
        self.delegation_depth
    }
    /// The token's `jti`.
    pub fn token_id(&self) -> Option<&str> {
        self.token_id.as_deref()
    }
    /// When the credential expires (seconds since the epoch).
    pub fn expires_at(&self) -> i64 {
        self.expires_at
    }
    /// The RFC 7638 thumbprint of the key the credential is bound to (DPoP), if any.
    pub fn key_thumbprint(&self) -> Option<&str> {
        self.key_thumbprint.as_deref()
    }
    /// The ids (`jti`) of the tokens this one was delegated from, oldest first.
    pub fn ancestor_tokens(&self) -> &[String] {
        &self.ancestor_tokens
    }
    /// The tool digests the credential was issued for, by tool name; empty when it pins none.
    /// The call budgets a call counts against: `(counter key, calls allowed)` for every token
    /// in the chain that carries one, ancestors first.
    pub fn budgets(&self) -> &[(String, u64)] {
        &self.budgets
    }

    /// The key the task's shared state (taint, copied-text fingerprints) is kept under: the
    /// principal and task, so every token of one task (delegated or not) shares it and tasks of
    /// other principals never do. Computed once, when the principal is built.
    pub fn task_key(&self) -> &str {
        &self.task_key
    }

    fn with_task_key(mut self) -> Self {
        let key = match &self.task {
            Some(task) => format!("task:{}\u{1f}{task}", self.subject),
            None => match self.ancestor_tokens.first().or(self.token_id.as_ref()) {
                Some(root) => format!("root:{root}"),
                None => format!("agent:{}", self.presenter),
            },
        };
        match &self.intent {
            // What is read under the intent is kept apart from what its ancestors read: taint
            // under this key came after the intent existed, taint under theirs may have come
            // before it and chosen it.
            Some(intent) => {
                self.task_key = Arc::from(format!("intent:{intent}\u{1f}{key}"));
                self.intent_ancestry_key = Some(Arc::from(key));
            }
            None => self.task_key = Arc::from(key),
        }
        self
    }

    /// The task's declared intent (its id), when the credential carries one: its scopes are
    /// what the user asked for, fixed before the agent read anything untrusted.
    pub fn intent(&self) -> Option<&str> {
        self.intent.as_deref()
    }

    /// With an intent, the task key of the tokens it was declared from: while that task is
    /// untainted, nothing untrusted can have chosen the intent.
    pub fn intent_ancestry_key(&self) -> Option<&str> {
        self.intent_ancestry_key.as_deref()
    }

    /// Until when the task's state is kept: the latest expiry in the chain.
    pub fn task_expires_at(&self) -> i64 {
        self.task_expires_at
    }

    /// The tools pinned in the credential.
    pub fn tool_pins(&self) -> &BTreeMap<String, Sha256Digest> {
        &self.tool_pins
    }
}

/// What the guard knows about the session the call belongs to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionContext {
    /// Session (conversation) id, for the audit record.
    pub id: Option<String>,
    /// The agent has read untrusted content in this session.
    pub tainted: bool,
    /// Where the taint came from (tool names or document ids), for diagnostics.
    pub taint_sources: Vec<String>,
    /// Fingerprints of the untrusted content read, to flag arguments copied from it
    /// (`context.untrusted_arguments` in policy).
    pub untrusted_text: Arc<crate::UntrustedText>,
}

impl SessionContext {
    /// A clean session with an id.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: Some(id.into()),
            ..Self::default()
        }
    }

    /// Marks the session as having read untrusted content from `source`.
    pub fn taint(mut self, source: impl Into<String>) -> Self {
        self.tainted = true;
        self.taint_sources.push(source.into());
        self
    }

    /// Marks the session as having read `text` from `source`, and remembers the text's
    /// fingerprints so arguments copied from it are flagged.
    pub fn read_untrusted(mut self, source: impl Into<String>, text: &str) -> Self {
        Arc::make_mut(&mut self.untrusted_text).remember(text);
        self.taint(source)
    }
}

/// HTTP details of a request decided by the tower layer, visible to policy as `context.http`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpRequestInfo<'a> {
    /// Method, e.g. `POST`.
    pub method: &'a str,
    /// Path as received, without the query.
    pub path: &'a str,
}

/// One decision to make.
#[derive(Debug, Clone)]
pub struct GuardRequest<'a> {
    /// Who.
    pub principal: &'a Principal,
    /// Which tool (a registered [`ToolSpec`] name).
    pub tool: &'a str,
    /// The tool's arguments: a JSON object (or null for none); read with
    /// [`GuardRequest::arguments`].
    arguments: Arguments<'a>,
    /// The session.
    pub session: &'a SessionContext,
    /// A human's approval, presented out of band (never read from the arguments).
    pub approval: Option<&'a Approval>,
    /// Set by the HTTP layer.
    pub http: Option<HttpRequestInfo<'a>>,
    /// The tool call id, for the audit record.
    pub call_id: Option<&'a str>,
}

impl<'a> GuardRequest<'a> {
    /// A tool call in a clean, anonymous session.
    pub fn new(principal: &'a Principal, tool: &'a str, arguments: &'a Value) -> Self {
        Self::with_arguments(principal, tool, Arguments::borrowed(arguments))
    }

    /// A tool call whose arguments are shared, so the audit sink keeps them without a copy.
    pub fn shared(principal: &'a Principal, tool: &'a str, arguments: &'a Arc<Value>) -> Self {
        Self::with_arguments(principal, tool, Arguments::shared(arguments))
    }

    /// A tool call with its arguments as given.
    pub fn with_arguments(
        principal: &'a Principal,
        tool: &'a str,
        arguments: Arguments<'a>,
    ) -> Self {
        static CLEAN: std::sync::LazyLock<SessionContext> =
            std::sync::LazyLock::new(SessionContext::default);
        Self {
            principal,
            tool,
            arguments,
            session: std::sync::LazyLock::force(&CLEAN),
            approval: None,
            http: None,
            call_id: None,
        }
    }

    /// The tool's arguments.
    pub fn arguments(&self) -> &'a Value {
        self.arguments.value()
    }

    /// The arguments as a sink keeps them (shared when the caller shared them, else copied).
    pub fn shared_arguments(&self) -> Arc<Value> {
        self.arguments.to_shared()
    }
    /// In this session.
    pub fn with_session(mut self, session: &'a SessionContext) -> Self {
        self.session = session;
        self
    }
    /// With a human's approval.
    pub fn with_approval(mut self, approval: &'a Approval) -> Self {
        self.approval = Some(approval);
        self
    }
    /// From the HTTP layer.
    pub fn with_http(mut self, http: HttpRequestInfo<'a>) -> Self {
        self.http = Some(http);
        self
    }
    /// With the framework's tool call id.
    pub fn with_call_id(mut self, call_id: &'a str) -> Self {
        self.call_id = Some(call_id);
        self
    }
}

/// A principal shared between requests (cheap to clone).
pub type SharedPrincipal = Arc<Principal>;

#[cfg(test)]
mod tests {
    use super::*;

    /// No cap on the actors read from `act`: all of them reach the chain, oldest first.
    #[test]
    fn every_actor_of_a_deep_act_claim_is_kept() {
        for depth in [15usize, 16, 17, 40] {
            let mut act = Value::Null;
            for i in 0..depth {
                act = serde_json::json!({"sub": format!("a{i}"), "act": act});
            }
            let actors = actors_oldest_first(Some(&act));
            assert_eq!(actors.len(), depth);
            assert_eq!(actors.first().map(String::as_str), Some("a0"));
            assert_eq!(actors.last(), Some(&format!("a{}", depth - 1)));
        }
    }
}
