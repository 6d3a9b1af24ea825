//! RG.TRIGGER and RG.TRIGGERONKEY: run a CommandReader trigger registration on the call's
//! arguments and reply with its results (readers.md §7.3, commands.md §4.5).

use dataflow::{Record, VecReader};
use redis_module::{Context, ContextFlags, RedisString};

use super::Answer;
use crate::blocked::BlockedClient;
use crate::executions::{self, Outcome};
use std::sync::Arc;

use crate::hooks::{self, HookCall};
use crate::registrations::{self, Mode, Registration};
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

/// A hook's reply: the first error, or its one result.
fn hook_reply_of(outcome: &Outcome) -> Reply {
    match (outcome.errors.first(), outcome.results.as_slice()) {
        (Some(error), _) => Reply::Error(error.clone()),
        (None, [one]) => one.clone(),
        _ => Reply::error("Command hook must return exactly one result"),
    }
}

/// Runs `registration` on `record` and answers with `reply_of` (at once for sync, else once
/// the execution finished, the client blocked meanwhile). The execution is then dropped.
fn run_and_reply(
    ctx: &Context,
    registration: &Arc<Registration>,
    record: Record,
    hook: Arc<HookCall>,
    reply_of: fn(&Outcome) -> Reply,
) -> Answer {
    let cannot_block = ctx
        .get_flags()
        .intersects(ContextFlags::MULTI | ContextFlags::LUA | ContextFlags::DENY_BLOCKING);
    if cannot_block && registration.mode != Mode::Sync {
        return Reply::error(
            "ERR can not run a non-sync execution inside a MULTI/LUA (blocking is not allowed) or on loading.",
        )
        .into();
    }
    let reader = Box::new(VecReader::new(vec![record], 1));
    registration.triggered();
    let entry = if registration.mode == Mode::Sync {
        let entry = runner::run_inline(registration, ctx, reader, Some(hook), None, !cannot_block);
        if let Some(outcome) = entry.outcome() {
            executions::remove(&entry.id);
            return reply_of(&outcome).into();
        }
        // A step waits for an async record: the rest runs in the background, the client
        // blocked meanwhile (runtime.md §6.4).
        entry
    } else {
        let Some(entry) = runner::start_for(registration, reader, Some(hook), None) else {
            return Reply::error("ERR Could not trigger execution, failed creating execution")
                .into();
        };
        entry
    };
    let client = BlockedClient::block(ctx, 0);
    let id = entry.id.clone();
    // Dropped before the client hears back, so nothing it sends next still lists it.
    entry.when_done(move |outcome| {
        executions::remove(&id);
        client.reply(reply_of(outcome));
    });
    Answer::NoReply
}

/// A hooked command rerouted here by the command filter: `argv` is the command as the client
/// sent it. The newest matching hook runs (after the ones `call_next` already went through);
/// when none is left, or the call comes from the replication link or loading, the real command
/// runs and its reply goes back as it is.
fn hooked(ctx: &Context, argv: &[RedisString]) -> Answer {
    let skip = hooks::take_skip();
    let command = argv[0].as_slice().to_vec();
    let name = String::from_utf8_lossy(&command).to_ascii_lowercase();
    let args: Vec<Vec<u8>> = argv[1..].iter().map(|a| a.as_slice().to_vec()).collect();
    let replicated = ctx
        .get_flags()
        .intersects(ContextFlags::REPLICATED | ContextFlags::LOADING);
    let next = if replicated {
        None
    } else {
        hooks::matching(&name, &args, skip)
    };
    let Some((position, registration)) = next else {
        // The real command, linked to the `commands=` registrations it fires, if any.
        return super::innerhook::run_linked(ctx, command, args);
    };
    let record = Record::List(argv.iter().map(argument).collect());
    let hook = Arc::new(HookCall {
        command: Some(command),
        skip: position + 1,
    });
    run_and_reply(ctx, &registration, record, hook, hook_reply_of)
}

pub fn trigger(ctx: &Context, args: Vec<RedisString>) -> Answer {
    if args.len() < 2 {
        return Answer::WrongArity;
    }
    if args.len() >= 3 && args[1].as_slice() == hooks::MARKER {
        if hooks::is_keys_request(ctx) {
            hooks::declare_keys(ctx, &args, 2);
            return Answer::NoReply;
        }
        return hooked(ctx, &args[2..]);
    }
    if hooks::is_keys_request(ctx) {
        // A plain trigger declares no key.
        return Answer::NoReply;
    }
    let name = String::from_utf8_lossy(args[1].as_slice()).into_owned();
    let Some(registration) = registrations::by_trigger(&name) else {
        return Reply::error("ERR subcommand not found").into();
    };
    let record = Record::List(args[1..].iter().map(argument).collect());
    let no_next = Arc::new(HookCall {
        command: None,
        skip: 0,
    });
    run_and_reply(ctx, &registration, record, no_next, reply_of)
}
