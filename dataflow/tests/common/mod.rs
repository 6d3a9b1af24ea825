//! Plans of plain closures, shared by the engine's test files (each uses some of them).
#![allow(dead_code)]

use std::sync::Arc;

use dataflow::{Operation, Plan, Record, Step, StepError, StepType};

pub fn long(r: &Record) -> i64 {
    match r {
        Record::Long(v) => *v,
        other => panic!("not a long: {other:?}"),
    }
}

pub fn map(f: impl Fn(Record) -> Result<Record, StepError> + Send + Sync + 'static) -> Step {
    Step::map("map", "", Arc::new(f))
}

pub fn filter(f: impl Fn(&mut Record) -> Result<bool, StepError> + Send + Sync + 'static) -> Step {
    Step::new(
        StepType::Filter,
        "filter",
        "",
        Operation::Filter(Arc::new(f)),
    )
}

pub fn foreach(f: impl Fn(&mut Record) -> Result<(), StepError> + Send + Sync + 'static) -> Step {
    Step::new(
        StepType::ForEach,
        "foreach",
        "",
        Operation::ForEach(Arc::new(f)),
    )
}

pub fn plan(steps: Vec<Step>) -> Plan {
    let mut p = Plan::new();
    for s in steps {
        p.push(s);
    }
    p
}
