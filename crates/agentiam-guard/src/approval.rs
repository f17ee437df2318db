//! Confirmation gates: approval requests, signed single-use approvals, approver keys, and the
//! channels that carry a request to a human and the approval back.
//!
//! # Threat model
//!
//! The agent is the adversary here: it may try to satisfy a confirmation gate itself.
//! So an [`Approval`] is an Ed25519 signature by an approver key over the SHA-256 of the exact
//! call (tool, canonical arguments, principal chain, task, a fresh nonce and an expiry), the
//! service it is for (the guard's audience) and everything the approver is shown about it
//! (risk, reason code, policies, taint sources, anomaly findings):
//!
//! - it verifies only for that call on that service: other arguments, another tool, another
//!   principal, another task or another service give another hash (`guard.confirmation_invalid`);
//! - it verifies only for what the human saw: the guard recomputes risk, reason, policies, taint
//!   and anomaly from its own state when the approval comes back, so a request relabelled
//!   (a tainted irreversible call shown as "low") never yields an approval the guard accepts;
//! - numbers in the arguments must have an exact RFC 8785 form (a double): an approval over
//!   `1234567890123456789` would also approve its neighbours, so such a call is refused
//!   (`guard.arguments_invalid`; send large identifiers as strings);
//! - it is single-use: the nonce is consumed by the [`NonceStore`] the first time it is accepted;
//! - it expires, and its lifetime is capped by the guard;
//! - approver keys are registered with the guard and are never agent keys: a key that is the
//!   calling agent's proof-of-possession key is refused at decision time, and the builder refuses
//!   approver keys that are also token-signing keys;
//! - the guard reads approvals only from [`crate::GuardRequest::approval`], never from the tool's
//!   arguments, so an agent that writes `"confirm": true` or a whole approval into the arguments
//!   changes only the arguments (and with them the hash).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use agentiam_identity::{Algorithm, PublicKey, SigningKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::GuardError;
use crate::request::{Principal, Risk};

/// Version tag inside every approval hash and prefix of every approval signature.
pub const APPROVAL_CONTEXT: &str = "agentiam-approval/2";

/// Longest approval lifetime the guard accepts by default (seconds).
pub const DEFAULT_MAX_APPROVAL_TTL_SECS: i64 = 900;

/// What a human is asked to approve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    /// Hex SHA-256 over the canonical call description; what the approver signs.
    pub digest: String,
    /// The tool.
    pub tool: String,
    /// The tool's risk level.
    pub risk: Risk,
    /// The arguments, for the approver to read.
    pub arguments: Value,
    /// The principal, then each actor, oldest first.
    pub chain: Vec<String>,
    /// The task, if any.
    pub task: Option<String>,
    /// Fresh per request; makes each approval single-use.
    pub nonce: String,
    /// Until when an approval may be used (seconds since the epoch).
    pub expires_at: i64,
    /// Reason code (`guard.confirmation_required` or `guard.tainted_context`).
    pub code: String,
    /// The policies that asked for confirmation.
    pub policies: Vec<String>,
    /// What the behaviour check found unusual, for the approver to weigh (signed over).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anomaly: Option<crate::Anomaly>,
    /// The service (token audience) the guard that asked stands for (signed over).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Where the session's taint came from, sorted (signed over; empty when untainted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taint_sources: Vec<String>,
    /// The task's declared intent and which arguments of this call it leaves free (signed over;
    /// absent when the credential declares none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<crate::IntentCheck>,
}

/// Everything an approval signs: the call, the service, and what the approver is shown.
#[derive(Clone, Copy, Serialize)]
pub(crate) struct HashedCall<'a> {
    pub(crate) anomaly: Option<&'a crate::Anomaly>,
    pub(crate) args: &'a Value,
    pub(crate) aud: Option<&'a str>,
    pub(crate) chain: &'a [String],
    pub(crate) code: &'a str,
    pub(crate) exp: i64,
    pub(crate) nonce: &'a str,
    pub(crate) policies: &'a [String],
    pub(crate) risk: Risk,
    pub(crate) taint: &'a [String],
    pub(crate) task: Option<&'a str>,
    pub(crate) tool: &'a str,
    pub(crate) v: &'static str,
    /// Absent (not `null`) without an intent, so the digests of other calls stay as they were.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) intent: Option<&'a crate::IntentCheck>,
}

/// The session's taint sources as an approval shows and signs them: sorted, once each.
pub(crate) fn shown_taint(sources: &[String]) -> Vec<String> {
    let mut out = sources.to_vec();
    out.sort();
    out.dedup();
    out
}

