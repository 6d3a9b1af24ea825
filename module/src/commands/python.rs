//! Python plugin commands: RG.PYSTATS.

use redis_module::{Context, RedisString};

use super::Answer;
use crate::python::allocator;
use crate::reply::Reply;

/// `RG.PYSTATS`: bytes allocated through the Python allocator hooks (zeros when
/// OverridePythonAllocators is off). No arity check.
pub fn py_stats(_ctx: &Context, _args: Vec<RedisString>) -> Answer {
    let (total, peak, current) = allocator::stats();
    Reply::Array(vec![
        Reply::bulk("TotalAllocated"),
        Reply::Integer(total as i64),
        Reply::bulk("PeakAllocated"),
        Reply::Integer(peak as i64),
        Reply::bulk("CurrAllocated"),
        Reply::Integer(current as i64),
    ])
    .into()
}

/// `RG.PYDUMPREQS`: the requirements table, one 18-element entry each. No arity check.
pub fn py_dump_reqs(_ctx: &Context, _args: Vec<RedisString>) -> Answer {
    crate::reqs::dump_all().into()
}

/// `RG.INNERREQPUT <req> <wheel> <offset> <bytes>`: a piece of a replicated requirement.
pub fn inner_req_put(_ctx: &Context, args: Vec<RedisString>) -> Answer {
    if args.len() != 5 {
        return Answer::WrongArity;
    }
    let text = |i: usize| String::from_utf8_lossy(args[i].as_slice()).into_owned();
    let Ok(offset) = text(3).parse::<u64>() else {
        return Reply::error("RG.INNERREQPUT: bad offset").into();
    };
    match crate::reqs::inner_put(&text(1), &text(2), offset, args[4].as_slice()) {
        Ok(()) => Reply::ok().into(),
        Err(e) => Reply::error(format!("RG.INNERREQPUT: {e}")).into(),
    }
}

/// `RG.INNERREQDONE <req> <wheel> ...`: installs a replicated requirement.
pub fn inner_req_done(_ctx: &Context, args: Vec<RedisString>) -> Answer {
    if args.len() < 2 {
        return Answer::WrongArity;
    }
    let texts: Vec<String> = args[1..]
        .iter()
        .map(|a| String::from_utf8_lossy(a.as_slice()).into_owned())
        .collect();
    match crate::reqs::inner_done(&texts[0], &texts[1..]) {
        Ok(()) => Reply::ok().into(),
        Err(e) => {
            crate::redis_calls::log(
                "warning",
                &format!("installing a replicated requirement failed: {e}"),
            );
            Reply::error(format!("RG.INNERREQDONE: {e}")).into()
        }
    }
}

/// `RG.PYEXPORTREQ <requirement>`: `[metadata, [chunk, ...]]`, chunks of at most 10 MiB.
pub fn py_export_req(_ctx: &Context, args: Vec<RedisString>) -> Answer {
    if args.len() != 2 {
        return Answer::WrongArity;
    }
    let name = String::from_utf8_lossy(args[1].as_slice()).into_owned();
    match crate::reqs::export(&name) {
        Ok((metadata, chunks)) => Reply::Array(vec![
            metadata,
            Reply::Array(chunks.into_iter().map(Reply::Bulk).collect()),
        ])
        .into(),
        Err(e) => Reply::error(e).into(),
    }
}

/// `RG.PYIMPORTREQ <chunk> ...`: parses the concatenated chunks, installs the requirement off
/// the main thread while the client waits, then replies `OK`.
pub fn py_import_req(ctx: &Context, args: Vec<RedisString>) -> Answer {
    use redis_module::ContextFlags;
    if ctx
        .get_flags()
        .intersects(ContextFlags::MULTI | ContextFlags::LUA | ContextFlags::DENY_BLOCKING)
    {
        return Reply::error(
            "Can not run gears inside a multi exec, lua, or when blocking is not allowed",
        )
        .into();
    }
    let bytes: Vec<u8> = args[1..]
        .iter()
        .flat_map(|a| a.as_slice().to_vec())
        .collect();
    let bundle = match reqs_manager::bundle::RequirementBundle::parse(&bytes) {
        Ok(bundle) => bundle,
        Err(e) => return Reply::error(e.to_string()).into(),
    };
    if let Err(e) = crate::reqs::check_bundle(&bundle) {
        return Reply::error(e).into();
    }
    let client = crate::blocked::BlockedClient::block(ctx, 0);
    let in_table = bundle.in_table;
    let job = move || {
        let imported = crate::reqs::import(bundle);
        let guard = crate::redis_lock::RedisLock::acquire();
        match imported {
            Ok(req) => {
                crate::reqs::finish_import(&guard, &req, in_table);
                client.reply(Reply::bulk("OK"));
            }
            Err(e) => client.reply(Reply::error(e)),
        }
    };
    if !crate::threads::run_install(job) {
        return Reply::error("Failed create distribute requirements execution on rg.importreq")
            .into();
    }
    Answer::NoReply
}
