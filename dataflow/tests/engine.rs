//! The execution engine driven by plain Rust closures: no Redis, no Python.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

mod common;

use common::{filter, long, map, plan};
use dataflow::{
    CallbackScope, Execution, NoScope, Operation, Plan, Reader, Record, Status, Step, StepError,
    StepType, VecReader,
};

fn longs(values: impl IntoIterator<Item = i64>) -> Vec<Record> {
    values.into_iter().map(Record::Long).collect()
}

fn accumulate(
    f: impl Fn(Option<Record>, Record) -> Result<Record, StepError> + Send + Sync + 'static,
) -> Step {
    Step::new(
        StepType::Accumulate,
        "accumulate",
        "",
        Operation::Accumulate(Arc::new(f)),
    )
}

fn count_step() -> Step {
    accumulate(|acc, _| Ok(Record::Long(acc.map_or(0, |a| long(&a)) + 1)))
}

fn run(plan: &Plan, input: Vec<Record>, chunk: usize) -> (Status, Vec<Record>, Vec<String>) {
    let mut execution = Execution::new(plan);
    let status = execution.run(&mut VecReader::new(input, chunk), &NoScope);
    let (results, errors) = execution.take_output();
    (status, results, errors)
}

#[test]
fn map_filter_keep_order_whatever_the_chunk_size() {
    let p = plan(vec![
        map(|r| Ok(Record::Long(long(&r) * 10))),
        filter(|r| Ok(long(r) % 20 == 0)),
    ]);
    for chunk in [1, 2, 3, 1000] {
        let (status, results, errors) = run(&p, longs(1..=6), chunk);
        assert_eq!(status, Status::Done);
        assert_eq!(results, longs([20, 40, 60]), "chunk {chunk}");
        assert!(errors.is_empty());
    }
}

#[test]
fn count_is_an_accumulate_over_every_chunk() {
    let p = plan(vec![count_step(), Step::collect(), count_step()]);
    let (_, results, _) = run(&p, longs(0..2500), 1000);
    // The second accumulate counts the one partial count it received.
    assert_eq!(results, longs([1]));
    let p = plan(vec![count_step()]);
    assert_eq!(run(&p, longs(0..2500), 7).1, longs([2500]));
}

#[test]
fn accumulate_of_nothing_emits_nothing() {
    let p = plan(vec![count_step()]);
    let (status, results, errors) = run(&p, vec![], 10);
    assert_eq!(status, Status::Done);
    assert!(results.is_empty() && errors.is_empty());
}

#[test]
fn first_error_stops_the_reader() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let p = plan(vec![map(move |r| {
        seen.fetch_add(1, Ordering::SeqCst);
        if long(&r) >= 3 {
            Err(StepError::from(format!("bad {}", long(&r))))
        } else {
            Ok(r)
        }
    })]);
    let (status, results, errors) = run(&p, longs(1..=10), 1000);
    assert_eq!(status, Status::Done);
    assert_eq!(results, longs([1, 2]));
    assert_eq!(errors, vec!["bad 3".to_string()]);
    // Pulled one at a time: records after the failing one are never read, even within a chunk.
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[test]
fn accumulate_emits_its_partial_value_after_an_upstream_error() {
    let p = plan(vec![
        map(|r| {
            if long(&r) == 4 {
                Err("boom".into())
            } else {
                Ok(r)
            }
        }),
        count_step(),
    ]);
    let (_, results, errors) = run(&p, longs(1..=10), 1000);
    assert_eq!(errors, vec!["boom".to_string()]);
    assert_eq!(results, longs([3]));
}

#[test]
fn accumulate_error_discards_the_accumulator() {
    let p = plan(vec![accumulate(|acc, r| {
        if long(&r) == 2 {
            return Err("acc failed".into());
        }
        Ok(Record::Long(acc.map_or(0, |a| long(&a)) + long(&r)))
    })]);
    let (_, results, errors) = run(&p, longs(1..=5), 1000);
    assert_eq!(errors, vec!["acc failed".to_string()]);
    // After the error reached the end the reader stopped; the fresh accumulator saw nothing.
    assert!(results.is_empty());
}

