//! The subset of Cedar that deployment policies are mostly written in, evaluated natively.
//!
//! Policies whose scopes are `==`, `in` or `is` on entity literals and whose conditions combine
//! literals, `context` attributes and `context.arguments` members with `==`, `!=`, `<`, `<=`,
//! `>`, `>=`, `has`, `&&`, `||` and `!` are compiled from Cedar's JSON form when the engine is
//! built. A decision then reads the guard's own values in place (no Cedar context is built) and
//! walks the compiled conditions.
//!
//! Exactness comes first: the native path answers only where it knows Cedar's answer. A policy
//! set with anything else is not compiled, and a call whose evaluation would meet something the
//! subset does not model (an attribute that is absent, a comparison of mismatched types, a set,
//! a decimal, a record compared whole, an argument the guard could not convert) is handed to
//! Cedar, which gives the answer and the error exactly as before. A property test compares both
//! paths over generated policies and contexts.

use serde_json::{Map, Value};

use crate::policy::{MAX_ARGUMENT_DEPTH, PolicyContext};
use crate::request::{Principal, ToolSpec};

/// The guard's entity types and its one action.
const AGENT: &str = "Agent";
const TOOL: &str = "Tool";
const ACTION: &str = "Action";
const CALL: &str = "call";

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entity {
    ty: String,
    id: String,
}

#[derive(Debug, Clone)]
enum Scope {
    All,
    /// `==` one entity, or `in` entities (without an entity store, `in` is equality with one of them).
    OneOf(Vec<Entity>),
    Is(String, Option<Entity>),
}

#[derive(Debug, Clone, Copy)]
enum Var {
    Principal,
    Action,
    Resource,
    Context,
}

#[derive(Debug, Clone, Copy)]
enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone)]
enum Expr {
    Bool(bool),
    Long(i64),
    Str(String),
    Entity(Entity),
    EntitySet(Vec<Entity>),
    Var(Var),
    Attr(Box<Expr>, String),
    Has(Box<Expr>, String),
    Eq(Box<Expr>, Box<Expr>),
    Ne(Box<Expr>, Box<Expr>),
    Cmp(Cmp, Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    In(Box<Expr>, Box<Expr>),
}

/// One compiled policy.
#[derive(Debug, Clone)]
pub(crate) struct NativePolicy {
    /// Index into the engine's policy list (its id and annotations).
    pub(crate) index: usize,
    forbid: bool,
    principal: Scope,
    action: Scope,
    resource: Scope,
    /// `(when, body)`: a `when` must hold, an `unless` must not.
    conditions: Vec<(bool, Expr)>,
}

/// What the native path found for one call.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NativeAnswer {
    /// Cedar's decision: whether some permit holds, and which forbids hold (engine indices).
    Decided {
        permitted: bool,
        forbids: Vec<usize>,
    },
    /// Outside the subset: ask Cedar.
    AskCedar,
}

/// Something the subset does not model at run time (Cedar would error, or we do not know its value).
struct Unmodelled;

fn entity(v: &Value) -> Option<Entity> {
    let e = v.get("__entity").unwrap_or(v);
    let map = e.as_object()?;
    if map.len() != 2 {
        return None;
    }
    Some(Entity {
        ty: map.get("type")?.as_str()?.to_owned(),
        id: map.get("id")?.as_str()?.to_owned(),
    })
}

