//! The agent side of the agentiam broker: [`BrokerClient`], a small client for the broker's HTTP API, and [`BrokerApprovals`], the guard's approval channel that posts each confirmation request to `POST /approvals` with the agent's token and waits (long poll) until an approver answers or the request expires.
//!
//! Agents and the services they call link this crate, not the broker: it has no store, no password hashing, no templates and no server in its dependencies.
//! The client speaks plain HTTP (loopback, or a sidecar that terminates TLS).
//! A request it cannot make is a [`ClientError`] with a stable code (`broker.bad_request`, `broker.unreachable`); an answer the broker refused is returned as it came, status and JSON body.
//!
//! ```no_run
//! use std::sync::Arc;
//! use agentiam_broker_client::{BrokerApprovals, BrokerClient, ClientError, RequestBody};
//! # async fn demo(guard: agentiam_guard::Guard, token: String) -> Result<(), ClientError> {
//! let client = BrokerClient::new("http://127.0.0.1:8700");
//! let (status, metadata) = client
//!     .send("GET", "/.well-known/oauth-authorization-server", &[], RequestBody::Empty)
//!     .await?;
//! assert_eq!(status, 200);
//! # let _ = metadata;
//!
//! let approvals = BrokerApprovals::new("http://127.0.0.1:8700", token);
//! let interceptor = agentiam_guard::ToolInterceptor::new(guard).with_async_approvals(Arc::new(approvals));
//! // interceptor.before_async(&session, &call).await: a call that needs a human now waits for one.
//! # let _ = interceptor;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod codes;
mod error;
mod jwks;

pub use error::ClientError;
pub use jwks::jwks_fetcher;

use std::sync::Arc;
use std::time::Duration;

use agentiam_guard::approval::{ApprovalFuture, ApprovalResponse, AsyncApprovalChannel};
use agentiam_guard::{Approval, ApprovalRequest};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Largest broker response read (bytes).
const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// Longest the broker holds a `GET /approvals/{id}?wait=SECONDS` long poll; a longer wait is
/// cut to this. [`BrokerApprovals`] asks for exactly this much.
pub const MAX_WAIT_SECS: u64 = 60;

/// Something the guard found that the approver should weigh (an injection finding, the
/// untrusted sources that tainted the session).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalFinding {
    /// `taint`, `injection`, `copied_untrusted_text`, ...
    pub kind: String,
    /// What was found, for a human.
    pub detail: String,
}

type Findings = Arc<dyn Fn(&ApprovalRequest) -> Vec<ApprovalFinding> + Send + Sync>;

/// What a request to the broker carries.
#[derive(Debug, Clone)]
pub enum RequestBody {
    /// Nothing.
    Empty,
    /// A JSON document.
    Json(Value),
    /// An `application/x-www-form-urlencoded` form (the OAuth endpoints).
    Form(Vec<(String, String)>),
}

/// A small client for the broker's HTTP API (plain HTTP: loopback, or a sidecar that
/// terminates TLS). Answers are read as JSON, at most 256 KiB.
#[derive(Clone)]
pub struct BrokerClient {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl std::fmt::Debug for BrokerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl BrokerClient {
    /// A client for the broker at `base_url`.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base: base_url.into().trim_end_matches('/').to_owned(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// The broker's URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Sends one request with extra `headers` (e.g. `authorization`, `dpop`); returns the
    /// status and the JSON answer (`null` when the answer is not JSON), whatever the status.
    /// Fails with [`ClientError::BadRequest`] when the request cannot be built, and
    /// [`ClientError::Unreachable`] when the broker cannot be reached or its answer read.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: RequestBody,
    ) -> Result<(u16, Value), ClientError> {
        let (content_type, bytes) = match body {
            RequestBody::Empty => ("text/plain", Vec::new()),
            RequestBody::Json(v) => ("application/json", v.to_string().into_bytes()),
            RequestBody::Form(pairs) => (
                "application/x-www-form-urlencoded",
                form_urlencoded(&pairs).into_bytes(),
            ),
        };
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", content_type);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| ClientError::BadRequest(e.to_string()))?;
        let response = self.client.request(request).await.map_err(|e| {
            ClientError::Unreachable(format!("{} {}{path}: {e}", method, self.base))
        })?;
        let status = response.status().as_u16();
        let bytes = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| {
                ClientError::Unreachable(format!(
                    "reading the answer of {method} {}{path}: {e}",
                    self.base
                ))
            })?
            .to_bytes();
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }
}

/// `application/x-www-form-urlencoded`: unreserved bytes as they are, space as `+`,
/// everything else percent-encoded.
fn form_urlencoded(pairs: &[(String, String)]) -> String {
    fn enc(out: &mut String, s: &str) {
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                    out.push(char::from(b));
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
    }
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        enc(&mut out, k);
        out.push('=');
        enc(&mut out, v);
    }
    out
}

/// Posts confirmation requests to a broker and waits for a human's answer.
#[derive(Clone)]
pub struct BrokerApprovals {
    client: BrokerClient,
    token: String,
    findings: Option<Findings>,
}

impl std::fmt::Debug for BrokerApprovals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerApprovals")
            .field("base", &self.client.base)
            .finish_non_exhaustive()
    }
}

/// What went wrong talking to the broker; the guard treats every failure as "no approval".
#[derive(Debug)]
struct Failed(String);

