//! Per-thread facts the Python builtins need: is this a Gears thread, does it hold the Redis lock
//! (and through which context), and which RG.PYEXECUTE script is running on it.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use redis_module::{raw, Context};

use crate::executions::ExecutionEntry;
use crate::redis_lock::RedisLock;
use crate::registrations::PendingRegistration;
use crate::sessions::Session;

/// What a running script did, collected while it runs.
#[derive(Default)]
pub struct ScriptState {
    pub execution: Option<Arc<ExecutionEntry>>,
    /// Registrations made by the script; applied only if it ends without error.
    pub pending: Vec<PendingRegistration>,
}

thread_local! {
    /// Set while a reader opens keys, so its own `keymiss` does not fire registrations.
    static OPENING_KEYS: Cell<bool> = const { Cell::new(false) };
    /// The Redis lock taken by `atomic()` on a thread that did not hold it.
    static ATOMIC_LOCK: RefCell<Option<RedisLock>> = const { RefCell::new(None) };
    static IN_ATOMIC: Cell<bool> = const { Cell::new(false) };
    /// The hooked client command running on this thread (its name lower-cased), whose keyspace
    /// events fire `commands=` registrations.
    static COMMAND: RefCell<Option<(String, Arc<crate::linked::CommandLink>)>> = const { RefCell::new(None) };
    /// The client command the execution running on this thread is linked to.
    static LINK: RefCell<Option<Arc<crate::linked::CommandLink>>> = const { RefCell::new(None) };
    /// The hook whose execution runs on this thread (for `call_next`).
    static HOOK: RefCell<Option<Arc<crate::hooks::HookCall>>> = const { RefCell::new(None) };
    /// The session whose code runs on this thread (a script, an execution, or one set with
    /// `setGearsSession`).
    static SESSION: RefCell<Option<Arc<Session>>> = const { RefCell::new(None) };
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

/// Runs `f` (which opens keys) with keyspace notifications of this thread ignored.
pub fn opening_keys<R>(f: impl FnOnce() -> R) -> R {
    let previous = OPENING_KEYS.with(|o| o.replace(true));
    let result = f();
    OPENING_KEYS.with(|o| o.set(previous));
    result
}

pub fn is_opening_keys() -> bool {
    OPENING_KEYS.with(Cell::get)
}

/// True if the running script already registered the trigger `name`.
pub fn script_has_trigger(name: &str) -> bool {
    SCRIPT.with(|s| {
        s.borrow().as_ref().is_some_and(|state| {
            state.pending.iter().any(|p| {
                matches!(&p.trigger, crate::registrations::Trigger::Command(c) if c.name == name)
            })
        })
    })
}

/// True if the running script already registered a non-sync hook on `command`.
pub fn script_has_non_sync_hook(command: &str) -> bool {
    SCRIPT.with(|s| {
        s.borrow().as_ref().is_some_and(|state| {
            state.pending.iter().any(|p| {
                p.mode != crate::registrations::Mode::Sync
                    && matches!(&p.trigger, crate::registrations::Trigger::Command(c) if c.hook.is_some() && c.name == command)
            })
        })
    })
}

/// Queues a registration made by the running script; hands it back if no script is running.
pub fn script_registered(
    pending: Box<PendingRegistration>,
) -> Result<(), Box<PendingRegistration>> {
    SCRIPT.with(|s| match s.borrow_mut().as_mut() {
        Some(state) => {
            state.pending.push(*pending);
            Ok(())
        }
        None => Err(pending),
    })
}

pub fn in_atomic() -> bool {
    IN_ATOMIC.with(Cell::get)
}

/// Enters an atomic block: takes the Redis lock unless this thread holds it already. `lock` is
/// how to take it (the caller releases the GIL meanwhile). Err if already inside.
pub fn enter_atomic(lock: impl FnOnce() -> HeldLock) -> Result<(), &'static str> {
    if in_atomic() {
        return Err("Already inside an atomic block");
    }
    if locked_context().is_none() {
        let guard = lock().0;
        let ctx: &Context = &guard;
        LOCKED_CONTEXT.with(|c| c.set(ctx.ctx));
        ATOMIC_LOCK.with(|g| *g.borrow_mut() = Some(guard));
    }
    IN_ATOMIC.with(|a| a.set(true));
    Ok(())
}

/// Leaves the atomic block, releasing the lock if `enter_atomic` took it.
pub fn exit_atomic() -> Result<(), &'static str> {
    if !in_atomic() {
        return Err("Not inside an atomic block");
    }
    IN_ATOMIC.with(|a| a.set(false));
    if let Some(guard) = ATOMIC_LOCK.with(|g| g.borrow_mut().take()) {
        LOCKED_CONTEXT.with(|c| c.set(std::ptr::null_mut()));
        drop(guard);
    }
    Ok(())
}

