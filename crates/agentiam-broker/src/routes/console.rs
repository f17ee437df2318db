//! The approvals console: server-rendered pages (no JavaScript at all) where an approver signs
//! in, reads a pending request with its full context, and approves or denies it; and the
//! activity log's timeline with its verification status.
//!
//! - Every value shown is HTML-escaped by the template engine (maud): the arguments and
//!   findings come from agents and from content they read.
//! - Sessions: a random cookie (`HttpOnly`, `SameSite=Strict`, `Path=/console`, `Secure` when
//!   the broker's URL is https); the store keeps only its SHA-256; 1 hour.
//! - CSRF: every form carries the session's token (synchronizer pattern, compared in constant
//!   time); the login form a double-submit token of its own.
//! - Headers: a CSP allowing nothing but this origin's stylesheet and forms, no framing,
//!   no referrer, no caching.

use agentiam_telemetry::{FileStore, SegmentStore, verify_log};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::rejection::{FormRejection, JsonRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Broker;
use crate::approval_queue::{pending_or, settle};
use crate::approvals::{ApprovalRecord, ApprovalStatus};
use crate::auth::require_admin;
use crate::oauth_error::{OAuthError, refused_body};
use crate::secrets::{random_id, sha256};
use crate::store::ConsoleSession;

const SESSION_COOKIE: &str = "agentiam_session";
const LOGIN_COOKIE: &str = "agentiam_login";
/// How long a console session lasts.
pub const SESSION_SECS: i64 = 3600;
/// Shortest approver password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Most audit records the timeline shows.
const TIMELINE_RECORDS: usize = 200;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem;color:#222}\
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.35rem;text-align:left;vertical-align:top}\
pre{background:#f5f5f5;padding:.6rem;overflow:auto;white-space:pre-wrap}\
.pending{color:#a60}.approved,.allow{color:#070}.denied,.deny,.expired{color:#a00}.escalate{color:#a60}\
.bad{color:#a00;font-weight:bold}.good{color:#070;font-weight:bold}\
button{padding:.4rem 1rem;margin-right:.5rem}nav a{margin-right:1rem}dt{font-weight:bold}dd{margin:0 0 .5rem 0}";

/// Failed sign-ins per approver name (known or not) before the name is refused for 15 minutes.
pub const MAX_FAILED_LOGINS: u32 = 5;

pub(super) fn routes() -> Router<Broker> {
    Router::new()
        .route("/console", get(home))
        .route("/console/style.css", get(style))
        .route("/console/login", get(login_page).post(login))
        .route("/console/logout", post(logout))
        .route("/console/approvals/{id}", get(detail))
        .route("/console/approvals/{id}/approve", post(approve))
        .route("/console/approvals/{id}/deny", post(deny))
        .route("/console/audit", get(timeline))
        .route("/admin/approvers", post(add_approver))
}

/// Hashes an approver's password (Argon2id, random salt) as a PHC string.
pub fn hash_password(password: &str) -> Result<String, crate::BrokerError> {
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt)
        .map_err(|_| crate::BrokerError::Config("no randomness for a salt".into()))?;
    let salt =
        SaltString::encode_b64(&salt).map_err(|e| crate::BrokerError::Config(e.to_string()))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| crate::BrokerError::Config(e.to_string()))
}

fn password_matches(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

fn ct_eq(a: &str, b: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A page with the console's security headers.
fn page(status: StatusCode, title: &str, body: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) " · agentiam approvals" }
                link rel="stylesheet" href="/console/style.css";
            }
            body { (body) }
        }
    };
    let mut response = (status, axum::response::Html(markup.into_string())).into_response();
    secure_headers(response.headers_mut());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

fn secure_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

fn error_page(status: StatusCode, code: &str, message: &str) -> Response {
    page(
        status,
        "Error",
        html! {
            h1 { "Refused" }
            p { (message) }
            p { "Reason code: " code { (code) } }
            p { a href="/console" { "Back to pending approvals" } }
        },
    )
}