impl ApprovalRequest {
    /// The digest of what this request shows (tool, arguments, chain, task, nonce, expiry,
    /// service, risk, reason, policies, taint sources, anomaly and intent).
    /// [`Approval::sign`] signs only a request whose `digest` equals it.
    pub fn computed_digest(&self) -> Result<String, GuardError> {
        digest_of(&self.hashed()).map_err(GuardError::ApprovalMalformed)
    }

    fn hashed(&self) -> HashedCall<'_> {
        HashedCall {
            anomaly: self.anomaly.as_ref(),
            args: &self.arguments,
            aud: self.audience.as_deref(),
            chain: &self.chain,
            code: &self.code,
            exp: self.expires_at,
            nonce: &self.nonce,
            policies: &self.policies,
            risk: self.risk,
            taint: &self.taint_sources,
            task: self.task.as_deref(),
            tool: &self.tool,
            v: APPROVAL_CONTEXT,
            intent: self.intent.as_ref(),
        }
    }
}

/// Refuses a number whose RFC 8785 form (a double) is not exactly its literal, so a digest
/// never stands for two different calls.
fn check_exact_numbers(value: &Value, depth: usize) -> Result<(), String> {
    if depth > 64 {
        return Err("arguments nest deeper than 64".into());
    }
    match value {
        Value::Number(n) => {
            let exact = agentiam_token::ExactNumber::from_json(n).map_err(|e| e.to_string())?;
            let double = n
                .as_f64()
                .filter(|f| f.is_finite())
                .and_then(|f| agentiam_token::ExactNumber::parse(&format!("{f:e}")).ok());
            if double.as_ref() != Some(&exact) {
                return Err(format!(
                    "number {exact} has no exact canonical (RFC 8785) form, so an approval could not tell it from its neighbours; send it as a string"
                ));
            }
            Ok(())
        }
        Value::Array(items) => items
            .iter()
            .try_for_each(|v| check_exact_numbers(v, depth + 1)),
        Value::Object(map) => map
            .values()
            .try_for_each(|v| check_exact_numbers(v, depth + 1)),
        _ => Ok(()),
    }
}

/// What identifies the call itself: the first of the two hashes an approval signs.
#[derive(Serialize)]
struct CallPart<'a> {
    args: &'a Value,
    aud: Option<&'a str>,
    chain: &'a [String],
    exp: i64,
    nonce: &'a str,
    task: Option<&'a str>,
    tool: &'a str,
    v: &'static str,
}

/// What the approver is shown about the call, with the call's own hash: the digest signed.
#[derive(Serialize)]
struct ShownPart<'a> {
    anomaly: Option<&'a crate::Anomaly>,
    call: &'a str,
    code: &'a str,
    policies: &'a [String],
    risk: Risk,
    taint: &'a [String],
    v: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    intent: Option<&'a crate::IntentCheck>,
}

fn sha256_jcs(value: &impl Serialize) -> Result<String, String> {
    let bytes = serde_json_canonicalizer::to_vec(value).map_err(|e| e.to_string())?;
    Ok(hex(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        &bytes,
    )
    .as_ref()))
}

/// The hash of the call alone (tool, arguments, chain, task, service, nonce, expiry).
pub(crate) fn call_digest_of(call: &HashedCall<'_>) -> Result<String, String> {
    check_exact_numbers(call.args, 0)?;
    sha256_jcs(&CallPart {
        args: call.args,
        aud: call.aud,
        chain: call.chain,
        exp: call.exp,
        nonce: call.nonce,
        task: call.task,
        tool: call.tool,
        v: call.v,
    })
}

/// The digest an approval signs: the call's hash and everything the approver is shown.
pub(crate) fn digest_of(call: &HashedCall<'_>) -> Result<String, String> {
    let call_digest = call_digest_of(call)?;
    sha256_jcs(&ShownPart {
        anomaly: call.anomaly,
        call: &call_digest,
        code: call.code,
        policies: call.policies,
        risk: call.risk,
        taint: call.taint,
        v: call.v,
        intent: call.intent,
    })
}

fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

fn signed_message(digest: &str) -> Vec<u8> {
    let mut msg = Vec::with_capacity(APPROVAL_CONTEXT.len() + 1 + digest.len());
    msg.extend_from_slice(APPROVAL_CONTEXT.as_bytes());
    msg.push(b'\n');
    msg.extend_from_slice(digest.as_bytes());
    msg
}

