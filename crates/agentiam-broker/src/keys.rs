//! The broker's keys while it serves: signing-key rotation, the approver key, the key material replicas share through the store, and the JWKS.
//!
//! A rotation writes the new key to the data directory first (when there is one); with shared keys it is a compare-and-swap on the store's sealed material, which every replica re-reads (`Broker::sync_shared_keys`).

use std::sync::{Arc, Mutex, RwLock};

use agentiam_identity::{Algorithm, KeySet, SigningKey};
use agentiam_token::Issuer;

use crate::BrokerError;
use crate::data_dir::DataDir;
use crate::shared_keys::{KeyEncryptionKey, KeyMaterial, RetiredKey};
use crate::store::Store;

/// The keys that change while the broker serves, and where their changes go.
///
/// It changes the issuer's key set and the store's shared material it is handed; the broker
/// (`broker.rs`) owns it and calls it, and this module knows nothing of the broker.
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
    /// by [`KeyState::share`]); rotated keys are persisted in `directory`.
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

/// A rotation that happened: the new signing key's `kid` and the one it retired.
#[derive(Debug)]
pub(crate) struct Rotation {
    pub(crate) kid: String,
    pub(crate) retired: String,
}

/// What a key operation works on: the issuer whose keys change, the store replicas share, and
/// the time now (Unix seconds).
pub(crate) struct KeyContext<'a> {
    pub(crate) issuer: &'a Issuer,
    pub(crate) store: &'a dyn Store,
    pub(crate) now: i64,
}

impl KeyState {
    /// Rotates the token signing key: a new Ed25519 key signs from now on; the old one stays
    /// in the JWKS until the last token it signed has expired (the issuer's maximum lifetime).
    /// With a data directory, the new key and the retired one are persisted first.
    pub(crate) fn rotate(&self, cx: &KeyContext<'_>) -> Result<Rotation, BrokerError> {
        let _one_at_a_time = self
            .rotating
            .lock()
            .map_err(|_| BrokerError::Config("rotation lock poisoned".into()))?;
        if let Some(shared) = &self.shared {
            return self.rotate_shared(shared, cx);
        }
        let next = SigningKey::generate(Algorithm::EdDSA)
            .map_err(|e| BrokerError::Config(format!("new signing key: {e}")))?;
        let old = cx
            .issuer
            .active_public_key()
            .ok_or_else(|| BrokerError::Config("the issuer's key set is unreadable".into()))?;
        if let Some(dir) = &self.directory {
            dir.persist_rotation(
                &next,
                &old,
                cx.now.saturating_add(cx.issuer.max_ttl()),
                cx.now,
            )?;
        }
        let kid = next.kid().to_owned();
        cx.issuer
            .rotate(next)
            .map_err(|e| BrokerError::Config(e.to_string()))?;
        Ok(Rotation {
            kid,
            retired: old.kid().to_owned(),
        })
    }

    /// Shares the keys with the other replicas on the same store: adopts the sealed key
    /// material the store holds, or, when there is none yet, seals `local` as its first
    /// version. [`crate::BrokerBuilder::build`] calls it once, before the broker serves.
    pub(crate) fn share(&self, local: KeyMaterial, cx: &KeyContext<'_>) -> Result<(), BrokerError> {
        let Some(shared) = &self.shared else {
            return Err(BrokerError::Config("keys are not shared".into()));
        };
        if cx.store.key_material()?.is_none() {
            let sealed = shared.kek.seal(&local, 1)?;
            if cx.store.swap_key_material(None, 1, &sealed)? {
                return self.adopt(shared, 1, local, cx);
            }
        }
        self.sync(cx)?;
        Ok(())
    }

    /// Re-reads the replicas' shared keys and adopts them when another replica changed them.
    /// Returns whether anything changed.
    pub(crate) fn sync(&self, cx: &KeyContext<'_>) -> Result<bool, BrokerError> {
        let Some(shared) = &self.shared else {
            return Ok(false);
        };
        let Some((version, sealed)) = cx.store.key_material()? else {
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
        self.adopt(shared, version, material, cx)?;
        Ok(true)
    }

    fn adopt(
        &self,
        shared: &SharedKeys,
        version: i64,
        material: KeyMaterial,
        cx: &KeyContext<'_>,
    ) -> Result<(), BrokerError> {
        let bad = |e: agentiam_identity::IdentityError| {
            BrokerError::Config(format!("shared key material: {e}"))
        };
        let mut keys = KeySet::new(SigningKey::from_private_jwk(&material.signing).map_err(bad)?);
        for r in material.retired.iter().filter(|r| r.until >= cx.now) {
            keys = keys.with_retired(
                agentiam_identity::PublicKey::from_jwk(&r.jwk).map_err(bad)?,
                r.until,
            );
        }
        let approver = SigningKey::from_private_jwk(&material.approver).map_err(bad)?;
        cx.issuer
            .replace_keys(keys)
            .map_err(|e| BrokerError::Config(e.to_string()))?;
        *self
            .approver
            .write()
            .map_err(|_| BrokerError::Config("approver key lock poisoned".into()))? =
            Arc::new(approver);
        *shared
            .state
            .lock()
            .map_err(|_| BrokerError::Config("shared keys lock poisoned".into()))? =
            Some((version, material));
        Ok(())
    }

    /// A rotation every replica sees: the next version of the shared material, written only
    /// if no other replica wrote one first (then this one adopts theirs and tries again).
    fn rotate_shared(
        &self,
        shared: &SharedKeys,
        cx: &KeyContext<'_>,
    ) -> Result<Rotation, BrokerError> {
        for _ in 0..5 {
            self.sync(cx)?;
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
                    .filter(|r| r.until >= cx.now)
                    .cloned()
                    .collect();
                retired.push(RetiredKey {
                    jwk: old.public_key().to_jwk(),
                    until: cx.now.saturating_add(cx.issuer.max_ttl()),
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
            if cx
                .store
                .swap_key_material(Some(version), version + 1, &sealed)?
            {
                self.adopt(shared, version + 1, material, cx)?;
                return Ok(Rotation {
                    kid: next.kid().to_owned(),
                    retired: retired_kid,
                });
            }
        }
        Err(BrokerError::Config(
            "the shared keys kept changing under this rotation; try again".into(),
        ))
    }
}
