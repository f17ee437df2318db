//! RFC 6750 / RFC 9449 error responses carrying the guard's reason code.

use axum::body::Body;
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::{Value, json};

use crate::approval::ApprovalRequest;
use crate::codes;
use crate::decision::Denial;

use agentiam_token::codes::{POP_INVALID, REVOCATION_UNAVAILABLE};

/// Which authorization scheme the client used (the challenge answers in kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scheme {
    Bearer,
    Dpop,
}

impl Scheme {
    fn name(self) -> &'static str {
        match self {
            Self::Bearer => "Bearer",
            Self::Dpop => "DPoP",
        }
    }
}

/// A quoted-string for a header parameter: only printable ASCII, `"` and `\` escaped.
fn quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars().take(200) {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
    out
}

fn challenge(scheme: Scheme, params: &[(&str, &str)]) -> String {
    let mut text = scheme.name().to_owned();
    for (i, (k, v)) in params.iter().enumerate() {
        text.push_str(if i == 0 { " " } else { ", " });
        text.push_str(k);
        text.push('=');
        text.push_str(&quoted(v));
    }
    if scheme == Scheme::Dpop {
        text.push_str(if params.is_empty() { " " } else { ", " });
        text.push_str("algs=\"EdDSA ES256\"");
    }
    text
}

fn respond(status: StatusCode, challenge: Option<String>, body: Value) -> Response<Body> {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(c) = challenge
        && let Ok(v) = HeaderValue::from_str(&c)
    {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    response
}

fn body(code: &str, message: &str) -> Value {
    json!({"error": {"code": code, "message": message}})
}

/// The response when the credentials do not prove a principal (whatever the code, since
/// `Authenticator` may add codes): 401 with a challenge, except when the service itself could
/// not decide (the revocation list is unreachable), which is 503 and not the client's fault.
///
/// With `resource_metadata` (the service's RFC 9728 metadata URL) every challenge names it, so
/// a client that has no token yet can discover where to get one.
pub(super) fn authentication_failed(
    denial: &Denial,
    scheme: Scheme,
    resource_metadata: Option<&str>,
) -> Response<Body> {
    let code = denial.code();
    let b = body(code, denial.message());
    let discovery: Vec<(&str, &str)> = resource_metadata
        .map(|url| ("resource_metadata", url))
        .into_iter()
        .collect();
    if code == codes::CREDENTIALS_MISSING {
        // RFC 6750 3.1: no error attribute when the request carried no credentials; both
        // schemes are offered (RFC 9449 7.1 allows several challenges).
        return respond(
            StatusCode::UNAUTHORIZED,
            Some(format!(
                "{}, {}",
                challenge(Scheme::Bearer, &discovery),
                challenge(Scheme::Dpop, &discovery)
            )),
            b,
        );
    }
    if code == REVOCATION_UNAVAILABLE {
        return respond(StatusCode::SERVICE_UNAVAILABLE, None, b);
    }
    // RFC 9449 7.1: a bad proof with the DPoP scheme is `invalid_dpop_proof`.
    let error = if scheme == Scheme::Dpop && code == POP_INVALID {
        "invalid_dpop_proof"
    } else {
        "invalid_token"
    };
    let mut params = vec![("error", error), ("error_description", code)];
    params.extend(discovery);
    respond(
        StatusCode::UNAUTHORIZED,
        Some(challenge(scheme, &params)),
        b,
    )
}

/// The response for a decision's denial: 401 when the credential expired since it was
/// verified, then the status the code's registry entry gives (403 for refusals, 400 for bad
/// arguments, 413 for arguments too large, 503 when the guard could not decide).
pub(super) fn denial_response(
    denial: &Denial,
    scheme: Scheme,
    scope: Option<&str>,
    resource_metadata: Option<&str>,
) -> Response<Body> {
    let code = denial.code();
    if code.starts_with("token.") || code.starts_with("delegation.") {
        return authentication_failed(denial, scheme, resource_metadata);
    }
    let b = body(code, denial.message());
    if code == codes::SCOPE_MISSING || code == codes::CONSTRAINT_VIOLATED {
        let mut params = vec![("error", "insufficient_scope"), ("error_description", code)];
        if let Some(scope) = scope {
            params.push(("scope", scope));
        }
        return respond(StatusCode::FORBIDDEN, Some(challenge(scheme, &params)), b);
    }
    respond(registered_status(code), None, b)
}

/// The status the registry gives a guard code (`agentiam_codes`): 400 for bad arguments, 413 for
/// arguments too large to examine, 503 when the guard could not decide (a hook, a full table,
/// the shared state), 403 for every other refusal.
fn registered_status(code: &str) -> StatusCode {
    codes::ALL
        .iter()
        .chain(agentiam_state::codes::ALL)
        .find(|c| c.code == code)
        .and_then(|c| c.status)
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::FORBIDDEN)
}

/// A body over the cap.
pub(super) fn too_large(limit: usize) -> Response<Body> {
    respond(
        StatusCode::PAYLOAD_TOO_LARGE,
        None,
        body(
            codes::ARGUMENTS_INVALID,
            &format!("request body over {limit} bytes"),
        ),
    )
}

/// 403 with the approval request a human must sign before the client retries.
pub(super) fn confirmation_response(request: &ApprovalRequest) -> Response<Body> {
    let mut b = body(
        &request.code,
        "a human's approval of this exact request is required; retry with it in the Agentiam-Approval header",
    );
    if let (Value::Object(map), Ok(r)) = (&mut b, serde_json::to_value(request)) {
        map.insert("approval_request".into(), r);
    }
    respond(StatusCode::FORBIDDEN, None, b)
}

/// 500 when a handler expects a principal but the layer is not in front of it.
pub(super) fn layer_missing() -> Response<Body> {
    respond(
        StatusCode::INTERNAL_SERVER_ERROR,
        None,
        body(
            codes::LAYER_MISSING,
            "no verified principal: the guard layer is not in front of this handler",
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layer answers each refusal with the status its registry entry gives; a guard that
    /// could not decide is the service's fault (503), never the client's (403).
    #[test]
    fn denials_get_their_registered_status() {
        for (code, status) in [
            (codes::POLICY_DENIED, 403),
            (codes::TAINTED_CONTEXT, 403),
            (codes::ARGUMENTS_INVALID, 400),
            (codes::INPUT_TOO_LARGE, 413),
            (codes::HOOK_FAILED, 503),
            (codes::CAPACITY_EXCEEDED, 503),
            (codes::STATE_UNAVAILABLE, 503),
            (codes::TOOL_POISONING, 403),
            ("vendor.custom_refusal", 403),
        ] {
            let response =
                denial_response(&Denial::new(code, "refused"), Scheme::Bearer, None, None);
            assert_eq!(response.status().as_u16(), status, "{code}");
        }
    }
}
