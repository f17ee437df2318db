//! Verification: `UnverifiedToken::parse` -> `verify` -> [`Token`].

use std::sync::Arc;

use agentiam_identity::{AgentIdentity, Algorithm, Jwks};

use crate::claims::WireClaims;
use crate::error::clip;
use crate::jws::{CompactJws, check_signature};
use crate::{Claims, Clock, RevocationSet, ScopeSet, SystemClock, TokenError};

/// Default clock-skew leeway (seconds).
pub const DEFAULT_LEEWAY_SECS: i64 = 5;
/// Largest leeway a verifier may be configured with (seconds).
pub const MAX_LEEWAY_SECS: i64 = 300;

/// A token that has been split and decoded but not verified.
///
/// Nothing in it can be trusted: read claims only through [`UnverifiedToken::verify`].
#[derive(Debug, Clone)]
pub struct UnverifiedToken {
    jws: CompactJws,
}

impl UnverifiedToken {
    /// Splits and decodes a compact JWS. Refuses tokens over 8 KiB before decoding anything,
    /// the JWS JSON serialization, JWE, unsigned tokens and headers with `crit`.
    pub fn parse(token: &str) -> Result<Self, TokenError> {
        Ok(Self {
            jws: CompactJws::parse(token)?,
        })
    }

    /// The header's `kid`, if any (untrusted).
    pub fn kid(&self) -> Option<&str> {
        self.jws.header.kid.as_deref()
    }

    /// The header's `alg` (untrusted).
    pub fn alg(&self) -> &str {
        &self.jws.header.alg
    }

    /// Verifies signature and claims; the only way to a [`Token`]. A sender-constrained token
    /// (`cnf`) fails with `token.pop_required` here, as with [`Verifier::verify`]: its proof is
    /// checked by [`Verifier::verify_with_dpop`] or [`Verifier::verify_with_client_cert`].
    pub fn verify(self, verifier: &Verifier) -> Result<Token, TokenError> {
        Verifier::refuse_unproven(verifier.verify_parsed(self)?)
    }
}

/// A verified token. It can only be obtained from [`Verifier`].
#[derive(Debug, Clone)]
pub struct Token {
    claims: Arc<Claims>,
    kid: String,
    alg: Algorithm,
    raw: Arc<str>,
}

impl Token {
    /// The verified claims.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }
    /// The granted scopes.
    pub fn scopes(&self) -> &ScopeSet {
        &self.claims.scope
    }
    /// The `kid` of the key that verified it.
    pub fn kid(&self) -> &str {
        &self.kid
    }
    /// The algorithm that verified it (the key's, not the header's).
    pub fn alg(&self) -> Algorithm {
        self.alg
    }
    /// The compact token string, for forwarding or hashing (DPoP `ath`).
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Checks that the token was issued to `presenting`: same SPIFFE ID as `sub` and the
    /// same composite digest in the `agent` claim. A token without an `agent` claim is not
    /// bound to any identity and fails this check (`token.identity_mismatch`).
    pub fn check_bound_to(&self, presenting: &AgentIdentity) -> Result<(), TokenError> {
        self.check_bound_to_digest(
            &presenting.spiffe_id().to_string(),
            presenting.composite_digest(),
        )
    }

    /// [`Token::check_bound_to`] for a presenter known by SPIFFE ID and composite digest.
    pub fn check_bound_to_digest(
        &self,
        spiffe_id: &str,
        composite_digest: agentiam_identity::Sha256Digest,
    ) -> Result<(), TokenError> {
        // A delegated token is presented by its outermost actor, not by the principal in `sub`.
        let holder = self.claims.presenter();
        if holder != spiffe_id {
            return Err(TokenError::IdentityMismatch(format!(
                "issued to {}, presented by {spiffe_id}",
                clip(holder)
            )));
        }
        match &self.claims.agent {
            Some(agent) if agent.digest == composite_digest => Ok(()),
            Some(agent) => Err(TokenError::IdentityMismatch(format!(
                "issued to composite identity {}, presenter is {composite_digest}",
                agent.digest
            ))),
            None => Err(TokenError::IdentityMismatch(
                "token carries no agent claim".into(),
            )),
        }
    }
}

