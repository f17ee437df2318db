//! The injection filter and the spotlighting helpers, for Python (`agentiam.scan`,
//! `agentiam.sanitize`, `agentiam.spotlight`).

use std::sync::LazyLock;

use agentiam_filter::{InjectionFilter, datamark, delimit, encode};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use serde_json::Value;

static WITH_MODEL: LazyLock<InjectionFilter> = LazyLock::new(InjectionFilter::new);
static RULES_ONLY: LazyLock<InjectionFilter> =
    LazyLock::new(|| InjectionFilter::new().with_model(false));

/// The verdict as JSON (`Scan::report`, plus `sanitized` when asked).
#[pyfunction]
#[pyo3(signature = (text, threshold = 0.5, model = true, sanitize = false))]
pub(crate) fn scan_text(
    py: Python<'_>,
    text: &str,
    threshold: f64,
    model: bool,
    sanitize: bool,
) -> PyResult<String> {
    if !(threshold > 0.0 && threshold <= 1.0) {
        return Err(PyValueError::new_err("the threshold is in (0, 1]"));
    }
    let base: &InjectionFilter = if model { &WITH_MODEL } else { &RULES_ONLY };
    let filter = base.clone().with_threshold(threshold);
    Ok(py.detach(|| {
        let mut report = filter.scan_structured(text).report();
        if sanitize && let Value::Object(map) = &mut report {
            map.insert("sanitized".into(), Value::String(filter.sanitize(text)));
        }
        report.to_string()
    }))
}

/// Whether the transformer layer is loaded, as JSON: `{"loaded", "dir", "error"}` (the directory
/// looked in, and why an encoder there could not be loaded).
#[pyfunction]
pub(crate) fn encoder_status() -> String {
    use agentiam_filter::encoder;
    let dir = encoder::default_dir().map(|d| d.display().to_string());
    let error = encoder::shared_default().err().map(|e| e.to_string());
    serde_json::json!({"loaded": WITH_MODEL.has_encoder(), "dir": dir, "error": error}).to_string()
}

/// The text with invisible characters, hidden HTML and chat role tokens removed.
#[pyfunction]
pub(crate) fn sanitize_text(py: Python<'_>, text: &str) -> String {
    py.detach(|| RULES_ONLY.sanitize(text))
}

/// `(marked text, instruction for the model)`; `boundary` (random, 16 bytes) for `delimit`.
#[pyfunction]
#[pyo3(signature = (text, mode, boundary, marker))]
pub(crate) fn spotlight_text(
    text: &str,
    mode: &str,
    boundary: &[u8],
    marker: char,
) -> PyResult<(String, String)> {
    match mode {
        "delimit" if boundary.len() >= 8 => Ok(delimit(text, boundary)),
        "delimit" => Err(PyValueError::new_err(
            "a delimiting boundary needs at least 8 random bytes",
        )),
        "datamark" => Ok(datamark(text, marker)),
        "encode" => Ok(encode(text)),
        other => Err(PyValueError::new_err(format!(
            "mode {other:?} is not delimit, datamark or encode"
        ))),
    }
}
