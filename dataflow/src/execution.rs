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
    /// Takes the reader's next chunk into the input.
    fn fill(&mut self, reader: &mut dyn Reader) {
        match reader.next_chunk() {
            Ok(Some(chunk)) => self.chunk.extend(chunk),
            Ok(None) => self.reader_done = true,
            Err(e) => {
                self.chunk.push_back(Record::Error(e));
                self.reader_done = true;
            }
        }
    }

    fn next(&mut self, reader: &mut dyn Reader) -> Pulled {
        if self.stop {
            return Pulled::Eof;
        }
        if self.chunk.is_empty() && !self.reader_done && reader.pulls_inline() {
            self.fill(reader);
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
        }
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

    /// Runs to the end: reads chunks from `reader` and pulls each chunk through the steps inside
    /// one `scope.enter`. Returns the final status.
    pub fn run(&mut self, reader: &mut dyn Reader, scope: &dyn CallbackScope) -> Status {
        if self.status.is_finished() {
            return self.status;
        }
        let started = Instant::now();
        self.status = Status::Running;
        loop {
            if self.abort.load(Ordering::Relaxed) {
                self.status = Status::Aborted;
                break;
            }
            if self.input.wants_more() && !reader.pulls_inline() {
                self.input.fill(reader);
            }
            if self.drain(reader, scope) {
                self.status = Status::Done;
                break;
            }
        }
        self.total_duration += started.elapsed();
        self.status
    }

    /// Pulls until the pipeline ends or starves; true when it ended.
    fn drain(&mut self, reader: &mut dyn Reader, scope: &dyn CallbackScope) -> bool {
        let steps = &mut self.steps;
        let input = &mut self.input;
        let results = &mut self.results;
        let errors = &mut self.errors;
        let abort = &self.abort;
        let progress = &*self.progress;
        let profiling = progress.profiling();
        let mut ended = false;
        scope.enter(&mut || loop {
            if abort.load(Ordering::Relaxed) {
                return;
            }
            let pulled = if profiling {
                pull_profiled(steps, input, reader, progress)
            } else {
                pull(steps, input, reader, progress)
            };
            match pulled {
                Pulled::Record(Record::Error(e)) => {
                    errors.push(e);
                    input.stop = true;
                }
                Pulled::Record(r) => results.push(r),
                Pulled::Eof => {
                    ended = true;
                    return;
                }
                Pulled::Starved => return,
            }
        });
        ended
    }
}

fn error(e: impl Into<String>) -> Pulled {
    Pulled::Record(Record::Error(e.into()))
}

/// [`pull`], timing every level.
fn pull_profiled(
    steps: &mut [RunningStep],
    input: &mut Input,
    reader: &mut dyn Reader,
    progress: &Progress,
) -> Pulled {
    let started = Instant::now();
    let pulled = pull_level(steps, input, reader, progress, pull_profiled);
    progress.add_time(steps.len(), started.elapsed().as_nanos() as u64);
    pulled
}

/// Pulls the next record out of the last of `steps`, counting what each level emits.
fn pull(
    steps: &mut [RunningStep],
    input: &mut Input,
    reader: &mut dyn Reader,
    progress: &Progress,
) -> Pulled {
    pull_level(steps, input, reader, progress, pull)
}

type PullFn = fn(&mut [RunningStep], &mut Input, &mut dyn Reader, &Progress) -> Pulled;

fn pull_level(
    steps: &mut [RunningStep],
    input: &mut Input,
    reader: &mut dyn Reader,
    progress: &Progress,
    upstream_pull: PullFn,
) -> Pulled {
    let level = steps.len();
    let pulled = pull_step(steps, input, reader, progress, upstream_pull);
    if matches!(pulled, Pulled::Record(_)) {
        progress.record_out(level);
    }
    pulled
}

/// What the last of `steps` emits next; its upstream is pulled through `upstream_pull`.
fn pull_step(
    steps: &mut [RunningStep],
    input: &mut Input,
    reader: &mut dyn Reader,
    progress: &Progress,
    upstream_pull: PullFn,
) -> Pulled {
    let Some((step, upstream)) = steps.split_last_mut() else {
        return input.next(reader);
    };
    let state = &mut step.state;
    match &step.op {
        Operation::Map(f) => match upstream_pull(upstream, input, reader, progress) {
            Pulled::Record(r) if !r.is_error() => match f.map(r) {
                Ok(r) => Pulled::Record(r),
                Err(e) => error(e.0),
            },
            other => other,
        },
        Operation::Filter(f) => loop {
            match upstream_pull(upstream, input, reader, progress) {
                Pulled::Record(mut r) if !r.is_error() => match f.keep(&mut r) {
                    Ok(true) => return Pulled::Record(r),
                    Ok(false) => continue,
                    Err(e) => return error(e.0),
                },
                other => return other,
            }
        },
        Operation::ForEach(f) => match upstream_pull(upstream, input, reader, progress) {
            Pulled::Record(mut r) if !r.is_error() => match f.each(&mut r) {
                Ok(()) => Pulled::Record(r),
                Err(e) => error(e.0),
            },
            other => other,
        },
        Operation::FlatMap => loop {
            if let Some(r) = state.pending.pop() {
                return Pulled::Record(r);
            }
            match upstream_pull(upstream, input, reader, progress) {
                Pulled::Record(Record::List(items)) => state.pending = items,
                other => return other,
            }
        },
        Operation::Accumulate(f) => {
            if state.exhausted {
                return Pulled::Eof;
            }
            loop {
                match upstream_pull(upstream, input, reader, progress) {
                    Pulled::Record(r) if r.is_error() => return Pulled::Record(r),
                    Pulled::Record(r) => match f.accumulate(state.acc.take(), r) {
                        Ok(acc) => state.acc = Some(acc),
                        Err(e) => return error(e.0),
                    },
                    Pulled::Starved => return Pulled::Starved,
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
        Operation::ExtractKey(f) => match upstream_pull(upstream, input, reader, progress) {
            Pulled::Record(mut r) if !r.is_error() => match f.extract(&mut r) {
                Ok(key) => Pulled::Record(Record::KeyValue {
                    key,
                    value: Some(Box::new(r)),
                }),
                Err(e) => error(e.0),
            },
            other => other,
        },
        Operation::Repartition | Operation::Collect => {
            upstream_pull(upstream, input, reader, progress)
        }
        Operation::GetValue => match upstream_pull(upstream, input, reader, progress) {
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
            match upstream_pull(upstream, input, reader, progress) {
                Pulled::Record(Record::KeyValue { key, value }) => {
                    let record = value.map_or(Record::Null, |v| *v);
                    let slot = state.groups.slot(&key);
                    match f.accumulate(&key, slot.take(), record) {
                        Ok(acc) => *slot = Some(acc),
                        Err(e) => return error(e.0),
                    }
                }
                Pulled::Record(r) if r.is_error() => return Pulled::Record(r),
                Pulled::Record(_) => return error(NOT_A_KEY_VALUE_RECORD),
                Pulled::Starved => return Pulled::Starved,
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
            match upstream_pull(upstream, input, reader, progress) {
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
        Operation::Reduce(f) => match upstream_pull(upstream, input, reader, progress) {
            Pulled::Record(Record::KeyValue { key, value }) => {
                let records = match value.map(|v| *v) {
                    Some(Record::List(list)) => list,
                    Some(other) => vec![other],
                    None => Vec::new(),
                };
                match f.reduce(&key, records) {
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
            match upstream_pull(upstream, input, reader, progress) {
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
