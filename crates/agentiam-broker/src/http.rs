//! The broker's HTTP API (axum).

use std::sync::Arc;

use agentiam_identity::{Algorithm, Jwks, KeySet, Sha256Digest, SigningKey};
use agentiam_telemetry::{AgentRef, AuditEvent, AuditLog, Decision};
use agentiam_token::{
    AgentRegistration, Clock, DpopVerifier, Issuer, ScopeSet, SystemClock, Verifier,
};
use axum::extract::rejection::{FormRejection, JsonRejection};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::BrokerError;
use crate::console::ConsoleSettings;
use crate::shared_keys::{KeyEncryptionKey, KeyMaterial, RetiredKey};

/// The replicas' shared keys: the key-encryption key and the version adopted.
struct SharedKeys {
    kek: KeyEncryptionKey,
    state: std::sync::Mutex<Option<(i64, KeyMaterial)>>,
}
use crate::store::{AgentRecord, Store, StoreRevocations};

/// Largest request body the broker reads (bytes); larger ones are refused with 413 unread.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Shortest administrator secret accepted.
const MIN_ADMIN_SECRET_CHARS: usize = 32;

/// The broker: issuer, store and the administrator's credential, served by [`Broker::router`].
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
    approver: std::sync::RwLock<Arc<SigningKey>>,
    /// Keys shared with other replicas through the store, when enabled.
    shared: Option<SharedKeys>,
    audit: Option<Arc<AuditLog>>,
    dpop: DpopVerifier,
    /// Bumped whenever an approval is settled, to wake long-polling agents.
    settled: tokio::sync::watch::Sender<u64>,
    console: ConsoleSettings,
    /// Where rotated signing keys are persisted, when the broker runs from a data directory.
    key_directory: Option<crate::DataDir>,
    /// Serialises rotations.
    rotating: std::sync::Mutex<()>,
    /// Longest-lived client assertion accepted (seconds).
    assertion_max_lifetime: i64,
    /// Trusted OpenID providers whose people agents may act for.
    people: Option<Arc<crate::people::IdentityProviders>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("issuer", &self.issuer.issuer())
            .field("base_url", &self.base_url)
            .field("shared_keys", &self.shared.is_some())
            .field("audit", &self.audit.is_some())
            .finish_non_exhaustive()
    }
}

/// An OAuth error response (RFC 6749 section 5.2 shape) with our reason code beside.
#[derive(Debug)]
pub(crate) struct OAuthError {
    pub(crate) status: StatusCode,
    pub(crate) error: &'static str,
    pub(crate) description: String,
    pub(crate) code: String,
    /// The authentication scheme a 401 challenges with (RFC 6749 section 5.2: the one the
    /// client tried).
    pub(crate) challenge: Challenge,
}

/// The `WWW-Authenticate` scheme of a 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Challenge {
    Bearer,
    Basic,
}

/// Longest-lived client assertion the broker accepts by default: an hour, what stock clients
/// sign (authlib's `PrivateKeyJWT`). Each assertion's `jti` is single-use until its `exp`.
pub const DEFAULT_CLIENT_ASSERTION_MAX_LIFETIME_SECS: i64 = 3600;

/// A refused DPoP proof (RFC 9449 section 7: `invalid_dpop_proof`).
pub(crate) fn invalid_dpop(code: &str, why: String) -> OAuthError {
    OAuthError::new(StatusCode::BAD_REQUEST, "invalid_dpop_proof", code, why)
}

/// RFC 6749 section 5.2: `error_description` holds only `%x20-21 / %x23-5B / %x5D-7E`. A
/// quote becomes `'`, a backslash `/`, anything else outside the set `?`.
pub(crate) fn oauth_description(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' => '\'',
            '\\' => '/',
            ' '..='~' => c,
            _ => '?',
        })
        .collect()
}

impl OAuthError {
    pub(crate) fn new(
        status: StatusCode,
        error: &'static str,
        code: &str,
        description: impl Into<String>,
    ) -> Self {
        Self {
            status,
            error,
            description: description.into(),
            code: code.to_owned(),
            challenge: Challenge::Bearer,
        }
    }

