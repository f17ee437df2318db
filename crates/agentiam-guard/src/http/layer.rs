//! [`GuardLayer`] and the [`GuardService`] middleware service.

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use base64::Engine as _;
use http::{HeaderMap, Request, Response, header};
use http_body_util::BodyExt as _;
use serde_json::{Map, Value};
use tower::{Layer, Service};

use super::error::{
    Scheme, authentication_failed, confirmation_response, denial_response, too_large,
};
use super::future::ResponseFuture;
use super::{PeerCertificate, RouteMap};
use crate::approval::{Approval, MAX_APPROVAL_BYTES};
use crate::codes;
use crate::credentials::{Authenticator, Presented};
use crate::decision::{Decision, Denial};
use crate::engine::Guard as Engine;
use crate::request::{GuardRequest, HttpRequestInfo, Principal};

/// Default cap on a request body the layer reads for arguments.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;

/// Header carrying a human's approval: base64url (no padding) of the [`Approval`] JSON.
pub const APPROVAL_HEADER: &str = "agentiam-approval";

/// Header carrying a DPoP proof (RFC 9449).
const DPOP_HEADER: &str = "dpop";

#[derive(Debug, Clone)]
struct Shared {
    engine: Engine,
    auth: Authenticator,
    routes: RouteMap,
    origin: String,
    max_body: usize,
    resource_metadata: Option<ResourceMetadata>,
}

/// Where RFC 9728 protected-resource metadata is served (for a resource identified by its origin).
pub const PROTECTED_RESOURCE_METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// The service's RFC 9728 metadata: its URL (named in every 401 challenge) and the document.
#[derive(Debug, Clone)]
struct ResourceMetadata {
    url: String,
    document: Arc<str>,
}

impl ResourceMetadata {
    fn response(&self) -> Response<Body> {
        let mut response = Response::new(Body::from(self.document.to_string()));
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        headers.insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("public, max-age=300"),
        );
        response
    }
}

/// Puts [`GuardService`] in front of a service.
#[derive(Debug, Clone)]
pub struct GuardLayer {
    shared: Arc<Shared>,
}