/// A human's signed, single-use, time-limited approval of one call.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// The [`ApprovalRequest::digest`] approved.
    pub digest: String,
    /// The request's nonce.
    pub nonce: String,
    /// The request's expiry.
    pub expires_at: i64,
    /// The approver key's `kid`.
    pub approver: String,
    /// Base64url Ed25519 signature over `agentiam-approval/2\n<digest>`.
    pub signature: String,
    /// The hash of the call alone (the first part of the digest), so a session can tell which
    /// call an approval is for before presenting it. Not signed on its own: the digest covers it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub call: String,
}

impl fmt::Debug for Approval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Approval")
            .field("digest", &self.digest)
            .field("approver", &self.approver)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Most bytes of an approval accepted from JSON.
pub const MAX_APPROVAL_BYTES: usize = 1024;

impl Approval {
    /// Signs `request` with an approver's Ed25519 key.
    ///
    /// The digest is recomputed from what the request shows (tool, arguments, chain, task,
    /// nonce, expiry) first: a request whose `digest` names another call is refused
    /// (`guard.confirmation_invalid`), so a human never signs something other than what they read.
    pub fn sign(request: &ApprovalRequest, approver: &SigningKey) -> Result<Self, GuardError> {
        if approver.public_key().alg() != Algorithm::EdDSA {
            return Err(GuardError::ApproverKey(
                "approvals are Ed25519 signatures".into(),
            ));
        }
        let shown = request.computed_digest()?;
        if shown != request.digest {
            return Err(GuardError::ApprovalMalformed(
                "the request's digest does not match its tool, arguments, chain, task, nonce and \
                 expiry: refusing to sign a call other than the one shown"
                    .into(),
            ));
        }
        let sig = approver
            .sign(&signed_message(&request.digest))
            .map_err(|e| GuardError::ApproverKey(e.to_string()))?;
        Ok(Self {
            digest: request.digest.clone(),
            nonce: request.nonce.clone(),
            expires_at: request.expires_at,
            approver: approver.kid().to_owned(),
            signature: URL_SAFE_NO_PAD.encode(sig),
            call: call_digest_of(&request.hashed()).map_err(GuardError::ApprovalMalformed)?,
        })
    }

    /// Parses an approval from JSON, refusing oversized input before parsing.
    pub fn from_json(text: &str) -> Result<Self, GuardError> {
        if text.len() > MAX_APPROVAL_BYTES {
            return Err(GuardError::ApprovalMalformed(format!(
                "{} bytes, at most {MAX_APPROVAL_BYTES}",
                text.len()
            )));
        }
        serde_json::from_str(text).map_err(|e| GuardError::ApprovalMalformed(e.to_string()))
    }
}

/// The keys allowed to approve, by `kid`. Ed25519 only.
#[derive(Debug, Clone, Default)]
pub struct ApproverKeys {
    keys: HashMap<String, (String, PublicKey)>,
}

impl ApproverKeys {
    /// No approvers: every confirmation gate stays closed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a human approver's public key under a display name.
    pub fn add(mut self, name: impl Into<String>, key: PublicKey) -> Result<Self, GuardError> {
        if key.alg() != Algorithm::EdDSA {
            return Err(GuardError::ApproverKey(format!(
                "{} is not an Ed25519 key",
                key.kid()
            )));
        }
        self.keys.insert(key.kid().to_owned(), (name.into(), key));
        Ok(self)
    }

    /// The approver's name for a `kid`.
    pub fn name(&self, kid: &str) -> Option<&str> {
        self.keys.get(kid).map(|(n, _)| n.as_str())
    }

    pub(crate) fn get(&self, kid: &str) -> Option<&PublicKey> {
        self.keys.get(kid).map(|(_, k)| k)
    }

