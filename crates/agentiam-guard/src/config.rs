//! A guard described in one JSON document, and one call described in another: what the CLI
//! (`agentiam guard decide`), the test vectors and the language bindings load.
//!
//! ```json
//! {
//!   "issuer": "https://broker.example",
//!   "audience": "payments-api",
//!   "jwks": {"keys": [ ... ]},
//!   "policy": "permit (principal, action, resource);",
//!   "schema": null,
//!   "tools": [{"name": "transfer", "risk": "high", "scope": "payments:transfer"}],
//!   "approvers": [{"name": "alice", "jwk": { ... }}],
//!   "workloads": {"spiffe://example.org/batch": "reports:read"}
//! }
//! ```
//!
//! `policy` is Cedar text (the [`crate::DEFAULT_POLICY`] when absent); `schema`, when present,
//! is Cedar schema text the policy must validate against. The injection filter is on unless
//! `"injection_filter": false` turns it off (`{"allowed_hosts": [...]}` configures it).

use std::collections::BTreeMap;
use std::sync::Arc;

use agentiam_identity::{Jwk, Jwks, PublicKey};
use agentiam_token::{CachingVerifier, Clock, DpopVerifier, ScopeSet, Verifier};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::GuardError;
use crate::approval::{Approval, ApproverKeys};
use crate::credentials::{Authenticator, Presented};
use crate::decision::Decision;
use crate::engine::{Guard, GuardBuilder};
use crate::policy::PolicyEngine;
use crate::request::{GuardRequest, Risk, SessionContext, ToolSpec};

/// Largest configuration or call document accepted (bytes).
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;

/// One tool in a [`GuardConfig`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolConfig {
    /// Tool name.
    pub name: String,
    /// Risk level.
    pub risk: Risk,
    /// `resource:action` a token needs (default `<name>:call`).
    #[serde(default)]
    pub scope: Option<String>,
    /// Its output taints the session.
    #[serde(default)]
    pub untrusted_output: bool,
    /// Argument names whose values the activity log redacts (besides the default secret names).
    /// Names are matched case-insensitively at any depth, in every tool's events.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redact: Vec<String>,
    /// The description the model is shown. Given, the tool is pinned
    /// ([`ToolSpec::with_descriptor`]): a token whose manifest has another description or
    /// schema for it is refused (`guard.tool_changed`), and the injection filter, when on,
    /// scans it when the guard is built (`guard.tool_poisoning`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The JSON Schema of the arguments, as in the agent's tool manifest (JSON `null` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<serde_json::Value>,
    /// The arguments that decide what a call does and to whom
    /// ([`ToolSpec::with_intent_arguments`]); absent: every argument counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent_arguments: Option<Vec<String>>,
    /// The arguments holding the URL the tool contacts ([`ToolSpec::with_outbound_arguments`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_arguments: Option<Vec<String>>,
    /// Where the tool's JSON output holds third-party text, as dotted paths with `*`
    /// ([`ToolSpec::with_untrusted_fields`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub untrusted_fields: Option<Vec<String>>,
}

impl ToolConfig {
    /// The [`ToolSpec`] this describes.
    pub fn spec(&self) -> Result<ToolSpec, GuardError> {
        let mut spec = ToolSpec::new(self.name.clone(), self.risk);
        if let Some(scope) = &self.scope {
            let Some((resource, action)) = scope.split_once(':') else {
                return Err(GuardError::ToolSpec(format!(
                    "scope {scope:?} is not resource:action"
                )));
            };
            spec = spec.with_scope(resource, action);
        }
        if self.untrusted_output {
            spec = spec.with_untrusted_output();
        }
        if let Some(names) = &self.intent_arguments {
            spec = spec.with_intent_arguments(names.iter().cloned());
        }
        if let Some(names) = &self.outbound_arguments {
            spec = spec.with_outbound_arguments(names.iter().cloned());
        }
        if let Some(paths) = &self.untrusted_fields {
            spec = spec.with_untrusted_fields(paths.iter().cloned());
        }
        if let Some(description) = &self.description {
            spec = spec.with_descriptor(
                description.clone(),
                self.input_schema.clone().unwrap_or(serde_json::Value::Null),
            );
        } else if self.input_schema.is_some() {
            return Err(GuardError::ToolSpec(format!(
                "tool {:?}: an input_schema pins the tool only with its description",
                self.name
            )));
        }
        spec.validate()?;
        Ok(spec)
    }
}

