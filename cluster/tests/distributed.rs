//! Three shards in one process, each running the same plan with its own part of the data and
//! moving records through [`ClusterExchange`]s: a distributed execution gives what one shard
//! holding all the data gives, and a silent shard ends it with an error instead of a hang.

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster::exchange::{decode_message, Registry, Transport};
use cluster::{ClusterExchange, SlotRange, Topology};
use dataflow::wire::ObjectCodec;
use dataflow::{
    Execution, NoScope, ObjectHandle, Operation, Plan, Record, Status, Step, StepError, StepType,
    VecReader,
};

const SHARDS: [&str; 3] = ["a", "b", "c"];

fn topology(me: &str) -> Arc<Topology> {
    let ranges = [(0, 5460, "a"), (5461, 10922, "b"), (10923, 16383, "c")]
        .iter()
        .enumerate()
        .map(|(i, (start, end, id))| SlotRange {
            start: *start,
            end: *end,
            host: "127.0.0.1".into(),
            port: 7000 + i as u16,
            id: id.to_string(),
        })
        .collect();
    Arc::new(Topology::from_cluster_slots(me, ranges))
}

/// Only native records travel in these tests.
struct NoObjects;

impl ObjectCodec for NoObjects {
    fn encode(&self, _: &dyn ObjectHandle, _: &mut Vec<u8>) -> Result<(), String> {
        Err(String::new())
    }
    fn decode(&self, _: &[u8]) -> Result<Record, String> {
        Err("no objects here".into())
    }
}

/// Delivers each message straight into the destination's registry, as a shard's
/// RG.INNERMSGCOMMAND would; `muted` shards' messages are lost.
struct InProcess {
    from: String,
    registries: Arc<HashMap<String, Mutex<Registry>>>,
    muted: Vec<String>,
}

impl Transport for InProcess {
    fn send(&self, to: &str, function: &'static str, payload: Vec<u8>) {
        if self.muted.contains(&self.from) {
            return;
        }
        let (id, message) = decode_message(function, &payload).unwrap().unwrap();
        self.registries[to]
            .lock()
            .unwrap()
            .deliver(&id, &self.from, message);
    }
}

fn long(r: &Record) -> i64 {
    match r {
        Record::Long(v) => *v,
        other => panic!("not a long: {other:?}"),
    }
}

/// Numbers keyed by `n % 7`, repartitioned, counted per key, then collected.
fn count_by_remainder() -> Plan {
    let mut plan = Plan::new();
    plan.push(Step::new(
        StepType::ExtractKey,
        "key",
        "",
        Operation::ExtractKey(Arc::new(|r: &mut Record| -> Result<String, StepError> {
            Ok(format!("k{}", long(r) % 7))
        })),
    ));
    plan.push(Step::plain(StepType::Repartition, Operation::Repartition));
    plan.push(Step::new(
        StepType::AccumulateByKey,
        "count",
        "",
        Operation::AccumulateByKey(Arc::new(
            |_: &str, acc: Option<Record>, _: Record| -> Result<Record, StepError> {
                Ok(Record::Long(acc.map_or(0, |a| long(&a)) + 1))
            },
        )),
    ));
    plan.push(Step::collect());
    plan
}

fn counts(records: &[Record]) -> Vec<(String, i64)> {
    let mut counts: Vec<(String, i64)> = records
        .iter()
        .map(|r| match r {
            Record::KeyValue { key, value } => (key.clone(), long(value.as_ref().unwrap())),
            other => panic!("not a key/value: {other:?}"),
        })
        .collect();
    counts.sort();
    counts
}

type Outcome = (Status, Vec<Record>, Vec<String>);

