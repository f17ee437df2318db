//! The broker's keys while it serves: signing-key rotation, the approver key, the key material replicas share through the store, and the JWKS.
//!
//! A rotation writes the new key to the data directory first (when there is one); with shared keys it is a compare-and-swap on the store's sealed material, which every replica re-reads (`Broker::sync_shared_keys`).

use std::sync::{Arc, Mutex, RwLock};

use agentiam_identity::{Algorithm, Jwks, KeySet, SigningKey};
use agentiam_telemetry::{AgentRef, AuditEvent, Decision};

use crate::data_dir::DataDir;
use crate::shared_keys::{KeyEncryptionKey, KeyMaterial, RetiredKey};
use crate::{Broker, BrokerError};

/// The keys that change while the broker serves, and where their changes go.
pub(crate) struct KeyState {
    approver: RwLock<Arc<SigningKey>>,
    /// Keys shared with other replicas through the store, when enabled.
    shared: Option<SharedKeys>,
    /// Where rotated signing keys are persisted, when the broker runs from a data directory.
    directory: Option<DataDir>,
    /// Serialises rotations.
    rotating: Mutex<()>,
}

/// The replicas' shared keys: the key-encryption key and the version adopted.
struct SharedKeys {
    kek: KeyEncryptionKey,
    state: Mutex<Option<(i64, KeyMaterial)>>,
}

impl KeyState {
    /// `approver` signs approvals; with `kek` the keys are shared through the store (adopted
    /// by [`Broker::share_keys`]); rotated keys are persisted in `directory`.
    pub(crate) fn new(
        approver: SigningKey,
        kek: Option<KeyEncryptionKey>,
        directory: Option<DataDir>,
    ) -> Self {
        Self {
            approver: RwLock::new(Arc::new(approver)),
            shared: kek.map(|kek| SharedKeys {
                kek,
                state: Mutex::new(None),
            }),
            directory,
            rotating: Mutex::new(()),
        }
    }

    /// The key approvals are signed with now.
    pub(crate) fn approver(&self) -> Arc<SigningKey> {
        self.approver
            .read()
            .map_or_else(|p| p.into_inner().clone(), |k| k.clone())
    }

    /// Whether the keys are shared with other replicas.
    pub(crate) fn is_shared(&self) -> bool {
        self.shared.is_some()
    }
}

impl Broker {
    /// Rotates the token signing key: a new Ed25519 key signs from now on; the old one stays
    /// in the JWKS until the last token it signed has expired (the issuer's maximum lifetime).
    /// With a data directory, the new key and the retired one are persisted first. Returns the
    /// new key's `kid`.
    pub fn rotate_signing_key(&self) -> Result<String, BrokerError> {
        let _one_at_a_time = self
            .keys()
            .rotating
            .lock()
            .map_err(|_| BrokerError::Config("rotation lock poisoned".into()))?;
        if self.keys().shared.is_some() {
            return self.rotate_shared_signing_key();
        }
        let next = SigningKey::generate(Algorithm::EdDSA)
            .map_err(|e| BrokerError::Config(format!("new signing key: {e}")))?;
        let now = self.now();
        let old = self
            .issuer()
            .active_public_key()
            .ok_or_else(|| BrokerError::Config("the issuer's key set is unreadable".into()))?;
        if let Some(dir) = &self.keys().directory {
            dir.persist_rotation(
                &next,
                &old,
                now.saturating_add(self.issuer().max_ttl()),
                now,
            )?;
        }
        let kid = next.kid().to_owned();
        self.issuer()
            .rotate(next)
            .map_err(|e| BrokerError::Config(e.to_string()))?;
        self.audit_rotation(&kid, old.kid())?;
        Ok(kid)
    }

    /// Shares this broker's keys with the other replicas on the same store: adopts the sealed
    /// key material the store holds, or, when there is none yet, seals `local` as its first
    /// version. [`crate::BrokerBuilder::build`] calls it once, before the broker serves.
    pub(crate) fn share_keys(&self, local: KeyMaterial) -> Result<(), BrokerError> {
        let Some(shared) = &self.keys().shared else {
            return Err(BrokerError::Config("keys are not shared".into()));
        };
        if self.store().key_material()?.is_none() {
            let sealed = shared.kek.seal(&local, 1)?;
            if self.store().swap_key_material(None, 1, &sealed)? {
                return self.adopt_keys(1, local);
            }
        }
        self.sync_shared_keys()?;
        Ok(())
    }

    /// Re-reads the replicas' shared keys and adopts them when another replica changed them.
    /// Returns whether anything changed. `serve` calls it every few seconds.
    pub fn sync_shared_keys(&self) -> Result<bool, BrokerError> {
        let Some(shared) = &self.keys().shared else {
            return Ok(false);
        };
        let Some((version, sealed)) = self.store().key_material()? else {
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
        self.issuer()
            .replace_keys(keys)
            .map_err(|e| BrokerError::Config(e.to_string()))?;
        *self
            .keys()
            .approver
            .write()
            .map_err(|_| BrokerError::Config("approver key lock poisoned".into()))? =
            Arc::new(approver);
        if let Some(shared) = &self.keys().shared {
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
        let Some(shared) = &self.keys().shared else {
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
                    until: now.saturating_add(self.issuer().max_ttl()),
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
                .store()
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
        if let Some(log) = self.audit_log() {
            log.append(event)
                .map_err(|e| BrokerError::Audit(e.to_string()))?;
        }
        Ok(())
    }

    /// The public keys tokens verify with now (what `/.well-known/jwks.json` serves).
    pub fn jwks(&self) -> Jwks {
        self.issuer().jwks()
    }
}