/// A human approver in a [`GuardConfig`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproverConfig {
    /// Display name.
    pub name: String,
    /// Public Ed25519 JWK.
    pub jwk: Jwk,
}

/// Everything a guard and its authenticator need.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardConfig {
    /// Expected token issuer.
    pub issuer: String,
    /// Expected token audience (this service).
    pub audience: String,
    /// The issuer's public keys.
    pub jwks: Value,
    /// Cedar policy text; the default policy when absent.
    #[serde(default)]
    pub policy: Option<String>,
    /// Cedar schema text to validate the policy against.
    #[serde(default)]
    pub schema: Option<String>,
    /// Registered tools.
    pub tools: Vec<ToolConfig>,
    /// Approver keys.
    #[serde(default)]
    pub approvers: Vec<ApproverConfig>,
    /// SPIFFE ID -> scopes for workloads that authenticate with a client certificate alone.
    #[serde(default)]
    pub workloads: BTreeMap<String, String>,
    /// The injection filter as the guard's content filter: on by default (absent or `true`
    /// is `{}`); `false` turns it off (`None`).
    #[serde(
        default = "filter_on",
        deserialize_with = "filter_setting",
        serialize_with = "filter_out"
    )]
    pub injection_filter: Option<FilterConfig>,
    /// Declarative limits (call rates, running totals), enforced before policy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub limits: Vec<LimitConfig>,
    /// Learned (and declared) behaviour baselines per role ([`crate::Baselines`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baselines: Option<BaselineConfig>,
    /// Where the state every worker shares lives (approval nonces, DPoP proof ids, call
    /// budgets, task taint); in this process when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<StateConfig>,
    /// The hosts tools with outbound arguments may reach from a tainted session without a
    /// human ([`crate::GuardBuilder::outbound_hosts`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outbound_hosts: Vec<String>,
}

/// The shared state in a [`GuardConfig`]:
/// `{"backend": "memory"}`, `{"backend": "sqlite", "path": "/var/lib/agent/guard.db"}`,
/// `{"backend": "postgres", "url_env": "GUARD_DATABASE_URL", "schema": "agentiam_guard"}` or
/// `{"backend": "redis", "url_env": "GUARD_REDIS_URL", "prefix": "agentiam:"}`.
/// A URL may also be given as `url` (for a server without a password); one with a password
/// belongs in the environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// `memory`, `sqlite`, `postgres` or `redis`.
    pub backend: String,
    /// The SQLite file (`sqlite`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The server URL (`postgres`, `redis`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The environment variable holding the server URL (`postgres`, `redis`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_env: Option<String>,
    /// The PostgreSQL schema the tables live in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// The Redis key prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

impl StateConfig {
    fn url(&self) -> Result<String, GuardError> {
        let bad = |why: String| GuardError::State(format!("state backend {}: {why}", self.backend));
        match (&self.url, &self.url_env) {
            (Some(url), None) => Ok(url.clone()),
            (None, Some(var)) => std::env::var(var)
                .map_err(|_| bad(format!("environment variable {var} is not set"))),
            _ => Err(bad("give exactly one of url and url_env".into())),
        }
    }

