//! The reason codes the `agentiam` command raises itself (see `agentiam-codes`).

agentiam_codes::codes! {
    raised_by = "agentiam-cli";
    /// A file or stream could not be read or written.
    IO = "cli.io", 0;
    /// The input is not what the command reads (JSON of the expected shape).
    BAD_INPUT = "cli.bad_input", 0;
    /// The input is larger than the command examines.
    INPUT_TOO_LARGE = "cli.input_too_large", 0;
    /// A `--threshold` outside 0..=1.
    BAD_THRESHOLD = "cli.bad_threshold", 0;
    /// `agentiam scan --encoder DIR`: no transformer encoder could be loaded from DIR.
    ENCODER_UNAVAILABLE = "cli.encoder_unavailable", 0;
    /// An agent file that does not describe an agent.
    BAD_AGENT_FILE = "cli.bad_agent_file", 0;
    /// A digest that is not `sha256:` and 64 hex digits.
    BAD_DIGEST = "cli.bad_digest", 0;
    /// An `--action` that is not `resource:action`.
    BAD_ACTION = "cli.bad_action", 0;
    /// `--args` that are not JSON.
    BAD_ARGS = "cli.bad_args", 0;
    /// A signed checkpoint was given without the key to verify it.
    MISSING_KEY = "cli.missing_key", 0;
    /// A verification key was given but the log holds no checkpoint to verify.
    MISSING_CHECKPOINT = "cli.missing_checkpoint", 0;
    /// The demo's activity log could not be opened or written.
    AUDIT_UNAVAILABLE = "audit.unavailable", 0;
    /// A step of `agentiam demo` did not turn out as the demo expects.
    DEMO_UNEXPECTED = "demo.unexpected", 0;
    /// The broker answered an error without a reason code.
    BROKER_UNKNOWN = "broker.unknown", 0;
    /// The broker's answer could not be read as JSON with a reason code.
    BROKER_UNEXPECTED_ANSWER = "broker.unexpected_answer", 0;
}

/// Every registered code: the library crates', the broker's, its client's and this command's.
pub(crate) fn registry() -> Vec<&'static agentiam::codes::CodeInfo> {
    agentiam::codes::library()
        .chain(agentiam_broker_client::codes::ALL)
        .chain(agentiam_broker::codes::ALL)
        .chain(ALL)
        .collect()
}

/// `docs/reason-codes.md`: one table per family, codes in declaration order.
pub(crate) fn markdown(registry: &[&agentiam::codes::CodeInfo]) -> String {
    use std::fmt::Write as _;
    let mut families: Vec<&str> = Vec::new();
    for info in registry {
        if !families.contains(&info.family()) {
            families.push(info.family());
        }
    }
    let mut out = String::from(
        "# Reason codes\n\n\
         Every refusal and error in agentiam carries one of these codes.\n\
         They are a contract: a code is never renamed or removed, and new codes are only added.\n\
         This file is generated from each crate's `codes` module (`agentiam_codes::codes!`); do not edit it by hand.\n\
         Regenerate it with `AGENTIAM_REGENERATE=1 cargo test -p agentiam-cli reason_codes`; the same test fails when a code listed here disappears.\n\n\
         HTTP is the status a guarded service or the broker answers with; `-` means the code is only returned to callers (Rust errors, Python exceptions, CLI output, the activity log).\n",
    );
    for family in families {
        let _ = write!(
            out,
            "\n## `{family}`\n\n| code | meaning | HTTP | raised by |\n|---|---|---|---|\n"
        );
        for info in registry.iter().filter(|i| i.family() == family) {
            let status = info.status.map_or("-".to_owned(), |s| s.to_string());
            let _ = writeln!(
                out,
                "| `{}` | {} | {status} | `{}` |",
                info.code,
                info.meaning().replace('|', "\\|"),
                info.raised_by
            );
        }
    }
    out
}

