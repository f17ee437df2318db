//! Delegation chains that can only narrow.
//!
//! An orchestrator holding a task token asks the broker to exchange it (RFC 8693) for a token
//! for a sub-agent. The child token keeps the principal in `sub`, nests the actors in `act`
//! (newest outermost), and records what every ancestor held in `dlg`. Its scopes, argument
//! constraints, budget and expiry are each within its parent's: anything wider is refused
//! (`delegation.scope_widened`, `delegation.expiry_extended`, `delegation.budget_widened`), or
//! clipped only when the caller asked for clipping. Every verifier re-checks the recorded chain
//! ([`agentiam_token::check_chain`]), caps its depth (`delegation.depth_exceeded`) and refuses
//! descendants of a revoked token or agent (`delegation.revoked_ancestor`).
//!
//! ```
//! use std::sync::Arc;
//! use agentiam_delegation::*;
//! use agentiam_identity::*;
//! use agentiam_token::*;
//! # fn agent(name: &str) -> AgentIdentity {
//! #     AgentIdentity::new(parse_spiffe_id(&format!("spiffe://acme.example/agent/{name}")).unwrap(),
//! #         ModelRef::new("p", "m", "1"), &AgentConfiguration::new(name, vec![]), RuntimeDescriptor::new("process")).unwrap()
//! # }
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let clock = Arc::new(FixedClock::new(1_800_000_000));
//! let issuer = Arc::new(Issuer::new("https://broker.example", KeySet::new(SigningKey::generate(Algorithm::EdDSA)?)).with_clock(clock.clone()));
//! let (planner, searcher) = (agent("planner"), agent("searcher"));
//! issuer.register(planner.spiffe_id(), AgentRegistration::new(ScopeSet::parse("docs:read docs:write")?));
//! let parent = issuer.issue(&TokenRequest::new(&planner, "docs-api", ScopeSet::parse("docs:read docs:write")?, "t-1", "summarise"))?;
//!
//! let broker = Exchanger::new(issuer.clone()).with_clock(clock.clone());
//! let child = broker.exchange(&ExchangeRequest::new(&parent.token, &searcher, "docs-api").with_scopes(ScopeSet::parse("docs:read")?))?;
//! assert_eq!(child.claims.sub, "spiffe://acme.example/agent/planner");         // the principal
//! assert_eq!(child.claims.presenter(), "spiffe://acme.example/agent/searcher"); // the actor
//!
//! let wider = broker.exchange(&ExchangeRequest::new(&child.token, &planner, "docs-api").with_scopes(ScopeSet::parse("docs:write")?));
//! assert_eq!(wider.unwrap_err().code(), "delegation.scope_widened");
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::sync::Arc;

use agentiam_identity::AgentIdentity;
use agentiam_token::{
    AgentClaim, Audience, Budget, Claims, Clock, Confirmation, DelegationHop, DpopRequest,
    DpopVerifier, Entropy, IntentClaim, IssuedToken, Issuer, RevocationSet, ScopeSet, SystemClock,
    SystemEntropy, TokenError, Verifier, check_step,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

pub use agentiam_token::DEFAULT_MAX_DELEGATION_DEPTH;
pub use offline::{ChainVerifier, DEFAULT_CHAIN_CACHE, Grant, LINK_TYPE, LinkClaims, attenuate};

mod offline;

/// A request to exchange a parent's token for a narrower child token.
#[derive(Debug, Clone)]
pub struct ExchangeRequest<'a> {
    /// The parent's token (RFC 8693 `subject_token`).
    pub subject_token: &'a str,
    /// The parent's DPoP proof for the exchange request, required when its token is DPoP-bound.
    pub subject_proof: Option<(&'a str, DpopRequest<'a>)>,
    /// The sub-agent (its identity already attested: RFC 8693 `actor_token`).
    pub actor: &'a AgentIdentity,
    /// The service the child token is for; the parent must hold this audience.
    pub audience: String,
    /// The scopes the sub-agent needs; `None` keeps the parent's.
    pub scopes: Option<ScopeSet>,
    /// Lifetime in seconds; `None` ends with the parent.
    pub ttl: Option<i64>,
    /// Call budget for the sub-agent; `None` inherits the parent's.
    pub calls: Option<u64>,
    /// Clip a wider request to the parent instead of refusing it.
    pub clip: bool,
    /// Bind the child to the sub-agent's DPoP key (thumbprint).
    pub dpop_jkt: Option<String>,
    /// The child's scopes are the task's declared intent ([`IntentClaim`]): what the user asked
    /// for, fixed before the agent reads anything untrusted. Refused
    /// (`delegation.intent_redeclared`) when the parent's chain declared one already.
    pub declare_intent: bool,
}