    /// Opens (or connects to) the configured backend.
    pub fn open(&self) -> Result<Arc<dyn agentiam_state::SharedState>, GuardError> {
        let unavailable = |feature: &str| {
            GuardError::State(format!(
                "state backend {} needs agentiam built with the {feature} feature",
                self.backend
            ))
        };
        let failed = |e: agentiam_state::StateError| GuardError::State(e.to_string());
        // Which of the two is used depends on the features compiled in.
        let _ = (&unavailable, &failed);
        match self.backend.as_str() {
            "memory" => Ok(Arc::new(agentiam_state::InProcessState::default())),
            "sqlite" => {
                let path = self
                    .path
                    .as_deref()
                    .ok_or_else(|| GuardError::State("state backend sqlite needs a path".into()))?;
                #[cfg(feature = "state-sqlite")]
                return Ok(Arc::new(
                    agentiam_state::SqliteState::open(path).map_err(failed)?,
                ));
                #[cfg(not(feature = "state-sqlite"))]
                return Err({
                    let _ = path;
                    unavailable("state-sqlite")
                });
            }
            "postgres" => {
                let url = self.url()?;
                #[cfg(feature = "state-postgres")]
                return Ok(Arc::new(match &self.schema {
                    Some(schema) => agentiam_state::PostgresState::connect_schema(&url, schema)
                        .map_err(failed)?,
                    None => agentiam_state::PostgresState::connect(&url).map_err(failed)?,
                }));
                #[cfg(not(feature = "state-postgres"))]
                return Err({
                    let _ = url;
                    unavailable("state-postgres")
                });
            }
            "redis" => {
                let url = self.url()?;
                #[cfg(feature = "state-redis")]
                return Ok({
                    let state = agentiam_state::RedisState::connect(&url).map_err(failed)?;
                    Arc::new(match &self.prefix {
                        Some(prefix) => state.with_prefix(prefix),
                        None => state,
                    })
                });
                #[cfg(not(feature = "state-redis"))]
                return Err({
                    let _ = url;
                    unavailable("state-redis")
                });
            }
            other => Err(GuardError::State(format!(
                "unknown state backend {other:?} (memory, sqlite, postgres, redis)"
            ))),
        }
    }
}

/// Behaviour baselines in a [`GuardConfig`]:
/// `{"roles": {"support": ["spiffe://example.org/agent/support"]}, "file": "baselines.json",
/// "min_observations": 500, "deny_at": 90, "revoke_at": 97, "per_agent": false,
/// "declared": {"support": {"tools": [...], "categories": [...], "hourly_calls": 200,
/// "arguments": {"refund.amount": 500}}}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineConfig {
    /// Role name -> SPIFFE ID prefixes of its agents (an unmapped agent is its own role).
    #[serde(default)]
    pub roles: BTreeMap<String, Vec<String>>,
    /// Profiles learned so far ([`crate::Baselines::save`]), loaded when the guard is built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Calls a profile learns before its learned features score.
    #[serde(default = "default_min_observations")]
    pub min_observations: u64,
    /// The score from which the call is refused (`guard.anomaly`).
    #[serde(default = "default_deny_at")]
    pub deny_at: u8,
    /// The score from which the credential and its descendants are also revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_at: Option<u8>,
    /// One profile per agent instead of per role.
    #[serde(default)]
    pub per_agent: bool,
    /// Declared behaviour per role.
    #[serde(default)]
    pub declared: BTreeMap<String, crate::behaviour::DeclaredProfile>,
}

fn default_min_observations() -> u64 {
    crate::BaselineSettings::default().min_observations
}

fn default_deny_at() -> u8 {
    crate::BaselineSettings::default().deny_at
}

