//! The commands that look at executions: RG.GETRESULTS, RG.GETRESULTSBLOCKING,
//! RG.DROPEXECUTION, RG.DUMPEXECUTIONS.

use redis_module::{Context, RedisString};

use super::Answer;
use crate::blocked::BlockedClient;
use crate::executions::{self, ExecutionEntry};
use crate::reply::Reply;
use std::sync::Arc;

const NOT_FOUND: &str = "execution plan does not exist";

/// Looks an execution up by id; ids shorter than 42 characters or without `-` at index 40
/// are never found.
fn lookup(id: &RedisString) -> Option<Arc<ExecutionEntry>> {
    let id = id.as_slice();
    if id.len() < 42 || id[40] != b'-' {
        return None;
    }
    executions::get(std::str::from_utf8(id).ok()?)
}

pub fn get_results(_ctx: &Context, args: Vec<RedisString>) -> Answer {
    if args.len() < 2 {
        return Answer::WrongArity;
    }
    let Some(entry) = lookup(&args[1]) else {
        return Reply::error(NOT_FOUND).into();
    };
    match entry.outcome() {
        Some(outcome) => outcome.reply().into(),
        None => Reply::error("execution is still running").into(),
    }
}

pub fn get_results_blocking(ctx: &Context, args: Vec<RedisString>) -> Answer {
    if args.len() != 2 {
        return Answer::WrongArity;
    }
    let Some(entry) = lookup(&args[1]) else {
        return Reply::error(NOT_FOUND).into();
    };
    if let Some(outcome) = entry.outcome() {
        return outcome.reply().into();
    }
    let client = BlockedClient::block(ctx, 1_000_000);
    entry.when_done(move |outcome| client.reply(outcome.reply()));
    Answer::NoReply
}

pub fn drop_execution(_ctx: &Context, args: Vec<RedisString>) -> Answer {
    if args.len() != 2 {
        return Answer::WrongArity;
    }
    let Some(entry) = lookup(&args[1]) else {
        return Reply::error(NOT_FOUND).into();
    };
    if !entry.status().is_finished() {
        return Reply::error("can not drop a not yet finished execution, abort it first.").into();
    }
    executions::remove(&entry.id);
    Reply::ok().into()
}

pub fn dump_executions(_ctx: &Context, _args: Vec<RedisString>) -> Answer {
    Reply::Array(
        executions::all()
            .iter()
            .map(|e| {
                Reply::Array(vec![
                    Reply::bulk("executionId"),
                    Reply::bulk(e.id.as_str()),
                    Reply::bulk("status"),
                    Reply::bulk(e.status().name()),
                    Reply::bulk("registered"),
                    Reply::Integer(e.registered as i64),
                ])
            })
            .collect(),
    )
    .into()
}

fn millis(d: std::time::Duration) -> i64 {
    d.as_millis() as i64
}

/// The local view of an execution: `[shard_id, <id>, execution_plan, [...]]`, plus a `progress`
/// entry while it runs (beyond RedisGears: records read and records out of each step).
fn local_view(entry: &ExecutionEntry) -> Reply {
    let outcome = entry.outcome();
    let progress = &entry.progress;
    let profiling = progress.profiling();
    let steps: Vec<Reply> = entry
        .steps
        .iter()
        .enumerate()
        .rev()
        .map(|(i, step)| {
            let duration = if profiling {
                millis(progress.step_duration(i))
            } else {
                0
            };
            Reply::Array(vec![
                Reply::bulk("type"),
                Reply::bulk(step.step_type),
                Reply::bulk("duration"),
                Reply::Integer(duration),
                Reply::bulk("name"),
                Reply::bulk(step.name.as_str()),
                Reply::bulk("arg"),
                Reply::bulk(step.arg.as_str()),
            ])
        })
        .collect();
    let (results, errors) = match &outcome {
        Some(o) => (
            o.results.len() as i64,
            o.errors.iter().map(|e| Reply::bulk(e.as_str())).collect(),
        ),
        None => (-1, Vec::new()),
    };
    let read_duration = if profiling {
        millis(progress.read_duration())
    } else {
        0
    };
    let (received, completed) = entry.shard_counts();
    let plan = Reply::Array(vec![
        Reply::bulk("status"),
        Reply::bulk(entry.status().name()),
        Reply::bulk("shards_received"),
        Reply::Integer(received as i64),
        Reply::bulk("shards_completed"),
        Reply::Integer(completed as i64),
        Reply::bulk("results"),
        Reply::Integer(results),
        Reply::bulk("errors"),
        Reply::Array(errors),
        Reply::bulk("total_duration"),
        Reply::Integer(millis(entry.total_duration())),
        Reply::bulk("read_duration"),
        Reply::Integer(read_duration),
        Reply::bulk("steps"),
        Reply::Array(steps),
    ]);
    let mut view = vec![
        Reply::bulk("shard_id"),
        Reply::bulk(crate::ids::shard_id()),
        Reply::bulk("execution_plan"),
        plan,
    ];
    if outcome.is_none() {
        let out: Vec<Reply> = (0..progress.steps())
            .rev()
            .map(|i| Reply::Integer(progress.records_out(i) as i64))
            .collect();
        view.push(Reply::bulk("progress"));
        view.push(Reply::Array(vec![
            Reply::bulk("records_read"),
            Reply::Integer(progress.records_read() as i64),
            Reply::bulk("records_out"),
            Reply::Array(out),
        ]));
    }
    Reply::Array(view)
}

