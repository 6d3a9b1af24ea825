//! Steps that wait (runtime.md §6): a callback returns a coroutine, which runs on the Gears
//! event loop, or the `gearsFuture()` it created, which some other code completes. Either way
//! the step leaves an async record ([`dataflow::pending`]) that the completion fills.

use std::sync::Arc;

use dataflow::callbacks::StepResult;
use dataflow::pending::{self, AsyncRecord};
use dataflow::{Record, StepError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyTuple, PyType};

use super::context;
use super::convert::object_record;
use super::errors::gears_error;
use crate::hooks::HookCall;
use crate::linked::CommandLink;
use crate::sessions::Session;

/// The future `gearsFuture()` returns: the step waits for it once the callback returned it.
#[pyclass(name = "Future", module = "redisgears")]
pub struct PyFuture {
    record: AsyncRecord,
}

fn continued(record: &AsyncRecord, outcome: Result<Record, String>) -> PyResult<()> {
    record
        .complete(outcome)
        .map_err(|e| gears_error(&e.to_string()))
}

fn single_arg<'py>(args: &Bound<'py, PyTuple>) -> PyResult<Bound<'py, PyAny>> {
    if args.len() != 1 {
        return Err(gears_error("Continue function expect an object"));
    }
    args.get_item(0)
}

#[pymethods]
impl PyFuture {
    /// Completes the step with `value`, as if the callback had returned it.
    #[pyo3(name = "continueRun", signature = (*args))]
    fn continue_run(&self, args: &Bound<'_, PyTuple>) -> PyResult<()> {
        let value = single_arg(args)?;
        continued(&self.record, Ok(object_record(value)))
    }

    /// Completes the step with an error whose text is `str(value)`.
    #[pyo3(name = "continueFailed", signature = (*args))]
    fn continue_failed(&self, args: &Bound<'_, PyTuple>) -> PyResult<()> {
        let value = single_arg(args)?;
        let text = value.str()?.to_string();
        continued(&self.record, Err(text))
    }
}

impl Drop for PyFuture {
    /// A returned future that nobody can complete any more fails its record instead of leaving
    /// the execution waiting forever.
    fn drop(&mut self) {
        if self.record.is_awaited() {
            let _ = self
                .record
                .complete(Err(pending::NEVER_COMPLETED.to_string()));
        }
    }
}

/// `gearsFuture()`: the future of the record the running step callback handles.
#[pyfunction]
#[pyo3(name = "gearsFutureCtx", signature = (*args))]
pub fn gears_future(args: &Bound<'_, PyTuple>) -> PyResult<PyFuture> {
    if !args.is_empty() {
        return Err(gears_error("Future gets no arguments"));
    }
    if !pending::in_step() {
        return Err(gears_error(
            "Future object can only be created inside certain execution steps",
        ));
    }
    let record = pending::create().map_err(gears_error)?;
    Ok(PyFuture { record })
}

/// `isAsyncAllow()`: whether the running step callback may return a coroutine or future.
#[pyfunction]
#[pyo3(name = "isAsyncAllow")]
pub fn is_async_allow() -> bool {
    pending::async_allowed()
}

/// The session, hook and client link a coroutine runs with, captured where it was created and
/// made current around each of its steps on the event loop (`_InContext` in the prelude).
#[pyclass(name = "PyStepContext", module = "redisgears")]
pub struct PyStepContext {
    session: Option<Arc<Session>>,
    hook: Option<Arc<HookCall>>,
    link: Option<Arc<CommandLink>>,
}

#[pymethods]
impl PyStepContext {
    fn enter(&self) {
        context::set_session(self.session.clone());
        context::set_hook(self.hook.clone());
        context::set_link(self.link.clone());
    }

    fn exit(&self) {
        context::set_session(None);
        context::set_hook(None);
        context::set_link(None);
    }
}

/// `captureContext(session=None)`: this thread's context, with `session` (a `getGearsSession()`
/// object) in place of the current session when given.
#[pyfunction]
#[pyo3(name = "captureContext", signature = (session=None))]
pub fn capture_context(session: Option<Bound<'_, PyAny>>) -> PyResult<PyStepContext> {
    let session = match session.filter(|s| !s.is_none()) {
        None => context::current_session(),
        Some(s) => Some(super::native::session_of(&s)?),
    };
    Ok(PyStepContext {
        session,
        hook: context::current_hook(),
        link: context::current_link(),
    })
}

/// Fills an async record with the outcome of the coroutine task it waited for.
#[pyclass(name = "CoroutineDone", module = "redisgears")]
pub struct CoroutineDone {
    record: AsyncRecord,
}

#[pymethods]
impl CoroutineDone {
    fn __call__(&self, task: &Bound<'_, PyAny>) -> PyResult<()> {
        let outcome = if task.call_method0("cancelled")?.is_truthy()? {
            Err("coroutine was cancelled".to_string())
        } else {
            let exception = task.call_method0("exception")?;
            if exception.is_none() {
                Ok(object_record(task.call_method0("result")?))
            } else {
                // Coroutine errors are reported as str(exception) only (runtime.md §5.1).
                Err(exception.str()?.to_string())
            }
        };
        // The execution may have been aborted meanwhile: nothing waits for the record then.
        let _ = self.record.complete(outcome);
        Ok(())
    }
}

static COROUTINE_TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();

fn is_coroutine(py: Python<'_>, value: &Bound<'_, PyAny>) -> bool {
    let Ok(coroutine) = COROUTINE_TYPE.import(py, "types", "CoroutineType") else {
        return false;
    };
    value.get_type().is(coroutine)
}

/// What a step callback's return value asks of its step: `None` when the step is to wait for
/// it (it returned a coroutine, now scheduled on the event loop, or the `gearsFuture()` it
/// created), else the value itself.
pub fn answer<'py>(
    py: Python<'py>,
    value: Bound<'py, PyAny>,
) -> StepResult<Option<Bound<'py, PyAny>>> {
    if let Ok(future) = value.cast::<PyFuture>() {
        if pending::wait_for(&future.borrow().record) {
            return Ok(None);
        }
        return Ok(Some(value));
    }
    if !is_coroutine(py, &value) {
        return Ok(Some(value));
    }
    // Raised by the engine after the callback returned, so without a traceback (§6.5).
    let record = pending::create().map_err(|e| {
        // Closed, so Python does not warn that it was never awaited.
        let _ = value.call_method0("close");
        StepError(format!("Error type: <class 'gears.error'>, Value: {e}"))
    })?;
    pending::wait_for(&record);
    schedule(py, value, record).map_err(|e| StepError(super::errors::format_error(py, &e)))?;
    Ok(None)
}

/// Runs `coroutine` on the event loop with this thread's context; its outcome fills `record`.
fn schedule(py: Python<'_>, coroutine: Bound<'_, PyAny>, record: AsyncRecord) -> PyResult<()> {
    let context = capture_context(None)?;
    let done = CoroutineDone { record };
    super::prelude_function(py, "_scheduleStep")?.call1((coroutine, context, done))?;
    Ok(())
}

/// Refuses a coroutine where the step cannot wait (extractors: `what` = "extractor", batch
/// reducers: "reduce").
pub fn refuse_coroutine(py: Python<'_>, value: &Bound<'_, PyAny>, what: &str) -> StepResult<()> {
    if is_coroutine(py, value) {
        // Closed, so Python does not warn that it was never awaited.
        let _ = value.call_method0("close");
        return Err(StepError(format!("coroutine are not allow on {what}")));
    }
    Ok(())
}
