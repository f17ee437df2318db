//! URLs read the way HTTP clients read them: found in text (bare, or as markdown image and
//! link destinations) or as a whole string, then parsed by a WHATWG-conformant parser (the
//! `url` crate), whose host is the host the guard judges.
//!
//! A URL whose host another kind of client could read differently is *ambiguous*: a
//! backslash, a control character, tabs or line breaks inside a one-URL string, more than one
//! `@`, a scheme not followed by `//`, or a host as written that is not the host the WHATWG
//! parser reads (percent-encoded, Unicode or otherwise IDNA-mapped, IPv4 in decimal, hex or
//! octal, characters the parser drops) — or a visible host the parser refuses.
//! `https://acme.example\@evil.test/` is host `acme.example` to a browser and `evil.test` to
//! urllib3; the exfiltration check refuses such URLs whatever their host.
//!
//! The same module turns host names into the keys the copied-text check fingerprints.

use url::Url;

use super::normalize;

/// Where a URL was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Context {
    /// `![alt](url)`: fetched when rendered, without a click.
    MarkdownImage,
    /// `[text](url)`.
    MarkdownLink,
    /// A bare URL in text.
    Text,
    /// The whole string (an argument that is a URL, as a client handed it would read it).
    Whole,
}

impl Context {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::MarkdownImage => "markdown_image",
            Self::MarkdownLink => "markdown_link",
            Self::Text | Self::Whole => "url",
        }
    }
}

/// A URL-like span of a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Candidate {
    /// Byte range in the text, on character boundaries.
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) context: Context,
    /// The scheme the span leaves out: `https:` for `//host` in a markdown destination,
    /// `http://` for a whole string that starts with a host name.
    implied: Option<&'static str>,
}

/// A URL as the guard reads it.
#[derive(Debug, Clone)]
pub(crate) struct Reading {
    /// The parsed URL (`None` when the parser refuses it but a host is visible).
    pub(crate) url: Option<Url>,
    /// The host the parser reads (lower case, ASCII; IPv6 in brackets), else the visible one.
    pub(crate) host: String,
    /// Why clients may read this URL differently, if they may.
    pub(crate) ambiguous: Option<&'static str>,
}

/// Schemes whose URLs HTTP-speaking clients fetch (the WHATWG special schemes but `file`).
const SCHEMES: [&str; 5] = ["https:", "http:", "wss:", "ws:", "ftp:"];

/// The length of the scheme (with its colon) at `at`, if one starts there on a word boundary.
fn scheme_at(bytes: &[u8], at: usize) -> Option<usize> {
    let boundary = at == 0
        || bytes
            .get(at - 1)
            .is_some_and(|b| !b.is_ascii_alphanumeric() && !matches!(b, b'+' | b'-' | b'.'));
    if !boundary {
        return None;
    }
    let rest = bytes.get(at..)?;
    SCHEMES.iter().find_map(|s| {
        rest.get(..s.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(s.as_bytes()))
            .then_some(s.len())
    })
}

/// Every URL-like span in `text`, in order: bare URLs with a scheme, and markdown destinations
/// (also protocol-relative `//host/...`). One pass, linear in the text.
pub(crate) fn candidates(text: &str) -> Vec<Candidate> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    // For each open `[`: whether it opens an image (`![`).
    let mut opens: Vec<bool> = Vec::new();
    // Just after `](`: a markdown destination may start here (whether it is an image's).
    let mut destination: Option<bool> = None;
    let mut at = 0;
    while let Some(&b) = bytes.get(at) {
        let scheme = scheme_at(bytes, at);
        let protocol_relative = scheme.is_none()
            && destination.is_some()
            && bytes.get(at..at + 2) == Some(b"//".as_slice());
        if scheme.is_some() || protocol_relative {
            let context = match destination {
                Some(true) => Context::MarkdownImage,
                Some(false) => Context::MarkdownLink,
                None => Context::Text,
            };
            let angle = destination.is_some() && at > 0 && bytes.get(at - 1) == Some(&b'<');
            let end = span_end(text, at, context, angle);
            out.push(Candidate {
                start: at,
                end,
                context,
                implied: protocol_relative.then_some("https:"),
            });
            destination = None;
            at = end.max(at + 1);
            continue;
        }
        match b {
            b'[' => {
                opens.push(at > 0 && bytes.get(at - 1) == Some(&b'!'));
                destination = None;
            }
            b']' => {
                let image = opens.pop().unwrap_or(false);
                if bytes.get(at + 1) == Some(&b'(') {
                    destination = Some(image);
                    at += 2;
                    continue;
                }
                destination = None;
            }
            // CommonMark allows spaces, one line break and `<` before a destination.
            b' ' | b'\t' | b'\n' | b'\r' | b'<' => {}
            _ => destination = None,
        }
        at += 1;
    }
    out
}