    pub(crate) fn with_challenge(mut self, challenge: Challenge) -> Self {
        self.challenge = challenge;
        self
    }

    pub(crate) fn bad_request(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "broker.bad_request",
            description,
        )
    }
}

impl From<BrokerError> for OAuthError {
    fn from(e: BrokerError) -> Self {
        match e {
            BrokerError::BadRequest(m) => Self::bad_request(m),
            BrokerError::Unreachable(m) => Self::new(
                StatusCode::BAD_GATEWAY,
                "temporarily_unavailable",
                "broker.unreachable",
                m,
            ),
            other => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                other.code(),
                other.to_string(),
            ),
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": self.error,
            "error_description": oauth_description(&self.description),
            "agentiam_code": self.code,
        });
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(match self.challenge {
                    Challenge::Bearer => "Bearer realm=\"agentiam-broker\"",
                    Challenge::Basic => "Basic realm=\"agentiam-broker\"",
                }),
            );
        }
        response
    }
}

/// The bearer token of a request's `Authorization` header, if it has a non-empty one.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|t| !t.is_empty())
}

pub(crate) fn sha256(bytes: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes)
        .as_ref()
        .to_vec()
}

impl Broker {
    /// A broker issuing as `issuer`, keeping its state in `store`, reachable at `base_url`,
    /// administered by whoever holds `admin_secret` (at least 32 characters). Agents already
    /// in the store are registered with the issuer.
    pub fn new(
        issuer: Arc<Issuer>,
        store: Arc<dyn Store>,
        base_url: impl Into<String>,
        admin_secret: &str,
    ) -> Result<Self, BrokerError> {
        if admin_secret.chars().count() < MIN_ADMIN_SECRET_CHARS {
            return Err(BrokerError::Config(format!(
                "the administrator secret must have at least {MIN_ADMIN_SECRET_CHARS} characters"
            )));
        }
        for agent in store.agents()? {
            issuer.register(&parse_id(&agent.spiffe_id)?, registration(&agent)?);
        }
        let approver = SigningKey::generate(Algorithm::EdDSA)
            .map_err(|e| BrokerError::Config(format!("approver key: {e}")))?;
        let base_url = base_url.into().trim_end_matches('/').to_owned();
        let console = ConsoleSettings::for_base_url(&base_url);
        Ok(Self {
            inner: Arc::new(Inner {
                issuer,
                store,
                base_url,
                admin_sha256: sha256(admin_secret.as_bytes()),
                clock: Arc::new(SystemClock),
                approver: std::sync::RwLock::new(Arc::new(approver)),
                shared: None,
                audit: None,
                dpop: DpopVerifier::new(Arc::new(SystemClock)),
                settled: tokio::sync::watch::channel(0).0,
                console,
                key_directory: None,
                rotating: std::sync::Mutex::new(()),
                assertion_max_lifetime: DEFAULT_CLIENT_ASSERTION_MAX_LIFETIME_SECS,
                people: None,
            }),
        })
    }

