//! The approval requests as the approvals API and the console both work on them: listing, expiring and settling, each step an audit event.

use agentiam_guard::Approval;
use agentiam_telemetry::{AgentRef, AuditEvent, Decision, RedactionPolicy};
use axum::http::StatusCode;

use crate::Broker;
use crate::approvals::{ApprovalRecord, ApprovalStatus};
use crate::oauth_error::OAuthError;

/// Most approval requests listed at once.
const MAX_LISTED: usize = 200;

/// No request with this id (or none this caller may see).
pub(crate) fn not_found() -> OAuthError {
    OAuthError::new(
        StatusCode::NOT_FOUND,
        "invalid_request",
        crate::codes::NOT_FOUND,
        "no such approval request",
    )
}

/// Approves or denies a pending request as `approver`, signing an approval when approved.
/// A request already answered or expired is refused (409) and nothing changes.
pub(crate) fn settle(
    broker: &Broker,
    id: &str,
    approve: bool,
    approver: &str,
    reason: Option<String>,
) -> Result<ApprovalRecord, OAuthError> {
    let mut record = broker.store().approval(id)?.ok_or_else(not_found)?;
    let now = broker.now();
    match record.status_at(now) {
        ApprovalStatus::Pending => {}
        ApprovalStatus::Expired => {
            return Err(OAuthError::new(
                StatusCode::CONFLICT,
                "invalid_request",
                crate::codes::APPROVAL_EXPIRED,
                "the request expired before it was answered",
            ));
        }
        settled => {
            return Err(OAuthError::new(
                StatusCode::CONFLICT,
                "invalid_request",
                crate::codes::APPROVAL_SETTLED,
                format!("the request was already {}", settled.as_str()),
            ));
        }
    }
    if approve {
        let approval = Approval::sign(&record.request, &broker.approver()).map_err(|e| {
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
    let mut event = approval_event(broker, kind, &record, decision);
    event.on_behalf_of = Some(format!("approver:{approver}"));
    broker.audit(event)?;
    if !broker.store().settle_approval(&record)? {
        return Err(OAuthError::new(
            StatusCode::CONFLICT,
            "invalid_request",
            crate::codes::APPROVAL_SETTLED,
            "the request was answered by someone else first",
        ));
    }
    broker.settled().send_modify(|n| *n = n.wrapping_add(1));
    Ok(record)
}

/// Records a pending request that has passed its expiry as expired (once, even across
/// replicas), with an audit event; returns the record as it now stands.
pub(crate) fn expire_if_due(
    broker: &Broker,
    record: ApprovalRecord,
) -> Result<ApprovalRecord, OAuthError> {
    let now = broker.now();
    if record.status != ApprovalStatus::Pending || record.status_at(now) != ApprovalStatus::Expired
    {
        return Ok(record);
    }
    let mut expired = record.clone();
    expired.status = ApprovalStatus::Expired;
    expired.settled_at = Some(now);
    expired.reason = Some("no approver answered before it expired".into());
    if broker.store().settle_approval(&expired)? {
        broker.audit(approval_event(
            broker,
            "approval_expired",
            &expired,
            Decision::deny(crate::codes::APPROVAL_EXPIRED),
        ))?;
        broker.settled().send_modify(|n| *n = n.wrapping_add(1));
        return Ok(expired);
    }
    // Another replica recorded it (or someone answered just in time): read what stands.
    Ok(broker.store().approval(&record.id)?.unwrap_or(expired))
}

/// The audit event of a step in `record`'s life, attributed to the agent that asked.
pub(crate) fn approval_event(
    broker: &Broker,
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
        broker.now_ms(),
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

/// Requests in `status` as of now (a pending request past its expiry is listed as expired).
pub(crate) fn pending_or(
    broker: &Broker,
    status: Option<ApprovalStatus>,
) -> Result<Vec<ApprovalRecord>, OAuthError> {
    let now = broker.now();
    let stored = match status {
        Some(ApprovalStatus::Expired) => Some(ApprovalStatus::Pending),
        other => other,
    };
    let mut records = Vec::new();
    for r in broker.store().approvals(stored, MAX_LISTED)? {
        let mut r = expire_if_due(broker, r)?;
        r.status = r.status_at(now);
        records.push(r);
    }
    records.retain(|r| status.is_none_or(|s| r.status == s));
    Ok(records)
}
