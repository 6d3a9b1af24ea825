//! One record through a record-wise plan, without an [`Execution`](crate::Execution).
//!
//! A `sync` KeysReader registration runs its plan over the one record of each keyspace event,
//! inside the command that caused it. When every step takes records one at a time (map, filter,
//! foreach, flatmap, and collect / repartition, which keep records where they are in a local run),
//! nothing one record yields depends on another, and nothing may wait (async records are not
//! allowed there), so the engine's pull machinery, per-step state and async bookkeeping are
//! pure overhead: this runs the same callbacks in the same order with the same results, errors
//! and progress counts, in a plain recursion.

use std::sync::Arc;

use crate::callbacks::CallbackScope;
use crate::pending::{self, AsyncPolicy, Wakeup, ASYNC_NOT_ALLOWED};
use crate::plan::{Operation, Plan};
use crate::progress::Progress;
use crate::record::Record;

/// Whether [`run_record`] can run `plan`.
pub fn is_record_wise(plan: &Plan) -> bool {
    plan.steps.iter().all(|s| {
        matches!(
            s.op,
            Operation::Map(_)
                | Operation::Filter(_)
                | Operation::ForEach(_)
                | Operation::FlatMap
                | Operation::Collect
                | Operation::Repartition
        )
    })
}

/// What one record became: results in the order an [`Execution`](crate::Execution) emits them,
/// and errors.
#[derive(Debug, Default)]
pub struct RecordOutput {
    pub results: Vec<Record>,
    pub errors: Vec<String>,
}

/// Runs `record` through `plan` (record-wise, see [`is_record_wise`]) inside one `scope.enter`,
/// with async records not allowed, counting in `progress` what each level emits exactly as an
/// execution would. `wakeup` is the (never woken) wakeup step callbacks see.
pub fn run_record(
    plan: &Plan,
    record: Record,
    progress: &Progress,
    wakeup: &Arc<Wakeup>,
    scope: &dyn CallbackScope,
) -> RecordOutput {
    let policy = AsyncPolicy {
        allowed: false,
        wakeup: wakeup.clone(),
    };
    let ops: Vec<&Operation> = plan.steps.iter().map(|s| &s.op).collect();
    let mut out = RecordOutput::default();
    let mut record = Some(record);
    scope.enter(&mut || {
        if let Some(record) = record.take() {
            progress.record_out(0);
            flow(&ops, 0, record, &policy, progress, &mut out);
        }
    });
    out
}

/// Passes `record`, emitted by level `level` (0: the reader), through the steps from `level` on.
fn flow(
    ops: &[&Operation],
    level: usize,
    record: Record,
    policy: &AsyncPolicy,
    progress: &Progress,
    out: &mut RecordOutput,
) {
    let Some(op) = ops.get(level) else {
        match record {
            Record::Error(e) => out.errors.push(e),
            r => out.results.push(r),
        }
        return;
    };
    let next = level + 1;
    let emit = |record: Record, out: &mut RecordOutput| {
        progress.record_out(next);
        flow(ops, next, record, policy, progress, out);
    };
    // An error record passes every later step untouched, counted at each level.
    if record.is_error() {
        return emit(record, out);
    }
    match op {
        Operation::Map(f) => match pending::invoke(policy, true, || f.map(record)) {
            (Ok(r), None) => emit(r, out),
            (Err(e), _) => emit(Record::Error(e.0), out),
            (Ok(_), Some(_)) => emit(Record::Error(ASYNC_NOT_ALLOWED.into()), out),
        },
        Operation::Filter(f) => {
            let mut record = record;
            match pending::invoke(policy, true, || f.keep(&mut record)) {
                (Ok(true), None) => emit(record, out),
                (Ok(false), None) => {}
                (Err(e), _) => emit(Record::Error(e.0), out),
                (Ok(_), Some(_)) => emit(Record::Error(ASYNC_NOT_ALLOWED.into()), out),
            }
        }
        Operation::ForEach(f) => {
            let mut record = record;
            match pending::invoke(policy, true, || f.each(&mut record)) {
                (Ok(()), None) => emit(record, out),
                (Err(e), _) => emit(Record::Error(e.0), out),
                (Ok(()), Some(_)) => emit(Record::Error(ASYNC_NOT_ALLOWED.into()), out),
            }
        }
        // Last element first, as the engine pops them.
        Operation::FlatMap => match record {
            Record::List(items) => {
                for item in items.into_iter().rev() {
                    emit(item, out);
                }
            }
            other => emit(other, out),
        },
        // A local run keeps its records where they are.
        Operation::Collect | Operation::Repartition => emit(record, out),
        _ => emit(
            Record::Error("internal error: the step does not take records one by one".into()),
            out,
        ),
    }
}
