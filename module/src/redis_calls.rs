//! Talking to Redis from Python code: commands (taking the Redis lock only when this thread does
//! not hold it, and never while waiting with the GIL held) and the Redis log.

use std::ffi::CString;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::LazyLock;

use pyo3::prelude::*;
use pyo3::types::PyList;
use redis_module::{raw, CallOptions, CallOptionsBuilder, Context, ErrorReply};

use crate::python::context;
use crate::python::convert::bytes_to_py;
use crate::reply::Reply;

/// A detached context of the module, for logging from any thread as `<rg>`.
static LOG_CONTEXT: AtomicPtr<raw::RedisModuleCtx> = AtomicPtr::new(std::ptr::null_mut());

pub fn init_logging(ctx: &Context) {
    // SAFETY: called once at module load on the main thread with the module's context.
    let detached = unsafe { raw::RedisModule_GetDetachedThreadSafeContext.unwrap()(ctx.ctx) };
    LOG_CONTEXT.store(detached, Ordering::SeqCst);
}

/// The module's detached context, for calls made on the main thread where Redis gives no
/// usable context (an RDB load's IO context has no client to call commands with).
pub fn detached_context() -> Context {
    Context::new(LOG_CONTEXT.load(Ordering::SeqCst))
}

/// Unsigned fields of an INFO section (0 for one that is missing or not a number).
///
/// Not `redis_module`'s `ServerInfo::field`: it retains the string Redis hands over and frees
/// it once, leaking one reference per call (found under valgrind: ~20 bytes per cron tick).
pub fn info_unsigned<const N: usize>(ctx: &Context, section: &str, fields: [&str; N]) -> [u64; N] {
    let mut values = [0; N];
    let Ok(section) = CString::new(section) else {
        return values;
    };
    // SAFETY: the main thread holds the Redis lock through `ctx`; the data is freed below and
    // the field getter allocates nothing.
    unsafe {
        let data = redis_module::raw::RedisModule_GetServerInfo.unwrap()(ctx.ctx, section.as_ptr());
        if data.is_null() {
            return values;
        }
        for (value, field) in values.iter_mut().zip(fields) {
            if let Ok(field) = CString::new(field) {
                let mut error = 0;
                let got = redis_module::raw::RedisModule_ServerInfoGetFieldUnsigned.unwrap()(
                    data,
                    field.as_ptr(),
                    &mut error,
                );
                if error == 0 {
                    *value = got;
                }
            }
        }
        redis_module::raw::RedisModule_FreeServerInfo.unwrap()(ctx.ctx, data);
    }
    values
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

/// An error reply's text as Redis hands it to a module.
fn error_text(error: &ErrorReply<'_>) -> String {
    match error {
        ErrorReply::Message(m) => m.clone(),
        ErrorReply::RedisError(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// A reply copied out of Redis.
pub fn own(reply: &redis_module::CallReply<'_>) -> CallReply {
    use redis_module::CallReply as R;
    let nested = |item: redis_module::CallResult<'_>| match item {
        Ok(r) => own(&r),
        Err(e) => CallReply::Error(error_text(&e)),
    };
    match reply {
        R::I64(i) => CallReply::Integer(i.to_i64()),
        R::String(s) => CallReply::Bytes(s.as_bytes().to_vec()),
        R::Array(a) => CallReply::Array(a.iter().map(nested).collect()),
        R::Null(_) | R::Unknown => CallReply::Null,
        R::Bool(b) => CallReply::Integer(b.to_bool() as i64),
        R::Double(d) => CallReply::Bytes(d.to_double().to_string().into_bytes()),
        R::BigNumber(n) => n
            .to_string()
            .map_or(CallReply::Null, |s| CallReply::Bytes(s.into_bytes())),
        R::VerbatimString(v) => v
            .to_parts()
            .map_or(CallReply::Null, |(_, text)| CallReply::Bytes(text)),
        R::Map(m) => CallReply::Array(m.iter().flat_map(|(k, v)| [nested(k), nested(v)]).collect()),
        R::Set(s) => CallReply::Array(s.iter().map(nested).collect()),
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

/// The options of calls from Python: writes reach replicas and the AOF. Errors are not turned
/// into replies, so a call Redis refuses outright (unknown command, wrong arity) fails with
/// errno, which RedisGears reports as `strerror` (runtime.md §3.1). Built once: every
/// `execute()` uses them.
static CALL_OPTIONS: LazyLock<CallOptions> =
    LazyLock::new(|| CallOptionsBuilder::new().replicate().build());

/// The options of a hooked client call's real command: the client must get Redis' own reply,
/// errors included.
fn relay_options() -> CallOptions {
    CallOptionsBuilder::new()
        .replicate()
        .errors_as_replies()
        .build()
}

/// Runs one replicated command on a context that holds the Redis lock.
pub fn call_with(ctx: &Context, command: &str, args: &[Vec<u8>]) -> Result<CallReply, String> {
    let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    call_read(ctx, command, &args, own)
}

/// Runs one replicated command on a context that holds the Redis lock and hands its reply to
/// `read` while Redis still owns it, so a large reply (a batch of stream entries) is copied
/// once, into what the caller keeps, rather than into a [`CallReply`] tree first.
pub fn call_read<T>(
    ctx: &Context,
    command: &str,
    args: &[&[u8]],
    read: impl FnOnce(&redis_module::CallReply<'_>) -> T,
) -> Result<T, String> {
    // SAFETY: errno is thread-local; cleared so a stale value is not reported.
    unsafe { *libc::__errno_location() = 0 };
    let result: redis_module::CallResult<'_> = ctx.call_ext(command, &CALL_OPTIONS, args);
    match result {
        // No reply at all: the call was refused before it ran.
        Ok(redis_module::CallReply::Unknown) => Err(call_failure()),
        Ok(reply) => Ok(read(&reply)),
        // Redis 7.0 hands a module the error text with the protocol's CRLF, and RedisGears
        // passes it on: scripts see it in str(e) (runtime.md §3.1).
        Err(e) => Err(with_crlf(error_text(&e))),
    }
}

/// The reply of a real command run for a client, held until it is sent.
pub struct HeldReply(redis_module::CallResult<'static>);

/// Runs the real `command` for the client of `ctx` (errors as replies, replicated).
pub fn call_real(ctx: &Context, command: &[u8], args: &[Vec<u8>]) -> HeldReply {
    let command = String::from_utf8_lossy(command);
    let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    HeldReply(ctx.call_ext(&command, &relay_options(), args.as_slice()))
}

/// The protocol type byte of a call reply (`+` status, `$` bulk, ...).
fn proto_type(reply: &redis_module::CallReply<'_>) -> Option<u8> {
    let raw = reply.get_raw()?;
    let mut len = 0usize;
    // SAFETY: `raw` is a live call reply; Redis returns `len` bytes of its protocol.
    let proto = unsafe { raw::RedisModule_CallReplyProto.unwrap()(raw, &mut len) };
    (!proto.is_null() && len > 0).then(|| unsafe { *proto.cast::<u8>() })
}

/// A call reply as a reply tree, status strings kept apart from bulk strings.
fn exact(reply: &redis_module::CallReply<'_>) -> Reply {
    use redis_module::CallReply as R;
    match reply {
        R::String(s) if proto_type(reply) == Some(b'+') => {
            Reply::Simple(String::from_utf8_lossy(s.as_bytes()).into_owned())
        }
        R::String(s) => Reply::Bulk(s.as_bytes().to_vec()),
        R::I64(i) => Reply::Integer(i.to_i64()),
        R::Null(_) | R::Unknown => Reply::Null,
        R::Array(a) => Reply::Array(
            a.iter()
                .map(|item| match item {
                    Ok(r) => exact(&r),
                    Err(e) => Reply::Error(error_text(&e).trim_end().to_string()),
                })
                .collect(),
        ),
        other => as_reply(own(other)),
    }
}

impl HeldReply {
    /// Writes the reply to `ctx` exactly as Redis gave it; false if there was none.
    pub fn write(&self, ctx: &Context) -> bool {
        let raw = match &self.0 {
            Ok(reply) => reply.get_raw(),
            Err(ErrorReply::RedisError(e)) => Some(e.get_raw()),
            Err(ErrorReply::Message(_)) => None,
        };
        match raw {
            Some(raw) => {
                // SAFETY: `raw` is a live call reply owned by `self`.
                unsafe { raw::RedisModule_ReplyWithCallReply.unwrap()(ctx.ctx, raw) };
                true
            }
            None => false,
        }
    }

    /// The reply as a tree, for sending later (to a blocked client).
    pub fn to_reply(&self) -> Reply {
        match &self.0 {
            Ok(redis_module::CallReply::Unknown) => Reply::error(call_failure()),
            Ok(reply) => exact(reply),
            Err(e) => Reply::Error(error_text(e).trim_end().to_string()),
        }
    }
}

fn as_reply(reply: CallReply) -> Reply {
    match reply {
        CallReply::Bytes(b) => Reply::Bulk(b),
        CallReply::Integer(i) => Reply::Integer(i),
        CallReply::Array(items) => Reply::Array(items.into_iter().map(as_reply).collect()),
        CallReply::Error(e) => Reply::Error(e),
        CallReply::Null => Reply::Null,
    }
}

/// Runs the real `command` for the client of `ctx` and relays its reply verbatim (the end of a
/// hook chain, or a call that no hook takes). False if the call could not be made.
pub fn relay(ctx: &Context, command: &[u8], args: &[Vec<u8>]) -> bool {
    call_real(ctx, command, args).write(ctx)
}

/// Runs one command. On a thread that already holds the Redis lock (a command running on the
/// main thread) it runs at once; elsewhere under the lock if it is free, else the GIL is
/// released while the lock is waited for.
pub fn call(py: Python<'_>, command: &str, args: &[Vec<u8>]) -> Result<CallReply, String> {
    let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    call_slices(py, command, &args)
}

/// [`call`] with borrowed arguments (`execute()` passes the bytes of its Python arguments).
pub fn call_slices(py: Python<'_>, command: &str, args: &[&[u8]]) -> Result<CallReply, String> {
    if let Some(ctx) = context::locked_context() {
        return call_read(&ctx, command, args, own);
    }
    // A free lock is taken without letting go of the GIL (most calls: letting go and taking it
    // back cost more than many commands).
    if let Some(lock) = crate::redis_lock::RedisLock::try_acquire() {
        return call_read(&lock, command, args, own);
    }
    py.detach(|| with_redis_lock(|ctx| call_read(ctx, command, args, own)))
}

/// Runs `f` with the Redis lock: the lock this thread already holds (a command or a `sync`
/// execution on the main thread), else a thread-safe context's. The caller must not hold the
/// GIL (lock order: Redis lock first).
pub fn with_redis_lock<R>(f: impl FnOnce(&Context) -> R) -> R {
    if let Some(ctx) = context::locked_context() {
        return f(&ctx);
    }
    let lock = crate::redis_lock::RedisLock::acquire();
    f(&lock)
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