/// Where a URL starting at `start` ends: at whitespace or a control character; in text also
/// at `"`, `'`, `<`, `>` or a backtick; at a `)` or `]` that closes nothing opened inside the
/// URL; inside `<...>` at `>`. Trailing punctuation of a bare URL is not part of it (GFM).
fn span_end(text: &str, start: usize, context: Context, angle: bool) -> usize {
    let tail = text.get(start..).unwrap_or_default();
    let mut parens = 0usize;
    let mut brackets = 0usize;
    let mut end = tail.len();
    for (i, c) in tail.char_indices() {
        let stop = if angle {
            matches!(c, '>' | '<' | '\n' | '\r')
        } else {
            match c {
                c if c.is_whitespace() || c.is_control() => true,
                '"' | '\'' | '<' | '>' | '`' => context == Context::Text,
                '(' => {
                    parens += 1;
                    false
                }
                ')' if parens == 0 => true,
                ')' => {
                    parens -= 1;
                    false
                }
                '[' => {
                    brackets += 1;
                    false
                }
                ']' if brackets == 0 => true,
                ']' => {
                    brackets -= 1;
                    false
                }
                _ => false,
            }
        };
        if stop {
            end = i;
            break;
        }
    }
    let mut url = tail.get(..end).unwrap_or_default();
    if context == Context::Text {
        url = url.trim_end_matches(['.', ',', ':', ';', '!', '?', '*', '_', '~']);
    }
    start + url.len()
}

/// C0 controls and space, which WHATWG trims from both ends of a URL.
fn c0_or_space(c: char) -> bool {
    c <= ' '
}

/// The whole of `text` as one URL, when it is one: after trimming C0 controls and spaces it
/// starts with a scheme, or with a host name followed by `/`, `?` or `#` (a client or tool
/// that adds `http://` to such a string sends it to that host).
pub(crate) fn whole(text: &str) -> Option<Candidate> {
    let trimmed = text.trim_start_matches(c0_or_space);
    let start = text.len() - trimmed.len();
    let trimmed = trimmed.trim_end_matches(c0_or_space);
    if trimmed.is_empty() {
        return None;
    }
    let end = start + trimmed.len();
    // WHATWG removes tabs and line breaks anywhere before reading the scheme.
    let head: String = trimmed
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .take(8)
        .collect();
    if scheme_at(head.as_bytes(), 0).is_some() {
        return Some(Candidate {
            start,
            end,
            context: Context::Whole,
            implied: None,
        });
    }
    let host_end = trimmed.find(['/', '?', '#'])?;
    let host = trimmed.get(..host_end)?;
    let host = strip_port(host);
    (!trimmed.contains(char::is_whitespace) && bare_host(host).is_some()).then_some(Candidate {
        start,
        end,
        context: Context::Whole,
        implied: Some("http://"),
    })
}

/// `host:port` without the port (digits only), IPv6 literals kept whole.
fn strip_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority
            .find(']')
            .and_then(|close| authority.get(..=close))
            .unwrap_or(authority);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

