//! `POST /oauth2/introspect` (RFC 7662) and `POST /oauth2/revoke` (RFC 7009).
//!
//! Both are about the token, not about who presents it: a sender-constrained token (DPoP or
//! certificate-bound) is introspected and revoked without its proof (RFC 9449 section 6.2).
//! Two kinds of caller:
//! - the administrator (`Authorization: Bearer <admin secret>`): every token;
//! - an agent authenticated with its client assertion (`private_key_jwt`, as at the token
//!   endpoint): the tokens it holds and the tokens delegated from them. Introspecting another
//!   agent's token answers `{"active": false}`; revoking one is refused (`unauthorized_client`).
//!
//! Revoking a token revokes every token exchanged from it (their `dlg` chain names it).

use agentiam_telemetry::{AgentRef, AuditEvent, Decision};
use agentiam_token::{Claims, Revocation};
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Broker;
use crate::auth::{
    ClientCredentials, authenticate_client, refuse_basic, require_admin, verify_issued,
};
use crate::oauth_error::{OAuthError, form_error};

pub(super) fn routes() -> Router<Broker> {
    Router::new()
        .route("/oauth2/introspect", post(introspect))
        .route("/oauth2/revoke", post(revoke))
}

/// The form of both endpoints: the token, and the client's credentials when an agent calls.
#[derive(Debug, Deserialize)]
struct TokenForm {
    token: String,
    #[allow(
        dead_code,
        reason = "RFC 7662/7009 allow it; every token here is an access token"
    )]
    token_type_hint: Option<String>,
    client_id: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
}

/// Who is asking.
enum Caller {
    Administrator,
    /// An agent, by SPIFFE ID.
    Agent(String),
}

impl Caller {
    /// Whether this caller may learn about, and revoke, a token with these claims: the
    /// administrator always; an agent for a token it holds (as subject or presenter) or one
    /// delegated from its tokens (its ID in the `dlg` chain).
    fn concerns(&self, claims: &Claims) -> bool {
        match self {
            Self::Administrator => true,
            Self::Agent(id) => {
                claims.sub == *id
                    || claims.presenter() == id
                    || claims.dlg.iter().any(|hop| hop.sub == *id)
            }
        }
    }

    fn name(&self) -> &str {
        match self {
            Self::Administrator => "administrator",
            Self::Agent(id) => id,
        }
    }
}

/// An agent with a client assertion in the form, else the administrator's bearer token.
fn identify_caller(
    broker: &Broker,
    headers: &HeaderMap,
    form: &TokenForm,
) -> Result<Caller, OAuthError> {
    refuse_basic(headers)?;
    if form.client_assertion.is_some() || form.client_assertion_type.is_some() {
        let credentials = ClientCredentials {
            client_id: form.client_id.as_deref(),
            assertion_type: form.client_assertion_type.as_deref(),
            assertion: form.client_assertion.as_deref(),
        };
        let (record, _) = authenticate_client(broker, headers, credentials)?;
        return Ok(Caller::Agent(record.spiffe_id));
    }
    require_admin(broker, headers).map_err(|_| {
        OAuthError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            crate::codes::UNAUTHORIZED,
            "authenticate with a client assertion (private_key_jwt), or the administrator's \
             bearer token",
        )
    })?;
    Ok(Caller::Administrator)
}

async fn introspect(
    State(broker): State<Broker>,
    headers: HeaderMap,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Result<Json<Value>, OAuthError> {
    let Form(form) = form.map_err(form_error)?;
    let caller = identify_caller(&broker, &headers, &form)?;
    let inactive = || Json(json!({"active": false}));
    let Ok(token) = verify_issued(&broker, &form.token, true) else {
        // RFC 7662: an inactive token says nothing more.
        return Ok(inactive());
    };
    let claims = token.claims();
    if !caller.concerns(claims) {
        // RFC 7662 section 2.2: a caller not entitled to know about a token learns nothing.
        return Ok(inactive());
    }
    let bound = claims.cnf.as_ref().is_some_and(|c| c.jkt.is_some());
    let mut body =
        serde_json::to_value(claims).map_err(|e| OAuthError::bad_request(e.to_string()))?;
    if let Value::Object(map) = &mut body {
        map.insert("active".into(), Value::Bool(true));
        // RFC 9449 section 6.2: a DPoP-bound token reports its type and `cnf.jkt` (in the claims).
        let kind = if bound { "DPoP" } else { "Bearer" };
        map.insert("token_type".into(), Value::String(kind.into()));
    }
    Ok(Json(body))
}

async fn revoke(
    State(broker): State<Broker>,
    headers: HeaderMap,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Result<Response, OAuthError> {
    let Form(form) = form.map_err(form_error)?;
    let caller = identify_caller(&broker, &headers, &form)?;
    // RFC 7009: a token that is invalid, expired or not ours needs no revoking; answer 200.
    // One already revoked is revoked again (harmless), so verification skips revocation.
    let Ok(token) = verify_issued(&broker, &form.token, false) else {
        return Ok(StatusCode::OK.into_response());
    };
    let claims = token.claims();
    if !caller.concerns(claims) {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            crate::codes::NOT_YOUR_TOKEN,
            "a client may revoke only its own tokens and those delegated from them",
        ));
    }
    let Some(jti) = &claims.jti else {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_token_type",
            crate::codes::BAD_REQUEST,
            "the token has no jti to revoke by",
        ));
    };
    let mut event = AuditEvent::new(
        "token_revoked",
        AgentRef {
            spiffe_id: claims.presenter().to_owned(),
            composite_digest: claims.agent.as_ref().map(|a| a.digest.to_string()),
        },
        broker.now_ms(),
        Decision::allow(),
    );
    event.token_jti = Some(jti.clone());
    event.task_id = claims.task.as_ref().map(|t| t.id.clone());
    event.data_accessed = vec![format!("revoked_by:{}", caller.name())];
    broker.audit(event)?;
    broker
        .store()
        .revoke(&Revocation::Token(jti.clone()), claims.exp)?;
    Ok(StatusCode::OK.into_response())
}
