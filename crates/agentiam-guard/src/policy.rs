//! Deployment policy in Cedar, parsed (and validated against a schema) once.
//!
//! The guard asks Cedar one question per call:
//! may `Agent::"<presenter SPIFFE ID>"` do `Action::"call"` on `Tool::"<tool name>"` in this context?
//! The context is described in `policies/agentiam.cedarschema`; `context.arguments` holds the
//! tool's arguments (JSON objects become records, arrays sets, integers longs, other numbers
//! decimals when exactly representable with four decimals; `null` members are left out).
//!
//! Unlike plain Cedar, an evaluation error in any policy denies (`guard.policy_error`):
//! Cedar skips a policy that errors, which for a `forbid` would silently allow.
//!
//! A `forbid` annotated `@confirmation("<code>")` is a confirmation gate: when every policy that
//! denied a call is such a gate, the call waits for a human ([`crate::Decision::NeedsConfirmation`]);
//! the guard re-asks Cedar with `context.approved == true` once a valid approval is presented.

use std::collections::HashMap;
use std::str::FromStr;

use agentiam_token::ExactNumber;
use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Entities, EntityId, EntityTypeName, EntityUid,
    PolicyId, PolicySet, Request, RestrictedExpression, Schema, ValidationMode, Validator,
};
use serde_json::Value;

use crate::GuardError;
use crate::codes;
use crate::native_policy::{Call, NativeAnswer, NativePolicy};
use crate::request::{HttpRequestInfo, Principal, ToolSpec};

/// The default policy: permit what scopes cover; irreversible tools, and high-risk tools in a
/// tainted session, need a human.
pub const DEFAULT_POLICY: &str = include_str!("../policies/default.cedar");

/// The schema of what the guard passes to Cedar (without `context.arguments`).
pub const SCHEMA: &str = include_str!("../policies/agentiam.cedarschema");

/// Cedar answers remembered (per policy engine).
pub const DECISION_CACHE_CAPACITY: usize = 10_000;

/// Questions longer than this (long argument values) are not cached.
const MAX_CACHE_KEY_BYTES: usize = 4096;

/// Deepest nesting of arguments converted for Cedar.
pub const MAX_ARGUMENT_DEPTH: usize = 16;

/// What Cedar decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PolicyOutcome {
    Permit,
    Forbid {
        code: String,
        policies: Vec<String>,
    },
    /// Every denying policy is a confirmation gate.
    Confirm {
        code: String,
        policies: Vec<String>,
    },
    Error {
        code: &'static str,
        message: String,
    },
}

#[derive(Debug, Clone)]
struct PolicyInfo {
    /// `@id`, or Cedar's generated id.
    name: String,
    /// `@confirmation` code.
    confirmation: Option<String>,
    /// `@reason` code.
    reason: Option<String>,
}

/// Parsed Cedar policies, ready to evaluate.
#[derive(Debug, Clone)]
pub struct PolicyEngine {
    policies: PolicySet,
    info: HashMap<PolicyId, PolicyInfo>,
    /// Top-level argument names the policies read; `None` when they use the arguments
    /// in a way that needs all of them.
    argument_names: Option<Vec<String>>,
    cache: Option<std::sync::Arc<quick_cache::sync::Cache<String, PolicyOutcome>>>,
    /// The policies compiled for native evaluation, when every one is in the subset
    /// (`native_policy.rs`), with their infos by index.
    native: Option<std::sync::Arc<(Vec<NativePolicy>, Vec<PolicyInfo>)>>,
    authorizer: std::sync::Arc<Authorizer>,
    entities: Entities,
    action: EntityUid,
    agent_type: EntityTypeName,
    tool_type: EntityTypeName,
    version: String,
}

