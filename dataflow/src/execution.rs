//! An execution: a plan's steps with their running state, the records they produced and the
//! errors they hit.
//!
//! Records are pulled from the last step back to the reader, one at a time, as in RedisGears:
//! blocking steps (accumulate, groups) consume their whole input before they emit, a `limit`
//! stops pulling once its window is full, and the reader stops as soon as one error reached the
//! end of the pipeline. Each step keeps its state here rather than on the stack, so when the
//! reader's current chunk runs dry the pull returns [`Pulled::Starved`] and picks up where it was
//! once the next chunk arrives.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::callbacks::CallbackScope;
use crate::exchange::{Exchange, ExchangeKind};
use crate::pending::{self, AsyncPolicy, AsyncRecord, InFlight, Wakeup};
use crate::plan::{Operation, Plan};
use crate::progress::Progress;
use crate::reader::Reader;
use crate::record::Record;

/// Where an execution is in its life, named as RG.DUMPEXECUTIONS shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Done,
    Aborted,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Done => "done",
            Status::Aborted => "aborted",
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(self, Status::Done | Status::Aborted)
    }
}

/// The text an execution gets when a key/value step receives a record without a key.
pub const NOT_A_KEY_VALUE_RECORD: &str = "can not extract value for a none key value record.";

enum Pulled {
    Record(Record),
    Eof,
    /// The reader's chunk is used up; pull again once more records were fed.
    Starved,
    /// Nothing can move until a record a step waits for is completed.
    Waiting,
}

/// The reader's side of the pull: the current chunk and whether more may come.
#[derive(Default)]
struct Input {
    chunk: VecDeque<Record>,
    reader_done: bool,
    /// Set once an error reached the end of the pipeline: the reader then reports end of data.
    stop: bool,
}

impl Input {
    /// Takes the reader's next chunk into the input. A reader cannot wait for its records.
    fn fill(&mut self, reader: &mut dyn Reader, policy: &AsyncPolicy) {
        let (chunk, _) = pending::invoke(policy, false, || reader.next_chunk());
        match chunk {
            Ok(Some(chunk)) => self.chunk.extend(chunk),
            Ok(None) => self.reader_done = true,
            Err(e) => {
                self.chunk.push_back(Record::Error(e));
                self.reader_done = true;
            }
        }
    }

    fn next(&mut self, reader: &mut dyn Reader, policy: &AsyncPolicy) -> Pulled {
        if self.stop {
            return Pulled::Eof;
        }
        if self.chunk.is_empty() && !self.reader_done && reader.pulls_inline() {
            self.fill(reader, policy);
        }
        match self.chunk.pop_front() {
            Some(r) => Pulled::Record(r),
            None if self.reader_done => Pulled::Eof,
            None => Pulled::Starved,
        }
    }

    fn wants_more(&self) -> bool {
        self.chunk.is_empty() && !self.reader_done && !self.stop
    }
}

/// Per-key accumulators in first-seen order.
#[derive(Default)]
struct Groups {
    index: HashMap<String, usize>,
    entries: Vec<(String, Option<Record>)>,
}

impl Groups {
    fn slot(&mut self, key: &str) -> &mut Option<Record> {
        let i = match self.index.get(key) {
            Some(&i) => i,
            None => {
                self.entries.push((key.to_string(), None));
                self.index.insert(key.to_string(), self.entries.len() - 1);
                self.entries.len() - 1
            }
        };
        &mut self.entries[i].1
    }
}

/// The running state of one step.
#[derive(Default)]
struct StepState {
    /// Records ready to emit, taken from the end.
    pending: Vec<Record>,
    acc: Option<Record>,
    groups: Groups,
    seen: usize,
    exhausted: bool,
    /// Records a map, filter or foreach waits for.
    in_flight: Vec<InFlight>,
    /// The one record an accumulator waits for, with its group's key for a per-key one.
    waiting: Option<(AsyncRecord, String)>,
    /// The upstream ended while records were still in flight.
    upstream_done: bool,
}