impl From<OAuthError> for Response {
    fn from(e: OAuthError) -> Self {
        error_page(e.status, &e.code, &e.description)
    }
}

fn to_login() -> Response {
    Redirect::to("/console/login").into_response()
}

/// The signed-in approver, or `None` (the caller redirects to the login page).
fn console_session(
    broker: &Broker,
    headers: &HeaderMap,
) -> Result<Option<ConsoleSession>, OAuthError> {
    let Some(value) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    Ok(broker
        .store()
        .session(&hex(&sha256(value.as_bytes())), broker.now())?)
}

fn nav(session: &ConsoleSession) -> Markup {
    html! {
        nav {
            a href="/console" { "Pending approvals" }
            a href="/console/audit" { "Activity log" }
            form method="post" action="/console/logout" style="display:inline" {
                input type="hidden" name="csrf" value=(session.csrf);
                "Signed in as " strong { (session.approver) } " "
                button type="submit" { "Sign out" }
            }
        }
    }
}

async fn style() -> Response {
    let mut r = ([(header::CONTENT_TYPE, "text/css")], STYLE).into_response();
    secure_headers(r.headers_mut());
    r
}

async fn home(State(broker): State<Broker>, headers: HeaderMap) -> Response {
    let session = match console_session(&broker, &headers) {
        Ok(Some(s)) => s,
        Ok(None) => return to_login(),
        Err(e) => return e.into(),
    };
    let (pending, recent) = match (
        pending_or(&broker, Some(ApprovalStatus::Pending)),
        pending_or(&broker, None),
    ) {
        (Ok(p), Ok(r)) => (p, r),
        (Err(e), _) | (_, Err(e)) => return e.into(),
    };
    let now = broker.now();
    page(
        StatusCode::OK,
        "Pending approvals",
        html! {
            (nav(&session))
            h1 { "Pending approvals" }
            @if pending.is_empty() {
                p #none-pending { "Nothing is waiting for a decision." }
            } @else {
                table #pending {
                    tr { th { "Tool" } th { "Agent" } th { "For" } th { "Task" } th { "Risk" } th { "Why" } th { "Expires in" } }
                    @for r in &pending {
                        tr {
                            td { a href={ "/console/approvals/" (r.id) } { (r.request.tool) } }
                            td { (r.requester.agent) }
                            td { (r.requester.principal) }
                            td { (r.requester.task.as_deref().unwrap_or("-")) }
                            td { (format!("{:?}", r.request.risk).to_lowercase()) }
                            td { code { (r.request.code) } }
                            td { (r.request.expires_at.saturating_sub(now)) " s" }
                        }
                    }
                }
            }
            h2 { "Recent decisions" }
            table #recent {
                tr { th { "Tool" } th { "Agent" } th { "Status" } th { "By" } }
                @for r in recent.iter().filter(|r| r.status != ApprovalStatus::Pending).take(20) {
                    tr {
                        td { a href={ "/console/approvals/" (r.id) } { (r.request.tool) } }
                        td { (r.requester.agent) }
                        td class=(r.status.as_str()) { (r.status.as_str()) }
                        td { (r.settled_by.as_deref().unwrap_or("-")) }
                    }
                }
            }
        },
    )
}

