//! `agentiam token issue` and `agentiam token verify`.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use agentiam::identity::{
    AgentConfiguration, AgentIdentity, Jwks, KeySet, ModelRef, RuntimeDescriptor, Sha256Digest,
    SigningKey, ToolDescriptor, parse_spiffe_id,
};
use agentiam::token::{
    AgentRegistration, Audience, Claims, FixedClock, InMemoryRevocationSet, Issuer, RequiredClaim,
    Revocation, RevocationSet, ScopeSet, SystemClock, TaskClaim, TokenRequest, Verifier,
};
use clap::Subcommand;
use serde::Deserialize;
use serde_json::json;

use crate::output::{CliError, Output, read_file};

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Issue a task token signed with a private JWK.
    Issue {
        /// Private JWK file (from `agentiam keys generate`).
        #[arg(long)]
        key: PathBuf,
        /// The `iss` claim.
        #[arg(long)]
        issuer: String,
        /// The `aud` claim: the service the token is for.
        #[arg(long)]
        audience: String,
        /// The agent's SPIFFE ID (`sub`).
        #[arg(long)]
        sub: String,
        /// Space-separated scopes, e.g. "ledger.ar:read payments:approve{amount<=100}".
        #[arg(long)]
        scope: String,
        /// Task identifier.
        #[arg(long, default_value = "adhoc")]
        task_id: String,
        /// Why the agent needs access.
        #[arg(long, default_value = "issued with agentiam token issue")]
        purpose: String,
        /// Lifetime in seconds (default 900, at most --max-ttl).
        #[arg(long)]
        ttl: Option<i64>,
        /// Hard maximum lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        max_ttl: i64,
        /// Agent description (JSON: model, system_prompt, tools, runtime) to bind the token to.
        #[arg(long)]
        agent: Option<PathBuf>,
        /// Bind the token to a DPoP key (its RFC 7638 thumbprint, e.g. the kid from `keys generate`).
        #[arg(long)]
        dpop_jkt: Option<String>,
        /// Declare the scopes the task's intent: what the user asked for, fixed before the agent
        /// reads anything untrusted (once per chain).
        #[arg(long)]
        intent: bool,
    },
    /// Exchange a parent's token for a narrower token for a sub-agent (RFC 8693); never widens.
    Exchange {
        /// The broker's private JWK (the key that signed the parent token).
        #[arg(long)]
        key: PathBuf,
        /// The broker's issuer name.
        #[arg(long)]
        issuer: String,
        /// The service the child token is for (the parent must hold it).
        #[arg(long)]
        audience: String,
        /// The parent's token (`subject_token`).
        #[arg(long)]
        subject_token: String,
        /// The sub-agent's SPIFFE ID.
        #[arg(long)]
        actor: String,
        /// The sub-agent's description (JSON: model, system_prompt, tools, runtime).
        #[arg(long)]
        actor_agent: PathBuf,
        /// Space-separated scopes for the child (default: the parent's).
        #[arg(long)]
        scope: Option<String>,
        /// Child lifetime in seconds (default: until the parent expires).
        #[arg(long)]
        ttl: Option<i64>,
        /// Call budget for the child.
        #[arg(long)]
        calls: Option<u64>,
        /// Clip a wider request to the parent instead of refusing it.
        #[arg(long)]
        clip: bool,
        /// Maximum delegation depth.
        #[arg(long, default_value_t = 4)]
        max_depth: usize,
        /// Declare the scopes the task's intent: what the user asked for, fixed before the agent
        /// reads anything untrusted (once per chain).
        #[arg(long)]
        intent: bool,
    },
    /// Delegate offline: sign a link that narrows your DPoP-bound token (or link) for a sub-agent's key.
    Attenuate {
        /// Your private JWK: the key your token or link is bound to.
        #[arg(long)]
        key: PathBuf,
        /// The token or link you hold and are extending.
        #[arg(long)]
        parent: String,
        /// The sub-agent's key thumbprint (RFC 7638), which will hold the new link.
        #[arg(long)]
        next_jkt: String,
        /// Space-separated scopes for the sub-agent, within what you hold.
        #[arg(long)]
        scope: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 300)]
        ttl: i64,
        /// Call budget for the sub-agent.
        #[arg(long)]
        calls: Option<u64>,
        /// The sub-agent's SPIFFE ID, to name it in the link.
        #[arg(long)]
        sub: Option<String>,
        /// Declare the scopes the task's intent: what the user asked for, fixed before the agent
        /// reads anything untrusted (once per chain).
        #[arg(long)]
        intent: bool,
    },
    /// Verify a token against a JWKS; exits 1 with the reason code when it is refused.
    Verify {
        /// JWKS file of trusted keys (RFC 7517; OKP/Ed25519 and EC/P-256 keys are used).
        #[arg(long)]
        jwks: PathBuf,
        /// The trusted issuer, compared exactly.
        #[arg(long)]
        issuer: String,
        /// This service's audience, compared exactly.
        #[arg(long)]
        audience: String,
        /// Verify as of this time (seconds since the epoch) instead of now: for audits and tests.
        #[arg(long)]
        at: Option<i64>,
        /// Clock-skew leeway in seconds (0 to 300).
        #[arg(long, default_value_t = 5)]
        leeway: i64,
        /// A revoked token ID (repeatable).
        #[arg(long)]
        revoked_jti: Vec<String>,
        /// Also require this claim (repeatable): iat, jti, nbf, client_id, task, agent, cnf.
        /// iss, sub, aud, exp and iat are always required.
        #[arg(long, value_parser = ["iat", "jti", "nbf", "client_id", "task", "agent", "cnf"])]
        require_claim: Vec<String>,
        /// Require the token to be bound to this agent SPIFFE ID ...
        #[arg(long, requires = "expect_digest")]
        expect_agent: Option<String>,
        /// ... with this composite digest (sha256:...).
        #[arg(long, requires = "expect_agent")]
        expect_digest: Option<String>,
        /// Also check the token allows this action, as `resource:action` (exit 1 with
        /// `guard.scope_missing` or `guard.constraint_violated` if not).
        #[arg(long)]
        action: Option<String>,
        /// The action's arguments as a JSON object, for argument constraints.
        #[arg(long, requires = "action")]
        args: Option<String>,
        /// The compact token, or - to read it from standard input.
        token: String,
    },
}

