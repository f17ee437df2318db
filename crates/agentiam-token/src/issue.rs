//! Issuing task-scoped tokens: short-lived, just-in-time scoped, bound to the agent's identity.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use agentiam_identity::{AgentIdentity, KeySet, Sha256Digest};

use crate::claims::{AgentClaim, Audience, Confirmation, TaskClaim};
use crate::error::clip;
use crate::jws::{b64url, sign_compact};
use crate::{Claims, Clock, Entropy, ScopeSet, SystemClock, SystemEntropy, TokenError};

/// Default token lifetime: 15 minutes.
pub const DEFAULT_TTL_SECS: i64 = 15 * 60;
/// Default hard maximum lifetime: 1 hour.
pub const DEFAULT_MAX_TTL_SECS: i64 = 60 * 60;

/// What an agent is registered for: the most it may ever be granted.
#[derive(Debug, Clone)]
pub struct AgentRegistration {
    /// The widest scopes any token for this agent may carry.
    pub max_scopes: ScopeSet,
    /// Composite digests this agent may present; empty accepts any (the token still records the digest).
    pub allowed_digests: Vec<Sha256Digest>,
}

impl AgentRegistration {
    /// A registration allowing at most `max_scopes`.
    pub fn new(max_scopes: ScopeSet) -> Self {
        Self {
            max_scopes,
            allowed_digests: Vec::new(),
        }
    }

    /// Pins the composite identity: a changed model, prompt, tool or runtime is refused.
    pub fn pin_identity(mut self, digest: Sha256Digest) -> Self {
        self.allowed_digests.push(digest);
        self
    }
}

/// A request for a task token.
#[derive(Debug, Clone)]
pub struct TokenRequest<'a> {
    /// The (attested) agent asking.
    pub agent: &'a AgentIdentity,
    /// The service the token is for.
    pub audience: String,
    /// The scopes this task needs: just these, not the agent's maximum.
    pub scopes: ScopeSet,
    /// The task.
    pub task: TaskClaim,
    /// Lifetime in seconds; `None` for the issuer's default (15 minutes).
    pub ttl: Option<i64>,
    /// Bind the token to a DPoP key or client certificate.
    pub cnf: Option<Confirmation>,
    /// The person the agent acts for: the token's `sub` is then the person and `act` the agent.
    pub person: Option<crate::PersonClaim>,
    /// The scopes are the task's declared intent ([`crate::IntentClaim`]): what the user asked
    /// for, fixed before the agent reads anything untrusted.
    pub declare_intent: bool,
}

impl<'a> TokenRequest<'a> {
    /// A request with the default lifetime and no sender constraint.
    pub fn new(
        agent: &'a AgentIdentity,
        audience: impl Into<String>,
        scopes: ScopeSet,
        task_id: impl Into<String>,
        purpose: impl Into<String>,
    ) -> Self {
        Self {
            agent,
            audience: audience.into(),
            scopes,
            task: TaskClaim {
                id: task_id.into(),
                purpose: purpose.into(),
            },
            ttl: None,
            cnf: None,
            person: None,
            declare_intent: false,
        }
    }

    /// Declares the scopes as the task's intent (see [`TokenRequest::declare_intent`]).
    pub fn declaring_intent(mut self) -> Self {
        self.declare_intent = true;
        self
    }

    /// Sets the lifetime.
    pub fn with_ttl(mut self, secs: i64) -> Self {
        self.ttl = Some(secs);
        self
    }

    /// Binds the token to a DPoP key thumbprint (`cnf.jkt`).
    pub fn bind_dpop(mut self, jkt: impl Into<String>) -> Self {
        self.cnf = Some(Confirmation {
            jkt: Some(jkt.into()),
            x5t_s256: None,
        });
        self
    }
}

/// A freshly issued token.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The compact JWS.
    pub token: String,
    /// Its claims.
    pub claims: Claims,
}

