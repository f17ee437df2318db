//! `agentiam baseline`: inspect, freeze, unfreeze and reset the behaviour baselines a guard
//! learned (the file written by `Baselines::save`, named by a guard configuration's
//! `baselines.file`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use std::collections::BTreeMap;
use std::sync::Arc;

use agentiam::delegation::Grant;
use agentiam::guard::behaviour::RoleProfile;
use agentiam::guard::{
    BaselineSettings, Baselines, GuardConfig, GuardRequest, Principal, RoleMap, ToolSpec,
    VerifiedPeer,
};
use agentiam::telemetry::{AuditEvent, FileStore, Outcome, SegmentStore, verify_log};
use agentiam::token::{ScopeSet, SystemClock};
use agentiam_guard::behaviour::{RATE_WINDOW_NAMES, human_number};
use clap::Subcommand;
use serde_json::json;

use crate::output::{CliError, Output};

#[derive(Debug, Subcommand)]
pub(crate) enum BaselineCommand {
    /// Learn baselines from an activity log: the log is verified first, then every allowed
    /// tool call is replayed in order through the guard configuration's roles and tools.
    Learn {
        /// The activity log directory.
        #[arg(long)]
        audit_log: PathBuf,
        /// The guard configuration (its `tools` and `baselines` settings).
        #[arg(long)]
        config: PathBuf,
        /// The baselines file to add to (created if missing).
        #[arg(long)]
        file: PathBuf,
    },
    /// List the profiles in a baselines file (roles, `role<parent-role` pairs, agents).
    List {
        /// The baselines file.
        #[arg(long)]
        file: PathBuf,
    },
    /// Show what a role has been seen to do: tools, categories, rates, arguments, hours.
    Show {
        /// The role (or `role<parent-role`, or an agent's SPIFFE ID).
        role: String,
        /// The baselines file.
        #[arg(long)]
        file: PathBuf,
    },
    /// Stop learning for a role (while it is under suspicion).
    Freeze {
        /// The role.
        role: String,
        /// The baselines file.
        #[arg(long)]
        file: PathBuf,
    },
    /// Resume learning for a role.
    Unfreeze {
        /// The role.
        role: String,
        /// The baselines file.
        #[arg(long)]
        file: PathBuf,
    },
    /// Forget what a role learned (its declaration stays); it learns again from scratch.
    Reset {
        /// The role.
        role: String,
        /// The baselines file.
        #[arg(long)]
        file: PathBuf,
    },
}

fn open(file: &Path) -> Result<Baselines, CliError> {
    let baselines = Baselines::new(RoleMap::new(), BaselineSettings::default());
    baselines
        .load(file)
        .map_err(|e| CliError::usage(agentiam::guard::codes::BASELINE_UNREADABLE, e))?;
    Ok(baselines)
}

fn missing(role: &str) -> CliError {
    CliError::usage(
        agentiam::guard::codes::BASELINE_UNKNOWN_ROLE,
        format!("no profile {role:?} in the baselines file"),
    )
}

pub(crate) fn run(cmd: BaselineCommand, out: &Output) -> Result<(), CliError> {
    match cmd {
        BaselineCommand::Learn {
            audit_log,
            config,
            file,
        } => learn(&audit_log, &config, &file, out)?,
        BaselineCommand::List { file } => {
            let keys = open(&file)?.profile_keys();
            out.result(&json!({ "profiles": keys }), &keys.join("\n"));
        }
        BaselineCommand::Show { role, file } => {
            let profile = open(&file)?.profile(&role).ok_or_else(|| missing(&role))?;
            let value = serde_json::to_value(&profile)
                .map_err(|e| CliError::usage(agentiam::guard::codes::BASELINE_UNREADABLE, e))?;
            out.result(
                &json!({ "role": role, "profile": value }),
                describe_profile(&role, &profile).trim_end(),
            );
        }
        BaselineCommand::Freeze { role, file } => {
            change(&role, &file, out, "frozen", |b| b.freeze(&role, true))?
        }
        BaselineCommand::Unfreeze { role, file } => {
            change(&role, &file, out, "unfrozen", |b| b.freeze(&role, false))?;
        }
        BaselineCommand::Reset { role, file } => {
            change(&role, &file, out, "reset", |b| b.reset(&role))?;
        }
    }
    Ok(())
}

