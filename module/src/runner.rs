//! Starting executions: a `run()` on the execution threads, a registration's execution on its
//! own serial queue or, for `sync` registrations, inline in the command that fired it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use dataflow::{Execution, Plan, Reader, Record, Status};
use pyo3::prelude::*;
use pyo3::types::PyList;
use redis_module::Context;

use crate::executions::{self, ExecutionEntry, Outcome};
use crate::hooks::HookCall;
use crate::linked::CommandLink;
use crate::python::callbacks::PyScope;
use crate::python::context;
use crate::python::convert::{python_record_to_reply, record_into_py};
use crate::registrations::{Registration, Trigger};
use crate::sessions::Session;
use crate::{config, ids, threads};

/// Lists a new execution of `plan`, whose steps `steps` lists.
fn prepare(
    plan: &Plan,
    steps: Arc<[executions::StepInfo]>,
    registered: bool,
) -> (Execution, Arc<ExecutionEntry>) {
    prepare_as(plan, steps, registered, ids::next_execution_id())
}

/// [`prepare`] under a given id (a distributed execution's, the same on every shard).
fn prepare_as(
    plan: &Plan,
    steps: Arc<[executions::StepInfo]>,
    registered: bool,
    id: String,
) -> (Execution, Arc<ExecutionEntry>) {
    let (max_executions, profiling) = {
        let config = config::read();
        (config.max_executions, config.profile_executions != 0)
    };
    let execution = Execution::with_profiling(plan, profiling);
    let entry = executions::create(id, steps, &execution, max_executions, registered);
    (execution, entry)
}

/// The outcome of a run that panicked (caught before it crossed into Redis).
fn failed_unexpectedly() -> Outcome {
    Outcome {
        results: Vec::new(),
        errors: vec!["internal error: the execution failed unexpectedly".into()],
    }
}

/// Work that follows an execution on the thread that ended it, once it ended (or was aborted
/// before it started), holding neither the GIL nor the Redis lock.
pub type After = Box<dyn FnOnce(&Arc<ExecutionEntry>) + Send>;

/// An execution with everything it needs to run a slice on any thread: it runs in slices when
/// its steps wait for async records (coroutines, `gearsFuture()`), parked in between.
struct Job {
    entry: Arc<ExecutionEntry>,
    execution: Execution,
    reader: Box<dyn Reader>,
    session: Arc<Session>,
    hook: Option<Arc<HookCall>>,
    link: Option<Arc<CommandLink>>,
    after: Option<After>,
    /// A `run()` from inside a step or coroutine: its `GearsFuture`, resolved with
    /// `[results, errors]` (the records as Python objects); the execution is dropped once done.
    future: Option<Py<PyAny>>,
}

impl Job {
    /// Runs a slice on this worker with the job's session, hook and link current; once the
    /// execution ended, what follows it runs here too, else it parks until woken.
    fn drive(mut self: Box<Self>) {
        context::register_gears_thread();
        let (session, hook, link) = (self.session.clone(), self.hook.clone(), self.link.clone());
        let ended = context::with_session(&session, || {
            context::with_hook(hook, || context::with_link(link, || self.slice(true)))
        });
        if ended {
            self.ended();
        } else {
            self.park();
        }
    }