/// Inputs of one policy question, besides the principal and tool.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PolicyContext<'a> {
    pub(crate) arguments: &'a Value,
    pub(crate) tainted: bool,
    pub(crate) untrusted_arguments: bool,
    pub(crate) copied_arguments: &'a [String],
    pub(crate) approved: bool,
    pub(crate) anomaly_score: u8,
    pub(crate) intent: &'a crate::IntentCheck,
    pub(crate) outbound: &'a crate::OutboundCheck,
    pub(crate) http: Option<HttpRequestInfo<'a>>,
}

fn type_name(name: &str) -> Result<EntityTypeName, GuardError> {
    EntityTypeName::from_str(name).map_err(|e| GuardError::PolicyParse(e.to_string()))
}

fn code_annotation(
    value: Option<&str>,
    what: &str,
    id: &str,
) -> Result<Option<String>, GuardError> {
    match value {
        None => Ok(None),
        Some(code)
            if code.starts_with("guard.")
                && code.len() <= 64
                && code[6..]
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_') =>
        {
            Ok(Some(code.to_owned()))
        }
        Some(code) => Err(GuardError::PolicyInvalid(format!(
            "policy {id}: @{what}({code:?}) must be a guard.* reason code"
        ))),
    }
}

impl PolicyEngine {
    /// Parses `policies` (Cedar text); with a schema (Cedar schema text), validates them strictly.
    pub fn new(policies: &str, schema: Option<&str>) -> Result<Self, GuardError> {
        let set =
            PolicySet::from_str(policies).map_err(|e| GuardError::PolicyParse(e.to_string()))?;
        if let Some(schema) = schema {
            let (schema, _warnings) = Schema::from_cedarschema_str(schema)
                .map_err(|e| GuardError::SchemaParse(e.to_string()))?;
            let result = Validator::new(schema).validate(&set, ValidationMode::Strict);
            if !result.validation_passed() {
                let errors: Vec<String> = result
                    .validation_errors()
                    .map(ToString::to_string)
                    .collect();
                return Err(GuardError::PolicyInvalid(errors.join("; ")));
            }
        }
        let mut info = HashMap::new();
        let mut names = std::collections::BTreeSet::new();
        let mut all_arguments = false;
        let mut native = Some((Vec::new(), Vec::new()));
        for (index, policy) in set.policies().enumerate() {
            let id = policy.id().clone();
            let name = policy
                .annotation("id")
                .map_or_else(|| id.to_string(), str::to_owned);
            let confirmation =
                code_annotation(policy.annotation("confirmation"), "confirmation", &name)?;
            let reason = code_annotation(policy.annotation("reason"), "reason", &name)?;
            if confirmation.is_some() && policy.effect() != cedar_policy::Effect::Forbid {
                return Err(GuardError::PolicyInvalid(format!(
                    "policy {name}: @confirmation belongs on a forbid"
                )));
            }
            let policy_info = PolicyInfo {
                name,
                confirmation,
                reason,
            };
            match policy.to_json() {
                Ok(est) => {
                    all_arguments |= !argument_reads(&est, &mut names);
                    native = native.and_then(|(mut compiled, mut infos)| {
                        compiled.push(crate::native_policy::compile(index, &est)?);
                        infos.push(policy_info.clone());
                        Some((compiled, infos))
                    });
                }
                Err(_) => {
                    all_arguments = true;
                    native = None;
                }
            }
            info.insert(id, policy_info);
        }
        if set.templates().next().is_some() {
            return Err(GuardError::PolicyInvalid(
                "policy templates are not supported".into(),
            ));
        }
        let version = agentiam_telemetry::sha256_hex(policies.as_bytes());
        Ok(Self {
            policies: set,
            info,
            argument_names: (!all_arguments).then(|| names.into_iter().collect()),
            cache: Some(std::sync::Arc::new(quick_cache::sync::Cache::new(
                DECISION_CACHE_CAPACITY,
            ))),
            native: native.map(std::sync::Arc::new),
            authorizer: std::sync::Arc::new(Authorizer::new()),
            entities: Entities::empty(),
            action: EntityUid::from_type_name_and_id(type_name("Action")?, EntityId::new("call")),
            agent_type: type_name("Agent")?,
            tool_type: type_name("Tool")?,
            version,
        })
    }