/// Claims a verifier can be told to require beyond `iss`, `sub`, `aud` and `exp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RequiredClaim {
    /// `iat` (required by default).
    Iat,
    /// `jti` (required by [`Verifier::require_agent_claims`]).
    Jti,
    /// `nbf`.
    Nbf,
    /// `client_id`.
    ClientId,
    /// `task`.
    Task,
    /// `agent`.
    Agent,
    /// `cnf`.
    Cnf,
}

/// The only trusted key of the header's algorithm that satisfies `pred`, if exactly one does.
/// The algorithm is still pinned by the key afterwards; the header only narrows the candidates.
fn unique_key<'k>(
    keys: &'k Jwks,
    alg: &str,
    pred: impl Fn(&agentiam_identity::PublicKey) -> bool,
) -> Option<&'k agentiam_identity::PublicKey> {
    let mut candidates = keys
        .keys()
        .iter()
        .filter(|k| k.alg().matches_header(alg) && pred(k));
    match (candidates.next(), candidates.next()) {
        (Some(only), None) => Some(only),
        _ => None,
    }
}

type FetchJwks = Arc<dyn Fn() -> Result<Jwks, String> + Send + Sync>;

/// The keys a verifier trusts, replaceable while it runs, and how to fetch them again.
struct TrustedKeys {
    current: std::sync::RwLock<Arc<Jwks>>,
    follow: std::sync::Mutex<Option<Follow>>,
}

struct Follow {
    fetch: FetchJwks,
    min_interval: i64,
    last_fetch: Option<i64>,
}

impl std::fmt::Debug for TrustedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustedKeys")
            .field("keys", &self.current().keys().len())
            .finish_non_exhaustive()
    }
}

impl TrustedKeys {
    fn new(keys: Jwks) -> Self {
        Self {
            current: std::sync::RwLock::new(Arc::new(keys)),
            follow: std::sync::Mutex::new(None),
        }
    }

    fn current(&self) -> Arc<Jwks> {
        // A poisoned lock still holds a complete key set (replacement is one pointer store).
        match self.current.read() {
            Ok(k) => Arc::clone(&k),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn replace(&self, keys: Jwks) {
        let keys = Arc::new(keys);
        match self.current.write() {
            Ok(mut k) => *k = keys,
            Err(poisoned) => *poisoned.into_inner() = keys,
        }
    }

    fn follow(&self, fetch: FetchJwks, min_interval: i64) {
        if let Ok(mut f) = self.follow.lock() {
            *f = Some(Follow {
                fetch,
                min_interval: min_interval.max(1),
                last_fetch: None,
            });
        }
    }

    /// Fetches the keys again unless that happened less than the minimum interval ago;
    /// whether the keys were replaced.
    fn refresh(&self, now: i64) -> bool {
        let fetch = {
            let Ok(mut guard) = self.follow.lock() else {
                return false;
            };
            let Some(f) = guard.as_mut() else {
                return false;
            };
            if f.last_fetch
                .is_some_and(|t| now < t.saturating_add(f.min_interval))
            {
                return false;
            }
            f.last_fetch = Some(now);
            Arc::clone(&f.fetch)
        };
        // Fetched without holding a lock, so verification of known keys goes on meanwhile.
        match fetch() {
            Ok(keys) => {
                self.replace(keys);
                true
            }
            Err(_) => false,
        }
    }
}

/// Verifies access tokens for one issuer and one audience against a trusted key set.
///
/// Fails closed: every problem is an error with a stable code.
///
/// ```
/// use agentiam_identity::{Algorithm, Jwks, SigningKey};
/// use agentiam_token::*;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let key = SigningKey::generate(Algorithm::EdDSA)?;
/// let clock = std::sync::Arc::new(FixedClock::new(1_800_000_000));
/// let claims = serde_json::json!({
///     "iss": "https://broker.example", "sub": "spiffe://acme.example/agent/a", "aud": "ledger",
///     "iat": 1_800_000_000, "exp": 1_800_000_300, "jti": "t1", "scope": "ledger.ar:read"
/// });
/// let token = sign_compact(&key, &Default::default(), claims.to_string().as_bytes())?;
/// let verifier = Verifier::new(Jwks::from_keys([key.public_key().clone()]), "https://broker.example", "ledger")
///     .with_clock(clock.clone());
/// let verified = verifier.verify(&token)?;
/// assert!(verified.scopes().covers(&ScopeRequest::new("ledger.ar", "read")));
/// clock.advance(306); // 300 s lifetime + 5 s default leeway
/// assert_eq!(verifier.verify(&token).unwrap_err().code(), "token.expired");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Verifier {
    keys: Arc<TrustedKeys>,
    issuer: String,
    audience: String,
    leeway: i64,
    required: Vec<RequiredClaim>,
    max_lifetime: Option<i64>,
    clock: Arc<dyn Clock>,
    revocation: Option<Arc<dyn RevocationSet>>,
    max_delegation_depth: usize,
    any_audience: bool,
}

impl Verifier {
    /// A verifier trusting `keys` for tokens from `issuer` to `audience`, with a 5 s leeway,
    /// `iat` required (besides `iss`, `sub`, `aud`, `exp`), and the system clock.
    ///
    /// `jti` is optional by default so tokens from any JWT library verify; a token without one
    /// can still be revoked by agent or task. [`Verifier::require_agent_claims`] requires it.
    pub fn new(keys: Jwks, issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            keys: Arc::new(TrustedKeys::new(keys)),
            issuer: issuer.into(),
            audience: audience.into(),
            leeway: DEFAULT_LEEWAY_SECS,
            required: vec![RequiredClaim::Iat],
            max_lifetime: None,
            clock: Arc::new(SystemClock),
            revocation: None,
            max_delegation_depth: crate::DEFAULT_MAX_DELEGATION_DEPTH,
            any_audience: false,
        }
    }