    /// Runs the execution until it ends or waits; true when it ended (its outcome recorded).
    /// `abortable` is false for inline runs on the main thread, where no abort can run
    /// concurrently and so none can have left an exception pending.
    fn slice(&mut self, abortable: bool) -> bool {
        // SAFETY: reads the calling thread's ident; needs no GIL.
        let python_thread = unsafe { pyo3::ffi::PyThread_get_thread_ident() } as u64;
        if !self.entry.start_running(python_thread) {
            return true; // aborted before it started
        }
        let (execution, reader, future) = (&mut self.execution, &mut self.reader, &self.future);
        let id = &self.entry.id;
        let ran = catch_unwind(AssertUnwindSafe(|| {
            let status = execution.run(reader.as_mut(), &PyScope);
            if !status.is_finished() {
                return None;
            }
            let (results, errors) = execution.take_output();
            let results = Python::attach(|py| match future {
                Some(future) => {
                    // Unlisted before the awaiting coroutine can go on (and its client hear
                    // back), so nothing that client sends next still lists it.
                    executions::remove(id);
                    resolve_run_future(py, future, results, &errors);
                    Vec::new()
                }
                None => results
                    .into_iter()
                    .map(|r| python_record_to_reply(py, r))
                    .collect(),
            });
            Some((
                status,
                Outcome { results, errors },
                execution.total_duration(),
            ))
        }));
        self.entry.stop_running();
        if abortable {
            // An abort may have raised gears.forcestopped in this thread after its last Python
            // code ran: clear it so that the next execution on this thread does not get it.
            Python::attach(|_| {
                // SAFETY: clearing this thread's pending asynchronous exception, GIL held.
                unsafe {
                    pyo3::ffi::PyThreadState_SetAsyncExc(python_thread as _, std::ptr::null_mut())
                };
            });
        }
        match ran {
            Ok(None) => false,
            Ok(Some((status, outcome, duration))) => {
                self.entry.finish(status, outcome, duration);
                true
            }
            Err(_) => {
                self.entry
                    .finish(Status::Done, failed_unexpectedly(), Duration::ZERO);
                true
            }
        }
    }

    /// Waits, holding no thread, until a record it waits for completes (or an abort): it then
    /// goes on in the background, on the execution threads.
    fn park(self: Box<Self>) {
        let wakeup = self.execution.wakeup();
        wakeup.park(Box::new(move || {
            let entry = self.entry.clone();
            if !threads::run_execution(move || self.drive()) {
                entry.finish(
                    Status::Aborted,
                    Outcome {
                        results: Vec::new(),
                        errors: vec!["the execution threads are gone".into()],
                    },
                    Duration::ZERO,
                );
            }
        }));
    }

    /// The execution ended: the client linked to it hears back once the last one ended, and
    /// what follows it runs.
    fn ended(self: Box<Self>) {
        if self.future.is_some() {
            executions::remove(&self.entry.id);
        }
        if let Some(link) = self.link {
            link.finished();
        }
        if let Some(after) = self.after {
            after(&self.entry);
        }
    }
}

/// Sets a nested `run()`'s future to `[results, errors]` on the event loop.
fn resolve_run_future(py: Python<'_>, future: &Py<PyAny>, results: Vec<Record>, errors: &[String]) {
    let set = || -> PyResult<()> {
        let objects = PyList::empty(py);
        for record in results {
            objects.append(record_into_py(py, record)?)?;
        }
        let value = PyList::new(
            py,
            [objects.into_any(), PyList::new(py, errors)?.into_any()],
        )?;
        crate::python::prelude_function(py, "_setRunResult")?.call1((future, value))?;
        Ok(())
    };
    if let Err(e) = set() {
        crate::redis_calls::log(
            "warning",
            &format!(
                "Error happened when releasing execution future, error='{}'",
                crate::python::errors::format_error(py, &e)
            ),
        );
    }
}

/// A `run()`: listed, then queued on the execution threads. With `future` (a run from inside a
/// step or coroutine), the results go to it and the execution is dropped once done.
pub fn start(
    plan: Plan,
    reader: Box<dyn Reader>,
    session: Arc<Session>,
    future: Option<Py<PyAny>>,
) -> Result<Arc<ExecutionEntry>, String> {
    let (execution, entry) = prepare(&plan, executions::step_infos(&plan), false);
    queue_run(execution, &entry, reader, session, future, None)?;
    Ok(entry)
}