/// The host a client that splits URLs by RFC 3986 sees: after `scheme://`, up to the first
/// `/`, `?` or `#`, after the last `@`, without the port; empty when no `//` follows the scheme.
fn visible_host(after_scheme: &str) -> (&str, usize) {
    let Some(rest) = after_scheme.strip_prefix("//") else {
        return ("", 0);
    };
    let authority = rest
        .find(['/', '?', '#'])
        .map_or(rest, |end| rest.get(..end).unwrap_or_default());
    let ats = authority.matches('@').count();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    (strip_port(host), ats)
}

/// Reads one candidate of `text`; `None` when it shows no host at all (`http://` alone).
pub(crate) fn read(text: &str, candidate: &Candidate) -> Option<Reading> {
    let raw = text.get(candidate.start..candidate.end)?;
    let spaced = candidate.context == Context::Whole && raw.contains(' ');
    let input = match candidate.implied {
        Some(scheme) => format!("{scheme}{raw}"),
        None => raw.to_owned(),
    };
    let after_scheme = input.split_once(':').map_or("", |(_, rest)| rest);
    let (visible, ats) = visible_host(after_scheme);
    let visible = visible.trim_end_matches('.').to_ascii_lowercase();
    let ambiguous = if raw.contains('\\') {
        Some("a backslash (WHATWG parsers read it as `/`, others as a character)")
    } else if raw.contains(|c: char| c.is_control() && (!spaced || !c.is_whitespace()))
        || (candidate.context == Context::Whole && !spaced && raw.contains(char::is_whitespace))
    {
        Some("control characters or line breaks inside the URL (some parsers drop them)")
    } else if ats > 1 {
        Some("more than one `@` before the host")
    } else {
        None
    };
    let url = match Url::parse(&input) {
        Ok(url) => url,
        // A string with spaces that does not parse as one URL is text.
        Err(_) if visible.is_empty() || spaced => return None,
        Err(_) => {
            return Some(Reading {
                url: None,
                host: visible,
                ambiguous: Some("a host the WHATWG parser refuses (other clients may not)"),
            });
        }
    };
    let host = url.host_str()?.to_owned();
    let parsed = host.trim_end_matches('.');
    let ambiguous = ambiguous.or_else(|| {
        (parsed != visible).then_some(
            "the host as written is not the host a WHATWG parser reads \
             (percent-encoding, IDNA, a numeric IPv4 form, dropped characters, or no `//`)",
        )
    });
    Some(Reading {
        url: Some(url),
        host,
        ambiguous,
    })
}

/// Common file extensions, which make `report.pdf` a file name rather than a host.
const FILE_EXTENSIONS: [&str; 34] = [
    "bak", "bin", "cfg", "conf", "csv", "doc", "docx", "exe", "gif", "gz", "htm", "html", "ini",
    "jpeg", "jpg", "js", "json", "log", "md", "pdf", "png", "ppt", "pptx", "py", "rs", "svg",
    "tar", "toml", "ts", "txt", "xls", "xlsx", "xml", "yaml",
];

/// `host` when it looks like a host name: two or more dot-separated labels of letters, digits
/// and `-` (not at either end), the last one letters only (2 to 63 of them, or `xn--`
/// punycode) and not a common file extension. IPv4 literals are not host names here.
pub(crate) fn bare_host(host: &str) -> Option<&str> {
    let name = host.strip_suffix('.').unwrap_or(host);
    let labels: Vec<&str> = name.split('.').collect();
    let tld = *labels.last()?;
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    let tld_ok = (tld.len() >= 2 && tld.chars().all(char::is_alphabetic))
        || (tld.starts_with("xn--") && label_ok(tld));
    (labels.len() >= 2
        && name.len() <= 253
        && labels.iter().all(|l| label_ok(l))
        && tld_ok
        && !FILE_EXTENSIONS.contains(&tld.to_ascii_lowercase().as_str()))
    .then_some(host)
}

/// Labels of the registrable domain: the last two, or three under a two-letter country code
/// with a generic second level (`example.co.uk`). An approximation of the Public Suffix List
/// that errs towards fewer registrable labels, so towards calling more labels subdomains.
fn registrable_labels(labels: &[&str]) -> usize {
    const GENERIC: [&str; 12] = [
        "ac", "co", "com", "edu", "gov", "govt", "gv", "mil", "ne", "net", "or", "org",
    ];
    match labels {
        [.., second, tld] if tld.len() == 2 && GENERIC.contains(second) => 3,
        _ => 2,
    }
}

