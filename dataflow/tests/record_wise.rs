//! A record-wise plan run on one record gives what an execution of the same plan gives.

use std::sync::Arc;

mod common;

use common::{filter, foreach, long, map, plan};
use dataflow::record_wise::{is_record_wise, run_record};
use dataflow::{
    Execution, NoScope, Operation, Plan, Progress, Record, Status, Step, StepError, StepType,
    VecReader, Wakeup,
};

/// The plans below, each a different mix of steps and failures.
fn plans() -> Vec<Plan> {
    let fail_on = |n: i64| {
        map(move |r| {
            if long(&r) == n {
                Err(StepError(format!("failed on {n}")))
            } else {
                Ok(r)
            }
        })
    };
    let spread = || map(|r| Ok(Record::List((0..long(&r)).map(Record::Long).collect())));
    vec![
        plan(vec![map(|r| Ok(Record::Long(long(&r) + 1)))]),
        plan(vec![filter(|r| Ok(long(r) % 2 == 0)), Step::collect()]),
        plan(vec![spread(), Step::flatmap(), fail_on(2), Step::collect()]),
        plan(vec![
            spread(),
            Step::flatmap(),
            foreach(|r| {
                *r = Record::Long(long(r) * 10);
                Ok(())
            }),
            filter(|r| {
                if long(r) == 30 {
                    Err(StepError("filter failed".into()))
                } else {
                    Ok(long(r) != 10)
                }
            }),
            map(|r| Ok(Record::List(vec![Record::Long(long(&r) + 1), r]))),
            Step::flatmap(),
        ]),
        plan(vec![fail_on(4), spread(), Step::flatmap()]),
        plan(vec![Step::collect()]),
    ]
}

#[test]
fn one_record_gives_what_an_execution_gives() {
    for (i, plan) in plans().iter().enumerate() {
        assert!(is_record_wise(plan), "plan {i}");
        for input in 0..6 {
            let mut execution = Execution::new(plan);
            execution.set_async_allowed(false);
            let status = execution.run(&mut VecReader::new(vec![Record::Long(input)], 1), &NoScope);
            assert_eq!(status, Status::Done);
            let engine_progress = execution.progress();
            let (results, errors) = execution.take_output();

            let progress = Progress::new(plan.steps.len(), false);
            let wakeup = Arc::new(Wakeup::default());
            let out = run_record(plan, Record::Long(input), &progress, &wakeup, &NoScope);
            assert_eq!(out.results, results, "plan {i}, record {input}");
            assert_eq!(out.errors, errors, "plan {i}, record {input}");
            assert_eq!(progress.records_read(), engine_progress.records_read());
            for step in 0..plan.steps.len() {
                assert_eq!(
                    progress.records_out(step),
                    engine_progress.records_out(step),
                    "plan {i}, record {input}, step {step}"
                );
            }
        }
    }
}

#[test]
fn only_record_by_record_steps_qualify() {
    let counted = plan(vec![Step::new(
        StepType::Accumulate,
        "accumulate",
        "",
        Operation::Accumulate(Arc::new(|_: Option<Record>, r: Record| Ok(r))),
    )]);
    assert!(!is_record_wise(&counted));
    assert!(!is_record_wise(&plan(vec![Step::limit(0, 1)])));
    assert!(is_record_wise(&plan(vec![])));
}
