//! Running the broker: building it from its data directory and the HTTP server with graceful
//! shutdown.

use std::future::Future;
use std::sync::Arc;

use agentiam_identity::SigningKey;
use agentiam_token::Issuer;

use crate::data_dir::DataDir;
use crate::shared_keys::RetiredKey;
use crate::{Broker, BrokerBuilder, BrokerError, Store};

/// Building a broker from the directory's keys, store and activity log.
impl DataDir {
    /// A broker issuing as `issuer_url` from this directory's keys, store and activity log,
    /// with the default token lifetimes.
    pub fn broker(&self, issuer_url: &str, admin_secret: &str) -> Result<Broker, BrokerError> {
        self.broker_with(issuer_url, admin_secret, &crate::TokensConfig::default())
    }

    /// [`DataDir::broker`] with these token lifetimes.
    pub fn broker_with(
        &self,
        issuer_url: &str,
        admin_secret: &str,
        tokens: &crate::TokensConfig,
    ) -> Result<Broker, BrokerError> {
        let store: Arc<dyn Store> = Arc::new(self.store()?);
        self.broker_on(issuer_url, admin_secret, tokens, store)
    }

    /// [`DataDir::broker_on`], with the signing key, approver key and retired keys shared by
    /// every replica on `store`, sealed under `kek`: the first replica seals this directory's
    /// keys into the store, the others adopt them; rotations go through the store.
    pub fn broker_shared(
        &self,
        issuer_url: &str,
        admin_secret: &str,
        tokens: &crate::TokensConfig,
        store: Arc<dyn Store>,
        kek: crate::KeyEncryptionKey,
    ) -> Result<Broker, BrokerError> {
        self.shared_builder(issuer_url, admin_secret, tokens, store, kek)?
            .build()
    }

    /// [`DataDir::broker_with`] on another store (PostgreSQL, shared by replicas); keys and
    /// the activity log stay in this directory.
    pub fn broker_on(
        &self,
        issuer_url: &str,
        admin_secret: &str,
        tokens: &crate::TokensConfig,
        store: Arc<dyn Store>,
    ) -> Result<Broker, BrokerError> {
        self.builder(issuer_url, admin_secret, tokens, store)?
            .build()
    }

    /// What [`DataDir::broker_shared`] builds, before it is built: for settings the data
    /// directory does not hold (identity providers, a clock).
    pub fn shared_builder(
        &self,
        issuer_url: &str,
        admin_secret: &str,
        tokens: &crate::TokensConfig,
        store: Arc<dyn Store>,
        kek: crate::KeyEncryptionKey,
    ) -> Result<BrokerBuilder, BrokerError> {
        let now = agentiam_token::Clock::now(&agentiam_token::SystemClock);
        let jwk = |key: SigningKey| -> Result<String, BrokerError> {
            Ok(key
                .to_private_jwk()
                .map_err(|e| BrokerError::Config(e.to_string()))?
                .to_string())
        };
        let local = crate::shared_keys::KeyMaterial {
            signing: jwk(self.signing_key()?)?,
            approver: jwk(self.approver_key()?)?,
            retired: self
                .retired_keys()?
                .into_iter()
                .filter(|(_, until)| *until >= now)
                .map(|(k, until)| RetiredKey {
                    jwk: k.to_jwk(),
                    until,
                })
                .collect(),
        };
        Ok(self
            .builder(issuer_url, admin_secret, tokens, store)?
            .shared_keys(kek, local))
    }

    /// What [`DataDir::broker_on`] builds, before it is built: this directory's signing key,
    /// approver key, activity log and key persistence, with `tokens`' lifetimes, on `store`.
    pub fn builder(
        &self,
        issuer_url: &str,
        admin_secret: &str,
        tokens: &crate::TokensConfig,
        store: Arc<dyn Store>,
    ) -> Result<BrokerBuilder, BrokerError> {
        let now = agentiam_token::Clock::now(&agentiam_token::SystemClock);
        let issuer = Arc::new(
            Issuer::new(issuer_url, self.key_set(now)?)
                .with_lifetimes(tokens.default_ttl_secs, tokens.max_ttl_secs),
        );
        let origin = format!(
            "{}/agentiam/audit",
            issuer_url
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .trim_end_matches('/')
        );
        let (log, verifier) = self.audit_log(&origin)?;
        Ok(Broker::builder(issuer, store, issuer_url, admin_secret)
            .approver_key(self.approver_key()?)
            .audit_log(Arc::new(log), self.audit_dir(), Some(verifier))
            .key_directory(self.clone())
            .client_assertion_max_lifetime(tokens.client_assertion_max_lifetime_secs))
    }
}

/// How often a serving broker forgets expired revocations, used client-assertion `jti`s,
/// approval nonces and console sessions.
pub(crate) const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

/// Serves `broker` on `listener` until `shutdown` completes, then stops taking connections,
/// lets the requests in flight finish, and flushes the activity log and signs a checkpoint
/// over it (returned, when the broker has a log). While serving, it prunes expired entries
/// from the store every 5 minutes and, when keys are shared, re-reads them every 10 seconds.
pub async fn serve(
    broker: &Broker,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Option<String>, BrokerError> {
    let pruning = broker.clone();
    let pruner = tokio::spawn(async move {
        let mut ticks = tokio::time::interval(PRUNE_EVERY);
        loop {
            ticks.tick().await;
            let store = pruning.clone();
            let pruned = tokio::task::spawn_blocking(move || store.prune_store()).await;
            if let Ok(Err(e)) = pruned {
                eprintln!(
                    "agentiam broker: pruning the store failed ({}): {e}",
                    e.code()
                );
            }
        }
    });
    let syncing = broker.clone();
    let key_sync = tokio::spawn(async move {
        let mut ticks = tokio::time::interval(std::time::Duration::from_secs(10));
        loop {
            ticks.tick().await;
            let keys = syncing.clone();
            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || keys.sync_shared_keys()).await {
                eprintln!(
                    "agentiam broker: reading the shared keys failed ({}): {e}",
                    e.code()
                );
            }
        }
    });
    let served = axum::serve(listener, broker.router())
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| BrokerError::Config(format!("serving: {e}")));
    pruner.abort();
    key_sync.abort();
    served?;
    let broker = broker.clone();
    tokio::task::spawn_blocking(move || broker.flush_audit())
        .await
        .map_err(|e| BrokerError::Audit(e.to_string()))?
}

/// Rotates `broker`'s signing key every `every`, in the background, for as long as the
/// runtime runs. A failed rotation is reported on standard error with its code and retried
/// at the next tick; the current key keeps signing meanwhile.
pub fn schedule_key_rotation(
    broker: &Broker,
    every: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    let broker = broker.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            ticks.tick().await;
            let rotating = broker.clone();
            match tokio::task::spawn_blocking(move || rotating.rotate_signing_key()).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => eprintln!("agentiam broker: key rotation failed ({}): {e}", e.code()),
                Err(e) => eprintln!("agentiam broker: key rotation failed: {e}"),
            }
        }
    })
}