    fn configure(mut self, f: impl FnOnce(&mut Inner)) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            f(inner);
        }
        self
    }

    /// The clock (tests pin it). Call before serving.
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        self.configure(|inner| {
            inner.dpop = DpopVerifier::new(clock.clone());
            inner.clock = clock;
        })
    }

    /// The key the broker signs approvals with (Ed25519; agents never hold it). Without one,
    /// a fresh key is generated per process. Call before serving.
    pub fn with_approver_key(self, key: SigningKey) -> Self {
        self.configure(|inner| inner.approver = std::sync::RwLock::new(Arc::new(key)))
    }

    /// The activity log every token, revocation and approval step is written to, the
    /// directory it lives in, and the key its checkpoints verify with (the console shows
    /// the log and whether it verifies). Call before serving.
    pub fn with_audit_log(
        self,
        log: Arc<AuditLog>,
        dir: impl Into<std::path::PathBuf>,
        verifier: Option<agentiam_telemetry::NoteVerifier>,
    ) -> Self {
        let dir = dir.into();
        self.configure(|inner| {
            inner.audit = Some(log);
            inner.console.audit_dir = Some(dir);
            inner.console.audit_verifier = verifier;
        })
    }

    /// Accepts client assertions living up to `secs` (default an hour, see
    /// [`DEFAULT_CLIENT_ASSERTION_MAX_LIFETIME_SECS`]). Call before serving.
    pub fn with_client_assertion_max_lifetime(self, secs: i64) -> Self {
        self.configure(|inner| inner.assertion_max_lifetime = secs.max(1))
    }

    /// Trusts these OpenID providers: an attested agent may exchange a person's token from one
    /// of them for a task token acting for that person (see the `people` module). Call before
    /// serving.
    pub fn with_identity_providers(
        self,
        providers: Vec<crate::IdentityProviderConfig>,
    ) -> Result<Self, BrokerError> {
        if providers.is_empty() {
            return Ok(self);
        }
        if let Some(own) = providers
            .iter()
            .find(|p| p.issuer == self.inner.issuer.issuer())
        {
            // Its own tokens would be read as people's: refuse to start.
            return Err(BrokerError::Config(format!(
                "identity_providers: {} is this broker's own issuer",
                own.issuer
            )));
        }
        let people = Arc::new(crate::people::IdentityProviders::new(providers)?);
        let this = self.configure(|inner| inner.people = Some(people));
        if this.inner.people.is_none() {
            // Never serve without providers the configuration names.
            return Err(BrokerError::Config(
                "identity providers must be set before the broker is cloned".into(),
            ));
        }
        Ok(this)
    }

    pub(crate) fn people(&self) -> Option<&Arc<crate::people::IdentityProviders>> {
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

    /// Persists rotated signing keys in this data directory. Call before serving.
    pub fn with_key_directory(self, dir: crate::DataDir) -> Self {
        self.configure(|inner| inner.key_directory = Some(dir))
    }

    /// Rotates the token signing key: a new Ed25519 key signs from now on; the old one stays
    /// in the JWKS until the last token it signed has expired (the issuer's maximum lifetime).
    /// With a data directory, the new key and the retired one are persisted first. Returns the
    /// new key's `kid`.
    pub fn rotate_signing_key(&self) -> Result<String, BrokerError> {
        let _one_at_a_time = self
            .inner
            .rotating
            .lock()
            .map_err(|_| BrokerError::Config("rotation lock poisoned".into()))?;
        if self.inner.shared.is_some() {
            return self.rotate_shared_signing_key();
        }
        let next = SigningKey::generate(Algorithm::EdDSA)
            .map_err(|e| BrokerError::Config(format!("new signing key: {e}")))?;
        let now = self.now();
        let old = self
            .inner
            .issuer
            .active_public_key()
            .ok_or_else(|| BrokerError::Config("the issuer's key set is unreadable".into()))?;
        if let Some(dir) = &self.inner.key_directory {
            dir.persist_rotation(
                &next,
                &old,
                now.saturating_add(self.inner.issuer.max_ttl()),
                now,
            )?;
        }
        let kid = next.kid().to_owned();
        self.inner
            .issuer
            .rotate(next)
            .map_err(|e| BrokerError::Config(e.to_string()))?;
        self.audit_rotation(&kid, old.kid())?;
        Ok(kid)
    }

    /// Shares this broker's keys with the other replicas on the same store: adopts the sealed
    /// key material the store holds, or, when there is none yet, seals `local` as its first
    /// version. Call before serving (the `DataDir` does).
    pub(crate) fn enable_shared_keys(
        self,
        kek: KeyEncryptionKey,
        local: KeyMaterial,
    ) -> Result<Self, BrokerError> {
        let this = self.configure(|inner| {
            inner.shared = Some(SharedKeys {
                kek,
                state: std::sync::Mutex::new(None),
            });
        });
        let Some(shared) = &this.inner.shared else {
            return Err(BrokerError::Config(
                "shared keys must be enabled before the broker is cloned".into(),
            ));
        };
        if this.inner.store.key_material()?.is_none() {
            let sealed = shared.kek.seal(&local, 1)?;
            if this.inner.store.swap_key_material(None, 1, &sealed)? {
                this.adopt_keys(1, local)?;
                return Ok(this);
            }
        }
        this.sync_shared_keys()?;
        Ok(this)
    }

    /// Re-reads the replicas' shared keys and adopts them when another replica changed them.
    /// Returns whether anything changed. `serve` calls it every few seconds.
    pub fn sync_shared_keys(&self) -> Result<bool, BrokerError> {
        let Some(shared) = &self.inner.shared else {
            return Ok(false);
        };
        let Some((version, sealed)) = self.inner.store.key_material()? else {
            return Ok(false);
        };
        let current = shared
            .state
            .lock()
            .map_err(|_| BrokerError::Config("shared keys lock poisoned".into()))?
            .as_ref()
            .map(|(v, _)| *v);
        if current == Some(version) {
            return Ok(false);
        }
        let material = shared.kek.open(&sealed, version)?;
        self.adopt_keys(version, material)?;
        Ok(true)
    }

    fn adopt_keys(&self, version: i64, material: KeyMaterial) -> Result<(), BrokerError> {
        let bad = |e: agentiam_identity::IdentityError| {
            BrokerError::Config(format!("shared key material: {e}"))
        };
        let now = self.now();
        let mut keys = KeySet::new(SigningKey::from_private_jwk(&material.signing).map_err(bad)?);
        for r in material.retired.iter().filter(|r| r.until >= now) {
            keys = keys.with_retired(
                agentiam_identity::PublicKey::from_jwk(&r.jwk).map_err(bad)?,
                r.until,
            );
        }
        let approver = SigningKey::from_private_jwk(&material.approver).map_err(bad)?;
        self.inner
            .issuer
            .replace_keys(keys)
            .map_err(|e| BrokerError::Config(e.to_string()))?;
        *self
            .inner
            .approver
            .write()
            .map_err(|_| BrokerError::Config("approver key lock poisoned".into()))? =
            Arc::new(approver);
        if let Some(shared) = &self.inner.shared {
            *shared
                .state
                .lock()
                .map_err(|_| BrokerError::Config("shared keys lock poisoned".into()))? =
                Some((version, material));
        }
        Ok(())
    }

    /// A rotation every replica sees: the next version of the shared material, written only
    /// if no other replica wrote one first (then this one adopts theirs and tries again).
    fn rotate_shared_signing_key(&self) -> Result<String, BrokerError> {
        let Some(shared) = &self.inner.shared else {
            return Err(BrokerError::Config("keys are not shared".into()));
        };
        for _ in 0..5 {
            self.sync_shared_keys()?;
            let now = self.now();
            let next = SigningKey::generate(Algorithm::EdDSA)
                .map_err(|e| BrokerError::Config(format!("new signing key: {e}")))?;
            let (version, material, retired_kid) = {
                let state = shared
                    .state
                    .lock()
                    .map_err(|_| BrokerError::Config("shared keys lock poisoned".into()))?;
                let Some((version, current)) = state.as_ref() else {
                    return Err(BrokerError::Config("no shared key material yet".into()));
                };
                let old = SigningKey::from_private_jwk(&current.signing)
                    .map_err(|e| BrokerError::Config(e.to_string()))?;
                let mut retired: Vec<RetiredKey> = current
                    .retired
                    .iter()
                    .filter(|r| r.until >= now)
                    .cloned()
                    .collect();
                retired.push(RetiredKey {
                    jwk: old.public_key().to_jwk(),
                    until: now.saturating_add(self.inner.issuer.max_ttl()),
                });
                let signing = next
                    .to_private_jwk()
                    .map_err(|e| BrokerError::Config(e.to_string()))?;
                (
                    *version,
                    KeyMaterial {
                        signing: signing.to_string(),
                        approver: current.approver.clone(),
                        retired,
                    },
                    old.kid().to_owned(),
                )
            };
            let sealed = shared.kek.seal(&material, version + 1)?;
            if self
                .inner
                .store
                .swap_key_material(Some(version), version + 1, &sealed)?
            {
                self.adopt_keys(version + 1, material)?;
                let kid = next.kid().to_owned();
                self.audit_rotation(&kid, &retired_kid)?;
                return Ok(kid);
            }
        }
        Err(BrokerError::Config(
            "the shared keys kept changing under this rotation; try again".into(),
        ))
    }

    fn audit_rotation(&self, kid: &str, retired: &str) -> Result<(), BrokerError> {
        let mut event = AuditEvent::new(
            "signing_key_rotated",
            AgentRef {
                spiffe_id: self.issuer_url(),
                composite_digest: None,
            },
            self.now_ms(),
            Decision::allow(),
        );
        event.data_accessed = vec![format!("kid:{kid}"), format!("retired:{retired}")];
        if let Some(log) = &self.inner.audit {
            log.append(event)
                .map_err(|e| BrokerError::Audit(e.to_string()))?;
        }
        Ok(())
    }

    /// The public keys tokens verify with now (what `/.well-known/jwks.json` serves).
    pub fn jwks(&self) -> Jwks {
        self.inner.issuer.jwks()
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

    pub(crate) fn approver(&self) -> Arc<SigningKey> {
        self.inner
            .approver
            .read()
            .map_or_else(|p| p.into_inner().clone(), |k| k.clone())
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

    /// The token endpoint's URL: the audience of client assertions and DPoP proofs.
    pub fn token_endpoint(&self) -> String {
        format!("{}/oauth2/token", self.inner.base_url)
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
                "broker.audit_unavailable",
                format!("the activity log cannot record this: {e}"),
            )
        })
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

    /// The HTTP routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/.well-known/jwks.json", get(jwks))
            .route("/.well-known/oauth-authorization-server", get(metadata))
            .route("/oauth2/token", post(crate::token::token))
            .route("/oauth2/authorize", get(authorize).post(authorize))
            .route("/oauth2/introspect", post(crate::introspection::introspect))
            .route("/oauth2/revoke", post(crate::introspection::revoke))
            .route("/admin/agents", post(register_agent).get(list_agents))
            .route("/admin/keys/rotate", post(rotate_keys))
            .merge(crate::approvals_http::routes())
            .merge(crate::console::routes())
            .merge(crate::registration::routes())
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(self.clone())
    }

    /// Refuses a request without the administrator's bearer token (constant-time comparison
    /// of SHA-256 digests, so neither the secret nor its length leaks through timing).
    pub(crate) fn admin(&self, headers: &HeaderMap) -> Result<(), OAuthError> {
        let presented = bearer(headers).unwrap_or_default();
        let ok = !presented.is_empty()
            && aws_lc_rs::constant_time::verify_slices_are_equal(
                &sha256(presented.as_bytes()),
                &self.inner.admin_sha256,
            )
            .is_ok();
        if ok {
            Ok(())
        } else {
            Err(OAuthError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "broker.unauthorized",
                "this endpoint needs the administrator's bearer token",
            ))
        }
    }

    /// A verifier of tokens this broker issued, for any audience (introspection and revocation
    /// answer for every service; a service itself must always check its own audience).
    pub(crate) fn any_audience_verifier(&self, check_revocation: bool) -> Verifier {
        let mut verifier = Verifier::new(self.inner.issuer.jwks(), self.inner.issuer.issuer(), "")
            .any_audience()
            .with_clock(self.inner.clock.clone());
        if check_revocation {
            verifier = verifier.with_revocation(Arc::new(self.revocations()));
        }
        verifier
    }

    /// Verifies a token this broker issued as the token itself: signature, issuer, expiry and
    /// (when asked) revocation, but not who presents it. Introspection (RFC 7662, RFC 9449
    /// section 6.2) and revocation (RFC 7009) are about the token, so a sender-constrained
    /// token verifies here without its proof; anything that acts on a token's authority must
    /// use [`Broker::verify_presented`].
    pub(crate) fn verify_issued(
        &self,
        token: &str,
        check_revocation: bool,
    ) -> Result<agentiam_token::Token, agentiam_token::TokenError> {
        self.any_audience_verifier(check_revocation)
            .verify_without_pop(token)
    }

    /// The request's DPoP proof, if it has one. More than one `DPoP` header is refused
    /// (RFC 9449 section 4.3), and so is a header that is not text.
    pub(crate) fn dpop_header(headers: &HeaderMap) -> Result<Option<&str>, OAuthError> {
        let mut proofs = headers.get_all("dpop").iter();
        let Some(proof) = proofs.next() else {
            return Ok(None);
        };
        if proofs.next().is_some() {
            return Err(invalid_dpop(
                "token.pop_invalid",
                "more than one DPoP header: a request carries exactly one proof".into(),
            ));
        }
        proof
            .to_str()
            .map(Some)
            .map_err(|_| invalid_dpop("token.pop_invalid", "the DPoP header is not text".into()))
    }

    /// Verifies a DPoP proof for `method` and `url` (and `access_token`'s hash, when given) and
    /// uses it up: the verifier remembers proofs in this process, the store across every replica
    /// (kept past the proofs' 60 s acceptance window).
    pub(crate) fn use_dpop_proof(
        &self,
        proof: &str,
        method: &str,
        url: &str,
        access_token: Option<&str>,
    ) -> Result<agentiam_token::DpopProof, OAuthError> {
        let request = agentiam_token::DpopRequest { method, url };
        let verified = self
            .dpop()
            .verify(proof, &request, access_token)
            .map_err(|e| invalid_dpop(e.code(), e.to_string()))?;
        let now = self.now();
        let once = format!("dpop\n{}\n{}", verified.jkt(), verified.jti());
        if !self.store().use_once(&once, now.saturating_add(120), now)? {
            return Err(invalid_dpop(
                "token.pop_invalid",
                "this DPoP proof was already used".into(),
            ));
        }
        Ok(verified)
    }

    /// Verifies the token a request presents on its own authority (the approvals API): a
    /// bearer token as `Authorization: Bearer`; a DPoP-bound one as `Authorization: DPoP` with
    /// exactly one proof by its key for this method and path (RFC 9449 section 7), used once
    /// across replicas. Revocation is checked; a certificate-bound token is refused (the
    /// broker does not terminate mTLS).
    pub(crate) fn verify_presented(
        &self,
        headers: &HeaderMap,
        method: &str,
        path: &str,
    ) -> Result<agentiam_token::Token, OAuthError> {
        let unauthorized = |code: &str, why: String| {
            OAuthError::new(StatusCode::UNAUTHORIZED, "invalid_token", code, why)
        };
        let authorization = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let (scheme, token) = authorization.split_once(' ').unwrap_or_default();
        let dpop_scheme = scheme.eq_ignore_ascii_case("dpop");
        if token.is_empty() || !(dpop_scheme || scheme.eq_ignore_ascii_case("bearer")) {
            return Err(unauthorized(
                "broker.unauthorized",
                "present the agent's access token (Authorization: Bearer, or DPoP with a proof)"
                    .into(),
            ));
        }
        let proof = Self::dpop_header(headers)?;
        let verified = self
            .verify_issued(token, true)
            .map_err(|e| unauthorized(e.code(), e.to_string()))?;
        let cnf = verified.claims().cnf.as_ref();
        if cnf.is_some_and(|c| c.x5t_s256.is_some()) {
            return Err(unauthorized(
                "token.pop_required",
                "a certificate-bound token is used over mTLS, which the broker does not terminate"
                    .into(),
            ));
        }
        let bound = cnf.and_then(|c| c.jkt.as_deref());
        match (bound, proof) {
            (None, None) => Ok(verified),
            (Some(_), None) | (Some(_), Some(_)) if !dpop_scheme => Err(unauthorized(
                "token.pop_required",
                "a DPoP-bound token is presented as Authorization: DPoP, with a DPoP proof".into(),
            )),
            (Some(_), None) => Err(unauthorized(
                "token.pop_required",
                "a DPoP-bound token needs a DPoP proof".into(),
            )),
            (bound, Some(proof)) => {
                let url = format!("{}{path}", self.inner.base_url);
                let checked = self.use_dpop_proof(proof, method, &url, Some(token))?;
                match bound {
                    Some(jkt)
                        if aws_lc_rs::constant_time::verify_slices_are_equal(
                            jkt.as_bytes(),
                            checked.jkt().as_bytes(),
                        )
                        .is_err() =>
                    {
                        Err(unauthorized(
                            "token.pop_invalid",
                            "the proof's key is not the key the token is bound to".into(),
                        ))
                    }
                    _ => Ok(verified),
                }
            }
        }
    }
}

