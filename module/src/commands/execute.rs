//! RG.PYEXECUTE: runs a script; replies with its execution's results, its id, or OK.

use redis_module::{Context, ContextFlags, RedisString};

use super::Answer;
use crate::blocked::BlockedClient;
use crate::executions;
use crate::persist;
use crate::python::{self, Script};
use crate::redis_lock::RedisLock;
use crate::registrations;
use crate::reply::Reply;
use crate::reqs::{self, InstallFailure, Preparation};
use crate::sessions::{self, Session};
use crate::shards;
use crate::threads;
use std::sync::Arc;

/// The options after the script (commands.md §2.1).
#[derive(Debug, Default, Clone)]
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
/// registered nothing replaces nothing. Replicas and the AOF get the same batch, which is
/// returned for the other shards.
fn apply_batch(
    ctx: &Context,
    session: &Arc<Session>,
    replaced: Option<Arc<Session>>,
    batch: Vec<registrations::PendingRegistration>,
) -> persist::Batch {
    let unregistered = replaced
        .as_ref()
        .map(|old| old.registrations())
        .unwrap_or_default();
    let saved = persist::batch(session, replaced.as_ref(), &unregistered, &batch);
    if let Some(old) = replaced {
        crate::reqs::release_session(&old.requirements());
        for id in unregistered {
            if registrations::remove(&id).is_some() {
                old.remove_registration(&id);
            }
        }
        sessions::unlink(&old);
    }
    registrations::apply_all(batch, session);
    sessions::link(session);
    persist::BatchExt::replicate(&saved, ctx);
    saved
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
    let source = args[1].as_slice();
    if options.requirements.is_empty() {
        if options.force_reinstall {
            // Nothing to install, but the flag still resets the module cache (requirements.md §2.1).
            session.set_requirements(Vec::new(), true);
            python::reset_module_cache();
        }
        return run_soon(ctx, source, session, replaced, options);
    }
    match reqs::prepare(&options.requirements, options.force_reinstall) {
        Err(text) => Reply::error(text).into(),
        Ok(Preparation::Reuse(existing)) => {
            session.set_requirements(existing, false);
            run_soon(ctx, source, session, replaced, options)
        }
        Ok(Preparation::Install(new_reqs)) => {
            // Download and install off the main thread; the client waits, others are served.
            let client = BlockedClient::block(ctx, 0);
            let source = source.to_vec();
            let job = move || {
                // Compiled before the Redis lock is taken, when there is something to run.
                let installed = reqs::install(&new_reqs).map(|()| Script::off_main_thread(source));
                let guard = RedisLock::acquire();
                match installed {
                    Err(InstallFailure(text)) => {
                        reqs::restore_table_versions(&new_reqs);
                        client.reply(Reply::error(text));
                    }
                    Ok(script) => {
                        reqs::warn_about_other_versions(&new_reqs);
                        session.set_requirements(new_reqs, true);
                        python::reset_module_cache();
                        finish(&guard, &script, session, replaced, &options, Some(client));
                    }
                }
            };
            if !threads::run_install(job) {
                return Reply::error("the requirements install thread is not running").into();
            }
            Answer::NoReply
        }
    }
}

/// Runs a script whose requirements are in place: at once, or, when it is long, once it was
/// compiled off the main thread (the client waits, others are served).
fn run_soon(
    ctx: &Context,
    source: &[u8],
    session: Arc<Session>,
    replaced: Option<Arc<Session>>,
    options: Options,
) -> Answer {
    if source.len() < python::COMPILE_APART {
        let script = Script::Source(source.to_vec());
        return finish(ctx, &script, session, replaced, &options, None);
    }
    let client = BlockedClient::block(ctx, 0);
    let source = source.to_vec();
    let job = move || {
        let script = Script::off_main_thread(source);
        let guard = RedisLock::acquire();
        finish(&guard, &script, session, replaced, &options, Some(client));
    };
    if !threads::run_install(job) {
        return Reply::error("the requirements install thread is not running").into();
    }
    Answer::NoReply
}

/// The session's requirements enter the table; newly installed ones go to replicas and the AOF.
fn publish_requirements(ctx: &Context, session: &Arc<Session>) {
    let requirements = session.requirements();
    reqs::publish(&requirements);
    if session.installation_needed() {
        reqs::propagate(ctx, &requirements);
    }
}

/// Answers now, or through the client blocked while requirements were installed.
fn respond(client: Option<BlockedClient>, reply: Reply) -> Answer {
    match client {
        Some(client) => {
            client.reply(reply);
            Answer::NoReply
        }
        None => reply.into(),
    }
}

/// Runs the script and replies as commands.md §2.3 says; the requirements of a script that did
/// not fail enter the table (requirements.md §2.4, without its quirk).
fn finish(
    ctx: &Context,
    script: &Script,
    session: Arc<Session>,
    replaced: Option<Arc<Session>>,
    options: &Options,
    client: Option<BlockedClient>,
) -> Answer {
    let outcome = match python::run_script(ctx, script, &session) {
        Ok(outcome) => outcome,
        Err(text) => {
            if session.installation_needed() {
                // The upgrade is abandoned: the table's versions go back in place.
                reqs::restore_table_versions(&session.requirements());
            }
            return respond(client, Reply::error(text));
        }
    };
    if !outcome.registrations.is_empty() {
        publish_requirements(ctx, &session);
        let batch = apply_batch(ctx, &session, replaced, outcome.registrations);
        if !shards::registrations::has_peers() {
            return respond(client, Reply::ok());
        }
        // The client waits until every other shard applied the batch too (or said why not).
        let client = client.unwrap_or_else(|| BlockedClient::block(ctx, 0));
        shards::registrations::distribute_batch(batch, session.requirements(), client);
        return Answer::NoReply;
    }
    // A script that neither registered nor ran anything (gears-cli `install-requirements`)
    // keeps its requirements too: RedisGears released them at once (requirements.md §2.4), so
    // that command installed nothing that lasted.
    publish_requirements(ctx, &session);
    let Some(entry) = outcome.execution else {
        return respond(client, Reply::ok());
    };
    if options.unblocking {
        return respond(client, Reply::bulk(entry.id.as_str()));
    }
    let client = client.unwrap_or_else(|| BlockedClient::block(ctx, 0));
    let id = entry.id.clone();
    // Dropped before the client hears back, so nothing it sends next still lists it.
    entry.when_done(move |outcome| {
        executions::remove(&id);
        client.reply(outcome.reply());
    });
    Answer::NoReply
}
