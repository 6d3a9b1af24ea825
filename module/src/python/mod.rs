//! The embedded CPython: started once at load, with the GearsBuilder prelude in `__main__`;
//! every RG.PYEXECUTE script runs in a fresh copy of that namespace.

pub mod allocator;
pub mod callbacks;
pub mod context;
pub mod convert;
pub mod errors;
pub mod futures;
pub mod native;
pub mod stream_args;

use std::ffi::{CStr, CString};
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict};

use crate::executions;
use crate::threads;
use errors::format_error;

const PRELUDE: &str = include_str!("gearsbuilder.py");
/// The event loop and async helpers, the module `redisgears_async` the prelude imports.
const ASYNC_MODULE: &CStr = pyo3::ffi::c_str!(include_str!("gears_async.py"));

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
pub fn start(execution_threads: usize, override_allocators: bool) -> Result<(), String> {
    make_libpython_global()?;
    if override_allocators {
        allocator::route_to_redis();
    }
    use native::redisgears;
    pyo3::append_to_inittab!(redisgears);
    Python::initialize();
    Python::attach(|py| -> PyResult<()> {
        // A thread spinning in Python makes the main thread wait up to one switch interval for
        // the GIL; 1 ms instead of 5 ms bounds that stall (BUILD-NOTES-2 §4).
        py.import("sys")?
            .call_method1("setswitchinterval", (0.001,))?;
        // Installed requirements come first on sys.path, so they win over system packages.
        let site = crate::reqs::site_dir();
        let _ = std::fs::create_dir_all(&site);
        // An install killed half-way (kill -9) left its staging directory: never imported, but
        // garbage.
        match reqs_manager::install::remove_leftover_staging(&site) {
            Ok(0) => {}
            Ok(n) => crate::redis_calls::log(
                "notice",
                &format!("removed {n} staging directories left by an interrupted install"),
            ),
            Err(e) => crate::redis_calls::log(
                "warning",
                &format!("could not remove an interrupted install's staging directory: {e}"),
            ),
        }
        py.import("sys")?
            .getattr("path")?
            .call_method1("insert", (0, site.display().to_string()))?;
        let info = py.import("sys")?.getattr("version_info")?;
        let version: (u16, u16, u16) = (
            info.getattr("major")?.extract()?,
            info.getattr("minor")?.extract()?,
            info.getattr("micro")?.extract()?,
        );
        crate::reqs::set_interpreter(version);
        PyModule::from_code(
            py,
            ASYNC_MODULE,
            c"redisgears_async.py",
            c"redisgears_async",
        )?;
        let main = py.import("__main__")?;
        let namespace = main.dict();
        let code = CString::new(PRELUDE).expect("the prelude has no NUL byte");
        py.run(&code, Some(&namespace), None)?;
        let _ = BASE_NAMESPACE.set(py, namespace.unbind());
        let modules = py.import("sys")?.getattr("modules")?.call_method0("copy")?;
        let _ = MODULES_SNAPSHOT.set(py, modules.cast_into::<PyDict>()?.unbind());
        Ok(())
    })
    .map_err(|e| Python::attach(|py| format_error(py, &e)))?;
    threads::start(execution_threads).map_err(|e| e.to_string())?;
    Ok(())
}

/// `sys.modules` as it was once the interpreter was ready (spec requirements.md §2.3).
static MODULES_SNAPSHOT: PyOnceLock<Py<PyDict>> = PyOnceLock::new();

/// The module cache reset after requirements were installed: `sys.modules` goes back to the
/// snapshot taken at start and the import system's caches are invalidated, so the next
/// `import` loads the installed files (objects already bound keep their old modules).
pub fn reset_module_cache() {
    Python::attach(|py| {
        let reset = || -> PyResult<()> {
            let Some(snapshot) = MODULES_SNAPSHOT.get(py) else {
                return Ok(());
            };
            let modules = py.import("sys")?.getattr("modules")?;
            modules.call_method0("clear")?;
            modules.call_method1("update", (snapshot.bind(py),))?;
            py.import("importlib")?.call_method0("invalidate_caches")?;
            Ok(())
        };
        if let Err(err) = reset() {
            crate::redis_calls::log(
                "warning",
                &format!("module cache reset failed: {}", format_error(py, &err)),
            );
        }
    });
}

/// A function of the prelude (`profilerCreate`, `profileGetInfo`, ...).
pub fn prelude_function<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    let base = BASE_NAMESPACE
        .get(py)
        .ok_or_else(|| errors::gears_error("the interpreter is not ready"))?;
    base.bind(py)
        .get_item(name)?
        .ok_or_else(|| errors::gears_error(&format!("{name} is missing from the prelude")))
}

/// What an RG.PYEXECUTE script left behind.
pub struct ScriptOutcome {
    pub execution: Option<Arc<executions::ExecutionEntry>>,
    pub registrations: Vec<crate::registrations::PendingRegistration>,
}

/// Runs `script` on the calling thread (the main thread, holding the Redis lock). On failure the
/// error text is what the client reads, and any execution the script started is aborted and
/// dropped.
/// An RG.PYEXECUTE script: its source, or its code object compiled beforehand (or why it did
/// not compile).
pub enum Script {
    Source(Vec<u8>),
    Compiled(Result<Py<PyAny>, String>),
}

/// Scripts at least this long are compiled before the Redis lock is taken, off the main thread:
/// compiling 100 MB of Python takes about a minute, running the result a few seconds.
pub const COMPILE_APART: usize = 1024 * 1024;

/// Compiles a script's source; from bytes, so an undecodable script gets Python's own error.
fn compile<'py>(py: Python<'py>, source: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    py.import("builtins")?
        .getattr("compile")?
        .call1((PyBytes::new(py, source), "<string>", "exec"))
}

impl Script {
    /// The script for a thread that does not hold the Redis lock: a long one compiled now.
    pub fn off_main_thread(source: Vec<u8>) -> Script {
        if source.len() < COMPILE_APART {
            return Script::Source(source);
        }
        Script::Compiled(Python::attach(|py| {
            compile(py, &source)
                .map(Bound::unbind)
                .map_err(|e| format_error(py, &e))
        }))
    }
}

pub fn run_script(
    ctx: &redis_module::Context,
    script: &Script,
    session: &Arc<crate::sessions::Session>,
) -> Result<ScriptOutcome, String> {
    let (result, state) = context::as_script(ctx, session, || {
        Python::attach(|py| -> Result<(), String> {
            let code = match script {
                Script::Source(source) => compile(py, source),
                Script::Compiled(Ok(code)) => Ok(code.bind(py).clone()),
                Script::Compiled(Err(text)) => return Err(text.clone()),
            };
            let run = || -> PyResult<()> {
                let base = BASE_NAMESPACE
                    .get(py)
                    .ok_or_else(|| errors::gears_error("the interpreter is not ready"))?;
                let globals = base.bind(py).copy()?;
                py.import("builtins")?
                    .getattr("exec")?
                    .call1((code?, globals))?;
                Ok(())
            };
            run().map_err(|e| format_error(py, &e))
        })
    });
    match result {
        Ok(()) => Ok(ScriptOutcome {
            execution: state.execution,
            registrations: state.pending,
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
