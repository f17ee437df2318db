//! RFC 7591 dynamic client registration and RFC 7592 client configuration, for agents, as the
//! standard alternative to the administrator's `POST /admin/agents`.
//!
//! - `POST /admin/registration-tokens` (administrator): an initial access token (RFC 7591
//!   section 3) allowing one registration, within a scope ceiling and, optionally, under a
//!   SPIFFE ID prefix; it lives an hour unless told otherwise (at most a day).
//! - `POST /oauth2/register` (`Authorization: Bearer <initial access token>`): the agent's
//!   metadata: `spiffe_id` (agentiam extension; it becomes the `client_id`), `jwks`, `scope`
//!   (the most its tokens may carry), `allowed_digests` and `attestors` (extensions),
//!   `token_endpoint_auth_method` (`private_key_jwt` only), `grant_types` (client credentials,
//!   token exchange). 201 with the client information and a registration access token.
//! - `GET|PUT|DELETE /oauth2/register/{client_id}` (`Authorization: Bearer <registration access
//!   token>`): read, update (never widening its scopes; a new registration access token each
//!   time) or delete the registration (its tokens are revoked).
//!
//! An initial access token is `iat1.<payload>.<mac>`: base64url JSON (`jti`, `exp`,
//! `max_scopes`, `spiffe_id_prefix`) with an HMAC-SHA256 under a key derived from the
//! administrator's secret, so every replica checks it and changing the secret voids them all;
//! its `jti` is used once, in the store, across replicas. A registration access token is 256
//! random bits; the store keeps its SHA-256 only. An agent already registered cannot be taken
//! over by registering its SPIFFE ID again.

use agentiam_identity::SpiffeId;
use agentiam_telemetry::{AgentRef, AuditEvent, Decision};
use agentiam_token::{Revocation, ScopeSet};
use aws_lc_rs::{digest, hmac};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Broker;
use crate::auth::{bearer, require_admin};
use crate::oauth_error::{OAuthError, refused_body};
use crate::records::{GRANT_CLIENT_CREDENTIALS, GRANT_TOKEN_EXCHANGE, parse_id, registration};
use crate::secrets::random_token;
use crate::store::AgentRecord;

/// Default lifetime of an initial access token.
pub const DEFAULT_INITIAL_ACCESS_TOKEN_SECS: i64 = 3600;
/// Longest lifetime of an initial access token.
pub const MAX_INITIAL_ACCESS_TOKEN_SECS: i64 = 86_400;
const IAT_PREFIX: &str = "iat1";
const IAT_MAC_CONTEXT: &[u8] = b"agentiam initial access token\n";

pub(super) fn routes() -> Router<Broker> {
    Router::new()
        .route(
            "/admin/registration-tokens",
            post(issue_initial_access_token),
        )
        .route("/oauth2/register", post(register))
        .route(
            "/oauth2/register/{client_id}",
            get(read).put(update).delete(delete),
        )
}

/// What an initial access token allows.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Allowance {
    jti: String,
    exp: i64,
    max_scopes: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    spiffe_id_prefix: Option<String>,
}

/// The administrator's request for an initial access token.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowanceRequest {
    max_scopes: String,
    #[serde(default)]
    spiffe_id_prefix: Option<String>,
    #[serde(default)]
    ttl_secs: Option<i64>,
}

/// RFC 7591 client metadata as an agent sends it. Members the broker does not know are ignored
/// (RFC 7591 section 2).
#[derive(Debug, Deserialize)]
struct ClientMetadata {
    /// Only on update (RFC 7592 section 2.2): must be the registration's.
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    spiffe_id: Option<String>,
    #[serde(default)]
    jwks: Option<Value>,
    #[serde(default)]
    jwks_uri: Option<String>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    grant_types: Option<Vec<String>>,
    #[serde(default)]
    response_types: Option<Vec<String>>,
    #[serde(default)]
    redirect_uris: Option<Vec<String>>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    allowed_digests: Option<Vec<String>>,
    #[serde(default)]
    attestors: Option<Vec<String>>,
    #[serde(default)]
    software_statement: Option<String>,
}

