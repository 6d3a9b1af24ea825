//! The commands that look at executions: RG.GETRESULTS, RG.GETRESULTSBLOCKING,
//! RG.DROPEXECUTION, RG.DUMPEXECUTIONS.

use redis_module::{Context, RedisString};

use super::Answer;
use crate::blocked::BlockedClient;
use crate::executions::{self, ExecutionEntry};
use crate::reply::Reply;
use std::sync::Arc;

const NOT_FOUND: &str = "execution plan does not exist";

/// Looks an execution up by id; ids shorter than 42 characters or without `-` at index 40
/// are never found.
fn lookup(id: &RedisString) -> Option<Arc<ExecutionEntry>> {
    let id = id.as_slice();
    if id.len() < 42 || id[40] != b'-' {
        return None;
    }
    executions::get(std::str::from_utf8(id).ok()?)
}

pub fn get_results(_ctx: &Context, args: Vec<RedisString>) -> Answer {
    if args.len() < 2 {
        return Answer::WrongArity;
    }
    let Some(entry) = lookup(&args[1]) else {
        return Reply::error(NOT_FOUND).into();
    };
    match entry.outcome() {
        Some(outcome) => outcome.reply().into(),
        None => Reply::error("execution is still running").into(),
    }
}

pub fn get_results_blocking(ctx: &Context, args: Vec<RedisString>) -> Answer {
    if args.len() != 2 {
        return Answer::WrongArity;
    }
    let Some(entry) = lookup(&args[1]) else {
        return Reply::error(NOT_FOUND).into();
    };
    if let Some(outcome) = entry.outcome() {
        return outcome.reply().into();
    }
    let client = BlockedClient::block(ctx, 1_000_000);
    entry.when_done(move |outcome| client.reply(outcome.reply()));
    Answer::Blocked
}

pub fn drop_execution(_ctx: &Context, args: Vec<RedisString>) -> Answer {
    if args.len() != 2 {
        return Answer::WrongArity;
    }
    let Some(entry) = lookup(&args[1]) else {
        return Reply::error(NOT_FOUND).into();
    };
    if !entry.status().is_finished() {
        return Reply::error("can not drop a not yet finished execution, abort it first.").into();
    }
    executions::remove(&entry.id);
    Reply::ok().into()
}

pub fn dump_executions(_ctx: &Context, _args: Vec<RedisString>) -> Answer {
    Reply::Array(
        executions::all()
            .iter()
            .map(|e| {
                Reply::Array(vec![
                    Reply::bulk("executionId"),
                    Reply::bulk(e.id.as_str()),
                    Reply::bulk("status"),
                    Reply::bulk(e.status().name()),
                    Reply::bulk("registered"),
                    Reply::Integer(0),
                ])
            })
            .collect(),
    )
    .into()
}
