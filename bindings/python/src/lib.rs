//! `agentiam._native`: the PyO3 layer under the `agentiam` Python package.
//!
//! Conversions (Python values to JSON arguments, decisions to tuples) and error mapping only;
//! every decision is made by `agentiam-guard`. The GIL is released while Rust decides.

use std::sync::Arc;

use agentiam_guard::{
    Approval, ApprovalRequest, AuditSink, Decision, GuardConfig, OutputVerdict, Session, ToolCall,
    ToolInterceptor,
};
use agentiam_telemetry::{AuditLog, LogConfig, RedactionPolicy};
use agentiam_token::{Clock, FixedClock, SystemClock};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::{Map, Value};

create_exception!(
    _native,
    AgentIAMError,
    PyException,
    "Base of every agentiam error; `code` is the stable reason code."
);
create_exception!(
    _native,
    TokenError,
    AgentIAMError,
    "A credential was refused (`token.*`, `delegation.*`)."
);
create_exception!(
    _native,
    ConfigurationError,
    AgentIAMError,
    "A guard configuration, policy or key is unusable (`guard.*_invalid`)."
);
create_exception!(
    _native,
    AuditError,
    AgentIAMError,
    "The activity log refused an operation (`audit.*`)."
);

/// Deepest nesting of arguments converted from Python.
const MAX_DEPTH: usize = 32;

/// Raises the exception class for `code` with `.code` and `.message` set. One exhaustive match
/// on the code's family decides the class.
fn error(py: Python<'_>, code: &str, message: &str) -> PyErr {
    let err = match code.split('.').next().unwrap_or_default() {
        "token" | "delegation" => TokenError::new_err(message.to_owned()),
        "audit" => AuditError::new_err(message.to_owned()),
        "guard" | "key" | "identity" | "scope" => ConfigurationError::new_err(message.to_owned()),
        _ => AgentIAMError::new_err(message.to_owned()),
    };
    let value = err.value(py);
    // Setting attributes on a fresh exception instance cannot fail in practice; if it did,
    // the exception is still raised, without them.
    let _ = value.setattr("code", code);
    let _ = value.setattr("message", message);
    err
}