pub(crate) fn parse_id(id: &str) -> Result<agentiam_identity::SpiffeId, BrokerError> {
    agentiam_identity::parse_spiffe_id(id)
        .map_err(|e| BrokerError::BadRequest(format!("spiffe_id: {e}")))
}

/// Attestors the token endpoint knows how to run.
pub(crate) const KNOWN_ATTESTORS: &[&str] = &["configuration"];

pub(crate) fn registration(agent: &AgentRecord) -> Result<AgentRegistration, BrokerError> {
    if let Some(jwks) = &agent.jwks {
        let keys = Jwks::from_json(&jwks.to_string())
            .map_err(|e| BrokerError::BadRequest(format!("jwks: {e}")))?;
        if keys.keys().is_empty() || !keys.skipped().is_empty() {
            return Err(BrokerError::BadRequest(
                "jwks: every key must be a usable EdDSA (Ed25519) or ES256 public key".into(),
            ));
        }
    }
    if agent.attestors.is_empty() {
        return Err(BrokerError::BadRequest(
            "attestors: at least one is required (known: configuration)".into(),
        ));
    }
    if let Some(unknown) = agent
        .attestors
        .iter()
        .find(|a| !KNOWN_ATTESTORS.contains(&a.as_str()))
    {
        return Err(BrokerError::BadRequest(format!(
            "attestors: {:?} is not known (known: {})",
            unknown.chars().take(80).collect::<String>(),
            KNOWN_ATTESTORS.join(", ")
        )));
    }
    let scopes = ScopeSet::parse(&agent.max_scopes)
        .map_err(|e| BrokerError::BadRequest(format!("max_scopes: {e}")))?;
    let mut registration = AgentRegistration::new(scopes);
    for digest in &agent.allowed_digests {
        let d = Sha256Digest::parse(digest).ok_or_else(|| {
            BrokerError::BadRequest(format!(
                "allowed_digests: {:?} is not sha256:<64 hex>",
                digest.chars().take(80).collect::<String>()
            ))
        })?;
        registration = registration.pin_identity(d);
    }
    Ok(registration)
}