    /// The embedded [`DEFAULT_POLICY`], validated against [`SCHEMA`].
    pub fn default_policy() -> Result<Self, GuardError> {
        Self::new(DEFAULT_POLICY, Some(SCHEMA))
    }

    /// Reads a policy file and an optional schema file.
    pub fn from_files(
        policies: &std::path::Path,
        schema: Option<&std::path::Path>,
    ) -> Result<Self, GuardError> {
        let read = |p: &std::path::Path| {
            std::fs::read_to_string(p).map_err(|e| GuardError::Io {
                path: p.display().to_string(),
                message: e.to_string(),
            })
        };
        let text = read(policies)?;
        let schema = schema.map(read).transpose()?;
        Self::new(&text, schema.as_deref())
    }

    /// Remembers up to `capacity` Cedar answers (0 turns the cache off). The default is
    /// [`DECISION_CACHE_CAPACITY`].
    pub fn with_decision_cache(mut self, capacity: usize) -> Self {
        self.cache =
            (capacity > 0).then(|| std::sync::Arc::new(quick_cache::sync::Cache::new(capacity)));
        self
    }

    /// Whether calls are decided natively: on by default when every policy is in the subset of
    /// Cedar the guard evaluates itself (scopes `==`, `in` or `is` on entity literals; conditions
    /// over literals, `context` and argument members with `==`, `!=`, `<`, `<=`, `>`, `>=`,
    /// `has`, `&&`, `||`, `!`). A call the subset cannot answer exactly still goes to Cedar.
    /// Turning it off sends every call to Cedar.
    pub fn with_native_evaluation(mut self, on: bool) -> Self {
        if !on {
            self.native = None;
        }
        self
    }

    /// Whether every policy compiled for native evaluation.
    pub fn is_native(&self) -> bool {
        self.native.is_some()
    }

    #[cfg(test)]
    pub(crate) fn native_policies(&self) -> Option<&[NativePolicy]> {
        self.native.as_ref().map(|n| n.0.as_slice())
    }

    /// `sha256:<hex>` of the policy text, recorded with every decision.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Whether some policy reads `context.arguments` (if none does, arguments are not converted).
    pub fn reads_arguments(&self) -> bool {
        self.argument_names.as_ref().is_none_or(|n| !n.is_empty())
    }

    /// The top-level argument names the policies read (`context.arguments.<name>` or
    /// `context.arguments has <name>`), or `None` if they need all arguments.
    /// Only these are converted for Cedar, and decisions are cached on them.
    pub fn argument_names(&self) -> Option<&[String]> {
        self.argument_names.as_deref()
    }

