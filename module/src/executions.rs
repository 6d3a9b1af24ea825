//! The process-wide executions table: what RG.GETRESULTS, RG.DUMPEXECUTIONS and the blocked
//! RG.PYEXECUTE client see of an execution running on the worker threads.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::Duration;

use dataflow::{Plan, Progress, Status};

use crate::reply::Reply;

/// What a finished execution produced, already in reply form (converted on the worker, under
/// the GIL, so that replying needs no Python).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub results: Vec<Reply>,
    pub errors: Vec<String>,
}

impl Outcome {
    /// `[[results...], [errors...]]`, errors as bulk strings.
    pub fn reply(&self) -> Reply {
        Reply::Array(vec![
            Reply::Array(self.results.clone()),
            Reply::Array(
                self.errors
                    .iter()
                    .map(|e| Reply::bulk(e.as_str()))
                    .collect(),
            ),
        ])
    }
}

type Waiter = Box<dyn FnOnce(&Outcome) + Send>;

struct EntryState {
    status: Status,
    outcome: Option<Arc<Outcome>>,
    waiters: Vec<Waiter>,
    total_duration: Duration,
}

/// A step as RG.GETEXECUTION lists it.
#[derive(Debug, Clone)]
pub struct StepInfo {
    pub step_type: &'static str,
    pub name: String,
    pub arg: String,
}

/// One execution as the commands see it.
pub struct ExecutionEntry {
    pub id: String,
    /// The plan's steps in the order they were added (shared by a registration's executions).
    pub steps: Arc<[StepInfo]>,
    /// Creation order in the table.
    seq: u64,
    pub progress: Arc<Progress>,
    /// True for executions a registration triggered.
    pub registered: bool,
    abort: Arc<AtomicBool>,
    /// Resumes the execution while it waits for async records (so that an abort reaches it).
    wakeup: Arc<dataflow::Wakeup>,
    /// The Python thread ident of the worker running this execution, 0 when none; only read or
    /// written with `state` locked.
    python_thread: AtomicU64,
    /// Set on a distributed execution's initiator (dropping it drops the other shards' parts):
    /// how many other shards have their part and how many ended it (RG.GETEXECUTION's
    /// `shards_received` and `shards_completed`).
    shard_counts: std::sync::OnceLock<Arc<dyn Fn() -> (usize, usize) + Send + Sync>>,
    state: Mutex<EntryState>,
}

impl ExecutionEntry {
    fn lock(&self) -> MutexGuard<'_, EntryState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn status(&self) -> Status {
        self.lock().status
    }

    pub fn outcome(&self) -> Option<Arc<Outcome>> {
        self.lock().outcome.clone()
    }

    /// Marks the execution running on the calling worker, whose Python thread ident is
    /// `python_thread` (at its start, or when it resumes after waiting for async records); false
    /// if it already ended (aborted before it started: it must not run).
    pub fn start_running(&self, python_thread: u64) -> bool {
        let mut state = self.lock();
        if state.status.is_finished() {
            return false;
        }
        state.status = Status::Running;
        self.python_thread.store(python_thread, Ordering::SeqCst);
        true
    }

    /// The worker is leaving the execution: no abort may target its thread any more.
    pub fn stop_running(&self) {
        let _state = self.lock();
        self.python_thread.store(0, Ordering::SeqCst);
    }

    /// Runs `f` with the ident of the Python thread running the execution (0 if none), while
    /// that thread cannot leave the execution.
    pub fn with_python_thread<R>(&self, f: impl FnOnce(u64) -> R) -> R {
        let _state = self.lock();
        f(self.python_thread.load(Ordering::SeqCst))
    }

    /// Marks this shard as the initiator of a distributed execution; `counts` says how many
    /// other shards have their part and how many ended it.
    pub fn set_distributed_initiator(&self, counts: Arc<dyn Fn() -> (usize, usize) + Send + Sync>) {
        let _ = self.shard_counts.set(counts);
    }

    /// (shards_received, shards_completed): 0 and 0 except on a distributed execution's
    /// initiator.
    pub fn shard_counts(&self) -> (usize, usize) {
        self.shard_counts.get().map_or((0, 0), |counts| counts())
    }

    pub fn is_distributed_initiator(&self) -> bool {
        self.shard_counts.get().is_some()
    }

    pub fn total_duration(&self) -> Duration {
        self.lock().total_duration
    }

    /// Asks the execution to stop at its next record.
    pub fn request_abort(&self) {
        self.abort.store(true, Ordering::SeqCst);
        // One waiting for async records stops now rather than when they complete.
        self.wakeup.wake();
    }

    /// Records the end of the execution and runs whoever waited for it. An execution ends
    /// once: a later call (a worker finishing one that an abort already ended) changes nothing.
    pub fn finish(&self, status: Status, outcome: Outcome, total_duration: Duration) {
        let outcome = Arc::new(outcome);
        let waiters = {
            let mut state = self.lock();
            if state.outcome.is_some() {
                return;
            }
            state.status = status;
            state.total_duration = total_duration;
            state.outcome = Some(outcome.clone());
            std::mem::take(&mut state.waiters)
        };
        for waiter in waiters {
            waiter(&outcome);
        }
    }

    /// Runs `waiter` once the execution finished: now if it already has.
    pub fn when_done(&self, waiter: impl FnOnce(&Outcome) + Send + 'static) {
        let done = {
            let mut state = self.lock();
            match &state.outcome {
                Some(outcome) => Some(outcome.clone()),
                None => {
                    state.waiters.push(Box::new(waiter));
                    return;
                }
            }
        };
        if let Some(outcome) = done {
            waiter(&outcome);
        }
    }
}

