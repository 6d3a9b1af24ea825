//! Registrations: plans that run when their trigger fires, their statistics, and the table of
//! them in registration order.

use std::collections::VecDeque;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use dataflow::pool::SerialQueue;
use dataflow::{Plan, Status};

use crate::executions::{self, ExecutionEntry};
use crate::reply::Reply;
use crate::sessions::Session;
use crate::streams::{Consumer, StreamTrigger};

/// Where and when a registration's executions run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Inline, inside the command that caused the event.
    Sync,
    /// On the execution threads, over the cluster.
    Async,
    /// On the execution threads, this shard only.
    AsyncLocal,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "sync" => Some(Mode::Sync),
            "async" => Some(Mode::Async),
            "async_local" => Some(Mode::AsyncLocal),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Sync => "sync",
            Mode::Async => "async",
            Mode::AsyncLocal => "async_local",
        }
    }
}

/// The key types `keyTypes` accepts.
pub const KEY_TYPES: [&str; 8] = [
    "empty", "string", "list", "hash", "set", "zset", "module", "stream",
];

/// What fires a registration.
#[derive(Debug, Clone)]
pub enum Trigger {
    /// KeysReader: keyspace notifications.
    Keys(KeysTrigger),
    /// CommandReader: `RG.TRIGGER <name>`.
    Command(CommandTrigger),
    /// StreamReader: entries added to streams.
    Stream(StreamTrigger),
}

impl Trigger {
    pub fn reader(&self) -> &'static str {
        match self {
            Trigger::Keys(_) => "KeysReader",
            Trigger::Command(_) => "CommandReader",
            Trigger::Stream(_) => "StreamReader",
        }
    }
}

/// What fires a CommandReader trigger registration.
#[derive(Debug, Clone)]
pub struct CommandTrigger {
    /// The name given to RG.TRIGGER (case-sensitive, unique per shard), or for a hook the
    /// hooked command's name, lower-cased.
    pub name: String,
    /// Executions run one after another in call order (else each in parallel).
    pub inorder: bool,
    /// Set for `hook=` registrations.
    pub hook: Option<Hook>,
}

/// Which calls of a hooked command a hook takes: those with a key starting with `keyprefix`
/// (all calls without one).
#[derive(Debug, Clone)]
pub struct Hook {
    pub keyprefix: Option<String>,
    pub keys: KeySpec,
}

/// Where a command's keys are, as COMMAND INFO gives it: the first and last key argument (a
/// negative last counts from the end) and the step between keys.
#[derive(Debug, Clone, Copy)]
pub struct KeySpec {
    pub first: i64,
    pub last: i64,
    pub step: i64,
}

impl KeySpec {
    /// The positions (1-based, the command name being 0) of the keys in a call of `argc`
    /// arguments, command name included. A command without key (first < 1) has none.
    pub fn positions(self, argc: usize) -> impl Iterator<Item = usize> {
        let argc = argc as i64;
        let last = if self.last < 0 {
            argc + self.last
        } else {
            self.last
        };
        // No key at all when the command declares none: an empty range.
        let end = if self.first >= 1 {
            last.min(argc - 1)
        } else {
            0
        };
        (self.first.max(1)..=end)
            .step_by(self.step.max(1) as usize)
            .map(|i| i as usize)
    }
}

/// A command listed in `commands=`, with its key positions.
#[derive(Debug, Clone)]
pub struct CommandKeys {
    /// Lower-cased.
    pub name: String,
    pub keys: KeySpec,
}

impl CommandKeys {
    /// The key arguments of a call (`args` excludes the command name).
    pub fn key_args<'a>(&self, args: &'a [Vec<u8>]) -> Vec<&'a [u8]> {
        self.keys
            .positions(args.len() + 1)
            .map(|i| args[i - 1].as_slice())
            .collect()
    }
}

/// What fires a KeysReader registration.
#[derive(Debug, Clone)]
pub struct KeysTrigger {
    pub prefix: Vec<u8>,
    /// Event names, lower-cased; `None` is every event.
    pub event_types: Option<Vec<String>>,
    /// Key type names; `None` is every type.
    pub key_types: Option<Vec<String>>,
    pub read_value: bool,
    /// `commands=`: fire only for events raised while one of these client commands runs.
    pub commands: Option<Vec<CommandKeys>>,
}

impl KeysTrigger {
    pub fn command_names(&self) -> Option<Vec<String>> {
        self.commands
            .as_ref()
            .map(|c| c.iter().map(|k| k.name.clone()).collect())
    }
}

