//! The module's INFO sections (commands.md §9), prefixed `rg_` by Redis.

use std::ffi::CString;
use std::os::raw::c_int;

use redis_module::{raw, Context};

use crate::executions;

fn c(s: &str) -> CString {
    CString::new(s).unwrap_or_default()
}

extern "C" fn info(ctx: *mut raw::RedisModuleInfoCtx, for_crash_report: c_int) {
    // During a crash report nothing that takes a lock is read (it may be held by the crash).
    let executions = if for_crash_report != 0 {
        None
    } else {
        executions::try_count()
    };
    // SAFETY: `ctx` is the info context Redis hands this callback; strings outlive each call.
    unsafe {
        raw::RedisModule_InfoAddSection.unwrap()(ctx, c("").as_ptr());
        if let Some(n) = executions {
            raw::RedisModule_InfoAddFieldLongLong.unwrap()(
                ctx,
                c("nexecutions").as_ptr(),
                n as i64,
            );
        }
        let registrations = crate::registrations::all();
        raw::RedisModule_InfoAddFieldLongLong.unwrap()(
            ctx,
            c("nregistrations").as_ptr(),
            registrations.len() as i64,
        );
        // RedisGears' own spelling.
        raw::RedisModule_InfoAddSection.unwrap()(ctx, c("regisrations").as_ptr());
        if for_crash_report == 0 {
            for registration in registrations.iter() {
                raw::RedisModule_InfoBeginDictField.unwrap()(ctx, c(&registration.id).as_ptr());
                for (name, value) in registration.info_fields() {
                    raw::RedisModule_InfoAddFieldCString.unwrap()(
                        ctx,
                        c(&name).as_ptr(),
                        c(&value).as_ptr(),
                    );
                }
                raw::RedisModule_InfoEndDictField.unwrap()(ctx);
            }
        }
        // Ours: what this shard received from the others (RG.NETWORKTEST messages).
        raw::RedisModule_InfoAddSection.unwrap()(ctx, c("cluster").as_ptr());
        raw::RedisModule_InfoAddFieldLongLong.unwrap()(
            ctx,
            c("network_test_received").as_ptr(),
            crate::shards::NETWORK_TEST_RECEIVED.load(std::sync::atomic::Ordering::SeqCst) as i64,
        );
        raw::RedisModule_InfoAddSection.unwrap()(ctx, c("plugins").as_ptr());
        raw::RedisModule_InfoBeginDictField.unwrap()(ctx, c("GearsPythonPlugin").as_ptr());
        raw::RedisModule_InfoAddFieldLongLong.unwrap()(ctx, c("version").as_ptr(), 10000);
        raw::RedisModule_InfoEndDictField.unwrap()(ctx);

        let (total, peak, current) = crate::python::allocator::stats();
        raw::RedisModule_InfoAddSection.unwrap()(ctx, c("python_stats").as_ptr());
        for (name, value) in [
            ("TotalAllocated", total),
            ("PeakAllocated", peak),
            ("CurrAllocated", current),
        ] {
            raw::RedisModule_InfoAddFieldLongLong.unwrap()(ctx, c(name).as_ptr(), value as i64);
        }
        raw::RedisModule_InfoAddSection.unwrap()(ctx, c("python_requirements").as_ptr());
        if for_crash_report == 0 {
            for (name, fields) in crate::reqs::info_fields() {
                raw::RedisModule_InfoBeginDictField.unwrap()(ctx, c(&name).as_ptr());
                for (field, value) in fields {
                    raw::RedisModule_InfoAddFieldCString.unwrap()(
                        ctx,
                        c(field).as_ptr(),
                        c(&value).as_ptr(),
                    );
                }
                raw::RedisModule_InfoEndDictField.unwrap()(ctx);
            }
        }
        raw::RedisModule_InfoAddSection.unwrap()(ctx, c("python_sessions").as_ptr());
        if for_crash_report == 0 {
            let mut seen = std::collections::BTreeMap::new();
            for registration in registrations.iter() {
                seen.entry(registration.session.id.clone())
                    .or_insert_with(|| registration.session.printable());
            }
            for (id, printable) in seen {
                raw::RedisModule_InfoAddFieldCString.unwrap()(
                    ctx,
                    c(&id).as_ptr(),
                    c(&printable).as_ptr(),
                );
            }
        }
    }
}

/// Replaces the crate's info callback with ours; called from module init.
pub fn register(ctx: &Context) {
    // SAFETY: module init on the main thread.
    unsafe {
        raw::RedisModule_RegisterInfoFunc.unwrap()(ctx.ctx, Some(info));
    }
}