/// Whether the host has labels left of its registrable domain (besides one leading `www`):
/// room for data (`c2VjcmV0.evil.test`). IP addresses have none.
pub(crate) fn has_subdomain_labels(url: &Url) -> bool {
    let Some(url::Host::Domain(domain)) = url.host() else {
        return false;
    };
    let labels: Vec<&str> = domain.trim_end_matches('.').split('.').collect();
    let labels = match labels.split_first() {
        Some((&"www", rest)) if rest.len() >= 2 => rest,
        _ => labels.as_slice(),
    };
    labels.len() > registrable_labels(labels)
}

/// The key a host name is fingerprinted under by the copied-text check: the host the URL
/// parser reads (IDNA applied, case folded), turned back to Unicode and through the filter's
/// normaliser (so confusable letters fold as in the text around it), without a trailing dot
/// or a leading `www.`.
pub(crate) fn host_key(host: &str) -> String {
    let host = host.trim_end_matches('.');
    let unicode = match url::Host::parse(host) {
        Ok(url::Host::Domain(ascii)) => url::quirks::domain_to_unicode(&ascii),
        Ok(ip) => return ip.to_string(),
        Err(_) => host.to_owned(),
    };
    let folded: String = normalize::folded(&unicode).collect();
    let folded = folded.trim_end_matches('.');
    folded.strip_prefix("www.").unwrap_or(folded).to_owned()
}

/// The host a token of text names, if it names one: a URL's host, or the token itself (up to
/// a `/`, `?`, `#` or port) when it looks like a host name. An e-mail address names none (its
/// domain is part of the address, fingerprinted whole).
pub(crate) fn host_in_token(token: &str) -> Option<String> {
    if token.contains("://") {
        let start = token.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(0);
        let url = Url::parse(token.get(start..)?).ok()?;
        return url.host_str().map(host_key);
    }
    if token.contains('@') {
        return None;
    }
    let end = token.find(['/', '?', '#']).unwrap_or(token.len());
    let host = strip_port(token.get(..end)?);
    bare_host(host).map(host_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(text: &str) -> Vec<(&str, Context)> {
        candidates(text)
            .iter()
            .map(|c| (&text[c.start..c.end], c.context))
            .collect()
    }

    #[test]
    fn finds_bare_urls_and_markdown_destinations() {
        assert_eq!(
            spans("see https://a.test/x. ![i](https://b.test/(p)?q=1) [l]( <//c.test/a b>)"),
            vec![
                ("https://a.test/x", Context::Text),
                ("https://b.test/(p)?q=1", Context::MarkdownImage),
                ("//c.test/a b", Context::MarkdownLink),
            ]
        );
        // Not on a word boundary, or no destination: not a URL.
        assert!(spans("xhttps://a.test //b.test/x").is_empty());
    }

    #[test]
    fn host_names_and_file_names() {
        assert!(bare_host("www.example-attacker.com").is_some());
        assert!(bare_host("xn--bcher-kva.example").is_some());
        for not_host in ["report.pdf", "e.g", "1.2.3.4", "a..b", "-a.com", "v1.2"] {
            assert!(bare_host(not_host).is_none(), "{not_host}");
        }
        assert_eq!(host_key("WWW.Example.COM."), "example.com");
        assert_eq!(host_key("xn--bcher-kva.example"), "bücher.example");
    }

    #[test]
    fn registrable_domains() {
        let sub = |u: &str| has_subdomain_labels(&Url::parse(u).unwrap());
        assert!(!sub("https://example.com/") && !sub("https://www.example.com/"));
        assert!(!sub("https://example.co.uk/") && !sub("http://127.0.0.1/"));
        assert!(sub("https://a.example.com/") && sub("https://a.example.co.uk/"));
        assert!(sub("https://www.www.example.com/"));
    }
}