impl GuardLayer {
    /// A layer deciding with `engine`, authenticating with `auth`, mapping routes to tools with
    /// `routes`. `origin` is this service's public origin (`https://api.example`), from which the
    /// DPoP `htu` of each request is built.
    pub fn new(
        engine: Engine,
        auth: Authenticator,
        routes: RouteMap,
        origin: impl Into<String>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                engine,
                auth,
                routes,
                origin: origin.into().trim_end_matches('/').to_owned(),
                max_body: DEFAULT_MAX_BODY_BYTES,
                resource_metadata: None,
            }),
        }
    }

    fn with(self, change: impl FnOnce(&mut Shared)) -> Self {
        let mut shared = (*self.shared).clone();
        change(&mut shared);
        Self {
            shared: Arc::new(shared),
        }
    }

    /// Reads at most `bytes` of a request body (larger bodies get 413).
    pub fn with_max_body(self, bytes: usize) -> Self {
        self.with(|s| s.max_body = bytes)
    }

    /// Publishes RFC 9728 protected-resource metadata at
    /// [`PROTECTED_RESOURCE_METADATA_PATH`] (public, before authentication): the resource is
    /// the service's origin, `authorization_servers` the issuers whose tokens it accepts (an
    /// agentiam broker's issuer URL), `scopes_supported` what its routes need. Every 401 then
    /// names the metadata (`resource_metadata` in `WWW-Authenticate`), so a client without a
    /// token discovers where to get one, and asks for it with `resource` = the origin (RFC 8707),
    /// which the broker makes the token's audience.
    pub fn with_protected_resource_metadata<I, S, J, T>(
        self,
        authorization_servers: I,
        scopes_supported: J,
    ) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
        J: IntoIterator<Item = T>,
        T: Into<String>,
    {
        let servers: Vec<String> = authorization_servers.into_iter().map(Into::into).collect();
        let scopes: Vec<String> = scopes_supported.into_iter().map(Into::into).collect();
        self.with(|s| {
            let mut document = serde_json::json!({
                "resource": s.origin,
                "authorization_servers": servers,
                "bearer_methods_supported": ["header"],
                "dpop_signing_alg_values_supported": ["EdDSA", "Ed25519", "ES256"],
            });
            if !scopes.is_empty()
                && let Some(map) = document.as_object_mut()
            {
                map.insert("scopes_supported".into(), scopes.into());
            }
            s.resource_metadata = Some(ResourceMetadata {
                url: format!("{}{PROTECTED_RESOURCE_METADATA_PATH}", s.origin),
                document: document.to_string().into(),
            });
        })
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = GuardService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GuardService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// Middleware that authenticates, decides with the guard, and calls the inner service only on allow.
#[derive(Debug, Clone)]
pub struct GuardService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> GuardService<S> {
    /// Wraps `inner` (use [`GuardLayer`] to build several).
    pub fn new(inner: S, layer: &GuardLayer) -> Self {
        layer.layer(inner)
    }
    /// A [`GuardLayer`] (alias of [`GuardLayer::new`]).
    pub fn layer(
        engine: Engine,
        auth: Authenticator,
        routes: RouteMap,
        origin: impl Into<String>,
    ) -> GuardLayer {
        GuardLayer::new(engine, auth, routes, origin)
    }
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// The credentials of one request, read from its headers.
struct Credentials<'a> {
    token: Option<&'a str>,
    proof: Option<&'a str>,
    scheme: Scheme,
}

/// Reads `Authorization` and `DPoP`.
///
/// The proof is taken only with the `DPoP` scheme: a DPoP-bound token sent as `Bearer` is
/// refused (`token.pop_required`) even with a proof beside it (RFC 9449 section 7.2), so a
/// client cannot downgrade the scheme. The `DPoP` scheme needs exactly one proof (section 4.3).
fn credentials(headers: &HeaderMap) -> Result<Credentials<'_>, (Denial, Scheme)> {
    let mut authorization = headers.get_all(header::AUTHORIZATION).iter();
    let (first, second) = (authorization.next(), authorization.next());
    if second.is_some() {
        return Err((
            Denial::new(
                agentiam_token::codes::MALFORMED,
                "more than one Authorization header",
            ),
            Scheme::Bearer,
        ));
    }
    let parsed = first
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split_once(' '))
        .map(|(scheme, token)| (scheme, token.trim()));
    match parsed {
        Some((s, token)) if s.eq_ignore_ascii_case("bearer") => Ok(Credentials {
            token: Some(token),
            proof: None,
            scheme: Scheme::Bearer,
        }),
        Some((s, token)) if s.eq_ignore_ascii_case("dpop") => {
            let mut proofs = headers.get_all(DPOP_HEADER).iter();
            match (proofs.next(), proofs.next()) {
                (Some(proof), None) => match proof.to_str() {
                    Ok(proof) => Ok(Credentials {
                        token: Some(token),
                        proof: Some(proof),
                        scheme: Scheme::Dpop,
                    }),
                    Err(_) => Err((
                        Denial::new(
                            agentiam_token::codes::POP_INVALID,
                            "the DPoP proof is not ASCII",
                        ),
                        Scheme::Dpop,
                    )),
                },
                (None, _) => Err((
                    Denial::new(
                        agentiam_token::codes::POP_REQUIRED,
                        "the DPoP scheme needs a DPoP proof header",
                    ),
                    Scheme::Dpop,
                )),
                (Some(_), Some(_)) => Err((
                    Denial::new(
                        agentiam_token::codes::POP_INVALID,
                        "more than one DPoP proof header",
                    ),
                    Scheme::Dpop,
                )),
            }
        }
        // No token, or a scheme we do not take (Basic, ...): the certificate alone, if any.
        _ => Ok(Credentials {
            token: None,
            proof: None,
            scheme: Scheme::Bearer,
        }),
    }
}

fn arguments_invalid(message: impl Into<String>) -> Denial {
    Denial::new(codes::ARGUMENTS_INVALID, message)
}

