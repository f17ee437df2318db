//! Who is asking: the administrator's bearer token, an agent's own token presented with its DPoP proof, and a client's signed assertion (RFC 7523).
//!
//! Every route authenticates its caller through these functions, so each kind of credential is checked in one place.

use std::sync::Arc;

use agentiam_identity::Jwks;
use agentiam_token::{
    AssertionRules, CLIENT_ASSERTION_TYPE_JWT, ClientAssertion, TokenError,
    UnverifiedClientAssertion, Verifier,
};
use axum::http::{HeaderMap, StatusCode, header};

use crate::Broker;
use crate::oauth_error::{Challenge, OAuthError, invalid_dpop};
use crate::secrets::sha256;
use crate::store::AgentRecord;

/// The bearer token of a request's `Authorization` header, if it has a non-empty one.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|t| !t.is_empty())
}

/// Refuses a request without the administrator's bearer token (constant-time comparison
/// of SHA-256 digests, so neither the secret nor its length leaks through timing).
pub(crate) fn require_admin(broker: &Broker, headers: &HeaderMap) -> Result<(), OAuthError> {
    let presented = bearer(headers).unwrap_or_default();
    let ok = !presented.is_empty()
        && aws_lc_rs::constant_time::verify_slices_are_equal(
            &sha256(presented.as_bytes()),
            broker.admin_secret_sha256(),
        )
        .is_ok();
    if ok {
        Ok(())
    } else {
        Err(OAuthError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            crate::codes::UNAUTHORIZED,
            "this endpoint needs the administrator's bearer token",
        ))
    }
}

/// A verifier of tokens this broker issued, for any audience (introspection and revocation
/// answer for every service; a service itself must always check its own audience).
fn any_audience_verifier(broker: &Broker, check_revocation: bool) -> Verifier {
    let mut verifier = Verifier::new(broker.issuer().jwks(), broker.issuer().issuer(), "")
        .any_audience()
        .with_clock(broker.clock().clone());
    if check_revocation {
        verifier = verifier.with_revocation(Arc::new(broker.revocations()));
    }
    verifier
}

/// Verifies a token this broker issued as the token itself: signature, issuer, expiry and
/// (when asked) revocation, but not who presents it. Introspection (RFC 7662, RFC 9449
/// section 6.2) and revocation (RFC 7009) are about the token, so a sender-constrained
/// token verifies here without its proof; anything that acts on a token's authority must
/// use [`verify_presented`].
pub(crate) fn verify_issued(
    broker: &Broker,
    token: &str,
    check_revocation: bool,
) -> Result<agentiam_token::Token, TokenError> {
    any_audience_verifier(broker, check_revocation).verify_without_pop(token)
}

/// The request's DPoP proof, if it has one. More than one `DPoP` header is refused
/// (RFC 9449 section 4.3), and so is a header that is not text.
pub(crate) fn dpop_header(headers: &HeaderMap) -> Result<Option<&str>, OAuthError> {
    let mut proofs = headers.get_all("dpop").iter();
    let Some(proof) = proofs.next() else {
        return Ok(None);
    };
    if proofs.next().is_some() {
        return Err(invalid_dpop(
            agentiam_token::codes::POP_INVALID,
            "more than one DPoP header: a request carries exactly one proof".into(),
        ));
    }
    proof.to_str().map(Some).map_err(|_| {
        invalid_dpop(
            agentiam_token::codes::POP_INVALID,
            "the DPoP header is not text".into(),
        )
    })
}

/// Verifies a DPoP proof for `method` and `url` (and `access_token`'s hash, when given) and
/// uses it up: the verifier remembers proofs in this process, the store across every replica
/// (kept past the proofs' 60 s acceptance window).
pub(crate) fn use_dpop_proof(
    broker: &Broker,
    proof: &str,
    method: &str,
    url: &str,
    access_token: Option<&str>,
) -> Result<agentiam_token::DpopProof, OAuthError> {
    let request = agentiam_token::DpopRequest { method, url };
    let verified = broker
        .dpop()
        .verify(proof, &request, access_token)
        .map_err(|e| invalid_dpop(e.code(), e.to_string()))?;
    let now = broker.now();
    let once = format!("dpop\n{}\n{}", verified.jkt(), verified.jti());
    if !broker
        .store()
        .use_once(&once, now.saturating_add(120), now)?
    {
        return Err(invalid_dpop(
            agentiam_token::codes::POP_INVALID,
            "this DPoP proof was already used".into(),
        ));
    }
    Ok(verified)
}

