//! `registerTE(seconds, callback, keyName=None)` (runtime.md §3.7): a Redis timer that calls
//! `callback()` on the main thread, holding the Redis lock, under the session that created it,
//! every `seconds` until the callback raises. With `keyName` the timer is the value of that key
//! (type `rg_timeev`): saved in RDB and re-armed on load, stopped when the key is deleted or
//! overwritten.

use std::os::raw::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFunction, PyInt, PyString, PyTuple};
use redis_module::native_types::RedisType;
use redis_module::{raw, Context, ContextFlags, KeyType, RedisString};

use crate::python::context;
use crate::python::errors::{format_error, gears_error};
use crate::redis_calls;
use crate::sessions::Session;

pub struct TimeEvent {
    period: Duration,
    callback: Py<PyAny>,
    session: Arc<Session>,
    /// The callback cloudpickled at creation, for a keyed event: saving (in BGSAVE's forked
    /// child) then runs no Python.
    pickled: Option<Vec<u8>>,
    /// Set when its key is deleted or overwritten: the next tick ends it.
    stopped: AtomicBool,
}

/// The format version of an `rg_timeev` value.
const TIME_EVENT_ENCODING_VERSION: i32 = 1;

pub static TIME_EVENT_TYPE: RedisType = RedisType::new(
    "rg_timeev",
    TIME_EVENT_ENCODING_VERSION,
    raw::RedisModuleTypeMethods {
        version: raw::REDISMODULE_TYPE_METHOD_VERSION as u64,
        rdb_load: Some(rdb_load),
        rdb_save: Some(rdb_save),
        aof_rewrite: Some(aof_rewrite),
        free: Some(free),
        mem_usage: None,
        digest: None,
        aux_load: None,
        aux_save: None,
        aux_save2: None,
        aux_save_triggers: 0,
        free_effort: None,
        unlink: None,
        copy: None,
        defrag: None,
        copy2: None,
        free_effort2: None,
        mem_usage2: None,
        unlink2: None,
    },
);

/// The timer's tick on the main thread: runs the callback, then re-arms unless it raised or
/// its key is gone. A replica only re-arms: its primary's timer does the work.
fn tick(ctx: &Context, event: Arc<TimeEvent>) {
    if event.stopped.load(Ordering::SeqCst) {
        return;
    }
    if ctx.get_flags().contains(ContextFlags::SLAVE) {
        arm(ctx, event);
        return;
    }
    let ran = catch_unwind(AssertUnwindSafe(|| {
        context::with_locked_context(ctx, || {
            context::with_session(&event.session, || {
                Python::attach(|py| {
                    event
                        .callback
                        .bind(py)
                        .call0()
                        .map(|_| ())
                        .map_err(|e| format_error(py, &e))
                })
            })
        })
    }));
    match ran {
        Ok(Ok(())) => arm(ctx, event),
        Ok(Err(error)) => redis_calls::log(
            "warning",
            &format!("Error occured on TimeEvent_Callback, error={error}"),
        ),
        Err(_) => redis_calls::log(
            "warning",
            "Error occured on TimeEvent_Callback, error=internal error (panic caught)",
        ),
    }
}

fn arm(ctx: &Context, event: Arc<TimeEvent>) {
    let period = event.period;
    ctx.create_timer(period, tick, event);
}

