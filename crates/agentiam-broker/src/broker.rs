//! The broker's shared state ([`Broker`]), configured once through [`BrokerBuilder`] and read by every route.
//!
//! After [`BrokerBuilder::build`] nothing about the configuration changes; what does change while serving (the signing and approver keys, see `keys.rs`) sits behind its own locks.

use std::path::PathBuf;
use std::sync::Arc;

use agentiam_identity::{Algorithm, Jwks, SigningKey};
use agentiam_telemetry::{AgentRef, AuditEvent, AuditLog, NoteVerifier};
use agentiam_token::{Clock, DpopVerifier, Issuer, SystemClock};
use axum::http::StatusCode;

use crate::BrokerError;
use crate::data_dir::DataDir;
use crate::keys::{KeyContext, KeyState};
use crate::oauth_error::OAuthError;
use crate::people::{IdentityProviderConfig, IdentityProviders};
use crate::records::{parse_id, registration};
use crate::secrets::sha256;
use crate::shared_keys::{KeyEncryptionKey, KeyMaterial};
use crate::store::{Store, StoreRevocations};

/// Shortest administrator secret accepted.
const MIN_ADMIN_SECRET_CHARS: usize = 32;

/// Longest-lived client assertion the broker accepts by default: an hour, what stock clients
/// sign (authlib's `PrivateKeyJWT`). Each assertion's `jti` is single-use until its `exp`.
pub const DEFAULT_CLIENT_ASSERTION_MAX_LIFETIME_SECS: i64 = 3600;

/// The broker: issuer, store and the administrator's credential, served by [`Broker::router`].
/// Made by [`Broker::builder`]; clones share one state.
#[derive(Debug, Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: Arc<Issuer>,
    store: Arc<dyn Store>,
    base_url: String,
    admin_sha256: Vec<u8>,
    clock: Arc<dyn Clock>,
    /// The signing and approver keys as they rotate, and where rotations go.
    keys: KeyState,
    audit: Option<Arc<AuditLog>>,
    dpop: DpopVerifier,
    /// Bumped whenever an approval is settled, to wake long-polling agents.
    settled: tokio::sync::watch::Sender<u64>,
    console: ConsoleSettings,
    /// Longest-lived client assertion accepted (seconds).
    assertion_max_lifetime: i64,
    /// Trusted OpenID providers whose people agents may act for.
    people: Option<Arc<IdentityProviders>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("issuer", &self.issuer.issuer())
            .field("base_url", &self.base_url)
            .field("shared_keys", &self.keys.is_shared())
            .field("audit", &self.audit.is_some())
            .finish_non_exhaustive()
    }
}

/// Where the console finds the activity log it shows, how secure its cookies are, and the
/// failed sign-ins it counts (per name, in this process, for 15 minutes).
#[derive(Debug, Clone)]
pub(crate) struct ConsoleSettings {
    pub(crate) secure_cookies: bool,
    pub(crate) audit_dir: Option<PathBuf>,
    pub(crate) audit_verifier: Option<NoteVerifier>,
    pub(crate) failed_logins: moka::sync::Cache<String, u32>,
}

impl ConsoleSettings {
    fn for_base_url(base_url: &str) -> Self {
        Self {
            secure_cookies: base_url.starts_with("https://"),
            audit_dir: None,
            audit_verifier: None,
            failed_logins: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(std::time::Duration::from_secs(900))
                .build(),
        }
    }
}

