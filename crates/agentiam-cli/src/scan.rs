//! `agentiam scan`: the injection filter over text from standard input or files.
//!
//! `--jsonl` reads one JSON string per line and writes one verdict object per line, streaming,
//! for large corpora; a line that is not a JSON string gets `{"error": {...}}` in its place.

use std::io::{BufRead, BufWriter, Read, Write};
use std::path::PathBuf;

use agentiam::filter::{InjectionFilter, Scan};
use clap::Args;
use serde_json::{Value, json};

use crate::output::{CliError, Output, read_file};

/// Largest text read from standard input or one file (the filter scans up to its own cap).
const MAX_INPUT: u64 = 16 << 20;

/// Arguments of `agentiam scan`.
#[derive(Debug, Args)]
pub(crate) struct ScanArgs {
    /// Files to scan (each as one text); `-` or none: standard input.
    files: Vec<PathBuf>,
    /// One JSON string per input line; one verdict object per output line.
    #[arg(long)]
    jsonl: bool,
    /// Verdict threshold on the score, in (0, 1].
    #[arg(long, default_value_t = agentiam::filter::DEFAULT_THRESHOLD)]
    threshold: f64,
    /// Add the sanitized text (invisible characters, hidden HTML and role tokens removed).
    #[arg(long)]
    sanitize: bool,
    /// Rules only: leave out the learned models (the n-gram model and the transformer).
    #[arg(long)]
    no_model: bool,
    /// The transformer layer's encoder directory (default: `AGENTIAM_ENCODER_DIR`, else
    /// `~/.local/share/agentiam/encoder/all-MiniLM-L6-v2`; `scripts/fetch-encoder` fills one).
    #[arg(long, value_name = "DIR", conflicts_with = "no_encoder")]
    encoder: Option<PathBuf>,
    /// Leave out the transformer layer (rules and the n-gram model only).
    #[arg(long)]
    no_encoder: bool,
    /// Have the transformer read every text, not only those the rules and the n-gram model
    /// cannot clear (as for a high-stakes tool).
    #[arg(long, conflicts_with = "no_encoder")]
    encoder_all: bool,
    /// With --jsonl: print the model's feature buckets per window instead of a verdict (for
    /// scripts/train-injection-model).
    #[arg(long, hide = true, requires = "jsonl")]
    features: bool,
}

/// The filter with the transformer layer as the flags ask, saying on standard error when it is
/// absent (the scan's `encoder` field says so per text too).
#[cfg(feature = "encoder")]
fn with_encoder(filter: InjectionFilter, args: &ScanArgs) -> Result<InjectionFilter, CliError> {
    use agentiam::filter::encoder;
    if args.no_encoder || args.no_model || args.features {
        return Ok(filter.without_encoder());
    }
    let filter = match &args.encoder {
        Some(dir) => {
            let loaded = encoder::Encoder::from_dir(dir).map_err(|e| {
                CliError::usage(
                    crate::codes::ENCODER_UNAVAILABLE,
                    format!("{}: {e}", dir.display()),
                )
            })?;
            if !loaded.has_head() {
                return Err(CliError::usage(
                    crate::codes::ENCODER_UNAVAILABLE,
                    "this build embeds no trained head for the encoder",
                ));
            }
            filter.with_encoder(std::sync::Arc::new(loaded))
        }
        None => {
            if let Err(e) = encoder::shared_default() {
                eprintln!("warning: transformer layer not loaded: {e}");
            } else if !filter.has_encoder() {
                eprintln!(
                    "note: transformer layer absent (no encoder in {}); rules and the n-gram model only. scripts/fetch-encoder installs one; --encoder DIR or AGENTIAM_ENCODER_DIR points at one",
                    encoder::default_dir().map_or_else(
                        || "AGENTIAM_ENCODER_DIR".into(),
                        |d| d.display().to_string()
                    )
                );
            }
            filter
        }
    };
    Ok(filter.with_encoder_reading_all(args.encoder_all))
}

/// Without the `encoder` feature the transformer flags only say that it is not built in.
#[cfg(not(feature = "encoder"))]
fn with_encoder(filter: InjectionFilter, args: &ScanArgs) -> Result<InjectionFilter, CliError> {
    if args.encoder.is_some() || args.encoder_all {
        return Err(CliError::usage(
            crate::codes::ENCODER_UNAVAILABLE,
            "this agentiam was built without the transformer layer (cargo feature `encoder`)",
        ));
    }
    Ok(filter)
}

fn verdict(filter: &InjectionFilter, text: &str, sanitize: bool) -> (Scan, Value) {
    let scan = filter.scan_structured(text);
    let mut value = scan.report();
    if sanitize && let Some(obj) = value.as_object_mut() {
        obj.insert("sanitized".into(), Value::String(filter.sanitize(text)));
    }
    (scan, value)
}