    /// Accepts a token for any audience: only for the issuer's own introspection and
    /// revocation endpoints, which answer for every service. A service verifying the tokens
    /// presented to it must never use this.
    pub fn any_audience(mut self) -> Self {
        self.any_audience = true;
        self
    }

    /// Uses another clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sets the clock-skew leeway, clamped to 0..=300 seconds.
    pub fn with_leeway(mut self, secs: i64) -> Self {
        self.leeway = secs.clamp(0, MAX_LEEWAY_SECS);
        self
    }

    /// Requires a claim in addition to the defaults.
    pub fn require(mut self, claim: RequiredClaim) -> Self {
        if !self.required.contains(&claim) {
            self.required.push(claim);
        }
        self
    }

    /// Sets exactly which optional claims are required (`iss`, `sub`, `aud`, `exp` always are).
    pub fn with_required_claims(mut self, claims: impl IntoIterator<Item = RequiredClaim>) -> Self {
        self.required = claims.into_iter().collect();
        self
    }

    /// Requires agentiam's own claims: `task`, `agent`, `jti`, `iat`.
    pub fn require_agent_claims(self) -> Self {
        self.require(RequiredClaim::Task)
            .require(RequiredClaim::Agent)
    }

    /// Refuses tokens whose `exp - iat` exceeds `secs` (requires `iat`).
    pub fn with_max_lifetime(mut self, secs: i64) -> Self {
        self.max_lifetime = Some(secs);
        self
    }

    /// Consults a revocation set on every verification.
    pub fn with_revocation(mut self, revocation: Arc<dyn RevocationSet>) -> Self {
        self.revocation = Some(revocation);
        self
    }

    /// Refuses delegated tokens with more than `depth` ancestors (default 4).
    pub fn with_max_delegation_depth(mut self, depth: usize) -> Self {
        self.max_delegation_depth = depth;
        self
    }

    /// The trusted keys now.
    pub fn keys(&self) -> Arc<Jwks> {
        self.keys.current()
    }

    /// Replaces the trusted keys (this verifier and every clone of it), e.g. after the issuer
    /// rotated its signing key.
    pub fn replace_keys(&self, keys: Jwks) {
        self.keys.replace(keys);
    }

