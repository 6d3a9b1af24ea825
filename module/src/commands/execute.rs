//! RG.PYEXECUTE: runs a script; replies with its execution's results, its id, or OK.

use redis_module::{Context, ContextFlags, RedisString};

use super::Answer;
use crate::blocked::BlockedClient;
use crate::executions;
use crate::python;
use crate::registrations;
use crate::reply::Reply;
use crate::sessions::{self, Session};
use std::sync::Arc;

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

/// The live session the new one replaces (UPGRADE of an existing id, or REPLACE_WITH), after
/// the spec's existence checks (commands.md §2.1 point 7).
fn session_to_replace(id: &str, options: &Options) -> Result<Option<Arc<Session>>, String> {
    if let Some(old) = &options.replace_with {
        if sessions::live(id).is_some() {
            return Err(format!(
                "Can not replace an existing session {id} with {old}"
            ));
        }
        return match sessions::live(old) {
            Some(old) => Ok(Some(old)),
            None => Err(format!(
                "Can not replace with {old}, session does not exists."
            )),
        };
    }
    match sessions::live(id) {
        Some(_) if !options.upgrade => Err(format!("Session {id} already exists")),
        existing => Ok(existing),
    }
}

/// Applies a successful script's registrations together: the replaced session's registrations
/// are unregistered (their queued executions still run, so no event is lost) and it is
/// unlinked, then the new ones are registered and the new session goes live. A script that
/// registered nothing replaces nothing.
fn apply_batch(
    session: &Arc<Session>,
    replaced: Option<Arc<Session>>,
    batch: Vec<registrations::PendingRegistration>,
) {
    if let Some(old) = replaced {
        for id in old.registrations() {
            if registrations::remove(&id).is_some() {
                old.remove_registration(&id);
            }
        }
        sessions::unlink(&old);
    }
    for pending in batch {
        registrations::apply(pending, session);
    }
    sessions::link(session);
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
    let session = Session::new(options.id.clone(), options.description.clone());
    let replaced = match session_to_replace(&session.id, &options) {
        Ok(replaced) => replaced,
        Err(e) => return Reply::error(e).into(),
    };
    if !options.requirements.is_empty() {
        return Reply::error(
            "REQUIREMENTS are not supported by this build yet (the requirements manager is not built)",
        )
        .into();
    }
    let outcome = match python::run_script(ctx, args[1].as_slice(), &session) {
        Ok(outcome) => outcome,
        Err(text) => return Reply::error(text).into(),
    };
    if !outcome.registrations.is_empty() {
        apply_batch(&session, replaced, outcome.registrations);
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
    // Dropped before the client hears back, so nothing it sends next still lists it.
    entry.when_done(move |outcome| {
        executions::remove(&id);
        client.reply(outcome.reply());
    });
    Answer::NoReply
}
