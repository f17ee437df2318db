//! `agentiam audit verify|tail|keygen`.

use std::io::Write;
use std::path::{Path, PathBuf};

use agentiam::telemetry::{
    AuditError, FileStore, MemStore, NoteSigner, NoteVerifier, SegmentStore, verify_log,
    without_unwritten_tail,
};
use clap::Subcommand;
use serde_json::{Value, json};

use crate::output::{CliError, Output, read_file};

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Verify a log offline: exit 0 when intact, 1 with the first bad sequence number otherwise.
    Verify {
        /// A log directory (segments `*.jsonl`), or one segment file.
        path: PathBuf,
        /// A signed checkpoint to check the log against (kept apart from the log).
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// The checkpoint signer's verifier key (`name+hash+key`), or a file holding it.
        /// Without --checkpoint, the log directory's own `checkpoint` file is checked.
        #[arg(long)]
        key: Option<String>,
    },
    /// Print the last events of a log readably.
    Tail {
        /// A log directory or one segment file.
        path: PathBuf,
        /// How many of the last events.
        #[arg(short = 'n', long, default_value_t = 10)]
        lines: usize,
        /// Keep printing new events as they are appended.
        #[arg(long)]
        follow: bool,
    },
    /// Create a checkpoint signing key: the signer key goes to --out (mode 0600), the verifier key is printed.
    Keygen {
        /// The log's name (origin), e.g. acme.example/agentiam/audit.
        #[arg(long)]
        name: String,
        /// Where to write the signer key. Refuses to overwrite.
        #[arg(long)]
        out: PathBuf,
    },
}

impl From<AuditError> for CliError {
    fn from(e: AuditError) -> Self {
        match e {
            AuditError::Io(_) => Self::usage(e.code(), &e),
            _ => Self::refusal(e.code(), &e),
        }
    }
}

