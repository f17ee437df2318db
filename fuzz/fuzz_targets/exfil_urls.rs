//! Any text through URL extraction and the exfiltration check, and through the copied-text
//! fingerprints: never a panic; every reported range inside the text on character boundaries;
//! for a URL with a scheme that is not ambiguous, the reported host is the `url` crate's host
//! of the reported span; and a text that leaves any fingerprint is found copied into itself.
//! Seed corpus: the URL table of crates/agentiam-guard/tests/urls.rs, one URL per file.
#![no_main]

use agentiam_guard::UntrustedText;
use agentiam_filter::ExfiltrationCheck;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let check = ExfiltrationCheck::allowing(["example.org", "10.0.0.1"]);
    for f in check.check_text(&text) {
        assert!(f.start <= f.end && f.end <= text.len(), "{f:?}");
        assert!(
            text.is_char_boundary(f.start) && text.is_char_boundary(f.end),
            "{f:?}"
        );
        assert!(!f.host.is_empty(), "{f:?}");
        let span = &text[f.start..f.end];
        // A span read with an implied scheme (`evil.test/x`, `//evil.test/x`) is not a URL to
        // the parser on its own; compare the ones that carry `http://` or `https://`.
        let lower = span.get(..8).unwrap_or(span).to_ascii_lowercase();
        let schemed = lower.starts_with("http://") || lower.starts_with("https://");
        if schemed && !f.reason.contains("ambiguous") {
            if let Ok(url) = url::Url::parse(span) {
                assert_eq!(url.host_str().unwrap_or_default(), f.host, "{span:?}");
            }
        }
        if !f.reason.contains("ambiguous") {
            assert!(!check.allows(&f.host), "an allowed host reported: {f:?}");
        }
    }
    let mut read = UntrustedText::default();
    read.remember(&text);
    if !read.is_empty() {
        let args = serde_json::json!({ "v": text });
        assert!(
            read.copied_into(&args).is_some(),
            "a text is not found copied into itself"
        );
    }
});
