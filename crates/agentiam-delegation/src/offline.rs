//! Offline attenuation: a holder of a DPoP-bound token delegates to a sub-agent's key without
//! asking the broker, by signing a link with its own key.
//!
//! A chain is the broker-signed root token (bound to key K0 with `cnf.jkt`) followed by links:
//! link i is a compact JWS (`typ: agentiam-dlg+jwt`) signed by K(i-1), carrying K(i-1)'s public
//! key in its header, and naming the hash of what it extends (`prv`), the next key's thumbprint
//! (`jkt`), narrowed `scope`, `exp` and optional `budget` and `sub`. The verifier walks the chain
//! from the root, checks each link's signature with the previous holder's key, checks narrowing
//! at every hop, caps the depth, and requires the presenter to prove possession of the last key
//! with a DPoP proof over the last link.
//!
//! A chain is usually presented again and again (every call of the same sub-agent), so the
//! verifier keeps the chains it verified, found by the last signature and compared byte for byte
//! with what is presented. A hit skips the signature walk but not what can change: the root's key
//! must still be trusted, neither the root nor any link may have expired or been revoked since,
//! and the DPoP proof is checked in full on every call.

use std::sync::Arc;

use agentiam_identity::{PublicKey, SigningKey};
use agentiam_token::{
    Budget, Clock, DpopRequest, DpopVerifier, IntentClaim, ScopeSet, SystemClock, TokenError,
    Verifier, check_step, sign_compact,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// The `typ` of a delegation link.
pub const LINK_TYPE: &str = "agentiam-dlg+jwt";

/// The claims of one offline delegation link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkClaims {
    /// base64url SHA-256 of the token or link this one extends.
    pub prv: String,
    /// Thumbprint of the key that may use (and further attenuate) this link.
    pub jkt: String,
    /// The narrowed scopes.
    pub scope: ScopeSet,
    /// Expiry.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// The narrowed budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
    /// The sub-agent's SPIFFE ID, if the delegator names it (revocable by agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// The link's id (revocable by token id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// The task's declared intent: the parent's, carried unchanged ([`attenuate`] fills it in
    /// when left `None`), or, when the parent has none, declared by this link with the link's
    /// `jti` as its id (`Some(IntentClaim { id: jti })`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<IntentClaim>,
}

/// The intent a hop may carry after `parent`'s: the same one, or a first one whose id is the
/// hop's own `jti`; anything else is `delegation.broken_chain`.
fn carried_intent(
    parent: Option<&IntentClaim>,
    hop: Option<&IntentClaim>,
    hop_jti: Option<&str>,
    what: &str,
) -> Result<(), TokenError> {
    match (parent, hop) {
        (None, None) => Ok(()),
        (Some(p), Some(h)) if p == h => Ok(()),
        (None, Some(h)) if hop_jti == Some(h.id.as_str()) => Ok(()),
        (None, Some(_)) => Err(broken(format!(
            "{what} declares an intent whose id is not its jti"
        ))),
        (Some(p), _) => Err(broken(format!(
            "{what} drops or replaces the intent {} its parent carries",
            agentiam_identity::clip_for_message(&p.id)
        ))),
    }
}

fn hash_b64(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(agentiam_identity::Sha256Digest::of_bytes(text.as_bytes()).as_bytes())
}

/// What a parent token or link holds, read without verification (for the holder's own check).
fn unverified_grant(parent: &str) -> Result<Held, TokenError> {
    let payload = parent
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .ok_or_else(|| TokenError::Malformed("parent is not a compact JWS".into()))?;
    serde_json::from_slice(&payload)
        .map_err(|e| TokenError::InvalidClaim(format!("parent claims: {e}")))
}

#[derive(Deserialize)]
struct Held {
    #[serde(default)]
    scope: ScopeSet,
    exp: i64,
    #[serde(default)]
    budget: Option<Budget>,
    #[serde(default)]
    intent: Option<IntentClaim>,
}