/// `/oauth2/authorize`: there is no interactive grant here. RFC 6749 section 4.1.2.1: with no
/// registered redirection URI to return to, the error is shown, never redirected.
async fn authorize() -> OAuthError {
    OAuthError::new(
        StatusCode::BAD_REQUEST,
        "unsupported_response_type",
        "broker.unsupported_grant_type",
        "the broker has no interactive authorization: agents use client credentials \
         (private_key_jwt) or token exchange",
    )
}

async fn jwks(State(broker): State<Broker>) -> Response {
    let body = broker.inner.issuer.jwks().to_json();
    (
        [
            (header::CONTENT_TYPE, "application/jwk-set+json"),
            (header::CACHE_CONTROL, "public, max-age=60"),
        ],
        body,
    )
        .into_response()
}

async fn metadata(State(broker): State<Broker>) -> Json<Value> {
    let base = &broker.inner.base_url;
    Json(json!({
        "issuer": broker.inner.issuer.issuer(),
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "token_endpoint": format!("{base}/oauth2/token"),
        "grant_types_supported": [crate::token::GRANT_CLIENT_CREDENTIALS, crate::token::GRANT_TOKEN_EXCHANGE],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["EdDSA", "Ed25519", "ES256"],
        "dpop_signing_alg_values_supported": ["EdDSA", "Ed25519", "ES256"],
        // RFC 8414 requires it; `none` is the registered response type that returns nothing.
        "response_types_supported": ["none"],
        // Agents use client credentials; people sign in at their own OpenID provider. The
        // endpoint exists for clients whose metadata model requires it (the MCP SDK's), and
        // refuses every request.
        "authorization_endpoint": format!("{base}/oauth2/authorize"),
        "introspection_endpoint": format!("{base}/oauth2/introspect"),
        // Agents with their client assertion; the administrator with a bearer token (the
        // introspection list may name access token types, RFC 8414 section 2).
        "introspection_endpoint_auth_methods_supported": ["private_key_jwt", "Bearer"],
        "introspection_endpoint_auth_signing_alg_values_supported": ["EdDSA", "Ed25519", "ES256"],
        // RFC 7591, gated by initial access tokens the administrator issues.
        "registration_endpoint": format!("{base}/oauth2/register"),
        "revocation_endpoint": format!("{base}/oauth2/revoke"),
        // Only IANA client authentication methods here; the administrator's bearer token works
        // too, as an extension.
        "revocation_endpoint_auth_methods_supported": ["private_key_jwt"],
        "revocation_endpoint_auth_signing_alg_values_supported": ["EdDSA", "Ed25519", "ES256"],
    }))
}

