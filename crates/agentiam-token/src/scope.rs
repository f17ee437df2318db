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
//! constraint = name op value / name "=" set
//! op         = "<=" / "<" / ">=" / ">" / "="
//! value      = number / word / quoted
//! set        = "[" value *( "," value ) "]"
//! number     = [ "-" ] 1*DIGIT [ "." 1*DIGIT ]
//! word       = 1*( ALPHA / DIGIT / "_" / "-" / "." / "@" / "/" / "+" )
//! quoted     = "'" *( qchar / "%" HEXDIG HEXDIG ) "'"
//! qchar      = %x21 / %x23-24 / %x26 / %x28-5B / %x5D-7E
//! ```
//!
//! Examples: `ledger.ar:read`, `ledger.*:read`, `*:*`,
//! `payments:approve{amount<=10000,currency=USD}`,
//! `payments:send{recipient='DE89%203704%200044%200532%200130%2000',amount<=120}`,
//! `mail:send{to=['alice@acme.example','bob@acme.example']}`.
//!
//! A quoted string holds any text: the bytes of its UTF-8 that are not a `qchar` (space, `"`,
//! `%`, `'`, `\`, control characters, anything outside ASCII) are written `%XX`, and the decoded
//! bytes must be UTF-8. [`quote`] writes one. So every scope stays an RFC 6749 `scope-token`
//! (printable ASCII without space, `"` or `\`), which stock OAuth clients and servers pass
//! through untouched.
//! A scope is at most [`MAX_SCOPE_LEN`] bytes and contains no whitespace, so a set of scopes
//! travels as the space-separated `scope` claim of RFC 9068.
//!
//! # Meaning
//!
//! - A `*` segment matches exactly one segment, except in last position of a resource,
//!   where it matches one or more: `ledger.*` matches `ledger.ar` and `ledger.ar.2026`, and `*` matches everything.
//! - A constraint is checked against the top-level member of the tool's arguments with that name.
//!   A missing argument fails the constraint (fail closed).
//!   A number constraint needs a JSON number; a word or quoted constraint needs a JSON string
//!   equal to it, character for character.
//! - A set (`to=['a@x.example','b@x.example']`) holds for a number or string equal to one of its
//!   values, and for a non-empty JSON array (at most [`MAX_SET_ARGUMENT_ITEMS`] items) whose every
//!   item is; no other constraint accepts an array.
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
pub const MAX_SCOPE_LEN: usize = 1024;
/// Most items in an array argument a set constraint examines; a longer array fails it.
pub const MAX_SET_ARGUMENT_ITEMS: usize = 256;
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
    /// A string: a bare word, or a quoted string decoded.
    Word(String),
    /// A set of numbers and strings (`name=[...]`): the argument is one of them.
    Set(Vec<ConstraintValue>),
}

impl fmt::Display for ConstraintValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(n) => write!(f, "{n}"),
            Self::Word(w) if is_bare_word(w) => f.write_str(w),
            Self::Word(w) => f.write_str(&quote(w)),
            Self::Set(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
        }
    }
}

fn is_bare_word(w: &str) -> bool {
    !w.is_empty()
        && w.chars()
            .all(|c| is_name_char(c) || matches!(c, '.' | '@' | '/' | '+'))
        && parse_number(w).is_none()
}

/// Whether `b` may stand unencoded inside a quoted string.
fn is_qchar(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x24 | 0x26 | 0x28..=0x5B | 0x5D..=0x7E)
}

/// Writes `text` as a quoted scope value, `%XX`-encoding every byte that is not a `qchar`.
///
/// ```
/// use agentiam_token::{quote, ScopeSet, ScopeRequest};
/// let iban = "DE89 3704 0044 0532 0130 00";
/// let scope = format!("payments:send{{recipient={},amount<=120}}", quote(iban));
/// assert_eq!(scope, "payments:send{recipient='DE89%203704%200044%200532%200130%2000',amount<=120}");
/// let args = serde_json::json!({"recipient": iban, "amount": 99});
/// assert!(ScopeSet::parse(&scope).unwrap().covers(&ScopeRequest::new("payments", "send").with_args(&args)));
/// ```
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for b in text.bytes() {
        if is_qchar(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out.push('\'');
    out
}

/// Decodes the inside of a quoted value; `None` when it is not well formed.
fn unquote(inner: &str) -> Option<String> {
    let bytes = inner.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = inner.get(i + 1..i + 3)?;
            if !hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else if is_qchar(b) {
            out.push(b);
            i += 1;
        } else {
            return None;
        }
    }
    String::from_utf8(out).ok()
}