#[cfg(test)]
mod reason_codes {
    //! The registry is the contract: every code is declared once, well formed, published in
    //! `docs/reason-codes.md` (generated, never edited by hand), and a published code never
    //! disappears. No source file outside a `codes` module writes a code string.
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        reason = "test"
    )]

    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    use super::*;

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    #[test]
    fn every_code_is_declared_once_and_well_formed() {
        let mut seen = BTreeSet::new();
        for info in registry() {
            assert!(agentiam::codes::is_well_formed(info.code), "{}", info.code);
            assert!(seen.insert(info.code), "{} is declared twice", info.code);
            assert!(!info.meaning().is_empty(), "{} has no meaning", info.code);
        }
    }

    #[test]
    fn the_published_list_only_grows_and_is_fresh() {
        let path = root().join("docs/reason-codes.md");
        let published = std::fs::read_to_string(&path).unwrap_or_default();
        let registered: BTreeSet<&str> = registry().iter().map(|i| i.code).collect();
        // A code in the published list that the registry lost was removed or renamed.
        let gone: Vec<&str> = published
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split('`').next())
            .filter(|code| !registered.contains(code))
            .collect();
        assert!(
            gone.is_empty(),
            "published reason codes were removed or renamed: {gone:?} (codes are a contract: keep them)"
        );
        let fresh = markdown(&registry());
        if std::env::var_os("AGENTIAM_REGENERATE").is_some() {
            std::fs::write(&path, &fresh).unwrap();
            return;
        }
        assert!(
            published == fresh,
            "docs/reason-codes.md is stale: regenerate it with `AGENTIAM_REGENERATE=1 cargo test -p agentiam-cli reason_codes`"
        );
    }

    /// Every `"family.reason"` string literal in non-test Rust source (comments and
    /// `#[cfg(test)]` modules aside) outside a `codes.rs`, and every one in the Python package.
    fn literals(families: &BTreeSet<&str>) -> Vec<(PathBuf, String)> {
        let mut files = Vec::new();
        let mut dirs = vec![
            root().join("crates"),
            root().join("bindings/python/src"),
            root().join("python/agentiam"),
        ];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default();
                if path.is_dir() {
                    if !matches!(name, "tests" | "benches" | "examples" | "target") {
                        dirs.push(path);
                    }
                } else if (name.ends_with(".rs") && name != "codes.rs") || name.ends_with(".py") {
                    files.push(path);
                }
            }
        }
        let mut found = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            let text = text.split("#[cfg(test)]").next().unwrap_or_default();
            for line in text.lines() {
                let line = line.trim_start();
                if line.starts_with("//") || line.starts_with('#') {
                    continue;
                }
                for quote in ['"', '\''] {
                    for piece in line.split(quote).skip(1).step_by(2) {
                        // A file name (`broker.sqlite3`, `checkpoint.json`) is not a code.
                        if let Some((family, reason)) = piece.split_once('.')
                            && families.contains(family)
                            && agentiam::codes::is_well_formed(piece)
                            && !reason.bytes().any(|b| b.is_ascii_digit())
                            && !matches!(
                                reason,
                                "json" | "jwk" | "pem" | "db" | "toml" | "log" | "txt" | "md"
                            )
                        {
                            found.push((file.clone(), piece.to_owned()));
                        }
                    }
                }
            }
        }
        found
    }

    #[test]
    fn no_code_string_is_written_outside_a_codes_module() {
        let registry = registry();
        let families: BTreeSet<&str> = registry.iter().map(|i| i.family()).collect();
        let registered: BTreeSet<&str> = registry.iter().map(|i| i.code).collect();
        let mut stray = Vec::new();
        for (file, code) in literals(&families) {
            let python = file.extension().is_some_and(|e| e == "py");
            // Python cannot import the Rust constants: it may write a code, if it is registered.
            if !python || !registered.contains(code.as_str()) {
                stray.push(format!("{}: {code}", file.display()));
            }
        }
        assert!(
            stray.is_empty(),
            "code strings outside a codes module (declare them with agentiam_codes::codes! and use the constant):\n{}",
            stray.join("\n")
        );
    }
}
