//! Human and JSON output, and the CLI's error type.

use serde_json::{Value, json};

/// An error with a stable code, printed as `{"error": {"code", "message"}}` under `--json`.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub(crate) struct CliError {
    pub(crate) code: String,
    pub(crate) message: String,
    /// 1 for a refusal (the token is bad), 2 for a usage or input problem.
    pub(crate) exit: u8,
}

impl agentiam::codes::ReasonCode for CliError {
    fn code(&self) -> &str {
        &self.code
    }
}

impl CliError {
    pub(crate) fn refusal(code: &str, message: impl std::fmt::Display) -> Self {
        Self {
            code: code.to_owned(),
            message: message.to_string(),
            exit: 1,
        }
    }

    pub(crate) fn usage(code: &str, message: impl std::fmt::Display) -> Self {
        Self {
            code: code.to_owned(),
            message: message.to_string(),
            exit: 2,
        }
    }

    /// A failure whose output was already printed.
    pub(crate) fn silent(exit: u8) -> Self {
        Self {
            code: String::new(),
            message: String::new(),
            exit,
        }
    }

    pub(crate) fn exit_status(&self) -> u8 {
        self.exit
    }
}

impl From<agentiam::token::TokenError> for CliError {
    fn from(e: agentiam::token::TokenError) -> Self {
        Self::refusal(e.code(), &e)
    }
}

impl From<agentiam::identity::IdentityError> for CliError {
    fn from(e: agentiam::identity::IdentityError) -> Self {
        Self::usage(e.code(), &e)
    }
}

/// Reads a file, mapping failure to `cli.io`.
pub(crate) fn read_file(path: &std::path::Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|e| {
        CliError::usage(
            crate::codes::IO,
            format!("cannot read {}: {e}", path.display()),
        )
    })
}

/// Where results go.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Output {
    pub(crate) json: bool,
}

impl Output {
    /// Prints a result: the JSON value under `--json`, else the human text.
    pub(crate) fn result(&self, value: &Value, human: &str) {
        if self.json {
            println!("{value}");
        } else {
            println!("{human}");
        }
    }

    pub(crate) fn error(&self, e: &CliError) {
        if e.code.is_empty() {
            return;
        }
        if self.json {
            println!(
                "{}",
                json!({"error": {"code": e.code, "message": e.message}})
            );
        } else {
            eprintln!("error: {}: {}", e.code, e.message);
        }
    }
}