/// Every registration event creates one execution and evicts another, so the table's two
/// indexes are kept cheap: ids hashed with Fx (they are ours, not an attacker's choice of
/// collisions: `<shard id>-<counter>`), the order holding the entries themselves.
#[derive(Default)]
struct Table {
    by_id: HashMap<String, Arc<ExecutionEntry>, rustc_hash::FxBuildHasher>,
    /// Creation order, oldest first, for MaxExecutions eviction; removal is O(log n), which
    /// matters because every registration-triggered execution evicts an older one.
    order: BTreeMap<u64, Arc<ExecutionEntry>>,
    next_seq: u64,
}

static TABLE: LazyLock<Mutex<Table>> = LazyLock::new(Mutex::default);

fn table() -> MutexGuard<'static, Table> {
    TABLE.lock().unwrap_or_else(|e| e.into_inner())
}

/// The steps of `plan` as RG.GETEXECUTION lists them.
pub fn step_infos(plan: &Plan) -> Arc<[StepInfo]> {
    plan.steps
        .iter()
        .map(|s| StepInfo {
            step_type: s.step_type.name(),
            name: s.name.clone(),
            arg: s.arg.clone(),
        })
        .collect()
}

/// Creates and lists a new execution with the plan steps `steps`, evicting the oldest one when
/// the table holds `max_executions` (> 0) entries: a running evicted execution keeps running,
/// unlisted.
pub fn create(
    id: String,
    steps: Arc<[StepInfo]>,
    execution: &dataflow::Execution,
    max_executions: i64,
    registered: bool,
) -> Arc<ExecutionEntry> {
    let parts = EntryParts {
        progress: execution.progress(),
        abort: execution.abort_handle(),
        wakeup: execution.wakeup(),
    };
    create_from(id, steps, parts, max_executions, registered)
}

/// What an entry shares with the run it lists.
pub struct EntryParts {
    pub progress: Arc<Progress>,
    pub abort: Arc<AtomicBool>,
    pub wakeup: Arc<dataflow::Wakeup>,
}

/// [`create`] for a run that is not an [`dataflow::Execution`] (one record of a record-wise
/// plan).
pub fn create_from(
    id: String,
    steps: Arc<[StepInfo]>,
    parts: EntryParts,
    max_executions: i64,
    registered: bool,
) -> Arc<ExecutionEntry> {
    let mut table = table();
    let seq = table.next_seq;
    table.next_seq += 1;
    let entry = Arc::new(ExecutionEntry {
        id: id.clone(),
        steps,
        seq,
        progress: parts.progress,
        registered,
        abort: parts.abort,
        wakeup: parts.wakeup,
        python_thread: AtomicU64::new(0),
        shard_counts: std::sync::OnceLock::new(),
        state: Mutex::new(EntryState {
            status: Status::Created,
            outcome: None,
            waiters: Vec::new(),
            total_duration: Duration::ZERO,
        }),
    });
    if max_executions > 0 {
        while table.order.len() as i64 >= max_executions {
            match table.order.pop_first() {
                Some((_, old)) => {
                    table.by_id.remove(&old.id);
                }
                None => break,
            }
        }
    }
    table.order.insert(seq, entry.clone());
    table.by_id.insert(id, entry.clone());
    entry
}

pub fn get(id: &str) -> Option<Arc<ExecutionEntry>> {
    table().by_id.get(id).cloned()
}

pub fn remove(id: &str) {
    let removed = {
        let mut table = table();
        let removed = table.by_id.remove(id);
        if let Some(entry) = &removed {
            table.order.remove(&entry.seq);
        }
        removed
    };
    if removed.is_some_and(|e| e.is_distributed_initiator()) {
        crate::shards::executions::drop_everywhere(id);
    }
}

/// Drops every listed execution (a load starts), asking those still running to stop.
pub fn remove_all() {
    let entries: Vec<Arc<ExecutionEntry>> = {
        let mut table = table();
        table.order.clear();
        table.by_id.drain().map(|(_, entry)| entry).collect()
    };
    for entry in entries {
        entry.request_abort();
    }
}

/// Every listed execution, oldest first.
pub fn all() -> Vec<Arc<ExecutionEntry>> {
    table().order.values().cloned().collect()
}

pub fn count() -> usize {
    table().by_id.len()
}

/// The number of listed executions, unless the table is locked right now.
pub fn try_count() -> Option<usize> {
    TABLE.try_lock().ok().map(|t| t.by_id.len())
}
