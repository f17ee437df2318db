//! Which tool an HTTP request is: `(method, route pattern) -> tool name`.

use crate::GuardError;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
    Rest(String),
}

#[derive(Debug, Clone)]
struct Route {
    method: String,
    segments: Vec<Segment>,
    tool: String,
}

/// Maps HTTP routes to registered tools. Patterns are axum-style: `/invoices/{id}` matches one
/// segment, `/files/{*path}` the rest of the path; the captured values become string arguments.
/// The first matching route wins; a request no route matches is denied (`guard.unknown_action`).
///
/// ```
/// use agentiam_guard::http::RouteMap;
/// let routes = RouteMap::new()
///     .route("GET", "/invoices/{id}", "read_invoice").unwrap()
///     .route("POST", "/payments", "transfer").unwrap();
/// let (tool, params) = routes.find("GET", "/invoices/INV-7").unwrap();
/// assert_eq!((tool, params), ("read_invoice", vec![("id".to_owned(), "INV-7".to_owned())]));
/// assert!(routes.find("DELETE", "/invoices/INV-7").is_none());
/// ```
#[derive(Debug, Clone, Default)]
pub struct RouteMap {
    routes: Vec<Route>,
}

fn param_name(segment: &str) -> Option<&str> {
    segment.strip_prefix('{')?.strip_suffix('}')
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl RouteMap {
    /// No routes: every request is denied.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `method pattern -> tool`.
    pub fn route(mut self, method: &str, pattern: &str, tool: &str) -> Result<Self, GuardError> {
        let bad = |why: &str| GuardError::ToolSpec(format!("route {method} {pattern}: {why}"));
        let Some(rest) = pattern.strip_prefix('/') else {
            return Err(bad("patterns start with /"));
        };
        let mut segments = Vec::new();
        let parts: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('/').collect()
        };
        let count = parts.len();
        for (i, part) in parts.into_iter().enumerate() {
            segments.push(match param_name(part) {
                Some(name) => match name.strip_prefix('*') {
                    Some(rest_name) if valid_name(rest_name) && i + 1 == count => {
                        Segment::Rest(rest_name.to_owned())
                    }
                    Some(_) => return Err(bad("{*name} must be the last segment and named")),
                    None if valid_name(name) => Segment::Param(name.to_owned()),
                    None => return Err(bad("parameter names are letters, digits and _")),
                },
                None if part.contains(['{', '}']) => {
                    return Err(bad("braces only around a whole segment"));
                }
                None => Segment::Literal(part.to_owned()),
            });
        }
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(bad("methods are upper-case, e.g. GET"));
        }
        self.routes.push(Route {
            method: method.to_owned(),
            segments,
            tool: tool.to_owned(),
        });
        Ok(self)
    }

    /// The tool and path parameters for a request, if a route matches.
    pub fn find(&self, method: &str, path: &str) -> Option<(&str, Vec<(String, String)>)> {
        let rest = path.strip_prefix('/')?;
        let parts: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('/').collect()
        };
        'routes: for route in &self.routes {
            if route.method != method {
                continue;
            }
            let mut params = Vec::new();
            let mut i = 0;
            for segment in &route.segments {
                match segment {
                    Segment::Rest(name) => {
                        let tail = parts.get(i..).map(|p| p.join("/")).unwrap_or_default();
                        if tail.is_empty() {
                            continue 'routes;
                        }
                        params.push((name.clone(), percent_decode(&tail)?));
                        return Some((&route.tool, params));
                    }
                    Segment::Literal(lit) => {
                        if parts.get(i) != Some(&lit.as_str()) {
                            continue 'routes;
                        }
                    }
                    Segment::Param(name) => match parts.get(i) {
                        Some(value) if !value.is_empty() => {
                            params.push((name.clone(), percent_decode(value)?))
                        }
                        _ => continue 'routes,
                    },
                }
                i += 1;
            }
            if i == parts.len() {
                return Some((&route.tool, params));
            }
        }
        None
    }
}

/// Percent-decodes a path segment exactly as the service will see it; `None` for a malformed
/// escape or invalid UTF-8 (the request is then unmatched and denied).
fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            let text = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(text, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
