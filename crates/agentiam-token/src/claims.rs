//! Access-token claims (RFC 9068 `at+jwt`) with agentiam's task, agent and confirmation claims.

use std::collections::BTreeMap;

use agentiam_identity::{AgentIdentity, ModelRef, Sha256Digest};
use serde::{Deserialize, Deserializer, Serialize};

use crate::ScopeSet;

/// The `aud` claim: one audience or several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience string.
    One(String),
    /// Several audiences.
    Many(Vec<String>),
}

impl Audience {
    /// Whether `aud` names this audience exactly.
    pub fn contains(&self, audience: &str) -> bool {
        match self {
            Self::One(a) => a == audience,
            Self::Many(v) => v.iter().any(|a| a == audience),
        }
    }
}

/// The task a token was issued for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskClaim {
    /// Task identifier, unique per task.
    pub id: String,
    /// Why the agent needs access, in words a reviewer understands.
    pub purpose: String,
}

/// The composite identity the token was issued to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentClaim {
    /// The model.
    pub model: ModelRef,
    /// Digest of system prompt and tool manifest.
    pub config_digest: Sha256Digest,
    /// Digest of the runtime.
    pub runtime_digest: Sha256Digest,
    /// The composite digest over all components.
    pub digest: Sha256Digest,
    /// Each tool's descriptor digest, by name: the manifest the token was issued for.
    /// A guard refuses a registered tool whose description or schema no longer matches
    /// (`guard.tool_changed`). Empty (and absent from the JSON) when the issuer had no manifest.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tools: BTreeMap<String, Sha256Digest>,
}

impl AgentClaim {
    /// The claim for an identity.
    pub fn of(identity: &AgentIdentity) -> Self {
        Self {
            model: identity.model().clone(),
            config_digest: identity.configuration_digest(),
            runtime_digest: identity.runtime_digest(),
            digest: identity.composite_digest(),
            tools: identity.tool_pins().clone(),
        }
    }
}

/// RFC 7800 confirmation: the key the presenter must prove possession of.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Confirmation {
    /// RFC 9449 DPoP: thumbprint of the DPoP public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jkt: Option<String>,
    /// RFC 8705 mTLS: SHA-256 thumbprint of the client certificate.
    #[serde(default, rename = "x5t#S256", skip_serializing_if = "Option::is_none")]
    pub x5t_s256: Option<String>,
}

impl Confirmation {
    /// Whether any confirmation method is set.
    pub fn is_empty(&self) -> bool {
        self.jkt.is_none() && self.x5t_s256.is_none()
    }
}

/// Verified (or about to be signed) token claims.
///
/// `iss`, `sub`, `aud` and `exp` are always required and `iat` is by default; everything else,
/// `jti` included, is optional unless the verifier's configuration requires it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Subject: the agent's SPIFFE ID for agentiam tokens.
    pub sub: String,
    /// Audience.
    pub aud: Audience,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Not before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Token ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// OAuth client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Granted scopes.
    #[serde(default, skip_serializing_if = "ScopeSet::is_empty")]
    pub scope: ScopeSet,
    /// The task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskClaim>,
    /// The agent's composite identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentClaim>,
    /// Proof-of-possession key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
    /// Delegation: the acting party chain (RFC 8693), newest actor outermost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<serde_json::Value>,
    /// Delegation: one record per ancestor token, oldest first (what each hop held).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dlg: Vec<DelegationHop>,
    /// Budgets that can only shrink down a delegation chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
    /// The person an agent acts for (agentiam extension): `sub` is then that person as their
    /// OpenID provider names them, and `act` the agent (nested for sub-agents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<PersonClaim>,
    /// The task's declared intent (agentiam extension), when this token or an ancestor declared one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<IntentClaim>,
}

/// The task's declared intent (agentiam extension): this token's scopes, narrowed to what the
/// user asked for before the agent read anything untrusted, are the intent.
///
/// An intent is declared once per chain, by narrowing a token without one (exchange or offline
/// attenuation); every token delegated from it carries the same `id`, and
/// [`check_chain`](crate::check_chain) refuses a chain that drops or replaces it. A guard keeps
/// the task's taint for an intent token apart from its ancestors' (`id` is part of the task key),
/// so it can tell that a value the intent fixes was fixed before anything untrusted was read
/// under it, and it trusts the intent only while the ancestors' task is untainted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntentClaim {
    /// Identifies this declaration (the declaring token's `jti`, or a random id).
    pub id: String,
}