/// Signs a link extending `parent` (the root token or the previous link) with the parent
/// holder's key. Refuses (`delegation.*`) a link wider than what `parent` holds; every
/// verifier checks the same again.
pub fn attenuate(
    holder_key: &SigningKey,
    parent: &str,
    claims: &LinkClaims,
) -> Result<String, TokenError> {
    let held = unverified_grant(parent)?;
    check_step(
        (&held.scope, held.exp, held.budget.as_ref()),
        (&claims.scope, claims.exp, claims.budget.as_ref()),
    )?;
    let mut claims = claims.clone();
    match (&held.intent, &claims.intent) {
        (Some(declared), None) => claims.intent = Some(declared.clone()),
        (Some(declared), Some(asked)) if asked != declared => {
            return Err(TokenError::IntentRedeclared(declared.id.clone()));
        }
        _ => {}
    }
    carried_intent(
        held.intent.as_ref(),
        claims.intent.as_ref(),
        claims.jti.as_deref(),
        "the link",
    )?;
    let mut header = serde_json::Map::new();
    header.insert("typ".into(), LINK_TYPE.into());
    header.insert(
        "jwk".into(),
        serde_json::to_value(holder_key.public_key().to_jwk())
            .map_err(|e| TokenError::Signing(e.to_string()))?,
    );
    claims.prv = hash_b64(parent);
    let payload = serde_json::to_vec(&claims).map_err(|e| TokenError::Signing(e.to_string()))?;
    sign_compact(holder_key, &header, &payload)
}

/// What a verified offline chain grants its final holder.
#[derive(Debug, Clone)]
pub struct Grant {
    /// Scopes of the last hop.
    pub scopes: ScopeSet,
    /// Earliest expiry along the chain.
    pub exp: i64,
    /// Budget of the last hop.
    pub budget: Option<Budget>,
    /// The principal (`sub` of the root token).
    pub principal: String,
    /// The last link's named sub-agent, if any.
    pub holder: Option<String>,
    /// Ancestors of the final grant (root's own chain plus links).
    pub depth: usize,
    /// The root token's task id.
    pub task: Option<String>,
    /// RFC 7638 thumbprint of the key that proved possession of the last link.
    pub holder_jkt: String,
    /// Every call budget along the chain, `(counter key, calls)`, oldest first: the root
    /// token's ancestors, the root token, then each link. A guard counts a call against all.
    pub budgets: Vec<(String, u64)>,
    /// The root token's expiry (the task's state lives at least this long).
    pub root_exp: i64,
    /// The task's declared intent (its id), when the root or a link declared one.
    pub intent: Option<String>,
}

#[derive(Deserialize)]
struct LinkHeader {
    typ: Option<String>,
    alg: Option<String>,
    jwk: Option<agentiam_identity::Jwk>,
}

fn check_link_time(exp: i64, now: i64) -> Result<(), TokenError> {
    if now >= exp {
        return Err(TokenError::Expired { exp, now });
    }
    Ok(())
}

fn broken(why: impl Into<String>) -> TokenError {
    TokenError::BrokenChain(why.into())
}

/// What a walk over a chain established, kept for the next time the same chain is presented.
#[derive(Debug, Clone)]
struct VerifiedChain {
    /// The root and links as presented, compared part by part, byte for byte, on a hit.
    presented: Box<[Box<str>]>,
    /// The verified root (re-checked for key, expiry and revocation on a hit).
    root: agentiam_token::Token,
    /// Each link's expiry, `jti` and `sub`, checked again in the walk's order on a hit.
    links: Vec<LinkCheck>,
    /// The grant, with `holder_jkt` the key the final proof must be by.
    grant: Grant,
}

/// What can change about a verified link: whether it has expired or been revoked.
#[derive(Debug, Clone)]
struct LinkCheck {
    exp: i64,
    jti: Option<String>,
    sub: Option<String>,
}