/// A broker's configuration, checked and frozen by [`BrokerBuilder::build`].
///
/// ```
/// use std::sync::Arc;
/// use agentiam_broker::{Broker, SqliteStore, Store};
/// use agentiam_identity::{Algorithm, KeySet, SigningKey};
/// use agentiam_token::Issuer;
/// let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory()?);
/// let issuer = Arc::new(Issuer::new("https://broker.example", KeySet::new(SigningKey::generate(Algorithm::EdDSA)?)));
/// let broker = Broker::builder(issuer, store, "https://broker.example", "an admin secret of 32+ characters.....")
///     .client_assertion_max_lifetime(300)
///     .build()?;
/// # let _ = broker;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct BrokerBuilder {
    issuer: Arc<Issuer>,
    store: Arc<dyn Store>,
    base_url: String,
    /// Only the secret's digest and length are kept.
    admin_sha256: Vec<u8>,
    admin_chars: usize,
    clock: Arc<dyn Clock>,
    approver: Option<SigningKey>,
    audit: Option<(Arc<AuditLog>, PathBuf, Option<NoteVerifier>)>,
    assertion_max_lifetime: i64,
    identity_providers: Vec<IdentityProviderConfig>,
    key_directory: Option<DataDir>,
    shared_keys: Option<(KeyEncryptionKey, KeyMaterial)>,
}

impl std::fmt::Debug for BrokerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerBuilder")
            .field("issuer", &self.issuer.issuer())
            .field("base_url", &self.base_url)
            .field("audit", &self.audit.is_some())
            .field("identity_providers", &self.identity_providers.len())
            .field("shared_keys", &self.shared_keys.is_some())
            .finish_non_exhaustive()
    }
}

impl BrokerBuilder {
    /// The clock (tests pin it). Default: the system clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The key the broker signs approvals with (Ed25519; agents never hold it). Without one,
    /// a fresh key is generated per process.
    pub fn approver_key(mut self, key: SigningKey) -> Self {
        self.approver = Some(key);
        self
    }

    /// The activity log every token, revocation and approval step is written to, the
    /// directory it lives in, and the key its checkpoints verify with (the console shows
    /// the log and whether it verifies).
    pub fn audit_log(
        mut self,
        log: Arc<AuditLog>,
        dir: impl Into<PathBuf>,
        verifier: Option<NoteVerifier>,
    ) -> Self {
        self.audit = Some((log, dir.into(), verifier));
        self
    }

    /// Accepts client assertions living up to `secs` (at least 1; default an hour, see
    /// [`DEFAULT_CLIENT_ASSERTION_MAX_LIFETIME_SECS`]).
    pub fn client_assertion_max_lifetime(mut self, secs: i64) -> Self {
        self.assertion_max_lifetime = secs.max(1);
        self
    }

    /// Trusts these OpenID providers: an attested agent may exchange a person's token from one
    /// of them for a task token acting for that person. [`BrokerBuilder::build`] refuses a
    /// provider that is this broker's own issuer, and an unusable provider configuration.
    pub fn identity_providers(mut self, providers: Vec<IdentityProviderConfig>) -> Self {
        self.identity_providers = providers;
        self
    }

    /// Persists rotated signing keys in this data directory.
    pub fn key_directory(mut self, dir: DataDir) -> Self {
        self.key_directory = Some(dir);
        self
    }

    /// Shares this broker's keys with the other replicas on the same store, sealed under
    /// `kek`: [`BrokerBuilder::build`] adopts the sealed key material the store holds or,
    /// when there is none yet, seals `local` as its first version.
    pub(crate) fn shared_keys(mut self, kek: KeyEncryptionKey, local: KeyMaterial) -> Self {
        self.shared_keys = Some((kek, local));
        self
    }

