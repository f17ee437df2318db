//! `agentiam._native`: the PyO3 layer under the `agentiam` Python package.
//!
//! Conversions (Python values to JSON arguments, refusals to `Refusal` objects) and error mapping only;
//! every decision is made by `agentiam-guard`. The GIL is released while Rust decides.

use std::sync::Arc;

mod audit;
mod filter;
mod keys;

use agentiam_guard::hooks::OutputVerdict;
use agentiam_guard::{
    Approval, ApprovalRequest, AuditSink, Decision, GuardConfig, Session, ToolCall, ToolInterceptor,
};
use agentiam_identity::Jwks;
use agentiam_telemetry::AuditLog;
use agentiam_token::{Clock, FixedClock, SystemClock};
use pyo3::exceptions::PyRuntimeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::{Map, Value};

/// Raises any reason-coded error (every agentiam error type implements
/// [`agentiam_identity::ReasonCode`]) as the exception of its code's family ([`error`]).
pub(crate) trait OrRaise<T> {
    /// The value, or the error raised as a Python exception carrying its code.
    fn or_raise(self, py: Python<'_>) -> PyResult<T>;
}

impl<T, E: agentiam_identity::ReasonCode + std::fmt::Display> OrRaise<T> for Result<T, E> {
    fn or_raise(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| error(py, e.code(), &e.to_string()))
    }
}

/// Deepest nesting of arguments converted from Python.
const MAX_DEPTH: usize = 32;

/// The exception for `code`: the class of its family from `agentiam.exceptions` (the one place
/// the hierarchy is defined), built with `(code, message)` so `.code` and `.message` are set.
/// One exhaustive match on the code's family decides the class.
pub(crate) fn error(py: Python<'_>, code: &str, message: &str) -> PyErr {
    let class = match code.split('.').next().unwrap_or_default() {
        "token" => "TokenError",
        "delegation" => "DelegationError",
        "audit" => "AuditError",
        // The guard could not use a file or its shared state: not a configuration mistake.
        _ if code == agentiam_guard::codes::IO
            || code == agentiam_guard::codes::STATE_UNAVAILABLE =>
        {
            "AgentIAMError"
        }
        "guard" | "key" | "identity" | "scope" | "baseline" => "ConfigurationError",
        _ => "AgentIAMError",
    };
    let built = py
        .import("agentiam.exceptions")
        .and_then(|module| module.getattr(class))
        .and_then(|class| class.call1((code, message)));
    match built {
        Ok(instance) => PyErr::from_value(instance),
        // Only when the package itself is missing (the extension imported on its own).
        Err(_) => PyRuntimeError::new_err(format!("{code}: {message}")),
    }
}

/// A Python value (dict, list, tuple, str, int, float, bool, None) as JSON.
pub(crate) fn to_json(obj: &Bound<'_, PyAny>, depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err(format!("arguments nest deeper than {MAX_DEPTH}"));
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    // bool before int: Python's bool is an int.
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if let Ok(i) = obj.cast::<PyInt>() {
        if let Ok(v) = i.extract::<i64>() {
            return Ok(Value::from(v));
        }
        if let Ok(v) = i.extract::<u64>() {
            return Ok(Value::from(v));
        }
        return Err("an integer argument is too large for JSON".into());
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        let v = f.value();
        return serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| "NaN and infinities are not JSON".to_owned());
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return s
            .to_str()
            .map(|s| Value::String(s.to_owned()))
            .map_err(|e| e.to_string());
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut map = Map::new();
        for (k, v) in d.iter() {
            let key = k
                .cast::<PyString>()
                .map_err(|_| "argument keys must be strings".to_owned())?;
            let key = key.to_str().map_err(|e| e.to_string())?.to_owned();
            map.insert(key, to_json(&v, depth + 1)?);
        }
        return Ok(Value::Object(map));
    }
    if let Ok(l) = obj.cast::<PyList>() {
        return l
            .iter()
            .map(|v| to_json(&v, depth + 1))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array);
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        return t
            .iter()
            .map(|v| to_json(&v, depth + 1))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array);
    }
    let type_name = obj
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default();
    Err(format!("an argument of type {type_name} is not JSON"))
}