/// The Redis lock, held by the thread that took it.
pub struct HeldLock(RedisLock);

// SAFETY: only moved out of `Python::detach`, whose closure runs on the calling thread; the lock
// is released by the thread that took it.
unsafe impl Send for HeldLock {}

/// Takes the Redis lock through this thread's context.
pub fn take_redis_lock() -> HeldLock {
    HeldLock(RedisLock::acquire())
}

/// Runs `f` (the real command of a `commands=` hook) with `name` / `link` as this thread's
/// hooked command.
pub fn with_command<R>(
    name: &str,
    link: &Arc<crate::linked::CommandLink>,
    f: impl FnOnce() -> R,
) -> R {
    let previous = COMMAND.with(|c| c.replace(Some((name.to_string(), link.clone()))));
    let result = f();
    COMMAND.with(|c| *c.borrow_mut() = previous);
    result
}

/// The hooked command running on this thread, if its name is in `commands`.
pub fn running_command(commands: &[String]) -> Option<Arc<crate::linked::CommandLink>> {
    COMMAND.with(|c| {
        c.borrow()
            .as_ref()
            .filter(|(name, _)| commands.iter().any(|n| n == name))
            .map(|(_, link)| link.clone())
    })
}

/// Runs `f` with `link` as the client command this thread's execution is linked to.
pub fn with_link<R>(link: Option<Arc<crate::linked::CommandLink>>, f: impl FnOnce() -> R) -> R {
    let previous = LINK.with(|l| l.replace(link));
    let result = f();
    LINK.with(|l| *l.borrow_mut() = previous);
    result
}

/// Sets this thread's linked client command (a coroutine's, around each of its steps).
pub fn set_link(link: Option<Arc<crate::linked::CommandLink>>) {
    LINK.with(|l| *l.borrow_mut() = link);
}

pub fn current_link() -> Option<Arc<crate::linked::CommandLink>> {
    LINK.with(|l| l.borrow().clone())
}

/// Runs `f` with `hook` as this thread's running hook.
pub fn with_hook<R>(hook: Option<Arc<crate::hooks::HookCall>>, f: impl FnOnce() -> R) -> R {
    let previous = HOOK.with(|h| h.replace(hook));
    let result = f();
    HOOK.with(|h| *h.borrow_mut() = previous);
    result
}

/// Sets this thread's running hook (a coroutine's, around each of its steps).
pub fn set_hook(hook: Option<Arc<crate::hooks::HookCall>>) {
    HOOK.with(|h| *h.borrow_mut() = hook);
}

pub fn current_hook() -> Option<Arc<crate::hooks::HookCall>> {
    HOOK.with(|h| h.borrow().clone())
}

pub fn current_session() -> Option<Arc<Session>> {
    SESSION.with(|s| s.borrow().clone())
}

pub fn set_session(session: Option<Arc<Session>>) {
    SESSION.with(|s| *s.borrow_mut() = session);
}

/// Runs `f` with `session` current on this thread.
pub fn with_session<R>(session: &Arc<Session>, f: impl FnOnce() -> R) -> R {
    let previous = SESSION.with(|s| s.replace(Some(session.clone())));
    let result = f();
    SESSION.with(|s| *s.borrow_mut() = previous);
    result
}

/// Runs `f` with `ctx` as this thread's lock-holding context (the thread holds the lock): a
/// sync execution fired inside a command calls Redis through the context of that command.
pub fn with_locked_context<R>(ctx: &Context, f: impl FnOnce() -> R) -> R {
    let previous = LOCKED_CONTEXT.with(|c| c.replace(ctx.ctx));
    let result = f();
    LOCKED_CONTEXT.with(|c| c.set(previous));
    result
}

/// Runs `f` as the body of an RG.PYEXECUTE of `session` on the main thread, collecting what the
/// script did.
pub fn as_script<R>(
    ctx: &Context,
    session: &Arc<Session>,
    f: impl FnOnce() -> R,
) -> (R, ScriptState) {
    let previous = LOCKED_CONTEXT.with(|c| c.replace(ctx.ctx));
    SCRIPT.with(|s| *s.borrow_mut() = Some(ScriptState::default()));
    let result = with_session(session, f);
    let state = SCRIPT.with(|s| s.borrow_mut().take()).unwrap_or_default();
    LOCKED_CONTEXT.with(|c| c.set(previous));
    (result, state)
}

/// True while an RG.PYEXECUTE script body runs on this thread.
pub fn in_script() -> bool {
    SCRIPT.with(|s| s.borrow().is_some())
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
