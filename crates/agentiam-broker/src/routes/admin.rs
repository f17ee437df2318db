//! The administrator's agent registry (`POST /admin/agents`, `GET /admin/agents`) and signing-key rotation (`POST /admin/keys/rotate`), each behind the administrator's bearer token.

use agentiam_telemetry::{AgentRef, AuditEvent, Decision};
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::auth::require_admin;
use crate::oauth_error::{OAuthError, refused_body};
use crate::records::{parse_id, registration};
use crate::store::AgentRecord;
use crate::{Broker, BrokerError};

pub(super) fn routes() -> Router<Broker> {
    Router::new()
        .route("/admin/agents", post(register_agent).get(list_agents))
        .route("/admin/keys/rotate", post(rotate_keys))
}

async fn register_agent(
    State(broker): State<Broker>,
    headers: HeaderMap,
    body: Result<Json<AgentRecord>, JsonRejection>,
) -> Result<Response, OAuthError> {
    require_admin(&broker, &headers)?;
    let Json(mut agent) = body.map_err(|e| refused_body(e.status(), "agent registration", &e))?;
    // The administrator replaces the registration whole: a registration access token the agent
    // held (RFC 7592) no longer manages it.
    agent.registration_token_sha256 = None;
    let id = parse_id(&agent.spiffe_id)?;
    let registration = registration(&agent)?;
    let mut event = AuditEvent::new(
        "agent_registered",
        AgentRef {
            spiffe_id: agent.spiffe_id.clone(),
            composite_digest: agent.allowed_digests.first().cloned(),
        },
        broker.now_ms(),
        Decision::allow(),
    );
    event.data_accessed = vec![format!("scope:{}", agent.max_scopes)];
    broker.audit(event)?;
    broker.store().put_agent(&agent)?;
    broker.issuer().register(&id, registration);
    Ok((StatusCode::CREATED, Json(agent)).into_response())
}

async fn list_agents(
    State(broker): State<Broker>,
    headers: HeaderMap,
) -> Result<Json<Value>, OAuthError> {
    require_admin(&broker, &headers)?;
    let agents = broker.store().agents()?;
    Ok(Json(json!({ "agents": agents })))
}

async fn rotate_keys(
    State(broker): State<Broker>,
    headers: HeaderMap,
) -> Result<Json<Value>, OAuthError> {
    require_admin(&broker, &headers)?;
    let rotating = broker.clone();
    let kid = tokio::task::spawn_blocking(move || rotating.rotate_signing_key())
        .await
        .map_err(|e| OAuthError::from(BrokerError::Config(e.to_string())))??;
    Ok(Json(
        json!({"kid": kid, "jwks": serde_json::from_str::<Value>(&broker.jwks().to_json()).unwrap_or(Value::Null)}),
    ))
}
