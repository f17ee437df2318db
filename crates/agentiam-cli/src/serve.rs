//! `agentiam serve`: runs the broker (registry, JWKS, metadata, introspection, revocation)
//! from a data directory, on loopback unless told otherwise, until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use agentiam_broker::{DataDir, serve};
use clap::Args;
use serde_json::json;

use crate::output::{CliError, Output};

/// The environment variable holding the administrator's bearer secret (32+ characters).
const ADMIN_SECRET_ENV: &str = "AGENTIAM_ADMIN_SECRET";

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Where the signing key (`signing-key.jwk`, created 0600) and the store (`broker.sqlite3`) live.
    #[arg(long, default_value = "agentiam-data")]
    data_dir: PathBuf,
    /// Address to listen on (port 0: any free port, printed on start).
    #[arg(long, default_value = "127.0.0.1:8700")]
    listen: SocketAddr,
    /// The issuer URL in tokens and metadata (default: http://<listen address>).
    #[arg(long)]
    issuer: Option<String>,
}

pub(crate) fn run(args: &ServeArgs, out: &Output) -> Result<(), CliError> {
    let secret = std::env::var(ADMIN_SECRET_ENV).map_err(|_| {
        CliError::usage(
            "broker.config_invalid",
            format!("set {ADMIN_SECRET_ENV} to the administrator's secret (32+ characters)"),
        )
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::usage("cli.io", e))?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| CliError::usage("cli.io", format!("cannot listen on {}: {e}", args.listen)))?;
        let bound = listener
            .local_addr()
            .map_err(|e| CliError::usage("cli.io", e))?;
        let issuer = args
            .issuer
            .clone()
            .unwrap_or_else(|| format!("http://{bound}"));
        let broker = DataDir::open(&args.data_dir)
            .and_then(|dir| dir.broker(&issuer, &secret))
            .map_err(|e| CliError::usage(e.code(), e))?;
        out.result(
            &json!({"listening": bound.to_string(), "issuer": issuer, "data_dir": args.data_dir.display().to_string()}),
            &format!(
                "agentiam broker listening on http://{bound} (issuer {issuer}, data in {})",
                args.data_dir.display()
            ),
        );
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        let checkpoint = serve(&broker, listener, shutdown_signal())
            .await
            .map_err(|e| CliError::usage(e.code(), e))?;
        let size = checkpoint
            .as_deref()
            .and_then(|note| note.lines().nth(1))
            .unwrap_or("0")
            .to_owned();
        out.result(
            &json!({"stopped": true, "audit_records": size.parse::<u64>().unwrap_or(0)}),
            &format!("agentiam broker stopped; activity log flushed and checkpointed at {size} records"),
        );
        Ok(())
    })
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
