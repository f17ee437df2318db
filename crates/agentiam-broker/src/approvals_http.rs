//! The approvals API.
//!
//! - `POST /approvals` (the agent's bearer token): post the guard's request; 201 with its id.
//! - `GET /approvals/{id}?wait=SECONDS` (the same agent, or the administrator): its status,
//!   waiting up to 60 s for an answer (long poll); once approved, the signed approval.
//! - `GET /approvals/keys`: the approver key's JWKS, for guards' `ApproverKeys`.
//! - `GET /admin/approvals?status=pending`, `POST /admin/approvals/{id}/approve|deny`
//!   (the administrator's bearer token, naming the approver).

use std::time::Duration;

use agentiam_guard::{Approval, DEFAULT_MAX_APPROVAL_TTL_SECS, Principal};
use agentiam_identity::Jwks;
use agentiam_telemetry::{AgentRef, AuditEvent, Decision, Outcome, RedactionPolicy};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::approvals::{ApprovalRecord, ApprovalStatus, ApprovalSubmission, RequesterContext};
use crate::http::{Broker, OAuthError, refused_body};

/// Longest a `GET /approvals/{id}` waits for an answer.
pub const MAX_WAIT_SECS: u64 = 60;
/// Most approval requests listed at once.
const MAX_LISTED: usize = 200;
/// Most requests one agent may have waiting at once (a flood would bury the approvers).
pub const MAX_PENDING_PER_AGENT: usize = 20;

pub(crate) fn routes() -> Router<Broker> {
    Router::new()
        .route("/approvals", post(submit))
        .route("/approvals/keys", get(approver_keys))
        .route("/approvals/{id}", get(status))
        .route("/admin/approvals", get(list))
        .route("/admin/approvals/{id}/approve", post(approve))
        .route("/admin/approvals/{id}/deny", post(deny))
}

fn forbidden(code: &str, description: impl Into<String>) -> OAuthError {
    OAuthError::new(StatusCode::FORBIDDEN, "access_denied", code, description)
}

fn not_found() -> OAuthError {
    OAuthError::new(
        StatusCode::NOT_FOUND,
        "invalid_request",
        "broker.not_found",
        "no such approval request",
    )
}

impl Broker {
    /// The agent whose token this request carries, verified (any audience, revocation checked;
    /// a DPoP-bound token with its proof for this method and path).
    fn agent_principal(
        &self,
        headers: &HeaderMap,
        method: &str,
        path: &str,
    ) -> Result<(Principal, Value), OAuthError> {
        let verified = self.verify_presented(headers, method, path)?;
        let claims = serde_json::to_value(verified.claims()).unwrap_or(Value::Null);
        Ok((Principal::from_token(&verified), claims))
    }