/// A call the guard did not allow, as Python reads it: `kind` is `"deny"` or `"confirm"`,
/// `code` the stable reason code, `message` for people, and `approval_request` the JSON a
/// human signs (a `"confirm"` only).
#[pyclass(frozen, get_all, name = "Refusal", module = "agentiam._native")]
struct PyRefusal {
    kind: &'static str,
    code: String,
    message: String,
    approval_request: Option<String>,
}

impl PyRefusal {
    fn deny(code: &str, message: impl Into<String>) -> Self {
        Self {
            kind: "deny",
            code: code.to_owned(),
            message: message.into(),
            approval_request: None,
        }
    }

    /// `None` for an allow.
    fn of(decision: Decision) -> Option<Self> {
        match decision {
            Decision::Allow(_) => None,
            Decision::Deny(d) => Some(Self::deny(d.code(), d.message())),
            Decision::NeedsConfirmation(r) => Some(Self {
                kind: "confirm",
                code: r.code.clone(),
                message: "a human's approval is required".to_owned(),
                approval_request: serde_json::to_string(&*r).ok(),
            }),
        }
    }
}

#[pymethods]
impl PyRefusal {
    fn __repr__(&self) -> String {
        format!(
            "Refusal(kind={:?}, code={:?}, message={:?})",
            self.kind, self.code, self.message
        )
    }
}

/// A guard built from a configuration document (see `agentiam_guard::GuardConfig`).
#[pyclass(frozen, name = "Guard", module = "agentiam._native")]
struct PyGuard {
    interceptor: ToolInterceptor,
    auth: agentiam_guard::Authenticator,
    sink: Option<Arc<AuditSink>>,
    log: Option<Arc<AuditLog>>,
}

#[pymethods]
impl PyGuard {
    /// `config_json`: the guard configuration; `now`: a fixed clock (tests); `audit_log`: write
    /// every decision to this activity log (arguments redacted per the tools' `redact` names).
    #[new]
    #[pyo3(signature = (config_json, now = None, audit_log = None))]
    fn new(
        py: Python<'_>,
        config_json: &str,
        now: Option<i64>,
        audit_log: Option<&audit::PyAuditLog>,
    ) -> PyResult<Self> {
        let config = GuardConfig::from_json(config_json).or_raise(py)?;
        let clock: Arc<dyn Clock> = match now {
            Some(t) => Arc::new(FixedClock::new(t)),
            None => Arc::new(SystemClock),
        };
        let (mut builder, auth) = config.builder(clock).or_raise(py)?;
        let (mut sink, mut log) = (None, None);
        if let Some(opened) = audit_log {
            let s = Arc::new(AuditSink::new(
                opened.log.clone(),
                config.redaction(),
                "python",
                65_536,
            ));
            opened.attach(s.clone(), config.redaction());
            builder = builder.sink(s.clone());
            sink = Some(s);
            log = Some(opened.log.clone());
        }
        let guard = builder.build().or_raise(py)?;
        Ok(Self {
            interceptor: ToolInterceptor::new(guard),
            auth,
            sink,
            log,
        })
    }

    /// Authenticates `token` (with a DPoP proof for `method url` when it is bound) and opens a session.
    #[pyo3(signature = (token, session_id, dpop_proof = None, method = "POST", url = ""))]
    fn session(
        &self,
        py: Python<'_>,
        token: &str,
        session_id: &str,
        dpop_proof: Option<&str>,
        method: &str,
        url: &str,
    ) -> PyResult<PySession> {
        let presented = agentiam_guard::Presented {
            token: Some(token),
            dpop_proof,
            client_certificate: None,
            method,
            url,
        };
        let principal = py
            .detach(|| self.auth.authenticate(&presented))
            .map_err(|d| error(py, d.code(), d.message()))?;
        Ok(PySession {
            interceptor: self.interceptor.clone(),
            session: Arc::new(Session::new(session_id, principal)),
        })
    }

