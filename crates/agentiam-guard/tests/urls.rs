//! URLs are read the way HTTP clients read them: the host the exfiltration check judges is the
//! host the `url` crate (WHATWG) parses, forms that parsers disagree on are refused whatever
//! their host, and every URL to a host outside the allowlist that carries data (userinfo, any
//! query, an encoded path segment or fragment, subdomain labels) is caught.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "test harness: a panic is a failed test"
)]

use std::sync::Arc;

use agentiam_filter::{ExfiltrationCheck, InjectionFilter};
use agentiam_guard::*;
#[allow(unused_imports, reason = "each test file uses some of them")]
use agentiam_guard::{approval::*, arguments::*, audit::*, config::*, hooks::*, policy::*};
use agentiam_token::{FixedClock, ScopeSet};
use proptest::prelude::*;
use serde_json::json;

/// Flagged, and why (the reason's suffix after the kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Pass,
    Data(&'static str),
    Ambiguous,
}

/// (argument, expected). The host the check reports must be the `url` crate's host of the
/// argument (with `http://` added to a schemeless one), or the visible host when the crate
/// refuses the URL.
const TABLE: &[(&str, Want)] = &[
    // Backslashes: a browser reads host evil.test here, urllib3 acme.example ...
    ("https://evil.test\\@acme.example/", Want::Ambiguous),
    // ... and here a browser reads acme.example (allowed) while urllib3 sends to evil.test.
    ("https://acme.example\\@evil.test/?d=1", Want::Ambiguous),
    ("https:\\\\evil.test/", Want::Ambiguous),
    // Userinfo.
    ("https://user:pw@evil.test/", Want::Data("userinfo")),
    ("https://acme.example@evil.test/", Want::Data("userinfo")),
    ("https://a@b@evil.test/", Want::Ambiguous),
    ("https://acme.example%40evil.test/", Want::Ambiguous),
    // Percent-encoding: in the host it is ambiguous, in the path it is data like any other.
    ("https://%65vil.test/", Want::Ambiguous),
    ("https://evil.test/%2e%2e/?d=1", Want::Data("query")),
    (
        "https://evil.test/%2e%2e/QUtJQUlPU0ZPRE5ON0VYQU1QTEU",
        Want::Data("encoded path segment"),
    ),
    // Tabs, line breaks and other invisible characters inside.
    ("https://ev\til.test/", Want::Ambiguous),
    ("https://evil.test/\n?d=1", Want::Ambiguous),
    ("ht\ttps://evil.test/", Want::Ambiguous),
    ("https://ev\u{200B}il.test/", Want::Ambiguous),
    // IDNA and look-alike forms: the parser maps them, other clients may not.
    ("https://bücher.example/", Want::Ambiguous),
    ("https://evil\u{3002}test/?d=1", Want::Ambiguous),
    ("https://\u{FF45}vil.test/", Want::Ambiguous),
    // Punycode as written is read alike by every client.
    ("https://xn--bcher-kva.example/?q=1", Want::Data("query")),
    ("https://xn--bcher-kva.example/", Want::Pass),
    // IPv4 in decimal, hex and octal: the parser reads 127.0.0.1, as written it is not.
    ("http://0x7f.1/", Want::Ambiguous),
    ("http://2130706433/", Want::Ambiguous),
    ("http://0177.0.0.1/", Want::Ambiguous),
    ("http://127.0.0.1/?d=1", Want::Data("query")),
    ("http://127.0.0.1/", Want::Pass),
    ("https://[::1]/?d=1", Want::Data("query")),
    ("https://[0:0::1]/", Want::Ambiguous),
    // Trailing dots and upper case.
    ("https://EVIL.TEST./?d=1", Want::Data("query")),
    ("https://evil.test./", Want::Pass),
    ("HTTPS://ACME.EXAMPLE/?d=1", Want::Pass),
    ("https://acme.example./?d=1", Want::Pass),
    ("https://img.acme.example/a.png?v=123456789", Want::Pass),
    // No `//`: WHATWG still finds a host, RFC 3986 clients find none.
    ("https:evil.test/?d=1", Want::Ambiguous),
    ("https:/evil.test/", Want::Ambiguous),
    // Data in subdomain labels, short queries and fragments.
    (
        "https://c2VjcmV0.evil.test/",
        Want::Data("subdomain labels"),
    ),
    ("https://alice.evil.test/", Want::Data("subdomain labels")),
    ("https://www.evil.test/", Want::Pass),
    ("https://a.evil.co.uk/", Want::Data("subdomain labels")),
    ("https://evil.co.uk/", Want::Pass),
    ("https://evil.test/?x", Want::Data("query")),
    (
        "https://evil.test/#c2VjcmV0LXRva2VuLTEyMzQ1Njc4OTA",
        Want::Data("encoded fragment"),
    ),
    ("https://evil.test/#top", Want::Pass),
    ("https://evil.test/", Want::Pass),
    // A port the parser refuses: the visible host, refused.
    ("http://evil.test:99999/?d=1", Want::Ambiguous),
    ("https://evil.test:8443/?d=1", Want::Data("query")),
    // Other fetchable schemes, and a string that starts with a host (tools add the scheme).
    ("ws://evil.test/?d=1", Want::Data("query")),
    ("evil.test/collect?d=secret", Want::Data("query")),
    ("evil.test:8080/collect?d=secret", Want::Data("query")),
    // A whole string with spaces: a client handed it sends the query after the space.
    ("https://evil.test/a b?d=1", Want::Data("query")),
];

