//! [`BrokerApprovals`]: the guard's side of the broker's approvals, an
//! [`AsyncApprovalChannel`] that posts each confirmation request to `POST /approvals` with the
//! agent's token and waits (long poll) until an approver answers or the request expires.
//!
//! ```no_run
//! use std::sync::Arc;
//! use agentiam_broker::BrokerApprovals;
//! # fn demo(guard: agentiam_guard::Guard, token: String) {
//! let approvals = BrokerApprovals::new("http://127.0.0.1:8700", token);
//! let interceptor = agentiam_guard::ToolInterceptor::new(guard).with_async_approvals(Arc::new(approvals));
//! // interceptor.before_async(&session, &call).await: a call that needs a human now waits for one.
//! # let _ = interceptor; }
//! ```
//!
//! The client speaks plain HTTP (loopback, or a sidecar that terminates TLS).

use std::sync::Arc;
use std::time::Duration;

use agentiam_guard::{
    Approval, ApprovalFuture, ApprovalRequest, ApprovalResponse, AsyncApprovalChannel,
};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use crate::approvals::ApprovalFinding;

/// Largest broker response read (bytes).
const MAX_RESPONSE_BYTES: usize = 256 * 1024;

type Findings = Arc<dyn Fn(&ApprovalRequest) -> Vec<ApprovalFinding> + Send + Sync>;

/// Posts confirmation requests to a broker and waits for a human's answer.
#[derive(Clone)]
pub struct BrokerApprovals {
    base: String,
    token: String,
    client: Client<HttpConnector, Full<Bytes>>,
    findings: Option<Findings>,
}

impl std::fmt::Debug for BrokerApprovals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerApprovals")
            .field("base", &self.base)
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
            base: base_url.into().trim_end_matches('/').to_owned(),
            token: agent_token.into(),
            client: Client::builder(TokioExecutor::new()).build_http(),
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
        let request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))
            .map_err(|e| Failed(e.to_string()))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| Failed(format!("broker unreachable: {e}")))?;
        let status = response.status().as_u16();
        let bytes = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| Failed(format!("reading the broker's answer: {e}")))?
            .to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok((status, json))
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
                    &format!("/approvals/{id}?wait={}", crate::MAX_WAIT_SECS),
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