    fn context(
        &self,
        principal: &Principal,
        tool: &ToolSpec,
        ctx: &PolicyContext<'_>,
    ) -> Result<Context, (&'static str, String)> {
        let mut pairs: Vec<(String, RestrictedExpression)> = Vec::with_capacity(10);
        pairs.push((
            "risk".into(),
            RestrictedExpression::new_string(tool.risk().as_str().into()),
        ));
        pairs.push((
            "tainted".into(),
            RestrictedExpression::new_bool(ctx.tainted),
        ));
        pairs.push((
            "untrusted_arguments".into(),
            RestrictedExpression::new_bool(ctx.untrusted_arguments),
        ));
        pairs.push((
            "approved".into(),
            RestrictedExpression::new_bool(ctx.approved),
        ));
        pairs.push((
            "delegation_depth".into(),
            RestrictedExpression::new_long(
                i64::try_from(principal.delegation_depth()).unwrap_or(i64::MAX),
            ),
        ));
        pairs.push((
            "anomaly_score".into(),
            RestrictedExpression::new_long(i64::from(ctx.anomaly_score.min(100))),
        ));
        pairs.push((
            "subject".into(),
            RestrictedExpression::new_string(principal.subject().into()),
        ));
        pairs.push((
            "chain".into(),
            RestrictedExpression::new_set(
                principal
                    .chain()
                    .iter()
                    .map(|s| RestrictedExpression::new_string(s.clone())),
            ),
        ));
        if let Some(task) = principal.task() {
            pairs.push(("task".into(), RestrictedExpression::new_string(task.into())));
        }
        let names = |list: &[String]| {
            RestrictedExpression::new_set(
                list.iter()
                    .map(|n| RestrictedExpression::new_string(n.clone())),
            )
        };
        let intent = RestrictedExpression::new_record([
            (
                "declared".to_owned(),
                RestrictedExpression::new_bool(ctx.intent.declared),
            ),
            (
                "bound".to_owned(),
                RestrictedExpression::new_bool(ctx.intent.is_bound()),
            ),
            (
                "trusted".to_owned(),
                RestrictedExpression::new_bool(ctx.intent.trusted),
            ),
            ("fixed".to_owned(), names(&ctx.intent.fixed)),
            ("free".to_owned(), names(&ctx.intent.free)),
        ])
        .map_err(|e| (codes::POLICY_ERROR, e.to_string()))?;
        pairs.push(("intent".into(), intent));
        pairs.push(("copied_arguments".into(), names(ctx.copied_arguments)));
        let outbound = RestrictedExpression::new_record([
            (
                "declared".to_owned(),
                RestrictedExpression::new_bool(ctx.outbound.declared),
            ),
            ("hosts".to_owned(), names(&ctx.outbound.hosts)),
            (
                "unlisted".to_owned(),
                RestrictedExpression::new_bool(ctx.outbound.unlisted),
            ),
        ])
        .map_err(|e| (codes::POLICY_ERROR, e.to_string()))?;
        pairs.push(("outbound".into(), outbound));
        if let Some(http) = ctx.http {
            let record = RestrictedExpression::new_record([
                (
                    "method".to_owned(),
                    RestrictedExpression::new_string(http.method.into()),
                ),
                (
                    "path".to_owned(),
                    RestrictedExpression::new_string(http.path.into()),
                ),
            ])
            .map_err(|e| (codes::POLICY_ERROR, e.to_string()))?;
            pairs.push(("http".into(), record));
        }
        let args = match (&self.argument_names, ctx.arguments) {
            (Some(names), _) if names.is_empty() => None,
            (_, Value::Null) => Some(
                RestrictedExpression::new_record(std::iter::empty())
                    .map_err(|e| (codes::ARGUMENTS_INVALID, e.to_string()))?,
            ),
            (Some(names), Value::Object(map)) => {
                // Only what the policies read: converting 1 KiB of arguments costs more than evaluating.
                let mut fields = Vec::with_capacity(names.len());
                for name in names {
                    if let Some(v) = map.get(name)
                        && let Some(v) = json_to_cedar(v, 1)?
                    {
                        fields.push((name.clone(), v));
                    }
                }
                Some(
                    RestrictedExpression::new_record(fields)
                        .map_err(|e| (codes::ARGUMENTS_INVALID, e.to_string()))?,
                )
            }
            (_, other) => json_to_cedar(other, 0)?,
        };
        if let Some(args) = args {
            pairs.push(("arguments".into(), args));
        }
        Context::from_pairs(pairs).map_err(|e| (codes::POLICY_ERROR, e.to_string()))
    }

    /// Asks Cedar about one call, from the decision cache when the same question was asked before.
    pub(crate) fn evaluate(
        &self,
        principal: &Principal,
        tool: &ToolSpec,
        ctx: &PolicyContext<'_>,
    ) -> PolicyOutcome {
        if let Some(native) = &self.native {
            let call = Call {
                principal,
                tool,
                ctx,
                argument_names: self.argument_names.as_deref(),
            };
            if let NativeAnswer::Decided { permitted, forbids } = call.decide(&native.0) {
                let reasons = forbids.iter().filter_map(|&i| native.1.get(i)).collect();
                return outcome(permitted && forbids.is_empty(), reasons);
            }
        }
        let (Some(cache), Some(key)) = (&self.cache, self.cache_key(principal, tool, ctx)) else {
            return self.evaluate_uncached(principal, tool, ctx);
        };
        if let Some(hit) = cache.get(key.as_str()) {
            return hit;
        }
        let outcome = self.evaluate_uncached(principal, tool, ctx);
        cache.insert(key, outcome.clone());
        outcome
    }