/// Runs `plan` on the three shards, `data[i]` on shard i, with `a` initiating; shards in
/// `silent` never start. Returns each running shard's status, results and errors.
fn run_distributed(
    plan: &Plan,
    data: [Vec<i64>; 3],
    silent: &[&str],
    max_idle: Duration,
) -> Vec<Outcome> {
    let registries: Arc<HashMap<String, Mutex<Registry>>> = Arc::new(
        SHARDS
            .iter()
            .map(|s| (s.to_string(), Mutex::default()))
            .collect(),
    );
    let muted: Vec<String> = silent.iter().map(|s| s.to_string()).collect();
    let mut threads = Vec::new();
    for (shard, part) in SHARDS.iter().zip(data) {
        if silent.contains(shard) {
            continue;
        }
        let (plan, registries, muted) = (plan.clone(), registries.clone(), muted.clone());
        threads.push(std::thread::spawn(move || {
            let mut execution = Execution::new(&plan);
            let transport = Arc::new(InProcess {
                from: shard.to_string(),
                registries: registries.clone(),
                muted,
            });
            let exchange = Arc::new(ClusterExchange::new(
                "exec-1".into(),
                "a".into(),
                topology(shard),
                transport,
                Arc::new(NoObjects),
                execution.wakeup(),
                max_idle,
            ));
            execution.set_exchange(exchange.clone());
            registries[*shard].lock().unwrap().insert(exchange);
            let mut reader = VecReader::new(part.into_iter().map(Record::Long).collect(), 16);
            loop {
                let status = execution.run(&mut reader, &NoScope);
                if status.is_finished() {
                    break;
                }
                let (woken, wait) = mpsc::channel();
                execution.wakeup().park(Box::new(move || {
                    let _ = woken.send(());
                }));
                // The idle sweep a shard's cron does.
                while wait.recv_timeout(Duration::from_millis(10)).is_err() {
                    registries[*shard]
                        .lock()
                        .unwrap()
                        .sweep(Instant::now(), Duration::from_secs(60));
                }
            }
            registries[*shard].lock().unwrap().remove("exec-1");
            let (results, errors) = execution.take_output();
            (execution.status(), results, errors)
        }));
    }
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

#[test]
fn a_repartitioned_count_equals_the_count_of_one_shard_holding_everything() {
    let data = [
        (0..1000).collect::<Vec<i64>>(),
        (1000..1500).collect(),
        (1500..4000).collect(),
    ];
    let plan = count_by_remainder();
    let mut single = Execution::new(&plan);
    let all: Vec<Record> = data.iter().flatten().copied().map(Record::Long).collect();
    assert_eq!(
        single.run(&mut VecReader::new(all, 64), &NoScope),
        Status::Done
    );
    let expected = counts(single.results());
    assert_eq!(expected.len(), 7);

    let shards = run_distributed(&plan, data, &[], Duration::from_secs(10));
    let (status, results, errors) = &shards[0];
    assert_eq!(*status, Status::Done);
    assert!(errors.is_empty(), "{errors:?}");
    // Each key counted once, on the shard owning it, and everything collected on `a`.
    assert_eq!(counts(results), expected);
    for (status, results, errors) in &shards[1..] {
        assert_eq!(*status, Status::Done);
        assert!(results.is_empty() && errors.is_empty());
    }
}

#[test]
fn errors_of_other_shards_reach_the_initiator_through_a_collect() {
    let mut plan = Plan::new();
    plan.push(Step::map(
        "fail on 13",
        "",
        Arc::new(|r: Record| -> Result<Record, StepError> {
            if long(&r) == 13 {
                return Err(StepError("thirteen".into()));
            }
            Ok(r)
        }),
    ));
    plan.push(Step::collect());
    let shards = run_distributed(
        &plan,
        [vec![1, 2], vec![13, 14], vec![3]],
        &[],
        Duration::from_secs(10),
    );
    let (status, results, errors) = &shards[0];
    assert_eq!(*status, Status::Done);
    assert_eq!(errors, &["thirteen".to_string()]);
    // b's error left b through the collect, so b read on (as in RedisGears): 14 comes too.
    let mut values: Vec<i64> = results.iter().map(long).collect();
    values.sort();
    assert_eq!(values, [1, 2, 3, 14]);
}

#[test]
fn a_silent_shard_ends_the_execution_with_an_error_naming_it() {
    let started = Instant::now();
    let shards = run_distributed(
        &count_by_remainder(),
        [vec![1, 2, 3], vec![4, 5], vec![6]],
        &["c"],
        Duration::from_millis(300),
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    for (status, _, errors) in &shards {
        assert_eq!(*status, Status::Aborted);
        assert_eq!(
            errors,
            &["Execution max idle reached, no answer from shard c".to_string()]
        );
    }
}