    /// Revokes at this guard, until `until` (seconds since the epoch): `kind` is `token` (a
    /// `jti`, with everything delegated from it), `agent` (a SPIFFE ID) or `task`.
    fn revoke(&self, py: Python<'_>, kind: &str, value: &str, until: i64) -> PyResult<()> {
        let what = match kind {
            "token" => agentiam_token::Revocation::Token(value.to_owned()),
            "agent" => agentiam_token::Revocation::Agent(value.to_owned()),
            "task" => agentiam_token::Revocation::Task(value.to_owned()),
            other => {
                return Err(error(
                    py,
                    agentiam_guard::codes::REVOCATION_INVALID,
                    &format!("revoke a token, agent or task, not {other:?}"),
                ));
            }
        };
        self.interceptor.guard().revoke(what, until).or_raise(py)
    }

    /// Follows the issuer's key rotation: when a token names an unknown key, `fetch()` (a
    /// callable returning the issuer's JWKS as JSON text) is called, at most once every
    /// `min_interval_secs`, and the keys are replaced.
    fn follow_jwks(&self, fetch: Py<PyAny>, min_interval_secs: i64) {
        self.auth.verifier().verifier().follow_jwks(
            move || {
                Python::attach(|py| {
                    let text: String = fetch
                        .call0(py)
                        .and_then(|v| v.extract(py))
                        .map_err(|e| e.to_string())?;
                    Jwks::from_json(&text).map_err(|e| e.to_string())
                })
            },
            min_interval_secs,
        );
    }

    /// The learned baseline of a role (or `role<parent-role`) as JSON, if the guard has one.
    fn baseline(&self, py: Python<'_>, role: &str) -> PyResult<Option<String>> {
        let baselines = self.baselines(py)?;
        baselines
            .profile(role)
            .map(|p| serde_json::to_string(&p))
            .transpose()
            .map_err(|e| {
                error(
                    py,
                    agentiam_guard::codes::BASELINE_UNREADABLE,
                    &e.to_string(),
                )
            })
    }

    /// Writes the learned baselines to `path` (atomically).
    fn save_baselines(&self, py: Python<'_>, path: &str) -> PyResult<()> {
        let baselines = self.baselines(py)?;
        py.detach(|| baselines.save(std::path::Path::new(path)))
            .map_err(|e| error(py, agentiam_guard::codes::IO, &e))
    }

    /// Waits until every decision so far is in the activity log and the log is durable.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        if let Some(sink) = &self.sink {
            sink.drain()
                .map_err(|e| error(py, agentiam_telemetry::codes::IO, &e))?;
        }
        if let Some(log) = &self.log {
            log.flush().or_raise(py)?;
        }
        Ok(())
    }
}

impl PyGuard {
    fn baselines(&self, py: Python<'_>) -> PyResult<agentiam_guard::Baselines> {
        self.interceptor
            .guard()
            .baselines()
            .cloned()
            .ok_or_else(|| {
                error(
                    py,
                    agentiam_guard::codes::BASELINE_NOT_CONFIGURED,
                    "this guard has no baselines (give baselines={...})",
                )
            })
    }
}

/// One agent run: its principal and whether it has read untrusted content.
#[pyclass(frozen, name = "Session", module = "agentiam._native")]
struct PySession {
    interceptor: ToolInterceptor,
    session: Arc<Session>,
}