impl BrokerApprovals {
    /// A channel to the broker at `base_url`, authenticating with the agent's access token.
    pub fn new(base_url: impl Into<String>, agent_token: impl Into<String>) -> Self {
        Self {
            client: BrokerClient::new(base_url),
            token: agent_token.into(),
            findings: None,
        }
    }

    /// Adds findings to each request for the approver to read (taint sources, injection
    /// findings), computed when the request is posted.
    pub fn with_findings(
        mut self,
        findings: impl Fn(&ApprovalRequest) -> Vec<ApprovalFinding> + Send + Sync + 'static,
    ) -> Self {
        self.findings = Some(Arc::new(findings));
        self
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), Failed> {
        let bearer = format!("Bearer {}", self.token);
        self.client
            .send(
                method,
                path,
                &[("authorization", &bearer)],
                body.map_or(RequestBody::Empty, RequestBody::Json),
            )
            .await
            .map_err(|e| Failed(e.to_string()))
    }

    /// Posts `request` and waits for the answer.
    pub async fn ask(&self, request: ApprovalRequest) -> ApprovalResponse {
        match self.ask_inner(&request).await {
            Ok(answer) => answer,
            Err(Failed(why)) => ApprovalResponse::Denied {
                reason: format!("the approval could not be obtained: {why}"),
            },
        }
    }

    async fn ask_inner(&self, request: &ApprovalRequest) -> Result<ApprovalResponse, Failed> {
        let findings = self
            .findings
            .as_ref()
            .map(|f| f(request))
            .unwrap_or_default();
        let (status, posted) = self
            .send(
                "POST",
                "/approvals",
                Some(json!({"request": request, "findings": findings})),
            )
            .await?;
        if status != 201 {
            return Err(Failed(format!(
                "the broker refused the request ({status}, {})",
                posted
                    .get("agentiam_code")
                    .and_then(Value::as_str)
                    .unwrap_or("no code")
            )));
        }
        let id = posted
            .get("id")
            .cloned()
            .unwrap_or_default()
            .as_str()
            .ok_or_else(|| Failed("the broker gave no request id".into()))?
            .to_owned();
        loop {
            let (status, answer) = self
                .send(
                    "GET",
                    &format!("/approvals/{id}?wait={}", MAX_WAIT_SECS),
                    None,
                )
                .await?;
            if status != 200 {
                return Err(Failed(format!("polling the request failed ({status})")));
            }
            match answer.get("status").and_then(Value::as_str) {
                Some("pending") => {
                    // Let a broker that answers at once not spin this loop.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Some("approved") => {
                    let approval: Approval =
                        serde_json::from_value(answer.get("approval").cloned().unwrap_or_default())
                            .map_err(|e| Failed(format!("the approval is malformed: {e}")))?;
                    // The guard checks the signature, the call, the expiry and single use.
                    return Ok(ApprovalResponse::Approved(approval));
                }
                Some("denied") => {
                    return Ok(ApprovalResponse::Denied {
                        reason: format!(
                            "{} by {}",
                            answer
                                .get("reason")
                                .and_then(Value::as_str)
                                .unwrap_or("denied"),
                            answer
                                .get("settled_by")
                                .and_then(Value::as_str)
                                .unwrap_or("an approver")
                        ),
                    });
                }
                Some("expired") => return Ok(ApprovalResponse::TimedOut),
                _ => return Err(Failed("the broker's answer has no status".into())),
            }
        }
    }
}

impl AsyncApprovalChannel for BrokerApprovals {
    fn request_approval(&self, request: ApprovalRequest) -> ApprovalFuture {
        let this = self.clone();
        Box::pin(async move { this.ask(request).await })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests: a panic is a failed test")]

    use super::*;

    #[test]
    fn forms_are_url_encoded() {
        let pairs = vec![
            ("grant_type".to_owned(), "client_credentials".to_owned()),
            (
                "scope".to_owned(),
                "ledger.ar:void ledger.*:read".to_owned(),
            ),
            ("x".to_owned(), "a&b=c/é~".to_owned()),
        ];
        assert_eq!(
            form_urlencoded(&pairs),
            "grant_type=client_credentials&scope=ledger.ar%3Avoid+ledger.*%3Aread&x=a%26b%3Dc%2F%C3%A9%7E"
        );
    }

    #[test]
    fn errors_keep_their_codes() {
        assert_eq!(
            ClientError::BadRequest("x".into()).code(),
            "broker.bad_request"
        );
        assert_eq!(
            ClientError::Unreachable("x".into()).code(),
            "broker.unreachable"
        );
    }

    #[tokio::test]
    async fn a_request_that_cannot_be_built_is_a_bad_request() {
        let client = BrokerClient::new("http://127.0.0.1:9");
        let err = client
            .send("GET", "/", &[("bad header", "x")], RequestBody::Empty)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "broker.bad_request");
    }

    #[test]
    fn findings_refuse_unknown_fields() {
        let finding: ApprovalFinding =
            serde_json::from_value(json!({"kind": "taint", "detail": "read from the web"}))
                .unwrap();
        assert_eq!(finding.kind, "taint");
        assert!(
            serde_json::from_value::<ApprovalFinding>(json!({"kind": "a", "detail": "b", "x": 1}))
                .is_err()
        );
    }
}