/// Default number of verified chains a [`ChainVerifier`] keeps.
pub const DEFAULT_CHAIN_CACHE: usize = 4096;

/// Verifies offline delegation chains.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    verifier: Verifier,
    dpop: DpopVerifier,
    clock: Arc<dyn Clock>,
    max_depth: usize,
    revocation: Option<Arc<dyn agentiam_token::RevocationSet>>,
    cache: Option<Arc<quick_cache::sync::Cache<Box<str>, Arc<VerifiedChain>>>>,
}

/// The signature part of a compact JWS, the cache's key.
fn signature_part(jws: &str) -> Option<&str> {
    jws.rsplit_once('.')
        .map(|(_, sig)| sig)
        .filter(|s| !s.is_empty())
}

/// The root and links as presented, one entry each.
fn presented(root: &str, links: &[&str]) -> Box<[Box<str>]> {
    std::iter::once(root)
        .chain(links.iter().copied())
        .map(Box::from)
        .collect()
}

/// Whether `root` and `links` are exactly the parts kept, one for one: a part is never compared
/// across a boundary, so no split or join of the same text matches.
fn same_presented(kept: &[Box<str>], root: &str, links: &[&str]) -> bool {
    kept.len() == links.len() + 1
        && std::iter::once(root)
            .chain(links.iter().copied())
            .zip(kept)
            .all(|(part, kept)| part == kept.as_ref())
}

/// Largest number of links read.
const MAX_LINKS: usize = 16;

impl ChainVerifier {
    /// Roots are checked with `verifier` (trusted broker keys, issuer, audience, revocation),
    /// final proofs with `dpop`; depth is capped at 4 ancestors.
    pub fn new(verifier: Verifier, dpop: DpopVerifier) -> Self {
        Self {
            verifier,
            dpop,
            clock: Arc::new(SystemClock),
            max_depth: crate::DEFAULT_MAX_DELEGATION_DEPTH,
            revocation: None,
            cache: Some(Arc::new(quick_cache::sync::Cache::new(DEFAULT_CHAIN_CACHE))),
        }
    }

    /// Keeps up to `capacity` verified chains (default [`DEFAULT_CHAIN_CACHE`]); `0` keeps none,
    /// so every presentation walks the whole chain.
    pub fn with_cache(mut self, capacity: usize) -> Self {
        self.cache = (capacity > 0).then(|| Arc::new(quick_cache::sync::Cache::new(capacity)));
        self
    }

    /// Refuses links whose `jti` or `sub` is revoked (the root's revocation is the verifier's).
    /// A revoked link revokes every link after it (`delegation.revoked_ancestor`).
    pub fn with_revocation(mut self, revocation: Arc<dyn agentiam_token::RevocationSet>) -> Self {
        self.revocation = Some(revocation);
        self
    }

    /// Uses another clock for link expiry (use the verifier's).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sets the maximum number of ancestors.
    pub fn with_max_depth(mut self, depth: usize) -> Self {
        self.max_depth = depth;
        self
    }

    /// Verifies `root` and `links` for a request proven by `proof` (a DPoP proof by the last key,
    /// with `ath` over the last link, or over the root when there are no links).
    ///
    /// A chain verified before is found in the cache; then only what can have changed is checked
    /// again: the root's key is still trusted, nothing has expired or been revoked, and the proof.
    pub fn verify(
        &self,
        root: &str,
        links: &[&str],
        proof: &str,
        request: &DpopRequest<'_>,
    ) -> Result<Grant, TokenError> {
        let last = links.last().copied().unwrap_or(root);
        let key = self.cache.as_ref().zip(signature_part(last));
        if let Some((cache, sig)) = key
            && links.len() <= MAX_LINKS
            && let Some(hit) = cache.get(sig)
            && same_presented(&hit.presented, root, links)
        {
            return match self.recheck(&hit) {
                Ok(()) => self.prove(&hit.grant, last, proof, request),
                Err(e) => {
                    cache.remove(sig);
                    Err(e)
                }
            };
        }
        let (root_token, checks, grant) = self.walk(root, links)?;
        let grant = self.prove(&grant, last, proof, request)?;
        if let Some((cache, sig)) = key {
            let kept = VerifiedChain {
                presented: presented(root, links),
                root: root_token,
                links: checks,
                grant: grant.clone(),
            };
            cache.insert(Box::from(sig), Arc::new(kept));
        }
        Ok(grant)
    }

