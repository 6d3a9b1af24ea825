//! A plan: the ordered steps of a pipeline, as RG.GETEXECUTION shows them.

use std::sync::Arc;

use crate::callbacks::{
    AccumulateByKeyFn, AccumulateFn, ExtractFn, FilterFn, ForEachFn, MapFn, ReduceFn,
};

/// The native step types, named as RG.GETEXECUTION reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepType {
    Map,
    Filter,
    Group,
    ExtractKey,
    Repartition,
    Reduce,
    Collect,
    ForEach,
    FlatMap,
    Limit,
    Accumulate,
    AccumulateByKey,
}

impl StepType {
    pub fn name(self) -> &'static str {
        match self {
            StepType::Map => "map",
            StepType::Filter => "filter",
            StepType::Group => "group",
            StepType::ExtractKey => "extractkey",
            StepType::Repartition => "repartition",
            StepType::Reduce => "reduce",
            StepType::Collect => "collect",
            StepType::ForEach => "foreach",
            StepType::FlatMap => "flatmap",
            StepType::Limit => "limit",
            StepType::Accumulate => "accumulate",
            StepType::AccumulateByKey => "accumulatebykey",
        }
    }
}

/// What a step does, with its callback.
#[derive(Clone)]
pub enum Operation {
    Map(Arc<dyn MapFn>),
    /// Expands a [`crate::Record::List`] into its elements, last element first (RedisGears pops
    /// from the end); any other record passes as it is.
    FlatMap,
    Filter(Arc<dyn FilterFn>),
    ForEach(Arc<dyn ForEachFn>),
    Accumulate(Arc<dyn AccumulateFn>),
    ExtractKey(Arc<dyn ExtractFn>),
    /// Moves records to the shard owning their key; on one shard records stay where they are.
    Repartition,
    AccumulateByKey(Arc<dyn AccumulateByKeyFn>),
    /// Gathers the values of each key into one list, groups emitted last-seen first.
    Group,
    Reduce(Arc<dyn ReduceFn>),
    /// Brings records to the initiating shard; on one shard a pass-through.
    Collect,
    Limit {
        offset: usize,
        len: usize,
    },
    /// Unwraps the value of a key/value record (RedisGears' `GetValueMapper`).
    GetValue,
}

/// One step of a plan.
#[derive(Clone)]
pub struct Step {
    pub step_type: StepType,
    /// The registered callback name (`RedisGearsPy_PyCallbackMapper`, …) or the type name.
    pub name: String,
    /// Printable form of the step argument (`str(callback)`), empty when there is none.
    pub arg: String,
    pub op: Operation,
}

impl Step {
    pub fn new(step_type: StepType, name: &str, arg: impl Into<String>, op: Operation) -> Step {
        Step {
            step_type,
            name: name.to_string(),
            arg: arg.into(),
            op,
        }
    }

    /// A step without callback, named after its type.
    pub fn plain(step_type: StepType, op: Operation) -> Step {
        Step::new(step_type, step_type.name(), "", op)
    }

    pub fn map(name: &str, arg: impl Into<String>, f: Arc<dyn MapFn>) -> Step {
        Step::new(StepType::Map, name, arg, Operation::Map(f))
    }

    pub fn collect() -> Step {
        Step::plain(StepType::Collect, Operation::Collect)
    }

    pub fn flatmap() -> Step {
        Step::plain(StepType::FlatMap, Operation::FlatMap)
    }

    pub fn limit(offset: usize, len: usize) -> Step {
        Step::plain(StepType::Limit, Operation::Limit { offset, len })
    }
}

/// The most steps a plan may have. Running one nests a call per step; `sync` registrations run
/// on the Redis main thread, whose stack (8 MiB by default) must hold them all with room to spare.
pub const MAX_STEPS: usize = 5000;

/// The steps of a pipeline in the order they were added (the reader is not a step).
#[derive(Clone, Default)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub desc: Option<String>,
}

impl Plan {
    pub fn new() -> Plan {
        Plan::default()
    }

    pub fn push(&mut self, step: Step) -> &mut Plan {
        self.steps.push(step);
        self
    }

    /// Whether any step looks at what the reader produces. False when every step before the
    /// first accumulator that ignores its input (a count) passes records on unseen, so a reader
    /// can skip reading values nobody will look at.
    pub fn inspects_reader_records(&self) -> bool {
        for step in &self.steps {
            match &step.op {
                Operation::Map(f) if !f.inspects_records() => continue,
                Operation::Accumulate(f) if !f.inspects_records() => return false,
                Operation::Collect | Operation::Repartition | Operation::Limit { .. } => continue,
                _ => return true,
            }
        }
        true
    }
}
