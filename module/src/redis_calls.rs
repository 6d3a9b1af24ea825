//! Talking to Redis from Python code: commands (taking the Redis lock only when this thread does
//! not hold it, and never while waiting with the GIL held) and the Redis log.

use std::ffi::CString;
use std::sync::atomic::{AtomicPtr, Ordering};

use pyo3::prelude::*;
use pyo3::types::PyList;
use redis_module::{raw, Context, RedisError, RedisValue, ThreadSafeContext};

use crate::python::context;
use crate::python::convert::bytes_to_py;
use crate::readers::keys::value_bytes;

/// A detached context of the module, for logging from any thread as `<rg>`.
static LOG_CONTEXT: AtomicPtr<raw::RedisModuleCtx> = AtomicPtr::new(std::ptr::null_mut());

pub fn init_logging(ctx: &Context) {
    // SAFETY: called once at module load on the main thread with the module's context.
    let detached = unsafe { raw::RedisModule_GetDetachedThreadSafeContext.unwrap()(ctx.ctx) };
    LOG_CONTEXT.store(detached, Ordering::SeqCst);
}

/// Writes `message` to the Redis log at `level` (debug, verbose, notice, warning).
pub fn log(level: &str, message: &str) {
    let ctx = LOG_CONTEXT.load(Ordering::SeqCst);
    let (Ok(level), Ok(message)) = (
        CString::new(level),
        CString::new(message.replace('\0', " ")),
    ) else {
        return;
    };
    // SAFETY: RedisModule_Log is thread-safe; the message goes through "%s", never as a format.
    unsafe {
        raw::RedisModule_Log.unwrap()(ctx, level.as_ptr(), c"%s".as_ptr(), message.as_ptr());
    }
}

/// A command reply, owned, so it can outlive the lock it was read under.
pub enum CallReply {
    Bytes(Vec<u8>),
    Integer(i64),
    Array(Vec<CallReply>),
    /// An error nested inside an array.
    Error(String),
    Null,
}

fn own(value: RedisValue) -> CallReply {
    match value {
        RedisValue::Integer(i) => CallReply::Integer(i),
        RedisValue::Bool(b) => CallReply::Integer(b as i64),
        RedisValue::Array(items) => CallReply::Array(items.into_iter().map(own).collect()),
        RedisValue::StaticError(e) => CallReply::Error(e.to_string()),
        RedisValue::Float(f) => CallReply::Bytes(f.to_string().into_bytes()),
        RedisValue::Null | RedisValue::NoReply => CallReply::Null,
        other => value_bytes(other).map_or(CallReply::Null, CallReply::Bytes),
    }
}

/// Why a call could not be made at all: Redis leaves it in errno (ENOENT for an unknown
/// command, EINVAL for a wrong arity), and RedisGears reports `strerror(errno)`.
fn call_failure() -> String {
    let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
    if errno == 0 {
        return "Failed executing command".to_string();
    }
    // SAFETY: strerror returns a pointer to a static message for any errno value.
    unsafe { std::ffi::CStr::from_ptr(libc::strerror(errno)) }
        .to_string_lossy()
        .into_owned()
}

fn with_crlf(mut s: String) -> String {
    if !s.ends_with("\r\n") {
        s.push_str("\r\n");
    }
    s
}

fn call_with(ctx: &Context, command: &str, args: &[Vec<u8>]) -> Result<CallReply, String> {
    let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    // SAFETY: errno is thread-local; cleared so a stale value is not reported.
    unsafe { *libc::__errno_location() = 0 };
    match ctx.call(command, args.as_slice()) {
        // The crate turns "no reply" (the call was refused before running) into this value.
        Ok(RedisValue::StaticError(_)) => Err(call_failure()),
        Ok(value) => Ok(own(value)),
        // Redis 7.0 hands a module the error text with the protocol's CRLF, and RedisGears
        // passes it on: scripts see it in str(e) (runtime.md §3.1).
        Err(RedisError::String(s)) => Err(with_crlf(s)),
        Err(RedisError::Str(s)) => Err(with_crlf(s.to_string())),
        Err(RedisError::WrongArity) => Err("Invalid argument".to_string()),
        Err(other) => Err(other.to_string()),
    }
}

/// Runs one command. On a thread that already holds the Redis lock (a command running on the
/// main thread) it runs at once; elsewhere the GIL is released while the lock is taken.
pub fn call(py: Python<'_>, command: &str, args: &[Vec<u8>]) -> Result<CallReply, String> {
    if let Some(ctx) = context::locked_context() {
        return call_with(&ctx, command, args);
    }
    py.detach(|| {
        let thread_ctx = ThreadSafeContext::new();
        let guard = thread_ctx.lock();
        call_with(&guard, command, args)
    })
}

pub fn value_to_py(py: Python<'_>, reply: CallReply) -> PyResult<Bound<'_, PyAny>> {
    Ok(match reply {
        CallReply::Bytes(b) => bytes_to_py(py, &b),
        CallReply::Integer(i) => i.into_pyobject(py)?.into_any(),
        CallReply::Error(e) => e.into_pyobject(py)?.into_any(),
        CallReply::Null => py.None().into_bound(py),
        CallReply::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(value_to_py(py, item)?)?;
            }
            list.into_any()
        }
    })
}