    /// Every registered `kid`.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Number of approvers.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// No approvers registered.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Why an approval was refused (all are `guard.confirmation_invalid`).
/// `call` is the guard's own description of the call now (its `nonce` and `exp` are ignored and
/// taken from the approval).
pub(crate) fn check_approval(
    approval: &Approval,
    approvers: &ApproverKeys,
    principal: &Principal,
    call: &HashedCall<'_>,
    now: i64,
    max_ttl: i64,
) -> Result<(), String> {
    let key = screen_approval(approval, approvers, principal, now, max_ttl)?;
    let digest = digest_of(&HashedCall {
        nonce: &approval.nonce,
        exp: approval.expires_at,
        ..*call
    })?;
    if aws_lc_rs::constant_time::verify_slices_are_equal(
        digest.as_bytes(),
        approval.digest.as_bytes(),
    )
    .is_err()
    {
        return Err(
            "approval is for a different call or was shown differently (tool, arguments, principal, task, expiry, service, risk, reason, policies, taint or anomaly differ)"
                .into(),
        );
    }
    verify_signature(approval, key)
}

/// The checks that need no call: a registered approver that is not the calling agent, an
/// unexpired approval within the guard's lifetime cap, a well-formed nonce. Returns the
/// approver's key.
fn screen_approval<'k>(
    approval: &Approval,
    approvers: &'k ApproverKeys,
    principal: &Principal,
    now: i64,
    max_ttl: i64,
) -> Result<&'k PublicKey, String> {
    let Some(key) = approvers.get(&approval.approver) else {
        return Err("approval is signed by a key that is not a registered approver".into());
    };
    if principal.key_thumbprint() == Some(approval.approver.as_str())
        || principal.key_thumbprint() == Some(key.thumbprint().as_str())
    {
        return Err("the calling agent's own key may not approve its calls".into());
    }
    if approval.expires_at < now {
        return Err("approval has expired".into());
    }
    if approval.expires_at.saturating_sub(now) > max_ttl {
        return Err(format!(
            "approval lives longer than the {max_ttl} s the guard allows"
        ));
    }
    if approval.nonce.is_empty() || approval.nonce.len() > 64 {
        return Err("approval nonce is malformed".into());
    }
    Ok(key)
}

/// Whether `approval` was signed for this call (tool, arguments, principal chain, task and
/// service, with the approval's own nonce and expiry), by its call digest; constant time.
/// What the approver was shown is checked when the call presents it ([`check_approval`]).
pub(crate) fn approval_is_for(approval: &Approval, call: &HashedCall<'_>) -> Result<bool, String> {
    let digest = call_digest_of(&HashedCall {
        nonce: &approval.nonce,
        exp: approval.expires_at,
        ..*call
    })?;
    Ok(aws_lc_rs::constant_time::verify_slices_are_equal(
        digest.as_bytes(),
        approval.call.as_bytes(),
    )
    .is_ok())
}

fn verify_signature(approval: &Approval, key: &PublicKey) -> Result<(), String> {
    let Ok(sig) = URL_SAFE_NO_PAD.decode(approval.signature.as_bytes()) else {
        return Err("approval signature is not base64url".into());
    };
    if !key.verify(&signed_message(&approval.digest), &sig) {
        return Err("approval signature does not verify".into());
    }
    Ok(())
}

/// Everything [`check_approval`] checks except the call: what a session can check when it is
/// handed an approval, before any call presents it (all refusals are `guard.confirmation_invalid`).
pub(crate) fn check_approval_alone(
    approval: &Approval,
    approvers: &ApproverKeys,
    principal: &Principal,
    now: i64,
    max_ttl: i64,
) -> Result<(), String> {
    let key = screen_approval(approval, approvers, principal, now, max_ttl)?;
    verify_signature(approval, key)
}

/// Remembers used approval nonces so each approval is accepted once.
pub trait NonceStore: Send + Sync + fmt::Debug {
    /// Records `nonce` as used until `expires_at`. `Ok(true)` on first use, `Ok(false)` if it
    /// was used before; `Err` if the store cannot answer (the guard then denies).
    fn consume(&self, nonce: &str, expires_at: i64, now: i64) -> Result<bool, String>;
}

/// An in-process [`NonceStore`], bounded: when full of unexpired nonces it refuses (fail closed).
#[derive(Debug)]
pub struct InMemoryNonceStore {
    used: Mutex<HashMap<String, i64>>,
    capacity: usize,
}

