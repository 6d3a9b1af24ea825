//! Steps that wait for records completed later (coroutines and futures in the module), driven by
//! plain closures: the execution parks, completions wake it, and it resumes where it stopped.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

mod common;

use common::{long, plan};
use dataflow::pending::{self, AsyncRecord, ASYNC_NOT_ALLOWED, MAX_IN_FLIGHT};
use dataflow::{
    Execution, NoScope, Operation, Record, Status, Step, StepError, StepType, VecReader,
};

type Waiting = Arc<Mutex<Vec<(AsyncRecord, i64)>>>;

/// A map whose odd records wait: their placeholders (with the record) go to `waiting`.
fn waiting_map(waiting: Waiting) -> Step {
    Step::map(
        "map",
        "",
        Arc::new(move |r: Record| -> Result<Record, StepError> {
            let v = long(&r);
            if v % 2 == 0 {
                return Ok(Record::Long(v * 10));
            }
            let record = pending::create().map_err(StepError::from)?;
            assert!(pending::wait_for(&record));
            waiting.lock().unwrap().push((record, v));
            Ok(Record::Null)
        }),
    )
}

fn sorted(records: &[Record]) -> Vec<i64> {
    let mut v: Vec<i64> = records.iter().map(long).collect();
    v.sort();
    v
}

#[test]
fn records_that_need_no_wait_flow_and_the_rest_follow_once_completed() {
    let waiting = Waiting::default();
    let p = plan(vec![waiting_map(waiting.clone())]);
    let mut execution = Execution::new(&p);
    let resumed = Arc::new(AtomicUsize::new(0));
    let mut reader = VecReader::new((1..=6).map(Record::Long).collect(), 2);
    assert_eq!(execution.run(&mut reader, &NoScope), Status::Running);
    assert_eq!(sorted(execution.results()), vec![20, 40, 60]);
    let r = resumed.clone();
    execution.wakeup().park(Box::new(move || {
        r.fetch_add(1, Ordering::SeqCst);
    }));
    let taken: Vec<_> = std::mem::take(&mut *waiting.lock().unwrap());
    assert_eq!(taken.len(), 3);
    for (record, v) in &taken {
        record.complete(Ok(Record::Long(v * 100))).unwrap();
    }
    // The first completion resumed the parked execution; later ones find nothing parked.
    assert_eq!(resumed.load(Ordering::SeqCst), 1);
    assert_eq!(execution.run(&mut reader, &NoScope), Status::Done);
    assert_eq!(sorted(execution.results()), vec![20, 40, 60, 100, 300, 500]);
    assert_eq!(
        taken[0]
            .0
            .complete(Ok(Record::Null))
            .unwrap_err()
            .to_string(),
        "Can not continue with the same future twice"
    );
}

#[test]
fn a_failed_async_record_becomes_an_error_record() {
    let waiting = Waiting::default();
    let p = plan(vec![waiting_map(waiting.clone())]);
    let mut execution = Execution::new(&p);
    let mut reader = VecReader::new(vec![Record::Long(1)], 1);
    assert_eq!(execution.run(&mut reader, &NoScope), Status::Running);
    let (record, _) = waiting.lock().unwrap().pop().unwrap();
    record.complete(Err("timedout".into())).unwrap();
    assert_eq!(execution.run(&mut reader, &NoScope), Status::Done);
    assert_eq!(execution.errors(), ["timedout"]);
}

#[test]
fn at_most_max_in_flight_records_wait_at_once() {
    let waiting = Waiting::default();
    let p = plan(vec![waiting_map(waiting.clone())]);
    let mut execution = Execution::new(&p);
    let n = 2 * MAX_IN_FLIGHT as i64 + 10;
    let odd = (1..=n).map(|v| 2 * v - 1).map(Record::Long).collect();
    let mut reader = VecReader::new(odd, 100);
    let mut rounds = 0;
    while execution.run(&mut reader, &NoScope) == Status::Running {
        let taken: Vec<_> = std::mem::take(&mut *waiting.lock().unwrap());
        assert!(!taken.is_empty() && taken.len() <= MAX_IN_FLIGHT);
        for (record, v) in taken {
            record.complete(Ok(Record::Long(v))).unwrap();
        }
        rounds += 1;
    }
    assert_eq!(rounds, 3);
    assert_eq!(execution.results().len(), n as usize);
}

