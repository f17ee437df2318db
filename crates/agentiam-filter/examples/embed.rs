//! Window embeddings of texts, for training the transformer layer's head
//! (`scripts/train-encoder-head`): the same code that scores at run time computes them.
//!
//! `cargo run --release -p agentiam-filter --features encoder --example embed -- ENCODER_DIR OUT.f32`
//! reads one JSON string per line on standard input, appends each window's embedding to
//! `OUT.f32` (little-endian f32, the encoder's width per window) and prints one line per text:
//! `{"windows": n}`.
#![allow(clippy::print_stdout, reason = "an example that prints its result")]

use std::io::{BufRead, BufWriter, Write};

use agentiam_filter::encoder::Encoder;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(out)) = (args.next(), args.next()) else {
        return Err("usage: embed ENCODER_DIR OUT.f32".into());
    };
    let encoder = Encoder::from_dir(std::path::Path::new(&dir))?;
    let mut floats = BufWriter::new(std::fs::File::create(out)?);
    let stdout = std::io::stdout();
    let mut lines = BufWriter::new(stdout.lock());
    for line in std::io::stdin().lock().lines() {
        let text: String = serde_json::from_str(&line?)?;
        let windows = encoder.embed(&text)?;
        for window in &windows {
            for x in window {
                floats.write_all(&x.to_le_bytes())?;
            }
        }
        writeln!(lines, "{{\"windows\": {}}}", windows.len())?;
    }
    floats.flush()?;
    lines.flush()?;
    Ok(())
}
