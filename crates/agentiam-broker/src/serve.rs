//! Running the broker: its data directory (signing key and store) and the HTTP server with
//! graceful shutdown.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use agentiam_identity::{Algorithm, KeySet, SigningKey};
use agentiam_telemetry::{AuditLog, LogConfig, NoteSigner, NoteVerifier};
use agentiam_token::Issuer;

use crate::{Broker, BrokerError, SqliteStore, Store};

/// What a broker keeps under its data directory, each created when missing:
/// `signing-key.jwk` (the token issuer's key, mode 0600), `approver-key.jwk` (the key approvals
/// are signed with, 0600), `broker.sqlite3` (the store), `audit/` (the activity log, with its
/// latest signed checkpoint in `audit/checkpoint`), `audit-signer.key` (0600) and
/// `audit-verifier.key` (what `agentiam audit verify --key` takes).
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
        self.key_file("signing-key.jwk")
    }

    /// The approver key: read, or generated (Ed25519) and written owner-only.
    pub fn approver_key(&self) -> Result<SigningKey, BrokerError> {
        self.key_file("approver-key.jwk")
    }

    /// The activity log's directory.
    pub fn audit_dir(&self) -> PathBuf {
        self.path.join("audit")
    }

    /// The file holding the key that verifies the activity log's checkpoints.
    pub fn audit_verifier_file(&self) -> PathBuf {
        self.path.join("audit-verifier.key")
    }

    /// Opens the activity log, creating its checkpoint signer on first use.
    pub fn audit_log(&self, origin: &str) -> Result<(AuditLog, NoteVerifier), BrokerError> {
        let file = self.path.join("audit-signer.key");
        let signer = match std::fs::read_to_string(&file) {
            Ok(text) => NoteSigner::from_private_key(text.trim())
                .map_err(|e| BrokerError::Config(format!("{}: {e}", file.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let signer =
                    NoteSigner::generate(origin).map_err(|e| BrokerError::Config(e.to_string()))?;
                let private = signer
                    .private_key()
                    .map_err(|e| BrokerError::Config(e.to_string()))?;
                write_new(&file, private.as_bytes(), 0o600)?;
                signer
            }
            Err(e) => return Err(io(&file, e)),
        };
        let verifier_key = signer.verifier_key();
        let vfile = self.audit_verifier_file();
        std::fs::write(&vfile, format!("{verifier_key}\n")).map_err(|e| io(&vfile, e))?;
        let verifier = NoteVerifier::from_verifier_key(&verifier_key)
            .map_err(|e| BrokerError::Config(e.to_string()))?;
        let log = AuditLog::open_dir(self.audit_dir(), LogConfig::new(origin), Some(signer))
            .map_err(|e| BrokerError::Audit(e.to_string()))?;
        Ok((log, verifier))
    }

    fn key_file(&self, name: &str) -> Result<SigningKey, BrokerError> {
        let file = self.path.join(name);
        match std::fs::read_to_string(&file) {
            Ok(text) => SigningKey::from_private_jwk(&text)
                .map_err(|e| BrokerError::Config(format!("{}: {e}", file.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = SigningKey::generate(Algorithm::EdDSA)
                    .map_err(|e| BrokerError::Config(e.to_string()))?;
                let jwk = key
                    .to_private_jwk()
                    .map_err(|e| BrokerError::Config(e.to_string()))?;
                write_new(&file, jwk.as_bytes(), 0o600)?;
                Ok(key)
            }
            Err(e) => Err(io(&file, e)),
        }
    }

    /// The store.
    pub fn store(&self) -> Result<SqliteStore, BrokerError> {
        SqliteStore::open(&self.path.join("broker.sqlite3"))
    }

    /// A broker issuing as `issuer_url` from this directory's keys, store and activity log.
    pub fn broker(&self, issuer_url: &str, admin_secret: &str) -> Result<Broker, BrokerError> {
        let issuer = Arc::new(Issuer::new(issuer_url, KeySet::new(self.signing_key()?)));
        let store: Arc<dyn Store> = Arc::new(self.store()?);
        let origin = format!(
            "{}/agentiam/audit",
            issuer_url
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .trim_end_matches('/')
        );
        let (log, verifier) = self.audit_log(&origin)?;
        Ok(Broker::new(issuer, store, issuer_url, admin_secret)?
            .with_approver_key(self.approver_key()?)
            .with_audit_log(Arc::new(log), self.audit_dir(), Some(verifier)))
    }
}

/// Writes a new file with `mode` (on Unix) and fsyncs it; refuses to overwrite.
fn write_new(file: &Path, bytes: &[u8], mode: u32) -> Result<(), BrokerError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    use std::io::Write as _;
    let mut out = options.open(file).map_err(|e| io(file, e))?;
    out.write_all(bytes)
        .and_then(|()| out.sync_all())
        .map_err(|e| io(file, e))
}

/// Serves `broker` on `listener` until `shutdown` completes, then stops taking connections,
/// lets the requests in flight finish, and flushes the activity log and signs a checkpoint
/// over it (returned, when the broker has a log).
pub async fn serve(
    broker: &Broker,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Option<String>, BrokerError> {
    axum::serve(listener, broker.router())
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| BrokerError::Config(format!("serving: {e}")))?;
    let broker = broker.clone();
    tokio::task::spawn_blocking(move || broker.flush_audit())
        .await
        .map_err(|e| BrokerError::Audit(e.to_string()))?
}