/// Applies a change to one profile and writes the file back (atomically).
fn change(
    role: &str,
    file: &Path,
    out: &Output,
    done: &str,
    apply: impl FnOnce(&Baselines) -> bool,
) -> Result<(), CliError> {
    let baselines = open(file)?;
    if !apply(&baselines) {
        return Err(missing(role));
    }
    baselines
        .save(file)
        .map_err(|e| CliError::usage(crate::codes::IO, e))?;
    out.result(
        &json!({ "role": role, "result": done }),
        &format!("{role}: {done}"),
    );
    Ok(())
}

/// The principal an audit event was decided for, as far as the event tells: the presenting
/// agent, delegated from the previous agent in the chain when that is an agent (a SPIFFE ID).
/// `None` when the presenting agent is not a SPIFFE ID (the event is not learned from).
fn principal_of(event: &AuditEvent) -> Option<Principal> {
    let presenter = event.agent.spiffe_id.clone();
    let chain = &event.delegation_chain;
    let parent = chain
        .len()
        .checked_sub(2)
        .and_then(|i| chain.get(i))
        .filter(|p| p.starts_with("spiffe://") && **p != presenter);
    Some(match parent {
        Some(parent) => Principal::from_grant(&Grant {
            scopes: ScopeSet::default(),
            exp: i64::MAX,
            budget: None,
            principal: parent.clone(),
            holder: Some(presenter),
            depth: 1,
            task: None,
            holder_jkt: String::new(),
            budgets: Vec::new(),
            root_exp: i64::MAX,
            intent: None,
        }),
        // The log was verified first: the agent it records is the one that was authenticated.
        None => Principal::from_workload(
            &VerifiedPeer::verified_elsewhere(&presenter, i64::MAX).ok()?,
            ScopeSet::default(),
        ),
    })
}

fn learn(audit_log: &Path, config: &Path, file: &Path, out: &Output) -> Result<(), CliError> {
    let config = GuardConfig::from_json(&crate::output::read_file(config)?)
        .map_err(|e| CliError::usage(e.code(), e))?;
    let mut settings = config.baselines.clone().ok_or_else(|| {
        CliError::usage(
            agentiam::guard::codes::BASELINE_NOT_CONFIGURED,
            "the guard configuration has no \"baselines\" section (roles, thresholds)",
        )
    })?;
    settings.file = None;
    let baselines = settings
        .baselines(Arc::new(SystemClock))
        .map_err(|e| CliError::usage(e.code(), e))?;
    if file.exists() {
        baselines
            .load(file)
            .map_err(|e| CliError::usage(agentiam::guard::codes::BASELINE_UNREADABLE, e))?;
        for (role, declared) in &settings.declared {
            baselines.declare(role, declared.clone());
        }
    }
    let tools: BTreeMap<String, ToolSpec> = config
        .tools
        .iter()
        .map(|t| t.spec().map(|s| (t.name.clone(), s)))
        .collect::<Result<_, _>>()
        .map_err(|e| CliError::usage(e.code(), e))?;
    // Learn only from a log that verifies: a tampered log would teach a tampered baseline.
    let store = FileStore::open(audit_log).map_err(|e| CliError::usage(crate::codes::IO, e))?;
    let report = verify_log(&store, None).map_err(|e| CliError::refusal(e.code(), &e))?;
    let (mut learned, mut skipped, mut seen) = (0u64, 0u64, 0u64);
    for segment in store
        .segments()
        .map_err(|e| CliError::usage(crate::codes::IO, e))?
    {
        let bytes = store
            .read(segment)
            .map_err(|e| CliError::usage(crate::codes::IO, e))?;
        for line in String::from_utf8_lossy(&bytes).lines() {
            let Ok(record) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let Some(Ok(event)) = record
                .get("event")
                .map(|e| serde_json::from_value::<AuditEvent>(e.clone()))
            else {
                continue;
            };
            if event.kind != "tool_call" || event.decision.outcome != Outcome::Allow {
                continue;
            }
            seen += 1;
            let Some((call, spec)) = event
                .tool
                .as_ref()
                .and_then(|call| tools.get(&call.name).map(|spec| (call, spec)))
            else {
                skipped += 1;
                continue;
            };
            let Some(principal) = principal_of(&event) else {
                skipped += 1;
                continue;
            };
            let request = GuardRequest::new(&principal, &call.name, &call.args);
            let at = event.time_unix_ms.div_euclid(1000);
            if baselines.learn_call(&request, spec, at, event.approval_ref.is_some()) {
                learned += 1;
            } else {
                skipped += 1;
            }
        }
    }
    baselines
        .save(file)
        .map_err(|e| CliError::usage(crate::codes::IO, e))?;
    let profiles = baselines.profile_keys();
    out.result(
        &json!({
            "records": report.records,
            "allowed_calls": seen,
            "learned": learned,
            "skipped": skipped,
            "profiles": profiles,
            "file": file.display().to_string(),
        }),
        &format!(
            "learned {learned} of {seen} allowed tool calls ({} records verified; {skipped} skipped: unknown tool, or unusual and never approved) into {} ({})",
            report.records,
            file.display(),
            profiles.join(", ")
        ),
    );
    Ok(())
}

