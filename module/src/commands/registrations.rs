//! RG.DUMPREGISTRATIONS, RG.UNREGISTER, RG.PAUSEREGISTRATIONS / RG.UNPAUSEREGISTRATIONS and
//! RG.CLEARREGISTRATIONSSTATS (commands.md §4).

use redis_module::{Context, RedisString};

use super::{text_args, Answer};
use crate::reply::Reply;
use crate::{persist, registrations, streams};

pub fn dump_registrations(_ctx: &Context, _args: Vec<RedisString>) -> Answer {
    Reply::Array(registrations::all().iter().map(|r| r.dump()).collect()).into()
}

/// `RG.UNREGISTER <id> [ABORTPENDING]`.
pub fn unregister(ctx: &Context, args: Vec<RedisString>) -> Answer {
    if args.len() < 2 || args.len() > 3 {
        return Answer::WrongArity;
    }
    let args = text_args(&args);
    let abort_pending = args
        .get(2)
        .is_some_and(|a| a.eq_ignore_ascii_case("abortpending"));
    if !persist::unregister(&args[1], abort_pending) {
        return Reply::error("execution is not registered").into();
    }
    persist::replicate_unregister(ctx, &args[1], abort_pending);
    crate::shards::registrations::broadcast_unregister(&args[1], abort_pending);
    Reply::ok().into()
}

/// `RG.INNERREGISTER <batch>`: registrations applied on the primary, replayed on a replica or
/// from the AOF.
pub fn inner_register(ctx: &Context, args: Vec<RedisString>) -> Answer {
    if args.len() != 2 {
        return Answer::WrongArity;
    }
    let applied = persist::decode_batch(args[1].as_slice())
        .and_then(|batch| persist::BatchExt::apply(&batch, ctx));
    match applied {
        Ok(()) => {
            ctx.replicate_verbatim();
            Reply::ok().into()
        }
        Err(e) => {
            crate::redis_calls::log("warning", &format!("RG.INNERREGISTER failed: {e}"));
            Reply::error(e).into()
        }
    }
}

/// `RG.INNERUNREGISTER <id> [abortpending]`: an RG.UNREGISTER of the primary; an unknown id is
/// no error (it was never applied here).
pub fn inner_unregister(ctx: &Context, args: Vec<RedisString>) -> Answer {
    if args.len() < 2 || args.len() > 3 {
        return Answer::WrongArity;
    }
    let args = text_args(&args);
    persist::unregister(&args[1], args.len() == 3);
    ctx.replicate_verbatim();
    Reply::ok().into()
}

/// Pause and unpause: only StreamReader registrations support them (commands.md §4.3).
fn pause_or_unpause(args: Vec<RedisString>, verb: &str) -> Answer {
    if args.len() != 2 {
        return Answer::WrongArity;
    }
    let args = text_args(&args);
    // The parser takes a leading ABORTPENDING as a flag (pause only), which leaves no id.
    if verb == "pause" && args[1].eq_ignore_ascii_case("abortpending") {
        return Reply::error("ERR no registration to pause").into();
    }
    match registrations::get(&args[1]) {
        None => Reply::error(format!(
            "Execution {} does not exists on shard {}",
            args[1],
            crate::ids::shard_id()
        ))
        .into(),
        Some(registration) if registration.consumer.is_none() => Reply::error(format!(
            "Reader {} does not support {verb}",
            registration.trigger.reader()
        ))
        .into(),
        Some(registration) => {
            if verb == "pause" {
                streams::pause(&registration);
            } else {
                streams::unpause(&registration);
            }
            Reply::ok().into()
        }
    }
}

pub fn pause_registrations(_ctx: &Context, args: Vec<RedisString>) -> Answer {
    pause_or_unpause(args, "pause")
}

pub fn unpause_registrations(_ctx: &Context, args: Vec<RedisString>) -> Answer {
    pause_or_unpause(args, "unpause")
}

pub fn clear_registrations_stats(_ctx: &Context, args: Vec<RedisString>) -> Answer {
    if args.len() != 1 {
        return Answer::WrongArity;
    }
    for registration in registrations::all().iter() {
        registration.clear_stats();
    }
    Reply::ok().into()
}