fn invalid_metadata(code: &str, why: impl Into<String>) -> OAuthError {
    OAuthError::new(
        StatusCode::BAD_REQUEST,
        "invalid_client_metadata",
        code,
        why,
    )
}

fn invalid_token(code: &str, why: impl Into<String>) -> OAuthError {
    OAuthError::new(StatusCode::UNAUTHORIZED, "invalid_token", code, why)
}

fn sha256_hex(text: &str) -> String {
    digest::digest(&digest::SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The key initial access tokens are MACed with: derived from the administrator's secret
/// (its SHA-256), never the secret itself.
fn allowance_key(broker: &Broker) -> hmac::Key {
    let derived = digest::digest(
        &digest::SHA256,
        &[IAT_MAC_CONTEXT, broker.admin_secret_sha256()].concat(),
    );
    hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref())
}

fn seal_allowance(broker: &Broker, allowance: &Allowance) -> Result<String, OAuthError> {
    let payload = URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(allowance).map_err(|e| OAuthError::bad_request(e.to_string()))?);
    let signed = format!("{IAT_PREFIX}.{payload}");
    let tag = hmac::sign(&allowance_key(broker), signed.as_bytes());
    Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref())))
}

/// The allowance an initial access token carries, if it is one this broker issued, unexpired
/// (its single use is taken only when the registration succeeds).
fn open_allowance(broker: &Broker, token: &str) -> Result<Allowance, OAuthError> {
    let refused = || {
        invalid_token(
            crate::codes::INITIAL_ACCESS_TOKEN_INVALID,
            "the initial access token is not one this broker issued",
        )
    };
    let (signed, tag) = token.rsplit_once('.').ok_or_else(refused)?;
    let payload = signed
        .strip_prefix(IAT_PREFIX)
        .and_then(|p| p.strip_prefix('.'))
        .ok_or_else(refused)?;
    let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| refused())?;
    hmac::verify(&allowance_key(broker), signed.as_bytes(), &tag).map_err(|_| refused())?;
    let allowance: Allowance = URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(refused)?;
    if allowance.exp <= broker.now() {
        return Err(invalid_token(
            crate::codes::INITIAL_ACCESS_TOKEN_EXPIRED,
            "the initial access token has expired",
        ));
    }
    Ok(allowance)
}

/// The registration a registration access token manages: 401 for any mismatch, unknown
/// client included (RFC 7592 section 3: nothing is revealed about other clients).
fn managed(
    broker: &Broker,
    headers: &HeaderMap,
    client_id: &str,
) -> Result<AgentRecord, OAuthError> {
    let refused = || {
        invalid_token(
            crate::codes::REGISTRATION_TOKEN_INVALID,
            "the registration access token does not manage this client",
        )
    };
    let presented = bearer(headers).ok_or_else(refused)?;
    let record = broker.store().agent(client_id)?.ok_or_else(refused)?;
    let stored = record
        .registration_token_sha256
        .as_deref()
        .ok_or_else(refused)?;
    aws_lc_rs::constant_time::verify_slices_are_equal(
        sha256_hex(presented).as_bytes(),
        stored.as_bytes(),
    )
    .map_err(|_| refused())?;
    Ok(record)
}

fn audit_registration(broker: &Broker, kind: &str, record: &AgentRecord) -> Result<(), OAuthError> {
    let mut event = AuditEvent::new(
        kind,
        AgentRef {
            spiffe_id: record.spiffe_id.clone(),
            composite_digest: record.allowed_digests.first().cloned(),
        },
        broker.now_ms(),
        Decision::allow(),
    );
    event.data_accessed = vec![
        format!("scope:{}", record.max_scopes),
        "via:dynamic_registration".to_owned(),
    ];
    broker.audit(event)
}

fn registration_client_uri(broker: &Broker, client_id: &str) -> String {
    // Percent-encoded as one path segment (a SPIFFE ID holds `:` and `/`).
    let escaped: String = client_id
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("{}/oauth2/register/{escaped}", broker.base_url())
}

