//! Starting executions: a `run()` on the execution threads, a registration's execution on its
//! own serial queue or, for `sync` registrations, inline in the command that fired it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use dataflow::{Execution, Plan, Reader, Status};
use pyo3::prelude::*;
use redis_module::Context;

use crate::executions::{self, ExecutionEntry, Outcome};
use crate::hooks::HookCall;
use crate::linked::CommandLink;
use crate::python::callbacks::PyScope;
use crate::python::context;
use crate::python::convert::python_record_to_reply;
use crate::registrations::{Registration, Trigger};
use crate::sessions::Session;
use crate::{config, ids, threads};

/// Lists a new execution of `plan`, whose steps `steps` lists.
fn prepare(
    plan: &Plan,
    steps: Arc<[executions::StepInfo]>,
    registered: bool,
) -> (Execution, Arc<ExecutionEntry>) {
    let (max_executions, profiling) = {
        let config = config::read();
        (config.max_executions, config.profile_executions != 0)
    };
    let execution = Execution::with_profiling(plan, profiling);
    let entry = executions::create(
        ids::next_execution_id(),
        steps,
        &execution,
        max_executions,
        registered,
    );
    (execution, entry)
}

/// Runs an execution to its end on the calling thread and records its outcome.
fn run_to_end(
    entry: &ExecutionEntry,
    execution: Execution,
    reader: &mut dyn Reader,
    session: &Arc<Session>,
) {
    context::with_session(session, || run_to_end_with(entry, execution, reader, true))
}

/// [`run_to_end`]; `abortable` is false for inline runs on the main thread, where no abort can
/// run concurrently and so none can have left an exception pending.
fn run_to_end_with(
    entry: &ExecutionEntry,
    mut execution: Execution,
    reader: &mut dyn Reader,
    abortable: bool,
) {
    // SAFETY: reads the calling thread's ident; needs no GIL.
    let python_thread = unsafe { pyo3::ffi::PyThread_get_thread_ident() } as u64;
    if !entry.start_running(python_thread) {
        return; // aborted before it started
    }
    let ran = catch_unwind(AssertUnwindSafe(|| {
        let status = execution.run(reader, &PyScope);
        let (results, errors) = execution.take_output();
        let results = Python::attach(|py| {
            results
                .into_iter()
                .map(|r| python_record_to_reply(py, r))
                .collect()
        });
        (
            status,
            Outcome { results, errors },
            execution.total_duration(),
        )
    }));
    entry.stop_running();
    if abortable {
        // An abort may have raised gears.forcestopped in this thread after its last Python code
        // ran: clear it so that the next execution on this thread does not get it.
        Python::attach(|_| {
            // SAFETY: clearing this thread's pending asynchronous exception, GIL held.
            unsafe {
                pyo3::ffi::PyThreadState_SetAsyncExc(python_thread as _, std::ptr::null_mut())
            };
        });
    }
    match ran {
        Ok((status, outcome, duration)) => entry.finish(status, outcome, duration),
        Err(_) => entry.finish(
            Status::Done,
            Outcome {
                results: Vec::new(),
                errors: vec!["internal error: the execution failed unexpectedly".into()],
            },
            Duration::ZERO,
        ),
    }
}

/// A `run()`: listed, then queued on the execution threads.
pub fn start(
    plan: Plan,
    mut reader: Box<dyn Reader>,
    session: Arc<Session>,
) -> Result<Arc<ExecutionEntry>, String> {
    let (execution, entry) = prepare(&plan, executions::step_infos(&plan), false);
    let job_entry = entry.clone();
    let queued = threads::run_execution(move || {
        context::register_gears_thread();
        run_to_end(&job_entry, execution, reader.as_mut(), &session);
    });
    if !queued {
        executions::remove(&entry.id);
        return Err("failed creating execution".into());
    }
    Ok(entry)
}

/// Counts the end of a registration's execution in its statistics.
fn settle(registration: &Arc<Registration>, entry: &Arc<ExecutionEntry>) {
    let registration = registration.clone();
    let counted = entry.clone();
    entry.when_done(move |outcome| {
        registration.finished(
            &counted,
            counted.status(),
            outcome.errors.first().map(String::as_str),
        );
    });
}

/// Work that follows an execution on the thread that ran it, once it ended (or was aborted
/// before it started), holding neither the GIL nor the Redis lock.
pub type After = Box<dyn FnOnce(&Arc<ExecutionEntry>) + Send>;

/// A registration's non-sync execution, queued behind the registration's earlier ones (or, for
/// a trigger without `inorder`, run in parallel with them). None if it could not be queued.
pub fn start_for(
    registration: &Arc<Registration>,
    reader: Box<dyn Reader>,
    hook: Option<Arc<HookCall>>,
    link: Option<Arc<CommandLink>>,
) -> Option<Arc<ExecutionEntry>> {
    queue_for(registration, reader, hook, link, None)
}

/// [`start_for`], then `after` on the same thread.
pub fn start_for_then(
    registration: &Arc<Registration>,
    reader: Box<dyn Reader>,
    after: After,
) -> Option<Arc<ExecutionEntry>> {
    queue_for(registration, reader, None, None, Some(after))
}

fn queue_for(
    registration: &Arc<Registration>,
    mut reader: Box<dyn Reader>,
    hook: Option<Arc<HookCall>>,
    link: Option<Arc<CommandLink>>,
    after: Option<After>,
) -> Option<Arc<ExecutionEntry>> {
    if let Some(link) = &link {
        link.attach();
    }
    let (execution, entry) = prepare(&registration.plan, registration.steps.clone(), true);
    registration.started(&entry);
    settle(registration, &entry);
    let job_entry = entry.clone();
    let session = registration.session.clone();
    let job_link = link.clone();
    let job = move || {
        context::register_gears_thread();
        context::with_hook(hook, || {
            context::with_link(job_link.clone(), || {
                run_to_end(&job_entry, execution, reader.as_mut(), &session)
            })
        });
        // The client linked to this execution hears back once the last one ended.
        if let Some(link) = job_link {
            link.finished();
        }
        if let Some(after) = after {
            after(&job_entry);
        }
    };
    let in_order = match &registration.trigger {
        Trigger::Command(command) => command.inorder,
        Trigger::Keys(_) | Trigger::Stream(_) => true,
    };
    let queued = if in_order {
        threads::run_on(&registration.queue, job)
    } else {
        threads::run_execution(job)
    };
    if !queued {
        executions::remove(&entry.id);
        registration.start_failed();
        if let Some(link) = link {
            link.finished();
        }
        return None;
    }
    Some(entry)
}

/// A `sync` registration's execution, run to its end right here, inside the command that fired
/// it, with the Redis lock this thread already holds (`ctx`).
pub fn run_inline(
    registration: &Arc<Registration>,
    ctx: &Context,
    mut reader: Box<dyn Reader>,
    hook: Option<Arc<HookCall>>,
    link: Option<Arc<CommandLink>>,
) -> Arc<ExecutionEntry> {
    if let Some(link) = &link {
        link.attach();
    }
    let (execution, entry) = prepare(&registration.plan, registration.steps.clone(), true);
    registration.started(&entry);
    settle(registration, &entry);
    // This thread holds the Redis lock, so taking the GIL once for the whole run is in order,
    // and saves taking it again for each part of the run.
    context::with_locked_context(ctx, || {
        context::with_session(&registration.session, || {
            context::with_hook(hook, || {
                context::with_link(link.clone(), || {
                    Python::attach(|_| run_to_end_with(&entry, execution, reader.as_mut(), false))
                })
            })
        })
    });
    if let Some(link) = link {
        link.finished();
    }
    entry
}
