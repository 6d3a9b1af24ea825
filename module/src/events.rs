//! Keyspace notifications fire KeysReader registrations (readers.md §2.3).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use dataflow::keys::prefix_matches;
use redis_module::{Context, ContextFlags, KeyType, NotifyEvent, RedisString};

use crate::python::context;
use crate::readers::keys::{exact_key_record, KeyContent, KeysReader};
use crate::registrations::{self, Mode, Registration, Trigger};
use crate::{redis_calls, runner};

/// The type name `keyTypes` compares with.
fn key_type(ctx: &Context, key: &[u8]) -> &'static str {
    context::opening_keys(|| {
        let name = RedisString::create_from_slice(std::ptr::null_mut(), key);
        match ctx.open_key(&name).key_type() {
            KeyType::Empty => "empty",
            KeyType::String => "string",
            KeyType::List => "list",
            KeyType::Hash => "hash",
            KeyType::Set => "set",
            KeyType::ZSet => "zset",
            KeyType::Module => "module",
            KeyType::Stream => "stream",
        }
    })
}

pub fn on_keyspace_event(ctx: &Context, _class: NotifyEvent, event: &str, key: &[u8]) {
    if context::is_opening_keys() {
        return;
    }
    let registrations = registrations::all();
    if registrations.is_empty() {
        return;
    }
    let flags = ctx.get_flags();
    if flags.intersects(ContextFlags::SLAVE | ContextFlags::LOADING) {
        return;
    }
    let fired = catch_unwind(AssertUnwindSafe(|| {
        if event == "xadd" {
            crate::streams::on_xadd(ctx, key);
        }
        let mut key_type_of_key = None;
        for registration in registrations.iter() {
            let Trigger::Keys(trigger) = &registration.trigger else {
                continue;
            };
            if let Some(events) = &trigger.event_types {
                if !events.iter().any(|e| e.eq_ignore_ascii_case(event)) {
                    continue;
                }
            }
            // `commands=`: only while one of those client commands runs, linked to it.
            let link = match &trigger.commands {
                None => None,
                Some(_) => {
                    match context::running_command(&trigger.command_names().unwrap_or_default()) {
                        Some(link) => Some(link),
                        None => continue,
                    }
                }
            };
            if let Some(types) = &trigger.key_types {
                let t = *key_type_of_key.get_or_insert_with(|| key_type(ctx, key));
                if !types.iter().any(|k| k == t) {
                    continue;
                }
            }
            if !prefix_matches(&trigger.prefix, key) {
                continue;
            }
            fire(registration, trigger.read_value, ctx, event, key, link);
        }
    }));
    if fired.is_err() {
        redis_calls::log(
            "warning",
            "internal error while firing registrations (the server is fine)",
        );
    }
}

fn fire(
    registration: &Arc<Registration>,
    read_value: bool,
    ctx: &Context,
    event: &str,
    key: &[u8],
    link: Option<Arc<crate::linked::CommandLink>>,
) {
    registration.triggered();
    let content = if !registration.plan.inspects_reader_records() {
        KeyContent::Nothing
    } else if read_value {
        KeyContent::Values
    } else {
        KeyContent::Names
    };
    match registration.mode {
        // Read now, inside the command that changed the key. Writes the execution makes fire no
        // registration: Redis does not re-enter a module's notification callback.
        Mode::Sync => {
            let record = exact_key_record(ctx, key, Some(event), content);
            runner::run_inline_record(registration, ctx, record, link);
        }
        // Read when the execution runs, not now (readers.md §2.3 point 5).
        Mode::Async | Mode::AsyncLocal => {
            runner::start_for(
                registration,
                Box::new(KeysReader::for_event(key.to_vec(), event, content)),
                None,
                link,
            );
        }
    }
}