impl BaselineConfig {
    /// The baselines this configuration describes, with the file's profiles loaded.
    pub fn baselines(&self, clock: Arc<dyn Clock>) -> Result<crate::Baselines, GuardError> {
        let bad = |why: String| GuardError::ToolSpec(format!("baselines: {why}"));
        if self.deny_at > 100 || self.revoke_at.is_some_and(|r| r > 100 || r < self.deny_at) {
            return Err(bad(
                "deny_at must be 0..=100 and revoke_at within deny_at..=100".into(),
            ));
        }
        let mut roles = crate::RoleMap::new();
        for (role, prefixes) in &self.roles {
            for prefix in prefixes {
                if !prefix.starts_with("spiffe://") {
                    return Err(bad(format!("role {role}: {prefix:?} is not a SPIFFE ID")));
                }
                roles = roles.role(role.clone(), prefix.clone());
            }
        }
        let settings = crate::BaselineSettings {
            min_observations: self.min_observations,
            deny_at: self.deny_at,
            revoke_at: self.revoke_at,
            per_agent: self.per_agent,
            ..crate::BaselineSettings::default()
        };
        let baselines = crate::Baselines::new(roles, settings).with_clock(clock);
        if let Some(file) = &self.file {
            baselines.load(std::path::Path::new(file)).map_err(bad)?;
        }
        for (role, declared) in &self.declared {
            baselines.declare(role, declared.clone());
        }
        Ok(baselines)
    }
}

/// One declarative limit in a [`GuardConfig`]: `{"id", "tool" ("*" for all), "window_secs",
/// "max_calls" | "total": {"argument", "max"}, "per": "agent" | "principal" | "task"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    /// Reported in refusals.
    pub id: String,
    /// The tool it counts (`*`: every tool).
    #[serde(default = "every_tool")]
    pub tool: String,
    /// The sliding window, in seconds.
    pub window_secs: i64,
    /// At most this many calls per window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_calls: Option<u64>,
    /// At most this sum of a numeric argument per window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<TotalConfig>,
    /// Whose calls count together (default: the agent's).
    #[serde(default)]
    pub per: LimitPer,
}

/// A running total's argument and maximum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TotalConfig {
    /// The numeric argument summed.
    pub argument: String,
    /// Its maximum sum per window.
    pub max: f64,
}

/// Whose calls a configured limit counts together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitPer {
    /// The presenting agent.
    #[default]
    Agent,
    /// The principal (`sub`).
    Principal,
    /// The task.
    Task,
}

fn every_tool() -> String {
    "*".to_owned()
}

impl LimitConfig {
    /// The [`Limit`](crate::Limit) this describes.
    pub fn limit(&self) -> Result<crate::Limit, GuardError> {
        if self.window_secs < 1 {
            return Err(GuardError::ToolSpec(format!(
                "limit {:?}: window_secs must be at least 1",
                self.id
            )));
        }
        let limit = match (self.max_calls, &self.total) {
            (Some(max), None) => {
                crate::Limit::calls(self.id.clone(), self.tool.clone(), self.window_secs, max)
            }
            (None, Some(t)) if t.max.is_finite() && t.max >= 0.0 => crate::Limit::total(
                self.id.clone(),
                self.tool.clone(),
                self.window_secs,
                t.argument.clone(),
                t.max,
            ),
            _ => {
                return Err(GuardError::ToolSpec(format!(
                    "limit {:?}: give either max_calls or a total with a finite, non-negative max",
                    self.id
                )));
            }
        };
        Ok(limit.per(match self.per {
            LimitPer::Agent => crate::LimitScope::Agent,
            LimitPer::Principal => crate::LimitScope::Principal,
            LimitPer::Task => crate::LimitScope::Task,
        }))
    }
}

/// The injection filter in a [`GuardConfig`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// Verdict threshold (default 0.5).
    #[serde(default)]
    pub threshold: Option<f64>,
    /// Hosts that may receive data in URLs of tool arguments.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Also refuse arguments that score as injection (default: only data-carrying URLs).
    #[serde(default)]
    pub scan_all_arguments: bool,
}

/// Secure by default: a configuration that does not mention the filter has it.
fn filter_on() -> Option<FilterConfig> {
    Some(FilterConfig::default())
}

