//! The `register()` arguments of a StreamReader (readers.md §4.3), with RedisGears' error texts.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyString};

use super::errors::gears_error;
use crate::registrations::Mode;
use dataflow::stream_consumer::{BatchRule, FailurePolicy};

use crate::streams::StreamTrigger;

/// A whole number argument: ints (and what has `__index__`); a float is the TypeError Python
/// gives for it, anything else `not_number`.
fn number(value: Option<Bound<'_, PyAny>>, default: u64, not_number: &str) -> PyResult<u64> {
    let Some(value) = value else {
        return Ok(default);
    };
    if value.is_instance_of::<PyFloat>() {
        return Err(PyTypeError::new_err(
            "'float' object cannot be interpreted as an integer",
        ));
    }
    let n: i64 = value.extract().map_err(|_| gears_error(not_number))?;
    u64::try_from(n).map_err(|_| gears_error(&format!("{not_number} (not negative)")))
}

pub fn stream_trigger<'py>(
    kwarg: &dyn Fn(&str) -> PyResult<Option<Bound<'py, PyAny>>>,
    mode: Mode,
) -> PyResult<StreamTrigger> {
    let prefix = super::native::prefix_kwarg(kwarg)?;
    let batch = number(kwarg("batch")?, 1, "batch argument must be a number")?;
    let duration_ms = number(kwarg("duration")?, 0, "duration argument must be a number")?;
    let policy = match kwarg("onFailedPolicy")? {
        None => FailurePolicy::Continue,
        Some(p) => {
            let text = p
                .cast::<PyString>()
                .map_err(|_| gears_error("onFailedPolicy must be a string (Continue/Abort/Retry)"))?
                .to_str()?
                .to_string();
            FailurePolicy::parse(&text)
                .ok_or_else(|| gears_error("onFailedPolicy must be Continue/Abort/Retry"))?
        }
    };
    let retry_interval_secs = number(
        kwarg("onFailedRetryInterval")?,
        1,
        "retryInterval argument must be a number",
    )?;
    let trim = match kwarg("trimStream")? {
        None => true,
        Some(v) if v.is_instance_of::<PyBool>() => v.is_truthy()?,
        Some(_) => return Err(gears_error("pyTrimmStream argument must be a boolean")),
    };
    if mode == Mode::Sync && policy != FailurePolicy::Continue {
        return Err(gears_error(
            "ExecutionMode sync can only be combined with OnFailedPolicy Continue",
        ));
    }
    Ok(StreamTrigger {
        prefix: prefix.into_bytes(),
        rule: BatchRule {
            batch,
            duration: std::time::Duration::from_millis(duration_ms),
            policy,
        },
        retry_interval_secs,
        trim,
    })
}