/// Reports a profile for people (`agentiam baseline show`).
fn describe_profile(key: &str, profile: &RoleProfile) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "profile {key}: {} calls learned{}",
        profile.observations,
        if profile.frozen { " (frozen)" } else { "" }
    );
    let total = profile.observations.max(1) as f64;
    let mut tools: Vec<_> = profile.tools.iter().collect();
    tools.sort_by(|a, b| b.1.cmp(a.1));
    let _ = writeln!(out, "tools:");
    for (tool, n) in tools {
        let _ = writeln!(
            out,
            "  {tool:<32} {n:>10}  {:>5.1}%",
            *n as f64 * 100.0 / total
        );
    }
    let cats: Vec<String> = profile.categories.keys().cloned().collect();
    let _ = writeln!(out, "resource categories: {}", cats.join(", "));
    for (hist, window) in profile.rates.iter().zip(RATE_WINDOW_NAMES) {
        let _ = writeln!(
            out,
            "calls per agent in the last {:<10}: median {}, p99 {}, max {}",
            window,
            human_number(hist.p50()),
            human_number(hist.p99()),
            human_number(hist.max())
        );
    }
    let b = &profile.bytes_read;
    let _ = writeln!(
        out,
        "bytes read per agent in the last hour: median {}, p99 {}, max {}",
        human_number(b.p50()),
        human_number(b.p99()),
        human_number(b.max())
    );
    for (tool, args) in &profile.arguments {
        for (name, hist) in args {
            let _ = writeln!(
                out,
                "argument {tool}.{name}: {} values, median {}, p99 {}, max {}",
                hist.count(),
                human_number(hist.p50()),
                human_number(hist.p99()),
                human_number(hist.max())
            );
        }
    }
    if profile.hours.len() == 168 {
        let mut busy: Vec<String> = Vec::new();
        for (day, name) in ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
            .iter()
            .enumerate()
        {
            let hours: Vec<usize> = (0..24)
                .filter(|h| {
                    profile
                        .hours
                        .get(day * 24 + h)
                        .is_some_and(|&n| n as f64 > total * 0.001)
                })
                .collect();
            if let (Some(first), Some(last)) = (hours.first(), hours.last()) {
                busy.push(format!("{} {first:02}-{:02}", name, last + 1));
            }
        }
        let _ = writeln!(out, "active hours (UTC): {}", busy.join(", "));
    }
    let _ = writeln!(out, "distinct tool sequences: {}", profile.ngrams.len());
    if let Some(d) = &profile.declared {
        let _ = writeln!(
            out,
            "declared: tools [{}], categories [{}], hourly calls {}, arguments {:?}",
            d.tools.join(", "),
            d.categories.join(", "),
            d.hourly_calls
                .map(human_number)
                .unwrap_or_else(|| "-".into()),
            d.arguments
        );
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test")]
    use super::*;

    #[test]
    fn a_profile_is_shown_with_its_tools_and_arguments() {
        let baselines = Baselines::new(
            RoleMap::new().role("support", "spiffe://acme.test/agent/support"),
            BaselineSettings::default(),
        );
        baselines.declare(
            "support",
            agentiam::guard::behaviour::DeclaredProfile {
                tools: vec!["tickets.read".into()],
                hourly_calls: Some(120.0),
                ..Default::default()
            },
        );
        let shown = describe_profile("support", &baselines.profile("support").unwrap());
        assert!(shown.starts_with("profile support:"), "{shown}");
        assert!(shown.contains("declared: tools [tickets.read]"), "{shown}");
        assert!(shown.contains("hourly calls 120"), "{shown}");
        assert!(
            shown.contains("calls per agent in the last minute"),
            "{shown}"
        );
    }
}
