//! The approvals console in headless Chromium (Debian's `chromium` and `chromium-driver`,
//! which `./scripts/test` installs): an approver signs in, sees the pending request with its
//! context, approves it, and the agent waiting on the broker proceeds; the activity log page
//! shows the log verified. The browser is driven over the W3C WebDriver protocol.
//!
//! Without `chromedriver` and `chromium` on the PATH this test fails, loudly: it never passes
//! without a browser.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "test harness: a panic is a failed test"
)]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use agentiam_broker::DataDir;
use agentiam_guard::{
    Approval, ApproverKeys, Decision, Guard, PolicyEngine, Principal, Risk, Session, ToolCall,
    ToolInterceptor, ToolSpec,
};
use agentiam_identity::*;
use agentiam_token::*;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

const ADMIN: &str = "admin-secret-0123456789-abcdefghijklmnop";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

async fn http(method: &str, url: &str, auth: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = http::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json");
    if let Some(a) = auth {
        req = req.header("authorization", format!("Bearer {a}"));
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let resp = client
        .request(req.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// A chromedriver process and one headless Chromium session.
struct Browser {
    driver: Child,
    base: String,
    session: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn find(program: &str) -> String {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let candidate = std::path::Path::new(dir).join(program);
        if candidate.is_file() {
            return candidate.display().to_string();
        }
    }
    panic!(
        "{program} is not installed: the approvals console is tested in headless Chromium. \
         Install Debian's chromium and chromium-driver (./scripts/test does)."
    );
}

impl Browser {
    async fn start() -> Self {
        let driver_path = find("chromedriver");
        let chromium = find("chromium");
        let port = free_port();
        let driver = Command::new(driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        let mut ready = false;
        for _ in 0..600 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
            if let Ok(uri) = format!("{base}/status").parse::<http::Uri>()
                && client.get(uri).await.is_ok()
            {
                ready = true;
                break;
            }
        }
        assert!(ready, "chromedriver did not come up on port {port}");
        let profile = tempfile::tempdir().unwrap();
        let (status, created) = http(
            "POST",
            &format!("{base}/session"),
            None,
            Some(json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": chromium,
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                             format!("--user-data-dir={}", profile.path().display())],
                },
            }}})),
        )
        .await;
        assert_eq!(status, 200, "no browser session: {created}");
        let session = created["value"]["sessionId"].as_str().unwrap().to_owned();
        // Element lookups wait for the page that a click or a form submission loads.
        let (status, _) = http(
            "POST",
            &format!("{base}/session/{session}/timeouts"),
            None,
            Some(json!({"implicit": 15_000, "pageLoad": 30_000})),
        )
        .await;
        assert_eq!(status, 200);
        // The profile directory must outlive the browser; leak it to the OS temp cleaner.
        std::mem::forget(profile);
        Self {
            driver,
            session,
            base,
        }
    }

    async fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let body = body.or_else(|| (method == "POST").then(|| json!({})));
        let (status, v) = http(method, &url, None, body).await;
        assert_eq!(status, 200, "{method} {path}: {v}");
        v["value"].clone()
    }

    async fn go(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({"url": url}))).await;
    }

    /// Runs `method` on the element `css` selects (`suffix` after `/element/{id}`), finding it
    /// again while the page is still being replaced: after a click that submits a form, the old
    /// page's element can be found and then go stale, or the new one not exist yet. Whether
    /// the page is ready is a condition polled for up to 60 s, never a fixed sleep.
    async fn on_element(
        &self,
        css: &str,
        method: &str,
        suffix: &str,
        body: Option<Value>,
    ) -> Value {
        let mut last = Value::Null;
        for _ in 0..600 {
            let url = format!("{}/session/{}/element", self.base, self.session);
            let (status, found) = http(
                "POST",
                &url,
                None,
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
            if status == 200
                && let Some(id) = found["value"][ELEMENT].as_str()
            {
                let url = format!(
                    "{}/session/{}/element/{id}{suffix}",
                    self.base, self.session
                );
                let body = body
                    .clone()
                    .or_else(|| (method == "POST").then(|| json!({})));
                let (status, v) = http(method, &url, None, body).await;
                if status == 200 {
                    return v["value"].clone();
                }
                last = v;
            } else {
                last = found;
            }
            let error = last["value"]["error"].as_str().unwrap_or_default();
            let message = last["value"]["message"].as_str().unwrap_or_default();
            // Chromium reports an element whose page was replaced between the find and the
            // command either as stale or, when the swap lands inside the command, as an inspector
            // error about a node that no longer belongs to the document: both mean "find it again".
            let replaced =
                error == "unknown error" && message.contains("does not belong to the document");
            assert!(
                replaced || matches!(error, "stale element reference" | "no such element"),
                "{method} {css}{suffix}: {last}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{css} was never there to {method} {suffix}: {last}");
    }

    async fn text(&self, css: &str) -> String {
        self.on_element(css, "GET", "/text", None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn click(&self, css: &str) {
        self.on_element(css, "POST", "/click", None).await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        self.on_element(css, "POST", "/value", Some(json!({"text": text})))
            .await;
    }

    /// The text of `css` once it satisfies `ready` (the page after a click may still be loading).
    async fn wait_text(&self, css: &str, ready: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        for _ in 0..600 {
            last = self.text(css).await;
            if ready(&last) {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{css} never became ready; last text: {last}");
    }

    async fn url(&self) -> String {
        self.cmd("GET", "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn title(&self) -> String {
        self.cmd("GET", "/title", None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approver_approves_in_chromium_and_the_waiting_agent_proceeds() {
    // The broker, as `agentiam serve` runs it: keys, store and activity log in a data directory.
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let broker = DataDir::open(dir.path())
        .unwrap()
        .broker(&base, ADMIN)
        .unwrap();
    let app = broker.router();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let (status, _) = http(
        "POST",
        &format!("{base}/admin/approvers"),
        Some(ADMIN),
        Some(json!({"name": "controller", "password": "correct horse battery"})),
    )
    .await;
    assert_eq!(status, 201);

    // An agent whose guard needs a human for an irreversible call.
    let issuer = Issuer::new(
        &base,
        KeySet::new(DataDir::open(dir.path()).unwrap().signing_key().unwrap()),
    );
    let ap = AgentIdentity::new(
        parse_spiffe_id("spiffe://acme.test/agent/ap").unwrap(),
        ModelRef::new("openai", "gpt-5", "2026-08-01"),
        &AgentConfiguration::new("You close the books.", vec![]),
        RuntimeDescriptor::new("process"),
    )
    .unwrap();
    issuer.register(
        ap.spiffe_id(),
        AgentRegistration::new(ScopeSet::parse("ledger.ar:void").unwrap()),
    );
    let token = issuer
        .issue(&TokenRequest::new(
            &ap,
            "ledger",
            ScopeSet::parse("ledger.ar:void").unwrap(),
            "close-march",
            "close March",
        ))
        .unwrap()
        .token;
    let guard = Guard::builder(PolicyEngine::new(agentiam_guard::DEFAULT_POLICY, None).unwrap())
        .service("ledger")
        .tools([ToolSpec::new("void_invoice", Risk::Irreversible).with_scope("ledger.ar", "void")])
        .approvers(
            ApproverKeys::new()
                .add("broker", broker.approver_public_key().clone())
                .unwrap(),
        )
        .build()
        .unwrap();
    let verified = Verifier::new(issuer.jwks(), &base, "ledger")
        .verify(&token)
        .unwrap();
    let interceptor = ToolInterceptor::new(guard);
    let session = Session::new("s", Arc::new(Principal::from_token(&verified)));
    session.taint("https://vendor.example/invoice");
    let args = json!({"invoice": "INV-7", "note": "<script>alert(1)</script>"});
    let Decision::NeedsConfirmation(request) =
        interceptor.before(&session, &ToolCall::new("void_invoice", &args))
    else {
        panic!("the guard should ask a human");
    };
    let (status, posted) = http(
        "POST",
        &format!("{base}/approvals"),
        Some(&token),
        Some(json!({"request": request, "findings": [{"kind": "note", "detail": "the agent says: low risk"}]})),
    )
    .await;
    assert_eq!(status, 201, "{posted}");
    let id = posted["id"].as_str().unwrap().to_owned();
    let waiting = {
        let (url, token) = (format!("{base}/approvals/{id}?wait=60"), token.clone());
        tokio::spawn(async move { http("GET", &url, Some(&token), None).await })
    };

    // The approver, in a real browser.
    let browser = Browser::start().await;
    browser.go(&format!("{base}/console")).await;
    assert!(
        browser.url().await.ends_with("/console/login"),
        "signed out: sent to sign in"
    );
    browser.type_into("#username", "controller").await;
    browser.type_into("#password", "wrong password!").await;
    browser.click("#login").await;
    assert!(browser.text("#login-failed").await.contains("Wrong"));
    browser.type_into("#username", "controller").await;
    browser
        .type_into("#password", "correct horse battery")
        .await;
    browser.click("#login").await;
    let pending = browser.text("#pending").await;
    assert_eq!(
        browser.title().await,
        "Pending approvals · agentiam approvals"
    );
    assert!(pending.contains("void_invoice"), "{pending}");
    assert!(pending.contains("spiffe://acme.test/agent/ap"), "{pending}");
    browser.click("#pending a").await;
    assert_eq!(browser.text("#agent").await, "spiffe://acme.test/agent/ap");
    let shown_args = browser.text("#arguments").await;
    assert!(
        shown_args.contains("INV-7") && shown_args.contains("<script>alert(1)</script>"),
        "arguments are shown as text, not run: {shown_args}"
    );
    // Signed findings come from the guard's request; the agent's own notes are marked unsigned.
    assert!(browser.text("#findings").await.contains("vendor.example"));
    assert!(browser.text("#agent-notes").await.contains("low risk"));
    assert_eq!(browser.text("#service").await, "ledger");
    assert!(browser.text("dl").await.contains("openai/gpt-5@2026-08-01"));
    assert_eq!(browser.text("#status").await, "pending");
    browser.click("#approve").await;
    browser.wait_text("#status", |s| s == "approved").await;

    // The waiting agent wakes with the broker-signed approval, and its guard lets the call run.
    let (status, answer) = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .expect("the agent was woken")
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(answer["status"], "approved");
    assert_eq!(answer["settled_by"], "controller");
    let approval: Approval = serde_json::from_value(answer["approval"].clone()).unwrap();
    let mut call = ToolCall::new("void_invoice", &args);
    call.approval = Some(&approval);
    assert!(matches!(
        interceptor.before(&session, &call),
        Decision::Allow(_)
    ));

    // The activity log page verifies the log that recorded all of it.
    browser.go(&format!("{base}/console/audit")).await;
    let verification = browser.text("#verification").await;
    assert!(verification.starts_with("verified"), "{verification}");
    let timeline = browser.text("#timeline").await;
    for kind in [
        "approver_registered",
        "approval_requested",
        "approver_login",
        "approval_granted",
    ] {
        assert!(timeline.contains(kind), "{kind} missing from {timeline}");
    }
    browser.cmd("DELETE", "", None).await;
}