impl<'a> ExchangeRequest<'a> {
    /// Exchange `subject_token` for `actor`, for `audience`, keeping the parent's scopes and expiry.
    pub fn new(
        subject_token: &'a str,
        actor: &'a AgentIdentity,
        audience: impl Into<String>,
    ) -> Self {
        Self {
            subject_token,
            subject_proof: None,
            actor,
            audience: audience.into(),
            scopes: None,
            ttl: None,
            calls: None,
            clip: false,
            dpop_jkt: None,
            declare_intent: false,
        }
    }

    /// Declares the child's scopes as the task's intent (see [`ExchangeRequest::declare_intent`]).
    pub fn declaring_intent(mut self) -> Self {
        self.declare_intent = true;
        self
    }

    /// Asks for these scopes only.
    pub fn with_scopes(mut self, scopes: ScopeSet) -> Self {
        self.scopes = Some(scopes);
        self
    }

    /// Asks for this lifetime.
    pub fn with_ttl(mut self, secs: i64) -> Self {
        self.ttl = Some(secs);
        self
    }

    /// Limits the sub-agent's tool calls.
    pub fn with_calls(mut self, calls: u64) -> Self {
        self.calls = Some(calls);
        self
    }

    /// Clips a wider request to what the parent holds instead of refusing it.
    pub fn clipping(mut self) -> Self {
        self.clip = true;
        self
    }
}

/// The broker's token-exchange endpoint logic.
#[derive(Debug, Clone)]
pub struct Exchanger {
    issuer: Arc<Issuer>,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
    revocation: Option<Arc<dyn RevocationSet>>,
    dpop: Option<DpopVerifier>,
    max_depth: usize,
}

impl Exchanger {
    /// Exchanges tokens issued by `issuer`, with a depth cap of 4.
    pub fn new(issuer: Arc<Issuer>) -> Self {
        Self {
            issuer,
            clock: Arc::new(SystemClock),
            entropy: Arc::new(SystemEntropy),
            revocation: None,
            dpop: None,
            max_depth: DEFAULT_MAX_DELEGATION_DEPTH,
        }
    }

    /// Uses another clock (use the issuer's).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Uses another randomness source for `jti`.
    pub fn with_entropy(mut self, entropy: Arc<dyn Entropy>) -> Self {
        self.entropy = entropy;
        self
    }

    /// Refuses to exchange revoked tokens or descendants of revoked ones.
    pub fn with_revocation(mut self, revocation: Arc<dyn RevocationSet>) -> Self {
        self.revocation = Some(revocation);
        self
    }

    /// Checks DPoP proofs for bound parent tokens with this verifier (replay cache included).
    pub fn with_dpop(mut self, dpop: DpopVerifier) -> Self {
        self.dpop = Some(dpop);
        self
    }

    /// Sets the maximum number of ancestors a token may have.
    pub fn with_max_depth(mut self, depth: usize) -> Self {
        self.max_depth = depth;
        self
    }

    fn verifier(&self, audience: &str) -> Verifier {
        let mut v = Verifier::new(self.issuer.jwks(), self.issuer.issuer(), audience)
            .with_clock(self.clock.clone())
            .with_max_delegation_depth(self.max_depth);
        if let Some(r) = &self.revocation {
            v = v.with_revocation(r.clone());
        }
        v
    }