/// `false` is off, `true` the default filter, an object a configured one; `null` is refused
/// rather than guessed at.
fn filter_setting<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<FilterConfig>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Bool(false) => Ok(None),
        Value::Bool(true) => Ok(filter_on()),
        Value::Null => Err(serde::de::Error::custom(
            "injection_filter is true, false or an object (false turns it off)",
        )),
        other => serde_json::from_value(other)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

fn filter_out<S: serde::Serializer>(
    filter: &Option<FilterConfig>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match filter {
        Some(config) => config.serialize(serializer),
        None => serializer.serialize_bool(false),
    }
}

impl FilterConfig {
    /// The filter this describes.
    pub fn filter(&self) -> agentiam_filter::InjectionFilter {
        let mut filter = agentiam_filter::InjectionFilter::new()
            .with_exfiltration(agentiam_filter::ExfiltrationCheck::allowing(
                &self.allowed_hosts,
            ))
            .scan_all_arguments(self.scan_all_arguments);
        if let Some(t) = self.threshold {
            filter = filter.with_threshold(t);
        }
        filter
    }
}

impl GuardConfig {
    /// Parses a configuration document.
    pub fn from_json(text: &str) -> Result<Self, GuardError> {
        if text.len() > MAX_DOCUMENT_BYTES {
            return Err(GuardError::ToolSpec(format!(
                "configuration over {MAX_DOCUMENT_BYTES} bytes"
            )));
        }
        serde_json::from_str(text).map_err(|e| GuardError::ToolSpec(format!("configuration: {e}")))
    }

    /// The activity log's redaction: the default secret names plus every tool's `redact` names.
    pub fn redaction(&self) -> agentiam_telemetry::RedactionPolicy {
        self.tools
            .iter()
            .flat_map(|t| t.redact.iter())
            .fold(agentiam_telemetry::RedactionPolicy::default(), |p, name| {
                p.redact(name.clone())
            })
    }

    /// Checks the document without opening anything it names (the shared state, the baselines
    /// file): whatever [`GuardConfig::build`] would refuse in the document itself (JWKS, policy
    /// and schema, approver keys, tools and their descriptions, limits, baselines settings,
    /// workloads) is refused here, with the same code. For checking a configuration where it
    /// is written (the Python `Guard(...)` and `@guard.tool(...)`), before the first call.
    pub fn validate(&self) -> Result<(), GuardError> {
        let mut offline = self.clone();
        offline.state = None;
        if let Some(baselines) = &mut offline.baselines {
            baselines.file = None;
        }
        offline
            .build(Arc::new(agentiam_token::SystemClock))
            .map(|_| ())
    }

    /// Builds the guard and the authenticator on `clock`.
    pub fn build(&self, clock: Arc<dyn Clock>) -> Result<(Guard, Authenticator), GuardError> {
        let (builder, auth) = self.builder(clock)?;
        Ok((builder.build()?, auth))
    }