    /// Checks the configuration and makes the broker: the administrator secret must have at
    /// least 32 characters, every agent in the store must be a valid registration (each is
    /// registered with the issuer), and no identity provider may be this broker's own issuer.
    /// With shared keys, the store's key material is adopted (or this broker's sealed into it).
    pub fn build(self) -> Result<Broker, BrokerError> {
        if self.admin_chars < MIN_ADMIN_SECRET_CHARS {
            return Err(BrokerError::Config(format!(
                "the administrator secret must have at least {MIN_ADMIN_SECRET_CHARS} characters"
            )));
        }
        for agent in self.store.agents()? {
            self.issuer
                .register(&parse_id(&agent.spiffe_id)?, registration(&agent)?);
        }
        let approver = match self.approver {
            Some(key) => key,
            None => SigningKey::generate(Algorithm::EdDSA)
                .map_err(|e| BrokerError::Config(format!("approver key: {e}")))?,
        };
        let people = if self.identity_providers.is_empty() {
            None
        } else {
            if let Some(own) = self
                .identity_providers
                .iter()
                .find(|p| p.issuer == self.issuer.issuer())
            {
                // Its own tokens would be read as people's: refuse to start.
                return Err(BrokerError::Config(format!(
                    "identity_providers: {} is this broker's own issuer",
                    own.issuer
                )));
            }
            Some(Arc::new(IdentityProviders::new(self.identity_providers)?))
        };
        let mut console = ConsoleSettings::for_base_url(&self.base_url);
        let audit = self.audit.map(|(log, dir, verifier)| {
            console.audit_dir = Some(dir);
            console.audit_verifier = verifier;
            log
        });
        let (kek, local) = match self.shared_keys {
            Some((kek, local)) => (Some(kek), Some(local)),
            None => (None, None),
        };
        let broker = Broker {
            inner: Arc::new(Inner {
                issuer: self.issuer,
                store: self.store,
                base_url: self.base_url,
                admin_sha256: self.admin_sha256,
                dpop: DpopVerifier::new(self.clock.clone()),
                clock: self.clock,
                keys: KeyState::new(approver, kek, self.key_directory),
                audit,
                settled: tokio::sync::watch::channel(0).0,
                console,
                assertion_max_lifetime: self.assertion_max_lifetime,
                people,
            }),
        };
        if let Some(local) = local {
            broker.keys().share(local, &broker.key_context())?;
        }
        Ok(broker)
    }
}

impl Broker {
    /// A broker issuing as `issuer`, keeping its state in `store`, reachable at `base_url`,
    /// administered by whoever holds `admin_secret` (at least 32 characters, checked by
    /// [`BrokerBuilder::build`]; only its SHA-256 is kept). Agents already in the store are
    /// registered with the issuer when it is built.
    pub fn builder(
        issuer: Arc<Issuer>,
        store: Arc<dyn Store>,
        base_url: impl Into<String>,
        admin_secret: &str,
    ) -> BrokerBuilder {
        BrokerBuilder {
            issuer,
            store,
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            admin_sha256: sha256(admin_secret.as_bytes()),
            admin_chars: admin_secret.chars().count(),
            clock: Arc::new(SystemClock),
            approver: None,
            audit: None,
            assertion_max_lifetime: DEFAULT_CLIENT_ASSERTION_MAX_LIFETIME_SECS,
            identity_providers: Vec::new(),
            key_directory: None,
            shared_keys: None,
        }
    }

    /// The token endpoint's URL: the audience of client assertions and DPoP proofs.
    pub fn token_endpoint(&self) -> String {
        format!("{}/oauth2/token", self.inner.base_url)
    }

    /// Forgets expired revocations, used single-use keys and console sessions.
    pub fn prune_store(&self) -> Result<(), BrokerError> {
        self.inner.store.prune(self.now())
    }

    /// The approver key's public half, for guards' [`agentiam_guard::ApproverKeys`].
    pub fn approver_public_key(&self) -> agentiam_identity::PublicKey {
        self.approver().public_key().clone()
    }

    /// The activity log, if one is attached.
    pub fn audit_log(&self) -> Option<&Arc<AuditLog>> {
        self.inner.audit.as_ref()
    }

    /// Flushes the activity log to disk and signs a checkpoint over it; what graceful
    /// shutdown calls. Returns the checkpoint note, if there is a log.
    pub fn flush_audit(&self) -> Result<Option<String>, BrokerError> {
        let Some(log) = &self.inner.audit else {
            return Ok(None);
        };
        log.flush()
            .and_then(|_| log.checkpoint())
            .map(Some)
            .map_err(|e| BrokerError::Audit(e.to_string()))
    }

    /// The revocations the broker writes, for verifiers in the same process.
    pub fn revocations(&self) -> StoreRevocations {
        StoreRevocations::new(self.inner.store.clone(), self.inner.clock.clone())
    }