    /// Exchanges the parent's token for a child token for the actor. Never widens.
    pub fn exchange(&self, req: &ExchangeRequest<'_>) -> Result<IssuedToken, TokenError> {
        let verifier = self.verifier(&req.audience);
        let parent = match (&req.subject_proof, &self.dpop) {
            (Some((proof, request)), Some(dpop)) => {
                verifier.verify_with_dpop(req.subject_token, Some(proof), request, dpop)?
            }
            (Some(_), None) => {
                return Err(TokenError::InvalidRequest(
                    "this exchanger checks no DPoP proofs".into(),
                ));
            }
            (None, _) => verifier.verify(req.subject_token)?,
        };
        let p = parent.claims();
        let depth = p.dlg.len() + 1;
        if depth > self.max_depth {
            return Err(TokenError::DepthExceeded {
                depth,
                max: self.max_depth,
            });
        }
        let now = self.clock.now();
        let scope = match &req.scopes {
            None => p.scope.clone(),
            Some(asked) if req.clip => {
                let kept: Vec<_> = asked
                    .scopes()
                    .iter()
                    .filter(|s| p.scope.scopes().iter().any(|ps| s.is_within(ps)))
                    .cloned()
                    .collect();
                if kept.is_empty() {
                    return Err(TokenError::ScopeWidened(asked.to_string()));
                }
                ScopeSet::from_scopes(kept)?
            }
            Some(asked) => asked.clone(),
        };
        if scope.is_empty() {
            return Err(TokenError::InvalidRequest(
                "a delegated token needs at least one scope".into(),
            ));
        }
        let mut exp = match req.ttl {
            Some(ttl) if ttl <= 0 => {
                return Err(TokenError::InvalidRequest(
                    "lifetime must be positive".into(),
                ));
            }
            Some(ttl) => now.saturating_add(ttl),
            None => p.exp,
        };
        if req.clip {
            exp = exp.min(p.exp);
        }
        let budget = match (req.calls, p.budget) {
            (Some(c), Some(pb)) if req.clip => Some(Budget {
                calls: Some(pb.calls.map_or(c, |pc| c.min(pc))),
            }),
            (Some(c), _) => Some(Budget { calls: Some(c) }),
            (None, pb) => pb,
        };
        check_step(
            (&p.scope, p.exp, p.budget.as_ref()),
            (&scope, exp, budget.as_ref()),
        )?;

        let mut dlg = p.dlg.clone();
        dlg.push(DelegationHop {
            jti: p.jti.clone(),
            sub: p.presenter().to_owned(),
            scope: p.scope.clone(),
            exp: p.exp,
            jkt: p.cnf.as_ref().and_then(|c| c.jkt.clone()),
            budget: p.budget,
            intent: p.intent.clone(),
        });
        let actor_id = req.actor.spiffe_id().to_string();
        let act = match &p.act {
            Some(prev) => json!({"sub": actor_id, "act": prev}),
            None => json!({"sub": actor_id}),
        };
        let mut jti = [0u8; 16];
        self.entropy.fill(&mut jti)?;
        let jti = URL_SAFE_NO_PAD.encode(jti);
        let intent = match (&p.intent, req.declare_intent) {
            (Some(declared), true) => {
                return Err(TokenError::IntentRedeclared(declared.id.clone()));
            }
            (None, true) => Some(IntentClaim { id: jti.clone() }),
            (inherited, false) => inherited.clone(),
        };
        let claims = Claims {
            iss: self.issuer.issuer().to_owned(),
            sub: p.sub.clone(),
            aud: Audience::One(req.audience.clone()),
            exp,
            iat: Some(now),
            nbf: Some(now),
            jti: Some(jti),
            client_id: Some(actor_id),
            scope,
            task: p.task.clone(),
            agent: Some(AgentClaim::of(req.actor)),
            cnf: req.dpop_jkt.clone().map(|jkt| Confirmation {
                jkt: Some(jkt),
                x5t_s256: None,
            }),
            act: Some(act),
            dlg,
            budget,
            // A sub-agent acts for the same person as its parent.
            person: p.person.clone(),
            intent,
        };
        let token = self.issuer.sign(&claims)?;
        Ok(IssuedToken { token, claims })
    }
}