#[pymethods]
impl PySession {
    /// Decides a call: `None` when it may run (the hot path builds nothing), else a `Refusal`
    /// (kind `deny` or `confirm`).
    #[pyo3(signature = (tool, arguments, call_id = None, approval_json = None))]
    fn before(
        &self,
        py: Python<'_>,
        tool: &str,
        arguments: &Bound<'_, PyAny>,
        call_id: Option<&str>,
        approval_json: Option<&str>,
    ) -> PyResult<Option<PyRefusal>> {
        let args = match to_json(arguments, 0) {
            Ok(v) => Arc::new(v),
            Err(message) => {
                return Ok(Some(PyRefusal::deny(
                    agentiam_guard::codes::ARGUMENTS_INVALID,
                    message,
                )));
            }
        };
        let approval = match approval_json.map(Approval::from_json).transpose() {
            Ok(a) => a,
            Err(e) => {
                // Refused before the guard is asked, and recorded like its own denials.
                let refusal = Decision::Deny(agentiam_guard::Denial::new(e.code(), e.to_string()));
                py.detach(|| {
                    let mut call = ToolCall::shared(tool, &args);
                    call.call_id = call_id;
                    self.interceptor
                        .record_refusal(&self.session, &call, &refusal);
                });
                return Ok(Some(PyRefusal::deny(e.code(), e.to_string())));
            }
        };
        let decision = py.detach(|| {
            let mut call = ToolCall::shared(tool, &args);
            call.call_id = call_id;
            call.approval = approval.as_ref();
            self.interceptor.before(&self.session, &call)
        });
        Ok(PyRefusal::of(decision))
    }

    /// Records a tool's output; returns the verdict (`clean`, `untrusted`, `injection`).
    #[pyo3(signature = (tool, output, failed = false, call_id = None))]
    fn after<'py>(
        &self,
        py: Python<'py>,
        tool: &str,
        output: &str,
        failed: bool,
        call_id: Option<&str>,
    ) -> Bound<'py, PyString> {
        let args = Value::Null;
        let verdict = py.detach(|| {
            let mut call = ToolCall::new(tool, &args);
            call.call_id = call_id;
            self.interceptor.after(&self.session, &call, output, failed)
        });
        // Interned: the hot path allocates no string for its answer.
        match verdict {
            OutputVerdict::Clean => intern!(py, "clean"),
            OutputVerdict::Untrusted => intern!(py, "untrusted"),
            OutputVerdict::Injection(_) => intern!(py, "injection"),
        }
        .clone()
    }

    /// Checks an approval handed to the session before any call presents it (approver,
    /// expiry, nonce, signature): `None` when it may be kept, else the `Refusal`.
    fn screen_approval(&self, py: Python<'_>, approval_json: &str) -> Option<PyRefusal> {
        let approval = match Approval::from_json(approval_json) {
            Ok(a) => a,
            Err(e) => return Some(PyRefusal::deny(e.code(), e.to_string())),
        };
        let guard = self.interceptor.guard();
        py.detach(|| guard.screen_approval(self.session.principal(), &approval))
            .err()
            .map(|d| PyRefusal::deny(d.code(), d.message()))
    }

    /// Whether a kept approval is for exactly this call (tool, arguments, principal, task).
    fn approval_fits(
        &self,
        py: Python<'_>,
        approval_json: &str,
        tool: &str,
        arguments: &Bound<'_, PyAny>,
    ) -> bool {
        let (Ok(approval), Ok(args)) = (Approval::from_json(approval_json), to_json(arguments, 0))
        else {
            return false;
        };
        let guard = self.interceptor.guard();
        py.detach(|| guard.approval_fits(self.session.principal(), tool, &args, &approval))
    }

    /// Records that a human refused (or never answered) a call that needed approval; returns
    /// the `Refusal` (`guard.confirmation_denied`).
    #[pyo3(signature = (tool, arguments, call_id = None, reason = "no human approved the call"))]
    fn refused(
        &self,
        py: Python<'_>,
        tool: &str,
        arguments: &Bound<'_, PyAny>,
        call_id: Option<&str>,
        reason: &str,
    ) -> PyRefusal {
        // Arguments that do not convert were refused before any approval was asked for.
        let args = to_json(arguments, 0).unwrap_or(Value::Null);
        let decision = py.detach(|| {
            let mut call = ToolCall::new(tool, &args);
            call.call_id = call_id;
            self.interceptor.refused(&self.session, &call, reason)
        });
        // `refused` only ever denies; anything else would still be a refusal here.
        PyRefusal::of(decision).unwrap_or_else(|| {
            PyRefusal::deny(
                agentiam_guard::codes::CONFIRMATION_DENIED,
                "no human approved the call",
            )
        })
    }

    /// Whether the session has read untrusted content.
    #[getter]
    fn tainted(&self) -> bool {
        self.interceptor.is_tainted(&self.session)
    }

    /// Marks the session as having read untrusted content from `source`; with `text`, also
    /// remembers it so arguments copied from it are flagged.
    /// The task's taint is shared with every session, guard and worker of the task; a shared
    /// state that cannot record it raises (the session itself is tainted either way).
    #[pyo3(signature = (source, text = None))]
    fn taint(&self, py: Python<'_>, source: &str, text: Option<&str>) -> PyResult<()> {
        py.detach(|| match text {
            Some(text) => self.interceptor.read_untrusted(&self.session, source, text),
            None => self.interceptor.taint(&self.session, source),
        })
        .or_raise(py)
    }

    /// The principal on whose behalf the agent acts.
    #[getter]
    fn subject(&self) -> String {
        self.session.principal().subject().to_owned()
    }

    /// The agent presenting the credential.
    #[getter]
    fn presenter(&self) -> String {
        self.session.principal().presenter().to_owned()
    }

    /// The task id.
    #[getter]
    fn task(&self) -> Option<String> {
        self.session.principal().task().map(str::to_owned)
    }

    /// The scopes the token grants, space-separated as in its `scope` claim.
    #[getter]
    fn scope(&self) -> String {
        self.session.principal().scopes().to_string()
    }
}