/// A body the extractor refused: too large (413, `broker.body_too_large`) or malformed (400).
pub(crate) fn refused_body(
    status: StatusCode,
    what: &str,
    why: impl std::fmt::Display,
) -> OAuthError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return OAuthError::new(
            status,
            "invalid_request",
            "broker.body_too_large",
            format!("the body is over {MAX_BODY_BYTES} bytes"),
        );
    }
    OAuthError::bad_request(format!("{what}: {why}"))
}

pub(crate) fn form_error(rejection: FormRejection) -> OAuthError {
    refused_body(
        rejection.status(),
        "the body must be application/x-www-form-urlencoded with a token",
        rejection,
    )
}

async fn register_agent(
    State(broker): State<Broker>,
    headers: HeaderMap,
    body: Result<Json<AgentRecord>, JsonRejection>,
) -> Result<Response, OAuthError> {
    broker.admin(&headers)?;
    let Json(mut agent) = body.map_err(|e| refused_body(e.status(), "agent registration", &e))?;
    // The administrator replaces the registration whole: a registration access token the agent
    // held (RFC 7592) no longer manages it.
    agent.registration_token_sha256 = None;
    let id = parse_id(&agent.spiffe_id)?;
    let registration = registration(&agent)?;
    let mut event = AuditEvent::new(
        "agent_registered",
        AgentRef {
            spiffe_id: agent.spiffe_id.clone(),
            composite_digest: agent.allowed_digests.first().cloned(),
        },
        broker.now_ms(),
        Decision::allow(),
    );
    event.data_accessed = vec![format!("scope:{}", agent.max_scopes)];
    broker.audit(event)?;
    broker.inner.store.put_agent(&agent)?;
    broker.inner.issuer.register(&id, registration);
    Ok((StatusCode::CREATED, Json(agent)).into_response())
}

async fn list_agents(
    State(broker): State<Broker>,
    headers: HeaderMap,
) -> Result<Json<Value>, OAuthError> {
    broker.admin(&headers)?;
    let agents = broker.inner.store.agents()?;
    Ok(Json(json!({ "agents": agents })))
}

async fn rotate_keys(
    State(broker): State<Broker>,
    headers: HeaderMap,
) -> Result<Json<Value>, OAuthError> {
    broker.admin(&headers)?;
    let rotating = broker.clone();
    let kid = tokio::task::spawn_blocking(move || rotating.rotate_signing_key())
        .await
        .map_err(|e| OAuthError::from(BrokerError::Config(e.to_string())))??;
    Ok(Json(
        json!({"kid": kid, "jwks": serde_json::from_str::<Value>(&broker.inner.issuer.jwks().to_json()).unwrap_or(Value::Null)}),
    ))
}
