//! The module's RDB aux data: data types with no keys whose aux sections carry the requirements
//! table (before the keyspace), so restarts and replicas' full syncs reinstall requirements
//! offline, and the sessions and registrations (after it). Our own format (DESIGN.md: loading
//! the original's RDB is not a goal); a newer version than this build reads fails the load with
//! a log line, as does a truncated section.

use std::os::raw::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};

use redis_module::native_types::RedisType;
use redis_module::raw;

type AuxLoad = unsafe extern "C" fn(*mut raw::RedisModuleIO, c_int, c_int) -> c_int;
type AuxSave = unsafe extern "C" fn(*mut raw::RedisModuleIO, c_int);

/// The methods of a type that has no keys, only an aux section saved at `when`.
const fn aux_only(load: AuxLoad, save: AuxSave, when: raw::Aux) -> raw::RedisModuleTypeMethods {
    raw::RedisModuleTypeMethods {
        version: raw::REDISMODULE_TYPE_METHOD_VERSION as u64,
        rdb_load: None,
        rdb_save: None,
        aof_rewrite: None,
        free: None,
        mem_usage: None,
        digest: None,
        aux_load: Some(load),
        aux_save: Some(save),
        aux_save2: None,
        aux_save_triggers: when as c_int,
        free_effort: None,
        unlink: None,
        copy: None,
        defrag: None,
        copy2: None,
        free_effort2: None,
        mem_usage2: None,
        unlink2: None,
    }
}

/// The aux format version this build writes and the newest it reads.
const REQS_ENCODING_VERSION: i32 = 1;

pub static REQUIREMENTS_TYPE: RedisType = RedisType::new(
    "GRS_REQS0",
    REQS_ENCODING_VERSION,
    aux_only(aux_load, aux_save, raw::Aux::Before),
);

/// The registrations section's format version this build writes and the newest it reads.
const REGISTRATIONS_ENCODING_VERSION: i32 = 1;

pub static REGISTRATIONS_TYPE: RedisType = RedisType::new(
    "GRS_REGS0",
    REGISTRATIONS_ENCODING_VERSION,
    aux_only(
        registrations_aux_load,
        registrations_aux_save,
        raw::Aux::After,
    ),
);

/// Saves a section unless a panic stops it (logged as `what` failing).
fn guarded_save(what: &str, save: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(save)).is_err() {
        crate::redis_calls::log(
            "warning",
            &format!("saving the {what} failed (panic caught)"),
        );
    }
}

/// Loads a section written in format `encver`, refusing one newer than `newest` with
/// `too_new` in the log; a failure or a panic fails the load, logged after `failed`.
fn guarded_load(
    encver: c_int,
    newest: i32,
    too_new: &str,
    failed: &str,
    load: impl FnOnce() -> Result<(), String>,
) -> c_int {
    if encver > newest {
        crate::redis_calls::log(
            "warning",
            &format!(
                "{too_new} (the section has version {encver}, this build reads up to {newest})"
            ),
        );
        return raw::REDISMODULE_ERR as c_int;
    }
    let error = match catch_unwind(AssertUnwindSafe(load)) {
        Ok(Ok(())) => return raw::REDISMODULE_OK as c_int,
        Ok(Err(e)) => e,
        Err(_) => "panic caught".to_string(),
    };
    crate::redis_calls::log("warning", &format!("{failed} ({error})"));
    raw::REDISMODULE_ERR as c_int
}

extern "C" fn registrations_aux_save(rdb: *mut raw::RedisModuleIO, when: c_int) {
    if when == raw::Aux::After as c_int {
        guarded_save("registrations", || crate::persist::aux_save(rdb));
    }
}

extern "C" fn registrations_aux_load(
    rdb: *mut raw::RedisModuleIO,
    encver: c_int,
    when: c_int,
) -> c_int {
    if when != raw::Aux::After as c_int {
        return raw::REDISMODULE_OK as c_int;
    }
    guarded_load(
        encver,
        REGISTRATIONS_ENCODING_VERSION,
        "could not load rdb created with higher RedisGears version!",
        "Failed loading registrations",
        || crate::persist::aux_load(rdb),
    )
}

extern "C" fn aux_save(rdb: *mut raw::RedisModuleIO, when: c_int) {
    if when == raw::Aux::Before as c_int {
        guarded_save("requirements", || crate::reqs::aux_save(rdb));
    }
}

extern "C" fn aux_load(rdb: *mut raw::RedisModuleIO, encver: c_int, when: c_int) -> c_int {
    if when != raw::Aux::Before as c_int {
        return raw::REDISMODULE_OK as c_int;
    }
    guarded_load(
        encver,
        REQS_ENCODING_VERSION,
        "Give requirement version is not supported, please upgrade to newer RedisGears.",
        "Failed deserialize requirements",
        || crate::reqs::aux_load(rdb),
    )
}