/// Queues a run on the execution threads; unlisted again if it could not be queued.
fn queue_run(
    execution: Execution,
    entry: &Arc<ExecutionEntry>,
    reader: Box<dyn Reader>,
    session: Arc<Session>,
    future: Option<Py<PyAny>>,
    after: Option<After>,
) -> Result<(), String> {
    let job = Box::new(Job {
        entry: entry.clone(),
        execution,
        reader,
        session,
        hook: None,
        link: None,
        after,
        future,
    });
    if !threads::run_execution(move || job.drive()) {
        executions::remove(&entry.id);
        return Err("failed creating execution".into());
    }
    Ok(())
}

/// One shard's part of a distributed `run()` (the initiator's, or another shard's under the
/// initiator's `id`): `exchange` makes it meet the other shards' parts, and `after` runs once
/// it ended here.
pub fn start_distributed(
    plan: Plan,
    reader: Box<dyn Reader>,
    session: Arc<Session>,
    future: Option<Py<PyAny>>,
    id: Option<String>,
    exchange: impl FnOnce(&Arc<ExecutionEntry>, Arc<dataflow::Wakeup>) -> Arc<dyn dataflow::Exchange>,
    after: After,
) -> Result<Arc<ExecutionEntry>, String> {
    let steps = executions::step_infos(&plan);
    let (mut execution, entry) = match id {
        Some(id) => prepare_as(&plan, steps, false, id),
        None => prepare(&plan, steps, false),
    };
    execution.set_exchange(exchange(&entry, execution.wakeup()));
    queue_run(execution, &entry, reader, session, future, Some(after))?;
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

/// [`start_for`], then `after` on the thread that ended it.
pub fn start_for_then(
    registration: &Arc<Registration>,
    reader: Box<dyn Reader>,
    after: After,
) -> Option<Arc<ExecutionEntry>> {
    queue_for(registration, reader, None, None, Some(after))
}

/// The job of a registration's execution, listed and counted as started.
fn registration_job(
    registration: &Arc<Registration>,
    reader: Box<dyn Reader>,
    hook: Option<Arc<HookCall>>,
    link: Option<Arc<CommandLink>>,
    after: Option<After>,
) -> Box<Job> {
    if let Some(link) = &link {
        link.attach();
    }
    let (execution, entry) = prepare(&registration.plan, registration.steps.clone(), true);
    registration.started(&entry);
    settle(registration, &entry);
    Box::new(Job {
        entry,
        execution,
        reader,
        session: registration.session.clone(),
        hook,
        link,
        after,
        future: None,
    })
}

fn queue_for(
    registration: &Arc<Registration>,
    reader: Box<dyn Reader>,
    hook: Option<Arc<HookCall>>,
    link: Option<Arc<CommandLink>>,
    after: Option<After>,
) -> Option<Arc<ExecutionEntry>> {
    let job = registration_job(registration, reader, hook, link.clone(), after);
    let entry = job.entry.clone();
    let in_order = match &registration.trigger {
        Trigger::Command(command) => command.inorder,
        Trigger::Keys(_) | Trigger::Stream(_) => true,
    };
    // An execution that waits for async records leaves its queue: the next one starts meanwhile.
    let queued = if in_order {
        threads::run_on(&registration.queue, move || job.drive())
    } else {
        threads::run_execution(move || job.drive())
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

/// A `sync` registration's execution, run right here, inside the command that fired it, with
/// the Redis lock this thread already holds (`ctx`). If a step waits for an async record (only
/// where `async_allowed`) the rest runs in the background like an `async_local` execution; the
/// returned entry then has no outcome yet.
pub fn run_inline(
    registration: &Arc<Registration>,
    ctx: &Context,
    reader: Box<dyn Reader>,
    hook: Option<Arc<HookCall>>,
    link: Option<Arc<CommandLink>>,
    async_allowed: bool,
) -> Arc<ExecutionEntry> {
    let mut job = registration_job(registration, reader, hook, link, None);
    job.execution.set_async_allowed(async_allowed);
    let entry = job.entry.clone();
    let (session, hook, link) = (job.session.clone(), job.hook.clone(), job.link.clone());
    // This thread holds the Redis lock, so taking the GIL once for the whole run is in order,
    // and saves taking it again for each part of the run.
    let ended = context::with_locked_context(ctx, || {
        context::with_session(&session, || {
            context::with_hook(hook, || {
                context::with_link(link, || Python::attach(|_| job.slice(false)))
            })
        })
    });
    if ended {
        job.ended();
    } else {
        job.park();
    }
    entry
}

/// A `sync` registration's execution of the one record of a keyspace event, inside the write
/// (which cannot wait for it, runtime.md §6.4). When the plan is record-wise
/// ([`Registration::record_wise`]) and executions are not profiled, it is listed, counted and
/// recorded like [`run_inline`]'s, but the record goes through the steps by
/// [`dataflow::record_wise::run_record`], without an engine execution (whose setup and pull
/// machinery cost more than the steps of most such registrations); otherwise the engine runs it.
pub fn run_inline_record(
    registration: &Arc<Registration>,
    ctx: &Context,
    record: Record,
    link: Option<Arc<CommandLink>>,
) -> Arc<ExecutionEntry> {
    if !registration.record_wise || config::PROFILING.load(std::sync::atomic::Ordering::Relaxed) {
        let reader = Box::new(dataflow::VecReader::new(vec![record], 1));
        return run_inline(registration, ctx, reader, None, link, false);
    }
    if let Some(link) = &link {
        link.attach();
    }
    let parts = executions::EntryParts {
        progress: Arc::new(dataflow::Progress::new(
            registration.plan.steps.len(),
            false,
        )),
        abort: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        wakeup: Arc::new(dataflow::Wakeup::default()),
    };
    let (progress, abort, wakeup) = (
        parts.progress.clone(),
        parts.abort.clone(),
        parts.wakeup.clone(),
    );
    let max_executions = config::read().max_executions;
    let entry = executions::create_from(
        ids::next_execution_id(),
        registration.steps.clone(),
        parts,
        max_executions,
        true,
    );
    registration.started(&entry);
    // SAFETY: reads the calling thread's ident; needs no GIL.
    let python_thread = unsafe { pyo3::ffi::PyThread_get_thread_ident() } as u64;
    if entry.start_running(python_thread) {
        let started = std::time::Instant::now();
        let ran = catch_unwind(AssertUnwindSafe(|| {
            context::with_locked_context(ctx, || {
                context::with_session(&registration.session, || {
                    // No hook: a write inside a hooked command does not hand its hook on.
                    context::with_hook(None, || {
                        context::with_link(link.clone(), || {
                            Python::attach(|py| {
                                let out = dataflow::record_wise::run_record(
                                    &registration.plan,
                                    record,
                                    &progress,
                                    &wakeup,
                                    &PyScope,
                                );
                                let results = out
                                    .results
                                    .into_iter()
                                    .map(|r| python_record_to_reply(py, r))
                                    .collect();
                                Outcome {
                                    results,
                                    errors: out.errors,
                                }
                            })
                        })
                    })
                })
            })
        }));
        entry.stop_running();
        let duration = started.elapsed();
        match ran {
            // A step may abort its own execution (RG.ABORTEXECUTION from inside it).
            Ok(outcome) if abort.load(std::sync::atomic::Ordering::Relaxed) => {
                entry.finish(Status::Aborted, outcome, duration)
            }
            Ok(outcome) => entry.finish(Status::Done, outcome, duration),
            Err(_) => entry.finish(Status::Done, failed_unexpectedly(), duration),
        }
    }
    let first_error = entry.outcome().and_then(|o| o.errors.first().cloned());
    registration.finished(&entry, entry.status(), first_error.as_deref());
    if let Some(link) = link {
        link.finished();
    }
    entry
}
