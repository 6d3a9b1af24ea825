//! Server events the module follows: the start of every load (RDB, AOF, full sync) clears the
//! registrations, sessions and executions the load brings back (sessions-and-cluster.md B.3); a
//! replica promoted to primary starts consuming its stream registrations' streams; and the cron
//! tick notices AOF rewrites, after which the registrations are written to the AOF again.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};

use redis_module::{raw, Context};

use crate::{persist, redis_calls, registrations, streams};

unsafe extern "C" fn on_loading(
    _ctx: *mut raw::RedisModuleCtx,
    _event: raw::RedisModuleEvent,
    subevent: u64,
    _data: *mut std::os::raw::c_void,
) {
    let starting = matches!(
        subevent,
        raw::REDISMODULE_SUBEVENT_LOADING_RDB_START
            | raw::REDISMODULE_SUBEVENT_LOADING_AOF_START
            | raw::REDISMODULE_SUBEVENT_LOADING_REPL_START
    );
    if starting && catch_unwind(AssertUnwindSafe(persist::clear_for_load)).is_err() {
        redis_calls::log("warning", "clearing before a load failed (panic caught)");
    }
}

unsafe extern "C" fn on_role_change(
    _ctx: *mut raw::RedisModuleCtx,
    _event: raw::RedisModuleEvent,
    subevent: u64,
    _data: *mut std::os::raw::c_void,
) {
    if subevent != raw::REDISMODULE_EVENT_REPLROLECHANGED_NOW_MASTER {
        return;
    }
    let promoted = catch_unwind(AssertUnwindSafe(|| {
        for registration in registrations::all().iter() {
            if registration.consumer.is_some() {
                streams::track_existing(registration);
            }
        }
    }));
    if promoted.is_err() {
        redis_calls::log(
            "warning",
            "starting stream registrations failed (panic caught)",
        );
    }
}

/// AOF rewrites seen so far (main thread only).
static AOF_REWRITES: AtomicU64 = AtomicU64::new(0);

/// A rewritten AOF without an RDB preamble holds no module state, so once a rewrite started
/// (the new incremental file is in use) every registration is written to it again
/// (RG.INNERREGISTER is idempotent). Checked on every cron tick: Redis sends modules no event
/// in the parent when a rewrite starts (the persistence event fires in the forked child).
unsafe extern "C" fn on_cron(
    ctx: *mut raw::RedisModuleCtx,
    _event: raw::RedisModuleEvent,
    _subevent: u64,
    _data: *mut std::os::raw::c_void,
) {
    let ctx = Context::new(ctx);
    if catch_unwind(AssertUnwindSafe(|| crate::shards::watch(&ctx))).is_err() {
        redis_calls::log(
            "warning",
            "watching the cluster topology failed (panic caught)",
        );
    }
    let checked = catch_unwind(AssertUnwindSafe(|| {
        let [rewrites, aof_enabled] =
            redis_calls::info_unsigned(&ctx, "persistence", ["aof_rewrites", "aof_enabled"]);
        let previous = AOF_REWRITES.swap(rewrites, Ordering::Relaxed);
        if rewrites > previous
            && aof_enabled == 1
            && !registrations::all().is_empty()
            && !rdb_preamble(&ctx)
        {
            persist::replicate_all(&ctx);
        }
    }));
    if checked.is_err() {
        redis_calls::log(
            "warning",
            "writing registrations to the AOF failed (panic caught)",
        );
    }
}

fn rdb_preamble(ctx: &Context) -> bool {
    match ctx.call("CONFIG", &["GET", "aof-use-rdb-preamble"]) {
        Ok(redis_module::RedisValue::Array(values)) => !matches!(
            values.get(1),
            Some(redis_module::RedisValue::SimpleString(v) | redis_module::RedisValue::BulkString(v)) if v == "no"
        ),
        _ => true,
    }
}

pub fn subscribe(ctx: &Context) {
    let events: [(u64, raw::RedisModuleEventCallback); 3] = [
        (raw::REDISMODULE_EVENT_LOADING, Some(on_loading)),
        (raw::REDISMODULE_EVENT_CRON_LOOP, Some(on_cron)),
        (
            raw::REDISMODULE_EVENT_REPLICATION_ROLE_CHANGED,
            Some(on_role_change),
        ),
    ];
    for (id, callback) in events {
        // SAFETY: called at module load on the main thread with the module's context.
        let status = unsafe {
            raw::RedisModule_SubscribeToServerEvent.unwrap()(
                ctx.ctx,
                raw::RedisModuleEvent { id, dataver: 1 },
                callback,
            )
        };
        if status != raw::REDISMODULE_OK as i32 {
            ctx.log_warning(&format!("could not subscribe to server event {id}"));
        }
    }
}
