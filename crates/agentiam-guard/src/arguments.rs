//! Tool arguments as the guard examines them: the size gate every call passes before anything
//! reads its arguments, and the one walk over their strings that every check shares.
//!
//! The gate makes "examined completely" cheap to promise: arguments nesting deeper than
//! [`MAX_ARGUMENT_DEPTH`], holding more than [`MAX_ARGUMENT_VALUES`] values or more than
//! [`MAX_ARGUMENT_BYTES`] bytes of strings (member names included) are refused with
//! `guard.input_too_large` before scopes, the content filter, the copied-text check or policy
//! read them, so none of those needs a cap of its own and none stops early.
//! The walk ([`agentiam_filter::json::visit_strings`]) is iterative, so even arguments that never passed the gate
//! (a [`crate::ContentFilter`] called directly) cannot exhaust the stack.

use std::sync::Arc;

use serde_json::Value;

pub use crate::policy::MAX_ARGUMENT_DEPTH;

/// A call's arguments, one value for every reader: the engine decides on it and the activity
/// log records it. Borrowed, or shared (an `Arc` the caller already holds) so that a sink that
/// keeps the arguments takes a reference instead of a copy.
#[derive(Debug, Clone, Copy)]
pub struct Arguments<'a> {
    value: &'a Value,
    shared: Option<&'a Arc<Value>>,
}

impl<'a> Arguments<'a> {
    /// Arguments the caller lends for the call.
    pub fn borrowed(value: &'a Value) -> Self {
        Self {
            value,
            shared: None,
        }
    }

    /// Arguments the caller shares: keeping them costs a reference count.
    pub fn shared(value: &'a Arc<Value>) -> Self {
        Self {
            value,
            shared: Some(value),
        }
    }

    /// The arguments.
    pub fn value(&self) -> &'a Value {
        self.value
    }

    /// The arguments to keep: the shared value, or a copy of a borrowed one.
    pub fn to_shared(&self) -> Arc<Value> {
        self.shared
            .cloned()
            .unwrap_or_else(|| Arc::new(self.value.clone()))
    }
}

/// Most bytes of strings (string values and member names, UTF-8) in one call's arguments.
pub const MAX_ARGUMENT_BYTES: usize = 1 << 20;
/// Most JSON values (objects, arrays, strings, numbers, booleans, nulls) in one call's arguments.
pub const MAX_ARGUMENT_VALUES: usize = 1 << 16;

/// Why arguments are too large to examine, if they are: depth, number of values or bytes of
/// strings over their caps. Walks iteratively and stops at the first cap passed.
pub(crate) fn too_large(value: &Value) -> Option<String> {
    let mut values = 0usize;
    let mut bytes = 0usize;
    let mut stack: Vec<(&Value, usize)> = vec![(value, 0)];
    while let Some((v, depth)) = stack.pop() {
        values += 1;
        if values > MAX_ARGUMENT_VALUES {
            return Some(format!(
                "arguments hold more than {MAX_ARGUMENT_VALUES} values"
            ));
        }
        if depth > MAX_ARGUMENT_DEPTH {
            return Some(format!(
                "arguments nest deeper than {MAX_ARGUMENT_DEPTH} levels"
            ));
        }
        match v {
            Value::String(s) => bytes = bytes.saturating_add(s.len()),
            Value::Array(items) => stack.extend(items.iter().map(|i| (i, depth + 1))),
            Value::Object(map) => {
                for (k, item) in map {
                    bytes = bytes.saturating_add(k.len());
                    stack.push((item, depth + 1));
                }
            }
            _ => {}
        }
        if bytes > MAX_ARGUMENT_BYTES {
            return Some(format!(
                "arguments hold more than {MAX_ARGUMENT_BYTES} bytes of strings"
            ));
        }
    }
    None
}
