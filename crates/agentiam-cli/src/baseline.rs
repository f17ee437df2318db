//! `agentiam baseline`: inspect, freeze, unfreeze and reset the behaviour baselines a guard
//! learned (the file written by `Baselines::save`, named by a guard configuration's
//! `baselines.file`).

use std::path::{Path, PathBuf};

use agentiam::guard::{BaselineSettings, Baselines, RoleMap, describe_profile};
use clap::Subcommand;
use serde_json::json;

use crate::output::{CliError, Output};

#[derive(Debug, Subcommand)]
pub(crate) enum BaselineCommand {
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
        .map_err(|e| CliError::usage("baseline.unreadable", e))?;
    Ok(baselines)
}

fn missing(role: &str) -> CliError {
    CliError::usage(
        "baseline.unknown_role",
        format!("no profile {role:?} in the baselines file"),
    )
}

pub(crate) fn run(cmd: BaselineCommand, out: &Output) -> Result<(), CliError> {
    match cmd {
        BaselineCommand::List { file } => {
            let keys = open(&file)?.profile_keys();
            out.result(&json!({ "profiles": keys }), &keys.join("\n"));
        }
        BaselineCommand::Show { role, file } => {
            let profile = open(&file)?.profile(&role).ok_or_else(|| missing(&role))?;
            let value = serde_json::to_value(&profile)
                .map_err(|e| CliError::usage("baseline.unreadable", e))?;
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
        .map_err(|e| CliError::usage("cli.io", e))?;
    out.result(
        &json!({ "role": role, "result": done }),
        &format!("{role}: {done}"),
    );
    Ok(())
}
