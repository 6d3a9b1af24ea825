//! Distributed executions (sessions-and-cluster.md C.5): an `async` `run()` in cluster mode runs
//! on every shard under one id. The initiator sends the saved run to the other shards
//! (`ExecutionPlan_OnReceived`); every shard's part meets the others through a
//! [`ClusterExchange`], whose messages arrive here through RG.INNERMSGCOMMAND.
//!
//! Unlike RedisGears there is no received/run handshake: a shard starts its part as soon as it
//! has the plan, and records that reach it before its part exists wait in the registry. That
//! saves a round trip per execution; the max idle time still ends an execution a shard never
//! runs.

use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cluster::exchange::{self as exchange, Message};
use cluster::{ClusterExchange, Registry, Transport};
use dataflow::wire::ObjectCodec;
use dataflow::{ObjectHandle, Plan, Reader, Record};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyBytes;
use redis_module::Context;

use crate::executions::{self, ExecutionEntry};
use crate::python::convert::PyObj;
use crate::python::errors::format_error;
use crate::redis_calls::log;
use crate::sessions::Session;
use crate::{config, runner, threads};

/// Carries a run's saved form to the other shards.
pub const RUN_RECEIVED: &str = "ExecutionPlan_OnReceived";
/// The initiator dropped the execution: the other shards drop their parts.
pub const DROPPED: &str = "RG_OnDropExecutionMsgReceived";

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(Mutex::default);

fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sends through the peer threads.
struct PeerTransport;

impl Transport for PeerTransport {
    fn send(&self, to: &str, function: &'static str, payload: Vec<u8>) {
        super::send_to(to, function, payload);
    }
}

/// Python records travel as `marshal` bytes, as in RedisGears (so the same values survive, and
/// what marshal refuses becomes an error record with marshal's message).
struct MarshalCodec;

/// `marshal.dumps` and `marshal.loads`, looked up once: they run once per shipped record.
static MARSHAL: PyOnceLock<(Py<PyAny>, Py<PyAny>)> = PyOnceLock::new();

fn marshal(py: Python<'_>) -> PyResult<&(Py<PyAny>, Py<PyAny>)> {
    MARSHAL.get_or_try_init(py, || {
        let module = py.import("marshal")?;
        Ok((
            module.getattr("dumps")?.unbind(),
            module.getattr("loads")?.unbind(),
        ))
    })
}

impl ObjectCodec for MarshalCodec {
    fn encode(&self, object: &dyn ObjectHandle, out: &mut Vec<u8>) -> Result<(), String> {
        let Some(obj) = object.as_any().downcast_ref::<PyObj>() else {
            return Err(String::new());
        };
        Python::attach(|py| {
            let dumped = marshal(py).and_then(|(dumps, _)| dumps.bind(py).call1((obj.0.bind(py),)));
            match dumped {
                Ok(bytes) => match bytes.cast::<PyBytes>() {
                    Ok(b) => {
                        out.extend_from_slice(b.as_bytes());
                        Ok(())
                    }
                    Err(_) => Err(String::new()),
                },
                Err(e) => Err(format_error(py, &e)),
            }
        })
    }

    fn decode(&self, bytes: &[u8]) -> Result<Record, String> {
        Python::attach(|py| {
            marshal(py)
                .and_then(|(_, loads)| loads.bind(py).call1((PyBytes::new(py, bytes),)))
                .map(crate::python::convert::object_record)
                .map_err(|e| format_error(py, &e))
        })
    }
}

/// The max idle time of executions starting now (ExecutionMaxIdleTime).
fn max_idle() -> Duration {
    Duration::from_millis(config::read().execution_max_idle_time.max(1) as u64)
}

/// This shard's part of distributed execution `id` started by `initiator`.
fn start_part(
    plan: Plan,
    reader: Box<dyn Reader>,
    session: Arc<Session>,
    future: Option<Py<PyAny>>,
    id: Option<String>,
    initiator: String,
) -> Result<Arc<ExecutionEntry>, String> {
    let topology =
        super::topology().ok_or("Cluster is not initialized, can not start executions.")?;
    let idle = max_idle();
    let initiating = id.is_none();
    runner::start_distributed(
        plan,
        reader,
        session,
        future,
        id,
        move |entry, wakeup| {
            let exchange = Arc::new(ClusterExchange::new(
                entry.id.clone(),
                initiator,
                topology,
                Arc::new(PeerTransport),
                Arc::new(MarshalCodec),
                wakeup,
                idle,
            ));
            if initiating {
                // Before it can end: dropping it then drops the other parts.
                let counted = exchange.clone();
                entry.set_distributed_initiator(Arc::new(move || counted.shard_counts()));
            }
            registry().insert(exchange.clone());
            exchange
        },
        Box::new(|entry| registry().remove(&entry.id)),
    )
}