    /// What can change after a chain was verified (the root's key, expiry, revocation), checked
    /// in the order of the walk so a hit fails with the code the walk would give.
    fn recheck(&self, kept: &VerifiedChain) -> Result<(), TokenError> {
        self.verifier.recheck(&kept.root)?;
        let now = self.clock.now();
        for (i, link) in kept.links.iter().enumerate() {
            check_link_time(link.exp, now)?;
            self.check_link_revocation(
                i,
                kept.links.len(),
                link.jti.as_deref(),
                link.sub.as_deref(),
            )?;
        }
        Ok(())
    }

    /// A link whose `jti` or `sub` is revoked: `revoked` for the last, `revoked_ancestor` before.
    fn check_link_revocation(
        &self,
        i: usize,
        count: usize,
        jti: Option<&str>,
        sub: Option<&str>,
    ) -> Result<(), TokenError> {
        let Some(revocation) = &self.revocation else {
            return Ok(());
        };
        use agentiam_token::Revocation;
        let by_jti = jti.map(|j| Revocation::Token(j.to_owned()));
        let by_sub = sub.map(|s| Revocation::Agent(s.to_owned()));
        for entry in [by_jti, by_sub].into_iter().flatten() {
            if revocation.contains(&entry)? {
                let what = format!("link {i}");
                return Err(if i + 1 == count {
                    TokenError::Revoked(what)
                } else {
                    TokenError::RevokedAncestor(what)
                });
            }
        }
        Ok(())
    }

    /// The proof must be by the chain's final key, over the last link (or the root).
    fn prove(
        &self,
        grant: &Grant,
        last: &str,
        proof: &str,
        request: &DpopRequest<'_>,
    ) -> Result<Grant, TokenError> {
        let proven = self.dpop.verify(proof, request, Some(last))?;
        if proven.jkt() != grant.holder_jkt {
            return Err(TokenError::PopInvalid(
                "the proof is not by the chain's final key".into(),
            ));
        }
        Ok(grant.clone())
    }