    /// Approves or denies a pending request as `approver`, signing an approval when approved.
    /// A request already answered or expired is refused (409) and nothing changes.
    pub(crate) fn settle(
        &self,
        id: &str,
        approve: bool,
        approver: &str,
        reason: Option<String>,
    ) -> Result<ApprovalRecord, OAuthError> {
        let mut record = self.store().approval(id)?.ok_or_else(not_found)?;
        let now = self.now();
        match record.status_at(now) {
            ApprovalStatus::Pending => {}
            ApprovalStatus::Expired => {
                return Err(OAuthError::new(
                    StatusCode::CONFLICT,
                    "invalid_request",
                    "broker.approval_expired",
                    "the request expired before it was answered",
                ));
            }
            settled => {
                return Err(OAuthError::new(
                    StatusCode::CONFLICT,
                    "invalid_request",
                    "broker.approval_settled",
                    format!("the request was already {}", settled.as_str()),
                ));
            }
        }
        if approve {
            let approval = Approval::sign(&record.request, &self.approver()).map_err(|e| {
                OAuthError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    e.code(),
                    e.to_string(),
                )
            })?;
            record.approval = Some(approval);
            record.status = ApprovalStatus::Approved;
        } else {
            record.status = ApprovalStatus::Denied;
        }
        record.settled_at = Some(now);
        record.settled_by = Some(approver.to_owned());
        record.reason = reason
            .map(|r| r.chars().take(1000).collect::<String>())
            .filter(|r| !r.trim().is_empty());
        let decision = if approve {
            Decision::allow()
        } else {
            Decision::deny(agentiam_guard::codes::CONFIRMATION_DENIED)
        };
        let kind = if approve {
            "approval_granted"
        } else {
            "approval_denied"
        };
        let mut event = self.approval_event(kind, &record, decision);
        event.on_behalf_of = Some(format!("approver:{approver}"));
        self.audit(event)?;
        if !self.store().settle_approval(&record)? {
            return Err(OAuthError::new(
                StatusCode::CONFLICT,
                "invalid_request",
                "broker.approval_settled",
                "the request was answered by someone else first",
            ));
        }
        self.settled().send_modify(|n| *n = n.wrapping_add(1));
        Ok(record)
    }

    /// Records a pending request that has passed its expiry as expired (once, even across
    /// replicas), with an audit event; returns the record as it now stands.
    pub(crate) fn expire_if_due(
        &self,
        record: ApprovalRecord,
    ) -> Result<ApprovalRecord, OAuthError> {
        let now = self.now();
        if record.status != ApprovalStatus::Pending
            || record.status_at(now) != ApprovalStatus::Expired
        {
            return Ok(record);
        }
        let mut expired = record.clone();
        expired.status = ApprovalStatus::Expired;
        expired.settled_at = Some(now);
        expired.reason = Some("no approver answered before it expired".into());
        if self.store().settle_approval(&expired)? {
            self.audit(self.approval_event(
                "approval_expired",
                &expired,
                Decision::deny("broker.approval_expired"),
            ))?;
            self.settled().send_modify(|n| *n = n.wrapping_add(1));
            return Ok(expired);
        }
        // Another replica recorded it (or someone answered just in time): read what stands.
        Ok(self.store().approval(&record.id)?.unwrap_or(expired))
    }

    pub(crate) fn approval_event(
        &self,
        kind: &str,
        record: &ApprovalRecord,
        decision: Decision,
    ) -> AuditEvent {
        let r = &record.requester;
        let mut event = AuditEvent::new(
            kind,
            AgentRef {
                spiffe_id: r.agent.clone(),
                composite_digest: r.composite_digest.clone(),
            },
            self.now_ms(),
            decision,
        );
        event.approval_ref = Some(record.id.clone());
        event.delegation_chain.clone_from(&r.chain);
        event.task_id.clone_from(&r.task);
        event.token_jti.clone_from(&r.token_jti);
        event.tool = RedactionPolicy::default()
            .tool_call(&record.request.tool, None, &record.request.arguments)
            .ok();
        event
    }
}

