//! Scopes: what a token lets an agent do, down to the arguments.
//!
//! # Grammar
//!
//! ```text
//! scope      = resource ":" action [ "{" constraint *( "," constraint ) "}" ]
//! resource   = segment *( "." segment )
//! action     = segment
//! segment    = "*" / name
//! name       = 1*( ALPHA / DIGIT / "_" / "-" )
//! constraint = name op value
//! op         = "<=" / "<" / ">=" / ">" / "="
//! value      = number / word
//! number     = [ "-" ] 1*DIGIT [ "." 1*DIGIT ]
//! word       = 1*( ALPHA / DIGIT / "_" / "-" / "." / "@" / "/" / "+" )
//! ```
//!
//! Examples: `ledger.ar:read`, `ledger.*:read`, `*:*`,
//! `payments:approve{amount<=10000,currency=USD}`.
//! A scope is at most 256 bytes and contains no whitespace, so a set of scopes travels as
//! the space-separated `scope` claim of RFC 9068.
//!
//! # Meaning
//!
//! - A `*` segment matches exactly one segment, except in last position of a resource,
//!   where it matches one or more: `ledger.*` matches `ledger.ar` and `ledger.ar.2026`, and `*` matches everything.
//! - A constraint is checked against the top-level member of the tool's arguments with that name.
//!   A missing argument fails the constraint (fail closed).
//!   A number constraint needs a JSON number; a word constraint needs a JSON string equal to it.
//! - Several constraints on one name all apply: `{amount>=1,amount<=100}` is a range.
//! - [`ScopeSet::covers`] holds when some scope matches the resource and action and all its constraints hold.
//! - [`ScopeSet::is_subset_of`] is conservative: when it says yes, every request the first set covers the
//!   second covers too (a property test checks this); it may say no for exotic equivalent sets.

use std::fmt;

use serde_json::Value;

use crate::TokenError;
use crate::error::clip;
use crate::number::ExactNumber;

/// Longest scope string accepted.
pub const MAX_SCOPE_LEN: usize = 256;
/// Most scopes in one set.
pub const MAX_SCOPES: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Segment {
    Any,
    Name(String),
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Name(n) => f.write_str(n),
        }
    }
}

/// A comparison operator in a constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `=`
    Eq,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl Op {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
        }
    }
}

/// The value side of a constraint.
#[derive(Debug, Clone, PartialEq)]
pub enum ConstraintValue {
    /// A number, kept exactly as written.
    Number(ExactNumber),
    /// A bare word.
    Word(String),
}

impl fmt::Display for ConstraintValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(n) => write!(f, "{n}"),
            Self::Word(w) => f.write_str(w),
        }
    }
}

/// One argument constraint, e.g. `amount<=10000`.
#[derive(Debug, Clone, PartialEq)]
pub struct Constraint {
    /// Argument name.
    pub name: String,
    /// Operator.
    pub op: Op,
    /// Bound or required value.
    pub value: ConstraintValue,
    /// How it was written, for display.
    text: String,
}

impl Constraint {
    /// Whether an argument value satisfies this constraint.
    fn holds_for(&self, arg: &ConstraintValue) -> bool {
        match (&self.value, arg) {
            (ConstraintValue::Number(bound), ConstraintValue::Number(v)) => match self.op {
                Op::Eq => v == bound,
                Op::Lt => v < bound,
                Op::Le => v <= bound,
                Op::Gt => v > bound,
                Op::Ge => v >= bound,
            },
            (ConstraintValue::Word(w), ConstraintValue::Word(v)) => self.op == Op::Eq && v == w,
            _ => false,
        }
    }

    /// Whether the argument `value` (JSON) satisfies this constraint.
    pub fn holds(&self, value: Option<&Value>) -> bool {
        let arg = match value {
            // Compared by its literal, exactly; a literal too long to read is refused.
            Some(Value::Number(n)) => match ExactNumber::from_json(n) {
                Ok(n) => ConstraintValue::Number(n),
                Err(_) => return false,
            },
            Some(Value::String(s)) => ConstraintValue::Word(s.clone()),
            _ => return false,
        };
        self.holds_for(&arg)
    }
}