/// RFC 7591 section 3.2.1 / RFC 7592 section 3: the client information response.
fn client_information(
    broker: &Broker,
    record: &AgentRecord,
    token: &str,
    issued_at: i64,
) -> Response {
    let body = json!({
        "client_id": record.spiffe_id,
        "client_id_issued_at": issued_at,
        "registration_access_token": token,
        "registration_client_uri": registration_client_uri(broker, &record.spiffe_id),
        "token_endpoint_auth_method": "private_key_jwt",
        "grant_types": [GRANT_CLIENT_CREDENTIALS, GRANT_TOKEN_EXCHANGE],
        "response_types": [],
        "scope": record.max_scopes,
        "jwks": record.jwks,
        "spiffe_id": record.spiffe_id,
        "allowed_digests": record.allowed_digests,
        "attestors": record.attestors,
    });
    let mut response = Json(body).into_response();
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// Checks the metadata and builds the registration it asks for (the scope ceiling is checked
/// by the caller).
fn record_from(metadata: ClientMetadata) -> Result<(AgentRecord, SpiffeId), OAuthError> {
    if metadata.software_statement.is_some() {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unapproved_software_statement",
            crate::codes::SOFTWARE_STATEMENT_UNSUPPORTED,
            "software statements are not accepted: the initial access token authorises the registration",
        ));
    }
    if metadata
        .redirect_uris
        .as_ref()
        .is_some_and(|r| !r.is_empty())
    {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_redirect_uri",
            crate::codes::INVALID_CLIENT_METADATA,
            "agents have no redirection URIs: the broker has no interactive grant",
        ));
    }
    if metadata
        .response_types
        .as_ref()
        .is_some_and(|r| r.iter().any(|t| t != "none"))
    {
        return Err(invalid_metadata(
            crate::codes::INVALID_CLIENT_METADATA,
            "response_types: the broker has no interactive grant",
        ));
    }
    if metadata
        .token_endpoint_auth_method
        .as_deref()
        .is_some_and(|m| m != "private_key_jwt")
    {
        return Err(invalid_metadata(
            crate::codes::INVALID_CLIENT_METADATA,
            "token_endpoint_auth_method: agents authenticate with private_key_jwt",
        ));
    }
    if let Some(unknown) = metadata
        .grant_types
        .iter()
        .flatten()
        .find(|g| g.as_str() != GRANT_CLIENT_CREDENTIALS && g.as_str() != GRANT_TOKEN_EXCHANGE)
    {
        return Err(invalid_metadata(
            crate::codes::INVALID_CLIENT_METADATA,
            format!(
                "grant_types: {:?} is not supported (client_credentials, token exchange)",
                unknown.chars().take(80).collect::<String>()
            ),
        ));
    }
    if metadata.jwks_uri.is_some() {
        return Err(invalid_metadata(
            crate::codes::INVALID_CLIENT_METADATA,
            "jwks_uri is not supported: send the public keys as jwks",
        ));
    }
    let spiffe_id = metadata.spiffe_id.ok_or_else(|| {
        invalid_metadata(
            crate::codes::INVALID_CLIENT_METADATA,
            "spiffe_id is required: it is the agent's identity and becomes its client_id",
        )
    })?;
    let id = parse_id(&spiffe_id)
        .map_err(|e| invalid_metadata(crate::codes::INVALID_CLIENT_METADATA, e.to_string()))?;
    let scope = metadata
        .scope
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            invalid_metadata(
                crate::codes::INVALID_CLIENT_METADATA,
                "scope is required: the most this agent's tokens may carry",
            )
        })?;
    let jwks = metadata.jwks.ok_or_else(|| {
        invalid_metadata(
            crate::codes::INVALID_CLIENT_METADATA,
            "jwks is required: the keys the agent signs its client assertions with",
        )
    })?;
    let record = AgentRecord {
        spiffe_id,
        max_scopes: scope,
        allowed_digests: metadata.allowed_digests.unwrap_or_default(),
        jwks: Some(jwks),
        attestors: metadata
            .attestors
            .unwrap_or_else(|| vec!["configuration".to_owned()]),
        registration_token_sha256: None,
    };
    // The same checks as the administrator's registrations (keys, attestors, digests, scopes).
    registration(&record)
        .map_err(|e| invalid_metadata(crate::codes::INVALID_CLIENT_METADATA, e.to_string()))?;
    Ok((record, id))
}

