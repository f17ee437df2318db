//! The one walk over a JSON value's strings that every check shares: the filter's argument and
//! schema scans, and the guard's scope, copied-text and policy checks.
//! It is iterative, so any nesting is walked without recursion, and reports the path to each
//! string as the guard prints it (`to`, `items[2].note`).
//!
//! ```
//! use std::ops::ControlFlow;
//! use agentiam_filter::json::{path_text, visit_strings};
//! let value = serde_json::json!({"to": "a@b.example", "items": [{"note": "hi"}]});
//! let mut seen = Vec::new();
//! let _ = visit_strings(&value, |path, s| { seen.push((path_text(path), s.to_owned())); ControlFlow::Continue(()) });
//! assert!(seen.contains(&("items[0].note".to_owned(), "hi".to_owned())));
//! ```

use std::ops::ControlFlow;

use serde_json::Value;

/// One step of the path from the arguments to a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment<'a> {
    /// An object member.
    Key(&'a str),
    /// An array element.
    Index(usize),
}

/// A path as the guard reports it: `to`, `items[2].note`; `(arguments)` for the root.
pub fn path_text(path: &[Segment<'_>]) -> String {
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
pub fn visit_strings<'a>(
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