/// One scope: a resource pattern, an action pattern and argument constraints.
#[derive(Debug, Clone, PartialEq)]
pub struct Scope {
    resource: Vec<Segment>,
    action: Segment,
    constraints: Vec<Constraint>,
}

fn invalid(scope: &str, reason: impl Into<String>) -> TokenError {
    TokenError::InvalidScope {
        scope: clip(scope),
        reason: reason.into(),
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn parse_segment(scope: &str, text: &str) -> Result<Segment, TokenError> {
    if text == "*" {
        return Ok(Segment::Any);
    }
    if text.is_empty() || !text.chars().all(is_name_char) {
        return Err(invalid(
            scope,
            format!("segment {:?} is not a name or *", clip(text)),
        ));
    }
    Ok(Segment::Name(text.to_owned()))
}

fn parse_number(text: &str) -> Option<ExactNumber> {
    // The scope grammar's numbers: an optional minus, digits, an optional fraction; no exponent.
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.contains(['e', 'E']) {
        return None;
    }
    ExactNumber::parse(text).ok()
}

fn parse_constraint(scope: &str, text: &str) -> Result<Constraint, TokenError> {
    let op_at = text.find(['<', '>', '=']).ok_or_else(|| {
        invalid(
            scope,
            format!("constraint {:?} has no operator", clip(text)),
        )
    })?;
    let name = text.get(..op_at).unwrap_or_default();
    let rest = text.get(op_at..).unwrap_or_default();
    let (op, value) = if let Some(v) = rest.strip_prefix("<=") {
        (Op::Le, v)
    } else if let Some(v) = rest.strip_prefix(">=") {
        (Op::Ge, v)
    } else if let Some(v) = rest.strip_prefix('<') {
        (Op::Lt, v)
    } else if let Some(v) = rest.strip_prefix('>') {
        (Op::Gt, v)
    } else if let Some(v) = rest.strip_prefix('=') {
        (Op::Eq, v)
    } else {
        return Err(invalid(scope, "unknown operator"));
    };
    if name.is_empty() || !name.chars().all(is_name_char) {
        return Err(invalid(
            scope,
            format!("constraint name {:?} is not a name", clip(name)),
        ));
    }
    let value = if let Some(n) = parse_number(value) {
        ConstraintValue::Number(n)
    } else if !value.is_empty()
        && value
            .chars()
            .all(|c| is_name_char(c) || matches!(c, '.' | '@' | '/' | '+'))
    {
        ConstraintValue::Word(value.to_owned())
    } else {
        return Err(invalid(
            scope,
            format!("constraint value {:?} is not a number or word", clip(value)),
        ));
    };
    if op != Op::Eq && matches!(value, ConstraintValue::Word(_)) {
        return Err(invalid(
            scope,
            "only = applies to words; <, <=, >, >= need a number",
        ));
    }
    Ok(Constraint {
        name: name.to_owned(),
        op,
        value,
        text: text.to_owned(),
    })
}

impl Scope {
    /// Parses one scope.
    ///
    /// ```
    /// use agentiam_token::Scope;
    /// let s = Scope::parse("payments:approve{amount<=10000,currency=USD}").unwrap();
    /// assert_eq!(s.to_string(), "payments:approve{amount<=10000,currency=USD}");
    /// assert_eq!(Scope::parse("payments approve").unwrap_err().code(), "scope.invalid");
    /// ```
    pub fn parse(text: &str) -> Result<Self, TokenError> {
        if text.len() > MAX_SCOPE_LEN {
            return Err(invalid(text, format!("longer than {MAX_SCOPE_LEN} bytes")));
        }
        let (head, constraints) = match text.split_once('{') {
            Some((head, tail)) => {
                let body = tail
                    .strip_suffix('}')
                    .ok_or_else(|| invalid(text, "constraints must end with }"))?;
                if body.contains(['{', '}']) {
                    return Err(invalid(text, "nested braces"));
                }
                let list = body
                    .split(',')
                    .map(|c| parse_constraint(text, c))
                    .collect::<Result<Vec<_>, _>>()?;
                (head, list)
            }
            None => (text, Vec::new()),
        };
        let (resource, action) = head
            .split_once(':')
            .ok_or_else(|| invalid(text, "expected resource:action"))?;
        if action.contains(':') {
            return Err(invalid(text, "more than one ':'"));
        }
        let resource = resource
            .split('.')
            .map(|s| parse_segment(text, s))
            .collect::<Result<Vec<_>, _>>()?;
        let action = parse_segment(text, action)?;
        Ok(Self {
            resource,
            action,
            constraints,
        })
    }

    /// The argument constraints.
    pub fn constraints(&self) -> &[Constraint] {
        &self.constraints
    }

    fn matches_resource(&self, resource: &[&str]) -> bool {
        let last = self.resource.len().saturating_sub(1);
        for (i, seg) in self.resource.iter().enumerate() {
            if i == last && *seg == Segment::Any {
                return resource.len() > last;
            }
            match (seg, resource.get(i)) {
                (_, None) => return false,
                (Segment::Any, Some(_)) => {}
                (Segment::Name(n), Some(r)) if n == r => {}
                _ => return false,
            }
        }
        resource.len() == self.resource.len()
    }

    fn matches_action(&self, action: &str) -> bool {
        match &self.action {
            Segment::Any => true,
            Segment::Name(n) => n == action,
        }
    }

    fn constraints_hold(&self, args: Option<&Value>) -> bool {
        self.constraints.iter().all(|c| {
            let arg = args
                .and_then(|a| a.as_object())
                .and_then(|o| o.get(&c.name));
            c.holds(arg)
        })
    }

    /// Whether every concrete resource this pattern matches, `other` matches too.
    fn resource_within(&self, other: &Scope) -> bool {
        let a = &self.resource;
        let b = &other.resource;
        let a_trailing = a.last() == Some(&Segment::Any);
        let b_trailing = b.last() == Some(&Segment::Any);
        let positions = if b_trailing {
            // b matches len >= |b|; a's shortest match has |a| segments.
            if a.len() < b.len() {
                return false;
            }
            b.len().saturating_sub(1)
        } else {
            if a_trailing || a.len() != b.len() {
                return false;
            }
            b.len()
        };
        (0..positions).all(|i| match (a.get(i), b.get(i)) {
            (_, Some(Segment::Any)) => true,
            (Some(Segment::Name(x)), Some(Segment::Name(y))) => x == y,
            _ => false,
        })
    }

    /// Whether this scope's constraints imply `required` for every argument value.
    fn implies(&self, required: &Constraint) -> bool {
        let mine: Vec<&Constraint> = self
            .constraints
            .iter()
            .filter(|c| c.name == required.name)
            .collect();
        // A fixed value: the constraint holds for all allowed arguments iff it holds for that value.
        if let Some(eq) = mine.iter().find(|c| c.op == Op::Eq) {
            // If the fixed value breaks another of my constraints, I allow no value at all,
            // and an empty set implies anything.
            if !mine.iter().all(|c| c.holds_for(&eq.value)) {
                return true;
            }
            return required.holds_for(&eq.value);
        }
        let ConstraintValue::Number(bound) = &required.value else {
            return false;
        };
        fn numeric<'a>(c: &&'a Constraint) -> Option<(Op, &'a ExactNumber)> {
            match &c.value {
                ConstraintValue::Number(v) => Some((c.op, v)),
                ConstraintValue::Word(_) => None,
            }
        }
        match required.op {
            Op::Eq => false,
            Op::Le | Op::Lt => {
                mine.iter()
                    .filter_map(numeric)
                    .any(|(op, v)| match (op, required.op) {
                        (Op::Le, Op::Le) | (Op::Lt, Op::Le) | (Op::Lt, Op::Lt) => v <= bound,
                        (Op::Le, Op::Lt) => v < bound,
                        _ => false,
                    })
            }
            Op::Ge | Op::Gt => {
                mine.iter()
                    .filter_map(numeric)
                    .any(|(op, v)| match (op, required.op) {
                        (Op::Ge, Op::Ge) | (Op::Gt, Op::Ge) | (Op::Gt, Op::Gt) => v >= bound,
                        (Op::Ge, Op::Gt) => v > bound,
                        _ => false,
                    })
            }
        }
    }

    /// Whether this scope allows nothing that `other` does not.
    pub fn is_within(&self, other: &Scope) -> bool {
        let action_ok = match (&self.action, &other.action) {
            (_, Segment::Any) => true,
            (Segment::Name(a), Segment::Name(b)) => a == b,
            (Segment::Any, Segment::Name(_)) => false,
        };
        action_ok
            && self.resource_within(other)
            && other.constraints.iter().all(|c| self.implies(c))
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.resource.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{seg}")?;
        }
        write!(f, ":{}", self.action)?;
        if !self.constraints.is_empty() {
            f.write_str("{")?;
            for (i, c) in self.constraints.iter().enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                f.write_str(&c.text)?;
            }
            f.write_str("}")?;
        }
        Ok(())
    }
}