/// An `async` `run()` in cluster mode: this shard's part, started, and the saved run sent to
/// every other shard. With `future` (a run from inside a step or coroutine) the results go to it.
pub fn start(
    plan: Plan,
    reader: Box<dyn Reader>,
    session: Arc<Session>,
    future: Option<Py<PyAny>>,
    saved: Vec<u8>,
) -> Result<Arc<ExecutionEntry>, String> {
    let me = super::topology()
        .map(|t| t.my_id.clone())
        .ok_or("Cluster is not initialized, can not start executions.")?;
    let requirements: Vec<_> = session
        .requirements()
        .into_iter()
        .filter(|r| r.is_downloaded())
        .collect();
    let entry = start_part(plan, reader, session, future, None, me)?;
    let names: Vec<&str> = requirements.iter().map(|r| r.name.as_str()).collect();
    let payload = ReceivedRun::encode(&entry.id, &names, &saved);
    if requirements.is_empty() {
        super::broadcast(RUN_RECEIVED, &payload);
    } else {
        // Its session's wheels first, in order with the run, from the thread that sends them.
        super::registrations::broadcast_run(payload, requirements);
    }
    Ok(entry)
}

pub use formats::messages::ReceivedRun;

/// `ExecutionPlan_OnReceived`: this shard's part of another shard's run, made from its saved
/// form on an execution thread (unpickling is not for the main thread). A shard that cannot
/// make it ends the execution everywhere, with the reason.
/// A run that needs requirements waits for their wheels, which came before it, on the thread
/// that installs them.
fn run_received(ctx: &Context, sender: &str, function: &str, payload: &[u8]) {
    match ReceivedRun::decode(payload).map_err(|e| e.to_string()) {
        Ok(run) if run.requirements.is_empty() => start_received(run, sender),
        Ok(_) => super::registrations::received(ctx, sender, function, payload),
        Err(e) => log("warning", &format!("a run from shard {sender}: {e}")),
    }
}

/// Makes and starts this shard's part of `run`, from `initiator`.
pub fn start_received(run: ReceivedRun, initiator: &str) {
    let ReceivedRun { id, saved, .. } = run;
    let initiator = initiator.to_string();
    let queued = threads::run_execution(move || {
        crate::python::context::register_gears_thread();
        let restored = Python::attach(|py| {
            crate::python::native::restore_run(py, &saved).map_err(|e| format_error(py, &e))
        });
        let started = restored.and_then(|(plan, reader)| {
            start_part(
                plan,
                reader,
                Session::new(None, None),
                None,
                Some(id.clone()),
                initiator.clone(),
            )
        });
        if let Err(e) = started {
            fail_unstarted(&id, &initiator, &e);
        }
    });
    if !queued {
        log("warning", "a run from another shard could not be queued");
    }
}

/// Ends execution `id`, which this shard could not start, on every shard.
pub fn fail_unstarted(id: &str, initiator: &str, error: &str) {
    let me = super::topology()
        .map(|t| t.my_id.clone())
        .unwrap_or_default();
    let error = format!("shard {me} could not run the execution: {error}");
    log(
        "warning",
        &format!("execution {id} (from {initiator}): {error}"),
    );
    let payload = exchange::encode_message(id, &Message::Failed { error });
    super::broadcast(exchange::EXECUTION_FAILED, &payload);
}

/// An exchange message (records, done, ended, failed) for the execution it names.
fn exchange_message(_ctx: &Context, sender: &str, function: &str, payload: &[u8]) {
    match exchange::decode_message(function, payload) {
        Some(Ok((id, message))) => registry().deliver(&id, sender, message),
        Some(Err(e)) => log(
            "warning",
            &format!("a broken {function} message from shard {sender}: {e}"),
        ),
        None => {}
    }
}

/// `RG_OnDropExecutionMsgReceived`: the initiator dropped the execution.
fn dropped(_ctx: &Context, _sender: &str, _function: &str, payload: &[u8]) {
    let id = String::from_utf8_lossy(payload);
    if let Some(entry) = executions::get(&id) {
        if !entry.status().is_finished() {
            entry.request_abort();
        }
        executions::remove(&id);
    }
}

/// The initiator drops a distributed execution: so do the other shards.
pub fn drop_everywhere(id: &str) {
    super::broadcast(DROPPED, id.as_bytes());
}

/// An abort of a distributed execution reaches its parts on the other shards.
pub fn abort_everywhere(id: &str) {
    if let Some(exchange) = registry().get(id) {
        exchange.fail_everywhere("Execution was aborted");
    }
}

/// Receives `function`'s messages, if it is one of the distributed execution protocol.
pub fn handler(function: &str) -> Option<super::Handler> {
    Some(match function {
        RUN_RECEIVED => run_received,
        DROPPED => dropped,
        exchange::COLLECT_RECORDS
        | exchange::COLLECT_DONE
        | exchange::REPARTITION_RECORDS
        | exchange::REPARTITION_DONE
        | exchange::EXECUTION_ENDED
        | exchange::EXECUTION_FAILED => exchange_message,
        _ => return None,
    })
}

/// On the cron: executions waiting past their max idle time end; records for executions that
/// never came here are forgotten.
pub fn sweep() {
    let forget_after = max_idle().max(Duration::from_secs(60));
    registry().sweep(Instant::now(), forget_after);
}
