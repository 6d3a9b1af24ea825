//! The callbacks a plan's steps call. The module implements them with Python functions; any
//! closure of the right shape implements them too, which is how the engine is tested.

use crate::record::Record;

/// A step callback failed; the text is already formatted the way the user will read it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StepError(pub String);

impl From<&str> for StepError {
    fn from(s: &str) -> Self {
        StepError(s.to_string())
    }
}

impl From<String> for StepError {
    fn from(s: String) -> Self {
        StepError(s)
    }
}

pub type StepResult<T> = Result<T, StepError>;

/// Where callbacks run. The engine enters it once per chunk of records, so a runtime with a
/// global lock (CPython's GIL) is taken once per chunk instead of once per record.
pub trait CallbackScope: Sync {
    fn enter(&self, work: &mut dyn FnMut());
}

/// A scope for callbacks that need no runtime.
pub struct NoScope;

impl CallbackScope for NoScope {
    fn enter(&self, work: &mut dyn FnMut()) {
        work()
    }
}

pub trait MapFn: Send + Sync {
    fn map(&self, record: Record) -> StepResult<Record>;

    /// The record for the answer an async record was completed with (see [`crate::pending`]).
    fn resolved(&self, value: Record) -> StepResult<Record> {
        Ok(value)
    }

    /// False for a map that passes records on untouched without looking at them (a marker
    /// step): the reader may then skip reading what nobody looks at.
    fn inspects_records(&self) -> bool {
        true
    }
}

/// The record is `&mut` so that a callback may swap a native record for its runtime object
/// (converting lazily, once) and later steps see that same object.
pub trait FilterFn: Send + Sync {
    fn keep(&self, record: &mut Record) -> StepResult<bool>;

    /// Whether to keep the record, from the answer its async record was completed with. Natively
    /// null, zero, false and empty values drop it; a runtime judges its own objects.
    fn keep_resolved(&self, value: Record) -> StepResult<bool> {
        Ok(match value {
            Record::Null => false,
            Record::Long(n) => n != 0,
            Record::Double(d) => d != 0.0,
            Record::String(s) => !s.is_empty(),
            Record::List(l) => !l.is_empty(),
            Record::HashSet(h) => !h.is_empty(),
            _ => true,
        })
    }
}

/// Called for its side effects; the record (possibly changed in place) continues.
pub trait ForEachFn: Send + Sync {
    fn each(&self, record: &mut Record) -> StepResult<()>;
}

pub trait AccumulateFn: Send + Sync {
    fn accumulate(&self, acc: Option<Record>, record: Record) -> StepResult<Record>;

    /// False for an accumulator that never looks at the records it folds (a count).
    fn inspects_records(&self) -> bool {
        true
    }
}

/// Extracts the grouping key of a record.
pub trait ExtractFn: Send + Sync {
    fn extract(&self, record: &mut Record) -> StepResult<String>;
}

pub trait AccumulateByKeyFn: Send + Sync {
    fn accumulate(&self, key: &str, acc: Option<Record>, record: Record) -> StepResult<Record>;
}

pub trait ReduceFn: Send + Sync {
    fn reduce(&self, key: &str, records: Vec<Record>) -> StepResult<Record>;
}

impl<F: Fn(Record) -> StepResult<Record> + Send + Sync> MapFn for F {
    fn map(&self, record: Record) -> StepResult<Record> {
        self(record)
    }
}

impl<F: Fn(&mut Record) -> StepResult<bool> + Send + Sync> FilterFn for F {
    fn keep(&self, record: &mut Record) -> StepResult<bool> {
        self(record)
    }
}

impl<F: Fn(&mut Record) -> StepResult<()> + Send + Sync> ForEachFn for F {
    fn each(&self, record: &mut Record) -> StepResult<()> {
        self(record)
    }
}

impl<F: Fn(Option<Record>, Record) -> StepResult<Record> + Send + Sync> AccumulateFn for F {
    fn accumulate(&self, acc: Option<Record>, record: Record) -> StepResult<Record> {
        self(acc, record)
    }
}

impl<F: Fn(&mut Record) -> StepResult<String> + Send + Sync> ExtractFn for F {
    fn extract(&self, record: &mut Record) -> StepResult<String> {
        self(record)
    }
}

impl<F: Fn(&str, Option<Record>, Record) -> StepResult<Record> + Send + Sync> AccumulateByKeyFn
    for F
{
    fn accumulate(&self, key: &str, acc: Option<Record>, record: Record) -> StepResult<Record> {
        self(key, acc, record)
    }
}

impl<F: Fn(&str, Vec<Record>) -> StepResult<Record> + Send + Sync> ReduceFn for F {
    fn reduce(&self, key: &str, records: Vec<Record>) -> StepResult<Record> {
        self(key, records)
    }
}