/// The `--agent` file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentFile {
    model: ModelRef,
    system_prompt: String,
    #[serde(default)]
    tools: Vec<ToolDescriptor>,
    runtime: RuntimeDescriptor,
}

fn read_agent(spiffe_id: &str, path: &std::path::Path) -> Result<AgentIdentity, CliError> {
    let file: AgentFile = serde_json::from_str(&read_file(path)?)
        .map_err(|e| CliError::usage(crate::codes::BAD_AGENT_FILE, e))?;
    Ok(AgentIdentity::new(
        parse_spiffe_id(spiffe_id)?,
        file.model,
        &AgentConfiguration::new(file.system_prompt, file.tools),
        file.runtime,
    )?)
}

pub(crate) fn run(cmd: TokenCommand, out: &Output) -> Result<(), CliError> {
    match cmd {
        TokenCommand::Attenuate {
            key,
            parent,
            next_jkt,
            scope,
            ttl,
            calls,
            sub,
            intent,
        } => {
            let signing = SigningKey::from_private_jwk(&read_file(&key)?)?;
            let scope = ScopeSet::parse(&scope).map_err(|e| CliError::usage(e.code(), &e))?;
            if let Some(s) = &sub {
                parse_spiffe_id(s)?;
            }
            let now = agentiam::token::Clock::now(&SystemClock);
            let jti: String = {
                let mut id = [0u8; 16];
                agentiam::token::Entropy::fill(&agentiam::token::SystemEntropy, &mut id)?;
                id.iter().map(|b| format!("{b:02x}")).collect()
            };
            let claims = agentiam::delegation::LinkClaims {
                prv: String::new(),
                jkt: next_jkt,
                scope,
                exp: now.saturating_add(ttl),
                iat: now,
                budget: calls.map(|c| agentiam::token::Budget { calls: Some(c) }),
                sub,
                intent: intent.then(|| agentiam::token::IntentClaim { id: jti.clone() }),
                jti: Some(jti),
            };
            let link = agentiam::delegation::attenuate(&signing, parent.trim(), &claims)?;
            out.result(&json!({"link": link, "claims": claims}), &link);
            Ok(())
        }
        TokenCommand::Exchange {
            key,
            issuer,
            audience,
            subject_token,
            actor,
            actor_agent,
            scope,
            ttl,
            calls,
            clip,
            max_depth,
            intent,
        } => {
            let signing = SigningKey::from_private_jwk(&read_file(&key)?)?;
            let actor = read_agent(&actor, &actor_agent)?;
            let scopes = scope
                .as_deref()
                .map(ScopeSet::parse)
                .transpose()
                .map_err(|e| CliError::usage(e.code(), &e))?;
            let broker = agentiam::delegation::Exchanger::new(Arc::new(Issuer::new(
                issuer,
                KeySet::new(signing),
            )))
            .with_max_depth(max_depth);
            let mut req =
                agentiam::delegation::ExchangeRequest::new(subject_token.trim(), &actor, audience);
            req.scopes = scopes;
            req.ttl = ttl;
            req.calls = calls;
            req.clip = clip;
            req.declare_intent = intent;
            let child = broker.exchange(&req)?;
            out.result(
                &json!({"token": child.token, "claims": child.claims}),
                &child.token,
            );
            Ok(())
        }
        TokenCommand::Issue {
            key,
            issuer,
            audience,
            sub,
            scope,
            task_id,
            purpose,
            ttl,
            max_ttl,
            agent,
            dpop_jkt,
            intent,
        } => {
            let signing = SigningKey::from_private_jwk(&read_file(&key)?)?;
            let scopes = ScopeSet::parse(&scope).map_err(|e| CliError::usage(e.code(), &e))?;
            let spiffe_id = parse_spiffe_id(&sub)?;
            let iss = Issuer::new(issuer, KeySet::new(signing)).with_lifetimes(900, max_ttl);
            let issued = match agent {
                Some(path) => {
                    let identity = read_agent(&sub, &path)?;
                    // The operator running this command is the registry: the scopes asked for are the maximum.
                    iss.register(identity.spiffe_id(), AgentRegistration::new(scopes.clone()));
                    let mut req = TokenRequest::new(&identity, audience, scopes, task_id, purpose);
                    req.ttl = ttl;
                    req.declare_intent = intent;
                    if let Some(jkt) = dpop_jkt {
                        req = req.bind_dpop(jkt);
                    }
                    iss.issue(&req)?
                }
                None => {
                    let ttl = ttl.unwrap_or(900);
                    if ttl <= 0 || ttl > iss.max_ttl() {
                        return Err(CliError::usage(
                            agentiam::token::codes::LIFETIME_TOO_LONG,
                            format!("lifetime must be 1..={} seconds", iss.max_ttl()),
                        ));
                    }
                    let now = agentiam::token::Clock::now(&SystemClock);
                    let mut id = [0u8; 16];
                    agentiam::token::Entropy::fill(&agentiam::token::SystemEntropy, &mut id)?;
                    let jti: String = id.iter().map(|b| format!("{b:02x}")).collect();
                    let claims = Claims {
                        iss: iss.issuer().to_owned(),
                        sub: spiffe_id.to_string(),
                        aud: Audience::One(audience),
                        exp: now + ttl,
                        iat: Some(now),
                        nbf: Some(now),
                        jti: Some(jti.clone()),
                        client_id: Some(spiffe_id.to_string()),
                        scope: scopes,
                        task: Some(TaskClaim {
                            id: task_id,
                            purpose,
                        }),
                        agent: None,
                        cnf: dpop_jkt.map(|jkt| agentiam::token::Confirmation {
                            jkt: Some(jkt),
                            x5t_s256: None,
                        }),
                        act: None,
                        dlg: Vec::new(),
                        budget: None,
                        person: None,
                        intent: intent.then(|| agentiam::token::IntentClaim { id: jti.clone() }),
                    };
                    let token = iss.sign(&claims)?;
                    agentiam::token::IssuedToken { token, claims }
                }
            };
            out.result(
                &json!({"token": issued.token, "claims": issued.claims}),
                &issued.token,
            );
            Ok(())
        }
        TokenCommand::Verify {
            jwks,
            issuer,
            audience,
            at,
            leeway,
            revoked_jti,
            require_claim,
            expect_agent,
            expect_digest,
            action,
            args,
            token,
        } => {
            let keys = Jwks::from_json(&read_file(&jwks)?)?;
            if keys.is_empty() {
                return Err(CliError::usage(
                    agentiam::identity::codes::BAD_JWKS,
                    "the JWKS has no usable OKP/Ed25519 or EC/P-256 key",
                ));
            }
            let token = if token == "-" {
                let mut buf = String::new();
                std::io::stdin()
                    .take(64 * 1024)
                    .read_to_string(&mut buf)
                    .map_err(|e| {
                        CliError::usage(
                            crate::codes::IO,
                            format!("cannot read standard input: {e}"),
                        )
                    })?;
                buf.trim().to_owned()
            } else {
                token
            };
            let revoked = InMemoryRevocationSet::new();
            for jti in revoked_jti {
                revoked.revoke(Revocation::Token(jti), i64::MAX)?;
            }
            let mut verifier = Verifier::new(keys, issuer, audience)
                .with_leeway(leeway)
                .with_revocation(Arc::new(revoked));
            for claim in &require_claim {
                verifier = verifier.require(match claim.as_str() {
                    "jti" => RequiredClaim::Jti,
                    "nbf" => RequiredClaim::Nbf,
                    "client_id" => RequiredClaim::ClientId,
                    "task" => RequiredClaim::Task,
                    "agent" => RequiredClaim::Agent,
                    "cnf" => RequiredClaim::Cnf,
                    _ => RequiredClaim::Iat,
                });
            }
            if let Some(at) = at {
                verifier = verifier.with_clock(Arc::new(FixedClock::new(at)));
            }
            let verified = verifier.verify(&token)?;
            if let (Some(agent), Some(digest)) = (expect_agent, expect_digest) {
                let digest = Sha256Digest::parse(&digest).ok_or_else(|| {
                    CliError::usage(
                        crate::codes::BAD_DIGEST,
                        "expected sha256:<64 lowercase hex digits>",
                    )
                })?;
                verified.check_bound_to_digest(&agent, digest)?;
            }
            if let Some(action) = &action {
                let (resource, verb) = action.rsplit_once(':').ok_or_else(|| {
                    CliError::usage(crate::codes::BAD_ACTION, "--action must be resource:action")
                })?;
                let args: Option<serde_json::Value> = args
                    .as_deref()
                    .map(serde_json::from_str)
                    .transpose()
                    .map_err(|e| {
                        CliError::usage(crate::codes::BAD_ARGS, format!("--args is not JSON: {e}"))
                    })?;
                let mut request = agentiam::token::ScopeRequest::new(resource, verb);
                if let Some(a) = &args {
                    request = request.with_args(a);
                }
                verified
                    .scopes()
                    .check(&request)
                    .map_err(|d| CliError::refusal(d.code(), &d))?;
            }
            let c = verified.claims();
            let human = format!(
                "valid: sub={} scope=\"{}\" exp={} kid={} alg={}",
                c.sub,
                c.scope,
                c.exp,
                verified.kid(),
                verified.alg().jws_name()
            );
            out.result(
                &json!({"valid": true, "kid": verified.kid(), "alg": verified.alg().jws_name(), "claims": c}),
                &human,
            );
            Ok(())
        }
    }
}
