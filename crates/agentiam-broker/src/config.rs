//! The broker's configuration: one TOML file, every setting optional, secure defaults.
//!
//! ```toml
//! listen = "127.0.0.1:8700"          # loopback unless told otherwise
//! issuer = "https://broker.acme.example"   # default: http://<listen address>
//! data_dir = "agentiam-data"          # keys, store and activity log
//! admin_secret_env = "AGENTIAM_ADMIN_SECRET"  # the secret itself is never in this file
//!
//! [keys]
//! rotate_every_secs = 86400           # 0: never rotate on a schedule
//!
//! [tokens]
//! default_ttl_secs = 900              # 15 minutes
//! max_ttl_secs = 3600                 # the hard cap (and the overlap of a retired key)
//!
//! [store]                             # default: SQLite in the data directory
//! postgres_url_env = "AGENTIAM_POSTGRES_URL"  # several replicas: PostgreSQL, URL from this variable
//! postgres_schema = "agentiam"
//! key_encryption_key_env = "AGENTIAM_KEY_ENCRYPTION_KEY"  # replicas share sealed keys
//! ```
//!
//! Unknown keys are refused, so a misspelt setting never silently falls back to a default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::BrokerError;

/// Largest configuration file read.
pub const MAX_CONFIG_BYTES: usize = 64 * 1024;

/// The broker's settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerConfig {
    /// Address to listen on. Default: `127.0.0.1:8700`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The issuer URL in tokens and metadata. Default: `http://<listen address>`.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Where keys, the store and the activity log live. Default: `agentiam-data`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// The environment variable holding the administrator's secret (32+ characters).
    #[serde(default = "default_secret_env")]
    pub admin_secret_env: String,
    /// Signing keys.
    #[serde(default)]
    pub keys: KeysConfig,
    /// Token lifetimes.
    #[serde(default)]
    pub tokens: TokensConfig,
    /// Where the broker's state lives.
    #[serde(default)]
    pub store: StoreConfig,
    /// Trusted OpenID providers whose people agents may act for (token exchange).
    #[serde(default)]
    pub identity_providers: Vec<crate::IdentityProviderConfig>,
}

/// `[store]`: SQLite in the data directory unless a PostgreSQL URL is named.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The environment variable holding a `postgres://` URL (it may carry a password, so the
    /// URL itself never goes in this file). Unset: SQLite in the data directory.
    #[serde(default)]
    pub postgres_url_env: Option<String>,
    /// The PostgreSQL schema to keep the tables in (created if missing). Default: the
    /// connection's search path.
    #[serde(default)]
    pub postgres_schema: Option<String>,
    /// The environment variable holding a key-encryption key (32 random bytes, base64): with
    /// it, every replica on this store signs with the same keys, kept sealed in the store, and
    /// sees every rotation. Without it, keys stay in each data directory.
    #[serde(default)]
    pub key_encryption_key_env: Option<String>,
}

impl StoreConfig {
    /// The key-encryption key named by `key_encryption_key_env`, if one is.
    pub fn key_encryption_key(&self) -> Result<Option<crate::KeyEncryptionKey>, BrokerError> {
        let Some(var) = &self.key_encryption_key_env else {
            return Ok(None);
        };
        let text = std::env::var(var).map_err(|_| {
            BrokerError::Config(format!("store.key_encryption_key_env: {var} is not set"))
        })?;
        crate::KeyEncryptionKey::from_base64(&text).map(Some)
    }

    /// Opens the configured store: PostgreSQL when `postgres_url_env` is set, else `None`
    /// (the caller uses SQLite in its data directory).
    pub fn open(&self) -> Result<Option<std::sync::Arc<dyn crate::Store>>, BrokerError> {
        let Some(var) = &self.postgres_url_env else {
            return Ok(None);
        };
        let url = std::env::var(var).map_err(|_| {
            BrokerError::Config(format!("store.postgres_url_env: {var} is not set"))
        })?;
        let store = match &self.postgres_schema {
            Some(schema) => crate::PostgresStore::connect_in_schema(&url, schema)?,
            None => crate::PostgresStore::connect(&url)?,
        };
        Ok(Some(std::sync::Arc::new(store)))
    }
}

/// `[keys]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    /// Rotate the token signing key this often (seconds); 0 turns scheduled rotation off.
    /// Default: daily.
    #[serde(default = "default_rotation")]
    pub rotate_every_secs: u64,
}