async fn submit(
    State(broker): State<Broker>,
    headers: HeaderMap,
    uri: Uri,
    body: Result<Json<ApprovalSubmission>, JsonRejection>,
) -> Result<Response, OAuthError> {
    let (principal, claims) = broker.agent_principal(&headers, "POST", uri.path())?;
    let Json(submission) = body.map_err(|e| refused_body(e.status(), "approval request", &e))?;
    let request = &submission.request;
    let invalid = |why: &str| {
        OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            agentiam_guard::codes::CONFIRMATION_INVALID,
            why.to_owned(),
        )
    };
    match request.computed_digest() {
        Ok(d) if d == request.digest => {}
        _ => {
            return Err(invalid(
                "the digest does not match the tool, arguments, chain, task, nonce and expiry",
            ));
        }
    }
    if request.chain != principal.chain() || request.task.as_deref() != principal.task() {
        return Err(forbidden(
            "broker.chain_mismatch",
            "an agent may ask approval only for its own calls: the request's chain and task \
             are not its token's",
        ));
    }
    let now = broker.now();
    if request.expires_at <= now || request.expires_at > now + DEFAULT_MAX_APPROVAL_TTL_SECS {
        return Err(invalid(
            "expires_at must be in the future and within 15 minutes",
        ));
    }
    if request.nonce.is_empty() || request.nonce.len() > 64 {
        return Err(invalid("the nonce must be 1 to 64 characters"));
    }
    if submission.findings.len() > 64
        || submission
            .findings
            .iter()
            .any(|f| f.kind.len() > 64 || f.detail.len() > 2000)
    {
        return Err(invalid("at most 64 findings, each short"));
    }
    let waiting = broker
        .store()
        .approvals(Some(ApprovalStatus::Pending), 10_000)?
        .iter()
        .filter(|r| {
            r.requester.agent == principal.presenter()
                && r.status_at(now) == ApprovalStatus::Pending
        })
        .count();
    if waiting >= MAX_PENDING_PER_AGENT {
        return Err(OAuthError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "slow_down",
            "broker.too_many_pending",
            format!("this agent already has {waiting} requests waiting for an approver"),
        ));
    }
    if !broker.store().use_once(
        &format!("approval_nonce\n{}", request.nonce),
        request.expires_at,
        now,
    )? {
        return Err(OAuthError::new(
            StatusCode::CONFLICT,
            "invalid_request",
            "broker.approval_duplicate",
            "a request with this nonce was already posted",
        ));
    }
    let task = claims.get("task");
    let model = claims
        .pointer("/agent/model")
        .and_then(|m| m.as_object())
        .map(|m| {
            let s = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or_default();
            format!("{}/{}@{}", s("provider"), s("name"), s("version"))
        });
    let record = ApprovalRecord {
        id: random_id()?,
        status: ApprovalStatus::Pending,
        request: submission.request.clone(),
        findings: submission.findings,
        requester: RequesterContext {
            agent: principal.presenter().to_owned(),
            principal: principal.subject().to_owned(),
            model,
            composite_digest: principal.agent_digest().map(str::to_owned),
            chain: principal.chain().to_vec(),
            task: principal.task().map(str::to_owned),
            purpose: task
                .and_then(|t| t.get("purpose"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            token_jti: claims.get("jti").and_then(Value::as_str).map(str::to_owned),
            person_provider: claims
                .pointer("/person/iss")
                .and_then(Value::as_str)
                .map(str::to_owned),
        },
        created_at: now,
        settled_at: None,
        settled_by: None,
        reason: None,
        approval: None,
    };
    let mut event = broker.approval_event(
        "approval_requested",
        &record,
        Decision {
            outcome: Outcome::Escalate,
            code: Some(record.request.code.clone()),
            policy_id: record.request.policies.first().cloned(),
            policy_version: None,
        },
    );
    event.anomaly = None;
    broker.audit(event)?;
    broker.store().put_approval(&record)?;
    let location = format!("/approvals/{}", record.id);
    let mut response = (
        StatusCode::CREATED,
        Json(json!({"id": record.id, "status": "pending", "poll": location})),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

pub(crate) fn random_id() -> Result<String, OAuthError> {
    random_token(18)
}

/// `bytes` random bytes, base64url: identifiers and bearer secrets.
pub(crate) fn random_token(bytes: usize) -> Result<String, OAuthError> {
    use base64::Engine as _;
    let mut buf = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut buf).map_err(|_| {
        OAuthError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "broker.entropy_unavailable",
            "no randomness",
        )
    })?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf))
}

#[derive(Debug, Deserialize)]
struct WaitQuery {
    wait: Option<u64>,
}

