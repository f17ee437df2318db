//! `agentiam approvals list|show|approve|deny|add-approver`: the broker's approvals from the
//! command line, with the administrator's secret (from `AGENTIAM_ADMIN_SECRET`).

use std::io::Read as _;

use agentiam_broker_client::{BrokerClient, RequestBody};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::output::{CliError, Output};

const ADMIN_SECRET_ENV: &str = "AGENTIAM_ADMIN_SECRET";

#[derive(Debug, Args)]
pub(crate) struct Broker {
    /// The broker's URL.
    #[arg(long, env = "AGENTIAM_BROKER", default_value = "http://127.0.0.1:8700")]
    broker: String,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ApprovalsCommand {
    /// List approval requests (pending by default).
    List {
        #[command(flatten)]
        broker: Broker,
        /// pending, approved, denied, expired or all.
        #[arg(long, default_value = "pending")]
        status: String,
    },
    /// Approve a pending request; the broker signs the approval.
    Approve {
        #[command(flatten)]
        broker: Broker,
        /// The request's id.
        id: String,
        /// Who is approving (recorded in the activity log).
        #[arg(long)]
        approver: String,
    },
    /// Deny a pending request.
    Deny {
        #[command(flatten)]
        broker: Broker,
        /// The request's id.
        id: String,
        /// Who is denying.
        #[arg(long)]
        approver: String,
        /// Why (shown to the agent).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Create or reset an approver's console sign-in; the password is read from stdin.
    AddApprover {
        #[command(flatten)]
        broker: Broker,
        /// The approver's name.
        name: String,
    },
}

fn secret() -> Result<String, CliError> {
    std::env::var(ADMIN_SECRET_ENV).map_err(|_| {
        CliError::usage(
            agentiam_broker::codes::CONFIG_INVALID,
            format!("set {ADMIN_SECRET_ENV} to the broker administrator's secret"),
        )
    })
}

fn send(broker: &Broker, method: &str, path: &str, body: RequestBody) -> Result<Value, CliError> {
    let bearer = format!("Bearer {}", secret()?);
    let client = BrokerClient::new(&broker.broker);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::usage(crate::codes::IO, e))?;
    let (status, answer) = runtime
        .block_on(client.send(method, path, &[("authorization", &bearer)], body))
        .map_err(|e| CliError::usage(e.code(), e))?;
    if (200..300).contains(&status) {
        return Ok(answer);
    }
    let code = answer
        .get("agentiam_code")
        .and_then(Value::as_str)
        .unwrap_or(crate::codes::BROKER_UNEXPECTED_ANSWER);
    let message = answer
        .get("error_description")
        .and_then(Value::as_str)
        .map_or_else(|| format!("the broker answered {status}"), str::to_owned);
    Err(CliError::refusal(code, message))
}

fn line(r: &Value) -> String {
    let s = |p: &str| r.pointer(p).and_then(Value::as_str).unwrap_or("-");
    format!(
        "{}  {:<9} {:<18} {}  task {}  ({})",
        s("/id"),
        s("/status"),
        s("/request/tool"),
        s("/requester/agent"),
        s("/requester/task"),
        s("/request/code"),
    )
}

pub(crate) fn run(cmd: ApprovalsCommand, out: &Output) -> Result<(), CliError> {
    match cmd {
        ApprovalsCommand::List { broker, status } => {
            let answer = send(
                &broker,
                "GET",
                &format!("/admin/approvals?status={status}"),
                RequestBody::Empty,
            )?;
            let list = answer
                .get("approvals")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let human = if list.is_empty() {
                format!("no {status} approval requests")
            } else {
                list.iter().map(line).collect::<Vec<_>>().join("\n")
            };
            out.result(&answer, &human);
            Ok(())
        }
        ApprovalsCommand::Approve {
            broker,
            id,
            approver,
        } => {
            let answer = send(
                &broker,
                "POST",
                &format!("/admin/approvals/{id}/approve"),
                RequestBody::Json(json!({"approver": approver})),
            )?;
            out.result(
                &answer,
                &format!("approved {id} as {approver}; the broker signed it"),
            );
            Ok(())
        }
        ApprovalsCommand::Deny {
            broker,
            id,
            approver,
            reason,
        } => {
            let answer = send(
                &broker,
                "POST",
                &format!("/admin/approvals/{id}/deny"),
                RequestBody::Json(json!({"approver": approver, "reason": reason})),
            )?;
            out.result(&answer, &format!("denied {id} as {approver}"));
            Ok(())
        }
        ApprovalsCommand::AddApprover { broker, name } => {
            let mut password = String::new();
            std::io::stdin()
                .read_to_string(&mut password)
                .map_err(|e| CliError::usage(crate::codes::IO, e))?;
            let password = password.trim_end_matches(['\r', '\n']).to_owned();
            let answer = send(
                &broker,
                "POST",
                "/admin/approvers",
                RequestBody::Json(json!({"name": name, "password": password})),
            )?;
            out.result(
                &answer,
                &format!(
                    "approver {name} can now sign in at {}/console",
                    broker.broker.trim_end_matches('/')
                ),
            );
            Ok(())
        }
    }
}