/// `[tokens]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensConfig {
    /// Lifetime of a token whose request names none. Default: 900 s.
    #[serde(default = "default_ttl")]
    pub default_ttl_secs: i64,
    /// No token lives longer. Default: 3600 s.
    #[serde(default = "default_max_ttl")]
    pub max_ttl_secs: i64,
    /// Longest-lived client assertion accepted (from now to its `exp`). Each assertion is
    /// single-use until its `exp` whatever this says. Default: 3600 s, what stock OAuth clients
    /// sign (authlib's `PrivateKeyJWT`); lower it if every client signs shorter ones.
    #[serde(default = "default_assertion_lifetime")]
    pub client_assertion_max_lifetime_secs: i64,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8700))
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("agentiam-data")
}
fn default_secret_env() -> String {
    "AGENTIAM_ADMIN_SECRET".to_owned()
}
fn default_rotation() -> u64 {
    86_400
}
fn default_ttl() -> i64 {
    agentiam_token::DEFAULT_TTL_SECS
}
fn default_assertion_lifetime() -> i64 {
    crate::DEFAULT_CLIENT_ASSERTION_MAX_LIFETIME_SECS
}
fn default_max_ttl() -> i64 {
    agentiam_token::DEFAULT_MAX_TTL_SECS
}

impl Default for KeysConfig {
    fn default() -> Self {
        Self {
            rotate_every_secs: default_rotation(),
        }
    }
}

impl Default for TokensConfig {
    fn default() -> Self {
        Self {
            default_ttl_secs: default_ttl(),
            max_ttl_secs: default_max_ttl(),
            client_assertion_max_lifetime_secs: default_assertion_lifetime(),
        }
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            issuer: None,
            data_dir: default_data_dir(),
            admin_secret_env: default_secret_env(),
            keys: KeysConfig::default(),
            tokens: TokensConfig::default(),
            store: StoreConfig::default(),
            identity_providers: Vec::new(),
        }
    }
}

impl BrokerConfig {
    /// Parses and checks a configuration document.
    pub fn parse(text: &str) -> Result<Self, BrokerError> {
        if text.len() > MAX_CONFIG_BYTES {
            return Err(BrokerError::Config(format!(
                "the configuration is over {MAX_CONFIG_BYTES} bytes"
            )));
        }
        let config: Self = toml::from_str(text).map_err(|e| BrokerError::Config(e.to_string()))?;
        config.check()?;
        Ok(config)
    }

    /// Reads and checks a configuration file.
    pub fn read(path: &Path) -> Result<Self, BrokerError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| BrokerError::Config(format!("{}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| BrokerError::Config(format!("{}: {e}", path.display())))
    }

    fn check(&self) -> Result<(), BrokerError> {
        let t = &self.tokens;
        if t.default_ttl_secs <= 0 || t.max_ttl_secs <= 0 || t.default_ttl_secs > t.max_ttl_secs {
            return Err(BrokerError::Config(
                "tokens: 0 < default_ttl_secs <= max_ttl_secs".into(),
            ));
        }
        if t.max_ttl_secs > 24 * 3600 {
            return Err(BrokerError::Config(
                "tokens.max_ttl_secs: at most a day; agent tokens are for minutes".into(),
            ));
        }
        if self.keys.rotate_every_secs != 0 && self.keys.rotate_every_secs < 60 {
            return Err(BrokerError::Config(
                "keys.rotate_every_secs: 0 (never) or at least 60".into(),
            ));
        }
        if let Some(issuer) = &self.issuer
            && !(issuer.starts_with("https://") || issuer.starts_with("http://"))
        {
            return Err(BrokerError::Config("issuer: an http(s) URL".into()));
        }
        if self.admin_secret_env.is_empty() {
            return Err(BrokerError::Config(
                "admin_secret_env: a variable name".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_secure_and_mistakes_are_refused() {
        let c = BrokerConfig::parse("").unwrap();
        assert_eq!(c, BrokerConfig::default());
        assert!(c.listen.ip().is_loopback());
        assert_eq!(c.keys.rotate_every_secs, 86_400);
        let full = BrokerConfig::parse(
            "listen = \"127.0.0.1:9000\"\nissuer = \"https://b.example\"\n[keys]\nrotate_every_secs = 3600\n[tokens]\ndefault_ttl_secs = 300\nmax_ttl_secs = 600\n",
        )
        .unwrap();
        assert_eq!(full.tokens.max_ttl_secs, 600);
        for bad in [
            "listn = \"127.0.0.1:1\"",
            "admin_secret = \"in the file\"",
            "[tokens]\nmax_ttl_secs = 864000",
            "[tokens]\ndefault_ttl_secs = 7200",
            "[keys]\nrotate_every_secs = 5",
            "issuer = \"ftp://x\"",
            "listen = \"not an address\"",
            "[[",
            "[store]\npostgres_url = \"postgres://u:p@h/db\"",
        ] {
            let e = BrokerConfig::parse(bad).unwrap_err();
            assert_eq!(e.code(), "broker.config_invalid", "{bad}");
        }
    }
}
