//! RG.PYDUMPSESSIONS (commands.md §7.2).

use std::sync::Arc;

use redis_module::{Context, RedisString};

use super::{text_args, Answer};
use crate::registrations;
use crate::reply::Reply;
use crate::sessions::{self, Session};

fn entry(session: &Arc<Session>, verbose: bool) -> Reply {
    let registrations: Vec<Reply> = session
        .registrations()
        .iter()
        .map(|id| match registrations::get(id).filter(|_| verbose) {
            // VERBOSE: the RG.DUMPREGISTRATIONS entry without its PD pair.
            Some(r) => {
                let mut items = match r.dump() {
                    Reply::Array(items) => items,
                    other => vec![other],
                };
                items.drain(8..10);
                Reply::Array(items)
            }
            None => Reply::bulk(id.as_str()),
        })
        .collect();
    Reply::Array(vec![
        Reply::bulk("ID"),
        Reply::bulk(session.id.as_str()),
        Reply::bulk("sessionDescription"),
        session
            .description
            .as_deref()
            .map_or(Reply::Null, Reply::bulk),
        Reply::bulk("refCount"),
        Reply::Integer(Session::ref_count(session) as i64),
        Reply::bulk("linked"),
        Reply::bulk(session.linked()),
        Reply::bulk("dead"),
        Reply::bulk(if session.is_dead() { "true" } else { "false" }),
        Reply::bulk("requirementInstallationNeeded"),
        Reply::Integer(i64::from(session.installation_needed())),
        Reply::bulk("requirements"),
        Reply::Array(
            session
                .requirements()
                .iter()
                .map(|r| {
                    if verbose {
                        r.dump(1)
                    } else {
                        Reply::bulk(r.name.as_str())
                    }
                })
                .collect(),
        ),
        Reply::bulk("registrations"),
        Reply::Array(registrations),
    ])
}

/// `RG.PYDUMPSESSIONS [VERBOSE] [DEAD] [SESSIONS <id> ...]`.
pub fn dump_sessions(_ctx: &Context, args: Vec<RedisString>) -> Answer {
    let words = text_args(&args[1..]);
    let (mut verbose, mut dead) = (false, false);
    let mut i = 0;
    while i < words.len() {
        match words[i].to_ascii_uppercase().as_str() {
            "VERBOSE" => verbose = true,
            "DEAD" => dead = true,
            "SESSIONS" => {
                let listed = words[i + 1..]
                    .iter()
                    .map(|id| match sessions::live(id) {
                        Some(s) => entry(&s, verbose),
                        None => Reply::bulk(format!("Session {id} does not exists")),
                    })
                    .collect();
                return Reply::Array(listed).into();
            }
            _ => return Reply::error(format!("Unknown option {}", words[i])).into(),
        }
        i += 1;
    }
    let listed = if dead {
        sessions::all_dead()
    } else {
        sessions::all_live()
    };
    Reply::Array(listed.iter().map(|s| entry(s, verbose)).collect()).into()
}
