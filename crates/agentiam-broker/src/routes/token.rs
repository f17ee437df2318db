//! `POST /oauth2/token`: client credentials with `private_key_jwt` (RFC 7523) plus attestation
//! evidence for an agent's first token, and token exchange (RFC 8693) for a sub-agent.

use agentiam_delegation::{ExchangeRequest, Exchanger};
use agentiam_identity::{AgentConfiguration, AgentIdentity, ModelRef, RuntimeDescriptor};
use agentiam_telemetry::{AgentRef, AuditEvent, Decision};
use agentiam_token::{
    ClientAssertion, DpopRequest, IssuedToken, ScopeSet, TokenError, TokenRequest,
    UnverifiedClientAssertion,
};
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::Broker;
use crate::auth::{ClientCredentials, authenticate_client, dpop_header, use_dpop_proof};
use crate::oauth_error::{OAuthError, form_error};
use crate::records::{GRANT_CLIENT_CREDENTIALS, GRANT_TOKEN_EXCHANGE, parse_id};
use crate::store::AgentRecord;

pub(super) fn routes() -> Router<Broker> {
    Router::new().route("/oauth2/token", post(token))
}

/// RFC 8693 token type of our access tokens.
const TOKEN_TYPE_ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";
const TOKEN_TYPE_JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
/// Largest attestation evidence accepted (bytes of JSON).
pub const MAX_ATTESTATION_BYTES: usize = 48 * 1024;

/// The token request's parameters. Unknown parameters are ignored (RFC 6749 section 3.2);
/// a repeated one is refused by the form parser.
#[derive(Debug, Default, Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
    scope: Option<String>,
    audience: Option<String>,
    /// RFC 8707, accepted as the audience when `audience` is absent.
    resource: Option<String>,
    /// The task this token is for (agentiam extension).
    task_id: Option<String>,
    /// What the task is for, in words (agentiam extension).
    task_purpose: Option<String>,
    /// `true`: the token's scopes are the task's declared intent, what the user asked for,
    /// fixed before the agent reads anything untrusted (agentiam extension; see
    /// `agentiam_token::IntentClaim`).
    task_intent: Option<String>,
    /// The attestation evidence, JSON (agentiam extension): `{"model", "configuration", "runtime"}`.
    agent_attestation: Option<String>,
    subject_token: Option<String>,
    subject_token_type: Option<String>,
    requested_token_type: Option<String>,
    /// A DPoP proof by the key a DPoP-bound `subject_token` is bound to, over it (`ath`), for
    /// this request (agentiam extension; the `DPoP` header binds the new token).
    subject_token_dpop: Option<String>,
}

/// What an agent sends to prove what it runs: the model, its system prompt and tool manifest,
/// and its runtime. The broker recomputes the composite digest from them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AttestationEvidence {
    model: ModelRef,
    configuration: AgentConfiguration,
    #[serde(default)]
    runtime: Option<RuntimeDescriptor>,
}

/// The injection filter that scans attested tool manifests, built once.
fn injection_filter() -> &'static agentiam_filter::InjectionFilter {
    static FILTER: std::sync::OnceLock<agentiam_filter::InjectionFilter> =
        std::sync::OnceLock::new();
    FILTER.get_or_init(agentiam_filter::InjectionFilter::new)
}

fn invalid_request(description: impl Into<String>) -> OAuthError {
    OAuthError::bad_request(description)
}

/// How a token error from issuing or exchanging reads as an OAuth error.
fn grant_error(e: &TokenError) -> OAuthError {
    let (status, error) = match e {
        TokenError::InvalidScope { .. }
        | TokenError::ScopeNotPermitted(_)
        | TokenError::ScopeWidened(_) => (StatusCode::BAD_REQUEST, "invalid_scope"),
        TokenError::InvalidRequest(_) | TokenError::LifetimeTooLong { .. } => {
            (StatusCode::BAD_REQUEST, "invalid_request")
        }
        TokenError::RevocationUnavailable(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable")
        }
        TokenError::Signing(_) => (StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
        _ => (StatusCode::BAD_REQUEST, "invalid_grant"),
    };
    OAuthError::new(status, error, e.code(), e.to_string())
}

/// How a failed token exchange reads as an OAuth error (RFC 8693 section 2.2.2): a subject
/// token that is invalid or unacceptable is `invalid_request`, an audience it does not cover
/// `invalid_target`; scopes, availability and signing as for any grant.
fn exchange_error(e: &TokenError) -> OAuthError {
    match e {
        TokenError::WrongAudience(_) => OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_target",
            e.code(),
            e.to_string(),
        ),
        TokenError::InvalidScope { .. }
        | TokenError::ScopeNotPermitted(_)
        | TokenError::ScopeWidened(_)
        | TokenError::RevocationUnavailable(_)
        | TokenError::Signing(_) => grant_error(e),
        _ => OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            e.code(),
            e.to_string(),
        ),
    }
}