    /// The guard's builder (to add sinks or hooks) and the authenticator, on `clock`.
    pub fn builder(
        &self,
        clock: Arc<dyn Clock>,
    ) -> Result<(GuardBuilder, Authenticator), GuardError> {
        let jwks = Jwks::from_json(&self.jwks.to_string())
            .map_err(|e| GuardError::ApproverKey(format!("jwks: {e}")))?;
        let policy = match &self.policy {
            Some(text) => PolicyEngine::new(text, self.schema.as_deref())?,
            None => PolicyEngine::new(
                crate::DEFAULT_POLICY,
                Some(self.schema.as_deref().unwrap_or(crate::policy::SCHEMA)),
            )?,
        };
        let mut approvers = ApproverKeys::new();
        for a in &self.approvers {
            let key = PublicKey::from_jwk(&a.jwk)
                .map_err(|e| GuardError::ApproverKey(format!("{}: {e}", a.name)))?;
            approvers = approvers.add(a.name.clone(), key)?;
        }
        let state: Arc<dyn agentiam_state::SharedState> = match &self.state {
            Some(config) => config.open()?,
            None => Arc::new(agentiam_state::InProcessState::default()),
        };
        let mut builder = Guard::builder(policy)
            .service(self.audience.clone())
            .shared_state(state.clone())
            .approvers(approvers)
            .refuse_approver_keys_in(&jwks)
            .outbound_hosts(&self.outbound_hosts)
            .clock(clock.clone());
        for t in &self.tools {
            builder = builder.tool(t.spec()?);
        }
        builder = match &self.injection_filter {
            Some(filter) => builder.content_filter(Arc::new(filter.filter())),
            None => builder.content_filter(Arc::new(crate::hooks::NoContentFilter)),
        };
        if !self.limits.is_empty() {
            let limits = self
                .limits
                .iter()
                .map(LimitConfig::limit)
                .collect::<Result<Vec<_>, _>>()?;
            builder = builder.behaviour(Arc::new(
                crate::Limits::new(limits).with_clock(clock.clone()),
            ));
        }
        // One revocation set for the guard and its verifier: what the guard revokes (an
        // operator through `Guard::revoke`, or a baseline's `revoke_at`), its verifier refuses
        // from the next request on, with every token delegated from it.
        let revoked: Arc<dyn agentiam_token::RevocationSet> =
            Arc::new(agentiam_token::InMemoryRevocationSet::new());
        builder = builder.revocation(revoked.clone());
        let verifier = Verifier::new(jwks, self.issuer.clone(), self.audience.clone())
            .with_clock(clock.clone())
            .with_revocation(revoked);
        if let Some(config) = &self.baselines {
            builder = builder.baselines(config.baselines(clock.clone())?);
        }
        let mut auth = Authenticator::new(
            CachingVerifier::new(verifier, 10_000),
            DpopVerifier::new(clock).with_replay_state(state),
        );
        for (id, scopes) in &self.workloads {
            let scopes = ScopeSet::parse(scopes)
                .map_err(|e| GuardError::ToolSpec(format!("workload {id}: {e}")))?;
            auth = auth.with_workload(id.clone(), scopes);
        }
        Ok((builder, auth))
    }
}

/// One call as a document: credentials, tool, arguments, session and approval.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallInput {
    /// Access token.
    #[serde(default)]
    pub token: Option<String>,
    /// DPoP proof.
    #[serde(default)]
    pub dpop_proof: Option<String>,
    /// Client certificate (base64 DER), as verified by TLS.
    #[serde(default)]
    pub client_certificate: Option<String>,
    /// HTTP method for DPoP (default `POST`).
    #[serde(default)]
    pub method: Option<String>,
    /// Request URL for DPoP.
    #[serde(default)]
    pub url: Option<String>,
    /// Tool name.
    pub tool: String,
    /// Tool arguments.
    #[serde(default)]
    pub arguments: Value,
    /// The session has read untrusted content.
    #[serde(default)]
    pub tainted: bool,
    /// Untrusted texts the session read (tool outputs, documents): the session is tainted and
    /// remembers their fingerprints, so arguments copied from them are flagged
    /// (`context.untrusted_arguments`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub untrusted_text: Vec<String>,
    /// A human's approval.
    #[serde(default)]
    pub approval: Option<Value>,
}