fn algorithm(py: Python<'_>, name: &str) -> PyResult<agentiam_identity::Algorithm> {
    match name {
        "EdDSA" | "eddsa" | "Ed25519" => Ok(agentiam_identity::Algorithm::EdDSA),
        "ES256" | "es256" => Ok(agentiam_identity::Algorithm::ES256),
        other => Err(error(
            py,
            agentiam_identity::codes::KEY_UNSUPPORTED,
            &format!("algorithm {other:?}: EdDSA or ES256"),
        )),
    }
}

/// A private signing key (Ed25519 or P-256); never printed.
#[pyclass(frozen, name = "SigningKey", module = "agentiam._native")]
pub(crate) struct PySigningKey(agentiam_identity::SigningKey);

#[pymethods]
impl PySigningKey {
    /// A fresh key: `EdDSA` (default) or `ES256`.
    #[staticmethod]
    #[pyo3(signature = (alg = "EdDSA"))]
    fn generate(py: Python<'_>, alg: &str) -> PyResult<Self> {
        agentiam_identity::SigningKey::generate(algorithm(py, alg)?)
            .map(Self)
            .or_raise(py)
    }

    /// A key from its private JWK (JSON).
    #[staticmethod]
    fn from_private_jwk(py: Python<'_>, jwk: &str) -> PyResult<Self> {
        agentiam_identity::SigningKey::from_private_jwk(jwk)
            .map(Self)
            .or_raise(py)
    }

    /// The private JWK (JSON): store it as a secret.
    fn private_jwk(&self, py: Python<'_>) -> PyResult<String> {
        self.0.to_private_jwk().map(|j| j.to_string()).or_raise(py)
    }

    /// The public JWK (JSON).
    fn public_jwk(&self, py: Python<'_>) -> PyResult<String> {
        serde_json::to_string(&self.0.public_key().to_jwk())
            .map_err(|e| error(py, agentiam_identity::codes::KEY_INVALID, &e.to_string()))
    }

    /// The key id (RFC 7638 thumbprint unless set).
    #[getter]
    fn kid(&self) -> String {
        self.0.kid().to_owned()
    }

    /// The RFC 7638 thumbprint of the public key (what `cnf.jkt` names).
    #[getter]
    fn thumbprint(&self) -> String {
        self.0.public_key().thumbprint()
    }

    /// A fresh RFC 7523 client assertion (`private_key_jwt`) for `client_id` (the agent's
    /// SPIFFE ID) addressed to `audience` (the broker's token endpoint), valid `lifetime`
    /// seconds (at most 300), with a random `jti`. Each assertion is accepted once.
    #[pyo3(signature = (client_id, audience, lifetime = 60))]
    fn client_assertion(
        &self,
        py: Python<'_>,
        client_id: &str,
        audience: &str,
        lifetime: i64,
    ) -> PyResult<String> {
        use agentiam_token::Entropy as _;
        let mut jti = [0u8; 16];
        agentiam_token::SystemEntropy.fill(&mut jti).or_raise(py)?;
        let jti: String = jti.iter().map(|b| format!("{b:02x}")).collect();
        agentiam_token::create_client_assertion(
            &self.0,
            client_id,
            audience,
            &jti,
            SystemClock.now(),
            lifetime,
        )
        .or_raise(py)
    }