#[test]
fn filter_error_replaces_the_record() {
    let p = plan(vec![filter(|r| {
        if long(r) == 2 {
            Err("filter failed".into())
        } else {
            Ok(true)
        }
    })]);
    let (_, results, errors) = run(&p, longs(1..=3), 1);
    assert_eq!(results, longs([1]));
    assert_eq!(errors, vec!["filter failed".to_string()]);
}

#[test]
fn flatmap_expands_lists_last_element_first() {
    let p = plan(vec![
        map(|r| Ok(Record::List(longs([long(&r), long(&r) + 1, long(&r) + 2])))),
        Step::flatmap(),
    ]);
    let (_, results, _) = run(&p, longs([10, 20]), 1);
    assert_eq!(results, longs([12, 11, 10, 22, 21, 20]));
    let p = plan(vec![map(|_| Ok(Record::List(vec![]))), Step::flatmap()]);
    assert!(run(&p, longs([1, 2]), 1).1.is_empty());
}

#[test]
fn limit_pulls_one_record_past_its_window_then_stops() {
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = pulled.clone();
    let p = plan(vec![
        map(move |r| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(r)
        }),
        Step::limit(2, 3),
    ]);
    let (_, results, _) = run(&p, longs(0..100), 1000);
    assert_eq!(results, longs([2, 3, 4]));
    assert_eq!(pulled.load(Ordering::SeqCst), 6);
    let p = plan(vec![Step::limit(0, 0)]);
    assert!(run(&p, longs(0..5), 10).1.is_empty());
}

#[test]
fn limit_lets_errors_through_uncounted() {
    let p = plan(vec![
        map(|r| {
            if long(&r) == 0 {
                Err("e".into())
            } else {
                Ok(r)
            }
        }),
        Step::limit(0, 1),
    ]);
    let (_, results, errors) = run(&p, longs(0..5), 10);
    assert_eq!(errors, vec!["e".to_string()]);
    assert!(results.is_empty());
}

fn key_of(r: &mut Record) -> Result<String, StepError> {
    Ok((long(r) % 3).to_string())
}

#[test]
fn accumulate_by_key_emits_one_record_per_key() {
    let p = plan(vec![
        Step::new(
            StepType::ExtractKey,
            "x",
            "",
            Operation::ExtractKey(Arc::new(key_of)),
        ),
        Step::plain(StepType::Repartition, Operation::Repartition),
        Step::new(
            StepType::AccumulateByKey,
            "abk",
            "",
            Operation::AccumulateByKey(Arc::new(|_: &str, acc: Option<Record>, r: Record| {
                Ok(Record::Long(acc.map_or(0, |a| long(&a)) + long(&r)))
            })),
        ),
    ]);
    let (_, mut results, _) = run(&p, longs(0..9), 4);
    results.sort_by_key(|r| match r {
        Record::KeyValue { key, .. } => key.clone(),
        _ => String::new(),
    });
    let expect = |k: &str, v: i64| Record::KeyValue {
        key: k.into(),
        value: Some(Box::new(Record::Long(v))),
    };
    assert_eq!(
        results,
        vec![expect("0", 9), expect("1", 12), expect("2", 15)]
    );
}

#[test]
fn group_then_reduce_emits_groups_last_seen_key_first() {
    let p = plan(vec![
        Step::new(
            StepType::ExtractKey,
            "x",
            "",
            Operation::ExtractKey(Arc::new(key_of)),
        ),
        Step::plain(StepType::Group, Operation::Group),
        Step::new(
            StepType::Reduce,
            "r",
            "",
            Operation::Reduce(Arc::new(|_: &str, records: Vec<Record>| {
                Ok(Record::Long(records.iter().map(long).sum()))
            })),
        ),
    ]);
    let (_, results, _) = run(&p, longs([1, 2, 3, 4, 5]), 2);
    let keys: Vec<String> = results
        .iter()
        .map(|r| match r {
            Record::KeyValue { key, value } => format!("{key}={}", long(value.as_ref().unwrap())),
            _ => panic!(),
        })
        .collect();
    assert_eq!(keys, vec!["0=3", "2=7", "1=5"]);
}