/// The client that authenticated, its registration, and the identity its evidence proves.
struct Authenticated {
    record: AgentRecord,
    identity: AgentIdentity,
    /// The verified client assertion, with any task it names.
    assertion: ClientAssertion,
}

/// The client credentials in a token request's form.
fn credentials(form: &TokenForm) -> ClientCredentials<'_> {
    ClientCredentials {
        client_id: form.client_id.as_deref(),
        assertion_type: form.client_assertion_type.as_deref(),
        assertion: form.client_assertion.as_deref(),
    }
}

/// RFC 7523 client authentication, then the attestation evidence.
fn authenticate(
    broker: &Broker,
    headers: &HeaderMap,
    form: &TokenForm,
) -> Result<Authenticated, OAuthError> {
    let (record, assertion) = authenticate_client(broker, headers, credentials(form))?;
    // The evidence comes in the form, or signed in the client assertion (for stock
    // clients that send no extra form parameters); both at once must agree.
    let signed = assertion.agent_attestation().map(ToString::to_string);
    let evidence = match (form.agent_attestation.as_deref(), signed.as_deref()) {
        (Some(form), Some(signed))
            if serde_json::from_str::<serde_json::Value>(form).ok()
                != serde_json::from_str::<serde_json::Value>(signed).ok() =>
        {
            return Err(invalid_request(
                "agent_attestation differs between the form and the client assertion",
            ));
        }
        (Some(form), _) => Some(form),
        (None, signed) => signed,
    };
    let identity = attest(&record, evidence)?;
    Ok(Authenticated {
        record,
        identity,
        assertion,
    })
}

/// Builds the agent's composite identity from its evidence and checks it against the
/// registration. The digest pin itself is enforced again by the issuer.
fn attest(record: &AgentRecord, evidence: Option<&str>) -> Result<AgentIdentity, OAuthError> {
    let attestation_failed = |why: String| {
        OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            agentiam_identity::codes::ATTESTATION_FAILED,
            why,
        )
    };
    let evidence = evidence.ok_or_else(|| {
        attestation_failed(format!(
            "agent_attestation is required (attestors: {})",
            record.attestors.join(", ")
        ))
    })?;
    if evidence.len() > MAX_ATTESTATION_BYTES {
        return Err(attestation_failed(format!(
            "agent_attestation is over {MAX_ATTESTATION_BYTES} bytes"
        )));
    }
    let evidence: AttestationEvidence = serde_json::from_str(evidence)
        .map_err(|e| attestation_failed(format!("agent_attestation: {e}")))?;
    // A tool whose description instructs the model is refused before any token exists,
    // even when its digest was registered (the registration may predate the finding).
    let poisoned = injection_filter().scan_configuration(&evidence.configuration);
    if !poisoned.is_empty() {
        let names: Vec<String> = poisoned
            .iter()
            .map(|(tool, scan)| format!("{tool} (score {:.2})", scan.score))
            .collect();
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            agentiam_guard::codes::TOOL_POISONING,
            format!(
                "tool descriptions carry instructions to the model: {}",
                names.join(", ")
            ),
        ));
    }
    let id = parse_id(&record.spiffe_id)?;
    let identity = AgentIdentity::new(
        id,
        evidence.model,
        &evidence.configuration,
        evidence.runtime.unwrap_or_default(),
    )
    .map_err(|e| attestation_failed(e.to_string()))?;
    if !record.allowed_digests.is_empty()
        && !record
            .allowed_digests
            .iter()
            .any(|d| *d == identity.composite_digest().to_string())
    {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            agentiam_token::codes::IDENTITY_MISMATCH,
            format!(
                "composite identity {} is not registered for {}: a changed model, prompt, \
                 tool or runtime is a different agent",
                identity.composite_digest(),
                record.spiffe_id
            ),
        ));
    }
    Ok(identity)
}

