//! Where the injection scan spends its time (one line per stage, µs per KiB).
#![allow(clippy::unwrap_used, missing_docs, reason = "profiling harness")]
use std::time::Instant;
fn main() {
    let para = "Our quarterly report shows revenue grew four percent, driven by subscriptions in Europe and a stronger holiday season than expected. <p>To reset your password, open Settings, choose Security, and follow the instructions on the screen.</p>\n\n";
    let doc = para.repeat(16 * 1024 / para.len());
    let kib = doc.len() as f64 / 1024.0;
    let filter = agentiam_filter::InjectionFilter::new();
    for (name, f) in agentiam_filter::profile_stages() {
        let start = Instant::now();
        for _ in 0..50 {
            f(&filter, &doc);
        }
        println!(
            "{name:<12} {:>8.2} µs/KiB",
            start.elapsed().as_secs_f64() * 1e6 / 50.0 / kib
        );
    }
}