fn human(name: &str, scan: &Scan) -> String {
    let mut text = format!(
        "{name}: {} (score {:.2})",
        match scan.verdict {
            agentiam::filter::Verdict::Injection => "injection",
            agentiam::filter::Verdict::Clean => "clean",
        },
        scan.score
    );
    for f in &scan.findings {
        text.push_str(&format!(
            "\n  {} [{:?}] bytes {}..{} weight {:.2}{}",
            f.rule,
            f.category,
            f.start,
            f.end,
            f.weight,
            f.hidden_in
                .map(|h| format!(" hidden in {h}"))
                .unwrap_or_default()
        ));
    }
    text
}

/// `-` names standard input, as for `token verify -`.
fn is_stdin(path: &std::path::Path) -> bool {
    path.as_os_str() == "-"
}

/// Standard input as one text; more than [`MAX_INPUT`] bytes is refused, never cut short.
fn read_stdin() -> Result<String, CliError> {
    let mut text = String::new();
    std::io::stdin()
        .take(MAX_INPUT + 1)
        .read_to_string(&mut text)
        .map_err(|e| CliError::usage(crate::codes::IO, e))?;
    if text.len() as u64 > MAX_INPUT {
        return Err(CliError::usage(
            crate::codes::INPUT_TOO_LARGE,
            format!("standard input is longer than {MAX_INPUT} bytes"),
        ));
    }
    Ok(text)
}

pub(crate) fn run(args: &ScanArgs, out: &Output) -> Result<(), CliError> {
    if !(args.threshold > 0.0 && args.threshold <= 1.0) {
        return Err(CliError::usage(
            crate::codes::BAD_THRESHOLD,
            "the threshold is in (0, 1]",
        ));
    }
    let filter = with_encoder(
        InjectionFilter::new()
            .with_threshold(args.threshold)
            .with_model(!args.no_model),
        args,
    )?;
    if args.jsonl {
        return jsonl(&filter, args);
    }
    let mut any_injection = false;
    let texts: Vec<(String, String)> = if args.files.is_empty() {
        vec![("stdin".to_owned(), read_stdin()?)]
    } else {
        args.files
            .iter()
            .map(|p| {
                if is_stdin(p) {
                    Ok(("stdin".to_owned(), read_stdin()?))
                } else {
                    Ok((p.display().to_string(), read_file(p)?))
                }
            })
            .collect::<Result<_, CliError>>()?
    };
    for (name, text) in &texts {
        let (scan, mut value) = verdict(&filter, text, args.sanitize);
        any_injection |= scan.verdict == agentiam::filter::Verdict::Injection;
        if let Some(obj) = value.as_object_mut() {
            obj.insert("input".into(), Value::String(name.clone()));
        }
        let mut text = human(name, &scan);
        if let Some(clean) = value.get("sanitized").and_then(Value::as_str) {
            text.push_str("\n--- sanitized ---\n");
            text.push_str(clean);
        }
        out.result(&value, &text);
    }
    // Like grep: 1 when something was found, so scripts can branch on it.
    if any_injection {
        return Err(CliError::silent(1));
    }
    Ok(())
}

fn jsonl(filter: &InjectionFilter, args: &ScanArgs) -> Result<(), CliError> {
    let stdout = std::io::stdout();
    let mut writer = BufWriter::new(stdout.lock());
    let mut scan_reader = |reader: &mut dyn BufRead| -> Result<(), CliError> {
        let mut line = String::new();
        loop {
            line.clear();
            let read = reader
                .take(MAX_INPUT)
                .read_line(&mut line)
                .map_err(|e| CliError::usage(crate::codes::IO, e))?;
            if read == 0 {
                return Ok(());
            }
            let trimmed = line.trim_end_matches(['\n', '\r']);
            if trimmed.trim().is_empty() {
                continue;
            }
            let value = match serde_json::from_str::<Value>(trimmed) {
                Ok(Value::String(text)) if args.features => {
                    json!({"windows": InjectionFilter::model_features(&text)})
                }
                Ok(Value::String(text)) => verdict(filter, &text, args.sanitize).1,
                Ok(_) => {
                    json!({"error": {"code": crate::codes::BAD_INPUT, "message": "each line must be one JSON string"}})
                }
                Err(e) => {
                    json!({"error": {"code": crate::codes::BAD_INPUT, "message": format!("not JSON: {e}")}})
                }
            };
            writeln!(writer, "{value}").map_err(|e| CliError::usage(crate::codes::IO, e))?;
        }
    };
    if args.files.is_empty() {
        scan_reader(&mut std::io::stdin().lock())?;
    } else {
        for path in &args.files {
            if is_stdin(path) {
                scan_reader(&mut std::io::stdin().lock())?;
                continue;
            }
            let file = std::fs::File::open(path).map_err(|e| {
                CliError::usage(
                    crate::codes::IO,
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            scan_reader(&mut std::io::BufReader::new(file))?;
        }
    }
    writer
        .flush()
        .map_err(|e| CliError::usage(crate::codes::IO, e))
}
