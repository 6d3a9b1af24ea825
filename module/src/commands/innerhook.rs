//! RG.INNERHOOK: runs a command listed by KeysReader `commands=` registrations on behalf of the
//! client, with the client linked to the executions its keyspace events fire (readers.md §2.4).

use dataflow::keys::prefix_matches;
use redis_module::{Context, ContextFlags, RedisString};

use super::Answer;
use crate::blocked::BlockedClient;
use crate::hooks;
use crate::linked::CommandLink;
use crate::python::context;
use crate::redis_calls;
use crate::registrations::{self, Trigger};
use crate::reply::Reply;

/// Does some `commands=` registration listing `name` take this call (one of its keys matches
/// the registration's prefix)?
fn taken(name: &str, args: &[Vec<u8>]) -> bool {
    registrations::all().iter().any(|r| match &r.trigger {
        Trigger::Keys(k) => k.commands.as_ref().is_some_and(|commands| {
            commands.iter().any(|c| {
                c.name == name
                    && c.key_args(args)
                        .iter()
                        .any(|key| prefix_matches(&k.prefix, key))
            })
        }),
        _ => false,
    })
}

pub fn inner_hook(ctx: &Context, args: Vec<RedisString>) -> Answer {
    if args.len() < 2 {
        return Answer::WrongArity;
    }
    if hooks::is_keys_request(ctx) {
        hooks::declare_keys(ctx, &args, 1);
        return Answer::NoReply;
    }
    let command = args[1].as_slice().to_vec();
    let rest: Vec<Vec<u8>> = args[2..].iter().map(|a| a.as_slice().to_vec()).collect();
    run_linked(ctx, command, rest)
}

/// Runs `command` with `rest` as its arguments, linking the client to the executions of the
/// `commands=` registrations it fires. Also where a hooked command goes when no hook is left
/// for it (a command can have both).
pub fn run_linked(ctx: &Context, command: Vec<u8>, rest: Vec<Vec<u8>>) -> Answer {
    let name = String::from_utf8_lossy(&command).to_ascii_lowercase();
    let flags = ctx.get_flags();
    let relay_now = |ctx: &Context| {
        if hooks::bypassing(|| redis_calls::relay(ctx, &command, &rest)) {
            Answer::NoReply
        } else {
            Reply::error("error happened running the command").into()
        }
    };
    if flags.intersects(ContextFlags::REPLICATED | ContextFlags::LOADING) || !taken(&name, &rest) {
        return relay_now(ctx);
    }
    let detached =
        flags.intersects(ContextFlags::MULTI | ContextFlags::LUA | ContextFlags::DENY_BLOCKING);
    let mut argv = vec![command.clone()];
    argv.extend(rest.iter().cloned());
    let link = CommandLink::new(argv, detached);
    // The real command runs with the link current: the registrations its events fire join it.
    let real = context::with_command(&name, &link, || {
        hooks::bypassing(|| redis_calls::call_real(ctx, &command, &rest))
    });
    let overridden = if detached || link.pending() > 0 {
        None
    } else {
        link.take_override()
    };
    if detached || link.pending() == 0 {
        // Answered now: the override, or the real reply exactly as Redis gave it. (A detached
        // client cannot wait; its executions run on, unlinked.)
        return match overridden {
            Some(reply) => reply.into(),
            None if real.write(ctx) => Answer::NoReply,
            None => Reply::error("error happened running the command").into(),
        };
    }
    let real = real.to_reply();
    let client = BlockedClient::block(ctx, 0);
    link.when_all_done(move |overridden| client.reply(overridden.unwrap_or(real)));
    Answer::NoReply
}
