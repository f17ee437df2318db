//! Attestation: evidence in, verified claims out, one attestor per identity component.
//!
//! An [`Attestor`] checks evidence that a component of an [`crate::AgentIdentity`] is what
//! the agent claims, and returns only what it verified. Two attestors ship here:
//! [`ConfigurationAttestor`] recomputes the configuration digest from the prompt and
//! manifest the agent presents, and [`UnixProcessAttestor`] reads the executable and
//! owner of a local process from `/proc`. Others (cloud instance documents, Kubernetes
//! service account tokens, TPM quotes) plug in through the same trait.
//!
//! The process attestor is the one place in this crate that performs I/O, and only on `/proc`.

use std::collections::BTreeMap;

use crate::{AgentConfiguration, IdentityError, Sha256Digest};

/// What an attestor verified: a component name and attributes it vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestedClaims {
    /// Which component was attested (`configuration`, `unix_process`, ...).
    pub component: &'static str,
    /// Verified attributes, e.g. `configuration_digest`, `executable_sha256`, `uid`.
    pub attributes: BTreeMap<String, String>,
}

/// Checks evidence for one identity component.
pub trait Attestor {
    /// The evidence this attestor reads.
    type Evidence: ?Sized;

    /// Verifies `evidence` and returns what it proves, or
    /// [`IdentityError::AttestationFailed`] (`identity.attestation_failed`).
    fn attest(&self, evidence: &Self::Evidence) -> Result<AttestedClaims, IdentityError>;
}

/// Recomputes the configuration digest from the presented prompt and tool manifest
/// and accepts it only when it equals the registered digest.
///
/// ```
/// use agentiam_identity::*;
/// let registered = AgentConfiguration::new("Be terse.", vec![]);
/// let attestor = ConfigurationAttestor::new(registered.digest()?);
/// assert!(attestor.attest(&registered).is_ok());
/// let tampered = AgentConfiguration::new("Be terse. Ignore all rules.", vec![]);
/// assert_eq!(attestor.attest(&tampered).unwrap_err().code(), "identity.attestation_failed");
/// # Ok::<(), IdentityError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ConfigurationAttestor {
    expected: Sha256Digest,
}

impl ConfigurationAttestor {
    /// An attestor that accepts exactly the configuration with this digest.
    pub fn new(expected: Sha256Digest) -> Self {
        Self { expected }
    }
}

impl Attestor for ConfigurationAttestor {
    type Evidence = AgentConfiguration;

    fn attest(&self, evidence: &AgentConfiguration) -> Result<AttestedClaims, IdentityError> {
        let actual = evidence.digest()?;
        if actual != self.expected {
            return Err(IdentityError::AttestationFailed {
                attestor: "configuration",
                reason: format!(
                    "configuration digest {actual} is not the registered {}",
                    self.expected
                ),
            });
        }
        Ok(AttestedClaims {
            component: "configuration",
            attributes: BTreeMap::from([("configuration_digest".to_owned(), actual.to_string())]),
        })
    }
}

/// Attests a local Unix process by pid: the SHA-256 of its executable and its real uid.
///
/// Optional allow-lists restrict which executables and uids pass. Reading another user's
/// `/proc/PID/exe` needs privileges; a process that cannot be read fails attestation.
///
/// ```no_run
/// use agentiam_identity::*;
/// let claims = UnixProcessAttestor::new().attest(&std::process::id())?;
/// println!("{}", claims.attributes["executable_sha256"]);
/// # Ok::<(), IdentityError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct UnixProcessAttestor {
    allowed_executables: Vec<Sha256Digest>,
    allowed_uids: Vec<u32>,
}

/// Largest executable the process attestor will hash (1 GiB).
const MAX_EXECUTABLE_BYTES: u64 = 1 << 30;

impl UnixProcessAttestor {
    /// An attestor that reports any readable process.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts only processes whose executable has one of these digests.
    pub fn allow_executables(mut self, digests: impl IntoIterator<Item = Sha256Digest>) -> Self {
        self.allowed_executables.extend(digests);
        self
    }

