//! The agentiam guard: one place that decides every tool call and HTTP request an agent makes.
//!
//! A [`Guard`] decides a [`GuardRequest`] (a verified [`Principal`], a registered tool, its JSON
//! arguments and the session) in this order, each step with its own reason code:
//!
//! 1. the credential has not expired since it was verified (`token.expired`);
//! 2. the tool is registered (`guard.unknown_action`), the arguments are an object (`guard.arguments_invalid`)
//!    small enough to examine completely (`guard.input_too_large`: [`arguments::MAX_ARGUMENT_DEPTH`],
//!    [`arguments::MAX_ARGUMENT_VALUES`], [`arguments::MAX_ARGUMENT_BYTES`]);
//! 3. a token scope covers the tool's `resource:action` and its argument constraints
//!    (`guard.scope_missing`, `guard.constraint_violated`);
//! 4. the [`ContentFilter`] hook finds no injection in the arguments (`guard.injection_detected`);
//! 5. the [`BehaviourCheck`] hook does not refuse the call (`guard.anomaly`, `guard.rate_limited`)
//!    and gives an anomaly score;
//! 6. Cedar deployment policy ([`PolicyEngine`]) permits it (`guard.policy_denied`, `guard.policy_error`),
//!    or a confirmation gate asks for a human ([`Decision::NeedsConfirmation`] with
//!    `guard.confirmation_required`, `guard.tainted_context` or, for a call the task's declared
//!    intent leaves an argument of free in a tainted session, `guard.intent_unbound`; see
//!    [`IntentCheck`]);
//! 7. with a presented [`Approval`]: it is a valid, unexpired, unused Ed25519 signature by a
//!    registered approver over this exact call (`guard.confirmation_invalid`).
//!
//! Every decision goes to the [`DecisionSink`]s (the [`AuditSink`] writes the activity log);
//! if a sink cannot take it, an allow becomes `guard.hook_failed`.
//!
//! The [`ToolInterceptor`] wraps the guard for agent frameworks (before/after each tool), and the
//! `tower` feature adds `http::GuardLayer` for Rust services; `mtls` adds a rustls server config
//! that requires SPIFFE client certificates.
//!
//! ```
//! use agentiam_guard::{Approval, ApproverKeys, Decision, Guard, GuardRequest, PolicyEngine, Principal, Risk, ToolSpec};
//! # use agentiam_identity::*;
//! # use agentiam_token::*;
//! # let agent = AgentIdentity::new(parse_spiffe_id("spiffe://example.org/agent/ops").unwrap(), ModelRef::new("p", "m", "1"), &AgentConfiguration::new("You run ops.", vec![]), RuntimeDescriptor::new("process")).unwrap();
//! # let issuer = Issuer::new("https://broker.example", KeySet::new(SigningKey::generate(Algorithm::EdDSA).unwrap()));
//! # let scopes = ScopeSet::parse("db:drop").unwrap();
//! # issuer.register(agent.spiffe_id(), AgentRegistration::new(scopes.clone()));
//! # let issued = issuer.issue(&TokenRequest::new(&agent, "https://api.example", scopes, "task-1", "clean up")).unwrap();
//! # let verifier = Verifier::new(issuer.jwks(), "https://broker.example", "https://api.example");
//! # let token = verifier.verify(&issued.token).unwrap();
//! let human = SigningKey::generate(Algorithm::EdDSA).unwrap();
//! let guard = Guard::builder(PolicyEngine::default_policy().unwrap())
//!     .service("https://api.example")
//!     .tool(ToolSpec::new("drop_table", Risk::Irreversible).with_scope("db", "drop"))
//!     .approvers(ApproverKeys::new().add("alice", human.public_key().clone()).unwrap())
//!     .build()
//!     .unwrap();
//! let principal = Principal::from_token(&token);
//! let args = serde_json::json!({"table": "staging_tmp"});
//! // The default policy puts irreversible tools behind a human.
//! let Decision::NeedsConfirmation(request) = guard.decide(&GuardRequest::new(&principal, "drop_table", &args)) else { panic!() };
//! // A human signs the request (the broker's console does this); the agent retries with the approval.
//! let approval = Approval::sign(&request, &human).unwrap();
//! let call = GuardRequest::new(&principal, "drop_table", &args).with_approval(&approval);
//! assert!(guard.decide(&call).is_allowed());
//! // Single use: the same approval does not work twice.
//! assert_eq!(guard.decide(&call).code(), Some("guard.confirmation_invalid"));
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod approval;
pub mod arguments;
pub mod audit;
pub mod behaviour;
pub mod codes;
pub mod config;
mod content_filter;
mod credentials;
mod decision;
mod engine;
mod error;
pub mod hooks;
mod intent;
mod interceptor;
mod native_policy;
pub mod policy;
mod request;
mod untrusted_text;

#[cfg(feature = "tower")]
pub mod http;
#[cfg(feature = "mtls")]
pub mod mtls;

// The paved path at the root; the rest in its module (`approval`, `arguments`, `audit`,
// `behaviour`, `config`, `hooks`, `policy`).
pub use approval::{Approval, ApprovalRequest, ApproverKeys};
pub use audit::{AuditSink, DEFAULT_FULL_QUEUE_WAIT};
pub use behaviour::{BaselineSettings, Baselines, Limit, LimitScope, Limits, RoleMap};
pub use config::GuardConfig;
pub use credentials::{Authenticator, Presented, VerifiedPeer};
pub use decision::{Allowance, Anomaly, Decision, Denial};
pub use engine::{DEFAULT_CONFIRMATION_TTL_SECS, Guard, GuardBuilder};
pub use error::GuardError;
pub use hooks::{BehaviourCheck, ContentFilter, DecisionSink};
pub use intent::{IntentCheck, OutboundCheck};
pub use interceptor::{Session, ToolCall, ToolInterceptor};
pub use policy::{DEFAULT_POLICY, PolicyEngine};
pub use request::{
    GuardRequest, HttpRequestInfo, Principal, Risk, SessionContext, SharedPrincipal, ToolSpec,
};
pub use untrusted_text::UntrustedText;