impl CallInput {
    /// Authenticates and decides. Credential failures are denials with their `token.*` / `guard.*` code.
    pub fn decide(&self, guard: &Guard, auth: &Authenticator) -> Decision {
        let cert = match self
            .client_certificate
            .as_deref()
            .map(|c| base64::engine::general_purpose::STANDARD.decode(c))
        {
            None => None,
            Some(Ok(der)) => Some(der),
            Some(Err(_)) => {
                return Decision::deny(
                    crate::codes::PEER_CERTIFICATE_INVALID,
                    "client certificate is not base64",
                );
            }
        };
        let presented = Presented {
            token: self.token.as_deref(),
            dpop_proof: self.dpop_proof.as_deref(),
            client_certificate: cert.as_deref(),
            method: self.method.as_deref().unwrap_or("POST"),
            url: self.url.as_deref().unwrap_or(""),
        };
        let principal = match auth.authenticate(&presented) {
            Ok(p) => p,
            Err(d) => return Decision::Deny(d),
        };
        let approval = match &self.approval {
            None => None,
            Some(v) => match Approval::from_json(&v.to_string()) {
                Ok(a) => Some(a),
                Err(e) => return Decision::deny(e.code(), e.to_string()),
            },
        };
        let mut session = if self.tainted {
            SessionContext::default().taint("call input")
        } else {
            SessionContext::default()
        };
        for text in &self.untrusted_text {
            session = session.read_untrusted("call input", text);
        }
        let mut request =
            GuardRequest::new(&principal, &self.tool, &self.arguments).with_session(&session);
        request.approval = approval.as_ref();
        guard.decide(&request)
    }
}

/// A decision as JSON: `{"decision": "allow"|"deny"|"confirm", "code", "message", "policies", "approval_request"}`.
pub fn decision_json(decision: &Decision) -> Value {
    // Serializing a decision cannot fail (string keys, no maps with other keys).
    serde_json::to_value(decision).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_redact_names_join_the_default_secret_names() {
        let config = GuardConfig::from_json(
            r#"{"issuer": "i", "audience": "a", "jwks": {"keys": []},
                "tools": [{"name": "t", "risk": "low", "redact": ["IBAN"]},
                          {"name": "u", "risk": "low"}]}"#,
        )
        .unwrap();
        let call = config
            .redaction()
            .tool_call(
                "t",
                None,
                &serde_json::json!({"iban": "DE00", "password": "x", "amount": 5}),
            )
            .unwrap();
        assert_eq!(call.args["iban"], agentiam_telemetry::REDACTED);
        assert_eq!(call.args["password"], agentiam_telemetry::REDACTED);
        assert_eq!(call.args["amount"], 5);
    }

    #[test]
    fn unknown_tool_fields_are_refused() {
        let err = GuardConfig::from_json(
            r#"{"issuer": "i", "audience": "a", "jwks": {"keys": []},
                "tools": [{"name": "t", "risk": "low", "redacted": ["x"]}]}"#,
        )
        .unwrap_err();
        assert_eq!(err.code(), "guard.tool_spec_invalid");
    }

    /// Secure by default: a configuration that does not mention the injection filter has it;
    /// only `false` turns it off, and a round trip keeps the choice.
    #[test]
    fn the_injection_filter_is_on_unless_turned_off() {
        let with = |setting: &str| {
            GuardConfig::from_json(&format!(
                r#"{{"issuer": "i", "audience": "a", "jwks": {{"keys": []}}, "tools": []{setting}}}"#
            ))
        };
        let on = Some(FilterConfig::default());
        assert_eq!(with("").unwrap().injection_filter, on);
        assert_eq!(
            with(r#", "injection_filter": true"#)
                .unwrap()
                .injection_filter,
            on
        );
        assert_eq!(
            with(r#", "injection_filter": false"#)
                .unwrap()
                .injection_filter,
            None
        );
        let hosts = with(r#", "injection_filter": {"allowed_hosts": ["acme.test"]}"#).unwrap();
        assert_eq!(
            hosts
                .injection_filter
                .as_ref()
                .map(|f| f.allowed_hosts.clone()),
            Some(vec!["acme.test".to_owned()])
        );
        for refused in [
            r#", "injection_filter": null"#,
            r#", "injection_filter": {"allowed_host": []}"#,
        ] {
            assert_eq!(
                with(refused).unwrap_err().code(),
                "guard.tool_spec_invalid",
                "{refused}"
            );
        }
        for config in [
            with("").unwrap(),
            with(r#", "injection_filter": false"#).unwrap(),
        ] {
            let again = GuardConfig::from_json(&serde_json::to_string(&config).unwrap()).unwrap();
            assert_eq!(again.injection_filter, config.injection_filter);
        }
    }
}
