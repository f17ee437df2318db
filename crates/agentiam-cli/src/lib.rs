//! The `agentiam` command line, as a library: the `agentiam` binary and the Python package's
//! `agentiam` console script (`agentiam._native.cli`) both call [`run`].
//!
//! Every verb takes `--json`. Failures exit non-zero; with `--json` they print
//! `{"error": {"code": "...", "message": "..."}}` on standard output.
#![forbid(unsafe_code)]

mod approvals;
mod audit;
mod baseline;
#[allow(
    unreachable_pub,
    dead_code,
    reason = "the registry: ALL is read by its tests, the constants by the commands"
)]
mod codes;
mod demo;
mod demo_broker;
mod guard;
mod keys;
mod output;
mod scan;
mod serve;
mod token;

use clap::{Parser, Subcommand};

use crate::output::{CliError, Output};

/// Identity and access management for AI agents.
#[derive(Debug, Parser)]
#[command(name = "agentiam", version, about)]
struct Cli {
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the end-to-end scenario on the embedded default (a broker from a fresh data
    /// directory, on loopback) and explain each decision.
    Demo(demo::DemoArgs),
    /// Signing keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Issue and verify task tokens.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Verify and read the agent activity log.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Decide tool calls offline against a guard configuration; sign approvals; check policies.
    #[command(subcommand)]
    Guard(guard::GuardCommand),
    /// Scan text for prompt injection (stdin, files, or JSON Lines with --jsonl).
    Scan(scan::ScanArgs),
    /// Run the broker (registry, token endpoint, JWKS, introspection, revocation, approvals console) on loopback.
    Serve(serve::ServeArgs),
    /// List, approve or deny the broker's approval requests; create approvers' console sign-ins.
    #[command(subcommand)]
    Approvals(approvals::ApprovalsCommand),
    /// Inspect, freeze, unfreeze or reset learned behaviour baselines.
    #[command(subcommand)]
    Baseline(baseline::BaselineCommand),
    /// Print a shell completion script: `agentiam completions bash > /etc/bash_completion.d/agentiam`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

/// Runs the command line on `args` (the program name first, as `std::env::args_os` gives it)
/// and returns the process exit code: 0 on success, 1 for a refusal, 2 for a usage error.
///
/// Help, version and argument errors are printed as clap prints them, and never end the process,
/// so a host such as the Python interpreter gets the code back. Standard output and error are
/// flushed before it returns.
///
/// ```no_run
/// let code = agentiam_cli::run(["agentiam", "--version"]);
/// assert_eq!(code, 0);
/// ```
pub fn run<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let code = match Cli::try_parse_from(args) {
        Ok(cli) => dispatch(cli),
        Err(e) => {
            // Help and --version are "errors" that print to stdout and exit 0.
            let _ = e.print();
            u8::try_from(e.exit_code()).unwrap_or(2)
        }
    };
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    code
}

fn dispatch(cli: Cli) -> u8 {
    let out = Output { json: cli.json };
    let result = match cli.command {
        Command::Demo(args) => demo::run(&args, &out),
        Command::Keys(cmd) => keys::run(cmd, &out),
        Command::Token(cmd) => token::run(cmd, &out),
        Command::Audit(cmd) => audit::run(cmd, &out),
        Command::Guard(cmd) => guard::run(cmd, &out),
        Command::Scan(args) => scan::run(&args, &out),
        Command::Baseline(cmd) => baseline::run(cmd, &out),
        Command::Serve(args) => serve::run(&args, &out),
        Command::Approvals(cmd) => approvals::run(cmd, &out),
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            use std::io::Write as _;
            // Into a buffer first: the generator panics on a write error (a closed pipe).
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "agentiam", &mut script);
            match std::io::stdout().write_all(&script) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                Err(e) => Err(CliError::usage(codes::IO, e)),
            }
        }
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            out.error(&e);
            e.exit_status()
        }
    }
}