    /// Follows the issuer's key rotation: when a token names a key this verifier does not
    /// know, `fetch` is asked for the issuer's current JWKS (at most once every
    /// `min_interval_secs`, so a flood of tokens with made-up `kid`s cannot turn into a flood of
    /// fetches), the keys are replaced and the token is verified again.
    /// A fetch that fails keeps the keys it had. Applies to every clone of this verifier.
    ///
    /// ```
    /// # use agentiam_identity::{Algorithm, Jwks, SigningKey};
    /// # use agentiam_token::*;
    /// let old = SigningKey::generate(Algorithm::EdDSA).unwrap();
    /// let new = SigningKey::generate(Algorithm::EdDSA).unwrap();
    /// let verifier = Verifier::new(Jwks::from_keys([old.public_key().clone()]), "iss", "aud");
    /// let published = Jwks::from_keys([new.public_key().clone(), old.public_key().clone()]);
    /// verifier.follow_jwks(move || Ok(published.clone()), 30);
    /// # let now = SystemClock.now();
    /// let claims = serde_json::json!({"iss": "iss", "sub": "a", "aud": "aud", "iat": now, "exp": now + 60});
    /// let token = sign_compact(&new, &Default::default(), claims.to_string().as_bytes()).unwrap();
    /// assert!(verifier.verify(&token).is_ok(), "the new key was fetched on first sight");
    /// ```
    pub fn follow_jwks(
        &self,
        fetch: impl Fn() -> Result<Jwks, String> + Send + Sync + 'static,
        min_interval_secs: i64,
    ) {
        self.keys.follow(Arc::new(fetch), min_interval_secs);
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Parses and verifies a compact token.
    ///
    /// A sender-constrained token (one with a `cnf` claim) fails with `token.pop_required`
    /// here: use [`Verifier::verify_with_dpop`] or [`Verifier::verify_with_client_cert`].
    pub fn verify(&self, token: &str) -> Result<Token, TokenError> {
        UnverifiedToken::parse(token)?.verify(self)
    }

    /// A sender-constrained token is refused unless its proof was checked.
    fn refuse_unproven(token: Token) -> Result<Token, TokenError> {
        match &token.claims.cnf {
            Some(cnf) if cnf.jkt.is_some() => Err(TokenError::PopRequired("DPoP proof")),
            Some(cnf) if cnf.x5t_s256.is_some() => {
                Err(TokenError::PopRequired("client certificate"))
            }
            _ => Ok(token),
        }
    }

    /// Verifies a token's signature and claims but not its `cnf` binding.
    ///
    /// Only for callers that prove possession themselves, such as an offline delegation chain
    /// whose final DPoP proof covers the whole chain. Anything else should use
    /// [`Verifier::verify`] or [`Verifier::verify_with_dpop`].
    pub fn verify_without_pop(&self, token: &str) -> Result<Token, TokenError> {
        self.verify_parsed(UnverifiedToken::parse(token)?)
    }

    /// Verifies a token and, if it is DPoP-bound (`cnf.jkt`), the DPoP proof presented with it
    /// for this request. A proof is refused for an unbound token only if it is itself invalid.
    pub fn verify_with_dpop(
        &self,
        token: &str,
        proof: Option<&str>,
        request: &crate::DpopRequest<'_>,
        dpop: &crate::DpopVerifier,
    ) -> Result<Token, TokenError> {
        let token = self.verify_parsed(UnverifiedToken::parse(token)?)?;
        let bound = token.claims.cnf.as_ref().and_then(|c| c.jkt.as_deref());
        if token
            .claims
            .cnf
            .as_ref()
            .is_some_and(|c| c.x5t_s256.is_some())
        {
            return Err(TokenError::PopRequired("client certificate"));
        }
        match (bound, proof) {
            (None, None) => Ok(token),
            (Some(_), None) => Err(TokenError::PopRequired("DPoP proof")),
            (bound, Some(proof)) => {
                let checked = dpop.verify(proof, request, Some(token.as_str()))?;
                match bound {
                    Some(jkt) if !crate::dpop::ct_eq(jkt, checked.jkt()) => {
                        Err(TokenError::PopInvalid(
                            "proof key is not the key the token is bound to".into(),
                        ))
                    }
                    _ => Ok(token),
                }
            }
        }
    }

    /// Verifies a token presented over mTLS with the client's leaf certificate (DER).
    /// A token bound with `cnf["x5t#S256"]` must match the certificate's SHA-256 thumbprint (RFC 8705).
    pub fn verify_with_client_cert(
        &self,
        token: &str,
        cert_der: &[u8],
    ) -> Result<Token, TokenError> {
        let token = self.verify_parsed(UnverifiedToken::parse(token)?)?;
        let cnf = token.claims.cnf.clone().unwrap_or_default();
        if cnf.jkt.is_some() {
            return Err(TokenError::PopRequired("DPoP proof"));
        }
        if let Some(expected) = &cnf.x5t_s256 {
            let actual = crate::jws::b64url(
                aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, cert_der).as_ref(),
            );
            if !crate::dpop::ct_eq(expected, &actual) {
                return Err(TokenError::PopInvalid(
                    "client certificate is not the one the token is bound to".into(),
                ));
            }
        }
        Ok(token)
    }

