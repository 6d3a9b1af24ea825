//! gears-rs: a drop-in replacement for the RedisGears 1.2 module, in Rust.
//!
//! `redis-server --loadmodule libredisgears.so [KEY VALUE ...]` loads it under the module name
//! `rg`. This crate is the only one that touches Redis or Python: commands, readers, the
//! executions table and the embedded CPython. The engine lives in `dataflow`.

pub mod blocked;
pub mod commands;
pub mod config;
pub mod events;
pub mod executions;
pub mod hooks;
pub mod ids;
pub mod info;
pub mod linked;
pub mod persist;
pub mod python;
pub mod rdb;
pub mod readers;
pub mod redis_calls;
pub mod redis_lock;
pub mod registrations;
use rdb::{REGISTRATIONS_TYPE, REQUIREMENTS_TYPE};
pub mod reply;
pub mod reqs;
pub mod runner;
pub mod server_events;
pub mod sessions;
pub mod shards;
pub mod streams;
pub mod threads;
pub mod time_events;
pub mod timers;
use time_events::TIME_EVENT_TYPE;

use redis_module::{redis_module, Context, RedisResult, RedisString, Status};

use commands::{
    cluster, config as config_commands, debug, execute, executions as execution_commands, guarded,
    innerhook, profile, python as python_commands, registrations as registration_commands,
    sessions as session_commands, trigger,
};

/// RedisGears 1.2.13, as `major*10000 + minor*100 + patch`.
pub const MODULE_VERSION: i32 = 10213;

fn init(ctx: &Context, args: &[RedisString]) -> Status {
    redis_calls::init_logging(ctx);
    info::register(ctx);
    server_events::subscribe(ctx);
    // Our aux loads check every read, so a short or broken RDB fails the load with our log
    // line (and diskless replica loads are allowed).
    // SAFETY: module load, main thread, the module's context.
    unsafe {
        redis_module::raw::RedisModule_SetModuleOptions.unwrap()(
            ctx.ctx,
            redis_module::raw::REDISMODULE_OPTIONS_HANDLE_IO_ERRORS as i32,
        )
    };
    hooks::register_filter(ctx);
    let args = commands::text_args(args);
    let config = match config::Config::from_load_args(&args) {
        Ok(c) => c,
        Err(e) => {
            ctx.log_warning(&e);
            ctx.log_warning("could not initialize gears config");
            return Status::Err;
        }
    };
    for line in config.describe() {
        ctx.log_notice(&line);
    }
    let threads = config.execution_threads as usize;
    let override_allocators = config.override_python_allocators();
    config::install(config);
    if let Err(e) = python::start(threads, override_allocators) {
        ctx.log_warning(&format!("could not start the Python interpreter: {e}"));
        return Status::Err;
    }
    ctx.log_notice("RedisGears (gears-rs) is ready");
    Status::Ok
}

macro_rules! command {
    ($name:ident, $handler:path) => {
        fn $name(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
            guarded(ctx, args, $handler)
        }
    };
}

command!(rg_pyexecute, execute::pyexecute);
command!(rg_getresults, execution_commands::get_results);
command!(
    rg_getresultsblocking,
    execution_commands::get_results_blocking
);
command!(rg_dropexecution, execution_commands::drop_execution);
command!(rg_dumpexecutions, execution_commands::dump_executions);
command!(rg_getexecution, execution_commands::get_execution);
command!(rg_abortexecution, execution_commands::abort_execution);
command!(rg_dumpplugins, execution_commands::dump_plugins);
command!(rg_configget, config_commands::config_get);
command!(rg_configset, config_commands::config_set);
command!(rg_infocluster, cluster::info_cluster);
command!(rg_refreshcluster, cluster::refresh_cluster);
command!(rg_clusterset, cluster::cluster_set);
command!(rg_clustersetfromshard, cluster::cluster_set_from_shard);
command!(rg_hello, cluster::hello);
command!(rg_innermsgcommand, cluster::inner_msg_command);
command!(rg_networktest, cluster::network_test);
command!(rg_pystats, python_commands::py_stats);
command!(rg_pydumpsessions, session_commands::dump_sessions);
command!(rg_pyprofile, profile::py_profile);
command!(rg_trigger, trigger::trigger);
command!(rg_innerhook, innerhook::inner_hook);
command!(
    rg_dumpregistrations,
    registration_commands::dump_registrations
);
command!(rg_unregister, registration_commands::unregister);
command!(
    rg_pauseregistrations,
    registration_commands::pause_registrations
);
command!(
    rg_unpauseregistrations,
    registration_commands::unpause_registrations
);
command!(
    rg_clearregistrationsstats,
    registration_commands::clear_registrations_stats
);
command!(rg_debugscanfloor, debug::scan_floor);
command!(rg_pydumpreqs, python_commands::py_dump_reqs);
command!(rg_innerreqput, python_commands::inner_req_put);
command!(rg_pyexportreq, python_commands::py_export_req);
command!(rg_pyimportreq, python_commands::py_import_req);
command!(rg_innerreqdone, python_commands::inner_req_done);
command!(rg_innerregister, registration_commands::inner_register);
command!(rg_innertimeevent, time_events::inner_time_event);
command!(rg_innerunregister, registration_commands::inner_unregister);