/// The key a token request's DPoP proof binds the new token to, if it has a proof.
fn dpop_jkt(broker: &Broker, headers: &HeaderMap) -> Result<Option<String>, OAuthError> {
    let Some(proof) = dpop_header(headers)? else {
        return Ok(None);
    };
    let endpoint = broker.token_endpoint();
    let verified = use_dpop_proof(broker, proof, "POST", &endpoint, None)?;
    Ok(Some(verified.jkt().to_owned()))
}

fn audit_token(
    broker: &Broker,
    kind: &str,
    agent: Option<&AgentIdentity>,
    client: &str,
    outcome: Result<&IssuedToken, &OAuthError>,
) -> Result<(), OAuthError> {
    let decision = match outcome {
        Ok(_) => Decision::allow(),
        Err(e) => Decision::deny(e.code.clone()),
    };
    let mut event = AuditEvent::new(
        kind,
        AgentRef {
            spiffe_id: client.to_owned(),
            composite_digest: agent.map(|a| a.composite_digest().to_string()),
        },
        broker.now_ms(),
        decision,
    );
    if let Ok(issued) = outcome {
        let c = &issued.claims;
        event.token_jti.clone_from(&c.jti);
        event.task_id = c.task.as_ref().map(|t| t.id.clone());
        event.on_behalf_of = (c.sub != client).then(|| c.sub.clone());
        event.delegation_chain = c.dlg.iter().map(|h| h.sub.clone()).collect();
        event.data_accessed = vec![format!("scope:{}", c.scope)];
    }
    broker.audit(event)
}

/// The scopes a token request asks for: required, since a task gets what it needs and
/// nothing by default (`rather` says what it would otherwise get).
fn asked_scopes(form: &TokenForm, rather: &str) -> Result<ScopeSet, OAuthError> {
    let scope = form
        .scope
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            OAuthError::new(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                crate::codes::BAD_REQUEST,
                format!("scope is required: ask for what this task needs, {rather}"),
            )
        })?;
    ScopeSet::parse(scope).map_err(|e| grant_error(&e))
}

fn audience(form: &TokenForm) -> Result<String, OAuthError> {
    form.audience
        .clone()
        .or_else(|| form.resource.clone())
        .filter(|a| !a.is_empty())
        .ok_or_else(|| {
            invalid_request("audience (or resource) is required: name the service the token is for")
        })
}

