//! Python functions behind the engine's callback traits. Each call attaches to Python, which is
//! nearly free here: the engine already holds the GIL for the whole chunk ([`PyScope`]).

use dataflow::callbacks::StepResult;
use dataflow::{
    AccumulateByKeyFn, AccumulateFn, CallbackScope, ExtractFn, FilterFn, ForEachFn, MapFn, Record,
    ReduceFn, StepError,
};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString};

use super::convert::{object_record, record_as_py, record_into_py};
use super::errors::format_error;
use super::futures::{answer, refuse_coroutine};

/// Holds the GIL while the engine pulls one chunk of records through the steps.
pub struct PyScope;

impl CallbackScope for PyScope {
    fn enter(&self, work: &mut dyn FnMut()) {
        Python::attach(|_| work())
    }
}

fn step_error(py: Python<'_>, err: PyErr) -> StepError {
    StepError(format_error(py, &err))
}

/// A user callback of any step.
pub struct PyCallback(pub Py<PyAny>);

impl PyCallback {
    fn call<'py>(
        &self,
        py: Python<'py>,
        args: impl pyo3::call::PyCallArgs<'py>,
    ) -> StepResult<Bound<'py, PyAny>> {
        profiled(py, || self.0.bind(py).call1(args)).map_err(|e| step_error(py, e))
    }
}

/// Runs `f` inside the current session's profiler while ProfileExecutions is on.
pub fn profiled<'py, R>(py: Python<'py>, f: impl FnOnce() -> R) -> R {
    if !crate::config::PROFILING.load(std::sync::atomic::Ordering::Relaxed) {
        return f();
    }
    let profiler = super::context::current_session().and_then(|s| s.profiler(py).ok());
    let Some(profiler) = profiler else {
        return f();
    };
    let profiler = profiler.bind(py);
    let _ = profiler.call_method0("enable");
    let result = f();
    let _ = profiler.call_method0("disable");
    result
}

fn optional<'py>(py: Python<'py>, acc: Option<Record>) -> StepResult<Bound<'py, PyAny>> {
    match acc {
        Some(r) => record_into_py(py, r).map_err(|e| step_error(py, e)),
        None => Ok(py.None().into_bound(py)),
    }
}

/// `RedisGearsPy_ToPyRecordMapper`: where RedisGears converts native records to Python. Here
/// conversion is lazy (the first Python callback to touch a record converts it, and final
/// records go out by the Python reply rules), so the step passes records on untouched and a plan
/// that never looks at its records never pays for converting them.
pub struct ToPyRecord;

impl MapFn for ToPyRecord {
    fn map(&self, record: Record) -> StepResult<Record> {
        Ok(record)
    }

    fn inspects_records(&self) -> bool {
        false
    }
}

/// `RedisGearsPy_PyCallbackMapper`.
pub struct PyMapper(pub PyCallback);

impl MapFn for PyMapper {
    fn map(&self, record: Record) -> StepResult<Record> {
        Python::attach(|py| {
            let arg = record_into_py(py, record).map_err(|e| step_error(py, e))?;
            let out = answer(py, self.0.call(py, (arg,))?)?;
            Ok(out.map_or(Record::Null, object_record))
        })
    }
}

/// A returned `list` becomes a list record that the flatmap step expands; anything else stays
/// one record.
fn flat_record(value: Bound<'_, PyAny>) -> Record {
    match value.cast::<PyList>() {
        Ok(list) => Record::List(list.iter().map(object_record).collect()),
        Err(_) => object_record(value),
    }
}

/// `RedisGearsPy_PyCallbackFlatMapper`: a returned `list` becomes a list record that the
/// flatmap step expands; anything else stays one record.
pub struct PyFlatMapper(pub PyCallback);

impl MapFn for PyFlatMapper {
    fn map(&self, record: Record) -> StepResult<Record> {
        Python::attach(|py| {
            let arg = record_into_py(py, record).map_err(|e| step_error(py, e))?;
            let out = answer(py, self.0.call(py, (arg,))?)?;
            Ok(out.map_or(Record::Null, flat_record))
        })
    }

    fn resolved(&self, value: Record) -> StepResult<Record> {
        Python::attach(|py| {
            let value = record_into_py(py, value).map_err(|e| step_error(py, e))?;
            Ok(flat_record(value))
        })
    }
}

/// `RedisGearsPy_PyCallbackFilter`.
pub struct PyFilter(pub PyCallback);

impl FilterFn for PyFilter {
    fn keep(&self, record: &mut Record) -> StepResult<bool> {
        Python::attach(|py| {
            let arg = record_as_py(py, record).map_err(|e| step_error(py, e))?;
            match answer(py, self.0.call(py, (arg,))?)? {
                Some(out) => out.is_truthy().map_err(|e| step_error(py, e)),
                None => Ok(false),
            }
        })
    }