/// A Python value (dict, list, tuple, str, int, float, bool, None) as JSON.
fn to_json(obj: &Bound<'_, PyAny>, depth: usize) -> Result<Value, String> {
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

/// A decision as `(kind, code, message, approval_request_json)`, kind one of allow, deny, confirm.
type DecisionTuple = (&'static str, Option<String>, String, Option<String>);

fn decision_tuple(d: Decision) -> DecisionTuple {
    match d {
        Decision::Allow(a) => ("allow", None, a.approver.unwrap_or_default(), None),
        Decision::Deny(d) => (
            "deny",
            Some(d.code().to_owned()),
            d.message().to_owned(),
            None,
        ),
        Decision::NeedsConfirmation(r) => (
            "confirm",
            Some(r.code.clone()),
            "a human's approval is required".to_owned(),
            serde_json::to_string(&*r).ok(),
        ),
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
    /// `config_json`: the guard configuration; `now`: a fixed clock (tests); `audit_dir`: write
    /// every decision to a tamper-evident activity log there.
    #[new]
    #[pyo3(signature = (config_json, now = None, audit_dir = None))]
    fn new(
        py: Python<'_>,
        config_json: &str,
        now: Option<i64>,
        audit_dir: Option<&str>,
    ) -> PyResult<Self> {
        let config =
            GuardConfig::from_json(config_json).map_err(|e| error(py, e.code(), &e.to_string()))?;
        let clock: Arc<dyn Clock> = match now {
            Some(t) => Arc::new(FixedClock::new(t)),
            None => Arc::new(SystemClock),
        };
        let (mut builder, auth) = config
            .builder(clock)
            .map_err(|e| error(py, e.code(), &e.to_string()))?;
        let (mut sink, mut log) = (None, None);
        if let Some(dir) = audit_dir {
            let opened = AuditLog::open_dir(dir, LogConfig::new("agentiam/python"), None)
                .map_err(|e| error(py, e.code(), &e.to_string()))?;
            let opened = Arc::new(opened);
            let s = Arc::new(AuditSink::new(
                opened.clone(),
                RedactionPolicy::default(),
                "python",
                65_536,
            ));
            builder = builder.sink(s.clone());
            sink = Some(s);
            log = Some(opened);
        }
        let guard = builder
            .build()
            .map_err(|e| error(py, e.code(), &e.to_string()))?;
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

    /// Waits until every decision so far is in the activity log and the log is durable.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        if let Some(sink) = &self.sink {
            sink.drain().map_err(|e| error(py, "audit.io", &e))?;
        }
        if let Some(log) = &self.log {
            log.flush()
                .map_err(|e| error(py, e.code(), &e.to_string()))?;
        }
        Ok(())
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
    /// Decides a call: `(kind, code, message, approval_request_json)`.
    #[pyo3(signature = (tool, arguments, call_id = None, approval_json = None))]
    fn before(
        &self,
        py: Python<'_>,
        tool: &str,
        arguments: &Bound<'_, PyAny>,
        call_id: Option<&str>,
        approval_json: Option<&str>,
    ) -> PyResult<DecisionTuple> {
        let args = match to_json(arguments, 0) {
            Ok(v) => Arc::new(v),
            Err(message) => {
                return Ok((
                    "deny",
                    Some(agentiam_guard::codes::ARGUMENTS_INVALID.to_owned()),
                    message,
                    None,
                ));
            }
        };
        let approval = match approval_json.map(Approval::from_json).transpose() {
            Ok(a) => a,
            Err(e) => return Ok(("deny", Some(e.code().to_owned()), e.to_string(), None)),
        };
        let decision = py.detach(|| {
            let mut call = ToolCall::shared(tool, &args);
            call.call_id = call_id;
            call.approval = approval.as_ref();
            self.interceptor.before(&self.session, &call)
        });
        Ok(decision_tuple(decision))
    }

    /// Records a tool's output; returns the verdict (`clean`, `untrusted`, `injection`).
    #[pyo3(signature = (tool, output, failed = false, call_id = None))]
    fn after(
        &self,
        py: Python<'_>,
        tool: &str,
        output: &str,
        failed: bool,
        call_id: Option<&str>,
    ) -> &'static str {
        let args = Value::Null;
        py.detach(|| {
            let mut call = ToolCall::new(tool, &args);
            call.call_id = call_id;
            match self.interceptor.after(&self.session, &call, output, failed) {
                OutputVerdict::Clean => "clean",
                OutputVerdict::Untrusted => "untrusted",
                OutputVerdict::Injection(_) => "injection",
            }
        })
    }

    /// Whether the session has read untrusted content.
    #[getter]
    fn tainted(&self) -> bool {
        self.session.is_tainted()
    }

    /// Marks the session as having read untrusted content from `source`.
    fn taint(&self, source: &str) {
        self.session.taint(source);
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
}

/// Signs an approval request (JSON) with an approver's private Ed25519 JWK; returns the approval JSON.
#[pyfunction]
fn sign_approval(py: Python<'_>, request_json: &str, private_jwk: &str) -> PyResult<String> {
    let request: ApprovalRequest = serde_json::from_str(request_json)
        .map_err(|e| error(py, "guard.confirmation_invalid", &e.to_string()))?;
    let key = agentiam_identity::SigningKey::from_private_jwk(private_jwk)
        .map_err(|e| error(py, e.code(), &e.to_string()))?;
    let approval =
        Approval::sign(&request, &key).map_err(|e| error(py, e.code(), &e.to_string()))?;
    serde_json::to_string(&approval)
        .map_err(|e| error(py, "guard.confirmation_invalid", &e.to_string()))
}

/// The native module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<PyGuard>()?;
    m.add_class::<PySession>()?;
    m.add_function(wrap_pyfunction!(sign_approval, m)?)?;
    m.add("AgentIAMError", py.get_type::<AgentIAMError>())?;
    m.add("TokenError", py.get_type::<TokenError>())?;
    m.add("ConfigurationError", py.get_type::<ConfigurationError>())?;
    m.add("AuditError", py.get_type::<AuditError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