fn token_response(issued: &IssuedToken, now: i64, exchange: bool) -> Response {
    let c = &issued.claims;
    let bound = c.cnf.as_ref().is_some_and(|c| c.jkt.is_some());
    let mut body = json!({
        "access_token": issued.token,
        "token_type": if bound { "DPoP" } else { "Bearer" },
        "expires_in": c.exp.saturating_sub(now).max(0),
        "scope": c.scope.to_string(),
    });
    if exchange && let Some(map) = body.as_object_mut() {
        map.insert("issued_token_type".into(), TOKEN_TYPE_ACCESS.into());
    }
    let mut response = (StatusCode::OK, Json(body)).into_response();
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

async fn token(
    State(broker): State<Broker>,
    headers: HeaderMap,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Result<Response, OAuthError> {
    let Form(form) = form.map_err(form_error)?;
    let exchange = match form.grant_type.as_deref() {
        Some(GRANT_CLIENT_CREDENTIALS) => false,
        Some(GRANT_TOKEN_EXCHANGE) => true,
        Some(other) => {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                crate::codes::UNSUPPORTED_GRANT_TYPE,
                format!(
                    "grant type {:?} is not supported: use {GRANT_CLIENT_CREDENTIALS} or \
                     {GRANT_TOKEN_EXCHANGE}",
                    other.chars().take(80).collect::<String>()
                ),
            ));
        }
        None => return Err(invalid_request("grant_type is missing")),
    };
    let kind = if exchange {
        "token_exchanged"
    } else {
        "token_issued"
    };
    // A refused request is audited under the client it claimed, marked as not verified.
    let claimed = form
        .client_assertion
        .as_deref()
        .and_then(|a| UnverifiedClientAssertion::parse(a).ok())
        .map_or_else(
            || "unauthenticated".to_owned(),
            |a| {
                format!(
                    "unverified:{}",
                    a.client_id().chars().take(256).collect::<String>()
                )
            },
        );
    let client = match authenticate(&broker, &headers, &form) {
        Ok(client) => client,
        Err(e) => {
            audit_token(&broker, kind, None, &claimed, Err(&e))?;
            return Err(e);
        }
    };
    let person_issuer = form
        .subject_token
        .as_deref()
        .and_then(crate::people::unverified_issuer)
        .filter(|iss| exchange && broker.people().is_some_and(|p| p.trusts(iss)));
    let outcome = if let (Some(_), Some(people)) = (person_issuer, broker.people()) {
        // A person's token from a trusted OpenID provider: the agent acts for them.
        match people
            .verify(
                form.subject_token.as_deref().unwrap_or_default(),
                &client.record.spiffe_id,
                broker.now(),
            )
            .await
        {
            Ok(person) => exchange_for_person(&broker, &form, &headers, &client, person),
            Err(e) => Err(e),
        }
    } else if exchange {
        exchange_agent_token(&broker, &form, &headers, &client)
    } else {
        client_credentials(&broker, &form, &headers, &client)
    };
    audit_token(
        &broker,
        kind,
        Some(&client.identity),
        &client.record.spiffe_id,
        outcome.as_ref(),
    )?;
    let issued = outcome?;
    Ok(token_response(&issued, broker.now(), exchange))
}

fn client_credentials(
    broker: &Broker,
    form: &TokenForm,
    headers: &HeaderMap,
    client: &Authenticated,
) -> Result<IssuedToken, OAuthError> {
    let scopes = asked_scopes(form, "not the agent's maximum")?;
    issue_for_task(broker, form, headers, client, scopes, None)
}

/// Issues a token for the task the request names (form or client assertion), to its
/// audience, bound to its DPoP key if it has a proof, for `person` when an agent acts for one.
fn issue_for_task(
    broker: &Broker,
    form: &TokenForm,
    headers: &HeaderMap,
    client: &Authenticated,
    scopes: ScopeSet,
    person: Option<agentiam_token::PersonClaim>,
) -> Result<IssuedToken, OAuthError> {
    let task = task_of(form, client)?;
    let purpose = form
        .task_purpose
        .as_deref()
        .or(client.assertion.task_purpose())
        .unwrap_or_default();
    let mut request = TokenRequest::new(&client.identity, audience(form)?, scopes, task, purpose);
    request.person = person;
    request.declare_intent = declares_intent(form)?;
    if let Some(jkt) = dpop_jkt(broker, headers)? {
        request = request.bind_dpop(jkt);
    }
    broker.issuer().issue(&request).map_err(|e| grant_error(&e))
}

/// RFC 8693 with a person's token (verified by the caller) as the subject: a token whose
/// `sub` is the person and `act` the agent, within both what the person's grants allow and
/// the agent's registration, for one task.
fn exchange_for_person(
    broker: &Broker,
    form: &TokenForm,
    headers: &HeaderMap,
    client: &Authenticated,
    person: crate::people::Person,
) -> Result<IssuedToken, OAuthError> {
    match form.subject_token_type.as_deref() {
        Some(TOKEN_TYPE_ACCESS | TOKEN_TYPE_JWT | crate::people::TOKEN_TYPE_ID_TOKEN) => {}
        _ => {
            return Err(invalid_request(format!(
                "subject_token_type must be {} or {TOKEN_TYPE_ACCESS}",
                crate::people::TOKEN_TYPE_ID_TOKEN
            )));
        }
    }
    let scopes = asked_scopes(form, "not all the person may do")?;
    if let Some(outside) = scopes.first_outside(&person.ceiling) {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            agentiam_token::codes::SCOPE_NOT_PERMITTED,
            format!("{outside} is not granted to this person"),
        ));
    }
    issue_for_task(broker, form, headers, client, scopes, Some(person.claim))
}