/// The person a token's agent acts for, as the OpenID provider that signed them in names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonClaim {
    /// The OpenID provider (its issuer URL).
    pub iss: String,
    /// The person's subject at that provider (the token's `sub`).
    pub sub: String,
}

/// What one ancestor token in a delegation chain held.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DelegationHop {
    /// The ancestor token's `jti`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// Who held it (its actor, or its subject when it had none).
    pub sub: String,
    /// Its scopes.
    #[serde(default)]
    pub scope: ScopeSet,
    /// Its expiry.
    pub exp: i64,
    /// Its DPoP key thumbprint, if it was bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jkt: Option<String>,
    /// Its budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
    /// The intent it carried, if one was declared by then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<IntentClaim>,
}

/// Numeric limits carried by a token, narrowed at every delegation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Budget {
    /// How many tool calls the holder may make.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls: Option<u64>,
}

impl Budget {
    /// The key a guard counts this token's calls under: its `jti`, or, for a token without
    /// one, its holder and expiry. Every guard and every store use the same key, so a budget is
    /// one counter wherever the token is presented.
    pub fn counter_key(jti: Option<&str>, holder: &str, exp: i64) -> String {
        match jti {
            Some(jti) => format!("budget:jti:{jti}"),
            None => format!("budget:hop:{holder}:{exp}"),
        }
    }

    /// Whether this budget allows nothing that `parent` does not (an absent limit is unlimited).
    pub fn is_within(this: Option<&Budget>, parent: Option<&Budget>) -> bool {
        let limit = |b: Option<&Budget>| b.and_then(|b| b.calls);
        match (limit(this), limit(parent)) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(c), Some(p)) => c <= p,
        }
    }
}

impl Claims {
    /// Who presents this token: the outermost actor (`act.sub`) of a delegated token, else `sub`.
    pub fn presenter(&self) -> &str {
        self.act
            .as_ref()
            .and_then(|a| a.get("sub"))
            .and_then(serde_json::Value::as_str)
            .unwrap_or(&self.sub)
    }
}

/// The wire form read before checks: every member optional, so a missing one becomes
/// `token.missing_claim` and a mistyped one `token.invalid_claim`, never a default.
///
/// Unknown members are ignored, as RFC 7519 requires; duplicate known members are refused.
#[derive(Debug, Deserialize)]
pub(crate) struct WireClaims {
    #[serde(default)]
    pub(crate) iss: Option<String>,
    #[serde(default)]
    pub(crate) sub: Option<String>,
    #[serde(default)]
    pub(crate) aud: Option<Audience>,
    #[serde(default, deserialize_with = "numeric_date")]
    pub(crate) exp: Option<i64>,
    #[serde(default, deserialize_with = "numeric_date")]
    pub(crate) iat: Option<i64>,
    #[serde(default, deserialize_with = "numeric_date")]
    pub(crate) nbf: Option<i64>,
    #[serde(default)]
    pub(crate) jti: Option<String>,
    #[serde(default)]
    pub(crate) client_id: Option<String>,
    #[serde(default)]
    pub(crate) scope: Option<ScopeSet>,
    #[serde(default)]
    pub(crate) task: Option<TaskClaim>,
    #[serde(default)]
    pub(crate) agent: Option<AgentClaim>,
    #[serde(default)]
    pub(crate) cnf: Option<Confirmation>,
    #[serde(default)]
    pub(crate) act: Option<serde_json::Value>,
    #[serde(default)]
    pub(crate) dlg: Option<Vec<DelegationHop>>,
    #[serde(default)]
    pub(crate) budget: Option<Budget>,
    #[serde(default)]
    pub(crate) person: Option<PersonClaim>,
    #[serde(default)]
    pub(crate) intent: Option<IntentClaim>,
}

/// RFC 7519 NumericDate: a JSON number of seconds. Integers are taken as they are;
/// a finite fractional number is floored. Strings, booleans and out-of-range values are errors,
/// never "absent" (CVE-2026-25537 was a verifier that skipped a mistyped `exp`).
fn numeric_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    use serde::de::Error;
    let n = serde_json::Number::deserialize(d)?;
    if let Some(i) = n.as_i64() {
        return Ok(Some(i));
    }
    match n.as_f64() {
        // Bounded so the cast cannot saturate silently: about year 2^35, far beyond any token.
        Some(f) if f.is_finite() && f.abs() < 1e12 => Ok(Some(f.floor() as i64)),
        _ => Err(D::Error::custom("NumericDate out of range")),
    }
}