    fn __repr__(&self) -> String {
        format!("SigningKey(kid={:?})", self.0.kid())
    }
}

/// A composite agent identity: SPIFFE ID, model, system prompt and tools, runtime.
#[pyclass(frozen, name = "AgentIdentity", module = "agentiam._native")]
struct PyAgentIdentity(
    agentiam_identity::AgentIdentity,
    /// What the agent presents to the broker's token endpoint as attestation evidence (JSON).
    String,
);

#[pymethods]
impl PyAgentIdentity {
    /// `model` is `(provider, name, version)`; `tools` a list of `{"name", "description", "input_schema"}`;
    /// `runtime` a dict of attributes with its `kind`.
    #[new]
    #[pyo3(signature = (spiffe_id, model, system_prompt, tools, runtime_kind = "process", runtime = None))]
    fn new(
        py: Python<'_>,
        spiffe_id: &str,
        model: (String, String, String),
        system_prompt: &str,
        tools: &Bound<'_, PyAny>,
        runtime_kind: &str,
        runtime: Option<std::collections::BTreeMap<String, String>>,
    ) -> PyResult<Self> {
        let tools = match to_json(tools, 0)
            .map_err(|m| error(py, agentiam_identity::codes::INVALID, &m))?
        {
            Value::Array(items) => items,
            _ => {
                return Err(error(
                    py,
                    agentiam_identity::codes::INVALID,
                    "tools must be a list",
                ));
            }
        };
        let mut descriptors = Vec::with_capacity(tools.len());
        for t in tools {
            let field = |k: &str| {
                t.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            descriptors.push(agentiam_identity::ToolDescriptor::new(
                field("name"),
                field("description"),
                t.get("input_schema").cloned().unwrap_or(Value::Null),
            ));
        }
        let mut rt = agentiam_identity::RuntimeDescriptor::new(runtime_kind);
        for (k, v) in runtime.unwrap_or_default() {
            rt = rt.with(k, v);
        }
        let id = agentiam_identity::parse_spiffe_id(spiffe_id).or_raise(py)?;
        let model = agentiam_identity::ModelRef::new(model.0, model.1, model.2);
        let configuration = agentiam_identity::AgentConfiguration::new(system_prompt, descriptors);
        let evidence =
            serde_json::json!({"model": model, "configuration": configuration, "runtime": rt})
                .to_string();
        agentiam_identity::AgentIdentity::new(id, model, &configuration, rt)
            .map(|identity| Self(identity, evidence))
            .or_raise(py)
    }

    /// The attestation evidence the broker's token endpoint takes (`agent_attestation`, JSON):
    /// the model, the system prompt with the tool manifest, and the runtime.
    fn attestation_evidence(&self) -> String {
        self.1.clone()
    }

    /// The SPIFFE ID.
    #[getter]
    fn spiffe_id(&self) -> String {
        self.0.spiffe_id().to_string()
    }

    /// `sha256:<hex>` over every component.
    #[getter]
    fn composite_digest(&self) -> String {
        self.0.composite_digest().to_string()
    }
}

/// Issues task tokens for registered agents.
#[pyclass(frozen, name = "Issuer", module = "agentiam._native")]
struct PyIssuer(Arc<agentiam_token::Issuer>);

#[pymethods]
impl PyIssuer {
    /// An issuer named `issuer` signing with `key`.
    #[new]
    fn new(py: Python<'_>, issuer: &str, key: &PySigningKey) -> PyResult<Self> {
        let key = keys::copy_key(py, &key.0)?;
        Ok(Self(Arc::new(agentiam_token::Issuer::new(
            issuer,
            agentiam_identity::KeySet::new(key),
        ))))
    }

