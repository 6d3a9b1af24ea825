//! Command hooks (CommandReader `hook=`): a command filter reroutes every call of a hooked
//! command to RG.TRIGGER, which runs the newest matching hook; `call_next` walks the chain down to
//! the real command (readers.md §7.4, BUILD-NOTES-2 §1).

use std::cell::Cell;
use std::collections::HashSet;
use std::os::raw::c_char;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, RwLock};

use redis_module::raw;

use crate::registrations::{self, KeySpec, Registration, Trigger};

/// Inserted after `RG.TRIGGER` in a rerouted call; no trigger name can start with a NUL byte
/// sent by a client through the hook path.
pub const MARKER: &[u8] = b"\0gears-hook";

/// Names (lower-cased) of the commands that have hooks.
static HOOKED: LazyLock<RwLock<HashSet<String>>> = LazyLock::new(RwLock::default);
/// Names (lower-cased) of the commands listed by KeysReader `commands=` registrations.
static KEYS_HOOKED: LazyLock<RwLock<HashSet<String>>> = LazyLock::new(RwLock::default);
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
    let keys_names: HashSet<String> = registrations::all()
        .iter()
        .filter_map(|r| match &r.trigger {
            Trigger::Keys(k) => k.command_names(),
            _ => None,
        })
        .flatten()
        .collect();
    ANY_HOOK.store(
        !names.is_empty() || !keys_names.is_empty(),
        Ordering::SeqCst,
    );
    *HOOKED.write().unwrap_or_else(|e| e.into_inner()) = names;
    *KEYS_HOOKED.write().unwrap_or_else(|e| e.into_inner()) = keys_names;
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
        let create = |s: &[u8]| {
            raw::RedisModule_CreateString.unwrap()(
                std::ptr::null_mut(),
                s.as_ptr().cast::<c_char>(),
                s.len(),
            )
        };
        if hooked {
            // `HSET k f v` becomes `rg.trigger <MARKER> HSET k f v` (the name as typed); Redis
            // takes ownership of the strings given to the filter.
            raw::RedisModule_CommandFilterArgInsert.unwrap()(fctx, 0, create(b"rg.trigger"));
            raw::RedisModule_CommandFilterArgInsert.unwrap()(fctx, 1, create(MARKER));
            return;
        }
        let keys_hooked = KEYS_HOOKED
            .read()
            .map(|h| h.contains(&name))
            .unwrap_or(false);
        if keys_hooked {
            // `GET k` becomes `rg.innerhook GET k`.
            raw::RedisModule_CommandFilterArgInsert.unwrap()(fctx, 0, create(b"rg.innerhook"));
        }
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

/// Key positions of a hooked command, from the registrations that hook it.
fn key_spec(command: &str) -> Option<KeySpec> {
    registrations::all().iter().find_map(|r| match &r.trigger {
        Trigger::Command(c) if c.name == command => c.hook.as_ref().map(|h| h.keys),
        Trigger::Keys(k) => k
            .commands
            .as_ref()
            .and_then(|commands| commands.iter().find(|c| c.name == command).map(|c| c.keys)),
        _ => None,
    })
}

/// Answers Redis' key-position request for a rerouted call (cluster routing, ACL): the keys are
/// the original command's, `shift` arguments further on (the ones the filter inserted). `argv`
/// is the rerouted call, `argv[shift]` the original command name.
pub fn declare_keys(ctx: &redis_module::Context, argv: &[redis_module::RedisString], shift: usize) {
    let Some(name) = argv.get(shift) else {
        return;
    };
    let name = String::from_utf8_lossy(name.as_slice()).to_ascii_lowercase();
    let Some(keys) = key_spec(&name) else {
        return;
    };
    for i in keys.positions(argv.len() - shift) {
        // SAFETY: a key-position request context, on the main thread.
        unsafe {
            raw::RedisModule_KeyAtPos.unwrap()(ctx.ctx, (i + shift) as i32);
        }
    }
}

/// True when Redis only asks the command for its keys.
pub fn is_keys_request(ctx: &redis_module::Context) -> bool {
    // SAFETY: a command context.
    unsafe { raw::RedisModule_IsKeysPositionRequest.unwrap()(ctx.ctx) != 0 }
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
    hook.keys
        .positions(args.len() + 1)
        .any(|i| args[i - 1].starts_with(prefix.as_bytes()))
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