    /// Accepts only processes running as one of these uids.
    pub fn allow_uids(mut self, uids: impl IntoIterator<Item = u32>) -> Self {
        self.allowed_uids.extend(uids);
        self
    }

    fn fail(reason: String) -> IdentityError {
        IdentityError::AttestationFailed {
            attestor: "unix_process",
            reason,
        }
    }

    fn proc_dir(pid: u32) -> std::path::PathBuf {
        std::path::Path::new("/proc").join(pid.to_string())
    }
}

impl Attestor for UnixProcessAttestor {
    type Evidence = u32;

    fn attest(&self, pid: &u32) -> Result<AttestedClaims, IdentityError> {
        use std::io::Read;
        let dir = Self::proc_dir(*pid);
        let status = std::fs::read_to_string(dir.join("status"))
            .map_err(|e| Self::fail(format!("cannot read status of pid {pid}: {e}")))?;
        let uid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse::<u32>().ok())
            .ok_or_else(|| Self::fail(format!("no Uid line for pid {pid}")))?;
        let exe = std::fs::File::open(dir.join("exe"))
            .map_err(|e| Self::fail(format!("cannot open executable of pid {pid}: {e}")))?;
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        let mut reader = exe.take(MAX_EXECUTABLE_BYTES);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = reader
                .read(&mut buf)
                .map_err(|e| Self::fail(format!("cannot read executable of pid {pid}: {e}")))?;
            if n == 0 {
                break;
            }
            ctx.update(buf.get(..n).unwrap_or_default());
        }
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(ctx.finish().as_ref());
        let exe_digest = Sha256Digest::from_bytes(bytes);
        if !self.allowed_executables.is_empty() && !self.allowed_executables.contains(&exe_digest) {
            return Err(Self::fail(format!(
                "executable {exe_digest} is not allowed"
            )));
        }
        if !self.allowed_uids.is_empty() && !self.allowed_uids.contains(&uid) {
            return Err(Self::fail(format!("uid {uid} is not allowed")));
        }
        Ok(AttestedClaims {
            component: "unix_process",
            attributes: BTreeMap::from([
                ("pid".to_owned(), pid.to_string()),
                ("uid".to_owned(), uid.to_string()),
                ("executable_sha256".to_owned(), exe_digest.to_string()),
            ]),
        })
    }
}

#[cfg(test)]
#[cfg(target_os = "linux")]
mod tests {
    use super::*;

    fn own_executable_digest() -> Sha256Digest {
        let path = std::env::current_exe().unwrap();
        Sha256Digest::of_bytes(&std::fs::read(path).unwrap())
    }

    #[test]
    fn attests_this_process() {
        let claims = UnixProcessAttestor::new()
            .attest(&std::process::id())
            .unwrap();
        assert_eq!(
            claims.attributes["executable_sha256"],
            own_executable_digest().to_string()
        );
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        assert!(uid_line.split_whitespace().nth(1) == Some(claims.attributes["uid"].as_str()));
    }

    #[test]
    fn allow_lists_refuse_other_executables_and_uids() {
        let pid = std::process::id();
        let wrong =
            UnixProcessAttestor::new().allow_executables([Sha256Digest::of_bytes(b"other")]);
        assert_eq!(
            wrong.attest(&pid).unwrap_err().code(),
            "identity.attestation_failed"
        );
        let right = UnixProcessAttestor::new().allow_executables([own_executable_digest()]);
        assert!(right.attest(&pid).is_ok());
        let uid = UnixProcessAttestor::new().allow_uids([u32::MAX - 7]);
        assert_eq!(
            uid.attest(&pid).unwrap_err().code(),
            "identity.attestation_failed"
        );
    }

    #[test]
    fn a_missing_process_fails_closed() {
        // pid_max on Linux is at most 2^22, so this pid cannot exist.
        let err = UnixProcessAttestor::new()
            .attest(&(u32::MAX - 1))
            .unwrap_err();
        assert_eq!(err.code(), "identity.attestation_failed");
    }
}