struct RunningStep {
    op: Operation,
    state: StepState,
}

pub struct Execution {
    status: Status,
    steps: Vec<RunningStep>,
    input: Input,
    results: Vec<Record>,
    errors: Vec<String>,
    abort: Arc<AtomicBool>,
    progress: Arc<Progress>,
    total_duration: Duration,
    policy: AsyncPolicy,
    /// The other shards running the same plan, for a distributed execution.
    exchange: Option<Arc<dyn Exchange>>,
    /// This shard's part ran to its end (a distributed execution may still wait for the others).
    local_done: bool,
}

/// The ways [`Execution::drain`] stops.
enum Drained {
    Ended,
    Starved,
    Waiting,
}

impl Execution {
    pub fn new(plan: &Plan) -> Execution {
        Execution::with_profiling(plan, false)
    }

    /// With `profiling`, the time of every step is measured (two clock reads per record and
    /// step), as RedisGears does with ProfileExecutions.
    pub fn with_profiling(plan: &Plan, profiling: bool) -> Execution {
        Execution {
            status: Status::Created,
            steps: plan
                .steps
                .iter()
                .map(|s| RunningStep {
                    op: s.op.clone(),
                    state: StepState::default(),
                })
                .collect(),
            input: Input::default(),
            results: Vec::new(),
            errors: Vec::new(),
            abort: Arc::new(AtomicBool::new(false)),
            progress: Arc::new(Progress::new(plan.steps.len(), profiling)),
            total_duration: Duration::ZERO,
            policy: AsyncPolicy {
                allowed: true,
                wakeup: Arc::new(Wakeup::default()),
            },
            exchange: None,
            local_done: false,
        }
    }

    /// Makes the execution distributed: its collect and repartition steps move records through
    /// `exchange`, and it ends once every shard's part ended. The exchange wakes
    /// [`Execution::wakeup`] when something arrives.
    pub fn set_exchange(&mut self, exchange: Arc<dyn Exchange>) {
        self.exchange = Some(exchange);
    }

    /// Whether steps may wait for records (false where no client can be blocked: MULTI, Lua, a
    /// `sync` KeysReader registration). Allowed by default.
    pub fn set_async_allowed(&mut self, allowed: bool) {
        self.policy.allowed = allowed;
    }

    /// What wakes the execution once it stopped waiting for records: a completed record, or
    /// whoever wants it to stop.
    pub fn wakeup(&self) -> Arc<Wakeup> {
        self.policy.wakeup.clone()
    }