fn insert(args: &mut Map<String, Value>, name: String, value: Value) -> Result<(), Denial> {
    if args.contains_key(&name) {
        return Err(arguments_invalid(format!(
            "argument {:?} is given twice (path, query or body)",
            agentiam_identity::clip_for_message(&name)
        )));
    }
    args.insert(name, value);
    Ok(())
}

/// Whether the request says its body is JSON (`application/json` or `*/*+json`).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            let mime = ct.split(';').next().unwrap_or_default().trim();
            mime.eq_ignore_ascii_case("application/json")
                || mime
                    .len()
                    .checked_sub(5)
                    .and_then(|at| mime.get(at..))
                    .is_some_and(|suffix| suffix.eq_ignore_ascii_case("+json"))
        })
}

/// Path parameters, query parameters and a JSON object body, as one argument object.
fn arguments(
    params: Vec<(String, String)>,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Value, Denial> {
    // The body's object is the argument map, so its members are not copied again.
    let mut args = if is_json(headers) && !body.is_empty() {
        let mut de = serde_json::Deserializer::from_slice(body);
        match serde::de::DeserializeSeed::deserialize(Strict, &mut de).and_then(|v| {
            de.end()?;
            Ok(v)
        }) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err(arguments_invalid("a JSON body must be an object")),
            Err(e) => return Err(arguments_invalid(format!("body is not JSON: {e}"))),
        }
    } else if !body.is_empty() {
        // A body the guard cannot read is one it cannot check: refused, never passed on unread.
        let declared = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none");
        return Err(arguments_invalid(format!(
            "the request has a body with content-type {:?}: the guard reads only JSON bodies, so send it as application/json",
            agentiam_identity::clip_for_message(declared)
        )));
    } else {
        Map::new()
    };
    for (k, v) in params {
        insert(&mut args, k, Value::String(v))?;
    }
    if let Some(q) = query {
        for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
            insert(&mut args, k.into_owned(), Value::String(v.into_owned()))?;
        }
    }
    Ok(Value::Object(args))
}

/// Deserializes JSON into a [`Value`] but refuses an object with a duplicate member name,
/// at any depth.
///
/// `serde_json::Value` keeps the last duplicate; other parsers keep the first or refuse.
/// If the guard decided on `{"amount": 1, "amount": 500}` as 1 and the service read 500, the
/// constraint would be bypassed, so such a body is refused (`guard.arguments_invalid`), as an
/// argument given twice in path, query and body is.
struct Strict;

impl<'de> serde::de::DeserializeSeed<'de> for Strict {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // JSON text has no NaN or infinity; `from` maps them to null all the same.
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element_seed(Strict)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            let value = map.next_value_seed(Strict)?;
            if members.contains_key(&name) {
                return Err(serde::de::Error::custom(format_args!(
                    "member {:?} appears twice in one object",
                    agentiam_identity::clip_for_message(&name)
                )));
            }
            members.insert(name, value);
        }
        Ok(Value::Object(members))
    }
}

fn approval(headers: &HeaderMap) -> Result<Option<Approval>, Denial> {
    let Some(value) = headers.get(APPROVAL_HEADER) else {
        return Ok(None);
    };
    let invalid = |why: &str| Denial::new(codes::CONFIRMATION_INVALID, why.to_owned());
    let bytes = value.as_bytes();
    if bytes.len() > MAX_APPROVAL_BYTES * 2 {
        return Err(invalid("approval header is too large"));
    }
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(bytes)
        .map_err(|_| invalid("approval header is not base64url"))?;
    let text = std::str::from_utf8(&json).map_err(|_| invalid("approval is not UTF-8"))?;
    Approval::from_json(text)
        .map(Some)
        .map_err(|e| invalid(&e.to_string()))
}

impl<S, B> Service<Request<B>> for GuardService<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The inner service was driven to readiness by `poll_ready`; a clone may not be ready.
        // Take the ready one for this request and leave the clone for the next (tower's
        // documented clone-and-swap), since the call happens later, inside the future.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture {
            inner: Box::pin(guard(self.shared.clone(), inner, request)),
        }
    }
}