/// Verifies the token a request presents on its own authority (the approvals API): a
/// bearer token as `Authorization: Bearer`; a DPoP-bound one as `Authorization: DPoP` with
/// exactly one proof by its key for this method and path (RFC 9449 section 7), used once
/// across replicas. Revocation is checked; a certificate-bound token is refused (the
/// broker does not terminate mTLS).
pub(crate) fn verify_presented(
    broker: &Broker,
    headers: &HeaderMap,
    method: &str,
    path: &str,
) -> Result<agentiam_token::Token, OAuthError> {
    let unauthorized = |code: &str, why: String| {
        OAuthError::new(StatusCode::UNAUTHORIZED, "invalid_token", code, why)
    };
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let (scheme, token) = authorization.split_once(' ').unwrap_or_default();
    let dpop_scheme = scheme.eq_ignore_ascii_case("dpop");
    if token.is_empty() || !(dpop_scheme || scheme.eq_ignore_ascii_case("bearer")) {
        return Err(unauthorized(
            crate::codes::UNAUTHORIZED,
            "present the agent's access token (Authorization: Bearer, or DPoP with a proof)".into(),
        ));
    }
    let proof = dpop_header(headers)?;
    let verified =
        verify_issued(broker, token, true).map_err(|e| unauthorized(e.code(), e.to_string()))?;
    let cnf = verified.claims().cnf.as_ref();
    if cnf.is_some_and(|c| c.x5t_s256.is_some()) {
        return Err(unauthorized(
            agentiam_token::codes::POP_REQUIRED,
            "a certificate-bound token is used over mTLS, which the broker does not terminate"
                .into(),
        ));
    }
    let bound = cnf.and_then(|c| c.jkt.as_deref());
    match (bound, proof) {
        (None, None) => Ok(verified),
        (Some(_), None) | (Some(_), Some(_)) if !dpop_scheme => Err(unauthorized(
            agentiam_token::codes::POP_REQUIRED,
            "a DPoP-bound token is presented as Authorization: DPoP, with a DPoP proof".into(),
        )),
        (Some(_), None) => Err(unauthorized(
            agentiam_token::codes::POP_REQUIRED,
            "a DPoP-bound token needs a DPoP proof".into(),
        )),
        (bound, Some(proof)) => {
            let url = format!("{}{path}", broker.base_url());
            let checked = use_dpop_proof(broker, proof, method, &url, Some(token))?;
            match bound {
                Some(jkt)
                    if aws_lc_rs::constant_time::verify_slices_are_equal(
                        jkt.as_bytes(),
                        checked.jkt().as_bytes(),
                    )
                    .is_err() =>
                {
                    Err(unauthorized(
                        agentiam_token::codes::POP_INVALID,
                        "the proof's key is not the key the token is bound to".into(),
                    ))
                }
                _ => Ok(verified),
            }
        }
    }
}

fn invalid_client(code: &str, description: impl Into<String>) -> OAuthError {
    OAuthError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        code,
        description,
    )
}

/// A client's credentials as a request carries them: RFC 7523 `private_key_jwt` form fields.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientCredentials<'a> {
    pub(crate) client_id: Option<&'a str>,
    pub(crate) assertion_type: Option<&'a str>,
    pub(crate) assertion: Option<&'a str>,
}

/// RFC 6749 section 5.2: a client that tried HTTP Basic authentication gets 401 with a `Basic`
/// challenge. Agents authenticate with `private_key_jwt` only.
pub(crate) fn refuse_basic(headers: &HeaderMap) -> Result<(), OAuthError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_whitespace().next())
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("basic"));
    if basic {
        return Err(invalid_client(
            crate::codes::CLIENT_AUTH_FAILED,
            "HTTP Basic client authentication is not supported: authenticate with a signed \
             client assertion (private_key_jwt)",
        )
        .with_challenge(Challenge::Basic));
    }
    Ok(())
}

/// RFC 7523 client authentication: the registered agent whose key signed the assertion.
/// Each assertion is accepted once, until its `exp`, across every replica.
pub(crate) fn authenticate_client(
    broker: &Broker,
    headers: &HeaderMap,
    credentials: ClientCredentials<'_>,
) -> Result<(AgentRecord, ClientAssertion), OAuthError> {
    refuse_basic(headers)?;
    match credentials.assertion_type {
        Some(CLIENT_ASSERTION_TYPE_JWT) => {}
        Some(_) => {
            return Err(invalid_client(
                crate::codes::CLIENT_AUTH_FAILED,
                format!("client_assertion_type must be {CLIENT_ASSERTION_TYPE_JWT}"),
            ));
        }
        None => {
            return Err(invalid_client(
                crate::codes::CLIENT_AUTH_FAILED,
                "agents authenticate with a signed client assertion (private_key_jwt)",
            ));
        }
    }
    let assertion = credentials.assertion.ok_or_else(|| {
        invalid_client(
            crate::codes::CLIENT_AUTH_FAILED,
            "client_assertion is missing",
        )
    })?;
    let fail = |e: TokenError| invalid_client(e.code(), format!("client assertion: {e}"));
    let unverified = UnverifiedClientAssertion::parse(assertion).map_err(fail)?;
    let client = unverified.client_id().to_owned();
    if credentials.client_id.is_some_and(|c| c != client) {
        return Err(invalid_client(
            crate::codes::CLIENT_AUTH_FAILED,
            "client_id is not the client assertion's issuer",
        ));
    }
    let record = broker.store().agent(&client)?.ok_or_else(|| {
        invalid_client(
            agentiam_token::codes::UNREGISTERED_AGENT,
            format!(
                "unknown client {:?}: register the agent first (POST /admin/agents, \
                 agentiam.register_agent in Python, or RFC 7591 registration at /oauth2/register)",
                agentiam_identity::clip_for_message(&client)
            ),
        )
    })?;
    let keys = record
        .jwks
        .as_ref()
        .map(|j| Jwks::from_json(&j.to_string()))
        .transpose()
        .map_err(|e| invalid_client(crate::codes::CLIENT_AUTH_FAILED, format!("jwks: {e}")))?
        .ok_or_else(|| {
            invalid_client(
                crate::codes::CLIENT_AUTH_FAILED,
                "the agent has no registered keys (jwks) for client authentication",
            )
        })?;
    let now = broker.now();
    let rules = AssertionRules::new(broker.assertion_audiences(), now)
        .with_max_lifetime(broker.client_assertion_max_lifetime());
    let verified = unverified.verify(&keys, &rules).map_err(fail)?;
    let once = format!("client_assertion\n{client}\n{}", verified.jti());
    if !broker
        .store()
        .use_once(&once, verified.expires_at().saturating_add(60), now)?
    {
        return Err(invalid_client(
            crate::codes::ASSERTION_REPLAYED,
            "this client assertion was already used",
        ));
    }
    Ok((record, verified))
}