/// `registerTE(seconds, callback, keyName=None)`.
#[pyfunction]
#[pyo3(name = "registerTimeEvent", signature = (*args))]
pub fn register_time_event(py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<bool> {
    if !(2..=3).contains(&args.len()) {
        return Err(gears_error("not enough arguments for time event"));
    }
    let seconds = args.get_item(0)?;
    if !seconds.is_instance_of::<PyInt>() || seconds.is_instance_of::<PyBool>() {
        return Err(gears_error("time argument must be a long"));
    }
    let seconds: i64 = seconds
        .extract()
        .map_err(|_| gears_error("time argument must be a long"))?;
    let callback = args.get_item(1)?;
    if !callback.is_instance_of::<PyFunction>() {
        return Err(gears_error("callback must be a function"));
    }
    let key = match args.get_item(2).ok().filter(|k| !k.is_none()) {
        None => None,
        Some(k) => Some(
            k.cast::<PyString>()
                .map_err(|_| gears_error("key name must be a string"))?
                .to_str()?
                .as_bytes()
                .to_vec(),
        ),
    };
    let session = context::current_session()
        .ok_or_else(|| gears_error("can not create time event on a python created thread"))?;
    let pickled = match key {
        None => None,
        Some(_) => Some(
            py.import("cloudpickle")?
                .getattr("dumps")?
                .call1((&callback,))?
                .extract::<Vec<u8>>()?,
        ),
    };
    let event = Arc::new(TimeEvent {
        period: Duration::from_secs(seconds.max(0) as u64),
        callback: callback.unbind(),
        session,
        pickled,
        stopped: AtomicBool::new(false),
    });
    // Lock order: the Redis lock first, so the GIL is released while it is taken.
    let created = match context::locked_context() {
        Some(ctx) => create(&ctx, key.as_deref(), event),
        None => {
            py.detach(|| redis_calls::with_redis_lock(|ctx| create(ctx, key.as_deref(), event)))
        }
    };
    created.map_err(|e| gears_error(&e))
}

/// Stores `event` under `key` (false if the key exists) and arms it. A keyed event also goes
/// to replicas and the AOF, as `RG.INNERTIMEEVENT`.
fn create(ctx: &Context, key: Option<&[u8]>, event: Arc<TimeEvent>) -> Result<bool, String> {
    if let Some(key) = key {
        if !store(ctx, key, event.clone())? {
            return Ok(false);
        }
        let seconds = event.period.as_secs().to_string();
        let pickled = event.pickled.as_deref().unwrap_or_default();
        ctx.replicate("RG.INNERTIMEEVENT", &[key, seconds.as_bytes(), pickled]);
    }
    arm(ctx, event);
    Ok(true)
}

/// Sets `key` to `event` unless the key exists (false then).
fn store(ctx: &Context, key: &[u8], event: Arc<TimeEvent>) -> Result<bool, String> {
    let name = RedisString::create_from_slice(ctx.ctx, key);
    let key = ctx.open_key_writable(&name);
    if key.key_type() != KeyType::Empty {
        return Ok(false);
    }
    key.set_value(&TIME_EVENT_TYPE, event)
        .map_err(|e| e.to_string())?;
    Ok(true)
}

/// The timer of a saved or replicated event, its callback unpickled, in a session of its own.
/// One whose callback no longer unpickles stays inert (logged).
fn restored(seconds: u64, pickled: Vec<u8>) -> Arc<TimeEvent> {
    let (callback, stopped) = Python::attach(|py| {
        let loaded = py
            .import("cloudpickle")
            .and_then(|c| c.getattr("loads"))
            .and_then(|loads| loads.call1((pyo3::types::PyBytes::new(py, &pickled),)));
        match loaded {
            Ok(f) => (f.unbind(), false),
            Err(e) => {
                redis_calls::log(
                    "warning",
                    &format!(
                        "a saved time event could not be restored, its key stays inert: {}",
                        format_error(py, &e)
                    ),
                );
                (py.None(), true)
            }
        }
    });
    Arc::new(TimeEvent {
        period: Duration::from_secs(seconds),
        callback,
        session: Session::new(None, None),
        pickled: Some(pickled),
        stopped: AtomicBool::new(stopped),
    })
}

/// `RG.INNERTIMEEVENT <key> <seconds> <pickled callback>`: a keyed `registerTE` of the primary
/// (or of the AOF being loaded). An existing key is left alone.
pub fn inner_time_event(ctx: &Context, args: Vec<RedisString>) -> crate::commands::Answer {
    use crate::reply::Reply;
    if args.len() != 4 {
        return crate::commands::Answer::WrongArity;
    }
    let Some(seconds) = std::str::from_utf8(args[2].as_slice())
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    else {
        return Reply::error("time argument must be a long").into();
    };
    let event = restored(seconds, args[3].as_slice().to_vec());
    let live = !event.stopped.load(Ordering::SeqCst);
    match store(ctx, args[1].as_slice(), event.clone()) {
        Ok(true) => {
            if live {
                arm(ctx, event);
            }
            ctx.replicate_verbatim();
            Reply::ok().into()
        }
        Ok(false) => Reply::ok().into(),
        Err(e) => Reply::error(e).into(),
    }
}

/// The key was deleted or overwritten: its timer ends at its next tick.
unsafe extern "C" fn free(value: *mut c_void) {
    if value.is_null() {
        return;
    }
    // SAFETY: `value` is the `Box<Arc<TimeEvent>>` that `set_value` stored, freed once.
    let event = unsafe { Box::from_raw(value.cast::<Arc<TimeEvent>>()) };
    event.stopped.store(true, Ordering::SeqCst);
}

unsafe extern "C" fn rdb_save(rdb: *mut raw::RedisModuleIO, value: *mut c_void) {
    // SAFETY: `value` is the live `Arc<TimeEvent>` stored in the key.
    let event = unsafe { &*value.cast::<Arc<TimeEvent>>() };
    raw::save_unsigned(rdb, event.period.as_secs());
    raw::save_slice(rdb, event.pickled.as_deref().unwrap_or_default());
}

/// Re-arms a saved timer ([`restored`]): an inert key rather than a failed load when its callback
/// no longer unpickles.
unsafe extern "C" fn rdb_load(rdb: *mut raw::RedisModuleIO, encver: c_int) -> *mut c_void {
    if encver > TIME_EVENT_ENCODING_VERSION {
        redis_calls::log(
            "warning",
            "could not load a time event saved by a newer RedisGears version",
        );
        return std::ptr::null_mut();
    }
    let loaded = catch_unwind(AssertUnwindSafe(|| -> Result<Arc<TimeEvent>, String> {
        let seconds = raw::load_unsigned(rdb).map_err(|e| e.to_string())?;
        let pickled = raw::load_string_buffer(rdb)
            .map_err(|e| e.to_string())?
            .as_ref()
            .to_vec();
        let event = restored(seconds, pickled);
        if !event.stopped.load(Ordering::SeqCst) {
            arm(&redis_calls::detached_context(), event.clone());
        }
        Ok(event)
    }));
    match loaded {
        Ok(Ok(event)) => Box::into_raw(Box::new(event)).cast(),
        Ok(Err(e)) => {
            redis_calls::log("warning", &format!("Failed loading a time event ({e})"));
            std::ptr::null_mut()
        }
        Err(_) => std::ptr::null_mut(),
    }
}

/// An AOF rewrite without the RDB preamble writes the timer as the command that re-creates it.
unsafe extern "C" fn aof_rewrite(
    aof: *mut raw::RedisModuleIO,
    key: *mut raw::RedisModuleString,
    value: *mut c_void,
) {
    // SAFETY: `value` is the live `Arc<TimeEvent>` stored in `key`; Redis passes valid pointers.
    let event = unsafe { &*value.cast::<Arc<TimeEvent>>() };
    let (Ok(command), Ok(format)) = (
        std::ffi::CString::new("RG.INNERTIMEEVENT"),
        std::ffi::CString::new("slb"),
    ) else {
        return;
    };
    let pickled = event.pickled.as_deref().unwrap_or_default();
    // SAFETY: the format matches the arguments: a RedisModuleString, a long long, a buffer.
    unsafe {
        raw::RedisModule_EmitAOF.unwrap()(
            aof,
            command.as_ptr(),
            format.as_ptr(),
            key,
            event.period.as_secs() as std::os::raw::c_longlong,
            pickled.as_ptr().cast::<std::os::raw::c_char>(),
            pickled.len(),
        );
    }
}