/// One request: authenticate, map the route, read the arguments, decide, and call `inner` only on allow.
async fn guard<S, B>(
    shared: Arc<Shared>,
    mut inner: S,
    request: Request<B>,
) -> Result<Response<Body>, S::Error>
where
    S: Service<Request<Body>, Response = Response<Body>>,
    B: http_body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut parts, body) = request.into_parts();
    let metadata_url = shared.resource_metadata.as_ref().map(|m| m.url.as_str());
    if let Some(metadata) = &shared.resource_metadata
        && parts.method == http::Method::GET
        && parts.uri.path() == PROTECTED_RESOURCE_METADATA_PATH
    {
        // RFC 9728: public, before authentication; nothing here is secret.
        return Ok(metadata.response());
    }
    let credentials = match credentials(&parts.headers) {
        Ok(c) => c,
        Err((denial, scheme)) => return Ok(authentication_failed(&denial, scheme, metadata_url)),
    };
    let scheme = credentials.scheme;
    // The DPoP `htu`; only a proof needs it.
    let url = match credentials.proof {
        Some(_) => format!("{}{}", shared.origin, parts.uri.path()),
        None => String::new(),
    };
    let peer = parts.extensions.get::<PeerCertificate>();
    let presented = Presented {
        token: credentials.token,
        dpop_proof: credentials.proof,
        client_certificate: peer.map(PeerCertificate::der),
        method: parts.method.as_str(),
        url: &url,
    };
    // Authentication comes first, so anonymous callers learn nothing about the route map
    // and cannot make the service buffer a body.
    let principal = match shared.auth.authenticate(&presented) {
        Ok(p) => p,
        Err(denial) => return Ok(authentication_failed(&denial, scheme, metadata_url)),
    };
    let http = HttpRequestInfo {
        method: parts.method.as_str(),
        path: parts.uri.path(),
    };
    let Some((tool, params)) = shared.routes.find(http.method, http.path) else {
        // The engine denies the empty tool name (no tool may be registered under it), so an
        // unmapped route is audited and observed by the behaviour check like any refusal.
        let decision = shared
            .engine
            .decide(&GuardRequest::new(&principal, "", &Value::Null).with_http(http));
        let code = decision.code().unwrap_or(codes::UNKNOWN_ACTION).to_owned();
        let denial = Denial::new(
            code,
            format!("no tool is mapped to {} {}", http.method, http.path),
        );
        return Ok(denial_response(&denial, scheme, None, metadata_url));
    };
    let bytes = match http_body_util::Limited::new(body, shared.max_body)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return Ok(too_large(shared.max_body));
        }
        Err(e) => {
            let denial = arguments_invalid(format!("request body could not be read: {e}"));
            return Ok(denial_response(&denial, scheme, None, metadata_url));
        }
    };
    let args = match arguments(params, parts.uri.query(), &parts.headers, &bytes) {
        Ok(a) => Arc::new(a),
        Err(denial) => return Ok(denial_response(&denial, scheme, None, metadata_url)),
    };
    let approval = match approval(&parts.headers) {
        Ok(a) => a,
        Err(denial) => return Ok(denial_response(&denial, scheme, None, metadata_url)),
    };
    let decision = {
        let mut req = GuardRequest::shared(&principal, tool, &args).with_http(http);
        req.approval = approval.as_ref();
        shared.engine.decide(&req)
    };
    match decision {
        Decision::Allow(_) => {
            parts.extensions.insert::<Arc<Principal>>(principal);
            inner
                .call(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Decision::Deny(denial) => {
            let scope = shared
                .engine
                .tool(tool)
                .map(|s| format!("{}:{}", s.resource(), s.action()));
            Ok(denial_response(
                &denial,
                scheme,
                scope.as_deref(),
                metadata_url,
            ))
        }
        Decision::NeedsConfirmation(request) => Ok(confirmation_response(&request)),
    }
}
