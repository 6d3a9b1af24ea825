//! RG.PYEXECUTE: runs a script; replies with its execution's results, its id, or OK.

use redis_module::{Context, ContextFlags, RedisString};

use super::Answer;
use crate::blocked::BlockedClient;
use crate::executions;
use crate::python;
use crate::registrations;
use crate::reply::Reply;
use crate::sessions::Session;

/// The options after the script (commands.md §2.1).
#[derive(Debug, Default)]
struct Options {
    unblocking: bool,
    upgrade: bool,
    force_reinstall: bool,
    id: Option<String>,
    description: Option<String>,
    replace_with: Option<String>,
    requirements: Vec<String>,
}

fn valid_session_id(id: &str) -> bool {
    id.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn parse_options(args: &[RedisString]) -> Result<Options, String> {
    let words: Vec<String> = super::text_args(args);
    let mut options = Options::default();
    let mut i = 0;
    while i < words.len() {
        let word = words[i].to_ascii_uppercase();
        let value = |missing: &str| -> Result<String, String> {
            words.get(i + 1).cloned().ok_or_else(|| missing.to_string())
        };
        match word.as_str() {
            "UNBLOCKING" => options.unblocking = true,
            "UPGRADE" => options.upgrade = true,
            "FORCE_REINSTALL_REQUIREMENTS" => options.force_reinstall = true,
            "REPLACE_WITH" => {
                options.replace_with = Some(value("REPLACE_WITH is missing")?);
                i += 1;
            }
            "ID" => {
                let id = value("ID is missing")?;
                if !valid_session_id(&id) {
                    return Err(
                        "ID must be compose of: ['A'-'Z' | 'a'-'z' | '0' - '9' | '-' | '_']".into(),
                    );
                }
                options.id = Some(id);
                i += 1;
            }
            "DESCRIPTION" => {
                options.description = Some(value("DESCRIPTION is missing")?);
                i += 1;
            }
            "REQUIREMENTS" => {
                options.requirements = words[i + 1..].to_vec();
                return Ok(options);
            }
            _ => return Err(format!("Unknown arguments were given: {}", words[i])),
        }
        i += 1;
    }
    Ok(options)
}

pub fn pyexecute(ctx: &Context, args: Vec<RedisString>) -> Answer {
    let flags = ctx.get_flags();
    if flags.intersects(ContextFlags::MULTI | ContextFlags::LUA | ContextFlags::DENY_BLOCKING) {
        return Reply::error(
            "Can not run gears inside a multi exec, lua, or when blocking is not allowed",
        )
        .into();
    }
    if args.len() < 2 {
        return Answer::WrongArity;
    }
    let options = match parse_options(&args[2..]) {
        Ok(o) => o,
        Err(e) => return Reply::error(e).into(),
    };
    if !options.requirements.is_empty() {
        return Reply::error(
            "REQUIREMENTS are not supported by this build yet (the requirements manager is not built)",
        )
        .into();
    }
    let outcome = match python::run_script(ctx, args[1].as_slice()) {
        Ok(outcome) => outcome,
        Err(text) => return Reply::error(text).into(),
    };
    if !outcome.registrations.is_empty() {
        // Registrations take effect together once the whole script succeeded; an execution the
        // script also started keeps running in the background.
        let session = Session::new(options.id, options.description);
        for pending in outcome.registrations {
            registrations::apply(pending, &session);
        }
        return Reply::ok().into();
    }
    let Some(entry) = outcome.execution else {
        return Reply::ok().into();
    };
    if options.unblocking {
        return Reply::bulk(entry.id.as_str()).into();
    }
    let client = BlockedClient::block(ctx, 0);
    let id = entry.id.clone();
    entry.when_done(move |outcome| {
        client.reply(outcome.reply());
        executions::remove(&id);
    });
    Answer::Blocked
}
