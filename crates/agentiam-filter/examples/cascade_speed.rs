//! The transformer cascade's cost on a corpus: µs per KiB for rules and the n-gram model alone
//! (the peer: the filter without its transformer), for the cascade as it ships (the
//! transformer reads what the screen does not clear), and for the transformer reading every
//! text (a high-stakes tool); and the share of texts and bytes that reach the transformer.
//!
//! `cargo run --release -p agentiam-filter --features encoder --example cascade_speed -- ENCODER_DIR < texts.jsonl`
//! reads one JSON string per line (the README's speed table feeds it every tenth held-out benign
//! text and every fourth held-out attack, separately, with the command it gives).
//! Single-threaded (`RAYON_NUM_THREADS=1`) for figures that depend less on what else the machine
//! runs.
#![allow(
    clippy::print_stdout,
    clippy::cast_precision_loss,
    reason = "a measuring example"
)]

use std::io::BufRead;
use std::sync::Arc;
use std::time::Instant;

use agentiam_filter::{EncoderUse, InjectionFilter, encoder::Encoder};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .ok_or("usage: cascade_speed ENCODER_DIR < texts.jsonl")?;
    let encoder = Arc::new(Encoder::from_dir(std::path::Path::new(&dir))?);
    if !encoder.has_head() {
        return Err("this build embeds no trained head".into());
    }
    let mut texts = Vec::new();
    for line in std::io::stdin().lock().lines() {
        texts.push(serde_json::from_str::<String>(&line?)?);
    }
    let bytes: usize = texts.iter().map(String::len).sum();
    let kib = bytes as f64 / 1024.0;
    let screen = InjectionFilter::new().without_encoder();
    let cascade = screen.clone().with_encoder(encoder);
    let all = cascade.clone().with_encoder_reading_all(true);
    let mut report = serde_json::Map::new();
    for (name, filter) in [
        ("rules+ngram", &screen),
        ("cascade", &cascade),
        ("read_all", &all),
    ] {
        let start = Instant::now();
        let mut read = (0usize, 0usize);
        for text in &texts {
            if filter.scan_structured(text).encoder == EncoderUse::Read {
                read.0 += 1;
                read.1 += text.len();
            }
        }
        let elapsed = start.elapsed().as_secs_f64();
        report.insert(
            name.into(),
            serde_json::json!({
                "us_per_kib": (elapsed * 1e6 / kib * 10.0).round() / 10.0,
                "seconds": (elapsed * 1e3).round() / 1e3,
                "texts_read": read.0,
                "share_of_texts_read": (read.0 as f64 / texts.len().max(1) as f64 * 1e4).round() / 1e4,
                "share_of_bytes_read": (read.1 as f64 / bytes.max(1) as f64 * 1e4).round() / 1e4,
            }),
        );
    }
    report.insert("texts".into(), texts.len().into());
    report.insert("bytes".into(), bytes.into());
    println!("{}", serde_json::Value::Object(report));
    Ok(())
}