/// Opens a directory as a file store, or a single segment file as an in-memory store.
fn open_store(path: &Path) -> Result<Box<dyn SegmentStore>, CliError> {
    if path.is_dir() {
        return Ok(Box::new(
            FileStore::open(path).map_err(|e| CliError::usage(crate::codes::IO, e))?,
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| {
        CliError::usage(
            crate::codes::IO,
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    let first = path
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0);
    let store = MemStore::new();
    store.set_segment(first, without_unwritten_tail(bytes));
    Ok(Box::new(store))
}

fn read_key(key: &str) -> Result<NoteVerifier, CliError> {
    let text = if Path::new(key).is_file() {
        read_file(Path::new(key))?
    } else {
        key.to_owned()
    };
    NoteVerifier::from_verifier_key(text.trim()).map_err(|e| CliError::usage(e.code(), e))
}

pub(crate) fn run(cmd: AuditCommand, out: &Output) -> Result<(), CliError> {
    match cmd {
        AuditCommand::Verify {
            path,
            checkpoint,
            key,
        } => {
            let store = open_store(&path)?;
            let note = match (&checkpoint, &key) {
                (Some(cp), Some(_)) => Some(read_file(cp)?),
                (Some(_), None) => {
                    return Err(CliError::usage(
                        crate::codes::MISSING_KEY,
                        "--checkpoint needs --key to check its signature",
                    ));
                }
                // A key alone checks the log's own latest checkpoint: weaker than one kept apart
                // (whoever edits the log can drop it), but it cannot be re-signed without the key.
                (None, Some(_)) => {
                    let own = path.join("checkpoint");
                    if !own.is_file() {
                        return Err(CliError::usage(
                            crate::codes::MISSING_CHECKPOINT,
                            "--key needs --checkpoint (the log has no checkpoint file)",
                        ));
                    }
                    Some(read_file(&own)?)
                }
                (None, None) => None,
            };
            let verifier = key.as_deref().map(read_key).transpose()?;
            let checked = match (&note, &verifier) {
                (Some(n), Some(v)) => Some((n.as_str(), v)),
                _ => None,
            };
            let report = match verify_log(store.as_ref(), checked) {
                Ok(r) => r,
                Err(e) => {
                    if out.json {
                        println!(
                            "{}",
                            json!({"error": {"code": e.code(), "message": e.to_string(), "seq": e.seq()}})
                        );
                        return Err(CliError::silent(1));
                    }
                    return Err(e.into());
                }
            };
            let root: String = report.root.iter().map(|b| format!("{b:02x}")).collect();
            let cp = report
                .checkpoint
                .as_ref()
                .map(|c| json!({"origin": c.origin, "size": c.size}));
            let human = match &report.checkpoint {
                Some(c) => format!(
                    "intact: {} records in {} segments, consistent with the checkpoint of {} at size {}",
                    report.records, report.segments, c.origin, c.size
                ),
                None => format!(
                    "intact: {} records in {} segments (no checkpoint given: a cut tail or a consistently rewritten history would not show)",
                    report.records, report.segments
                ),
            };
            out.result(
                &json!({"valid": true, "records": report.records, "segments": report.segments, "root": root, "checkpoint": cp}),
                &human,
            );
            Ok(())
        }
        AuditCommand::Tail {
            path,
            lines,
            follow,
        } => tail(&path, lines, follow, out),
        AuditCommand::Keygen { name, out: file } => {
            let signer = NoteSigner::generate(&name).map_err(|e| CliError::usage(e.code(), e))?;
            crate::keys::write_private(
                &file,
                signer
                    .private_key()
                    .map_err(|e| CliError::usage(e.code(), e))?
                    .as_bytes(),
            )?;
            let vkey = signer.verifier_key();
            out.result(&json!({"name": name, "verifier_key": vkey, "signer_key_file": file.display().to_string()}), &vkey);
            Ok(())
        }
    }
}

fn describe(line: &str) -> String {
    let Ok(v) = serde_json::from_str::<Value>(line) else {
        return format!(
            "(unreadable record) {}",
            line.chars().take(80).collect::<String>()
        );
    };
    let text = |path: &str| {
        v.pointer(path)
            .and_then(Value::as_str)
            .unwrap_or("-")
            .to_owned()
    };
    let num = |path: &str| v.pointer(path).map(Value::to_string).unwrap_or_default();
    let tool = v
        .pointer("/event/tool/name")
        .and_then(Value::as_str)
        .map(|t| format!(" tool={t}"))
        .unwrap_or_default();
    let input = v
        .pointer("/event/input/content")
        .and_then(Value::as_str)
        .map(|t| format!(" \"{}\"", t.chars().take(80).collect::<String>()))
        .unwrap_or_default();
    let code = v
        .pointer("/event/decision/code")
        .and_then(Value::as_str)
        .map(|c| format!(" ({c})"))
        .unwrap_or_default();
    format!(
        "#{} {} {} {}{tool}{input} -> {}{code}",
        num("/seq"),
        num("/event/time_unix_ms"),
        text("/event/kind"),
        text("/event/agent/spiffe_id"),
        text("/event/decision/outcome"),
    )
}

fn all_lines(path: &Path) -> Result<Vec<String>, CliError> {
    let store = open_store(path)?;
    let mut lines = Vec::new();
    for seg in store
        .segments()
        .map_err(|e| CliError::usage(crate::codes::IO, e))?
    {
        let bytes = store
            .read(seg)
            .map_err(|e| CliError::usage(crate::codes::IO, e))?;
        lines.extend(String::from_utf8_lossy(&bytes).lines().map(str::to_owned));
    }
    Ok(lines)
}

fn tail(path: &Path, n: usize, follow: bool, out: &Output) -> Result<(), CliError> {
    let mut shown = 0usize;
    let mut first = true;
    loop {
        let lines = all_lines(path)?;
        let start = if first {
            lines.len().saturating_sub(n)
        } else {
            shown
        };
        let mut stdout = std::io::stdout().lock();
        for line in lines.iter().skip(start) {
            let text = if out.json {
                line.clone()
            } else {
                describe(line)
            };
            if writeln!(stdout, "{text}").is_err() {
                return Ok(());
            }
        }
        let _ = stdout.flush();
        shown = lines.len();
        first = false;
        if !follow {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}
