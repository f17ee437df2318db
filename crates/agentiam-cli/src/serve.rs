//! `agentiam serve`: runs the broker (registry, token endpoint, JWKS, metadata, introspection,
//! revocation, approvals and their console) from a data directory, on loopback unless told
//! otherwise, until Ctrl-C or SIGTERM; then flushes and checkpoints the activity log.

use std::net::SocketAddr;
use std::path::PathBuf;

use agentiam_broker::{BrokerConfig, DataDir, schedule_key_rotation, serve};
use clap::Args;
use serde_json::json;

use crate::output::{CliError, Output};

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The configuration file (TOML; every setting optional, unknown settings refused).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where the keys, the store (`broker.sqlite3`) and the activity log (`audit/`) live
    /// (default: agentiam-data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:8700; port 0: any free port, printed on start).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// The issuer URL in tokens and metadata (default: `http://<listen address>`).
    #[arg(long)]
    issuer: Option<String>,
    /// Rotate the signing key every this many seconds (default: daily; 0: never).
    #[arg(long)]
    rotate_every: Option<u64>,
}

pub(crate) fn run(args: &ServeArgs, out: &Output) -> Result<(), CliError> {
    let mut config = match &args.config {
        Some(path) => BrokerConfig::read(path).map_err(|e| CliError::usage(e.code(), e))?,
        None => BrokerConfig::default(),
    };
    if let Some(d) = &args.data_dir {
        config.data_dir.clone_from(d);
    }
    if let Some(l) = args.listen {
        config.listen = l;
    }
    if let Some(i) = &args.issuer {
        config.issuer = Some(i.clone());
    }
    if let Some(r) = args.rotate_every {
        config.keys.rotate_every_secs = r;
    }
    let secret_env = config.admin_secret_env.clone();
    let secret = std::env::var(&secret_env).map_err(|_| {
        CliError::usage(
            agentiam_broker::codes::CONFIG_INVALID,
            format!("set {secret_env} to the administrator's secret (32+ characters)"),
        )
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::usage(crate::codes::IO, e))?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| CliError::usage(crate::codes::IO, format!("cannot listen on {}: {e}", config.listen)))?;
        let bound = listener
            .local_addr()
            .map_err(|e| CliError::usage(crate::codes::IO, e))?;
        let issuer = config
            .issuer
            .clone()
            .unwrap_or_else(|| format!("http://{bound}"));
        let data_dir = &config.data_dir;
        let broker = DataDir::open(data_dir)
            .and_then(|dir| {
                let store: std::sync::Arc<dyn agentiam_broker::Store> = match config.store.open()? {
                    Some(store) => store,
                    None => std::sync::Arc::new(dir.store()?),
                };
                match config.store.key_encryption_key()? {
                    Some(kek) => dir.shared_builder(&issuer, &secret, &config.tokens, store, kek),
                    None => dir.builder(&issuer, &secret, &config.tokens, store),
                }?
                .identity_providers(config.identity_providers.clone())
                .build()
            })
            .map_err(|e| CliError::usage(e.code(), e))?;
        if config.keys.rotate_every_secs > 0 {
            schedule_key_rotation(
                &broker,
                std::time::Duration::from_secs(config.keys.rotate_every_secs),
            );
        }
        // Installed before "listening" is printed: a Ctrl-C or SIGTERM that follows the line at
        // once still stops the broker gracefully (flushed log, signed checkpoint).
        let shutdown = shutdown_signal().map_err(|e| CliError::usage(crate::codes::IO, e))?;
        out.result(
            &json!({"listening": bound.to_string(), "issuer": issuer, "data_dir": data_dir.display().to_string(), "console": format!("http://{bound}/console")}),
            &format!(
                "agentiam broker listening on http://{bound} (issuer {issuer}, data in {}); approvals console at http://{bound}/console",
                data_dir.display()
            ),
        );
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        let checkpoint = serve(&broker, listener, shutdown)
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

/// A future that completes on Ctrl-C (SIGINT) or SIGTERM. The handlers are installed when this
/// is called, not when the future is first polled, so no signal between the two is lost to the
/// default action (ending the process without a checkpoint).
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