async fn status(
    State(broker): State<Broker>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    query: Result<Query<WaitQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, OAuthError> {
    let Query(query) = query.map_err(|e| OAuthError::bad_request(e.to_string()))?;
    let as_admin = broker.admin(&headers).is_ok();
    let presenter = if as_admin {
        None
    } else {
        Some(
            broker
                .agent_principal(&headers, "GET", uri.path())?
                .0
                .presenter()
                .to_owned(),
        )
    };
    let wait = Duration::from_secs(query.wait.unwrap_or(0).min(MAX_WAIT_SECS));
    let deadline = tokio::time::Instant::now() + wait;
    let mut changes = broker.settled().subscribe();
    loop {
        let record = broker.store().approval(&id)?.ok_or_else(not_found)?;
        if let Some(p) = &presenter
            && *p != record.requester.agent
        {
            // Another agent's request does not exist, as far as this agent can tell.
            return Err(not_found());
        }
        let record = broker.expire_if_due(record)?;
        let now = broker.now();
        if record.status_at(now) != ApprovalStatus::Pending
            || tokio::time::Instant::now() >= deadline
        {
            let mut response = Json(record.answer(now)).into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            return Ok(response);
        }
        // Woken by a settlement in this process; the timer covers other replicas.
        let tick = tokio::time::Instant::now() + Duration::from_secs(1);
        tokio::select! {
            _ = changes.changed() => {}
            () = tokio::time::sleep_until(tick.min(deadline)) => {}
        }
    }
}

async fn approver_keys(State(broker): State<Broker>) -> Response {
    let jwks = Jwks::from_keys([broker.approver_public_key().clone()]);
    (
        [(header::CONTENT_TYPE, "application/jwk-set+json")],
        jwks.to_json(),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    status: Option<String>,
}

async fn list(
    State(broker): State<Broker>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, OAuthError> {
    broker.admin(&headers)?;
    let Query(query) = query.map_err(|e| OAuthError::bad_request(e.to_string()))?;
    let status = match query.status.as_deref() {
        None | Some("all") => None,
        Some(s) => Some(
            ApprovalStatus::parse(s)
                .ok_or_else(|| OAuthError::bad_request(format!("unknown status {s:?}")))?,
        ),
    };
    Ok(Json(json!({ "approvals": broker.pending_or(status)? })))
}

impl Broker {
    /// Requests in `status` as of now (a pending request past its expiry is listed as expired).
    pub(crate) fn pending_or(
        &self,
        status: Option<ApprovalStatus>,
    ) -> Result<Vec<ApprovalRecord>, OAuthError> {
        let now = self.now();
        let stored = match status {
            Some(ApprovalStatus::Expired) => Some(ApprovalStatus::Pending),
            other => other,
        };
        let mut records = Vec::new();
        for r in self.store().approvals(stored, MAX_LISTED)? {
            let mut r = self.expire_if_due(r)?;
            r.status = r.status_at(now);
            records.push(r);
        }
        records.retain(|r| status.is_none_or(|s| r.status == s));
        Ok(records)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settlement {
    /// The approver's name (who decided).
    approver: String,
    #[serde(default)]
    reason: Option<String>,
}

async fn approve(
    State(broker): State<Broker>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<Settlement>, JsonRejection>,
) -> Result<Json<Value>, OAuthError> {
    settle_as_admin(&broker, &headers, &id, true, body)
}

async fn deny(
    State(broker): State<Broker>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<Settlement>, JsonRejection>,
) -> Result<Json<Value>, OAuthError> {
    settle_as_admin(&broker, &headers, &id, false, body)
}

fn settle_as_admin(
    broker: &Broker,
    headers: &HeaderMap,
    id: &str,
    approve: bool,
    body: Result<Json<Settlement>, JsonRejection>,
) -> Result<Json<Value>, OAuthError> {
    broker.admin(headers)?;
    let Json(s) = body.map_err(|e| refused_body(e.status(), "settlement", &e))?;
    if s.approver.trim().is_empty() || s.approver.len() > 128 {
        return Err(OAuthError::bad_request("approver must name who decided"));
    }
    let record = broker.settle(id, approve, &s.approver, s.reason)?;
    Ok(Json(record.answer(broker.now())))
}