/// Names joined by commas, or "none".
fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn detail_markup(r: &ApprovalRecord, session: &ConsoleSession, now: i64) -> Markup {
    let status = r.status_at(now);
    let q = &r.requester;
    html! {
        (nav(session))
        h1 { "Approve " code { (r.request.tool) } "?" }
        p { "Status: " strong #status class=(status.as_str()) { (status.as_str()) }
            @if let Some(by) = &r.settled_by { " by " (by) }
            @if let Some(reason) = &r.reason { " (" (reason) ")" } }
        dl {
            dt { "Agent" } dd #agent { (q.agent) }
            dt { "On behalf of" } dd #principal { (q.principal)
                @if let Some(provider) = &q.person_provider { " (a person, signed in at " (provider) ")" } }
            dt { "Model" } dd { (q.model.as_deref().unwrap_or("unknown")) }
            dt { "Composite identity" } dd { code { (q.composite_digest.as_deref().unwrap_or("-")) } }
            dt { "Delegation chain" } dd { (q.chain.join(" → ")) }
            dt { "Task" } dd { (q.task.as_deref().unwrap_or("-"))
                @if let Some(p) = &q.purpose { ": " (p) } }
            dt { "Service" } dd #service { (r.request.audience.as_deref().unwrap_or("-")) }
            dt { "Tool" } dd { code { (r.request.tool) } }
            dt { "Risk" } dd { (format!("{:?}", r.request.risk).to_lowercase()) }
            dt { "Why a human is asked" } dd { code { (r.request.code) } " "
                @for p in &r.request.policies { code { (p) } " " } }
            dt { "Expires" } dd { "in " (r.request.expires_at.saturating_sub(now)) " s" }
        }
        h2 { "Arguments" }
        pre #arguments { (pretty(&r.request.arguments)) }
        @if let Some(intent) = &r.request.intent {
            h2 { "The task's declared intent" }
            dl #intent {
                dt { "Declared before the agent read anything" } dd { code { (intent.scopes) } }
                dt { "Trusted" } dd #intent-trusted {
                    @if intent.trusted { "yes: nothing untrusted was read under the tokens it was declared from" }
                    @else { "no: untrusted content was read under the tokens it was declared from, so it may have been chosen by an injection" }
                }
                dt { "Arguments the intent constrains" } dd { (list_or_none(&intent.fixed)) }
                dt { "Arguments it leaves free" } dd #intent-free { (list_or_none(&intent.free)) }
            }
        }
        h2 { "Findings" }
        @if r.request.taint_sources.is_empty() && r.request.anomaly.is_none() {
            p { "None." }
        } @else {
            ul #findings {
                @for source in &r.request.taint_sources {
                    li { strong { "taint" } ": the session read untrusted content from " code { (source) } }
                }
                @if let Some(a) = &r.request.anomaly {
                    li { strong { "anomaly" } ": score " (a.score) ": "
                        (serde_json::to_string(&a.findings).unwrap_or_default()) }
                }
            }
        }
        @if !r.findings.is_empty() {
            h2 { "Notes from the agent" }
            p { small { "Not signed: what the agent's own code reported. Everything above is signed with the approval and checked again by the service." } }
            ul #agent-notes {
                @for f in &r.findings { li { strong { (f.kind) } ": " (f.detail) } }
            }
        }
        @if status == ApprovalStatus::Pending {
            form method="post" action={ "/console/approvals/" (r.id) "/approve" } {
                input type="hidden" name="csrf" value=(session.csrf);
                button #approve type="submit" { "Approve" }
            }
            form method="post" action={ "/console/approvals/" (r.id) "/deny" } {
                input type="hidden" name="csrf" value=(session.csrf);
                label { "Reason " input type="text" name="reason" maxlength="1000"; }
                button #deny type="submit" { "Deny" }
            }
        }
        p { small { "Request " code { (r.id) } ", digest " code { (r.request.digest) } } }
    }
}

async fn detail(
    State(broker): State<Broker>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let session = match console_session(&broker, &headers) {
        Ok(Some(s)) => s,
        Ok(None) => return to_login(),
        Err(e) => return e.into(),
    };
    match broker.store().approval(&id) {
        Ok(Some(r)) => page(
            StatusCode::OK,
            &format!("Approve {}?", r.request.tool),
            detail_markup(&r, &session, broker.now()),
        ),
        Ok(None) => error_page(
            StatusCode::NOT_FOUND,
            crate::codes::NOT_FOUND,
            "No such request.",
        ),
        Err(e) => OAuthError::from(e).into(),
    }
}

#[derive(Debug, Deserialize)]
struct DecisionForm {
    csrf: String,
    #[serde(default)]
    reason: Option<String>,
}

