//! Token vectors of texts after the encoder's first layers, for fine-tuning the layers above
//! them (`scripts/finetune_encoder.py`): the same Rust code that scores at run time computes
//! what the trainer starts from.
//!
//! `cargo run --release -p agentiam-filter --features encoder --example states -- ENCODER_DIR LAYERS OUT.bf16`
//! reads one JSON string per line on standard input, appends the token vectors of each window
//! after the first `LAYERS` transformer layers to `OUT.bf16` (bfloat16, little-endian, rounded
//! to nearest even; `[CLS]` and `[SEP]` included, no padding) and prints one line per text:
//! `{"tokens": [n, ...]}`, the token count of each window.
#![allow(clippy::print_stdout, reason = "an example that prints its result")]

use std::io::{BufRead, BufWriter, Write};

use agentiam_filter::encoder::Encoder;

/// The bfloat16 nearest to `x` (ties to even), as its bits.
fn bf16_bits(x: f32) -> u16 {
    let bits = x.to_bits();
    let rounded = bits.wrapping_add(0x7fff + ((bits >> 16) & 1));
    u16::try_from(rounded >> 16).unwrap_or(u16::MAX)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(layers), Some(out)) = (args.next(), args.next(), args.next()) else {
        return Err("usage: states ENCODER_DIR LAYERS OUT.bf16".into());
    };
    let layers: usize = layers.parse()?;
    let encoder = Encoder::from_dir(std::path::Path::new(&dir))?;
    let mut halves = BufWriter::new(std::fs::File::create(out)?);
    let stdout = std::io::stdout();
    let mut lines = BufWriter::new(stdout.lock());
    for line in std::io::stdin().lock().lines() {
        let text: String = serde_json::from_str(&line?)?;
        let windows = encoder.window_states(&text, layers)?;
        for window in &windows {
            for &x in &window.states {
                halves.write_all(&bf16_bits(x).to_le_bytes())?;
            }
        }
        let tokens: Vec<usize> = windows.iter().map(|w| w.tokens).collect();
        writeln!(lines, "{}", serde_json::json!({ "tokens": tokens }))?;
    }
    halves.flush()?;
    lines.flush()?;
    Ok(())
}