#[derive(Debug, Default, Clone)]
struct Stats {
    triggered: i64,
    success: i64,
    failures: i64,
    aborted: i64,
    last_run: Duration,
    total_run: Duration,
    last_error: Option<String>,
    /// StreamReader: from the first entry of the last batch being added to that batch's end.
    last_lag_ms: u64,
    total_lag_ms: u64,
}

impl Stats {
    fn total_run_ms(&self) -> i64 {
        self.total_run.as_millis() as i64
    }

    /// `avgRunDurationMS`: the truncated total over finished runs, 0 before any.
    fn avg_run_ms(&self) -> f64 {
        self.per_run(self.total_run_ms() as f64)
    }

    fn avg_lag_ms(&self) -> f64 {
        self.per_run(self.total_lag_ms as f64)
    }

    /// `total` over the finished runs, 0 before any.
    fn per_run(&self, total: f64) -> f64 {
        let runs = self.success + self.failures + self.aborted;
        if runs == 0 {
            0.0
        } else {
            total / runs as f64
        }
    }
}

pub struct Registration {
    pub id: String,
    pub desc: Option<String>,
    pub plan: Plan,
    pub mode: Mode,
    pub trigger: Trigger,
    pub session: Arc<Session>,
    /// The plan's steps as its executions list them, computed once.
    pub steps: Arc<[executions::StepInfo]>,
    /// Every step takes records one by one: a sync execution of one record needs no engine.
    pub record_wise: bool,
    /// Non-sync executions run one after another, in trigger order.
    pub queue: Arc<SerialQueue>,
    stats: Mutex<Stats>,
    /// Finished local executions kept for inspection, oldest first.
    done: Mutex<VecDeque<String>>,
    /// Executions queued or running, for UNREGISTER ... ABORTPENDING.
    pending: Mutex<Vec<Arc<ExecutionEntry>>>,
    /// StreamReader: the streams it consumes and its status.
    pub consumer: Option<Arc<Consumer>>,
    /// Its saved form, written to the RDB as it is (no Python in a forked child).
    pub saved: Arc<[u8]>,
    /// `register(onUnregistered=...)`: called when this shard unregisters it.
    on_unregistered: Option<pyo3::Py<pyo3::PyAny>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Registration {
    pub fn new(
        id: String,
        plan: Plan,
        mode: Mode,
        trigger: Trigger,
        session: Arc<Session>,
        saved: Arc<[u8]>,
        on_unregistered: Option<pyo3::Py<pyo3::PyAny>>,
    ) -> Registration {
        Registration {
            id,
            desc: plan.desc.clone(),
            steps: executions::step_infos(&plan),
            record_wise: dataflow::record_wise::is_record_wise(&plan),
            plan,
            mode,
            session,
            queue: SerialQueue::new(),
            stats: Mutex::new(Stats::default()),
            done: Mutex::new(VecDeque::new()),
            pending: Mutex::new(Vec::new()),
            consumer: matches!(trigger, Trigger::Stream(_)).then(Arc::default),
            trigger,
            saved,
            on_unregistered,
        }
    }

    /// The estimated lag of a stream batch that just ended.
    pub fn record_lag(&self, lag_ms: u64) {
        let mut stats = lock(&self.stats);
        stats.last_lag_ms = lag_ms;
        stats.total_lag_ms += lag_ms;
    }

    pub fn triggered(&self) {
        lock(&self.stats).triggered += 1;
    }

    /// An execution could not even be started.
    pub fn start_failed(&self) {
        lock(&self.stats).aborted += 1;
    }

    pub fn started(&self, entry: &Arc<ExecutionEntry>) {
        lock(&self.pending).push(entry.clone());
    }

    /// Counts a finished execution and keeps it listed, up to MaxExecutionsPerRegistration.
    pub fn finished(&self, entry: &ExecutionEntry, status: Status, first_error: Option<&str>) {
        lock(&self.pending).retain(|e| e.id != entry.id);
        {
            let mut stats = lock(&self.stats);
            let run = entry.total_duration();
            stats.last_run = run;
            stats.total_run += run;
            match (status, first_error) {
                (Status::Aborted, _) => stats.aborted += 1,
                (_, Some(e)) => {
                    stats.failures += 1;
                    stats.last_error = Some(e.to_string());
                }
                _ => stats.success += 1,
            }
        }
        // Only KeysReader and StreamReader executions stay listed: a trigger's execution is
        // dropped once it replied.
        if matches!(self.trigger, Trigger::Command(_)) {
            return;
        }
        let limit = crate::config::read().max_executions_per_registration;
        let mut done = lock(&self.done);
        done.push_back(entry.id.clone());
        if limit > 0 {
            while done.len() as i64 > limit {
                if let Some(old) = done.pop_front() {
                    executions::remove(&old);
                }
            }
        }
    }

    /// Aborts the executions still queued or running (UNREGISTER ... ABORTPENDING).
    pub fn abort_pending(&self) {
        for entry in lock(&self.pending).drain(..) {
            entry.request_abort();
        }
    }

    /// RG.CLEARREGISTRATIONSSTATS: counters of finished executions go back to zero; triggers
    /// still pending stay counted.
    pub fn clear_stats(&self) {
        let mut stats = lock(&self.stats);
        stats.triggered -= stats.success + stats.failures + stats.aborted;
        stats.success = 0;
        stats.failures = 0;
        stats.aborted = 0;
        stats.last_run = Duration::ZERO;
        stats.total_run = Duration::ZERO;
        stats.last_error = None;
        stats.last_lag_ms = 0;
        stats.total_lag_ms = 0;
    }

    fn names(list: &Option<Vec<String>>) -> Reply {
        match list {
            Some(items) => Reply::Array(items.iter().map(|s| Reply::bulk(s.as_str())).collect()),
            None => Reply::Null,
        }
    }

    /// `RegistrationData` of RG.DUMPREGISTRATIONS (KeysReader and CommandReader: 20 elements,
    /// StreamReader: 26).
    pub fn data(&self) -> Reply {
        let stats = lock(&self.stats).clone();
        let (total_ms, avg) = (stats.total_run_ms(), stats.avg_run_ms());
        let mut data = vec![
            Reply::bulk("mode"),
            Reply::bulk(self.mode.name()),
            Reply::bulk("numTriggered"),
            Reply::Integer(stats.triggered),
            Reply::bulk("numSuccess"),
            Reply::Integer(stats.success),
            Reply::bulk("numFailures"),
            Reply::Integer(stats.failures),
            Reply::bulk("numAborted"),
            Reply::Integer(stats.aborted),
            Reply::bulk("lastRunDurationMS"),
            Reply::Integer(stats.last_run.as_millis() as i64),
            Reply::bulk("totalRunDurationMS"),
            Reply::Integer(total_ms),
            Reply::bulk("avgRunDurationMS"),
            Reply::Double(avg),
        ];
        if self.consumer.is_some() {
            data.extend([
                Reply::bulk("lastEstimatedLagMS"),
                Reply::Integer(stats.last_lag_ms as i64),
                Reply::bulk("avgEstimatedLagMS"),
                Reply::Double(stats.avg_lag_ms()),
            ]);
        }
        data.extend([
            Reply::bulk("lastError"),
            stats.last_error.as_deref().map_or(Reply::Null, Reply::bulk),
            Reply::bulk("args"),
            self.args(),
        ]);
        if let Some(consumer) = &self.consumer {
            data.extend([Reply::bulk("status"), Reply::bulk(consumer.status().name())]);
        }
        Reply::Array(data)
    }

    /// The reader-specific `args` of RegistrationData.
    fn args(&self) -> Reply {
        match &self.trigger {
            Trigger::Keys(keys) => Reply::Array(vec![
                Reply::bulk("regex"),
                Reply::Bulk(keys.prefix.clone()),
                Reply::bulk("eventTypes"),
                Self::names(&keys.event_types),
                Reply::bulk("keyTypes"),
                Self::names(&keys.key_types),
                Reply::bulk("hookCommands"),
                Self::names(&keys.command_names()),
            ]),
            Trigger::Command(command) => Reply::Array(vec![
                Reply::bulk("trigger"),
                Reply::bulk(command.name.as_str()),
                Reply::bulk("inorder"),
                Reply::Integer(command.inorder as i64),
            ]),
            Trigger::Stream(stream) => Reply::Array(vec![
                Reply::bulk("batchSize"),
                Reply::Integer(stream.rule.batch as i64),
                Reply::bulk("durationMS"),
                Reply::Integer(stream.rule.duration.as_millis() as i64),
                Reply::bulk("stream"),
                Reply::Bulk(stream.prefix.clone()),
                Reply::bulk("trimStream"),
                Reply::Integer(stream.trim as i64),
                Reply::bulk("onFailedPolicy"),
                Reply::bulk(stream.policy().name()),
                Reply::bulk("retryInterval"),
                Reply::Integer(stream.retry_interval_secs as i64),
            ]),
        }
    }

    /// The entry of RG.DUMPREGISTRATIONS (12 elements).
    pub fn dump(&self) -> Reply {
        Reply::Array(vec![
            Reply::bulk("id"),
            Reply::bulk(self.id.as_str()),
            Reply::bulk("reader"),
            Reply::bulk(self.trigger.reader()),
            Reply::bulk("desc"),
            self.desc.as_deref().map_or(Reply::Null, Reply::bulk),
            Reply::bulk("RegistrationData"),
            self.data(),
            Reply::bulk("PD"),
            Reply::bulk(self.session.printable()),
            Reply::bulk("ExecutionThreadPool"),
            Reply::bulk("DefaultPool"),
        ])
    }

    /// The fields of the registration in INFO's `regisrations` section, as (name, value).
    pub fn info_fields(&self) -> Vec<(String, String)> {
        let stats = lock(&self.stats).clone();
        let (total_ms, avg) = (stats.total_run_ms(), stats.avg_run_ms());
        let list = |l: &Option<Vec<String>>| match l {
            Some(items) => format!("[{}]", items.join("|")),
            None => "None".to_string(),
        };
        let mut fields: Vec<(String, String)> = vec![
            (
                "desc".into(),
                self.desc.clone().unwrap_or_else(|| "None".into()),
            ),
            ("reader".into(), self.trigger.reader().into()),
            ("mode".into(), self.mode.name().into()),
            ("numTriggered".into(), stats.triggered.to_string()),
            ("numSuccess".into(), stats.success.to_string()),
            ("numFailures".into(), stats.failures.to_string()),
            ("numAborted".into(), stats.aborted.to_string()),
            (
                "lastRunDurationMS".into(),
                stats.last_run.as_millis().to_string(),
            ),
            ("totalRunDurationMS".into(), total_ms.to_string()),
            ("avgRunDurationMS".into(), format!("{avg}")),
            (
                "lastError".into(),
                stats.last_error.clone().unwrap_or_else(|| "None".into()),
            ),
        ];
        match &self.trigger {
            Trigger::Keys(keys) => fields.extend([
                (
                    "regex".into(),
                    String::from_utf8_lossy(&keys.prefix).into_owned(),
                ),
                ("eventTypes".into(), list(&keys.event_types)),
                ("keyTypes".into(), list(&keys.key_types)),
                ("hookCommands".into(), list(&keys.command_names())),
            ]),
            Trigger::Command(command) => fields.extend([
                ("trigger".into(), command.name.clone()),
                ("inorder".into(), (command.inorder as i64).to_string()),
            ]),
            Trigger::Stream(stream) => fields.extend([
                ("batchSize".into(), stream.rule.batch.to_string()),
                (
                    "durationMS".into(),
                    stream.rule.duration.as_millis().to_string(),
                ),
                (
                    "stream".into(),
                    String::from_utf8_lossy(&stream.prefix).into_owned(),
                ),
                (
                    "status".into(),
                    self.consumer
                        .as_ref()
                        .map_or("OK", |c| c.status().name())
                        .into(),
                ),
                ("trimStream".into(), (stream.trim as i64).to_string()),
                ("onFailedPolicy".into(), stream.policy().name().into()),
                (
                    "retryInterval".into(),
                    stream.retry_interval_secs.to_string(),
                ),
                ("lastEstimatedLagMS".into(), stats.last_lag_ms.to_string()),
                (
                    "avgEstimatedLagMS".into(),
                    format!("{}", stats.avg_lag_ms()),
                ),
            ]),
        }
        fields.push(("PD".into(), self.session.printable().replace(',', "|")));
        fields
    }
}

/// The table, replaced whole on every change so readers (every keyspace event) only clone an
/// `Arc` and never hold a lock while executions run.
static TABLE: LazyLock<RwLock<Arc<Vec<Arc<Registration>>>>> =
    LazyLock::new(|| RwLock::new(Arc::new(Vec::new())));

/// Every registration, in registration order.
pub fn all() -> Arc<Vec<Arc<Registration>>> {
    TABLE.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Adds registrations at the end, with one copy of the table however many they are.
fn insert_all(registrations: Vec<Arc<Registration>>) {
    if registrations.is_empty() {
        return;
    }
    let mut table = TABLE.write().unwrap_or_else(|e| e.into_inner());
    let mut next = Vec::with_capacity(table.len() + registrations.len());
    next.extend(table.iter().cloned());
    next.extend(registrations);
    *table = Arc::new(next);
    drop(table);
    crate::hooks::refresh();
}

/// Empties the table (a load starts): every registration stops and leaves its session.
pub fn clear() -> Vec<Arc<Registration>> {
    let mut table = TABLE.write().unwrap_or_else(|e| e.into_inner());
    let removed = std::mem::take(&mut *table);
    drop(table);
    crate::hooks::refresh();
    for registration in removed.iter() {
        if let Some(consumer) = &registration.consumer {
            consumer.stop();
        }
        registration.session.clear_registrations();
    }
    removed.to_vec()
}

/// The trigger registration named `name` (case-sensitive).
pub fn by_trigger(name: &str) -> Option<Arc<Registration>> {
    all()
        .iter()
        .find(|r| matches!(&r.trigger, Trigger::Command(c) if c.hook.is_none() && c.name == name))
        .cloned()
}

pub fn get(id: &str) -> Option<Arc<Registration>> {
    all().iter().find(|r| r.id == id).cloned()
}

/// Removes a registration; None if there was none with that id.
pub fn remove(id: &str) -> Option<Arc<Registration>> {
    let mut table = TABLE.write().unwrap_or_else(|e| e.into_inner());
    let position = table.iter().position(|r| r.id == id)?;
    let mut next = (**table).clone();
    let removed = next.remove(position);
    *table = Arc::new(next);
    drop(table);
    if let Some(consumer) = &removed.consumer {
        consumer.stop();
    }
    crate::hooks::refresh();
    if let Some(callback) = &removed.on_unregistered {
        lifecycle_callback(callback, &removed.session, "RedisGearsPy_OnUnregistered");
    }
    Some(removed)
}

/// A registration made by `register()`, not yet in the table (a script's registrations are
/// applied only once the whole script succeeded).
pub struct PendingRegistration {
    pub id: String,
    pub plan: Plan,
    pub mode: Mode,
    pub trigger: Trigger,
    pub on_registered: Option<pyo3::Py<pyo3::PyAny>>,
    pub on_unregistered: Option<pyo3::Py<pyo3::PyAny>>,
    /// What makes it again after a restart, on replicas and from the AOF (cloudpickled).
    pub saved: Arc<[u8]>,
}

/// Puts a registration in the table under `session`, then runs its `onRegistered` callback;
/// that callback's errors are only logged, as RedisGears does.
pub fn apply(pending: PendingRegistration, session: &Arc<Session>) {
    apply_all(vec![pending], session);
}

/// [`apply`] for registrations applied together (a script's, a load's): all enter the table at
/// once, then their `onRegistered` callbacks run in order.
pub fn apply_all(pending: Vec<PendingRegistration>, session: &Arc<Session>) {
    let mut made = Vec::with_capacity(pending.len());
    let mut callbacks = Vec::with_capacity(pending.len());
    for p in pending {
        let registration = Arc::new(Registration::new(
            p.id,
            p.plan,
            p.mode,
            p.trigger,
            session.clone(),
            p.saved,
            p.on_unregistered,
        ));
        session.add_registration(&registration.id);
        callbacks.push((registration.clone(), p.on_registered));
        made.push(registration);
    }
    // A session that registers is live (one that only ran an execution was not, until now).
    if !session.is_dead() && crate::sessions::live(&session.id).is_none() {
        crate::sessions::link(session);
    }
    insert_all(made);
    for (registration, callback) in callbacks {
        if registration.consumer.is_some() {
            crate::streams::track_existing(&registration);
        }
        if let Some(callback) = callback {
            lifecycle_callback(&callback, session, "RedisGearsPy_OnRegistered");
        }
    }
}

/// Runs an `onRegistered` or `onUnregistered` callback (`what` names it in the log); its errors
/// are only logged, as RedisGears does.
fn lifecycle_callback(callback: &pyo3::Py<pyo3::PyAny>, session: &Arc<Session>, what: &str) {
    use pyo3::prelude::*;
    Python::attach(|py| {
        let called = crate::python::context::with_session(session, || {
            crate::python::callbacks::profiled(py, || callback.bind(py).call0())
        });
        let failure = match called {
            Err(e) => Some(crate::python::errors::format_error(py, &e)),
            Ok(out) if out.hasattr("__await__").unwrap_or(false) => {
                Some("Coroutines are not allow".to_string())
            }
            Ok(_) => None,
        };
        if let Some(error) = failure {
            crate::redis_calls::log(
                "warning",
                &format!("Error occured on {what}, error='{error}'"),
            );
        }
    });
}