fn decide(
    broker: &Broker,
    headers: &HeaderMap,
    id: &str,
    approve: bool,
    form: Result<Form<DecisionForm>, FormRejection>,
) -> Response {
    let session = match console_session(broker, headers) {
        Ok(Some(s)) => s,
        Ok(None) => return to_login(),
        Err(e) => return e.into(),
    };
    let Ok(Form(form)) = form else {
        return error_page(
            StatusCode::BAD_REQUEST,
            crate::codes::BAD_REQUEST,
            "Malformed form.",
        );
    };
    if !ct_eq(&form.csrf, &session.csrf) {
        return error_page(
            StatusCode::FORBIDDEN,
            crate::codes::CSRF_FAILED,
            "This form did not come from your session. Nothing was changed.",
        );
    }
    match settle(broker, id, approve, &session.approver, form.reason) {
        Ok(_) => Redirect::to(&format!("/console/approvals/{id}")).into_response(),
        Err(e) => e.into(),
    }
}

async fn approve(
    State(broker): State<Broker>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<DecisionForm>, FormRejection>,
) -> Response {
    decide(&broker, &headers, &id, true, form)
}

async fn deny(
    State(broker): State<Broker>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<DecisionForm>, FormRejection>,
) -> Response {
    decide(&broker, &headers, &id, false, form)
}