#[test]
fn get_value_unwraps_key_value_records_and_rejects_others() {
    let p = plan(vec![
        Step::new(
            StepType::ExtractKey,
            "x",
            "",
            Operation::ExtractKey(Arc::new(key_of)),
        ),
        Step::plain(StepType::Repartition, Operation::Repartition),
        Step::new(StepType::Map, "GetValueMapper", "", Operation::GetValue),
    ]);
    assert_eq!(run(&p, longs([7, 8]), 1).1, longs([7, 8]));
    let p = plan(vec![Step::new(
        StepType::Map,
        "GetValueMapper",
        "",
        Operation::GetValue,
    )]);
    assert_eq!(
        run(&p, longs([7]), 1).2,
        vec![dataflow::execution::NOT_A_KEY_VALUE_RECORD.to_string()]
    );
}

struct FailingReader(bool);

impl Reader for FailingReader {
    fn next_chunk(&mut self) -> Result<Option<Vec<Record>>, String> {
        if self.0 {
            return Ok(None);
        }
        self.0 = true;
        Err("reader broke".into())
    }
}

#[test]
fn a_reader_error_becomes_one_error_record() {
    let mut e = Execution::new(&plan(vec![map(Ok)]));
    assert_eq!(e.run(&mut FailingReader(false), &NoScope), Status::Done);
    assert_eq!(e.errors(), ["reader broke".to_string()]);
}

/// Raises an abort flag once it handed out its first chunk.
struct AbortingReader {
    inner: VecReader,
    flag: Arc<std::sync::atomic::AtomicBool>,
}

impl Reader for AbortingReader {
    fn next_chunk(&mut self) -> Result<Option<Vec<Record>>, String> {
        let chunk = self.inner.next_chunk();
        self.flag.store(true, Ordering::SeqCst);
        chunk
    }
}

#[test]
fn abort_ends_the_execution_as_aborted() {
    let p = plan(vec![map(Ok)]);
    let mut before = Execution::new(&p);
    before.abort_handle().store(true, Ordering::SeqCst);
    assert_eq!(
        before.run(&mut VecReader::new(longs(0..100), 10), &NoScope),
        Status::Aborted
    );
    assert!(before.results().is_empty());

    let mut during = Execution::new(&p);
    let mut reader = AbortingReader {
        inner: VecReader::new(longs(0..100), 10),
        flag: during.abort_handle(),
    };
    assert_eq!(during.run(&mut reader, &NoScope), Status::Aborted);
    assert!(during.results().len() < 100);
}

struct CountingScope(AtomicUsize);

impl CallbackScope for CountingScope {
    fn enter(&self, work: &mut dyn FnMut()) {
        self.0.fetch_add(1, Ordering::SeqCst);
        work()
    }
}

#[test]
fn the_scope_is_entered_once_per_chunk_not_per_record() {
    let p = plan(vec![map(Ok)]);
    let scope = CountingScope(AtomicUsize::new(0));
    let mut e = Execution::new(&p);
    e.run(&mut VecReader::new(longs(0..10_000), 1000), &scope);
    assert_eq!(e.results().len(), 10_000);
    // Ten chunks, plus the final pull that finds the reader exhausted.
    assert_eq!(scope.0.load(Ordering::SeqCst), 11);
}

/// A reader that counts how many records it handed out, one per chunk, pulled inline.
struct InlineCounter {
    next: i64,
    handed: Arc<AtomicUsize>,
}

impl Reader for InlineCounter {
    fn next_chunk(&mut self) -> Result<Option<Vec<Record>>, String> {
        self.handed.fetch_add(1, Ordering::SeqCst);
        self.next += 1;
        Ok(Some(vec![Record::Long(self.next - 1)]))
    }

    fn pulls_inline(&self) -> bool {
        true
    }
}

