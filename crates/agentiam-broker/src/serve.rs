//! Running the broker: its data directory (signing key and store) and the HTTP server with
//! graceful shutdown.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use agentiam_identity::{Algorithm, KeySet, SigningKey};
use agentiam_token::Issuer;

use crate::{Broker, BrokerError, SqliteStore, Store};

/// What a broker keeps under its data directory: `signing-key.jwk` (created with mode 0600
/// when missing) and `broker.sqlite3`.
#[derive(Debug, Clone)]
pub struct DataDir {
    path: PathBuf,
}

fn io(path: &Path, e: std::io::Error) -> BrokerError {
    BrokerError::Config(format!("{}: {e}", path.display()))
}

impl DataDir {
    /// Opens (creating, mode 0700) the data directory.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, BrokerError> {
        let path = path.into();
        std::fs::create_dir_all(&path).map_err(|e| io(&path, e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| io(&path, e))?;
        }
        Ok(Self { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The issuer's signing key: read, or generated (Ed25519) and written owner-only.
    pub fn signing_key(&self) -> Result<SigningKey, BrokerError> {
        let file = self.path.join("signing-key.jwk");
        match std::fs::read_to_string(&file) {
            Ok(text) => SigningKey::from_private_jwk(&text)
                .map_err(|e| BrokerError::Config(format!("{}: {e}", file.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = SigningKey::generate(Algorithm::EdDSA)
                    .map_err(|e| BrokerError::Config(e.to_string()))?;
                let jwk = key
                    .to_private_jwk()
                    .map_err(|e| BrokerError::Config(e.to_string()))?;
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    options.mode(0o600);
                }
                use std::io::Write as _;
                let mut out = options.open(&file).map_err(|e| io(&file, e))?;
                out.write_all(jwk.as_bytes())
                    .and_then(|()| out.sync_all())
                    .map_err(|e| io(&file, e))?;
                Ok(key)
            }
            Err(e) => Err(io(&file, e)),
        }
    }

    /// The store.
    pub fn store(&self) -> Result<SqliteStore, BrokerError> {
        SqliteStore::open(&self.path.join("broker.sqlite3"))
    }

    /// A broker issuing as `issuer_url` from this directory's key and store.
    pub fn broker(&self, issuer_url: &str, admin_secret: &str) -> Result<Broker, BrokerError> {
        let issuer = Arc::new(Issuer::new(issuer_url, KeySet::new(self.signing_key()?)));
        let store: Arc<dyn Store> = Arc::new(self.store()?);
        Broker::new(issuer, store, issuer_url, admin_secret)
    }
}

/// Serves `broker` on `listener` until `shutdown` completes, then stops taking connections
/// and lets the requests in flight finish.
pub async fn serve(
    broker: &Broker,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, broker.router())
        .with_graceful_shutdown(shutdown)
        .await
}