    /// Registers what `agent` may ever be given (space-separated scopes), pinned to its identity.
    fn register(&self, py: Python<'_>, agent: &PyAgentIdentity, max_scopes: &str) -> PyResult<()> {
        let scopes = agentiam_token::ScopeSet::parse(max_scopes).or_raise(py)?;
        self.0.register(
            agent.0.spiffe_id(),
            agentiam_token::AgentRegistration::new(scopes).pin_identity(agent.0.composite_digest()),
        );
        Ok(())
    }

    /// A task token for `agent`; `intent=True` declares its scopes the task's intent.
    #[pyo3(signature = (agent, audience, scopes, task_id, purpose, ttl = None, dpop_jkt = None, intent = false))]
    #[allow(
        clippy::too_many_arguments,
        reason = "mirrors the Python keyword arguments"
    )]
    fn issue(
        &self,
        py: Python<'_>,
        agent: &PyAgentIdentity,
        audience: &str,
        scopes: &str,
        task_id: &str,
        purpose: &str,
        ttl: Option<i64>,
        dpop_jkt: Option<&str>,
        intent: bool,
    ) -> PyResult<String> {
        let scopes = agentiam_token::ScopeSet::parse(scopes).or_raise(py)?;
        let mut request =
            agentiam_token::TokenRequest::new(&agent.0, audience, scopes, task_id, purpose);
        request.declare_intent = intent;
        if let Some(ttl) = ttl {
            request = request.with_ttl(ttl);
        }
        if let Some(jkt) = dpop_jkt {
            request = request.bind_dpop(jkt);
        }
        self.0.issue(&request).map(|t| t.token).or_raise(py)
    }

    /// The public keys (JWKS JSON) verifiers need.
    fn jwks(&self) -> String {
        self.0.jwks().to_json()
    }

    /// Makes `next` the signing key; the old key stays in `jwks()` until its last token expires.
    fn rotate(&self, py: Python<'_>, next: &PySigningKey) -> PyResult<()> {
        let next = keys::copy_key(py, &next.0)?;
        self.0.rotate(next).or_raise(py)
    }

    /// RFC 8693 token exchange: a token for sub-agent `actor` that holds at most `scopes`
    /// (default: the parent's), for at most `ttl` seconds and `calls` calls. Never wider than
    /// `parent_token`; asking for more raises `DelegationError` (`delegation.scope_widened`, ...).
    /// `intent=True` declares the child's scopes the task's intent (once per chain:
    /// `delegation.intent_redeclared`).
    #[pyo3(signature = (parent_token, actor, audience, scopes = None, ttl = None, calls = None, intent = false))]
    #[allow(
        clippy::too_many_arguments,
        reason = "mirrors the Python keyword arguments"
    )]
    fn delegate(
        &self,
        py: Python<'_>,
        parent_token: &str,
        actor: &PyAgentIdentity,
        audience: &str,
        scopes: Option<&str>,
        ttl: Option<i64>,
        calls: Option<u64>,
        intent: bool,
    ) -> PyResult<String> {
        let mut request =
            agentiam_delegation::ExchangeRequest::new(parent_token, &actor.0, audience);
        request.declare_intent = intent;
        if let Some(s) = scopes {
            request = request.with_scopes(agentiam_token::ScopeSet::parse(s).or_raise(py)?);
        }
        if let Some(t) = ttl {
            request = request.with_ttl(t);
        }
        if let Some(c) = calls {
            request = request.with_calls(c);
        }
        agentiam_delegation::Exchanger::new(self.0.clone())
            .exchange(&request)
            .map(|t| t.token)
            .or_raise(py)
    }
}

/// Verifies task tokens.
#[pyclass(frozen, name = "Verifier", module = "agentiam._native")]
struct PyVerifier(agentiam_token::Verifier);

#[pymethods]
impl PyVerifier {
    /// Accepts tokens from `issuer` for `audience` signed by a key in `jwks` (JSON).
    #[new]
    fn new(py: Python<'_>, jwks: &str, issuer: &str, audience: &str) -> PyResult<Self> {
        let keys = agentiam_identity::Jwks::from_json(jwks).or_raise(py)?;
        Ok(Self(agentiam_token::Verifier::new(keys, issuer, audience)))
    }

