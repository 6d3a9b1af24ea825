//! Per-thread facts the Python builtins need: is this a Gears thread, does it hold the Redis lock
//! (and through which context), and which RG.PYEXECUTE script is running on it.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use redis_module::{raw, Context};

use crate::executions::ExecutionEntry;

/// What a running script did, collected while it runs.
#[derive(Default)]
pub struct ScriptState {
    pub execution: Option<Arc<ExecutionEntry>>,
}

thread_local! {
    static GEARS_THREAD: Cell<bool> = const { Cell::new(false) };
    static LOCKED_CONTEXT: Cell<*mut raw::RedisModuleCtx> = const { Cell::new(std::ptr::null_mut()) };
    static SCRIPT: RefCell<Option<ScriptState>> = const { RefCell::new(None) };
}

/// Marks the calling thread as one of Gears' own (an execution worker).
pub fn register_gears_thread() {
    GEARS_THREAD.with(|g| g.set(true));
}

pub fn on_gears_thread() -> bool {
    GEARS_THREAD.with(Cell::get) || !LOCKED_CONTEXT.with(Cell::get).is_null()
}

/// The context of the command running on this thread, which holds the Redis lock.
pub fn locked_context() -> Option<Context> {
    let ctx = LOCKED_CONTEXT.with(Cell::get);
    (!ctx.is_null()).then(|| Context::new(ctx))
}

/// Runs `f` as the body of an RG.PYEXECUTE on the main thread, collecting what the script did.
pub fn as_script<R>(ctx: &Context, f: impl FnOnce() -> R) -> (R, ScriptState) {
    let previous = LOCKED_CONTEXT.with(|c| c.replace(ctx.ctx));
    SCRIPT.with(|s| *s.borrow_mut() = Some(ScriptState::default()));
    let result = f();
    let state = SCRIPT.with(|s| s.borrow_mut().take()).unwrap_or_default();
    LOCKED_CONTEXT.with(|c| c.set(previous));
    (result, state)
}

/// True when the running script already started its one execution.
pub fn script_already_ran() -> bool {
    SCRIPT.with(|s| {
        s.borrow()
            .as_ref()
            .is_some_and(|state| state.execution.is_some())
    })
}

/// Hands a new execution to the running script, if there is one.
pub fn script_started(entry: &Arc<ExecutionEntry>) {
    SCRIPT.with(|s| {
        if let Some(state) = s.borrow_mut().as_mut() {
            state.execution = Some(entry.clone());
        }
    });
}
