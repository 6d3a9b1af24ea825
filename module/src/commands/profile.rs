//! RG.PYPROFILE STATS / RESET (commands.md §7.3).

use pyo3::prelude::*;
use redis_module::{Context, RedisString};

use super::{text_args, Answer};
use crate::python::{errors::format_error, prelude_function};
use crate::reply::Reply;
use crate::sessions;

pub fn py_profile(_ctx: &Context, args: Vec<RedisString>) -> Answer {
    let args = text_args(&args);
    if args.len() < 2 {
        return Answer::WrongArity;
    }
    match args[1].to_ascii_lowercase().as_str() {
        "stats" => {
            // The order argument is accepted and ignored, as in RedisGears: always tottime.
            if args.len() < 3 || args.len() > 4 {
                return Answer::WrongArity;
            }
            let Some(session) = sessions::live(&args[2]) else {
                return Reply::error("session does not exists").into();
            };
            Python::attach(|py| {
                let text = session.profiler(py).and_then(|p| {
                    prelude_function(py, "profileGetInfo")?
                        .call1((p, "tottime"))?
                        .extract::<String>()
                });
                match text {
                    Ok(text) => Reply::bulk(text).into(),
                    Err(e) => Reply::error(format_error(py, &e)).into(),
                }
            })
        }
        "reset" => {
            if args.len() != 3 {
                return Answer::WrongArity;
            }
            match sessions::live(&args[2]) {
                Some(session) => {
                    session.reset_profiler();
                    Reply::ok().into()
                }
                None => Reply::error("session does not exists").into(),
            }
        }
        _ => Reply::error("Wrong subcommand given to RG.PYPROFILE").into(),
    }
}
