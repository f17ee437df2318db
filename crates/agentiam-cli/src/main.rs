//! The `agentiam` command line; everything is in the library ([`agentiam_cli::run`]).
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(agentiam_cli::run(std::env::args_os()))
}
