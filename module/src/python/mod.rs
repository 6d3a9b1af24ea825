//! The embedded CPython: started once at load, with the GearsBuilder prelude in `__main__`;
//! every RG.PYEXECUTE script runs in a fresh copy of that namespace.

pub mod callbacks;
pub mod context;
pub mod convert;
pub mod errors;
pub mod native;

use std::ffi::CString;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use dataflow::{Execution, Plan, Reader, Status};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict};

use crate::executions::{self, Outcome};
use crate::{config, ids, threads};
use callbacks::PyScope;
use convert::python_record_to_reply;
use errors::format_error;

const PRELUDE: &str = include_str!("gearsbuilder.py");

/// The namespace the prelude ran in; sessions start from a shallow copy of it.
static BASE_NAMESPACE: PyOnceLock<Py<PyDict>> = PyOnceLock::new();

/// Makes libpython's symbols global, so C extension modules (decimal, sqlite3, ssl, numpy...)
/// resolve them: redis-server loaded us with RTLD_LOCAL.
fn make_libpython_global() -> Result<(), String> {
    // SAFETY: dladdr on the address of a libpython function, then dlopen of that very file with
    // RTLD_NOLOAD, which only changes the flags of the already loaded library.
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        let symbol = pyo3::ffi::Py_InitializeEx as *const libc::c_void;
        if libc::dladdr(symbol, &mut info) == 0 || info.dli_fname.is_null() {
            return Err("could not find libpython's path".into());
        }
        let handle = libc::dlopen(
            info.dli_fname,
            libc::RTLD_NOW | libc::RTLD_GLOBAL | libc::RTLD_NOLOAD,
        );
        if handle.is_null() {
            return Err("could not make libpython's symbols global".into());
        }
    }
    Ok(())
}

/// Starts the interpreter and the execution threads. Called once, at module load.
pub fn start(execution_threads: usize) -> Result<(), String> {
    make_libpython_global()?;
    use native::redisgears;
    pyo3::append_to_inittab!(redisgears);
    Python::initialize();
    Python::attach(|py| -> PyResult<()> {
        // A thread spinning in Python makes the main thread wait up to one switch interval for
        // the GIL; 1 ms instead of 5 ms bounds that stall (BUILD-NOTES-2 §4).
        py.import("sys")?
            .call_method1("setswitchinterval", (0.001,))?;
        let main = py.import("__main__")?;
        let namespace = main.dict();
        let code = CString::new(PRELUDE).expect("the prelude has no NUL byte");
        py.run(&code, Some(&namespace), None)?;
        let _ = BASE_NAMESPACE.set(py, namespace.unbind());
        Ok(())
    })
    .map_err(|e| Python::attach(|py| format_error(py, &e)))?;
    threads::start(execution_threads).map_err(|e| e.to_string())?;
    Ok(())
}

/// What an RG.PYEXECUTE script left behind.
pub struct ScriptOutcome {
    pub execution: Option<Arc<executions::ExecutionEntry>>,
}

/// Runs `script` on the calling thread (the main thread, holding the Redis lock). On failure the
/// error text is what the client reads, and any execution the script started is aborted and
/// dropped.
pub fn run_script(ctx: &redis_module::Context, script: &[u8]) -> Result<ScriptOutcome, String> {
    let (result, state) = context::as_script(ctx, || {
        Python::attach(|py| -> Result<(), String> {
            let run = || -> PyResult<()> {
                let base = BASE_NAMESPACE
                    .get(py)
                    .ok_or_else(|| errors::gears_error("the interpreter is not ready"))?;
                let globals = base.bind(py).copy()?;
                let builtins = py.import("builtins")?;
                // Compiled from bytes so that undecodable scripts get Python's own error.
                let code = builtins.getattr("compile")?.call1((
                    PyBytes::new(py, script),
                    "<string>",
                    "exec",
                ))?;
                builtins.getattr("exec")?.call1((code, globals))?;
                Ok(())
            };
            run().map_err(|e| format_error(py, &e))
        })
    });
    match result {
        Ok(()) => Ok(ScriptOutcome {
            execution: state.execution,
        }),
        Err(text) => {
            if let Some(entry) = state.execution {
                entry.request_abort();
                executions::remove(&entry.id);
            }
            Err(if text.is_empty() {
                "failed running the given script".to_string()
            } else {
                text
            })
        }
    }
}

/// Lists a new execution of `plan` over `reader` and queues it on the execution threads.
pub fn start_execution(plan: Plan, mut reader: Box<dyn Reader>) -> Result<(), String> {
    let (max_executions, profiling) = {
        let config = config::read();
        (config.max_executions, config.profile_executions != 0)
    };
    let mut execution = Execution::with_profiling(&plan, profiling);
    let entry = executions::create(ids::next_execution_id(), &plan, &execution, max_executions);
    context::script_started(&entry);
    let job_entry = entry.clone();
    let queued = threads::run_execution(move || {
        context::register_gears_thread();
        // SAFETY: reads the calling thread's ident; needs no GIL.
        let python_thread = unsafe { pyo3::ffi::PyThread_get_thread_ident() } as u64;
        if !job_entry.start_running(python_thread) {
            return; // aborted before it started
        }
        let ran = catch_unwind(AssertUnwindSafe(|| {
            let status = execution.run(reader.as_mut(), &PyScope);
            let (results, errors) = execution.take_output();
            let results = Python::attach(|py| {
                results
                    .into_iter()
                    .map(|r| python_record_to_reply(py, r))
                    .collect()
            });
            (
                status,
                Outcome { results, errors },
                execution.total_duration(),
            )
        }));
        job_entry.stop_running();
        // An abort may have raised gears.forcestopped in this thread after its last Python
        // code ran: clear it so that the next execution on this worker does not get it.
        Python::attach(|_| {
            // SAFETY: clearing this thread's pending asynchronous exception, GIL held.
            unsafe {
                pyo3::ffi::PyThreadState_SetAsyncExc(python_thread as _, std::ptr::null_mut())
            };
        });
        match ran {
            Ok((status, outcome, duration)) => job_entry.finish(status, outcome, duration),
            Err(_) => job_entry.finish(
                Status::Done,
                Outcome {
                    results: Vec::new(),
                    errors: vec!["internal error: the execution failed unexpectedly".into()],
                },
                Duration::ZERO,
            ),
        }
    });
    if !queued {
        executions::remove(&entry.id);
        return Err("failed creating execution".into());
    }
    Ok(())
}
