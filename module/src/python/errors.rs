//! Gears' Python exception classes and how a Python error becomes the text users read
//! (runtime.md §5.1).

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

use crate::config;

static GEARS_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static GEARS_FLAT_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static GEARS_FORCE_STOPPED: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// Creates `gears.error`, `gears.flat_error` and `gears.forcestopped` (the last derives from
/// BaseException so that user code's `except Exception:` cannot swallow an abort).
pub fn create_exception_types(py: Python<'_>) -> PyResult<[Py<PyType>; 3]> {
    let exception = py.get_type::<pyo3::exceptions::PyException>();
    let base_exception = py.get_type::<pyo3::exceptions::PyBaseException>();
    let error = PyErr::new_type(py, c"gears.error", None, Some(&exception), None)?;
    let flat = PyErr::new_type(py, c"gears.flat_error", None, Some(&exception), None)?;
    let stopped = PyErr::new_type(py, c"gears.forcestopped", None, Some(&base_exception), None)?;
    let _ = GEARS_ERROR.set(py, error.clone_ref(py));
    let _ = GEARS_FLAT_ERROR.set(py, flat.clone_ref(py));
    let _ = GEARS_FORCE_STOPPED.set(py, stopped.clone_ref(py));
    Ok([error, flat, stopped])
}

/// Raises `gears.forcestopped` asynchronously in the Python thread `thread` (an abort), the GIL
/// held: it surfaces as an exception in whatever Python code that thread runs next. True if the
/// thread had a Python thread state to receive it (one between two Python sections has none).
pub fn interrupt_thread_with_gil(py: Python<'_>, thread: u64) -> bool {
    match GEARS_FORCE_STOPPED.get(py) {
        // SAFETY: GIL held; the type object outlives the call (it is kept in a static).
        Some(t) => unsafe { pyo3::ffi::PyThreadState_SetAsyncExc(thread as _, t.as_ptr()) > 0 },
        None => false,
    }
}

/// A `gears.error` with `message`.
pub fn gears_error(message: &str) -> PyErr {
    Python::attach(|py| match GEARS_ERROR.get(py) {
        Some(t) => PyErr::from_type(t.bind(py).clone(), message.to_string()),
        None => pyo3::exceptions::PyException::new_err(message.to_string()),
    })
}

/// A `gears.flat_error` carrying `value`.
pub fn flat_error(py: Python<'_>, value: Py<PyAny>) -> PyErr {
    match GEARS_FLAT_ERROR.get(py) {
        Some(t) => PyErr::from_type(t.bind(py).clone(), (value,)),
        None => pyo3::exceptions::PyException::new_err((value,)),
    }
}

/// The error text of `err`: the message alone for `gears.flat_error`; with
/// PythonAttemptTraceback on and a traceback present, `str()` of the
/// `traceback.format_exception` list; otherwise `Error type: <type>, Value: <value>`.
pub fn format_error(py: Python<'_>, err: &PyErr) -> String {
    let value = err.value(py);
    if let Some(flat) = GEARS_FLAT_ERROR.get(py) {
        if value.is_instance(flat.bind(py)).unwrap_or(false) {
            return value.str().map(|s| s.to_string()).unwrap_or_default();
        }
    }
    if config::read().attempt_traceback() {
        if let Some(tb) = err.traceback(py) {
            let formatted = py.import("traceback").and_then(|m| {
                m.getattr("format_exception")?
                    .call1((err.get_type(py), value, tb))?
                    .str()
                    .map(|s| s.to_string())
            });
            if let Ok(text) = formatted {
                return text;
            }
        }
    }
    let type_text = err
        .get_type(py)
        .str()
        .map(|s| s.to_string())
        .unwrap_or_default();
    let value_text = value.str().map(|s| s.to_string()).unwrap_or_default();
    format!("Error type: {type_text}, Value: {value_text}")
}