/// Whether two scalar values are the same number or the same string.
fn same_value(a: &ConstraintValue, b: &ConstraintValue) -> bool {
    match (a, b) {
        (ConstraintValue::Number(x), ConstraintValue::Number(y)) => x == y,
        (ConstraintValue::Word(x), ConstraintValue::Word(y)) => x == y,
        _ => false,
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
    /// Whether a scalar argument value (a number or a string) satisfies this constraint.
    fn holds_for(&self, arg: &ConstraintValue) -> bool {
        match (&self.value, arg) {
            (_, ConstraintValue::Set(_)) => false,
            (ConstraintValue::Number(bound), ConstraintValue::Number(v)) => match self.op {
                Op::Eq => v == bound,
                Op::Lt => v < bound,
                Op::Le => v <= bound,
                Op::Gt => v > bound,
                Op::Ge => v >= bound,
            },
            (ConstraintValue::Word(w), ConstraintValue::Word(v)) => self.op == Op::Eq && v == w,
            (ConstraintValue::Set(items), v) => {
                self.op == Op::Eq && items.iter().any(|item| same_value(item, v))
            }
            _ => false,
        }
    }

    /// The scalar values this constraint allows, when it fixes them (`=` or a set).
    fn fixed_values(&self) -> Option<&[ConstraintValue]> {
        match (&self.value, self.op) {
            (ConstraintValue::Set(items), Op::Eq) => Some(items),
            (v, Op::Eq) => Some(std::slice::from_ref(v)),
            _ => None,
        }
    }

    /// Whether the argument `value` (JSON) satisfies this constraint.
    pub fn holds(&self, value: Option<&Value>) -> bool {
        fn scalar(value: &Value) -> Option<ConstraintValue> {
            match value {
                // Compared by its literal, exactly; a literal too long to read is refused.
                Value::Number(n) => ExactNumber::from_json(n).ok().map(ConstraintValue::Number),
                Value::String(s) => Some(ConstraintValue::Word(s.clone())),
                _ => None,
            }
        }
        match value {
            // Only a set accepts an array, and only a non-empty one whose every item it holds.
            Some(Value::Array(items)) => {
                matches!(self.value, ConstraintValue::Set(_))
                    && !items.is_empty()
                    && items.len() <= MAX_SET_ARGUMENT_ITEMS
                    && items
                        .iter()
                        .all(|item| scalar(item).is_some_and(|v| self.holds_for(&v)))
            }
            Some(v) => scalar(v).is_some_and(|v| self.holds_for(&v)),
            None => false,
        }
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

/// A number, a bare word or a quoted string.
fn parse_scalar(scope: &str, value: &str) -> Result<ConstraintValue, TokenError> {
    if let Some(n) = parse_number(value) {
        return Ok(ConstraintValue::Number(n));
    }
    if let Some(inner) = value
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .filter(|_| value.len() >= 2)
    {
        return unquote(inner).map(ConstraintValue::Word).ok_or_else(|| {
            invalid(
                scope,
                format!(
                    "quoted value {:?} is not %XX-encoded UTF-8 (see the grammar)",
                    clip(value)
                ),
            )
        });
    }
    if !value.is_empty()
        && value
            .chars()
            .all(|c| is_name_char(c) || matches!(c, '.' | '@' | '/' | '+'))
    {
        return Ok(ConstraintValue::Word(value.to_owned()));
    }
    Err(invalid(
        scope,
        format!(
            "constraint value {:?} is not a number, word, quoted string or set",
            clip(value)
        ),
    ))
}

/// Splits `text` at the commas outside quotes and brackets; `None` when a quote or bracket is
/// left open, a bracket closes one never opened, or a brace appears outside quotes.
fn split_outside_quotes(text: &str) -> Option<Vec<&str>> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            _ if quoted => {}
            '[' => depth += 1,
            ']' => depth = depth.checked_sub(1)?,
            '{' | '}' => return None,
            ',' if depth == 0 => {
                parts.push(text.get(start..i)?);
                start = i + 1;
            }
            _ => {}
        }
    }
    if quoted || depth != 0 {
        return None;
    }
    parts.push(text.get(start..)?);
    Some(parts)
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
    let value = if let Some(list) = value.strip_prefix('[') {
        let list = list
            .strip_suffix(']')
            .ok_or_else(|| invalid(scope, "a set must end with ]"))?;
        let items = split_outside_quotes(list)
            .ok_or_else(|| invalid(scope, "unbalanced quotes or brackets in a set"))?
            .into_iter()
            .map(|item| parse_scalar(scope, item))
            .collect::<Result<Vec<_>, _>>()?;
        if op != Op::Eq {
            return Err(invalid(scope, "a set needs =; <, <=, >, >= need a number"));
        }
        ConstraintValue::Set(items)
    } else {
        parse_scalar(scope, value)?
    };
    if op != Op::Eq && matches!(value, ConstraintValue::Word(_)) {
        return Err(invalid(
            scope,
            "only = applies to strings; <, <=, >, >= need a number",
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
                let list = split_outside_quotes(body)
                    .ok_or_else(|| {
                        invalid(text, "nested braces, or an unbalanced quote or bracket")
                    })?
                    .into_iter()
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

    /// The arguments this scope constrains (to a value, a set or a range): a call it covers
    /// passes them only within what the scope says.
    pub fn constrained_arguments(&self) -> impl Iterator<Item = &str> {
        self.constraints.iter().map(|c| c.name.as_str())
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
        // Fixed values (`=` or a set): the allowed scalars are those of one fixing constraint
        // that every constraint of mine holds for (an empty list allows nothing, which implies
        // anything). Arrays are allowed too when every constraint of mine is a set, with items
        // from that list; only a set holds for an array, so then `required` must be a set.
        if let Some(fixed) = mine.iter().find_map(|c| c.fixed_values()) {
            let allowed: Vec<&ConstraintValue> = fixed
                .iter()
                .filter(|v| mine.iter().all(|c| c.holds_for(v)))
                .collect();
            let arrays_allowed = !allowed.is_empty()
                && mine
                    .iter()
                    .all(|c| matches!(c.value, ConstraintValue::Set(_)));
            return allowed.iter().all(|v| required.holds_for(v))
                && (!arrays_allowed || matches!(required.value, ConstraintValue::Set(_)));
        }
        let ConstraintValue::Number(bound) = &required.value else {
            return false;
        };
        fn numeric<'a>(c: &&'a Constraint) -> Option<(Op, &'a ExactNumber)> {
            match &c.value {
                ConstraintValue::Number(v) => Some((c.op, v)),
                ConstraintValue::Word(_) | ConstraintValue::Set(_) => None,
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

    /// Every scope of the set that covers the request (resource, action and constraints).
    pub fn covering(&self, request: &ScopeRequest<'_>) -> Vec<&Scope> {
        let resource: Vec<&str> = request.resource.split('.').collect();
        self.scopes
            .iter()
            .filter(|scope| {
                scope.matches_action(request.action)
                    && scope.matches_resource(&resource)
                    && scope.constraints_hold(request.args)
            })
            .collect()
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
        let iban = "pay:send{to='DE89%203704%200044%200532%200130%2000',amount<=120}";
        check(
            iban,
            "pay",
            "send",
            json!({"to": "DE89 3704 0044 0532 0130 00", "amount": 120}),
            Ok(()),
        );
        check(
            iban,
            "pay",
            "send",
            json!({"to": "DE89370400440532013000", "amount": 1}),
            Err("guard.constraint_violated"),
        );
        let mail = "mail:send{to=['alice@acme.example','bob@acme.example']}";
        for ok in [
            json!({"to": "alice@acme.example"}),
            json!({"to": ["bob@acme.example"]}),
            json!({"to": ["bob@acme.example", "alice@acme.example"]}),
        ] {
            check(mail, "mail", "send", ok, Ok(()));
        }
        for bad in [
            json!({"to": "eve@evil.example"}),
            json!({"to": ["alice@acme.example", "eve@evil.example"]}),
            json!({"to": []}),
            json!({"to": [["alice@acme.example"]]}),
            json!({"to": {"alice@acme.example": 1}}),
            json!({}),
        ] {
            check(mail, "mail", "send", bad, Err("guard.constraint_violated"));
        }
        let too_many: Vec<&str> = vec!["alice@acme.example"; MAX_SET_ARGUMENT_ITEMS + 1];
        check(
            mail,
            "mail",
            "send",
            json!({ "to": too_many }),
            Err("guard.constraint_violated"),
        );
        // Equal numbers match whatever their spelling; a string never matches a number.
        check("a:b{n=[1.50,2]}", "a", "b", json!({"n": 1.5}), Ok(()));
        check(
            "a:b{n=[1.50,2]}",
            "a",
            "b",
            json!({"n": "2"}),
            Err("guard.constraint_violated"),
        );
        check(
            "a:b{x='%E2%82%AC 5'}".replace(' ', "%20").as_str(),
            "a",
            "b",
            json!({"x": "€ 5"}),
            Ok(()),
        );
    }

    #[test]
    fn quote_round_trips_any_text() {
        for text in [
            "",
            "plain",
            "a b",
            "it's 100%",
            "\"quoted\" \\ back",
            "€ ünï 字",
            "a,b}]{[",
        ] {
            let scope = format!("a:b{{x={}}}", quote(text));
            assert!(
                scope
                    .bytes()
                    .all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\'),
                "{scope}"
            );
            let parsed = Scope::parse(&scope).unwrap();
            assert_eq!(
                parsed.constraints()[0].value,
                ConstraintValue::Word(text.to_owned())
            );
            assert!(parsed.constraints()[0].holds(Some(&json!(text))));
            assert_eq!(Scope::parse(&parsed.to_string()).unwrap(), parsed);
        }
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
            "a:b{x='unterminated}",
            "a:b{x='a b'}",
            "a:b{x='a\"b'}",
            "a:b{x='%zz'}",
            "a:b{x='%4'}",
            "a:b{x='%FF'}",
            "a:b{x<'5'}",
            "a:b{x=[]}",
            "a:b{x=[1,]}",
            "a:b{x=[1}",
            "a:b{x=1]}",
            "a:b{x<=[1,2]}",
            "a:b{x=[[1]]}",
            "a:b{x=[a b]}",
            "a:b{x={}}",
        ] {
            let r = Scope::parse(bad);
            assert_eq!(
                r.as_ref().map_err(TokenError::code).err(),
                Some("scope.invalid"),
                "{bad:?} -> {r:?}"
            );
        }
        assert!(Scope::parse(&format!("a:{}", "b".repeat(MAX_SCOPE_LEN))).is_err());
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "a.b:c",
            "*:*",
            "a.*:r{x<=5,y=USD,z>-1.5}",
            "a:b{to=['a@x.example',5,USD],n='%27,%7D'}",
        ] {
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
            ("a.b:r{x='USD'}", "a.b:r{x=USD}"),
            ("a.b:r{x=USD}", "a.b:r{x=[USD,EUR]}"),
            ("a.b:r{x=[USD]}", "a.b:r{x=[EUR,USD]}"),
            ("a.b:r{x=[1,3],x>=0}", "a.b:r{x<=3}"),
            ("a.b:r{x=[1,3],x<=1}", "a.b:r{x=1}"),
            ("a.b:r{x=[1,3],x=[3,4]}", "a.b:r{x=[3]}"),
            ("a.b:r{x=5,x=6}", "a.b:r{x=7}"),
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
            ("a.b:r{x=[USD,EUR]}", "a.b:r{x=USD}"),
            ("a.b:r{x=[1,3]}", "a.b:r{x<=2}"),
            ("a.b:r{x<=3}", "a.b:r{x=[1,2,3]}"),
            // A set allows arrays of its values, which `=` and bounds never accept.
            ("a.b:r{x=[USD]}", "a.b:r{x=USD}"),
            ("a.b:r{x=[1]}", "a.b:r{x<=1}"),
            ("a.b:r{x='USD%20'}", "a.b:r{x=USD}"),
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
            prop_oneof![
                Just("0"),
                Just("5"),
                Just("10"),
                Just("USD"),
                Just("'USD'"),
                Just("'U%20S'"),
                Just("[5]"),
                Just("[0,5]"),
                Just("[USD,10]"),
                Just("[USD,'U%20S']"),
            ],
        )
            .prop_filter_map("strings and sets only with =", |(n, op, v)| {
                (op == "=" || v.parse::<i64>().is_ok()).then(|| format!("{n}{op}{v}"))
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
                Just(json!("EUR")),
                Just(json!("U S")),
                Just(json!(["USD"])),
                Just(json!([5, "USD"])),
                Just(json!([0, 5])),
                Just(json!([]))
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

        /// Any text quoted is a valid scope value that holds for exactly that string.
        #[test]
        fn quote_holds_exactly_its_text(text in "\\PC{0,30}", other in "\\PC{0,30}") {
            let scope = Scope::parse(&format!("a:b{{x={}}}", quote(&text)));
            if quote(&text).len() + 6 <= MAX_SCOPE_LEN {
                let scope = scope.unwrap();
                prop_assert!(scope.constraints()[0].holds(Some(&json!(text))));
                prop_assert_eq!(scope.constraints()[0].holds(Some(&json!(other))), other == text);
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
