//! The RG.* commands. Each handler returns a [`Reply`]; [`guarded`] writes it and turns a panic
//! into an error reply, so nothing unwinds into Redis.

pub mod cluster;
pub mod config;
pub mod debug;
pub mod execute;
pub mod executions;
pub mod innerhook;
pub mod profile;
pub mod python;
pub mod registrations;
pub mod sessions;
pub mod trigger;

use std::panic::{catch_unwind, AssertUnwindSafe};

use redis_module::{raw, Context, RedisResult, RedisString, RedisValue};

use crate::reply::Reply;

/// What a handler answers.
pub enum Answer {
    Reply(Reply),
    WrongArity,
    /// Nothing to write now: the client was blocked (the reply comes later), the reply was
    /// already written (a relayed command), or Redis only asked for the call's keys.
    NoReply,
}

impl From<Reply> for Answer {
    fn from(r: Reply) -> Answer {
        Answer::Reply(r)
    }
}

pub fn guarded(
    ctx: &Context,
    args: Vec<RedisString>,
    handler: fn(&Context, Vec<RedisString>) -> Answer,
) -> RedisResult {
    // A command runs on the main thread, which holds the Redis lock: any Python it runs (a
    // script, an onRegistered callback) must call Redis through this context, never lock again.
    let answer = crate::python::context::with_locked_context(ctx, || {
        catch_unwind(AssertUnwindSafe(|| handler(ctx, args)))
    });
    match answer {
        Ok(Answer::Reply(reply)) => reply.write(ctx),
        Ok(Answer::WrongArity) => {
            // SAFETY: a command context on the main thread.
            unsafe {
                raw::RedisModule_WrongArity.unwrap()(ctx.ctx);
            }
        }
        Ok(Answer::NoReply) => {}
        Err(_) => {
            Reply::error("ERR internal error in the gears module (the server is fine)").write(ctx)
        }
    }
    Ok(RedisValue::NoReply)
}

/// Arguments as text, for commands whose arguments are names and numbers.
pub fn text_args(args: &[RedisString]) -> Vec<String> {
    args.iter()
        .map(|a| String::from_utf8_lossy(a.as_slice()).into_owned())
        .collect()
}