/// A concrete action to check against a [`ScopeSet`]: a resource, an action and the call's arguments.
#[derive(Debug, Clone, Copy)]
pub struct ScopeRequest<'a> {
    /// Dotted resource name, e.g. `payments` or `ledger.ar`.
    pub resource: &'a str,
    /// Action name, e.g. `approve`.
    pub action: &'a str,
    /// The call's arguments (a JSON object), if any.
    pub args: Option<&'a Value>,
}

impl<'a> ScopeRequest<'a> {
    /// A request without arguments.
    pub fn new(resource: &'a str, action: &'a str) -> Self {
        Self {
            resource,
            action,
            args: None,
        }
    }

    /// Adds the call's arguments.
    pub fn with_args(mut self, args: &'a Value) -> Self {
        self.args = Some(args);
        self
    }
}

/// Why a [`ScopeSet`] does not cover a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeDenial {
    /// No scope names this resource and action (`guard.scope_missing`).
    #[error("no scope allows {0}")]
    Missing(String),
    /// A scope names it, but the arguments break its constraints (`guard.constraint_violated`).
    #[error("arguments violate the constraints of {0}")]
    ConstraintViolated(String),
}

impl ScopeDenial {
    /// The stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing(_) => crate::codes::SCOPE_MISSING,
            Self::ConstraintViolated(_) => crate::codes::CONSTRAINT_VIOLATED,
        }
    }
}

