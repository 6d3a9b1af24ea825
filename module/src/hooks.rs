//! Command hooks (CommandReader `hook=`): a command filter reroutes every call of a hooked
//! command to RG.TRIGGER, which runs the newest matching hook; `call_next` walks the chain down to
//! the real command (readers.md §7.4, BUILD-NOTES-2 §1).

use std::cell::Cell;
use std::collections::HashSet;
use std::os::raw::c_char;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, RwLock};

use redis_module::raw;

use crate::registrations::{self, Registration, Trigger};

/// Inserted after `RG.TRIGGER` in a rerouted call; no trigger name can start with a NUL byte
/// sent by a client through the hook path.
pub const MARKER: &[u8] = b"\0gears-hook";

/// Names (lower-cased) of the commands that have hooks.
static HOOKED: LazyLock<RwLock<HashSet<String>>> = LazyLock::new(RwLock::default);
static ANY_HOOK: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Set while Gears itself runs the real command at the end of a hook chain.
    static BYPASS: Cell<bool> = const { Cell::new(false) };
    /// How many of the newest hooks the next rerouted call skips (set by `call_next`).
    static SKIP: Cell<usize> = const { Cell::new(0) };
}

/// The hooks table changed: recompute the hooked names.
pub fn refresh() {
    let names: HashSet<String> = registrations::all()
        .iter()
        .filter_map(|r| match &r.trigger {
            Trigger::Command(c) if c.hook.is_some() => Some(c.name.clone()),
            _ => None,
        })
        .collect();
    ANY_HOOK.store(!names.is_empty(), Ordering::SeqCst);
    *HOOKED.write().unwrap_or_else(|e| e.into_inner()) = names;
}

fn bytes_of(s: *const raw::RedisModuleString) -> Vec<u8> {
    let mut len = 0usize;
    // SAFETY: `s` is an argument string of the filtered command, alive during the filter.
    let ptr = unsafe { raw::RedisModule_StringPtrLen.unwrap()(s, &mut len) };
    if ptr.is_null() {
        return Vec::new();
    }
    // SAFETY: Redis returns `len` readable bytes at `ptr`.
    unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) }.to_vec()
}

/// The command filter: runs on the calling thread for every command, so it returns at once
/// unless hooks exist and this command has one.
extern "C" fn filter(fctx: *mut raw::RedisModuleCommandFilterCtx) {
    if !ANY_HOOK.load(Ordering::Relaxed) || BYPASS.with(Cell::get) {
        return;
    }
    // SAFETY: the filter context is valid for the duration of this call.
    unsafe {
        if raw::RedisModule_CommandFilterArgsCount.unwrap()(fctx) < 1 {
            return;
        }
        let name = bytes_of(raw::RedisModule_CommandFilterArgGet.unwrap()(fctx, 0));
        let name = String::from_utf8_lossy(&name).to_ascii_lowercase();
        let hooked = HOOKED.read().map(|h| h.contains(&name)).unwrap_or(false);
        if !hooked {
            return;
        }
        let create = |s: &[u8]| {
            raw::RedisModule_CreateString.unwrap()(
                std::ptr::null_mut(),
                s.as_ptr().cast::<c_char>(),
                s.len(),
            )
        };
        // `HSET k f v` becomes `rg.trigger <MARKER> HSET k f v` (the name as typed); Redis
        // takes ownership of the strings given to the filter.
        raw::RedisModule_CommandFilterArgInsert.unwrap()(fctx, 0, create(b"rg.trigger"));
        raw::RedisModule_CommandFilterArgInsert.unwrap()(fctx, 1, create(MARKER));
    }
}

/// Registers the filter; called once from module init.
pub fn register_filter(ctx: &redis_module::Context) {
    // SAFETY: module init, main thread.
    unsafe {
        raw::RedisModule_RegisterCommandFilter.unwrap()(ctx.ctx, Some(filter), 0);
    }
}

/// Runs `f` (which calls the real command) with the filter off for this thread.
pub fn bypassing<R>(f: impl FnOnce() -> R) -> R {
    let previous = BYPASS.with(|b| b.replace(true));
    let result = f();
    BYPASS.with(|b| b.set(previous));
    result
}

/// Runs `f` (which re-issues a hooked command) so that the rerouted call skips the `skip`
/// newest hooks.
pub fn skipping<R>(skip: usize, f: impl FnOnce() -> R) -> R {
    SKIP.with(|s| s.set(skip));
    let result = f();
    SKIP.with(|s| s.set(0));
    result
}

/// Taken by the rerouted call: how many hooks to skip.
pub fn take_skip() -> usize {
    SKIP.with(|s| s.replace(0))
}

/// A running hook: what `call_next` needs to continue the chain.
pub struct HookCall {
    /// The hooked command's name as the client typed it; None for a `trigger=` registration,
    /// which has no next handler.
    pub command: Option<Vec<u8>>,
    /// Hooks newer than the next one to try.
    pub skip: usize,
}

/// Does the hook's keyprefix let this call through? `args` are the command's arguments (its
/// name excluded); a call too short to hold a key is left to Redis.
fn prefix_matches(hook: &crate::registrations::Hook, args: &[Vec<u8>]) -> bool {
    let Some(prefix) = &hook.keyprefix else {
        return true;
    };
    let argc = args.len() as i64 + 1;
    let last = if hook.last_key < 0 {
        argc + hook.last_key
    } else {
        hook.last_key
    };
    let mut i = hook.first_key;
    while i <= last && i < argc {
        if args[(i - 1) as usize].starts_with(prefix.as_bytes()) {
            return true;
        }
        i += hook.step;
    }
    false
}

/// The hooks of `command` (lower-cased), newest first, that apply to `args`, after skipping
/// the `skip` newest; with their positions in the chain.
pub fn matching(
    command: &str,
    args: &[Vec<u8>],
    skip: usize,
) -> Option<(usize, Arc<Registration>)> {
    let all = registrations::all();
    all.iter()
        .rev()
        .filter(
            |r| matches!(&r.trigger, Trigger::Command(c) if c.hook.is_some() && c.name == command),
        )
        .enumerate()
        .skip(skip)
        .find(|(_, r)| match &r.trigger {
            Trigger::Command(c) => c.hook.as_ref().is_some_and(|h| prefix_matches(h, args)),
            _ => false,
        })
        .map(|(position, r)| (position, r.clone()))
}