/// Issues task tokens for registered agents.
///
/// ```
/// use std::sync::Arc;
/// use agentiam_identity::*;
/// use agentiam_token::*;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let agent = AgentIdentity::new(
///     parse_spiffe_id("spiffe://acme.example/agent/billing")?,
///     ModelRef::new("openai", "gpt-5", "2026-08-01"),
///     &AgentConfiguration::new("You reconcile invoices.", vec![]),
///     RuntimeDescriptor::new("process"),
/// )?;
/// let issuer = Issuer::new("https://broker.acme.example", KeySet::new(SigningKey::generate(Algorithm::EdDSA)?));
/// issuer.register(agent.spiffe_id(), AgentRegistration::new(ScopeSet::parse("ledger.*:read payments:approve{amount<=10000}")?));
///
/// let req = TokenRequest::new(&agent, "ledger", ScopeSet::parse("ledger.ar:read")?, "task-42", "reconcile March");
/// let issued = issuer.issue(&req)?;
/// assert_eq!(issued.claims.exp - issued.claims.iat.unwrap_or(0), 900);
///
/// let too_wide = TokenRequest::new(&agent, "ledger", ScopeSet::parse("payments:approve")?, "task-42", "pay");
/// assert_eq!(issuer.issue(&too_wide).unwrap_err().code(), "token.scope_not_permitted");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Issuer {
    issuer: String,
    keys: RwLock<KeySet>,
    registrations: RwLock<HashMap<String, AgentRegistration>>,
    default_ttl: i64,
    max_ttl: i64,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
}

impl Issuer {
    /// An issuer named `issuer` (the `iss` claim) signing with `keys`' active key.
    pub fn new(issuer: impl Into<String>, keys: KeySet) -> Self {
        Self {
            issuer: issuer.into(),
            keys: RwLock::new(keys),
            registrations: RwLock::new(HashMap::new()),
            default_ttl: DEFAULT_TTL_SECS,
            max_ttl: DEFAULT_MAX_TTL_SECS,
            clock: Arc::new(SystemClock),
            entropy: Arc::new(SystemEntropy),
        }
    }

    /// Uses another clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Uses another randomness source for `jti`.
    pub fn with_entropy(mut self, entropy: Arc<dyn Entropy>) -> Self {
        self.entropy = entropy;
        self
    }

    /// Sets the default and the hard maximum lifetime (seconds). The default is clamped to the maximum.
    pub fn with_lifetimes(mut self, default_ttl: i64, max_ttl: i64) -> Self {
        self.max_ttl = max_ttl.max(1);
        self.default_ttl = default_ttl.clamp(1, self.max_ttl);
        self
    }

    /// The `iss` value.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The hard maximum lifetime.
    pub fn max_ttl(&self) -> i64 {
        self.max_ttl
    }

    /// Registers (or replaces) what an agent may be granted.
    pub fn register(&self, agent: &agentiam_identity::SpiffeId, registration: AgentRegistration) {
        if let Ok(mut map) = self.registrations.write() {
            map.insert(agent.to_string(), registration);
        }
    }

    /// Forgets an agent's registration: it is issued nothing more.
    pub fn unregister(&self, agent: &str) {
        if let Ok(mut map) = self.registrations.write() {
            map.remove(agent);
        }
    }

    /// The public keys that verify this issuer's tokens now.
    pub fn jwks(&self) -> agentiam_identity::Jwks {
        let now = self.clock.now();
        self.keys.read().map(|k| k.jwks(now)).unwrap_or_default()
    }

    /// Replaces the whole key set (e.g. with the set another broker replica rotated to).
    pub fn replace_keys(&self, keys: KeySet) -> Result<(), TokenError> {
        let mut current = self
            .keys
            .write()
            .map_err(|_| TokenError::Signing("key set lock poisoned".into()))?;
        *current = keys;
        Ok(())
    }

    /// The public half of the key signing new tokens now.
    pub fn active_public_key(&self) -> Option<agentiam_identity::PublicKey> {
        self.keys
            .read()
            .ok()
            .map(|k| k.active().public_key().clone())
    }