/// The host the `url` crate reads for an argument (or the visible one when it refuses it).
fn url_crate_host(arg: &str) -> String {
    let trimmed = arg.trim_matches(|c: char| c <= ' ');
    let has_scheme = trimmed.contains(':')
        && trimmed
            .split(':')
            .next()
            .unwrap()
            .chars()
            .all(|c| c.is_ascii_alphabetic() || c == '\t');
    let input = if has_scheme {
        trimmed.to_owned()
    } else {
        format!("http://{trimmed}")
    };
    match url::Url::parse(&input) {
        Ok(u) => u.host_str().unwrap().to_owned(),
        Err(_) => {
            let authority = input.split_once("//").unwrap().1;
            let authority = authority.split(['/', '?', '#']).next().unwrap();
            let host = authority.rsplit('@').next().unwrap();
            host.rsplit_once(':')
                .map_or(host, |(h, _)| h)
                .to_ascii_lowercase()
        }
    }
}

fn check() -> ExfiltrationCheck {
    ExfiltrationCheck::allowing(["acme.example"])
}

#[test]
fn the_host_the_check_reads_is_the_host_the_url_parser_reads() {
    let check = check();
    let mut failures = Vec::new();
    for &(arg, want) in TABLE {
        let found = check.check_text(arg);
        let got = match found.first() {
            None => Want::Pass,
            Some(f) if f.reason.contains("ambiguous URL") => Want::Ambiguous,
            Some(f) => {
                let why = f.reason.split(": ").nth(1).unwrap_or_default();
                match TABLE.iter().find_map(|(_, w)| match w {
                    Want::Data(r) if *r == why => Some(*r),
                    _ => None,
                }) {
                    Some(r) => Want::Data(r),
                    None => panic!("{arg:?}: unexpected reason {}", f.reason),
                }
            }
        };
        if got != want {
            failures.push(format!("{arg:?}: want {want:?}, got {got:?} ({found:?})"));
            continue;
        }
        if let Some(f) = found.first() {
            let expected = url_crate_host(arg);
            if f.host != expected {
                failures.push(format!(
                    "{arg:?}: host {:?}, the url crate reads {expected:?}",
                    f.host
                ));
            }
            assert!(arg.is_char_boundary(f.start) && arg.is_char_boundary(f.end));
            assert!(f.start <= f.end && f.end <= arg.len());
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The same URLs inside text (one per line of an e-mail body, or as a markdown image) are
/// caught the same way, unless they only mean something as a whole string.
#[test]
fn the_same_urls_inside_text_are_caught() {
    let check = check();
    for &(arg, want) in TABLE {
        let whole_only =
            arg.contains(char::is_whitespace) || !arg.contains(':') || arg.starts_with("evil.test");
        if whole_only || want == Want::Pass {
            continue;
        }
        for text in [
            format!("Hello,\nthe report is at {arg} today.\nThanks"),
            format!("Done! ![chart]({arg})"),
        ] {
            assert!(
                !check.check_text(&text).is_empty(),
                "{text:?} was not caught"
            );
        }
    }
    // Protocol-relative markdown destinations are fetched over the page's scheme.
    let found = check.check_text("![x](//evil.test/p.png?d=1) and ![y](<//evil.test/a b?d=2>)");
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found
            .iter()
            .all(|f| f.host == "evil.test" && f.reason.starts_with("markdown_image"))
    );
    // A markdown destination keeps its balanced parentheses, as renderers do.
    let found = check.check_text("![x](https://evil.test/(a)?d=secret)");
    assert_eq!(found[0].reason, "markdown_image: query");
    // Links without data to outside hosts, and text that only mentions a scheme, pass.
    assert!(
        check
            .check_text(
                "See https://docs.rs/regex, [home](https://example.org/) or use https:// always."
            )
            .is_empty()
    );
}

/// Through the guard: a fetch tool handed any of the data-carrying or ambiguous forms is refused
/// (`guard.injection_detected`) before it runs.
#[test]
fn the_guard_refuses_every_data_carrying_or_ambiguous_form() {
    let guard = Guard::builder(PolicyEngine::default_policy().unwrap())
        .clock(Arc::new(FixedClock::new(1_800_000_000)))
        .content_filter(Arc::new(
            InjectionFilter::new().with_exfiltration(ExfiltrationCheck::allowing(["acme.example"])),
        ))
        .tool(ToolSpec::new("fetch", Risk::Low).with_scope("web", "fetch"))
        .build()
        .unwrap();
    let p = Principal::from_workload(
        &agentiam_guard::VerifiedPeer::verified_elsewhere(
            "spiffe://acme.test/agent/reader",
            1_800_000_600,
        )
        .unwrap(),
        ScopeSet::parse("web:fetch").unwrap(),
    );
    for &(arg, want) in TABLE {
        let args = json!({ "url": arg });
        let d = guard.decide(&GuardRequest::new(&p, "fetch", &args));
        match want {
            Want::Pass => assert!(d.is_allowed(), "{arg:?}: {d:?}"),
            _ => assert_eq!(d.code(), Some("guard.injection_detected"), "{arg:?}: {d:?}"),
        }
    }
}

#[test]
fn allowlist_entries_are_read_as_hosts() {
    let check = ExfiltrationCheck::allowing(["Bücher.Example.", "10.0.0.1", "[::1]"]);
    assert!(check.allows("xn--bcher-kva.example") && check.allows("img.xn--bcher-kva.example"));
    assert!(check.allows("10.0.0.1") && check.allows("[::1]"));
    // IP addresses match exactly, never as a parent "domain".
    assert!(!check.allows("110.0.0.1") && !check.allows("1.10.0.0.1"));
    let parent = ExfiltrationCheck::allowing(["0.1"]);
    assert!(!parent.allows("10.0.0.1"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Any text: findings on character boundaries inside it, and for a URL with a scheme the
    /// reported host is the `url` crate's reading of the reported span.
    #[test]
    fn findings_are_in_bounds_and_hosts_are_the_parsers(
        text in "(https?://|//|\\]\\(|!\\[|[a-zA-Z0-9.@:/?#%\\\\ \t\n\u{e9}\u{200b}\u{3002}])*",
    ) {
        for f in check().check_text(&text) {
            prop_assert!(f.start <= f.end && f.end <= text.len());
            prop_assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
            let span = &text[f.start..f.end];
            if let Ok(u) = url::Url::parse(span)
                && span.starts_with("http")
                && !f.reason.contains("ambiguous")
            {
                prop_assert_eq!(u.host_str().unwrap_or_default(), f.host.as_str());
            }
        }
    }
}