impl agentiam_codes::ReasonCode for ScopeDenial {
    fn code(&self) -> &str {
        ScopeDenial::code(self)
    }
}

/// A set of scopes, as carried in a token's `scope` claim.
///
/// ```
/// use agentiam_token::{ScopeSet, ScopeRequest};
/// use serde_json::json;
/// let granted = ScopeSet::parse("ledger.*:read payments:approve{amount<=10000,currency=USD}").unwrap();
/// assert!(granted.covers(&ScopeRequest::new("ledger.ar", "read")));
/// let ok = json!({"amount": 9000, "currency": "USD"});
/// assert!(granted.covers(&ScopeRequest::new("payments", "approve").with_args(&ok)));
/// let too_much = json!({"amount": 20000, "currency": "USD"});
/// let denial = granted.check(&ScopeRequest::new("payments", "approve").with_args(&too_much)).unwrap_err();
/// assert_eq!(denial.code(), "guard.constraint_violated");
/// let narrower = ScopeSet::parse("ledger.ar:read payments:approve{amount<=500,currency=USD}").unwrap();
/// assert!(narrower.is_subset_of(&granted));
/// assert!(!granted.is_subset_of(&narrower));
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScopeSet {
    scopes: Vec<Scope>,
}

impl ScopeSet {
    /// The empty set: allows nothing.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Parses a space-separated list of scopes (RFC 6749 `scope` syntax).
    pub fn parse(text: &str) -> Result<Self, TokenError> {
        let scopes = text
            .split([' ', '\t', '\n', '\r'])
            .filter(|s| !s.is_empty())
            .map(Scope::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_scopes(scopes)
    }

    /// A set of already parsed scopes.
    pub fn from_scopes(scopes: Vec<Scope>) -> Result<Self, TokenError> {
        if scopes.len() > MAX_SCOPES {
            return Err(invalid(
                "<scope set>",
                format!("more than {MAX_SCOPES} scopes"),
            ));
        }
        Ok(Self { scopes })
    }

    /// The scopes.
    pub fn scopes(&self) -> &[Scope] {
        &self.scopes
    }

    /// Whether the set allows nothing.
    pub fn is_empty(&self) -> bool {
        self.scopes.is_empty()
    }

    /// Checks a request: `Ok` if some scope covers it, otherwise why not.
    pub fn check(&self, request: &ScopeRequest<'_>) -> Result<(), ScopeDenial> {
        let resource: Vec<&str> = request.resource.split('.').collect();
        let mut named = None;
        for scope in &self.scopes {
            if scope.matches_action(request.action) && scope.matches_resource(&resource) {
                if scope.constraints_hold(request.args) {
                    return Ok(());
                }
                named.get_or_insert(scope);
            }
        }
        let what = format!("{}:{}", clip(request.resource), clip(request.action));
        Err(match named {
            Some(scope) => ScopeDenial::ConstraintViolated(scope.to_string()),
            None => ScopeDenial::Missing(what),
        })
    }

    /// Whether some scope covers the request.
    pub fn covers(&self, request: &ScopeRequest<'_>) -> bool {
        self.check(request).is_ok()
    }

    /// Whether every scope here lies within some scope of `other`:
    /// then this set allows nothing that `other` does not.
    pub fn is_subset_of(&self, other: &ScopeSet) -> bool {
        self.scopes
            .iter()
            .all(|mine| other.scopes.iter().any(|theirs| mine.is_within(theirs)))
    }

    /// The first scope that lies outside `other`, if any.
    pub fn first_outside<'a>(&'a self, other: &ScopeSet) -> Option<&'a Scope> {
        self.scopes
            .iter()
            .find(|mine| !other.scopes.iter().any(|theirs| mine.is_within(theirs)))
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.scopes.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{s}")?;
        }
        Ok(())
    }
}