    /// Everything Cedar sees, each field followed by its length so distinct questions never share a key; `None`
    /// when the policies need all arguments (no caching) or the key would be too long.
    ///
    /// Caching is exact: there are no entities, Cedar is deterministic, and the key holds every
    /// input of the request (principal, tool, context including the projected arguments).
    fn cache_key(
        &self,
        principal: &Principal,
        tool: &ToolSpec,
        ctx: &PolicyContext<'_>,
    ) -> Option<String> {
        let names = self.argument_names.as_ref()?;
        let mut key = CacheKey(Vec::with_capacity(256));
        key.text(principal.presenter());
        key.text(principal.subject());
        key.number(principal.chain().len());
        for link in principal.chain() {
            key.text(link);
        }
        match principal.task() {
            Some(task) => {
                key.text("S");
                key.text(task);
            }
            None => key.text("N"),
        }
        key.text(tool.name());
        key.text(tool.risk().as_str());
        key.text(if ctx.tainted { "t" } else { "f" });
        key.text(if ctx.untrusted_arguments { "t" } else { "f" });
        key.text(if ctx.approved { "t" } else { "f" });
        key.number(principal.delegation_depth());
        key.number(ctx.anomaly_score);
        key.text(match (ctx.intent.declared, ctx.intent.trusted) {
            (false, _) => "n",
            (true, false) => "u",
            (true, true) => "t",
        });
        key.text(match (ctx.outbound.declared, ctx.outbound.unlisted) {
            (false, _) => "n",
            (true, false) => "l",
            (true, true) => "u",
        });
        for list in [
            ctx.intent.fixed.as_slice(),
            ctx.intent.free.as_slice(),
            ctx.outbound.hosts.as_slice(),
            ctx.copied_arguments,
        ] {
            key.number(list.len());
            for name in list {
                key.text(name);
            }
        }
        match ctx.http {
            Some(h) => {
                key.text("S");
                key.text(h.method);
                key.text(h.path);
            }
            None => key.text("N"),
        }
        match ctx.arguments {
            Value::Object(map) => {
                for name in names {
                    match map.get(name) {
                        Some(v) => {
                            key.text("S");
                            key.json(v);
                        }
                        None => key.text("N"),
                    }
                }
            }
            Value::Null => key.text("null"),
            other => {
                key.text("other");
                key.json(other);
            }
        }
        key.finish()
    }

    fn evaluate_uncached(
        &self,
        principal: &Principal,
        tool: &ToolSpec,
        ctx: &PolicyContext<'_>,
    ) -> PolicyOutcome {
        let context = match self.context(principal, tool, ctx) {
            Ok(c) => c,
            Err((code, message)) => return PolicyOutcome::Error { code, message },
        };
        let request = match Request::new(
            EntityUid::from_type_name_and_id(
                self.agent_type.clone(),
                EntityId::new(principal.presenter()),
            ),
            self.action.clone(),
            EntityUid::from_type_name_and_id(self.tool_type.clone(), EntityId::new(tool.name())),
            context,
            None,
        ) {
            Ok(r) => r,
            Err(e) => {
                return PolicyOutcome::Error {
                    code: codes::POLICY_ERROR,
                    message: e.to_string(),
                };
            }
        };
        let response = self
            .authorizer
            .is_authorized(&request, &self.policies, &self.entities);
        let diagnostics = response.diagnostics();
        let errors: Vec<String> = diagnostics.errors().map(ToString::to_string).collect();
        if !errors.is_empty() {
            return PolicyOutcome::Error {
                code: codes::POLICY_ERROR,
                message: errors.join("; "),
            };
        }
        let reasons: Vec<&PolicyInfo> = diagnostics
            .reason()
            .filter_map(|id| self.info.get(id))
            .collect();
        outcome(response.decision() == CedarDecision::Allow, reasons)
    }
}

