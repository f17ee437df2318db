//! The approvals console over raw HTTP: sign-in, sessions, CSRF on every form, escaping,
//! security headers, and that a refused form changes nothing. (The browser test drives the
//! same pages in Chromium.)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "test harness: a panic is a failed test"
)]

mod common;

use std::sync::Arc;

use agentiam_broker::{ApprovalStatus, SqliteStore, hash_password};
use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;

async fn page(
    r: &Running,
    method: &str,
    path: &str,
    cookies: &str,
    form: &str,
) -> (u16, http::HeaderMap, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = http::Request::builder()
        .method(method)
        .uri(format!("{}{path}", r.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", cookies)
        .body(Full::new(Bytes::from(form.to_owned())))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn set_cookie(headers: &http::HeaderMap, name: &str) -> (String, String) {
    let line = headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie in {headers:?}"));
    let value = line
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    (value, line)
}

fn hidden_csrf(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").unwrap() + 19;
    html[at..].split('"').next().unwrap().to_owned()
}

use agentiam_token::Clock as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_sessions_and_csrf() {
    let r = start(Arc::new(SqliteStore::in_memory().unwrap())).await;
    r.store
        .put_approver(
            "controller",
            &hash_password("correct horse battery").unwrap(),
        )
        .unwrap();
    r.store
        .put_approval(&pending_record(
            "req-1",
            0,
            agentiam_token::SystemClock.now() + 600,
        ))
        .unwrap();

    // Signed out: every page sends you to sign in.
    for path in ["/console", "/console/approvals/req-1", "/console/audit"] {
        let (status, headers, _) = page(&r, "GET", path, "", "").await;
        assert_eq!(status, 303, "{path}");
        assert_eq!(headers["location"], "/console/login");
    }
    let (status, _, _) = page(&r, "POST", "/console/approvals/req-1/approve", "", "csrf=x").await;
    assert_eq!(status, 303);

    let (status, headers, html) = page(&r, "GET", "/console/login", "", "").await;
    assert_eq!(status, 200);
    for (name, value) in [
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("cache-control", "no-store"),
        ("referrer-policy", "no-referrer"),
    ] {
        assert_eq!(headers[name], value);
    }
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    let (login_cookie, line) = set_cookie(&headers, "agentiam_login");
    assert!(line.contains("HttpOnly") && line.contains("SameSite=Strict"));
    let token = hidden_csrf(&html);
    assert_eq!(token, login_cookie);

    // A sign-in form from elsewhere (no matching login cookie) is refused.
    let creds = format!("csrf={token}&username=controller&password=correct+horse+battery");
    let (status, _, html) = page(&r, "POST", "/console/login", "", &creds).await;
    assert_eq!(status, 403);
    assert!(html.contains("broker.csrf_failed"));
    let cookie = format!("agentiam_login={login_cookie}");
    let wrong = format!("csrf={token}&username=controller&password=nope+nope+nope");
    let (status, _, html) = page(&r, "POST", "/console/login", &cookie, &wrong).await;
    assert_eq!(status, 401);
    assert!(html.contains("login-failed"));
    let unknown = format!("csrf={token}&username=nobody&password=correct+horse+battery");
    assert_eq!(
        page(&r, "POST", "/console/login", &cookie, &unknown)
            .await
            .0,
        401
    );

    let (status, headers, _) = page(&r, "POST", "/console/login", &cookie, &creds).await;
    assert_eq!(status, 303);
    let (session, line) = set_cookie(&headers, "agentiam_session");
    assert!(
        line.contains("HttpOnly")
            && line.contains("SameSite=Strict")
            && line.contains("Path=/console")
    );
    assert!(!line.contains("Secure"), "plain http on loopback");
    let cookie = format!("agentiam_session={session}");

    // The request page escapes what agents wrote.
    let (status, _, html) = page(&r, "GET", "/console/approvals/req-1", &cookie, "").await;
    assert_eq!(status, 200);
    assert!(
        !html.contains("<img src=x"),
        "agent-supplied text is escaped"
    );
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
    let csrf = hidden_csrf(&html);
    assert!(!html.contains("a person, signed in at"));

    // An agent acting for a person: the approver sees the person and where they signed in,
    // apart from the agent.
    let mut for_person = pending_record("req-person", 0, agentiam_token::SystemClock.now() + 600);
    for_person.requester.principal = "alice".into();
    for_person.requester.person_provider = Some("https://login.acme.example".into());
    r.store.put_approval(&for_person).unwrap();
    let (_, _, html) = page(&r, "GET", "/console/approvals/req-person", &cookie, "").await;
    assert!(
        html.contains("alice (a person, signed in at https://login.acme.example)"),
        "{html}"
    );
    assert!(html.contains(&for_person.requester.agent));
    let (_, _, list) = page(&r, "GET", "/console", &cookie, "").await;
    assert!(list.contains("<td>alice</td>"), "{list}");

    // A call under a declared intent: the approver sees the intent, whether it is trusted, and
    // which argument it left free (escaped like everything the agent's guard sent).
    let mut for_intent = pending_record("req-intent", 0, agentiam_token::SystemClock.now() + 600);
    for_intent.request.intent = Some(agentiam_guard::IntentCheck {
        declared: true,
        id: "intent-1".into(),
        scopes: "web:fetch mail:send{to=['alice@acme.example']}".into(),
        trusted: false,
        fixed: vec![],
        free: vec!["url<script>".into()],
    });
    for_intent.request.digest = for_intent.request.computed_digest().unwrap();
    r.store.put_approval(&for_intent).unwrap();
    let (_, _, html) = page(&r, "GET", "/console/approvals/req-intent", &cookie, "").await;
    assert!(
        html.contains("mail:send{to=[&#39;alice@acme.example&#39;]}")
            || html.contains("mail:send{to=['alice@acme.example']}"),
        "{html}"
    );
    assert!(
        html.contains("url&lt;script&gt;") && !html.contains("url<script>"),
        "{html}"
    );
    assert!(
        html.contains("may have been chosen by an injection"),
        "{html}"
    );
    let (_, _, plain) = page(&r, "GET", "/console/approvals/req-1", &cookie, "").await;
    assert!(!plain.contains("declared intent"), "no intent, no section");

    // Forms without the session's CSRF token change nothing.
    for form in ["", "csrf=", "csrf=not-the-token"] {
        let (status, _, html) = page(
            &r,
            "POST",
            "/console/approvals/req-1/approve",
            &cookie,
            form,
        )
        .await;
        assert!(status == 403 || status == 400, "{form}: {status}");
        assert!(html.contains("broker.csrf_failed") || html.contains("broker.bad_request"));
    }
    assert_eq!(
        r.store.approval("req-1").unwrap().unwrap().status,
        ApprovalStatus::Pending
    );

    let deny = format!("csrf={csrf}&reason=not+today");
    let (status, headers, _) =
        page(&r, "POST", "/console/approvals/req-1/deny", &cookie, &deny).await;
    assert_eq!(status, 303);
    assert_eq!(headers["location"], "/console/approvals/req-1");
    let record = r.store.approval("req-1").unwrap().unwrap();
    assert_eq!(record.status, ApprovalStatus::Denied);
    assert_eq!(record.settled_by.as_deref(), Some("controller"));
    assert_eq!(record.reason.as_deref(), Some("not today"));
    // Replayed: refused, still denied.
    let approve = format!("csrf={csrf}");
    let (status, _, html) = page(
        &r,
        "POST",
        "/console/approvals/req-1/approve",
        &cookie,
        &approve,
    )
    .await;
    assert_eq!(status, 409);
    assert!(html.contains("broker.approval_settled"));
    assert_eq!(
        r.store.approval("req-1").unwrap().unwrap().status,
        ApprovalStatus::Denied
    );

    // Signing out ends the session on the server, not just in the browser.
    let (status, _, _) = page(
        &r,
        "POST",
        "/console/logout",
        &cookie,
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(status, 303);
    let (status, headers, _) = page(&r, "GET", "/console", &cookie, "").await;
    assert_eq!(
        (status, headers["location"].to_str().unwrap()),
        (303, "/console/login")
    );

    // Approver registration needs the administrator and a real password.
    let (status, _, json) = call(
        &r,
        "POST",
        "/admin/approvers",
        None,
        "application/json",
        json!({"name": "x", "password": "long enough pass"}).to_string(),
    )
    .await;
    assert_eq!(
        (status, json["agentiam_code"].as_str()),
        (401, Some("broker.unauthorized"))
    );
    for bad in [
        json!({"name": "x", "password": "short"}),
        json!({"name": "<b>", "password": "long enough pass"}),
        json!({"name": "x"}),
    ] {
        let (status, _, _) = call(
            &r,
            "POST",
            "/admin/approvers",
            Some(ADMIN),
            "application/json",
            bad.to_string(),
        )
        .await;
        assert_eq!(status, 400, "{bad}");
    }
    assert!(r.store.approver("x").unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failed_sign_ins_are_throttled_per_name() {
    let r = start(Arc::new(SqliteStore::in_memory().unwrap())).await;
    r.store
        .put_approver(
            "controller",
            &hash_password("correct horse battery").unwrap(),
        )
        .unwrap();
    let (_, headers, html) = page(&r, "GET", "/console/login", "", "").await;
    let (login_cookie, _) = set_cookie(&headers, "agentiam_login");
    let token = hidden_csrf(&html);
    let cookie = format!("agentiam_login={login_cookie}");
    let attempt = |password: &str| format!("csrf={token}&username=controller&password={password}");
    for _ in 0..agentiam_broker::MAX_FAILED_LOGINS {
        let (status, _, _) = page(
            &r,
            "POST",
            "/console/login",
            &cookie,
            &attempt("guess+guess+guess"),
        )
        .await;
        assert_eq!(status, 401);
    }
    // Now even the right password is refused for this name, without being checked.
    let (status, headers, html) = page(
        &r,
        "POST",
        "/console/login",
        &cookie,
        &attempt("correct+horse+battery"),
    )
    .await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "900");
    assert!(html.contains("broker.login_throttled"));
    // Another name is not affected.
    r.store
        .put_approver("auditor", &hash_password("another long password").unwrap())
        .unwrap();
    let other = format!("csrf={token}&username=auditor&password=another+long+password");
    let (status, _, _) = page(&r, "POST", "/console/login", &cookie, &other).await;
    assert_eq!(status, 303);
}