fn cookie_header(name: &str, value: &str, max_age: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn login_markup(token: &str, failed: bool) -> Markup {
    html! {
        h1 { "agentiam approvals" }
        @if failed { p.bad #login-failed { "Wrong name or password." } }
        form method="post" action="/console/login" {
            input type="hidden" name="csrf" value=(token);
            p { label { "Approver " input #username type="text" name="username" autocomplete="username" required; } }
            p { label { "Password " input #password type="password" name="password" autocomplete="current-password" required; } }
            button #login type="submit" { "Sign in" }
        }
    }
}

fn login_response(broker: &Broker, status: StatusCode, failed: bool) -> Response {
    let Ok(token) = random_id() else {
        return error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            crate::codes::ENTROPY_UNAVAILABLE,
            "No randomness.",
        );
    };
    let mut r = page(status, "Sign in", login_markup(&token, failed));
    r.headers_mut().append(
        header::SET_COOKIE,
        cookie_header(
            LOGIN_COOKIE,
            &token,
            600,
            broker.console_settings().secure_cookies,
        ),
    );
    r
}

async fn login_page(State(broker): State<Broker>) -> Response {
    login_response(&broker, StatusCode::OK, false)
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    csrf: String,
    username: String,
    password: String,
}

async fn login(
    State(broker): State<Broker>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return error_page(
            StatusCode::BAD_REQUEST,
            crate::codes::BAD_REQUEST,
            "Malformed form.",
        );
    };
    if !cookie(&headers, LOGIN_COOKIE).is_some_and(|c| ct_eq(c, &form.csrf)) {
        return error_page(
            StatusCode::FORBIDDEN,
            crate::codes::CSRF_FAILED,
            "This sign-in form did not come from this console. Reload the sign-in page.",
        );
    }
    let name = form.username.chars().take(128).collect::<String>();
    let failures = broker
        .console_settings()
        .failed_logins
        .get(&name)
        .unwrap_or(0);
    if failures >= MAX_FAILED_LOGINS {
        if let Err(e) = broker.audit(approver_event(
            &broker,
            "approver_login",
            &name,
            agentiam_telemetry::Decision::deny(crate::codes::LOGIN_THROTTLED),
        )) {
            return e.into();
        }
        let mut r = error_page(
            StatusCode::TOO_MANY_REQUESTS,
            crate::codes::LOGIN_THROTTLED,
            "Too many failed sign-ins for this name. Try again in 15 minutes.",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("900"));
        return r;
    }
    let stored = match broker.store().approver(&form.username) {
        Ok(s) => s,
        Err(e) => return OAuthError::from(e).into(),
    };
    // Hash something even for an unknown name, so timing does not tell names apart.
    let password = form.password.clone();
    let ok = tokio::task::spawn_blocking(move || match &stored {
        Some(phc) => password_matches(&password, phc),
        None => {
            let _ = hash_password(&password);
            false
        }
    })
    .await
    .unwrap_or(false);
    let event = |outcome: agentiam_telemetry::Decision| {
        approver_event(&broker, "approver_login", &form.username, outcome)
    };
    if !ok {
        broker
            .console_settings()
            .failed_logins
            .insert(name, failures.saturating_add(1));
        if let Err(e) = broker.audit(event(agentiam_telemetry::Decision::deny(
            crate::codes::LOGIN_FAILED,
        ))) {
            return e.into();
        }
        return login_response(&broker, StatusCode::UNAUTHORIZED, true);
    }
    broker.console_settings().failed_logins.invalidate(&name);
    let (Ok(value), Ok(csrf)) = (random_id(), random_id()) else {
        return error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            crate::codes::ENTROPY_UNAVAILABLE,
            "No randomness.",
        );
    };
    let session = ConsoleSession {
        id_sha256: hex(&sha256(value.as_bytes())),
        approver: form.username.clone(),
        csrf,
        expires_at: broker.now().saturating_add(SESSION_SECS),
    };
    if let Err(e) = broker.audit(event(agentiam_telemetry::Decision::allow())) {
        return e.into();
    }
    if let Err(e) = broker.store().put_session(&session) {
        return OAuthError::from(e).into();
    }
    let secure = broker.console_settings().secure_cookies;
    let mut r = Redirect::to("/console").into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        cookie_header(SESSION_COOKIE, &value, SESSION_SECS, secure),
    );
    r.headers_mut().append(
        header::SET_COOKIE,
        cookie_header(LOGIN_COOKIE, "", 0, secure),
    );
    r
}

#[derive(Debug, Deserialize)]
struct LogoutForm {
    csrf: String,
}

async fn logout(
    State(broker): State<Broker>,
    headers: HeaderMap,
    form: Result<Form<LogoutForm>, FormRejection>,
) -> Response {
    if let (Ok(Some(session)), Ok(Form(form))) = (console_session(&broker, &headers), form)
        && ct_eq(&form.csrf, &session.csrf)
    {
        let _ = broker.store().end_session(&session.id_sha256);
    }
    let mut r = to_login();
    r.headers_mut().append(
        header::SET_COOKIE,
        cookie_header(
            SESSION_COOKIE,
            "",
            0,
            broker.console_settings().secure_cookies,
        ),
    );
    r
}

/// A record's time as RFC 3339 UTC with milliseconds.
fn when(ms: Option<i64>) -> String {
    ms.and_then(|ms| {
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
    })
    .and_then(|t| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    })
    .unwrap_or_else(|| "-".to_owned())
}

/// The activity log's verification status and its latest records.
fn audit_view(broker: &Broker) -> (Result<String, String>, Vec<Value>) {
    let settings = broker.console_settings();
    let Some(dir) = &settings.audit_dir else {
        return (
            Err("this broker has no activity log attached".into()),
            Vec::new(),
        );
    };
    if let Err(e) = broker.flush_audit() {
        return (Err(e.to_string()), Vec::new());
    }
    let store = match FileStore::open(dir) {
        Ok(s) => s,
        Err(e) => return (Err(e.to_string()), Vec::new()),
    };
    let checkpoint = store.read_checkpoint().ok().flatten();
    let status = match (&checkpoint, &settings.audit_verifier) {
        (Some(note), Some(v)) => verify_log(&store, Some((note, v))),
        _ => verify_log(&store, None),
    }
    .map(|report| {
        format!(
            "verified: {} records, hash chain and Merkle root intact{}",
            report.records,
            report
                .checkpoint
                .map(|c| format!(", signed checkpoint over {} records", c.size))
                .unwrap_or_default()
        )
    })
    .map_err(|e| format!("{} ({e})", e.code()));
    let mut lines = Vec::new();
    if let Ok(segments) = store.segments() {
        for seg in segments {
            if let Ok(bytes) = store.read(seg) {
                lines.extend(
                    String::from_utf8_lossy(&bytes)
                        .lines()
                        .filter_map(|l| serde_json::from_str::<Value>(l).ok()),
                );
            }
        }
    }
    let skip = lines.len().saturating_sub(TIMELINE_RECORDS);
    let mut recent: Vec<Value> = lines.into_iter().skip(skip).collect();
    recent.reverse();
    (status, recent)
}

async fn timeline(State(broker): State<Broker>, headers: HeaderMap) -> Response {
    let session = match console_session(&broker, &headers) {
        Ok(Some(s)) => s,
        Ok(None) => return to_login(),
        Err(e) => return e.into(),
    };
    let viewer = broker.clone();
    let (status, records) = match tokio::task::spawn_blocking(move || audit_view(&viewer)).await {
        Ok(view) => view,
        Err(e) => (Err(e.to_string()), Vec::new()),
    };
    let text = |v: &Value, p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    page(
        StatusCode::OK,
        "Activity log",
        html! {
            (nav(&session))
            h1 { "Activity log" }
            @match &status {
                Ok(s) => p #verification .good { (s) },
                Err(e) => p #verification .bad { "NOT VERIFIED: " (e) },
            }
            table #timeline {
                tr { th { "#" } th { "When (UTC)" } th { "Event" } th { "Who" } th { "Tool" } th { "Decision" } }
                @for r in &records {
                    tr {
                        td { (r.pointer("/seq").map(Value::to_string).unwrap_or_default()) }
                        td { (when(r.pointer("/event/time_unix_ms").and_then(Value::as_i64))) }
                        td { (text(r, "/event/kind")) }
                        td { (text(r, "/event/agent/spiffe_id")) }
                        td { (text(r, "/event/tool/name")) }
                        td class=(text(r, "/event/decision/outcome")) {
                            (text(r, "/event/decision/outcome")) " " code { (text(r, "/event/decision/code")) }
                        }
                    }
                }
            }
        },
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewApprover {
    name: String,
    password: String,
}

/// An activity-log event about an approver (`approver:<name>` as the actor).
fn approver_event(
    broker: &Broker,
    kind: &str,
    name: &str,
    outcome: agentiam_telemetry::Decision,
) -> agentiam_telemetry::AuditEvent {
    agentiam_telemetry::AuditEvent::new(
        kind,
        agentiam_telemetry::AgentRef {
            spiffe_id: format!("approver:{}", name.chars().take(128).collect::<String>()),
            composite_digest: None,
        },
        broker.now_ms(),
        outcome,
    )
}

/// `POST /admin/approvers` (administrator): creates or resets an approver's console login.
async fn add_approver(
    State(broker): State<Broker>,
    headers: HeaderMap,
    body: Result<Json<NewApprover>, JsonRejection>,
) -> Result<Response, OAuthError> {
    require_admin(&broker, &headers)?;
    let Json(new) = body.map_err(|e| refused_body(e.status(), "approver", &e))?;
    let name_ok = !new.name.is_empty()
        && new.name.len() <= 64
        && new
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c));
    if !name_ok {
        return Err(OAuthError::bad_request(
            "name: 1 to 64 letters, digits, '.', '_', '-' or '@'",
        ));
    }
    if new.password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(OAuthError::bad_request(format!(
            "password: at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    let password = new.password;
    let phc = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| crate::BrokerError::Config(e.to_string()))??;
    broker.store().put_approver(&new.name, &phc)?;
    let mut event = approver_event(
        &broker,
        "approver_registered",
        &new.name,
        agentiam_telemetry::Decision::allow(),
    );
    event.on_behalf_of = Some("admin".into());
    broker.audit(event)?;
    Ok((StatusCode::CREATED, Json(json!({"name": new.name}))).into_response())
}
