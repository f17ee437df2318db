//! Any text through the injection filter (rules and learned model), sanitising, the exfiltration
//! check and the spotlighting helpers: never a panic, the score in [0, 1], every finding inside
//! the text on character boundaries, sanitized text never longer.
//! Seed corpus: the texts of testvectors/injection.json.
#![no_main]

use std::sync::OnceLock;

use agentiam_filter::{ExfiltrationCheck, InjectionFilter, datamark, delimit};
use libfuzzer_sys::fuzz_target;

fn filter() -> &'static InjectionFilter {
    static FILTER: OnceLock<InjectionFilter> = OnceLock::new();
    FILTER.get_or_init(|| InjectionFilter::new().with_max_bytes(64 * 1024))
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let scan = filter().scan(&text);
    assert!((0.0..=1.0).contains(&scan.score));
    for f in &scan.findings {
        assert!(f.start <= f.end && f.end <= text.len());
        assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
    }
    for url in ExfiltrationCheck::allowing(["example.org"]).check_text(&text) {
        assert!(url.end <= text.len() && text.is_char_boundary(url.start));
    }
    let (wrapped, _) = delimit(&text, &[7; 8]);
    assert!(wrapped.contains(text.as_ref()));
    let _ = datamark(&text, '^');
    let clean = filter().sanitize(&text);
    assert!(clean.len() <= text.len());
    for window in InjectionFilter::model_features(&text) {
        assert!(window.iter().all(|&b| b < 1 << 18));
    }
});