#[test]
fn an_inline_reader_is_pulled_no_further_than_the_pipeline_needs() {
    let handed = Arc::new(AtomicUsize::new(0));
    let mut reader = InlineCounter {
        next: 0,
        handed: handed.clone(),
    };
    let mut e = Execution::new(&plan(vec![Step::limit(0, 3)]));
    assert_eq!(e.run(&mut reader, &NoScope), Status::Done);
    assert_eq!(e.results(), longs([0, 1, 2]).as_slice());
    // Three records and the one extra the limit discards, never a whole chunk ahead.
    assert_eq!(handed.load(Ordering::SeqCst), 4);

    let handed = Arc::new(AtomicUsize::new(0));
    let mut reader = InlineCounter {
        next: 0,
        handed: handed.clone(),
    };
    let failing = plan(vec![map(|r| {
        if long(&r) == 2 {
            Err("stop".into())
        } else {
            Ok(r)
        }
    })]);
    let mut e = Execution::new(&failing);
    e.run(&mut reader, &NoScope);
    assert_eq!(e.errors(), ["stop".to_string()]);
    assert_eq!(handed.load(Ordering::SeqCst), 3);
}

/// Counts the chunks it was asked for.
struct CountingChunks {
    inner: VecReader,
    asked: Arc<AtomicUsize>,
}

impl Reader for CountingChunks {
    fn next_chunk(&mut self) -> Result<Option<Vec<Record>>, String> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        self.inner.next_chunk()
    }
}

#[test]
fn prefetching_gives_the_same_records_in_the_same_order() {
    let p = plan(vec![map(|r| Ok(Record::Long(long(&r) + 1)))]);
    let mut direct = Execution::new(&p);
    direct.run(&mut VecReader::new(longs(0..5000), 100), &NoScope);
    let mut prefetched = Execution::new(&p);
    let mut reader =
        dataflow::Prefetch::spawn(Box::new(VecReader::new(longs(0..5000), 100)), 2, "t").unwrap();
    prefetched.run(&mut reader, &NoScope);
    assert_eq!(direct.results(), prefetched.results());
    assert_eq!(prefetched.results().len(), 5000);
}

#[test]
fn prefetching_stops_reading_when_the_execution_stops() {
    let asked = Arc::new(AtomicUsize::new(0));
    let inner = CountingChunks {
        inner: VecReader::new(longs(0..1_000_000), 10),
        asked: asked.clone(),
    };
    let mut e = Execution::new(&plan(vec![Step::limit(0, 5)]));
    let mut reader = dataflow::Prefetch::spawn(Box::new(inner), 2, "t").unwrap();
    e.run(&mut reader, &NoScope);
    assert_eq!(e.results(), longs(0..5).as_slice());
    drop(reader);
    std::thread::sleep(std::time::Duration::from_millis(50));
    // At most the chunk in hand, the queue, and the one whose send failed.
    assert!(
        asked.load(Ordering::SeqCst) <= 5,
        "{}",
        asked.load(Ordering::SeqCst)
    );
}

#[test]
fn prefetching_passes_reader_errors_on() {
    let mut e = Execution::new(&plan(vec![map(Ok)]));
    let mut reader = dataflow::Prefetch::spawn(Box::new(FailingReader(false)), 2, "t").unwrap();
    e.run(&mut reader, &NoScope);
    assert_eq!(e.errors(), ["reader broke".to_string()]);
}

#[test]
fn progress_counts_records_read_and_out_of_each_step() {
    let p = plan(vec![
        map(|r| Ok(Record::Long(long(&r) * 2))),
        filter(|r| Ok(long(r) % 4 == 0)),
    ]);
    let mut e = Execution::new(&p);
    let progress = e.progress();
    e.run(&mut VecReader::new(longs(0..10), 3), &NoScope);
    assert_eq!(progress.records_read(), 10);
    assert_eq!(progress.records_out(0), 10);
    assert_eq!(progress.records_out(1), 5);
    // Without profiling no time is measured.
    assert_eq!(progress.step_duration(0), std::time::Duration::ZERO);
}

#[test]
fn profiling_measures_each_step_without_its_upstream() {
    let slow = map(|r| {
        std::thread::sleep(std::time::Duration::from_millis(2));
        Ok(r)
    });
    let p = plan(vec![slow, map(Ok)]);
    let mut e = Execution::with_profiling(&p, true);
    let progress = e.progress();
    e.run(&mut VecReader::new(longs(0..5), 10), &NoScope);
    assert!(progress.step_duration(0) >= std::time::Duration::from_millis(10));
    // The fast step's own time excludes the slow step it pulls from.
    assert!(progress.step_duration(1) < std::time::Duration::from_millis(5));
}