/// `RG.GETEXECUTION <id> [SHARD|CLUSTER]`.
pub fn get_execution(ctx: &Context, args: Vec<RedisString>) -> Answer {
    if args.len() < 2 || args.len() > 3 {
        return Answer::WrongArity;
    }
    let Some(entry) = lookup(&args[1]) else {
        return Reply::error(NOT_FOUND).into();
    };
    let cluster = crate::shards::is_cluster();
    if let Some(view) = args.get(2) {
        let view = String::from_utf8_lossy(view.as_slice()).to_ascii_uppercase();
        match view.as_str() {
            "SHARD" => return Reply::Array(vec![local_view(&entry)]).into(),
            "CLUSTER" if !cluster => {
                return Reply::error(
                    "no cluster detected - use `RG.GETEXECUTION <id> [SHARD]` instead",
                )
                .into()
            }
            "CLUSTER" => {}
            _ => return Reply::error("unknown subcommand").into(),
        }
    }
    if !cluster {
        return Reply::Array(vec![local_view(&entry)]).into();
    }
    cluster_view(ctx, &entry.id)
}

/// The cluster view (commands.md §3.2): like RedisGears, a helper execution runs
/// `RG.GETEXECUTION <id> SHARD` on every shard and collects the views; shards that do not know
/// the execution are left out, and the helper is dropped once the client has the reply.
fn cluster_view(ctx: &Context, id: &str) -> Answer {
    // `id` is the id of a listed execution (hex, `-`, digits): safe inside the quotes.
    let script = format!(
        "GB('ShardsIDReader').map(lambda r: execute('RG.GETEXECUTION', '{id}', 'SHARD'))\
         .flatmap(lambda views: views).run(convertToStr=False)"
    );
    let session = crate::sessions::Session::new(None, None);
    let helper = match crate::python::run_script(
        ctx,
        &crate::python::Script::Source(script.into_bytes()),
        &session,
    ) {
        Ok(outcome) => outcome.execution,
        Err(e) => return Reply::error(e).into(),
    };
    let Some(helper) = helper else {
        return Reply::error("failed creating execution").into();
    };
    let client = BlockedClient::block(ctx, 0);
    let helper_id = helper.id.clone();
    helper.when_done(move |outcome| {
        executions::remove(&helper_id);
        client.reply(Reply::Array(outcome.results.clone()));
    });
    Answer::NoReply
}

/// How long an abort waits for `gears.forcestopped` to end a running execution before it also
/// stops it between records (for an execution not running Python code at that moment).
const FORCE_STOP_GRACE: std::time::Duration = std::time::Duration::from_millis(50);

/// How often the exception is raised again in an execution that still runs Python.
const REINTERRUPT_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// `RG.ABORTEXECUTION <id>`: blocks until the execution has ended.
pub fn abort_execution(ctx: &Context, args: Vec<RedisString>) -> Answer {
    if args.len() != 2 {
        return Answer::WrongArity;
    }
    let Some(entry) = lookup(&args[1]) else {
        return Reply::error("execution does not exist").into();
    };
    if entry.status().is_finished() {
        return Reply::ok().into();
    }
    let client = BlockedClient::block(ctx, 0);
    let queued = crate::threads::run_management(move || {
        abort(&entry);
        client.reply(Reply::ok());
    });
    if queued {
        Answer::NoReply
    } else {
        Answer::Reply(Reply::error(
            "ERR Failed creating abort Flat Execution Plan",
        ))
    }
}

/// Ends `entry`: one not yet started is marked aborted at once; a running one gets
/// `gears.forcestopped` raised in its Python thread (so it ends done, with that error), and if
/// it is still running after a grace period it is also stopped before its next record.
fn abort(entry: &ExecutionEntry) {
    use dataflow::Status;
    // A distributed execution's parts on the other shards end too.
    crate::shards::executions::abort_everywhere(&entry.id);
    if entry.status() == Status::Created {
        entry.finish(
            Status::Aborted,
            executions::Outcome {
                results: Vec::new(),
                errors: Vec::new(),
            },
            std::time::Duration::ZERO,
        );
        return;
    }
    // The exception is raised again while the execution still runs Python on a thread: a thread
    // that had not entered Python yet when it was raised had no thread state to receive it.
    let interrupt = || {
        pyo3::Python::attach(|py| {
            // GIL first, then the entry's lock: the worker takes them in no other order.
            entry.with_python_thread(|thread| {
                thread != 0 && crate::python::errors::interrupt_thread_with_gil(py, thread)
            })
        })
    };
    if !interrupt() {
        // Waiting for async records (or between records): stop it now.
        entry.request_abort();
    }
    let started = std::time::Instant::now();
    let mut interrupted = started;
    while !entry.status().is_finished() {
        if started.elapsed() > FORCE_STOP_GRACE {
            entry.request_abort();
        }
        if interrupted.elapsed() > REINTERRUPT_EVERY {
            interrupt();
            interrupted = std::time::Instant::now();
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// `RG.DUMPPLUGINS`.
pub fn dump_plugins(_ctx: &Context, _args: Vec<RedisString>) -> Answer {
    Reply::Array(vec![Reply::Array(vec![
        Reply::bulk("GearsPythonPlugin"),
        Reply::Integer(10000),
    ])])
    .into()
}