    /// Rotates the signing key; the old key keeps verifying for `max_ttl`.
    pub fn rotate(&self, next: agentiam_identity::SigningKey) -> Result<(), TokenError> {
        let now = self.clock.now();
        let mut keys = self
            .keys
            .write()
            .map_err(|_| TokenError::Signing("key set lock poisoned".into()))?;
        keys.prune(now);
        keys.rotate(next, now, self.max_ttl);
        Ok(())
    }

    /// Issues a token for `request`, refusing unregistered agents, identities that do not match
    /// the registration, scopes beyond the registered maximum and lifetimes beyond the maximum.
    pub fn issue(&self, request: &TokenRequest<'_>) -> Result<IssuedToken, TokenError> {
        let sub = request.agent.spiffe_id().to_string();
        let registration = self
            .registrations
            .read()
            .map_err(|_| TokenError::Signing("registry lock poisoned".into()))?
            .get(&sub)
            .cloned()
            .ok_or_else(|| TokenError::UnregisteredAgent(clip(&sub)))?;
        let digest = request.agent.composite_digest();
        if !registration.allowed_digests.is_empty()
            && !registration.allowed_digests.contains(&digest)
        {
            return Err(TokenError::IdentityMismatch(format!(
                "composite identity {digest} is not registered for {sub}"
            )));
        }
        if let Some(outside) = request.scopes.first_outside(&registration.max_scopes) {
            return Err(TokenError::ScopeNotPermitted(clip(&outside.to_string())));
        }
        if request.scopes.is_empty() {
            return Err(TokenError::InvalidRequest(
                "a token needs at least one scope".into(),
            ));
        }
        if request.audience.is_empty() {
            return Err(TokenError::InvalidRequest("audience is empty".into()));
        }
        if request.task.id.is_empty() || request.task.id.len() > 256 {
            return Err(TokenError::InvalidRequest(
                "task id must be 1 to 256 bytes".into(),
            ));
        }
        let ttl = request.ttl.unwrap_or(self.default_ttl);
        if ttl <= 0 {
            return Err(TokenError::InvalidRequest(
                "lifetime must be positive".into(),
            ));
        }
        if ttl > self.max_ttl {
            return Err(TokenError::LifetimeTooLong {
                requested: ttl,
                max: self.max_ttl,
            });
        }
        let now = self.clock.now();
        let mut jti = [0u8; 16];
        self.entropy.fill(&mut jti)?;
        // For a person, `sub` is the person and `act` the agent (RFC 8693 section 4.1); the
        // registration checked above is the agent's either way.
        let (sub, act) = match &request.person {
            Some(person) => (person.sub.clone(), Some(serde_json::json!({"sub": sub}))),
            None => (sub, None),
        };
        let jti = b64url(&jti);
        let claims = Claims {
            intent: request
                .declare_intent
                .then(|| crate::IntentClaim { id: jti.clone() }),
            iss: self.issuer.clone(),
            sub,
            aud: Audience::One(request.audience.clone()),
            exp: now.saturating_add(ttl),
            iat: Some(now),
            nbf: Some(now),
            jti: Some(jti),
            client_id: Some(request.agent.spiffe_id().to_string()),
            scope: request.scopes.clone(),
            task: Some(request.task.clone()),
            agent: Some(AgentClaim::of(request.agent)),
            cnf: request.cnf.clone().filter(|c| !c.is_empty()),
            act,
            dlg: Vec::new(),
            budget: None,
            person: request.person.clone(),
        };
        let token = self.sign(&claims)?;
        Ok(IssuedToken { token, claims })
    }

    /// Signs claims as an `at+jwt` with the active key, without registry checks.
    /// Meant for token exchange and tests; [`Issuer::issue`] is the paved path.
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        let payload = serde_json::to_vec(claims).map_err(|e| TokenError::Signing(e.to_string()))?;
        let mut header = serde_json::Map::new();
        header.insert("typ".into(), "at+jwt".into());
        let keys = self
            .keys
            .read()
            .map_err(|_| TokenError::Signing("key set lock poisoned".into()))?;
        sign_compact(keys.active(), &header, &payload)
    }
}