fn scope(v: &Value) -> Option<Scope> {
    let map = v.as_object()?;
    match map.get("op")?.as_str()? {
        "All" if map.len() == 1 => Some(Scope::All),
        "==" if map.len() == 2 => Some(Scope::OneOf(vec![entity(map.get("entity")?)?])),
        "in" if map.len() == 2 => match (map.get("entity"), map.get("entities")) {
            (Some(e), None) => Some(Scope::OneOf(vec![entity(e)?])),
            (None, Some(Value::Array(list))) => Some(Scope::OneOf(
                list.iter().map(entity).collect::<Option<_>>()?,
            )),
            _ => None,
        },
        "is" => {
            let ty = map.get("entity_type")?.as_str()?.to_owned();
            match (map.len(), map.get("in")) {
                (2, None) => Some(Scope::Is(ty, None)),
                (3, Some(inner)) => {
                    let inner = inner.as_object()?;
                    (inner.len() == 1).then_some(())?;
                    Some(Scope::Is(ty, Some(entity(inner.get("entity")?)?)))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

fn binary(v: &Value) -> Option<(Box<Expr>, Box<Expr>)> {
    let map = v.as_object()?;
    (map.len() == 2).then_some(())?;
    Some((
        Box::new(expr(map.get("left")?)?),
        Box::new(expr(map.get("right")?)?),
    ))
}

fn expr(v: &Value) -> Option<Expr> {
    let map = v.as_object()?;
    if map.len() != 1 {
        return None;
    }
    let (op, arg) = map.iter().next()?;
    Some(match op.as_str() {
        "Value" => match arg {
            Value::Bool(b) => Expr::Bool(*b),
            Value::Number(n) => Expr::Long(n.as_i64()?),
            Value::String(s) => Expr::Str(s.clone()),
            Value::Object(_) => Expr::Entity(entity(arg)?),
            _ => return None,
        },
        "Set" => Expr::EntitySet(
            arg.as_array()?
                .iter()
                .map(|item| match expr(item)? {
                    Expr::Entity(e) => Some(e),
                    _ => None,
                })
                .collect::<Option<_>>()?,
        ),
        "Var" => Expr::Var(match arg.as_str()? {
            "principal" => Var::Principal,
            "action" => Var::Action,
            "resource" => Var::Resource,
            "context" => Var::Context,
            _ => return None,
        }),
        "." | "has" => {
            let inner = arg.as_object()?;
            (inner.len() == 2).then_some(())?;
            let left = Box::new(expr(inner.get("left")?)?);
            let attr = inner.get("attr")?.as_str()?.to_owned();
            if op == "." {
                Expr::Attr(left, attr)
            } else {
                Expr::Has(left, attr)
            }
        }
        "!" => {
            let inner = arg.as_object()?;
            (inner.len() == 1).then_some(())?;
            Expr::Not(Box::new(expr(inner.get("arg")?)?))
        }
        "==" => {
            let (l, r) = binary(arg)?;
            Expr::Eq(l, r)
        }
        "!=" => {
            let (l, r) = binary(arg)?;
            Expr::Ne(l, r)
        }
        "<" | "<=" | ">" | ">=" => {
            let (l, r) = binary(arg)?;
            let cmp = match op.as_str() {
                "<" => Cmp::Lt,
                "<=" => Cmp::Le,
                ">" => Cmp::Gt,
                _ => Cmp::Ge,
            };
            Expr::Cmp(cmp, l, r)
        }
        "&&" => {
            let (l, r) = binary(arg)?;
            Expr::And(l, r)
        }
        "||" => {
            let (l, r) = binary(arg)?;
            Expr::Or(l, r)
        }
        "in" => {
            let (l, r) = binary(arg)?;
            Expr::In(l, r)
        }
        _ => return None,
    })
}

/// Compiles one policy from Cedar's JSON form (EST); `None` if it is outside the subset.
pub(crate) fn compile(index: usize, est: &Value) -> Option<NativePolicy> {
    let map = est.as_object()?;
    for key in map.keys() {
        if !matches!(
            key.as_str(),
            "effect" | "principal" | "action" | "resource" | "conditions" | "annotations"
        ) {
            return None;
        }
    }
    let forbid = match map.get("effect")?.as_str()? {
        "permit" => false,
        "forbid" => true,
        _ => return None,
    };
    let mut conditions = Vec::new();
    for c in map.get("conditions")?.as_array()? {
        let c = c.as_object()?;
        (c.len() == 2).then_some(())?;
        let when = match c.get("kind")?.as_str()? {
            "when" => true,
            "unless" => false,
            _ => return None,
        };
        conditions.push((when, expr(c.get("body")?)?));
    }
    Some(NativePolicy {
        index,
        forbid,
        principal: scope(map.get("principal")?)?,
        action: scope(map.get("action")?)?,
        resource: scope(map.get("resource")?)?,
        conditions,
    })
}

/// A value during evaluation.
#[derive(Debug, Clone, Copy)]
enum Val<'a> {
    Bool(bool),
    Long(i64),
    Str(&'a str),
    Entity(&'a str, &'a str),
    Record(Record<'a>),
    /// A set: only passed around, never compared (that is left to Cedar).
    Set,
}

#[derive(Debug, Clone, Copy)]
enum Record<'a> {
    Context,
    Intent,
    Outbound,
    Http(&'a str, &'a str),
    Arguments(&'a Map<String, Value>),
    NoArguments,
}

/// One call's inputs, read in place.
pub(crate) struct Call<'a> {
    pub(crate) principal: &'a Principal,
    pub(crate) tool: &'a ToolSpec,
    pub(crate) ctx: &'a PolicyContext<'a>,
    /// The argument names the policies read (`None`: all of them).
    pub(crate) argument_names: Option<&'a [String]>,
}

/// Whether the guard converts `v` for Cedar without an error, and the subset models it
/// (integers that are `i64`, strings, booleans, `null`, arrays and objects of those).
fn modelled_argument(v: &Value, depth: usize) -> bool {
    if depth > MAX_ARGUMENT_DEPTH {
        return false;
    }
    match v {
        Value::Null | Value::Bool(_) | Value::String(_) => true,
        Value::Number(n) => n.as_i64().is_some(),
        Value::Array(items) => items.iter().all(|i| modelled_argument(i, depth + 1)),
        Value::Object(map) => map.values().all(|i| modelled_argument(i, depth + 1)),
    }
}

impl<'a> Call<'a> {
    /// Whether this call's arguments are inside the subset (else Cedar decides).
    fn arguments_modelled(&self) -> bool {
        match (self.argument_names, self.ctx.arguments) {
            (Some([]), _) | (_, Value::Null) => true,
            (Some(names), Value::Object(map)) => names
                .iter()
                .all(|n| map.get(n).is_none_or(|v| modelled_argument(v, 1))),
            (None, Value::Object(map)) => map.values().all(|v| modelled_argument(v, 1)),
            _ => false,
        }
    }

    fn var(&self, v: Var) -> Val<'a> {
        match v {
            Var::Principal => Val::Entity(AGENT, self.principal.presenter()),
            Var::Action => Val::Entity(ACTION, CALL),
            Var::Resource => Val::Entity(TOOL, self.tool.name()),
            Var::Context => Val::Record(Record::Context),
        }
    }

    /// `record.name`: `Ok(None)` when absent.
    fn attr(&self, record: Record<'a>, name: &str) -> Result<Option<Val<'a>>, Unmodelled> {
        let ctx = self.ctx;
        Ok(match record {
            Record::Context => match name {
                "risk" => Some(Val::Str(self.tool.risk().as_str())),
                "tainted" => Some(Val::Bool(ctx.tainted)),
                "untrusted_arguments" => Some(Val::Bool(ctx.untrusted_arguments)),
                "approved" => Some(Val::Bool(ctx.approved)),
                "delegation_depth" => Some(Val::Long(
                    i64::try_from(self.principal.delegation_depth()).unwrap_or(i64::MAX),
                )),
                "anomaly_score" => Some(Val::Long(i64::from(ctx.anomaly_score.min(100)))),
                "subject" => Some(Val::Str(self.principal.subject())),
                "chain" | "copied_arguments" => Some(Val::Set),
                "task" => self.principal.task().map(Val::Str),
                "intent" => Some(Val::Record(Record::Intent)),
                "outbound" => Some(Val::Record(Record::Outbound)),
                "http" => ctx
                    .http
                    .map(|h| Val::Record(Record::Http(h.method, h.path))),
                "arguments" => match (self.argument_names, ctx.arguments) {
                    (Some([]), _) => None,
                    (_, Value::Null) => Some(Val::Record(Record::NoArguments)),
                    (_, Value::Object(map)) => Some(Val::Record(Record::Arguments(map))),
                    _ => return Err(Unmodelled),
                },
                _ => None,
            },
            Record::Intent => match name {
                "declared" => Some(Val::Bool(ctx.intent.declared)),
                "bound" => Some(Val::Bool(ctx.intent.is_bound())),
                "trusted" => Some(Val::Bool(ctx.intent.trusted)),
                "fixed" | "free" => Some(Val::Set),
                _ => None,
            },
            Record::Outbound => match name {
                "declared" => Some(Val::Bool(ctx.outbound.declared)),
                "unlisted" => Some(Val::Bool(ctx.outbound.unlisted)),
                "hosts" => Some(Val::Set),
                _ => None,
            },
            Record::Http(method, path) => match name {
                "method" => Some(Val::Str(method)),
                "path" => Some(Val::Str(path)),
                _ => None,
            },
            Record::NoArguments => None,
            Record::Arguments(map) => match map.get(name) {
                None | Some(Value::Null) => None,
                Some(Value::Bool(b)) => Some(Val::Bool(*b)),
                Some(Value::String(s)) => Some(Val::Str(s)),
                Some(Value::Number(n)) => Some(Val::Long(n.as_i64().ok_or(Unmodelled)?)),
                Some(Value::Array(_)) => Some(Val::Set),
                Some(Value::Object(inner)) => Some(Val::Record(Record::Arguments(inner))),
            },
        })
    }

    fn boolean(&self, e: &'a Expr) -> Result<bool, Unmodelled> {
        match self.eval(e)? {
            Val::Bool(b) => Ok(b),
            _ => Err(Unmodelled),
        }
    }

    fn eval(&self, e: &'a Expr) -> Result<Val<'a>, Unmodelled> {
        Ok(match e {
            Expr::Bool(b) => Val::Bool(*b),
            Expr::Long(n) => Val::Long(*n),
            Expr::Str(s) => Val::Str(s),
            Expr::Entity(en) => Val::Entity(&en.ty, &en.id),
            Expr::EntitySet(_) => Val::Set,
            Expr::Var(v) => self.var(*v),
            Expr::Attr(left, name) => match self.eval(left)? {
                Val::Record(r) => self.attr(r, name)?.ok_or(Unmodelled)?,
                _ => return Err(Unmodelled),
            },
            Expr::Has(left, name) => match self.eval(left)? {
                Val::Record(r) => Val::Bool(self.attr(r, name)?.is_some()),
                _ => return Err(Unmodelled),
            },
            Expr::Eq(l, r) => Val::Bool(equal(self.eval(l)?, self.eval(r)?)?),
            Expr::Ne(l, r) => Val::Bool(!equal(self.eval(l)?, self.eval(r)?)?),
            Expr::Cmp(op, l, r) => match (self.eval(l)?, self.eval(r)?) {
                (Val::Long(a), Val::Long(b)) => Val::Bool(match op {
                    Cmp::Lt => a < b,
                    Cmp::Le => a <= b,
                    Cmp::Gt => a > b,
                    Cmp::Ge => a >= b,
                }),
                _ => return Err(Unmodelled),
            },
            Expr::And(l, r) => Val::Bool(self.boolean(l)? && self.boolean(r)?),
            Expr::Or(l, r) => Val::Bool(self.boolean(l)? || self.boolean(r)?),
            Expr::Not(inner) => Val::Bool(!self.boolean(inner)?),
            Expr::In(l, r) => {
                let Val::Entity(ty, id) = self.eval(l)? else {
                    return Err(Unmodelled);
                };
                let is = |e: &Entity| e.ty == ty && e.id == id;
                match r.as_ref() {
                    Expr::Entity(e) => Val::Bool(is(e)),
                    Expr::EntitySet(list) => Val::Bool(list.iter().any(is)),
                    _ => return Err(Unmodelled),
                }
            }
        })
    }

    fn in_scope(&self, scope: &Scope, ty: &str, id: &str) -> bool {
        let is = |e: &Entity| e.ty == ty && e.id == id;
        match scope {
            Scope::All => true,
            Scope::OneOf(list) => list.iter().any(is),
            Scope::Is(t, within) => t == ty && within.as_ref().is_none_or(is),
        }
    }

    /// Whether `policy` holds for this call.
    fn holds(&self, policy: &'a NativePolicy) -> Result<bool, Unmodelled> {
        if !self.in_scope(&policy.principal, AGENT, self.principal.presenter())
            || !self.in_scope(&policy.action, ACTION, CALL)
            || !self.in_scope(&policy.resource, TOOL, self.tool.name())
        {
            return Ok(false);
        }
        for (when, body) in &policy.conditions {
            if self.boolean(body)? != *when {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Cedar's decision over `policies`, or [`NativeAnswer::AskCedar`].
    pub(crate) fn decide(&self, policies: &'a [NativePolicy]) -> NativeAnswer {
        if !self.arguments_modelled() {
            return NativeAnswer::AskCedar;
        }
        let mut permitted = false;
        let mut forbids = Vec::new();
        // Every policy is evaluated, as Cedar does: an error in any of them is Cedar's to report.
        for policy in policies {
            match self.holds(policy) {
                Ok(true) if policy.forbid => forbids.push(policy.index),
                Ok(true) => permitted = true,
                Ok(false) => {}
                Err(Unmodelled) => return NativeAnswer::AskCedar,
            }
        }
        NativeAnswer::Decided { permitted, forbids }
    }
}

/// Cedar's `==` on the values the subset models: values of different types are unequal.
fn equal(a: Val<'_>, b: Val<'_>) -> Result<bool, Unmodelled> {
    Ok(match (a, b) {
        (Val::Record(_) | Val::Set, _) | (_, Val::Record(_) | Val::Set) => return Err(Unmodelled),
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Long(x), Val::Long(y)) => x == y,
        (Val::Str(x), Val::Str(y)) => x == y,
        (Val::Entity(t1, i1), Val::Entity(t2, i2)) => t1 == t2 && i1 == i2,
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        reason = "test harness: a panic is a failed test"
    )]

    use super::*;
    use crate::intent::{IntentCheck, OutboundCheck};
    use crate::policy::{DEFAULT_POLICY, PolicyEngine};
    use crate::request::{HttpRequestInfo, Risk};
    use proptest::prelude::*;
    use serde_json::json;

    fn principal() -> Principal {
        use agentiam_test_support as world;
        let clock = world::clock(1_800_000_000);
        let issuer = world::issuer("https://broker.test", &clock);
        let agent = world::agent("payer");
        Principal::from_token(&world::verified_task_token(
            &issuer,
            "https://broker.test",
            &clock,
            &agent,
            "api",
            "payments:transfer",
        ))
    }

    #[derive(Debug, Clone)]
    struct Inputs {
        risk: Risk,
        tainted: bool,
        approved: bool,
        untrusted: bool,
        anomaly: u8,
        intent: (bool, bool, bool),
        outbound: (bool, bool),
        http: bool,
        tool: &'static str,
        arguments: Value,
    }

    fn arb_argument() -> impl Strategy<Value = Option<Value>> {
        prop_oneof![
            Just(None),
            Just(Some(Value::Null)),
            (-5i64..2000).prop_map(|n| Some(json!(n))),
            Just(Some(json!(i64::MAX))),
            Just(Some(json!(u64::MAX))),
            Just(Some(json!(12.5))),
            Just(Some(json!(0.1))),
            Just(Some(json!("5"))),
            Just(Some(json!("acme"))),
            Just(Some(json!(true))),
            Just(Some(json!([1, 2]))),
            (0i64..5).prop_map(|n| Some(json!({"level": n}))),
            Just(Some(json!({"level": "deep"}))),
        ]
    }

    fn arb_inputs() -> impl Strategy<Value = Inputs> {
        (
            prop_oneof![
                Just(Risk::Low),
                Just(Risk::Medium),
                Just(Risk::High),
                Just(Risk::Irreversible)
            ],
            any::<(bool, bool, bool)>(),
            prop_oneof![Just(0u8), Just(59), Just(60), 0u8..=255],
            any::<(bool, bool, bool)>(),
            any::<(bool, bool, bool)>(),
            prop_oneof![Just("transfer"), Just("notes")],
            (arb_argument(), arb_argument(), arb_argument()),
            prop_oneof![4 => Just(true), 1 => Just(false)],
        )
            .prop_map(
                |(
                    risk,
                    (tainted, approved, untrusted),
                    anomaly,
                    intent,
                    (od, ou, http),
                    tool,
                    (a, p, n),
                    object,
                )| {
                    let mut map = serde_json::Map::new();
                    for (k, v) in [("amount", a), ("payee", p), ("nested", n)] {
                        if let Some(v) = v {
                            map.insert(k.into(), v);
                        }
                    }
                    Inputs {
                        risk,
                        tainted,
                        approved,
                        untrusted,
                        anomaly,
                        intent,
                        outbound: (od, ou),
                        http,
                        tool,
                        arguments: if object {
                            Value::Object(map)
                        } else {
                            json!("text")
                        },
                    }
                },
            )
    }

    /// Conditions over what the guard passes to Cedar: inside the subset, outside it at run time
    /// (absent attributes, mismatched types, decimals, sets) and outside it at compile time.
    fn arb_condition() -> impl Strategy<Value = String> {
        let atom = prop_oneof![
            prop_oneof![Just("low"), Just("high"), Just("irreversible")]
                .prop_map(|r| format!("context.risk == \"{r}\"")),
            Just("context.tainted".to_owned()),
            Just("context.approved".to_owned()),
            Just("context.untrusted_arguments".to_owned()),
            Just("context.intent.declared".to_owned()),
            Just("context.intent.bound".to_owned()),
            Just("context.intent.trusted".to_owned()),
            Just("context.outbound.unlisted".to_owned()),
            (0i64..101).prop_map(|n| format!("context.anomaly_score >= {n}")),
            (0i64..3).prop_map(|n| format!("context.delegation_depth > {n}")),
            (0i64..1500).prop_map(|n| format!("context.arguments.amount > {n}")),
            (0i64..1500).prop_map(|n| format!("context.arguments.amount <= {n}")),
            Just("context.arguments.amount == \"5\"".to_owned()),
            Just("context.arguments.amount != 5".to_owned()),
            Just("context.arguments has amount".to_owned()),
            Just("context.arguments has payee".to_owned()),
            Just("context.arguments.payee == \"acme\"".to_owned()),
            Just("context.arguments.nested.level < 3".to_owned()),
            Just("context.arguments.nested has level".to_owned()),
            Just("context has task".to_owned()),
            Just("context.task == \"task-1\"".to_owned()),
            Just("context has http".to_owned()),
            Just("context.http.method == \"POST\"".to_owned()),
            Just("context.subject == \"nobody\"".to_owned()),
            Just("resource == Tool::\"transfer\"".to_owned()),
            Just("resource in [Tool::\"notes\", Tool::\"x\"]".to_owned()),
            Just("principal == Agent::\"spiffe://acme.test/agent/payer\"".to_owned()),
            Just("action == Action::\"call\"".to_owned()),
            Just("context.chain.contains(\"x\")".to_owned()),
            Just("context.intent.fixed == context.intent.free".to_owned()),
            Just("context.arguments.amount".to_owned()),
            Just("context.anomaly_score == \"60\"".to_owned()),
        ];
        atom.prop_recursive(3, 12, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} && {b})")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} || {b})")),
                inner.prop_map(|a| format!("!({a})")),
            ]
        })
    }

    fn arb_policy() -> impl Strategy<Value = String> {
        (
            any::<bool>(),
            prop_oneof![
                Just(""),
                Just(" == Agent::\"spiffe://acme.test/agent/payer\""),
                Just(" == Agent::\"spiffe://acme.test/agent/other\""),
                Just(" is Agent"),
            ],
            prop_oneof![
                Just(""),
                Just(" == Action::\"call\""),
                Just(" in [Action::\"call\"]")
            ],
            prop_oneof![
                Just(""),
                Just(" == Tool::\"transfer\""),
                Just(" in [Tool::\"notes\", Tool::\"x\"]"),
                Just(" is Tool"),
            ],
            proptest::collection::vec((any::<bool>(), arb_condition()), 0..3),
        )
            .prop_map(|(forbid, p, a, r, conditions)| {
                let mut text = format!(
                    "{} (principal{p}, action{a}, resource{r})",
                    if forbid { "forbid" } else { "permit" }
                );
                for (when, c) in conditions {
                    text.push_str(&format!(
                        " {} {{ {c} }}",
                        if when { "when" } else { "unless" }
                    ));
                }
                text + ";"
            })
    }

    fn decide(
        engine: &PolicyEngine,
        principal: &Principal,
        i: &Inputs,
    ) -> crate::policy::PolicyOutcome {
        let tool = ToolSpec::new(i.tool, i.risk);
        let intent = IntentCheck {
            declared: i.intent.0,
            trusted: i.intent.1,
            fixed: if i.intent.2 {
                vec!["amount".into()]
            } else {
                vec![]
            },
            ..IntentCheck::default()
        };
        let outbound = OutboundCheck {
            declared: i.outbound.0,
            hosts: vec![],
            unlisted: i.outbound.1,
        };
        let ctx = PolicyContext {
            arguments: &i.arguments,
            tainted: i.tainted,
            untrusted_arguments: i.untrusted,
            copied_arguments: &[],
            approved: i.approved,
            anomaly_score: i.anomaly,
            intent: &intent,
            outbound: &outbound,
            http: i.http.then_some(HttpRequestInfo {
                method: "POST",
                path: "/payments",
            }),
        };
        engine.evaluate(principal, &tool, &ctx)
    }

    #[test]
    fn the_default_policy_and_argument_rules_are_decided_natively() {
        let rules = format!(
            "{DEFAULT_POLICY}\n@id(\"cap\") forbid (principal, action, resource == Tool::\"transfer\") when {{ context.arguments.amount > 1000 }};"
        );
        let engine = PolicyEngine::new(&rules, None)
            .unwrap()
            .with_decision_cache(0);
        assert!(engine.is_native());
        let p = principal();
        let tool = ToolSpec::new("transfer", Risk::High);
        let args = json!({"amount": 1500, "currency": "USD"});
        let intent = IntentCheck::default();
        let outbound = OutboundCheck::default();
        let ctx = PolicyContext {
            arguments: &args,
            tainted: false,
            untrusted_arguments: false,
            copied_arguments: &[],
            approved: false,
            anomaly_score: 0,
            intent: &intent,
            outbound: &outbound,
            http: None,
        };
        let call = Call {
            principal: &p,
            tool: &tool,
            ctx: &ctx,
            argument_names: engine.argument_names(),
        };
        let native = engine.native_policies().unwrap();
        assert!(matches!(
            call.decide(native),
            NativeAnswer::Decided { permitted: true, ref forbids } if forbids.len() == 1
        ));
        // A policy outside the subset sends the whole set to Cedar.
        let contains = format!(
            "{DEFAULT_POLICY}\nforbid (principal, action, resource) when {{ context.chain.contains(\"x\") }};"
        );
        assert!(!PolicyEngine::new(&contains, None).unwrap().is_native());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The native path and Cedar answer every call alike: the same decision, the same
        /// policies, the same code, and the same error where Cedar errs.
        #[test]
        fn native_evaluation_always_answers_as_cedar(
            policies in proptest::collection::vec(arb_policy(), 1..5),
            calls in proptest::collection::vec(arb_inputs(), 1..6),
        ) {
            let text: String = policies
                .iter()
                .enumerate()
                .map(|(n, p)| format!("@id(\"p{n}\")\n{p}\n"))
                .collect();
            let engine = PolicyEngine::new(&text, None);
            prop_assume!(engine.is_ok(), "{}", text);
            let native = engine.unwrap().with_decision_cache(0);
            let cedar = native.clone().with_native_evaluation(false);
            let p = principal();
            for call in &calls {
                prop_assert_eq!(decide(&native, &p, call), decide(&cedar, &p, call), "{}\n{:?}", text, call);
            }
        }
    }
}
