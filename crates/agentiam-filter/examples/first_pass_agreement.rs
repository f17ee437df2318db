//! The first pass against the full pipeline on a corpus: every text of JSON Lines files (field
//! `text`) scanned both ways, with the number of scans that differ (there must be none), how
//! many texts the first pass clears, and the time each way.
//!
//! ```text
//! scripts/injection-data
//! cargo run --release -p agentiam-filter --example first_pass_agreement -- \
//!     target/injection-data/dev.jsonl target/injection-data/heldout.jsonl
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "measuring harness"
)]

use std::time::Instant;

use agentiam_filter::InjectionFilter;

fn main() {
    let mut texts: Vec<(String, String)> = Vec::new();
    for path in std::env::args().skip(1) {
        let body = std::fs::read_to_string(&path).expect("readable JSON Lines file");
        for line in body.lines().filter(|l| !l.trim().is_empty()) {
            let value: serde_json::Value = serde_json::from_str(line).expect("one JSON per line");
            let field = |name: &str| value.get(name).and_then(serde_json::Value::as_str);
            let text = field("text").expect("a text field").to_owned();
            let label = field("label").unwrap_or("?").to_owned();
            texts.push((label, text));
        }
    }
    assert!(
        !texts.is_empty(),
        "give JSON Lines files with a `text` field"
    );
    let fast = InjectionFilter::new().without_encoder();
    let full = fast.clone().with_first_pass(false);
    let mut differ = 0usize;
    let mut cleared = std::collections::BTreeMap::<String, (usize, usize)>::new();
    for (label, text) in &texts {
        if fast.scan_structured(text) != full.scan_structured(text) {
            differ += 1;
            if differ <= 5 {
                println!("differs: {text:?}");
            }
        }
        let entry = cleared.entry(label.clone()).or_default();
        entry.0 += usize::from(agentiam_filter::first_pass_clears(&fast, text));
        entry.1 += 1;
    }
    let bytes: usize = texts.iter().map(|(_, t)| t.len()).sum();
    let time = |filter: &InjectionFilter| {
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let start = Instant::now();
            for (_, text) in &texts {
                std::hint::black_box(filter.scan_structured(text));
            }
            best = best.min(start.elapsed().as_secs_f64());
        }
        best
    };
    let (with, without) = (time(&fast), time(&full));
    println!(
        "{} texts, {:.1} MiB; scans that differ: {differ}",
        texts.len(),
        bytes as f64 / 1048576.0
    );
    for (label, (c, n)) in &cleared {
        println!(
            "  {label}: {c} of {n} cleared by the first pass ({:.1}%)",
            100.0 * *c as f64 / *n as f64
        );
    }
    let per_kib = |s: f64| s * 1e6 / (bytes as f64 / 1024.0);
    println!(
        "scan_structured over the corpus (best of 3): first pass on {with:.3} s ({:.2} µs/KiB), off {without:.3} s ({:.2} µs/KiB), {:.2}x",
        per_kib(with),
        per_kib(without),
        without / with
    );
    assert_eq!(differ, 0, "the first pass changed {differ} scans");
}