impl serde::Serialize for ScopeSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ScopeSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn set(s: &str) -> ScopeSet {
        ScopeSet::parse(s).unwrap()
    }

    fn check(granted: &str, resource: &str, action: &str, args: Value, expected: Result<(), &str>) {
        let got = set(granted).check(&ScopeRequest::new(resource, action).with_args(&args));
        assert_eq!(
            got.map_err(|d| d.code()),
            expected,
            "{granted} vs {resource}:{action} {args}"
        );
    }

    #[test]
    fn covers_examples() {
        let none = json!({});
        check("ledger.ar:read", "ledger.ar", "read", none.clone(), Ok(()));
        check(
            "ledger.ar:read",
            "ledger.ar",
            "write",
            none.clone(),
            Err("guard.scope_missing"),
        );
        check(
            "ledger.ar:read",
            "ledger",
            "read",
            none.clone(),
            Err("guard.scope_missing"),
        );
        check(
            "ledger.ar:read",
            "ledger.ar.x",
            "read",
            none.clone(),
            Err("guard.scope_missing"),
        );
        check("ledger.*:read", "ledger.ar", "read", none.clone(), Ok(()));
        check(
            "ledger.*:read",
            "ledger.ar.2026",
            "read",
            none.clone(),
            Ok(()),
        );
        check(
            "ledger.*:read",
            "ledger",
            "read",
            none.clone(),
            Err("guard.scope_missing"),
        );
        check("*.ar:read", "ledger.ar", "read", none.clone(), Ok(()));
        check(
            "*.ar:read",
            "ledger.ap",
            "read",
            none.clone(),
            Err("guard.scope_missing"),
        );
        check("*:*", "anything.at.all", "delete", none.clone(), Ok(()));
        let p = "payments:approve{amount<=10000,currency=USD}";
        check(
            p,
            "payments",
            "approve",
            json!({"amount": 10000, "currency": "USD"}),
            Ok(()),
        );
        check(
            p,
            "payments",
            "approve",
            json!({"amount": 10000.5, "currency": "USD"}),
            Err("guard.constraint_violated"),
        );
        check(
            p,
            "payments",
            "approve",
            json!({"amount": 5, "currency": "EUR"}),
            Err("guard.constraint_violated"),
        );
        check(
            p,
            "payments",
            "approve",
            json!({"amount": "5", "currency": "USD"}),
            Err("guard.constraint_violated"),
        );
        check(
            p,
            "payments",
            "approve",
            json!({"currency": "USD"}),
            Err("guard.constraint_violated"),
        );
        check(
            p,
            "payments",
            "approve",
            json!([1, 2]),
            Err("guard.constraint_violated"),
        );
        check(
            "x:y{n>=1,n<=3}",
            "x",
            "y",
            json!({"n": 0}),
            Err("guard.constraint_violated"),
        );
        check("x:y{n>=1,n<=3}", "x", "y", json!({"n": 2}), Ok(()));
    }

    #[test]
    fn parse_rejects_bad_grammar() {
        for bad in [
            "",
            "read",
            "a:",
            ":a",
            "a:b:c",
            "a..b:c",
            "a b:c",
            "a:b{",
            "a:b{}",
            "a:b{x}",
            "a:b{x<}",
            "a:b{x<USD}",
            "a:b{x=1}{y=2}",
            "a:b{x=1,}",
            "a:b{x==1}",
            "é:b",
            "a:b{x=$}",
            "a:b{x=1}z",
        ] {
            let r = Scope::parse(bad);
            assert_eq!(
                r.as_ref().map_err(TokenError::code).err(),
                Some("scope.invalid"),
                "{bad:?} -> {r:?}"
            );
        }
        assert!(Scope::parse(&format!("a:{}", "b".repeat(300))).is_err());
    }

    #[test]
    fn display_round_trips() {
        for s in ["a.b:c", "*:*", "a.*:r{x<=5,y=USD,z>-1.5}"] {
            assert_eq!(Scope::parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn subset_examples() {
        let yes = [
            ("a.b:r", "a.b:r"),
            ("a.b:r", "a.*:r"),
            ("a.b.c:r", "a.*:r"),
            ("a.*:r", "*:*"),
            ("a.b:r", "*.b:r"),
            ("a.b:r{x<=5}", "a.b:r"),
            ("a.b:r{x<=5}", "a.b:r{x<=10}"),
            ("a.b:r{x<5}", "a.b:r{x<=5}"),
            ("a.b:r{x<5}", "a.b:r{x<5}"),
            ("a.b:r{x=3}", "a.b:r{x<=10,x>=1}"),
            ("a.b:r{x=USD}", "a.b:r{x=USD}"),
            ("", "a:b"),
        ];
        for (a, b) in yes {
            assert!(set(a).is_subset_of(&set(b)), "{a} within {b}");
        }
        let no = [
            ("a.*:r", "a.b:r"),
            ("a.*:r", "a.*.c:r"),
            ("a:r", "a.*:r"),
            ("a.b:*", "a.b:r"),
            ("a.b:r", "a.b:r{x<=5}"),
            ("a.b:r{x<=10}", "a.b:r{x<=5}"),
            ("a.b:r{x<=5}", "a.b:r{x<5}"),
            ("a.b:r{x=EUR}", "a.b:r{x=USD}"),
            ("a.b:r{y<=1}", "a.b:r{x<=1}"),
            ("*.b:r", "a.b:r"),
        ];
        for (a, b) in no {
            assert!(!set(a).is_subset_of(&set(b)), "{a} not within {b}");
        }
    }

    fn arb_segment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("*".to_owned()),
            Just("a".to_owned()),
            Just("b".to_owned())
        ]
    }

    fn arb_constraint() -> impl Strategy<Value = String> {
        (
            prop_oneof![Just("x"), Just("y")],
            prop_oneof![Just("<="), Just("<"), Just(">="), Just(">"), Just("=")],
            prop_oneof![Just("0"), Just("5"), Just("10"), Just("USD")],
        )
            .prop_filter_map("words only with =", |(n, op, v)| {
                (op == "=" || v != "USD").then(|| format!("{n}{op}{v}"))
            })
    }

    prop_compose! {
        fn arb_scope()(
            resource in proptest::collection::vec(arb_segment(), 1..4),
            action in prop_oneof![Just("*"), Just("r"), Just("w")],
            constraints in proptest::collection::vec(arb_constraint(), 0..3),
        ) -> String {
            let mut s = format!("{}:{}", resource.join("."), action);
            if !constraints.is_empty() {
                s.push('{');
                s.push_str(&constraints.join(","));
                s.push('}');
            }
            s
        }
    }

    fn arb_set() -> impl Strategy<Value = ScopeSet> {
        proptest::collection::vec(arb_scope(), 0..4).prop_map(|v| set(&v.join(" ")))
    }

    fn arb_request() -> impl Strategy<Value = (String, String, Value)> {
        (
            proptest::collection::vec(prop_oneof![Just("a"), Just("b"), Just("c")], 1..4),
            prop_oneof![Just("r"), Just("w"), Just("z")],
            proptest::option::of(prop_oneof![
                Just(json!(-1)),
                Just(json!(0)),
                Just(json!(4.5)),
                Just(json!(5)),
                Just(json!(7)),
                Just(json!(10)),
                Just(json!(11)),
                Just(json!("USD")),
                Just(json!("EUR"))
            ]),
            proptest::option::of(prop_oneof![
                Just(json!(0)),
                Just(json!(5)),
                Just(json!(10)),
                Just(json!("USD"))
            ]),
        )
            .prop_map(|(r, a, x, y)| {
                let mut args = serde_json::Map::new();
                if let Some(x) = x {
                    args.insert("x".into(), x);
                }
                if let Some(y) = y {
                    args.insert("y".into(), y);
                }
                (r.join("."), a.to_owned(), Value::Object(args))
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// covers is monotone: a subset never covers a request its superset does not.
        #[test]
        fn subset_never_covers_more(a in arb_set(), b in arb_set(), req in arb_request()) {
            let (resource, action, args) = req;
            let request = ScopeRequest::new(&resource, &action).with_args(&args);
            if a.is_subset_of(&b) && a.covers(&request) {
                prop_assert!(b.covers(&request), "{} within {} but only it covers {}:{} {}", a, b, resource, action, args);
            }
        }

        /// Subset is reflexive.
        #[test]
        fn subset_is_reflexive(a in arb_set()) {
            prop_assert!(a.is_subset_of(&a));
        }

        /// Subset is transitive.
        #[test]
        fn subset_is_transitive(a in arb_set(), b in arb_set(), c in arb_set()) {
            if a.is_subset_of(&b) && b.is_subset_of(&c) {
                prop_assert!(a.is_subset_of(&c), "{} <= {} <= {}", a, b, c);
            }
        }

        /// Mutual subsets cover exactly the same requests (antisymmetry up to meaning).
        #[test]
        fn mutual_subsets_agree(a in arb_set(), b in arb_set(), req in arb_request()) {
            let (resource, action, args) = req;
            let request = ScopeRequest::new(&resource, &action).with_args(&args);
            if a.is_subset_of(&b) && b.is_subset_of(&a) {
                prop_assert_eq!(a.covers(&request), b.covers(&request));
            }
        }

        /// Parsing never panics on arbitrary text, and what parses prints back to itself.
        #[test]
        fn parse_total(s in "\\PC{0,40}") {
            if let Ok(scope) = Scope::parse(&s) {
                prop_assert_eq!(Scope::parse(&scope.to_string()).ok(), Some(scope));
            }
        }
    }
}