fn within(asked: &str, ceiling: &str) -> Result<(), OAuthError> {
    let asked = ScopeSet::parse(asked).map_err(|e| {
        invalid_metadata(crate::codes::INVALID_CLIENT_METADATA, format!("scope: {e}"))
    })?;
    let ceiling = ScopeSet::parse(ceiling).map_err(|e| {
        invalid_metadata(crate::codes::INVALID_CLIENT_METADATA, format!("scope: {e}"))
    })?;
    match asked.first_outside(&ceiling) {
        None => Ok(()),
        Some(outside) => Err(invalid_metadata(
            agentiam_token::codes::SCOPE_NOT_PERMITTED,
            format!("scope {outside} is beyond what this registration may hold"),
        )),
    }
}

async fn issue_initial_access_token(
    State(broker): State<Broker>,
    headers: HeaderMap,
    body: Result<Json<AllowanceRequest>, JsonRejection>,
) -> Result<Response, OAuthError> {
    require_admin(&broker, &headers)?;
    let Json(request) = body.map_err(|e| refused_body(e.status(), "registration token", &e))?;
    ScopeSet::parse(&request.max_scopes)
        .map_err(|e| OAuthError::bad_request(format!("max_scopes: {e}")))?;
    let ttl = request
        .ttl_secs
        .unwrap_or(DEFAULT_INITIAL_ACCESS_TOKEN_SECS);
    if !(1..=MAX_INITIAL_ACCESS_TOKEN_SECS).contains(&ttl) {
        return Err(OAuthError::bad_request(format!(
            "ttl_secs must be between 1 and {MAX_INITIAL_ACCESS_TOKEN_SECS}"
        )));
    }
    let allowance = Allowance {
        jti: random_token(18)?,
        exp: broker.now().saturating_add(ttl),
        max_scopes: request.max_scopes,
        spiffe_id_prefix: request.spiffe_id_prefix,
    };
    let token = seal_allowance(&broker, &allowance)?;
    let mut response = (
        StatusCode::CREATED,
        Json(json!({
            "initial_access_token": token,
            "expires_at": allowance.exp,
            "max_scopes": allowance.max_scopes,
            "spiffe_id_prefix": allowance.spiffe_id_prefix,
            "registration_endpoint": format!("{}/oauth2/register", broker.base_url()),
        })),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

async fn register(
    State(broker): State<Broker>,
    headers: HeaderMap,
    body: Result<Json<ClientMetadata>, JsonRejection>,
) -> Result<Response, OAuthError> {
    let token = bearer(&headers).ok_or_else(|| {
        invalid_token(
            crate::codes::UNAUTHORIZED,
            "registration needs an initial access token from the administrator (RFC 7591 section 3)",
        )
    })?;
    let allowance = open_allowance(&broker, token)?;
    let Json(metadata) = body.map_err(|e| {
        let mut err = refused_body(e.status(), "client metadata", &e);
        if err.status == StatusCode::BAD_REQUEST {
            err = invalid_metadata(crate::codes::INVALID_CLIENT_METADATA, err.description);
        }
        err
    })?;
    let (mut record, id) = record_from(metadata)?;
    within(&record.max_scopes, &allowance.max_scopes)?;
    if let Some(prefix) = &allowance.spiffe_id_prefix
        && !record.spiffe_id.starts_with(prefix.as_str())
    {
        return Err(invalid_metadata(
            crate::codes::INVALID_CLIENT_METADATA,
            format!("spiffe_id must start with {prefix}"),
        ));
    }
    if broker.store().agent(&record.spiffe_id)?.is_some() {
        return Err(invalid_metadata(
            crate::codes::CLIENT_EXISTS,
            "this SPIFFE ID is registered already: manage it with its registration access token",
        ));
    }
    let now = broker.now();
    // Two registrations of one SPIFFE ID racing past the check above: only the first goes on.
    if !broker
        .store()
        .use_once(&format!("registering\n{}", record.spiffe_id), now + 60, now)?
    {
        return Err(invalid_metadata(
            crate::codes::CLIENT_EXISTS,
            "this SPIFFE ID is being registered already",
        ));
    }
    if !broker.store().use_once(
        &format!("initial_access_token\n{}", allowance.jti),
        allowance.exp.saturating_add(60),
        now,
    )? {
        return Err(invalid_token(
            crate::codes::INITIAL_ACCESS_TOKEN_USED,
            "this initial access token was already used",
        ));
    }
    let registration_token = random_token(32)?;
    record.registration_token_sha256 = Some(sha256_hex(&registration_token));
    let registration = registration(&record)?;
    audit_registration(&broker, "agent_registered", &record)?;
    broker.store().put_agent(&record)?;
    broker.issuer().register(&id, registration);
    let mut response = client_information(&broker, &record, &registration_token, now);
    *response.status_mut() = StatusCode::CREATED;
    Ok(response)
}

async fn read(
    State(broker): State<Broker>,
    headers: HeaderMap,
    Path(client_id): Path<String>,
) -> Result<Response, OAuthError> {
    let record = managed(&broker, &headers, &client_id)?;
    // Not rotated on read: the presented token stays the one to use (RFC 7592 section 3).
    let token = bearer(&headers).unwrap_or_default().to_owned();
    Ok(client_information(&broker, &record, &token, broker.now()))
}

async fn update(
    State(broker): State<Broker>,
    headers: HeaderMap,
    Path(client_id): Path<String>,
    body: Result<Json<ClientMetadata>, JsonRejection>,
) -> Result<Response, OAuthError> {
    let current = managed(&broker, &headers, &client_id)?;
    let Json(mut metadata) = body.map_err(|e| {
        let mut err = refused_body(e.status(), "client metadata", &e);
        if err.status == StatusCode::BAD_REQUEST {
            err = invalid_metadata(crate::codes::INVALID_CLIENT_METADATA, err.description);
        }
        err
    })?;
    if metadata.client_id.as_deref() != Some(current.spiffe_id.as_str()) {
        return Err(invalid_metadata(
            crate::codes::INVALID_CLIENT_METADATA,
            "client_id must be this registration's (RFC 7592 section 2.2)",
        ));
    }
    if metadata
        .spiffe_id
        .as_deref()
        .is_some_and(|s| s != current.spiffe_id)
    {
        return Err(invalid_metadata(
            crate::codes::INVALID_CLIENT_METADATA,
            "spiffe_id cannot change: register the new identity instead",
        ));
    }
    metadata.spiffe_id = Some(current.spiffe_id.clone());
    let (mut record, id) = record_from(metadata)?;
    // An update never widens what the agent may hold.
    within(&record.max_scopes, &current.max_scopes)?;
    let registration_token = random_token(32)?;
    record.registration_token_sha256 = Some(sha256_hex(&registration_token));
    let registration = registration(&record)?;
    audit_registration(&broker, "agent_updated", &record)?;
    broker.store().put_agent(&record)?;
    broker.issuer().register(&id, registration);
    Ok(client_information(
        &broker,
        &record,
        &registration_token,
        broker.now(),
    ))
}

async fn delete(
    State(broker): State<Broker>,
    headers: HeaderMap,
    Path(client_id): Path<String>,
) -> Result<Response, OAuthError> {
    let record = managed(&broker, &headers, &client_id)?;
    audit_registration(&broker, "agent_deleted", &record)?;
    // Its tokens go with it: revoked until the longest of them has expired.
    let until = broker.now().saturating_add(broker.issuer().max_ttl());
    broker
        .store()
        .revoke(&Revocation::Agent(record.spiffe_id.clone()), until)?;
    broker.store().delete_agent(&record.spiffe_id)?;
    broker.issuer().unregister(&record.spiffe_id);
    Ok(StatusCode::NO_CONTENT.into_response())
}
