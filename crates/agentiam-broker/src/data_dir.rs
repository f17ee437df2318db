//! The broker's data directory: its signing and approver keys (and the retired ones), its
//! SQLite store and its activity log, each created when missing. Depends on no broker state:
//! `broker.rs` and `keys.rs` keep a `DataDir` to persist rotations, and `serve.rs` builds a
//! broker from one.

use std::path::{Path, PathBuf};

use agentiam_identity::{Algorithm, KeySet, PublicKey, SigningKey};
use agentiam_telemetry::{AuditLog, LogConfig, NoteSigner, NoteVerifier};

use crate::shared_keys::RetiredKey;
use crate::{BrokerError, SqliteStore};

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

    /// The issuer's key set: the active signing key and the retired keys still inside their
    /// overlap (`retired-keys.json`), so tokens signed before a rotation keep verifying
    /// across restarts.
    pub fn key_set(&self, now: i64) -> Result<KeySet, BrokerError> {
        let mut keys = KeySet::new(self.signing_key()?);
        for (key, until) in self.retired_keys()? {
            if until >= now {
                keys = keys.with_retired(key, until);
            }
        }
        Ok(keys)
    }

    fn retired_file(&self) -> PathBuf {
        self.path.join("retired-keys.json")
    }

    pub(crate) fn retired_keys(&self) -> Result<Vec<(PublicKey, i64)>, BrokerError> {
        let file = self.retired_file();
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&file, e)),
        };
        let entries: Vec<RetiredKey> = serde_json::from_str(&text)
            .map_err(|e| BrokerError::Config(format!("{}: {e}", file.display())))?;
        entries
            .into_iter()
            .map(|r| {
                PublicKey::from_jwk(&r.jwk)
                    .map(|k| (k, r.until))
                    .map_err(|e| BrokerError::Config(format!("{}: {e}", file.display())))
            })
            .collect()
    }

    /// Makes `next` the signing key on disk, recording `old` as retired until `until`:
    /// first the retired list (so a crash never loses a key that still verifies), then the
    /// new key, each written to a temporary file, fsynced and renamed.
    pub(crate) fn persist_rotation(
        &self,
        next: &SigningKey,
        old: &PublicKey,
        until: i64,
        now: i64,
    ) -> Result<(), BrokerError> {
        let mut retired: Vec<RetiredKey> = self
            .retired_keys()?
            .into_iter()
            .filter(|(_, u)| *u >= now)
            .map(|(k, u)| RetiredKey {
                jwk: k.to_jwk(),
                until: u,
            })
            .collect();
        retired.push(RetiredKey {
            jwk: old.to_jwk(),
            until,
        });
        let text = serde_json::to_string_pretty(&retired)
            .map_err(|e| BrokerError::Config(e.to_string()))?;
        replace_file(&self.retired_file(), text.as_bytes(), 0o644)?;
        let jwk = next
            .to_private_jwk()
            .map_err(|e| BrokerError::Config(e.to_string()))?;
        replace_file(&self.path.join("signing-key.jwk"), jwk.as_bytes(), 0o600)
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
}

/// Replaces `file` atomically: write a temporary file beside it, fsync, rename, fsync the directory.
fn replace_file(file: &Path, bytes: &[u8], mode: u32) -> Result<(), BrokerError> {
    let tmp = file.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    write_new(&tmp, bytes, mode)?;
    std::fs::rename(&tmp, file).map_err(|e| io(file, e))?;
    if let Some(dir) = file.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io(dir, e))?;
    }
    Ok(())
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
