//! RG.TRIGGER and RG.TRIGGERONKEY: run a CommandReader trigger registration on the call's
//! arguments and reply with its results (readers.md §7.3, commands.md §4.5).

use dataflow::{Record, VecReader};
use redis_module::{Context, ContextFlags, RedisString};

use super::Answer;
use crate::blocked::BlockedClient;
use crate::executions::{self, Outcome};
use crate::registrations::{self, Mode};
use crate::reply::Reply;
use crate::runner;

/// An argument as the record shows it: cut at the first NUL byte (RedisGears reads C strings);
/// text or, if not UTF-8, a bytearray once in Python.
fn argument(arg: &RedisString) -> Record {
    let bytes = arg.as_slice();
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    Record::String(bytes[..end].to_vec())
}

/// The reply of a finished trigger execution: the first error, or every result.
fn reply_of(outcome: &Outcome) -> Reply {
    match outcome.errors.first() {
        Some(error) => Reply::Error(error.clone()),
        None => Reply::Array(outcome.results.clone()),
    }
}

pub fn trigger(ctx: &Context, args: Vec<RedisString>) -> Answer {
    if args.len() < 2 {
        return Answer::WrongArity;
    }
    let name = String::from_utf8_lossy(args[1].as_slice()).into_owned();
    let Some(registration) = registrations::by_trigger(&name) else {
        return Reply::error("ERR subcommand not found").into();
    };
    let cannot_block = ctx
        .get_flags()
        .intersects(ContextFlags::MULTI | ContextFlags::LUA | ContextFlags::DENY_BLOCKING);
    if cannot_block && registration.mode != Mode::Sync {
        return Reply::error(
            "ERR can not run a non-sync execution inside a MULTI/LUA (blocking is not allowed) or on loading.",
        )
        .into();
    }
    let record = Record::List(args[1..].iter().map(argument).collect());
    let reader = Box::new(VecReader::new(vec![record], 1));
    registration.triggered();
    if registration.mode == Mode::Sync {
        let entry = runner::run_inline(&registration, ctx, reader);
        let reply = entry.outcome().map_or_else(
            || Reply::error("ERR Could not trigger execution, it did not finish"),
            |o| reply_of(&o),
        );
        executions::remove(&entry.id);
        return reply.into();
    }
    let Some(entry) = runner::start_for(&registration, reader) else {
        return Reply::error("ERR Could not trigger execution, failed creating execution").into();
    };
    let client = BlockedClient::block(ctx, 0);
    let id = entry.id.clone();
    entry.when_done(move |outcome| {
        client.reply(reply_of(outcome));
        executions::remove(&id);
    });
    Answer::Blocked
}