    /// The verified claims (a dict), or `TokenError` with the reason code.
    fn verify<'py>(&self, py: Python<'py>, token: &str) -> PyResult<Bound<'py, PyAny>> {
        let verified = py.detach(|| self.0.verify(token)).or_raise(py)?;
        let text = serde_json::to_string(verified.claims())
            .map_err(|e| error(py, agentiam_token::codes::MALFORMED, &e.to_string()))?;
        py.import("json")?.call_method1("loads", (text,))
    }
}

/// Checks a guard configuration (JSON) without opening the state or files it names: raises what
/// building the guard would raise for the document itself (`guard.policy_invalid`,
/// `guard.tool_spec_invalid`, `guard.tool_poisoning`, `guard.approver_key_refused`, ...).
#[pyfunction]
fn check_guard_config(py: Python<'_>, config_json: &str) -> PyResult<()> {
    let config = GuardConfig::from_json(config_json).or_raise(py)?;
    py.detach(|| config.validate()).or_raise(py)
}

/// Signs an approval request (JSON) with an approver's private Ed25519 JWK; returns the approval JSON.
#[pyfunction]
fn sign_approval(py: Python<'_>, request_json: &str, private_jwk: &str) -> PyResult<String> {
    let request: ApprovalRequest = serde_json::from_str(request_json).map_err(|e| {
        error(
            py,
            agentiam_guard::codes::CONFIRMATION_INVALID,
            &e.to_string(),
        )
    })?;
    let key = agentiam_identity::SigningKey::from_private_jwk(private_jwk).or_raise(py)?;
    let approval = Approval::sign(&request, &key).or_raise(py)?;
    serde_json::to_string(&approval).map_err(|e| {
        error(
            py,
            agentiam_guard::codes::CONFIRMATION_INVALID,
            &e.to_string(),
        )
    })
}

/// `text` as a quoted scope value: `'...'` with every byte that is not printable ASCII (and
/// space, `"`, `%`, `'`, `\\`) written `%XX`, so an intent can fix any string exactly
/// (`f"payments:send{{recipient={scope_quote(iban)}}}"`).
#[pyfunction]
fn scope_quote(text: &str) -> String {
    agentiam_token::quote(text)
}

/// Runs the `agentiam` command line on `argv` (the program name first) with the GIL released
/// and returns its exit code; the package's `agentiam` console script is this.
#[pyfunction]
fn cli(py: Python<'_>, argv: Vec<std::ffi::OsString>) -> u8 {
    py.detach(|| agentiam_cli::run(argv))
}

/// The native module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyGuard>()?;
    m.add_class::<PySession>()?;
    m.add_class::<PyRefusal>()?;
    m.add_class::<PySigningKey>()?;
    m.add_class::<PyAgentIdentity>()?;
    m.add_class::<PyIssuer>()?;
    m.add_class::<PyVerifier>()?;
    m.add_function(wrap_pyfunction!(sign_approval, m)?)?;
    m.add_function(wrap_pyfunction!(check_guard_config, m)?)?;
    m.add_function(wrap_pyfunction!(scope_quote, m)?)?;
    m.add_function(wrap_pyfunction!(cli, m)?)?;
    m.add_class::<keys::PyKeySet>()?;
    m.add_class::<audit::PyAuditLog>()?;
    m.add_function(wrap_pyfunction!(audit::verify_audit_log, m)?)?;
    m.add_function(wrap_pyfunction!(audit::read_audit_log, m)?)?;
    m.add_function(wrap_pyfunction!(keys::attenuate, m)?)?;
    m.add_function(wrap_pyfunction!(filter::scan_text, m)?)?;
    m.add_function(wrap_pyfunction!(filter::sanitize_text, m)?)?;
    m.add_function(wrap_pyfunction!(filter::encoder_status, m)?)?;
    m.add_function(wrap_pyfunction!(filter::spotlight_text, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