    /// Verifies a token and checks it is bound to the presenting agent's current identity.
    pub fn verify_for_agent(
        &self,
        token: &str,
        presenting: &AgentIdentity,
    ) -> Result<Token, TokenError> {
        let token = self.verify(token)?;
        token.check_bound_to(presenting)?;
        Ok(token)
    }

    fn verify_parsed(&self, token: UnverifiedToken) -> Result<Token, TokenError> {
        let keys = self.keys.current();
        match self.verify_with_keys(&token, &keys) {
            Err(TokenError::UnknownKey(kid)) => {
                if self.keys.refresh(self.clock.now()) {
                    self.verify_with_keys(&token, &self.keys.current())
                } else {
                    Err(TokenError::UnknownKey(kid))
                }
            }
            other => other,
        }
    }

    fn verify_with_keys(&self, token: &UnverifiedToken, keys: &Jwks) -> Result<Token, TokenError> {
        let jws = &token.jws;
        let header = &jws.header;
        // Refuse algorithms we never accept before looking anything up.
        let Some(_) = Algorithm::from_jws_name(&header.alg) else {
            return Err(TokenError::AlgNotAllowed(clip(&header.alg)));
        };
        if let Some(typ) = &header.typ {
            let t = typ.to_ascii_lowercase();
            if !matches!(
                t.as_str(),
                "jwt" | "at+jwt" | "application/at+jwt" | "application/jwt"
            ) {
                return Err(TokenError::WrongType(clip(typ)));
            }
        }
        let key = match &header.kid {
            Some(kid) => match keys.find(kid) {
                Some(key) => key,
                // A JWK published without a kid cannot be found by one; it is tried only when it
                // is the single such key for this algorithm.
                None => unique_key(keys, &header.alg, |k| !k.has_explicit_kid())
                    .ok_or_else(|| TokenError::UnknownKey(clip(kid)))?,
            },
            // Without a kid, only an unambiguous key for the header's algorithm is used.
            None => unique_key(keys, &header.alg, |_| true)
                .ok_or_else(|| TokenError::UnknownKey("<none>".into()))?,
        };
        check_signature(jws, key)?;
        let claims = self.check_claims(&jws.payload)?;
        crate::check_chain(&claims, self.max_delegation_depth)?;
        let token = Token {
            claims: Arc::new(claims),
            kid: key.kid().to_owned(),
            alg: key.alg(),
            raw: jws.raw.clone(),
        };
        self.check_revocation(&token.claims)?;
        Ok(token)
    }

    pub(crate) fn check_revocation(&self, claims: &Claims) -> Result<(), TokenError> {
        if let Some(revocation) = &self.revocation
            && let Some(reason) = revocation.check(claims)?
        {
            return Err(if reason.starts_with("ancestor") {
                TokenError::RevokedAncestor(reason)
            } else {
                TokenError::Revoked(reason)
            });
        }
        Ok(())
    }

    /// Re-checks a token this verifier accepted earlier, without checking its signature again:
    /// the key that verified it must still be in the trusted key set (a key removed from the
    /// JWKS takes its tokens with it), and the token must not have expired or been revoked
    /// since. Caches of verified tokens and chains call this on every hit.
    pub fn recheck(&self, token: &Token) -> Result<(), TokenError> {
        let keys = self.keys.current();
        if !keys
            .find(token.kid())
            .is_some_and(|key| key.alg() == token.alg())
        {
            return Err(TokenError::UnknownKey(clip(token.kid())));
        }
        self.check_time(token.claims())?;
        self.check_revocation(token.claims())
    }

