//! Tool arguments as the guard examines them: the size gate every call passes before anything
//! reads its arguments, and the one walk over their strings that every check shares.
//!
//! The gate makes "examined completely" cheap to promise: arguments nesting deeper than
//! [`MAX_ARGUMENT_DEPTH`], holding more than [`MAX_ARGUMENT_VALUES`] values or more than
//! [`MAX_ARGUMENT_BYTES`] bytes of strings (member names included) are refused with
//! `guard.input_too_large` before scopes, the content filter, the copied-text check or policy
//! read them, so none of those needs a cap of its own and none stops early.
//! The walk ([`visit_strings`]) is iterative, so even arguments that never passed the gate
//! (a [`crate::ContentFilter`] called directly) cannot exhaust the stack.

use std::ops::ControlFlow;

use serde_json::Value;

use crate::policy::MAX_ARGUMENT_DEPTH;

/// Most bytes of strings (string values and member names, UTF-8) in one call's arguments.
pub const MAX_ARGUMENT_BYTES: usize = 1 << 20;
/// Most JSON values (objects, arrays, strings, numbers, booleans, nulls) in one call's arguments.
pub const MAX_ARGUMENT_VALUES: usize = 1 << 16;

/// One step of the path from the arguments to a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Segment<'a> {
    /// An object member.
    Key(&'a str),
    /// An array element.
    Index(usize),
}

/// A path as the guard reports it: `to`, `items[2].note`; `(arguments)` for the root.
pub(crate) fn path_text(path: &[Segment<'_>]) -> String {
    if path.is_empty() {
        return "(arguments)".to_owned();
    }
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    out
}

enum Frame<'a> {
    Array(std::iter::Enumerate<std::slice::Iter<'a, Value>>),
    Object(serde_json::map::Iter<'a>),
}

/// Calls `visit` with every string in `value`, member names included, in document order,
/// with the path to it (a member name's path is its member's). Stops when `visit` breaks.
/// Iterative: any nesting is walked without recursion.
pub(crate) fn visit_strings<'a>(
    value: &'a Value,
    mut visit: impl FnMut(&[Segment<'a>], &'a str) -> ControlFlow<()>,
) -> ControlFlow<()> {
    let mut path: Vec<Segment<'a>> = Vec::new();
    let mut stack: Vec<Frame<'a>> = Vec::new();
    match value {
        Value::String(s) => return visit(&path, s),
        Value::Array(items) => stack.push(Frame::Array(items.iter().enumerate())),
        Value::Object(map) => stack.push(Frame::Object(map.iter())),
        _ => return ControlFlow::Continue(()),
    }
    while let Some(frame) = stack.last_mut() {
        let next = match frame {
            Frame::Array(items) => items.next().map(|(i, v)| (Segment::Index(i), None, v)),
            Frame::Object(members) => members
                .next()
                .map(|(k, v)| (Segment::Key(k.as_str()), Some(k.as_str()), v)),
        };
        // The children of the innermost open container sit at this depth: drop the previous
        // sibling's segment (or, when the container is done, nothing more is needed below it).
        path.truncate(stack.len() - 1);
        let Some((segment, key, child)) = next else {
            stack.pop();
            continue;
        };
        path.push(segment);
        if let Some(key) = key {
            visit(&path, key)?;
        }
        match child {
            Value::String(s) => visit(&path, s)?,
            Value::Array(items) => stack.push(Frame::Array(items.iter().enumerate())),
            Value::Object(map) => stack.push(Frame::Object(map.iter())),
            _ => {}
        }
    }
    ControlFlow::Continue(())
}

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