redis_module! {
    name: "rg",
    version: MODULE_VERSION,
    allocator: (redis_module::alloc::RedisAlloc, redis_module::alloc::RedisAlloc),
    data_types: [REQUIREMENTS_TYPE, REGISTRATIONS_TYPE, TIME_EVENT_TYPE],
    init: init,
    commands: [
        ["rg.pyexecute", rg_pyexecute, "readonly", 0, 0, 0, ""],
        ["rg.getresults", rg_getresults, "readonly", 0, 0, 0, ""],
        ["rg.getresultsblocking", rg_getresultsblocking, "readonly", 0, 0, 0, ""],
        ["rg.dropexecution", rg_dropexecution, "readonly", 0, 0, 0, ""],
        ["rg.dumpexecutions", rg_dumpexecutions, "readonly", 0, 0, 0, ""],
        ["rg.getexecution", rg_getexecution, "readonly", 0, 0, 0, ""],
        ["rg.abortexecution", rg_abortexecution, "readonly", 0, 0, 0, ""],
        ["rg.dumpplugins", rg_dumpplugins, "readonly", 0, 0, 0, ""],
        ["rg.configget", rg_configget, "readonly", 0, 0, 0, ""],
        ["rg.configset", rg_configset, "readonly", 0, 0, 0, ""],
        ["rg.infocluster", rg_infocluster, "readonly", 0, 0, 0, ""],
        ["rg.refreshcluster", rg_refreshcluster, "readonly", 0, 0, 0, ""],
        ["rg.clusterset", rg_clusterset, "readonly", 0, 0, 0, ""],
        ["rg.clustersetfromshard", rg_clustersetfromshard, "readonly", 0, 0, 0, ""],
        ["rg.hello", rg_hello, "readonly", 0, 0, 0, ""],
        ["rg.innermsgcommand", rg_innermsgcommand, "readonly", 0, 0, 0, ""],
        ["rg.networktest", rg_networktest, "readonly", 0, 0, 0, ""],
        ["rg.pystats", rg_pystats, "readonly", 0, 0, 0, ""],
        ["rg.pydumpsessions", rg_pydumpsessions, "readonly", 0, 0, 0, ""],
        ["rg.pyprofile", rg_pyprofile, "readonly", 0, 0, 0, ""],
        ["rg.trigger", rg_trigger, "readonly getkeys-api", 0, 0, 0, ""],
        ["rg.triggeronkey", rg_trigger, "readonly", 2, 2, 1, ""],
        ["rg.innerhook", rg_innerhook, "readonly getkeys-api", 0, 0, 0, ""],
        ["rg.dumpregistrations", rg_dumpregistrations, "readonly", 0, 0, 0, ""],
        ["rg.unregister", rg_unregister, "readonly", 0, 0, 0, ""],
        ["rg.pauseregistrations", rg_pauseregistrations, "readonly", 0, 0, 0, ""],
        ["rg.unpauseregistrations", rg_unpauseregistrations, "readonly", 0, 0, 0, ""],
        ["rg.clearregistrationsstats", rg_clearregistrationsstats, "readonly", 0, 0, 0, ""],
        ["rg.debugscanfloor", rg_debugscanfloor, "readonly", 0, 0, 0, ""],
        ["rg.pydumpreqs", rg_pydumpreqs, "readonly", 0, 0, 0, ""],
        ["rg.innerreqput", rg_innerreqput, "write", 0, 0, 0, ""],
        ["rg.pyexportreq", rg_pyexportreq, "readonly", 0, 0, 0, ""],
        ["rg.pyimportreq", rg_pyimportreq, "readonly", 0, 0, 0, ""],
        ["rg.innerreqdone", rg_innerreqdone, "write", 0, 0, 0, ""],
        ["rg.innerregister", rg_innerregister, "write", 0, 0, 0, ""],
        ["rg.innertimeevent", rg_innertimeevent, "write", 1, 1, 1, ""],
        ["rg.innerunregister", rg_innerunregister, "write", 0, 0, 0, ""],
    ],
    event_handlers: [
        [@GENERIC @STRING @LIST @SET @HASH @ZSET @EXPIRED @EVICTED @STREAM @MODULE @MISSED: events::on_keyspace_event],
    ],
}
