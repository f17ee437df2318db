//! The approvals API.
//!
//! - `POST /approvals` (the agent's bearer token): post the guard's request; 201 with its id.
//! - `GET /approvals/{id}?wait=SECONDS` (the same agent, or the administrator): its status,
//!   waiting up to 60 s for an answer (long poll); once approved, the signed approval.
//! - `GET /approvals/keys`: the approver key's JWKS, for guards' `ApproverKeys`.
//! - `GET /admin/approvals?status=pending`, `POST /admin/approvals/{id}/approve|deny`
//!   (the administrator's bearer token, naming the approver).

use std::time::Duration;

use agentiam_broker_client::MAX_WAIT_SECS;
use agentiam_guard::Principal;
use agentiam_guard::approval::DEFAULT_MAX_APPROVAL_TTL_SECS;
use agentiam_identity::Jwks;
use agentiam_telemetry::{Decision, Outcome};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Broker;
use crate::approval_queue::{approval_event, expire_if_due, not_found, pending_or, settle};
use crate::approvals::{ApprovalRecord, ApprovalStatus, ApprovalSubmission, RequesterContext};
use crate::auth::{require_admin, verify_presented};
use crate::oauth_error::{OAuthError, refused_body};
use crate::secrets::random_id;

/// Most requests one agent may have waiting at once (a flood would bury the approvers).
pub const MAX_PENDING_PER_AGENT: usize = 20;

pub(super) fn routes() -> Router<Broker> {
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

/// The agent whose token this request carries, verified (any audience, revocation checked;
/// a DPoP-bound token with its proof for this method and path).
fn agent_principal(
    broker: &Broker,
    headers: &HeaderMap,
    method: &str,
    path: &str,
) -> Result<(Principal, Value), OAuthError> {
    let verified = verify_presented(broker, headers, method, path)?;
    let claims = serde_json::to_value(verified.claims()).unwrap_or(Value::Null);
    Ok((Principal::from_token(&verified), claims))
}

async fn submit(
    State(broker): State<Broker>,
    headers: HeaderMap,
    uri: Uri,
    body: Result<Json<ApprovalSubmission>, JsonRejection>,
) -> Result<Response, OAuthError> {
    let (principal, claims) = agent_principal(&broker, &headers, "POST", uri.path())?;
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
            crate::codes::CHAIN_MISMATCH,
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
            crate::codes::TOO_MANY_PENDING,
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
            crate::codes::APPROVAL_DUPLICATE,
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
    let mut event = approval_event(
        &broker,
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
    let as_admin = require_admin(&broker, &headers).is_ok();
    let presenter = if as_admin {
        None
    } else {
        Some(
            agent_principal(&broker, &headers, "GET", uri.path())?
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
        let record = expire_if_due(&broker, record)?;
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
    require_admin(&broker, &headers)?;
    let Query(query) = query.map_err(|e| OAuthError::bad_request(e.to_string()))?;
    let status = match query.status.as_deref() {
        None | Some("all") => None,
        Some(s) => Some(
            ApprovalStatus::parse(s)
                .ok_or_else(|| OAuthError::bad_request(format!("unknown status {s:?}")))?,
        ),
    };
    Ok(Json(json!({ "approvals": pending_or(&broker, status)? })))
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
    require_admin(broker, headers)?;
    let Json(s) = body.map_err(|e| refused_body(e.status(), "settlement", &e))?;
    if s.approver.trim().is_empty() || s.approver.len() > 128 {
        return Err(OAuthError::bad_request("approver must name who decided"));
    }
    let record = settle(broker, id, approve, &s.approver, s.reason)?;
    Ok(Json(record.answer(broker.now())))
}