    /// The live counters, readable from any thread while the execution runs.
    pub fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }

    pub fn status(&self) -> Status {
        self.status
    }

    pub fn results(&self) -> &[Record] {
        &self.results
    }

    pub fn errors(&self) -> &[String] {
        &self.errors
    }

    /// Hands the results and errors over, leaving the execution empty.
    pub fn take_output(&mut self) -> (Vec<Record>, Vec<String>) {
        (
            std::mem::take(&mut self.results),
            std::mem::take(&mut self.errors),
        )
    }

    /// Wall time spent running, summed over run slices.
    pub fn total_duration(&self) -> Duration {
        self.total_duration
    }

    /// A flag that stops the execution at its next record; it then ends as `aborted`.
    pub fn abort_handle(&self) -> Arc<AtomicBool> {
        self.abort.clone()
    }

    /// Runs to the end, or until every record that could move waits for an async record: reads
    /// chunks from `reader` and pulls each chunk through the steps inside one `scope.enter`.
    /// Returns the status: `Running` when it stopped to wait, to be run again (with the same
    /// reader) once [`Execution::wakeup`] is woken.
    pub fn run(&mut self, reader: &mut dyn Reader, scope: &dyn CallbackScope) -> Status {
        if self.status.is_finished() {
            return self.status;
        }
        let started = Instant::now();
        self.status = Status::Running;
        self.policy.wakeup.clear();
        loop {
            if self.abort.load(Ordering::Relaxed) {
                self.status = Status::Aborted;
                break;
            }
            if let Some(failure) = self.exchange.as_ref().and_then(|e| e.failure()) {
                self.errors.push(failure);
                self.status = Status::Aborted;
                break;
            }
            if self.local_done {
                if self.all_shards_ended() {
                    self.status = Status::Done;
                }
                break;
            }
            if self.input.wants_more() && !reader.pulls_inline() {
                self.input.fill(reader, &self.policy);
            }
            match self.drain(reader, scope) {
                Drained::Ended => {
                    self.local_done = true;
                    if let Some(exchange) = &self.exchange {
                        exchange.local_ended();
                    }
                    // Once more through the loop: a failure, or the other shards' ends.
                }
                Drained::Starved => {}
                Drained::Waiting => break,
            }
        }
        self.total_duration += started.elapsed();
        self.status
    }

    /// Whether every shard's part ended (always, for a local execution); the other shards'
    /// errors join this one's.
    fn all_shards_ended(&mut self) -> bool {
        match &self.exchange {
            Some(exchange) => exchange.all_ended(&mut self.errors),
            None => true,
        }
    }

    /// Pulls until the pipeline ends, starves or waits.
    fn drain(&mut self, reader: &mut dyn Reader, scope: &dyn CallbackScope) -> Drained {
        let steps = &mut self.steps;
        let input = &mut self.input;
        let results = &mut self.results;
        let errors = &mut self.errors;
        let abort = &self.abort;
        let env = Env {
            progress: &self.progress,
            policy: &self.policy,
            exchange: self.exchange.as_deref(),
        };
        let profiling = env.progress.profiling();
        let mut drained = Drained::Starved;
        scope.enter(&mut || loop {
            if abort.load(Ordering::Relaxed) {
                return;
            }
            let pulled = if profiling {
                pull_profiled(steps, input, reader, &env)
            } else {
                pull(steps, input, reader, &env)
            };
            match pulled {
                Pulled::Record(Record::Error(e)) => {
                    errors.push(e);
                    input.stop = true;
                }
                Pulled::Record(r) => results.push(r),
                Pulled::Eof => {
                    drained = Drained::Ended;
                    return;
                }
                Pulled::Starved => return,
                Pulled::Waiting => {
                    drained = Drained::Waiting;
                    return;
                }
            }
        });
        drained
    }
}

fn error(e: impl Into<String>) -> Pulled {
    Pulled::Record(Record::Error(e.into()))
}

/// The next record for a step that lets records wait (map, filter, foreach), or what the step
/// returns instead: it stops pulling while [`pending::MAX_IN_FLIGHT`] records wait, and once its
/// upstream ended it waits for the last of them before it ends.
fn pull_for_waiting_step(
    state: &mut StepState,
    pull_upstream: impl FnOnce() -> Pulled,
) -> Result<Record, Pulled> {
    if state.upstream_done {
        return Err(if state.in_flight.is_empty() {
            Pulled::Eof
        } else {
            Pulled::Waiting
        });
    }
    if state.in_flight.len() >= pending::MAX_IN_FLIGHT {
        return Err(Pulled::Waiting);
    }
    match pull_upstream() {
        Pulled::Record(r) if !r.is_error() => Ok(r),
        Pulled::Eof if !state.in_flight.is_empty() => {
            state.upstream_done = true;
            Err(Pulled::Waiting)
        }
        other => Err(other),
    }
}

/// [`pull`], timing every level.
fn pull_profiled(
    steps: &mut [RunningStep],
    input: &mut Input,
    reader: &mut dyn Reader,
    env: &Env,
) -> Pulled {
    let started = Instant::now();
    let pulled = pull_level(steps, input, reader, env, pull_profiled);
    env.progress
        .add_time(steps.len(), started.elapsed().as_nanos() as u64);
    pulled
}