    /// Walks the chain from the root, checking every signature, link and narrowing step.
    fn walk(
        &self,
        root: &str,
        links: &[&str],
    ) -> Result<(agentiam_token::Token, Vec<LinkCheck>, Grant), TokenError> {
        if links.len() > MAX_LINKS {
            return Err(TokenError::DepthExceeded {
                depth: links.len(),
                max: MAX_LINKS,
            });
        }
        let token = self.verifier.verify_without_pop(root)?;
        let c = token.claims();
        let mut jkt = c
            .cnf
            .as_ref()
            .and_then(|x| x.jkt.clone())
            .ok_or(TokenError::PopRequired("a DPoP-bound root token"))?;
        let depth = c.dlg.len() + links.len();
        if depth > self.max_depth {
            return Err(TokenError::DepthExceeded {
                depth,
                max: self.max_depth,
            });
        }
        let now = self.clock.now();
        let mut scopes = c.scope.clone();
        let mut exp = c.exp;
        let mut budget = c.budget;
        let mut budgets: Vec<(String, u64)> = c
            .dlg
            .iter()
            .filter_map(|hop| {
                let calls = hop.budget.and_then(|b| b.calls)?;
                Some((
                    Budget::counter_key(hop.jti.as_deref(), &hop.sub, hop.exp),
                    calls,
                ))
            })
            .chain(c.budget.and_then(|b| b.calls).map(|calls| {
                (
                    Budget::counter_key(c.jti.as_deref(), c.presenter(), c.exp),
                    calls,
                )
            }))
            .collect();
        let mut holder = None;
        let mut intent = c.intent.clone();
        let mut prev: &str = root;
        let mut checks = Vec::with_capacity(links.len());
        for (i, link) in links.iter().enumerate() {
            // Size cap, compact form, no `crit`: the same gate as any token.
            agentiam_token::UnverifiedToken::parse(link)?;
            let mut parts = link.split('.');
            let (Some(h), Some(p), Some(s), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(TokenError::Malformed(format!(
                    "link {i} is not a compact JWS"
                )));
            };
            let header: LinkHeader = URL_SAFE_NO_PAD
                .decode(h)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .ok_or_else(|| TokenError::Malformed(format!("link {i} header")))?;
            if header.typ.as_deref() != Some(LINK_TYPE) {
                return Err(TokenError::WrongType(format!(
                    "link {i} is not an {LINK_TYPE}"
                )));
            }
            let mut jwk = header
                .jwk
                .ok_or_else(|| broken(format!("link {i} carries no signer key")))?;
            jwk.kid = None;
            let key = PublicKey::from_jwk(&jwk)
                .map_err(|e| broken(format!("link {i} signer key: {e}")))?;
            if key.thumbprint() != jkt {
                return Err(broken(format!(
                    "link {i} is not signed by the previous holder's key"
                )));
            }
            let alg = header.alg.unwrap_or_default();
            if !key.alg().matches_header(&alg) {
                return Err(TokenError::AlgNotAllowed(alg));
            }
            let sig = URL_SAFE_NO_PAD
                .decode(s)
                .map_err(|_| TokenError::Malformed(format!("link {i} signature")))?;
            let signed = link.get(..h.len() + 1 + p.len()).unwrap_or_default();
            if !key.verify(signed.as_bytes(), &sig) {
                return Err(TokenError::BadSignature);
            }
            let claims: LinkClaims = URL_SAFE_NO_PAD
                .decode(p)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .ok_or_else(|| TokenError::InvalidClaim(format!("link {i} claims")))?;
            if claims.prv != hash_b64(prev) {
                return Err(broken(format!(
                    "link {i} does not extend the token or link before it"
                )));
            }
            check_link_time(claims.exp, now)?;
            check_step(
                (&scopes, exp, budget.as_ref()),
                (&claims.scope, claims.exp, claims.budget.as_ref()),
            )?;
            carried_intent(
                intent.as_ref(),
                claims.intent.as_ref(),
                claims.jti.as_deref(),
                &format!("link {i}"),
            )?;
            self.check_link_revocation(
                i,
                links.len(),
                claims.jti.as_deref(),
                claims.sub.as_deref(),
            )?;
            checks.push(LinkCheck {
                exp: claims.exp,
                jti: claims.jti.clone(),
                sub: claims.sub.clone(),
            });
            if let Some(calls) = claims.budget.and_then(|b| b.calls) {
                // A link without a jti is identified by its own hash.
                let key = match &claims.jti {
                    Some(jti) => Budget::counter_key(Some(jti), "", claims.exp),
                    None => format!("budget:link:{}", hash_b64(link)),
                };
                budgets.push((key, calls));
            }
            scopes = claims.scope;
            exp = claims.exp;
            budget = claims.budget;
            holder = claims.sub;
            intent = claims.intent;
            jkt = claims.jkt;
            prev = link;
        }
        let grant = Grant {
            scopes,
            exp,
            budget,
            principal: c.sub.clone(),
            holder,
            depth,
            task: c.task.as_ref().map(|t| t.id.clone()),
            holder_jkt: jkt,
            budgets,
            root_exp: c.exp,
            intent: intent.map(|i| i.id),
        };
        Ok((token, checks, grant))
    }
}