    /// Checks expiry against the clock (used again on cache hits).
    pub(crate) fn check_time(&self, claims: &Claims) -> Result<(), TokenError> {
        let now = self.clock.now();
        if now >= claims.exp.saturating_add(self.leeway) {
            return Err(TokenError::Expired {
                exp: claims.exp,
                now,
            });
        }
        Ok(())
    }

    fn check_claims(&self, payload: &[u8]) -> Result<Claims, TokenError> {
        let first = payload
            .iter()
            .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
        if first != Some(&b'{') {
            return Err(TokenError::Malformed("claims are not a JSON object".into()));
        }
        let wire: WireClaims = serde_json::from_slice(payload).map_err(|e| {
            if e.is_data() {
                TokenError::InvalidClaim(e.to_string())
            } else {
                TokenError::Malformed(format!("claims are not a JSON object: {e}"))
            }
        })?;
        let iss = wire.iss.ok_or(TokenError::MissingClaim("iss"))?;
        if iss != self.issuer {
            return Err(TokenError::WrongIssuer(clip(&iss)));
        }
        let aud = wire.aud.ok_or(TokenError::MissingClaim("aud"))?;
        if !self.any_audience && !aud.contains(&self.audience) {
            return Err(TokenError::WrongAudience(self.audience.clone()));
        }
        let sub = wire.sub.ok_or(TokenError::MissingClaim("sub"))?;
        let exp = wire.exp.ok_or(TokenError::MissingClaim("exp"))?;
        for claim in &self.required {
            let present = match claim {
                RequiredClaim::Iat => wire.iat.is_some(),
                RequiredClaim::Jti => wire.jti.is_some(),
                RequiredClaim::Nbf => wire.nbf.is_some(),
                RequiredClaim::ClientId => wire.client_id.is_some(),
                RequiredClaim::Task => wire.task.is_some(),
                RequiredClaim::Agent => wire.agent.is_some(),
                RequiredClaim::Cnf => wire.cnf.is_some(),
            };
            if !present {
                return Err(TokenError::MissingClaim(match claim {
                    RequiredClaim::Iat => "iat",
                    RequiredClaim::Jti => "jti",
                    RequiredClaim::Nbf => "nbf",
                    RequiredClaim::ClientId => "client_id",
                    RequiredClaim::Task => "task",
                    RequiredClaim::Agent => "agent",
                    RequiredClaim::Cnf => "cnf",
                }));
            }
        }
        let now = self.clock.now();
        if now >= exp.saturating_add(self.leeway) {
            return Err(TokenError::Expired { exp, now });
        }
        if let Some(nbf) = wire.nbf
            && nbf > now.saturating_add(self.leeway)
        {
            return Err(TokenError::NotYetValid(nbf));
        }
        if let Some(iat) = wire.iat {
            if iat > now.saturating_add(self.leeway) {
                return Err(TokenError::NotYetValid(iat));
            }
            if let Some(max) = self.max_lifetime
                && exp.saturating_sub(iat) > max
            {
                return Err(TokenError::InvalidClaim(format!("lifetime exceeds {max}s")));
            }
        } else if self.max_lifetime.is_some() {
            return Err(TokenError::MissingClaim("iat"));
        }
        if let Some(jti) = &wire.jti
            && (jti.is_empty() || jti.len() > 256)
        {
            return Err(TokenError::InvalidClaim(
                "jti must be 1 to 256 bytes".into(),
            ));
        }
        if let Some(person) = &wire.person
            && (person.sub != sub || wire.act.is_none())
        {
            return Err(TokenError::InvalidClaim(
                "a token for a person names them as sub and its agent as act".into(),
            ));
        }
        Ok(Claims {
            iss,
            sub,
            aud,
            exp,
            iat: wire.iat,
            nbf: wire.nbf,
            jti: wire.jti,
            client_id: wire.client_id,
            scope: wire.scope.unwrap_or_default(),
            task: wire.task,
            agent: wire.agent,
            cnf: wire.cnf,
            act: wire.act,
            dlg: wire.dlg.unwrap_or_default(),
            budget: wire.budget,
            person: wire.person,
            intent: wire.intent,
        })
    }
}