/// The outcome of an allowed call, or of a denied one from the policies that determined it.
fn outcome(allowed: bool, mut reasons: Vec<&PolicyInfo>) -> PolicyOutcome {
    if allowed {
        return PolicyOutcome::Permit;
    }
    // Cedar reports the determining policies as a set: order them (hard forbids first,
    // then by id) so the decision's code and the audit record's policy id are stable.
    reasons.sort_by(|a, b| {
        (a.confirmation.is_some(), &a.name).cmp(&(b.confirmation.is_some(), &b.name))
    });
    let policies: Vec<String> = reasons.iter().map(|i| i.name.clone()).collect();
    if reasons.is_empty() {
        return PolicyOutcome::Forbid {
            code: codes::POLICY_DENIED.to_owned(),
            policies: vec!["(no policy permits this call)".into()],
        };
    }
    if reasons.iter().all(|i| i.confirmation.is_some()) {
        // Report the gate's own code (e.g. guard.tainted_context) when every gate agrees.
        let first = reasons.first().and_then(|i| i.confirmation.clone());
        let code = match first {
            Some(c)
                if reasons
                    .iter()
                    .all(|i| i.confirmation.as_deref() == Some(c.as_str())) =>
            {
                c
            }
            _ => codes::CONFIRMATION_REQUIRED.to_owned(),
        };
        return PolicyOutcome::Confirm { code, policies };
    }
    let code = reasons
        .iter()
        .find(|i| i.confirmation.is_none())
        .and_then(|i| i.reason.clone())
        .unwrap_or_else(|| codes::POLICY_DENIED.to_owned());
    PolicyOutcome::Forbid { code, policies }
}

/// Collects the top-level argument names a policy (as Cedar's JSON form) reads.
/// Returns false when it uses `context.arguments` (or `context`) as a whole, so all are needed.
fn argument_reads(est: &Value, names: &mut std::collections::BTreeSet<String>) -> bool {
    fn is_var_context(v: &Value) -> bool {
        v.get("Var").and_then(Value::as_str) == Some("context")
    }
    fn access(v: &Value) -> Option<(&'static str, &Value, Option<&str>)> {
        let map = v.as_object()?;
        if map.len() != 1 {
            return None;
        }
        let (op, inner) = map.iter().next()?;
        let op = match op.as_str() {
            "." => ".",
            "has" => "has",
            _ => return None,
        };
        let left = inner.get("left")?;
        let attr = match inner.get("attr")? {
            Value::String(s) => Some(s.as_str()),
            Value::Array(items) => items.first().and_then(Value::as_str),
            _ => None,
        };
        Some((op, left, attr))
    }
    fn is_context_arguments(v: &Value) -> bool {
        matches!(access(v), Some((".", left, Some("arguments"))) if is_var_context(left))
    }
    if let Some((op, left, attr)) = access(est) {
        if is_context_arguments(left) {
            return match attr {
                Some(a) => {
                    names.insert(a.to_owned());
                    true
                }
                None => false,
            };
        }
        if is_var_context(left) {
            // `context.arguments` used whole needs all arguments; `context has arguments` does not.
            return !(op == "." && attr == Some("arguments")) && attr.is_some();
        }
        return argument_reads(left, names);
    }
    match est {
        Value::Object(map) => {
            if is_var_context(est) {
                return false;
            }
            map.values().all(|v| argument_reads(v, names))
        }
        Value::Array(items) => items.iter().all(|v| argument_reads(v, names)),
        _ => true,
    }
}

