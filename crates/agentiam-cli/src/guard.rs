//! `agentiam guard decide|approve|policy`: the guard offline, for operators and test vectors.

use std::path::PathBuf;
use std::sync::Arc;

use agentiam::guard::{ApprovalRequest, Decision, GuardConfig, PolicyEngine};
use agentiam::identity::SigningKey;
use agentiam::token::{Clock, FixedClock, SystemClock};
use agentiam_guard::config::{CallInput, decision_json};
use clap::Subcommand;
use serde_json::{Value, json};

use crate::output::{CliError, Output, read_file};

#[derive(Debug, Subcommand)]
pub(crate) enum GuardCommand {
    /// Decide one call (or a sequence sharing one guard) against a configuration.
    /// Exit 0 when the last call is allowed, 1 when it is denied or needs a human.
    Decide {
        /// Guard configuration JSON (issuer, audience, jwks, policy, tools, approvers, workloads).
        #[arg(long)]
        config: PathBuf,
        /// The call JSON (token, tool, arguments, tainted, approval, ...), an array of calls, or `-` for stdin.
        #[arg(long)]
        request: PathBuf,
        /// Decide at this time (seconds since the epoch) instead of now.
        #[arg(long)]
        at: Option<i64>,
    },
    /// Sign an approval request (from a `confirm` decision) with an approver's private JWK.
    Approve {
        /// The approval request JSON (the `approval_request` member of a decision), or `-`.
        #[arg(long)]
        request: PathBuf,
        /// The approver's private Ed25519 JWK file.
        #[arg(long)]
        key: PathBuf,
    },
    /// Parse a Cedar policy file (and validate it against a schema file) the way the guard does.
    Policy {
        /// Cedar policy file.
        policy: PathBuf,
        /// Cedar schema file; `default` for the guard's own schema.
        #[arg(long)]
        schema: Option<String>,
    },
}

fn read_input(path: &std::path::Path) -> Result<String, CliError> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin().take_capped(), &mut text)
            .map_err(|e| CliError::usage(crate::codes::IO, e))?;
        Ok(text)
    } else {
        read_file(path)
    }
}

trait TakeCapped: std::io::Read + Sized {
    fn take_capped(self) -> std::io::Take<Self> {
        self.take(agentiam::guard::config::MAX_DOCUMENT_BYTES as u64 + 1)
    }
}
impl<R: std::io::Read> TakeCapped for R {}

fn set(value: &mut Value, key: &str, member: Value) {
    if let Value::Object(map) = value {
        map.insert(key.to_owned(), member);
    }
}

fn guard_error(e: &agentiam::guard::GuardError) -> CliError {
    CliError::usage(e.code(), e)
}

pub(crate) fn run(cmd: GuardCommand, out: &Output) -> Result<(), CliError> {
    match cmd {
        GuardCommand::Decide {
            config,
            request,
            at,
        } => {
            let config =
                GuardConfig::from_json(&read_file(&config)?).map_err(|e| guard_error(&e))?;
            let clock: Arc<dyn Clock> = match at {
                Some(t) => Arc::new(FixedClock::new(t)),
                None => Arc::new(SystemClock),
            };
            let (guard, auth) = config.build(clock).map_err(|e| guard_error(&e))?;
            let text = read_input(&request)?;
            if text.len() > agentiam::guard::config::MAX_DOCUMENT_BYTES {
                return Err(CliError::usage(
                    crate::codes::INPUT_TOO_LARGE,
                    "request document is over 1 MiB",
                ));
            }
            let doc: Value = serde_json::from_str(&text)
                .map_err(|e| CliError::usage(crate::codes::BAD_INPUT, e))?;
            let calls = match doc {
                Value::Array(items) => items,
                one => vec![one],
            };
            let mut decisions = Vec::with_capacity(calls.len());
            let mut last = None;
            for call in calls {
                let input: CallInput = serde_json::from_value(call)
                    .map_err(|e| CliError::usage(crate::codes::BAD_INPUT, e))?;
                let d = input.decide(&guard, &auth);
                decisions.push(decision_json(&d));
                last = Some(d);
            }
            let Some(last) = last else {
                return Err(CliError::usage(
                    crate::codes::BAD_INPUT,
                    "no calls in the request",
                ));
            };
            let mut result = decision_json(&last);
            if decisions.len() > 1 {
                set(&mut result, "sequence", Value::Array(decisions));
            }
            match &last {
                Decision::Allow(_) => {
                    out.result(&result, "allow");
                    Ok(())
                }
                Decision::Deny(d) => {
                    set(
                        &mut result,
                        "error",
                        json!({"code": d.code(), "message": d.message()}),
                    );
                    out.result(&result, &format!("deny {}: {}", d.code(), d.message()));
                    Err(CliError::silent(1))
                }
                Decision::NeedsConfirmation(r) => {
                    set(
                        &mut result,
                        "error",
                        json!({"code": r.code, "message": "a human's approval is required"}),
                    );
                    let human = format!(
                        "confirm {}: {} needs a human's approval (digest {}, expires {})\n{}",
                        r.code,
                        r.tool,
                        r.digest,
                        r.expires_at,
                        serde_json::to_string_pretty(&r).unwrap_or_default()
                    );
                    out.result(&result, &human);
                    Err(CliError::silent(1))
                }
            }
        }
        GuardCommand::Approve { request, key } => {
            let text = read_input(&request)?;
            let req: ApprovalRequest = serde_json::from_str(&text)
                .map_err(|e| CliError::usage(crate::codes::BAD_INPUT, e))?;
            let key = SigningKey::from_private_jwk(read_file(&key)?.trim())?;
            let approval =
                agentiam::guard::Approval::sign(&req, &key).map_err(|e| guard_error(&e))?;
            let value = serde_json::to_value(&approval)
                .map_err(|e| CliError::usage(crate::codes::BAD_INPUT, e))?;
            out.result(&value, &value.to_string());
            Ok(())
        }
        GuardCommand::Policy { policy, schema } => {
            let text = read_file(&policy)?;
            let schema = match schema.as_deref() {
                None => None,
                Some("default") => Some(agentiam::guard::policy::SCHEMA.to_owned()),
                Some(path) => Some(read_file(&PathBuf::from(path))?),
            };
            let engine =
                PolicyEngine::new(&text, schema.as_deref()).map_err(|e| guard_error(&e))?;
            let value = json!({"valid": true, "version": engine.version(), "reads_arguments": engine.reads_arguments()});
            out.result(&value, &format!("valid ({})", engine.version()));
            Ok(())
        }
    }
}