/// Pulls the next record out of the last of `steps`, counting what each level emits.
fn pull(
    steps: &mut [RunningStep],
    input: &mut Input,
    reader: &mut dyn Reader,
    env: &Env,
) -> Pulled {
    pull_level(steps, input, reader, env, pull)
}

type PullFn = fn(&mut [RunningStep], &mut Input, &mut dyn Reader, &Env) -> Pulled;

/// What every level of a pull needs besides the steps and the input.
struct Env<'a> {
    progress: &'a Progress,
    policy: &'a AsyncPolicy,
    /// The other shards, for a distributed execution.
    exchange: Option<&'a dyn Exchange>,
}

fn pull_level(
    steps: &mut [RunningStep],
    input: &mut Input,
    reader: &mut dyn Reader,
    env: &Env,
    upstream_pull: PullFn,
) -> Pulled {
    let level = steps.len();
    let pulled = pull_step(steps, input, reader, env, upstream_pull);
    if matches!(pulled, Pulled::Record(_)) {
        env.progress.record_out(level);
    }
    pulled
}

/// What the last of `steps` emits next; its upstream is pulled through `upstream_pull`.
fn pull_step(
    steps: &mut [RunningStep],
    input: &mut Input,
    reader: &mut dyn Reader,
    env: &Env,
    upstream_pull: PullFn,
) -> Pulled {
    let policy = env.policy;
    let Some((step, upstream)) = steps.split_last_mut() else {
        return input.next(reader, policy);
    };
    // This step's index in the plan (the same on every shard).
    let index = upstream.len();
    let state = &mut step.state;
    match &step.op {
        Operation::Map(f) => loop {
            if let Some((outcome, _)) = pending::take_completed(&mut state.in_flight) {
                return match outcome.and_then(|v| f.resolved(v).map_err(|e| e.0)) {
                    Ok(r) => Pulled::Record(r),
                    Err(e) => error(e),
                };
            }
            let r = match pull_for_waiting_step(state, || {
                upstream_pull(upstream, input, reader, env)
            }) {
                Ok(r) => r,
                Err(pulled) => return pulled,
            };
            match pending::invoke(policy, true, || f.map(r)) {
                (Err(e), _) => return error(e.0),
                (Ok(_), Some(record)) => state.in_flight.push(InFlight { record, kept: None }),
                (Ok(r), None) => return Pulled::Record(r),
            }
        },
        Operation::Filter(f) => loop {
            if let Some((outcome, kept)) = pending::take_completed(&mut state.in_flight) {
                match outcome.and_then(|v| f.keep_resolved(v).map_err(|e| e.0)) {
                    Ok(true) => return Pulled::Record(kept.unwrap_or(Record::Null)),
                    Ok(false) => continue,
                    Err(e) => return error(e),
                }
            }
            let mut r = match pull_for_waiting_step(state, || {
                upstream_pull(upstream, input, reader, env)
            }) {
                Ok(r) => r,
                Err(pulled) => return pulled,
            };
            match pending::invoke(policy, true, || f.keep(&mut r)) {
                (Err(e), _) => return error(e.0),
                (Ok(_), Some(record)) => state.in_flight.push(InFlight {
                    record,
                    kept: Some(r),
                }),
                (Ok(true), None) => return Pulled::Record(r),
                (Ok(false), None) => continue,
            }
        },
        Operation::ForEach(f) => loop {
            if let Some((outcome, kept)) = pending::take_completed(&mut state.in_flight) {
                return match outcome {
                    Ok(_) => Pulled::Record(kept.unwrap_or(Record::Null)),
                    Err(e) => error(e),
                };
            }
            let mut r = match pull_for_waiting_step(state, || {
                upstream_pull(upstream, input, reader, env)
            }) {
                Ok(r) => r,
                Err(pulled) => return pulled,
            };
            match pending::invoke(policy, true, || f.each(&mut r)) {
                (Err(e), _) => return error(e.0),
                (Ok(()), Some(record)) => state.in_flight.push(InFlight {
                    record,
                    kept: Some(r),
                }),
                (Ok(()), None) => return Pulled::Record(r),
            }
        },
        Operation::FlatMap => loop {
            if let Some(r) = state.pending.pop() {
                return Pulled::Record(r);
            }
            match upstream_pull(upstream, input, reader, env) {
                Pulled::Record(Record::List(items)) => state.pending = items,
                other => return other,
            }
        },
        Operation::Accumulate(f) => {
            if state.exhausted {
                return Pulled::Eof;
            }
            loop {
                if let Some((record, _)) = &state.waiting {
                    match pending::take_single(record) {
                        None => return Pulled::Waiting,
                        Some(outcome) => {
                            state.waiting = None;
                            match outcome {
                                Ok(acc) => state.acc = Some(acc),
                                Err(e) => return error(e),
                            }
                        }
                    }
                }
                match upstream_pull(upstream, input, reader, env) {
                    Pulled::Record(r) if r.is_error() => return Pulled::Record(r),
                    Pulled::Record(r) => {
                        let acc = state.acc.take();
                        match pending::invoke(policy, true, || f.accumulate(acc, r)) {
                            (Err(e), _) => return error(e.0),
                            (Ok(_), Some(record)) => state.waiting = Some((record, String::new())),
                            (Ok(acc), None) => state.acc = Some(acc),
                        }
                    }
                    Pulled::Starved => return Pulled::Starved,
                    Pulled::Waiting => return Pulled::Waiting,
                    Pulled::Eof => {
                        state.exhausted = true;
                        return match state.acc.take() {
                            Some(acc) => Pulled::Record(acc),
                            None => Pulled::Eof,
                        };
                    }
                }
            }
        }
        Operation::ExtractKey(f) => match upstream_pull(upstream, input, reader, env) {
            Pulled::Record(mut r) if !r.is_error() => {
                match pending::invoke(policy, false, || f.extract(&mut r)).0 {
                    Ok(key) => Pulled::Record(Record::KeyValue {
                        key,
                        value: Some(Box::new(r)),
                    }),
                    Err(e) => error(e.0),
                }
            }
            other => other,
        },
        Operation::Repartition | Operation::Collect => {
            let Some(exchange) = env.exchange else {
                // A local execution: the records stay here.
                return upstream_pull(upstream, input, reader, env);
            };
            let kind = match step.op {
                Operation::Collect => ExchangeKind::Collect,
                _ => ExchangeKind::Repartition,
            };
            loop {
                if let Some(r) = state.pending.pop() {
                    return Pulled::Record(r);
                }
                if state.exhausted {
                    return Pulled::Eof;
                }
                if !state.upstream_done {
                    match upstream_pull(upstream, input, reader, env) {
                        Pulled::Record(r) => {
                            if let Some(kept) = exchange.route(index, kind, r) {
                                return Pulled::Record(kept);
                            }
                        }
                        Pulled::Eof => {
                            state.upstream_done = true;
                            exchange.done_sending(index, kind);
                        }
                        other => return other,
                    }
                    continue;
                }
                // What the other shards sent, until all of them said they are done.
                state.exhausted = exchange.receive(index, kind, &mut state.pending);
                if state.pending.is_empty() && !state.exhausted {
                    return Pulled::Waiting;
                }
            }
        }
        Operation::GetValue => match upstream_pull(upstream, input, reader, env) {
            Pulled::Record(Record::KeyValue { value, .. }) => {
                Pulled::Record(value.map_or(Record::Null, |v| *v))
            }
            Pulled::Record(r) if !r.is_error() => error(NOT_A_KEY_VALUE_RECORD),
            other => other,
        },
        Operation::AccumulateByKey(f) => loop {
            if state.exhausted {
                return state.pending.pop().map_or(Pulled::Eof, Pulled::Record);
            }
            if let Some((record, key)) = &state.waiting {
                match pending::take_single(record) {
                    None => return Pulled::Waiting,
                    Some(outcome) => {
                        let key = key.clone();
                        state.waiting = None;
                        match outcome {
                            Ok(acc) => *state.groups.slot(&key) = Some(acc),
                            Err(e) => return error(e),
                        }
                    }
                }
            }
            match upstream_pull(upstream, input, reader, env) {
                Pulled::Record(Record::KeyValue { key, value }) => {
                    let record = value.map_or(Record::Null, |v| *v);
                    let acc = state.groups.slot(&key).take();
                    match pending::invoke(policy, true, || f.accumulate(&key, acc, record)) {
                        (Err(e), _) => return error(e.0),
                        (Ok(_), Some(record)) => state.waiting = Some((record, key)),
                        (Ok(acc), None) => *state.groups.slot(&key) = Some(acc),
                    }
                }
                Pulled::Record(r) if r.is_error() => return Pulled::Record(r),
                Pulled::Record(_) => return error(NOT_A_KEY_VALUE_RECORD),
                Pulled::Starved => return Pulled::Starved,
                Pulled::Waiting => return Pulled::Waiting,
                Pulled::Eof => {
                    state.exhausted = true;
                    let groups = std::mem::take(&mut state.groups.entries);
                    // Emitted in first-seen order (the spec leaves this order open).
                    state.pending = groups
                        .into_iter()
                        .rev()
                        .filter_map(|(key, acc)| {
                            acc.map(|a| Record::KeyValue {
                                key,
                                value: Some(Box::new(a)),
                            })
                        })
                        .collect();
                }
            }
        },
        Operation::Group => loop {
            if state.exhausted {
                return state.pending.pop().map_or(Pulled::Eof, Pulled::Record);
            }
            match upstream_pull(upstream, input, reader, env) {
                Pulled::Record(Record::KeyValue { key, value }) => {
                    let record = value.map_or(Record::Null, |v| *v);
                    match state.groups.slot(&key) {
                        Some(Record::List(list)) => list.push(record),
                        slot => *slot = Some(Record::List(vec![record])),
                    }
                }
                Pulled::Record(r) if r.is_error() => return Pulled::Record(r),
                Pulled::Record(_) => return error(NOT_A_KEY_VALUE_RECORD),
                Pulled::Starved => return Pulled::Starved,
                Pulled::Waiting => return Pulled::Waiting,
                Pulled::Eof => {
                    state.exhausted = true;
                    // Kept in first-seen order and popped from the end: last-seen key first.
                    state.pending = std::mem::take(&mut state.groups.entries)
                        .into_iter()
                        .map(|(key, list)| Record::KeyValue {
                            key,
                            value: list.map(Box::new),
                        })
                        .collect();
                }
            }
        },
        Operation::Reduce(f) => match upstream_pull(upstream, input, reader, env) {
            Pulled::Record(Record::KeyValue { key, value }) => {
                let records = match value.map(|v| *v) {
                    Some(Record::List(list)) => list,
                    Some(other) => vec![other],
                    None => Vec::new(),
                };
                match pending::invoke(policy, false, || f.reduce(&key, records)).0 {
                    Ok(v) => Pulled::Record(Record::KeyValue {
                        key,
                        value: Some(Box::new(v)),
                    }),
                    Err(e) => error(e.0),
                }
            }
            Pulled::Record(r) if !r.is_error() => error(NOT_A_KEY_VALUE_RECORD),
            other => other,
        },
        Operation::Limit { offset, len } => loop {
            if state.exhausted {
                return Pulled::Eof;
            }
            match upstream_pull(upstream, input, reader, env) {
                Pulled::Record(r) if r.is_error() => return Pulled::Record(r),
                Pulled::Record(r) => {
                    let position = state.seen;
                    state.seen += 1;
                    if position >= offset.saturating_add(*len) {
                        // Like RedisGears: one record past the window is pulled, then dropped.
                        state.exhausted = true;
                        return Pulled::Eof;
                    }
                    if position >= *offset {
                        return Pulled::Record(r);
                    }
                }
                other => return other,
            }
        },
    }
}
