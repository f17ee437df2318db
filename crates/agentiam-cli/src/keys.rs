//! `agentiam keys generate`.

use std::io::Write;
use std::path::PathBuf;

use agentiam::identity::{Algorithm, Jwks, SigningKey};
use clap::{Subcommand, ValueEnum};
use serde_json::json;

use crate::output::{CliError, Output};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum AlgArg {
    /// Ed25519 (EdDSA).
    Eddsa,
    /// ECDSA P-256 (ES256).
    Es256,
}

impl From<AlgArg> for Algorithm {
    fn from(a: AlgArg) -> Self {
        match a {
            AlgArg::Eddsa => Algorithm::EdDSA,
            AlgArg::Es256 => Algorithm::ES256,
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Generate a signing key: the private JWK goes to --out (mode 0600), the public JWKS to --jwks-out or stdout.
    Generate {
        /// Algorithm.
        #[arg(long, value_enum, default_value = "eddsa")]
        alg: AlgArg,
        /// Where to write the private JWK. Refuses to overwrite.
        #[arg(long)]
        out: PathBuf,
        /// Where to write the public JWKS (default: print it).
        #[arg(long)]
        jwks_out: Option<PathBuf>,
    },
}

pub(crate) fn run(cmd: KeysCommand, out: &Output) -> Result<(), CliError> {
    match cmd {
        KeysCommand::Generate {
            alg,
            out: path,
            jwks_out,
        } => {
            let key = SigningKey::generate(alg.into())?;
            write_private(&path, key.to_private_jwk()?.as_bytes())?;
            let jwks = Jwks::from_keys([key.public_key().clone()]).to_json();
            if let Some(p) = &jwks_out {
                std::fs::write(p, &jwks).map_err(|e| {
                    CliError::usage(
                        crate::codes::IO,
                        format!("cannot write {}: {e}", p.display()),
                    )
                })?;
            }
            let value = json!({
                "kid": key.kid(),
                "alg": key.alg().jws_name(),
                "private_key_file": path.display().to_string(),
                "jwks": serde_json::from_str::<serde_json::Value>(&jwks).unwrap_or_default(),
            });
            let human = match &jwks_out {
                Some(p) => format!(
                    "kid {} ({}): private key in {}, JWKS in {}",
                    key.kid(),
                    key.alg().jws_name(),
                    path.display(),
                    p.display()
                ),
                None => jwks,
            };
            out.result(&value, &human);
            Ok(())
        }
    }
}

pub(crate) fn write_private(path: &std::path::Path, bytes: &[u8]) -> Result<(), CliError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| {
        CliError::usage(
            crate::codes::IO,
            format!("cannot create {}: {e}", path.display()),
        )
    })?;
    f.write_all(bytes).map_err(|e| {
        CliError::usage(
            crate::codes::IO,
            format!("cannot write {}: {e}", path.display()),
        )
    })
}