#[test]
fn filter_and_foreach_keep_the_original_record() {
    let waiting = Waiting::default();
    let (w1, w2) = (waiting.clone(), waiting.clone());
    let p = plan(vec![
        Step::new(
            StepType::Filter,
            "filter",
            "",
            Operation::Filter(Arc::new(move |r: &mut Record| {
                let record = pending::create().map_err(StepError::from)?;
                pending::wait_for(&record);
                w1.lock().unwrap().push((record, long(r)));
                Ok(false)
            })),
        ),
        Step::new(
            StepType::ForEach,
            "foreach",
            "",
            Operation::ForEach(Arc::new(move |r: &mut Record| {
                let record = pending::create().map_err(StepError::from)?;
                pending::wait_for(&record);
                w2.lock().unwrap().push((record, long(r)));
                Ok(())
            })),
        ),
    ]);
    let mut execution = Execution::new(&p);
    let mut reader = VecReader::new((1..=4).map(Record::Long).collect(), 4);
    while execution.run(&mut reader, &NoScope) == Status::Running {
        for (record, v) in std::mem::take(&mut *waiting.lock().unwrap()) {
            // The filter keeps even records; the foreach's answer is ignored.
            record
                .complete(Ok(Record::Long(i64::from(v % 2 == 0))))
                .unwrap();
        }
    }
    assert_eq!(sorted(execution.results()), vec![2, 4]);
}

#[test]
fn an_accumulator_waits_for_each_record_in_turn() {
    let waiting = Waiting::default();
    let w = waiting.clone();
    let p = plan(vec![Step::new(
        StepType::Accumulate,
        "accumulate",
        "",
        Operation::Accumulate(Arc::new(move |acc: Option<Record>, r: Record| {
            let record = pending::create().map_err(StepError::from)?;
            pending::wait_for(&record);
            let sum = acc.map_or(0, |a| long(&a)) + long(&r);
            w.lock().unwrap().push((record, sum));
            Ok(Record::Null)
        })),
    )]);
    let mut execution = Execution::new(&p);
    let mut reader = VecReader::new((1..=5).map(Record::Long).collect(), 5);
    let mut rounds = 0;
    while execution.run(&mut reader, &NoScope) == Status::Running {
        let taken: Vec<_> = std::mem::take(&mut *waiting.lock().unwrap());
        assert_eq!(taken.len(), 1);
        for (record, sum) in taken {
            record.complete(Ok(Record::Long(sum))).unwrap();
        }
        rounds += 1;
    }
    assert_eq!(rounds, 5);
    assert_eq!(execution.results(), [Record::Long(15)]);
}

#[test]
fn an_execution_without_async_refuses_to_wait() {
    let waiting = Waiting::default();
    let p = plan(vec![waiting_map(waiting.clone())]);
    let mut execution = Execution::new(&p);
    execution.set_async_allowed(false);
    let mut reader = VecReader::new(vec![Record::Long(1)], 1);
    assert_eq!(execution.run(&mut reader, &NoScope), Status::Done);
    assert_eq!(execution.errors(), [ASYNC_NOT_ALLOWED]);
}

#[test]
fn an_abort_while_waiting_ends_the_execution_as_aborted() {
    let waiting = Waiting::default();
    let p = plan(vec![waiting_map(waiting.clone())]);
    let mut execution = Execution::new(&p);
    let mut reader = VecReader::new(vec![Record::Long(1)], 1);
    assert_eq!(execution.run(&mut reader, &NoScope), Status::Running);
    execution.abort_handle().store(true, Ordering::SeqCst);
    assert_eq!(execution.run(&mut reader, &NoScope), Status::Aborted);
    // Completing it later changes nothing and does not fail.
    let (record, _) = waiting.lock().unwrap().pop().unwrap();
    record.complete(Ok(Record::Null)).unwrap();
}

#[test]
fn extractors_and_readers_cannot_wait() {
    let p = plan(vec![Step::new(
        StepType::ExtractKey,
        "extractkey",
        "",
        Operation::ExtractKey(Arc::new(|_: &mut Record| {
            pending::create()
                .map(|_| String::new())
                .map_err(StepError::from)
        })),
    )]);
    let mut execution = Execution::new(&p);
    let mut reader = VecReader::new(vec![Record::Long(1)], 1);
    assert_eq!(execution.run(&mut reader, &NoScope), Status::Done);
    assert_eq!(execution.errors(), [pending::STEP_NOT_ASYNC]);
}