    fn keep_resolved(&self, value: Record) -> StepResult<bool> {
        Python::attach(|py| {
            let value = record_into_py(py, value).map_err(|e| step_error(py, e))?;
            value.is_truthy().map_err(|e| step_error(py, e))
        })
    }
}

/// `RedisGearsPy_PyCallbackForEach`: the record, possibly changed in place, continues.
pub struct PyForEach(pub PyCallback);

impl ForEachFn for PyForEach {
    fn each(&self, record: &mut Record) -> StepResult<()> {
        Python::attach(|py| {
            let arg = record_as_py(py, record).map_err(|e| step_error(py, e))?;
            answer(py, self.0.call(py, (arg,))?).map(|_| ())
        })
    }
}

/// `RedisGearsPy_PyCallbackAccumulate`.
pub struct PyAccumulate(pub PyCallback);

impl AccumulateFn for PyAccumulate {
    fn accumulate(&self, acc: Option<Record>, record: Record) -> StepResult<Record> {
        Python::attach(|py| {
            let acc = optional(py, acc)?;
            let arg = record_into_py(py, record).map_err(|e| step_error(py, e))?;
            let out = answer(py, self.0.call(py, (acc, arg))?)?;
            Ok(out.map_or(Record::Null, object_record))
        })
    }
}

/// `RedisGearsPy_PyCallbackExtractor`: a key that is not a `str` is replaced by its `repr`.
pub struct PyExtractor(pub PyCallback);

impl ExtractFn for PyExtractor {
    fn extract(&self, record: &mut Record) -> StepResult<String> {
        Python::attach(|py| {
            let arg = record_as_py(py, record).map_err(|e| step_error(py, e))?;
            let key = self.0.call(py, (arg,))?;
            refuse_coroutine(py, &key, "extractor")?;
            let text = match key.cast::<PyString>() {
                Ok(s) => s.to_str().map(str::to_string),
                Err(_) => key.repr().map(|r| r.to_string()),
            };
            text.map_err(|e| step_error(py, e))
        })
    }
}

/// `RedisGearsPy_PyCallbackAccumulateByKey`.
pub struct PyAccumulateByKey(pub PyCallback);

impl AccumulateByKeyFn for PyAccumulateByKey {
    fn accumulate(&self, key: &str, acc: Option<Record>, record: Record) -> StepResult<Record> {
        Python::attach(|py| {
            let acc = optional(py, acc)?;
            let arg = record_into_py(py, record).map_err(|e| step_error(py, e))?;
            let out = answer(py, self.0.call(py, (key, acc, arg))?)?;
            Ok(out.map_or(Record::Null, object_record))
        })
    }
}

/// `RedisGearsPy_PyCallbackReducer`: called once per key with all its records.
pub struct PyReducer(pub PyCallback);

impl ReduceFn for PyReducer {
    fn reduce(&self, key: &str, records: Vec<Record>) -> StepResult<Record> {
        Python::attach(|py| {
            let list = PyList::empty(py);
            for r in records {
                let obj = record_into_py(py, r).map_err(|e| step_error(py, e))?;
                list.append(obj).map_err(|e| step_error(py, e))?;
            }
            // A non-callable reducer fails outside any Python frame, so without traceback.
            let out = self.0.call(py, (key, list))?;
            refuse_coroutine(py, &out, "reduce")?;
            Ok(object_record(out))
        })
    }
}

/// `count()`'s per-record step, `lambda a, r: 1 + (a if a else 0)`, run natively: it never
/// looks at the records, so nothing upstream needs to read or convert them. (The step that sums
/// the partial counts sees one record per shard and stays in Python.)
pub struct NativeCount;

impl AccumulateFn for NativeCount {
    fn accumulate(&self, acc: Option<Record>, _record: Record) -> StepResult<Record> {
        Ok(Record::Long(match acc {
            Some(Record::Long(n)) => n + 1,
            _ => 1,
        }))
    }

    fn inspects_records(&self) -> bool {
        false
    }
}

/// `countby()`'s per-record reducer, `seqOp(k, a if a else 0, r)` with `seqOp = 1 + a`, run
/// natively; an accumulator it did not make itself goes to the Python lambda it stands for.
pub struct NativeCountByKey(pub PyAccumulateByKey);

impl AccumulateByKeyFn for NativeCountByKey {
    fn accumulate(&self, key: &str, acc: Option<Record>, record: Record) -> StepResult<Record> {
        match acc {
            None => Ok(Record::Long(1)),
            Some(Record::Long(a)) if a < i64::MAX => Ok(Record::Long(a + 1)),
            acc => self.0.accumulate(key, acc, record),
        }
    }
}