    /// Appends an event to the activity log. Fails closed: when the log cannot take it, the
    /// action it records is refused (503, `broker.audit_unavailable`).
    pub(crate) fn audit(&self, event: agentiam_telemetry::AuditEvent) -> Result<(), OAuthError> {
        let Some(log) = &self.inner.audit else {
            return Ok(());
        };
        log.append(event).map_err(|e| {
            OAuthError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                crate::codes::AUDIT_UNAVAILABLE,
                format!("the activity log cannot record this: {e}"),
            )
        })
    }

    pub(crate) fn people(&self) -> Option<&Arc<IdentityProviders>> {
        self.inner.people.as_ref()
    }

    pub(crate) fn client_assertion_max_lifetime(&self) -> i64 {
        self.inner.assertion_max_lifetime
    }

    /// The `aud` values a client assertion may name (RFC 7523 section 3): the issuer, or the
    /// endpoint it is presented to (token, introspection or revocation).
    pub(crate) fn assertion_audiences(&self) -> [String; 4] {
        let base = &self.inner.base_url;
        [
            self.token_endpoint(),
            self.issuer_url(),
            format!("{base}/oauth2/introspect"),
            format!("{base}/oauth2/revoke"),
        ]
    }

    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    pub(crate) fn issuer(&self) -> &Arc<Issuer> {
        &self.inner.issuer
    }

    pub(crate) fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    pub(crate) fn dpop(&self) -> &DpopVerifier {
        &self.inner.dpop
    }

    /// The keys as they rotate (`keys.rs`).
    pub(crate) fn keys(&self) -> &KeyState {
        &self.inner.keys
    }

    /// The key approvals are signed with now.
    pub(crate) fn approver(&self) -> Arc<SigningKey> {
        self.inner.keys.approver()
    }

    pub(crate) fn console_settings(&self) -> &ConsoleSettings {
        &self.inner.console
    }

    pub(crate) fn settled(&self) -> &tokio::sync::watch::Sender<u64> {
        &self.inner.settled
    }

    pub(crate) fn now(&self) -> i64 {
        self.inner.clock.now()
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// The broker's public base URL (no trailing slash).
    pub(crate) fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// SHA-256 of the administrator's secret.
    pub(crate) fn admin_secret_sha256(&self) -> &[u8] {
        &self.inner.admin_sha256
    }

    pub(crate) fn issuer_url(&self) -> String {
        self.inner.issuer.issuer().to_owned()
    }

    fn key_context(&self) -> KeyContext<'_> {
        KeyContext {
            issuer: self.issuer(),
            store: self.store().as_ref(),
            now: self.now(),
        }
    }

    /// Rotates the token signing key: a new Ed25519 key signs from now on; the old one stays
    /// in the JWKS until the last token it signed has expired (the issuer's maximum lifetime).
    /// With a data directory, the new key and the retired one are persisted first; with shared
    /// keys every replica adopts it. The rotation is written to the activity log. Returns the
    /// new key's `kid`.
    pub fn rotate_signing_key(&self) -> Result<String, BrokerError> {
        let rotation = self.keys().rotate(&self.key_context())?;
        let mut event = AuditEvent::new(
            "signing_key_rotated",
            AgentRef {
                spiffe_id: self.issuer_url(),
                composite_digest: None,
            },
            self.now_ms(),
            agentiam_telemetry::Decision::allow(),
        );
        event.data_accessed = vec![
            format!("kid:{}", rotation.kid),
            format!("retired:{}", rotation.retired),
        ];
        if let Some(log) = self.audit_log() {
            log.append(event)
                .map_err(|e| BrokerError::Audit(e.to_string()))?;
        }
        Ok(rotation.kid)
    }

    /// Re-reads the replicas' shared keys and adopts them when another replica changed them.
    /// Returns whether anything changed. `serve` calls it every few seconds.
    pub fn sync_shared_keys(&self) -> Result<bool, BrokerError> {
        self.keys().sync(&self.key_context())
    }

    /// The public keys tokens verify with now (what `/.well-known/jwks.json` serves).
    pub fn jwks(&self) -> Jwks {
        self.issuer().jwks()
    }
}