/// Converts JSON to a Cedar value; `None` for `null` (left out of records and sets).
fn json_to_cedar(
    value: &Value,
    depth: usize,
) -> Result<Option<RestrictedExpression>, (&'static str, String)> {
    if depth > MAX_ARGUMENT_DEPTH {
        return Err((
            codes::ARGUMENTS_INVALID,
            format!("arguments nest deeper than {MAX_ARGUMENT_DEPTH}"),
        ));
    }
    Ok(Some(match value {
        Value::Null => return Ok(None),
        Value::Bool(b) => RestrictedExpression::new_bool(*b),
        Value::String(s) => RestrictedExpression::new_string(s.clone()),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                RestrictedExpression::new_long(i)
            } else {
                // Cedar has no floats. The decimal is the literal's exact value, or the argument
                // is refused: a rounded value would let `100.00001` pass `<= 100.0`, and a
                // float round trip would let `1234567890123456789` stand for its neighbours.
                let exact = ExactNumber::from_json(n)
                    .map_err(|e| (codes::ARGUMENTS_INVALID, e.to_string()))?;
                // A Cedar decimal is an i64 count of ten-thousandths.
                let text = exact
                    .to_fixed(4)
                    .filter(|t| n.is_f64() && t.replace('.', "").parse::<i64>().is_ok())
                    .ok_or_else(|| {
                        (
                            codes::ARGUMENTS_INVALID,
                            format!(
                                "number {exact} has no exact Cedar value (a long, or a decimal with at most 4 decimals)"
                            ),
                        )
                    })?;
                RestrictedExpression::new_decimal(text)
            }
        }
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                if let Some(v) = json_to_cedar(item, depth + 1)? {
                    out.push(v);
                }
            }
            RestrictedExpression::new_set(out)
        }
        Value::Object(map) => {
            let mut out = Vec::with_capacity(map.len());
            for (k, v) in map {
                if let Some(v) = json_to_cedar(v, depth + 1)? {
                    out.push((k.clone(), v));
                }
            }
            RestrictedExpression::new_record(out)
                .map_err(|e| (codes::ARGUMENTS_INVALID, e.to_string()))?
        }
    }))
}

/// A decision-cache key being built: each field's bytes, then `:`, their length and `;`. Read
/// from the end, the lengths split a key back into its fields, so distinct questions never share
/// a key. Written in place: no allocation or formatting machinery per field on the hot path.
struct CacheKey(Vec<u8>);

impl CacheKey {
    fn end_field(&mut self, start: usize) {
        let len = self.0.len() - start;
        self.0.push(b':');
        self.0
            .extend_from_slice(itoa::Buffer::new().format(len).as_bytes());
        self.0.push(b';');
    }

    fn text(&mut self, text: &str) {
        let start = self.0.len();
        self.0.extend_from_slice(text.as_bytes());
        self.end_field(start);
    }

    fn number(&mut self, n: impl itoa::Integer) {
        let start = self.0.len();
        self.0
            .extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        self.end_field(start);
    }

    fn json(&mut self, value: &Value) {
        let start = self.0.len();
        // Writing JSON into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.0, value);
        self.end_field(start);
    }

    /// The key, or `None` when it is too long to cache.
    fn finish(self) -> Option<String> {
        if self.0.len() > MAX_CACHE_KEY_BYTES {
            return None;
        }
        String::from_utf8(self.0).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::CacheKey;
    use proptest::prelude::*;

    fn key(fields: &[String]) -> Option<String> {
        let mut key = CacheKey(Vec::new());
        for field in fields {
            key.text(field);
        }
        key.finish()
    }

    proptest! {
        /// Two questions share a decision-cache key only when every field is the same, whatever
        /// the fields hold (the delimiters included).
        #[test]
        fn distinct_fields_never_share_a_key(
            a in prop::collection::vec("[a:;0-9]{0,4}", 0..5),
            b in prop::collection::vec("[a:;0-9]{0,4}", 0..5),
        ) {
            prop_assert_eq!(key(&a) == key(&b), a == b);
        }
    }
}