impl InMemoryNonceStore {
    /// Holds up to `capacity` unexpired nonces.
    pub fn new(capacity: usize) -> Self {
        Self {
            used: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }
}

impl Default for InMemoryNonceStore {
    fn default() -> Self {
        Self::new(100_000)
    }
}

impl NonceStore for InMemoryNonceStore {
    fn consume(&self, nonce: &str, expires_at: i64, now: i64) -> Result<bool, String> {
        let mut used = self
            .used
            .lock()
            .map_err(|_| "nonce store poisoned".to_owned())?;
        if used.contains_key(nonce) {
            return Ok(false);
        }
        if used.len() >= self.capacity {
            used.retain(|_, exp| *exp >= now);
            if used.len() >= self.capacity {
                return Err("nonce store is full".into());
            }
        }
        used.insert(nonce.to_owned(), expires_at);
        Ok(true)
    }
}

/// A human's answer through an approval channel.
#[derive(Debug, Clone, PartialEq)]
pub enum ApprovalResponse {
    /// Approved, with the signature. The guard still verifies it.
    Approved(Approval),
    /// Refused.
    Denied {
        /// Why, in the approver's words.
        reason: String,
    },
    /// No answer in time; the call does not proceed.
    TimedOut,
}

/// Carries an approval request to a human and waits for the answer (blocking).
pub trait ApprovalChannel: Send + Sync + fmt::Debug {
    /// Asks for approval.
    fn request_approval(&self, request: &ApprovalRequest) -> ApprovalResponse;
}

/// A boxed future answering an approval request.
pub type ApprovalFuture = Pin<Box<dyn Future<Output = ApprovalResponse> + Send>>;

/// Carries an approval request to a human and awaits the answer.
pub trait AsyncApprovalChannel: Send + Sync + fmt::Debug {
    /// Asks for approval.
    fn request_approval(&self, request: ApprovalRequest) -> ApprovalFuture;
}

/// A synchronous approval channel from a closure (a CLI prompt, a test, a pager integration).
pub struct CallbackApprovals<F>(pub F);

impl<F> fmt::Debug for CallbackApprovals<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CallbackApprovals")
    }
}

impl<F> ApprovalChannel for CallbackApprovals<F>
where
    F: Fn(&ApprovalRequest) -> ApprovalResponse + Send + Sync,
{
    fn request_approval(&self, request: &ApprovalRequest) -> ApprovalResponse {
        (self.0)(request)
    }
}

/// One request waiting in an [`ApprovalQueue`] for a human.
#[derive(Debug)]
pub struct PendingApproval {
    /// What is asked.
    pub request: ApprovalRequest,
    reply: futures_channel::oneshot::Sender<ApprovalResponse>,
}

impl PendingApproval {
    /// Answers the request. Returns false if the caller stopped waiting.
    pub fn answer(self, response: ApprovalResponse) -> bool {
        self.reply.send(response).is_ok()
    }
}

/// An async approval channel: requests go into a queue an approver UI reads
/// ([`ApprovalInbox`]); the guarded call awaits the answer. Runtime-agnostic.
#[derive(Debug, Clone)]
pub struct ApprovalQueue {
    tx: futures_channel::mpsc::UnboundedSender<PendingApproval>,
}

/// The approver's side of an [`ApprovalQueue`].
#[derive(Debug)]
pub struct ApprovalInbox {
    rx: futures_channel::mpsc::UnboundedReceiver<PendingApproval>,
}

impl ApprovalQueue {
    /// A queue and its inbox.
    pub fn new() -> (Self, ApprovalInbox) {
        let (tx, rx) = futures_channel::mpsc::unbounded();
        (Self { tx }, ApprovalInbox { rx })
    }
}

impl ApprovalInbox {
    /// The next waiting request, if one is queued now.
    pub fn try_next(&mut self) -> Option<PendingApproval> {
        self.rx.try_recv().ok()
    }

    /// Waits for the next request; `None` once every [`ApprovalQueue`] is dropped.
    pub async fn next(&mut self) -> Option<PendingApproval> {
        use futures_core::Stream as _;
        std::future::poll_fn(|cx| Pin::new(&mut self.rx).poll_next(cx)).await
    }
}

impl AsyncApprovalChannel for ApprovalQueue {
    fn request_approval(&self, request: ApprovalRequest) -> ApprovalFuture {
        let (reply, answer) = futures_channel::oneshot::channel();
        let sent = self.tx.unbounded_send(PendingApproval { request, reply });
        Box::pin(async move {
            if sent.is_err() {
                return ApprovalResponse::TimedOut;
            }
            // A dropped request (approver UI gone) is a refusal, never an approval.
            answer.await.unwrap_or(ApprovalResponse::TimedOut)
        })
    }
}

pub(crate) fn new_nonce(entropy: &dyn agentiam_token::Entropy) -> Result<String, String> {
    let mut buf = [0u8; 16];
    entropy.fill(&mut buf).map_err(|e| e.to_string())?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

impl agentiam_codes::ReasonCode for ApprovalRequest {
    /// Why a human is asked (`guard.confirmation_required`, `guard.tainted_context`, ...).
    fn code(&self) -> &str {
        &self.code
    }
}