/// The task a token is for: the form's `task_id`, or the client assertion's; both must agree.
fn task_of<'f>(form: &'f TokenForm, client: &'f Authenticated) -> Result<&'f str, OAuthError> {
    let signed_task = client.assertion.task_id();
    let task = form
        .task_id
        .as_deref()
        .or(signed_task)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            invalid_request(
                "task_id is required (in the form or the client assertion): tokens are \
                 issued for one task",
            )
        })?;
    if form
        .task_id
        .as_deref()
        .zip(signed_task)
        .is_some_and(|(a, b)| a != b)
    {
        return Err(invalid_request(
            "task_id differs between the form and the client assertion",
        ));
    }
    Ok(task)
}

/// Whether the request declares the task's intent (`task_intent=true`); any other value is refused.
fn declares_intent(form: &TokenForm) -> Result<bool, OAuthError> {
    match form.task_intent.as_deref() {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(invalid_request(format!(
            "task_intent must be true or false, not {:?}",
            agentiam_identity::clip_for_message(other)
        ))),
    }
}

/// RFC 8693 with one of this broker's tokens as the subject: a sub-agent's token, narrowed.
fn exchange_agent_token(
    broker: &Broker,
    form: &TokenForm,
    headers: &HeaderMap,
    client: &Authenticated,
) -> Result<IssuedToken, OAuthError> {
    let subject = form
        .subject_token
        .as_deref()
        .ok_or_else(|| invalid_request("subject_token is missing"))?;
    match form.subject_token_type.as_deref() {
        Some(TOKEN_TYPE_ACCESS | TOKEN_TYPE_JWT) => {}
        Some(crate::people::TOKEN_TYPE_ID_TOKEN) => {
            // An ID token that reached this path is not from a trusted provider.
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                agentiam_token::codes::WRONG_ISSUER,
                "the ID token's issuer is not a trusted OpenID provider",
            ));
        }
        _ => {
            return Err(invalid_request(format!(
                "subject_token_type must be {TOKEN_TYPE_ACCESS}"
            )));
        }
    }
    if form
        .requested_token_type
        .as_deref()
        .is_some_and(|t| t != TOKEN_TYPE_ACCESS && t != TOKEN_TYPE_JWT)
    {
        return Err(invalid_request(format!(
            "requested_token_type must be {TOKEN_TYPE_ACCESS}"
        )));
    }
    let mut request = ExchangeRequest::new(subject, &client.identity, audience(form)?);
    request.declare_intent = declares_intent(form)?;
    if let Some(scope) = form.scope.as_deref().filter(|s| !s.trim().is_empty()) {
        request = request.with_scopes(ScopeSet::parse(scope).map_err(|e| grant_error(&e))?);
    }
    request.dpop_jkt = dpop_jkt(broker, headers)?;
    let endpoint = broker.token_endpoint();
    let mut exchanger = Exchanger::new(broker.issuer().clone())
        .with_clock(broker.clock().clone())
        .with_revocation(std::sync::Arc::new(broker.revocations()));
    if let Some(proof) = form.subject_token_dpop.as_deref() {
        // A DPoP-bound parent proves possession of its key with a second proof (agentiam
        // extension): by the parent's key, for POST to the token endpoint, with `ath` over
        // the subject token. Used once here (store-wide); the exchanger then checks it is
        // by the key the parent is bound to, with a verifier of its own (a fresh replay
        // cache, since this one has just recorded the proof).
        use_dpop_proof(broker, proof, "POST", &endpoint, Some(subject))?;
        request.subject_proof = Some((
            proof,
            DpopRequest {
                method: "POST",
                url: &endpoint,
            },
        ));
        exchanger = exchanger.with_dpop(agentiam_token::DpopVerifier::new(broker.clock().clone()));
    }
    let issued = exchanger
        .exchange(&request)
        .map_err(|e| exchange_error(&e))?;
    // The sub-agent's own registration bounds what it may hold, whatever its parent holds.
    let max = ScopeSet::parse(&client.record.max_scopes).map_err(|e| grant_error(&e))?;
    if let Some(outside) = issued.claims.scope.first_outside(&max) {
        return Err(grant_error(&TokenError::ScopeNotPermitted(
            outside.to_string(),
        )));
    }
    Ok(issued)
}
