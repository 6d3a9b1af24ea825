//! The native `redisgears` Python module: `gearsCtx` and the plan type `PyFlatExecution` whose
//! methods are the primitive operations, plus the builtins the prelude binds (`log`,
//! `executeCommand`, `config_get`, `flatError`).

use std::sync::Arc;

use dataflow::plan::MAX_STEPS;
use dataflow::{
    AccumulateByKeyFn, AccumulateFn, Operation, Plan, Prefetch, Reader, Step, StepType,
};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFunction, PyInt, PyString, PyTuple};

use super::callbacks::{
    NativeCount, NativeCountByKey, PyAccumulate, PyAccumulateByKey, PyCallback, PyExtractor,
    PyFilter, PyFlatMapper, PyForEach, PyMapper, PyReducer, ToPyRecord,
};
use super::context;
use super::errors::{create_exception_types, flat_error, gears_error};
use crate::readers::keys::{KeyContent, KeysReader};
use crate::readers::python::PythonReader;
use crate::readers::stream::StreamReader;
use crate::redis_calls::CallReply;
use crate::registrations::{
    self, CommandKeys, CommandTrigger, Hook, KeySpec, KeysTrigger, Mode, PendingRegistration,
    Trigger, KEY_TYPES,
};
use crate::sessions::Session;
use crate::{config, ids, redis_calls};

/// The native readers `gearsCtx` accepts; `ShardIDReader` (no `s`) is internal and cannot run.
const NATIVE_READERS: [&str; 5] = [
    "KeysReader",
    "StreamReader",
    "CommandReader",
    "PythonReader",
    "ShardIDReader",
];

/// A plan under construction: the reader's name and the steps recorded so far.
#[pyclass(name = "PyFlatExecution", module = "redisgears")]
pub struct PyFlatExecution {
    reader: String,
    plan: Plan,
    /// The Python callbacks of the plan, checked for picklability at register().
    callbacks: Vec<Py<PyAny>>,
    /// The builder calls that made the plan, with their arguments: what a registration saves
    /// to be built again after a restart, on replicas and from the AOF.
    ops: Vec<(&'static str, Py<PyTuple>)>,
}

/// The callback argument of `op`, which must be a genuine Python function.
fn function_arg(args: &Bound<'_, PyTuple>, op: &str, what: &str) -> PyResult<Py<PyAny>> {
    if args.len() != 1 {
        return Err(gears_error(&format!(
            "wrong number of args to {op} function"
        )));
    }
    let f = args.get_item(0)?;
    if !f.is_instance_of::<PyFunction>() {
        return Err(gears_error(&format!("{what} argument must be a function")));
    }
    Ok(f.unbind())
}

/// The attribute that marks a prelude lambda as one the engine may run natively.
const NATIVE_MARK: &str = "__gears_native__";

/// Which native step stands for `f`, if the prelude marked it with `_native`.
fn native_kind(py: Python<'_>, f: &Py<PyAny>) -> Option<String> {
    f.bind(py)
        .getattr(NATIVE_MARK)
        .ok()
        .and_then(|k| k.extract::<String>().ok())
}

fn describe(py: Python<'_>, f: &Py<PyAny>) -> String {
    f.bind(py).str().map(|s| s.to_string()).unwrap_or_default()
}

fn to_py_step() -> Step {
    Step::map("RedisGearsPy_ToPyRecordMapper", "", Arc::new(ToPyRecord))
}

impl PyFlatExecution {
    fn record(&mut self, name: &'static str, args: &Bound<'_, PyTuple>) {
        self.ops.push((name, args.clone().unbind()));
    }

    fn push_callback(
        &mut self,
        py: Python<'_>,
        step_type: StepType,
        name: &str,
        f: &Py<PyAny>,
        op: Operation,
    ) {
        self.plan
            .push(Step::new(step_type, name, describe(py, f), op));
        self.callbacks.push(f.clone_ref(py));
    }

    /// extractkey (+ repartition) + accumulatebykey/group+reduce + map back to Python.
    fn push_grouping(
        &mut self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        op: &str,
        repartition: bool,
    ) -> PyResult<()> {
        if args.len() != 2 {
            return Err(gears_error(&format!(
                "wrong number of args to {op} function"
            )));
        }
        let extractor = args.get_item(0)?;
        let reducer = args.get_item(1)?;
        let checked = if op == "batchgroupby" {
            "batchgroupby"
        } else {
            "groupby"
        };
        if !extractor.is_instance_of::<PyFunction>() {
            return Err(gears_error(&format!(
                "{checked} extractor argument must be a function"
            )));
        }
        // RedisGears' batchgroupby re-checks the extractor instead of the reducer: a
        // non-function reducer only fails when it is called.
        if op != "batchgroupby" && !reducer.is_instance_of::<PyFunction>() {
            return Err(gears_error("groupby reducer argument must be a function"));
        }
        let (extractor, reducer) = (extractor.unbind(), reducer.unbind());
        self.push_callback(
            py,
            StepType::ExtractKey,
            "RedisGearsPy_PyCallbackExtractor",
            &extractor,
            Operation::ExtractKey(Arc::new(PyExtractor(PyCallback(extractor.clone_ref(py))))),
        );
        if repartition {
            self.plan
                .push(Step::plain(StepType::Repartition, Operation::Repartition));
        }
        if op == "batchgroupby" {
            self.plan
                .push(Step::plain(StepType::Group, Operation::Group));
            self.push_callback(
                py,
                StepType::Reduce,
                "RedisGearsPy_PyCallbackReducer",
                &reducer,
                Operation::Reduce(Arc::new(PyReducer(PyCallback(reducer.clone_ref(py))))),
            );
        } else {
            let python = PyAccumulateByKey(PyCallback(reducer.clone_ref(py)));
            let op: Arc<dyn AccumulateByKeyFn> = match native_kind(py, &reducer).as_deref() {
                Some("count") => Arc::new(NativeCountByKey(python)),
                _ => Arc::new(python),
            };
            self.push_callback(
                py,
                StepType::AccumulateByKey,
                "RedisGearsPy_PyCallbackAccumulateByKey",
                &reducer,
                Operation::AccumulateByKey(op),
            );
        }
        self.plan.push(to_py_step());
        Ok(())
    }
}

/// Chunks of keyspace reads prefetched on a helper thread, so the scan (under the Redis lock)
/// overlaps the Python steps (under the GIL). Two chunks ahead are enough to keep both busy.
fn read_ahead(reader: Box<dyn Reader>) -> PyResult<Box<dyn Reader>> {
    match Prefetch::spawn(reader, 2, "gears-read-ahead") {
        Ok(prefetch) => Ok(Box::new(prefetch)),
        // Only when the process is out of threads.
        Err(e) => Err(gears_error(&format!("failed creating execution: {e}"))),
    }
}

/// Every callback must survive cloudpickle: registrations travel to replicas, the AOF and the
/// RDB.
fn check_picklable(py: Python<'_>, callbacks: &[Py<PyAny>]) -> PyResult<()> {
    let dumps = py.import("cloudpickle")?.getattr("dumps")?;
    for f in callbacks {
        if let Err(e) = dumps.call1((f,)) {
            let name = f
                .bind(py)
                .getattr("__name__")
                .map(|n| n.to_string())
                .unwrap_or_default();
            return Err(gears_error(&format!(
                "Error occured when serialized a python callback, callback={name} error={}",
                super::errors::format_error(py, &e)
            )));
        }
    }
    Ok(())
}

/// An optional iterable of `str` keyword argument.
fn str_list(
    value: Option<Bound<'_, PyAny>>,
    not_iterable: &str,
    not_string: &str,
) -> PyResult<Option<Vec<String>>> {
    let Some(value) = value.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    let items = value.try_iter().map_err(|_| gears_error(not_iterable))?;
    let mut out = Vec::new();
    for item in items {
        let item = item?;
        let s = item
            .cast::<PyString>()
            .map_err(|_| gears_error(not_string))?;
        out.push(s.to_str()?.to_string());
    }
    Ok(Some(out))
}

/// The trigger arguments of a CommandReader registration (readers.md §7.2). Only `trigger=`
/// registrations exist yet; `hook=` needs command filters (the CommandReader issue).
fn command_trigger<'py>(
    py: Python<'py>,
    kwarg: &dyn Fn(&str) -> PyResult<Option<Bound<'py, PyAny>>>,
) -> PyResult<CommandTrigger> {
    let text = |name: &str, error: &str| -> PyResult<Option<String>> {
        match kwarg(name)?.filter(|v| !v.is_none()) {
            None => Ok(None),
            Some(v) => Ok(Some(
                v.cast::<PyString>()
                    .map_err(|_| gears_error(error))?
                    .to_str()?
                    .to_string(),
            )),
        }
    };
    let trigger = text("trigger", "trigger argument is not string")?;
    let hook = text("hook", "hook argument is not string")?;
    let keyprefix = text("keyprefix", "keyprefix argument is not string")?;
    let inorder = bool_kwarg_value(kwarg("inorder")?, false, "inorder argument is be boolean")?;
    if let Some(command) = hook {
        return hook_trigger(py, command, keyprefix, inorder);
    }
    let Some(name) = trigger else {
        return Err(gears_error("no trigger or hook argument was given"));
    };
    // Unique per shard, unless the registration holding it belongs to the session this script
    // upgrades; and unique within one script.
    let session = context::current_session().map(|s| s.id.clone());
    if let Some(existing) = registrations::by_trigger(&name) {
        if Some(&existing.session.id) != session.as_ref() {
            return Err(gears_error("trigger already registered"));
        }
    }
    if context::script_has_trigger(&name) {
        return Err(gears_error("trigger already registered in this session"));
    }
    Ok(CommandTrigger {
        name,
        inorder,
        hook: None,
    })
}

/// A `hook=` registration on `command`, checked against COMMAND INFO (readers.md §7.4).
fn hook_trigger(
    py: Python<'_>,
    command: String,
    keyprefix: Option<String>,
    inorder: bool,
) -> PyResult<CommandTrigger> {
    let (flags, keys) = command_info(py, &command)
        .ok_or_else(|| gears_error("Can not override an unexisting command"))?;
    check_hookable(&flags, "override")?;
    if keyprefix.is_some() {
        check_key_positions(&flags, keys, "override")?;
    }
    let name = command.to_ascii_lowercase();
    // Hooks stack only on sync hooks (a non-sync one cannot run from inside another command).
    let on_non_sync = |r: &registrations::Registration| {
        r.mode != Mode::Sync
            && matches!(&r.trigger, Trigger::Command(c) if c.hook.is_some() && c.name == name)
    };
    if registrations::all().iter().any(|r| on_non_sync(r)) {
        return Err(gears_error("Can not override a none sync registration"));
    }
    if context::script_has_non_sync_hook(&name) {
        return Err(gears_error(
            "Can not override a none sync registration which already created on this session",
        ));
    }
    Ok(CommandTrigger {
        name,
        inorder,
        hook: Some(Hook { keyprefix, keys }),
    })
}

/// COMMAND INFO of `command`: its flags and key positions, None if unknown.
fn command_info(py: Python<'_>, command: &str) -> Option<(Vec<String>, KeySpec)> {
    let info = redis_calls::call(
        py,
        "COMMAND",
        &[b"INFO".to_vec(), command.as_bytes().to_vec()],
    );
    let Ok(CallReply::Array(mut entries)) = info else {
        return None;
    };
    let Some(CallReply::Array(entry)) = entries.pop() else {
        return None;
    };
    let flags = match entry.get(2) {
        Some(CallReply::Array(flags)) => flags
            .iter()
            .filter_map(|f| match f {
                CallReply::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let number = |i: usize| match entry.get(i) {
        Some(CallReply::Integer(n)) => *n,
        _ => 0,
    };
    let keys = KeySpec {
        first: number(3),
        last: number(4),
        step: number(5),
    };
    Some((flags, keys))
}

/// Commands that may not run from a script cannot be hooked; `verb` is how the reader words it
/// (`override` for CommandReader hooks, `hook` for KeysReader `commands=`).
fn check_hookable(flags: &[String], verb: &str) -> PyResult<()> {
    if flags.iter().any(|f| f == "noscript") {
        return Err(gears_error(&format!(
            "Can not {verb} a command which are not allowed inside a script"
        )));
    }
    Ok(())
}

/// A command selected by key prefix needs fixed, positive key positions (COMMAND INFO).
fn check_key_positions(flags: &[String], keys: KeySpec, verb: &str) -> PyResult<()> {
    if flags.iter().any(|f| f == "movablekeys") {
        return Err(gears_error(&format!(
            "Can not {verb} a command with moveable keys by key prefix"
        )));
    }
    if keys.first <= 0 {
        return Err(gears_error(&format!(
            "Can not {verb} a command by key prefix with none positive first key"
        )));
    }
    if keys.step <= 0 {
        // RedisGears words this one the same way for both readers.
        return Err(gears_error(
            "Can not override a command by key prefix with none positive jump",
        ));
    }
    Ok(())
}

/// A command of KeysReader `commands=`, checked as readers.md §2.4 says.
fn hooked_command_keys(py: Python<'_>, command: &str, prefix: &str) -> PyResult<CommandKeys> {
    let (flags, keys) =
        command_info(py, command).ok_or_else(|| gears_error("bad reply on COMMAND command"))?;
    check_hookable(&flags, "hook")?;
    check_key_positions(&flags, keys, "hook")?;
    if prefix.is_empty() {
        return Err(gears_error("Empty perfix given to command hooker"));
    }
    Ok(CommandKeys {
        name: command.to_ascii_lowercase(),
        keys,
    })
}

/// The trigger arguments of a KeysReader registration (readers.md §2.3).
fn keys_trigger<'py>(
    py: Python<'py>,
    kwarg: &dyn Fn(&str) -> PyResult<Option<Bound<'py, PyAny>>>,
) -> PyResult<KeysTrigger> {
    let prefix = prefix_kwarg(kwarg)?;
    let event_types = str_list(
        kwarg("eventTypes")?,
        "given eventTypes is not iterable",
        "given event type is not string",
    )?;
    let key_types = str_list(
        kwarg("keyTypes")?,
        "given keyTypes is not iterable",
        "given key type is not string",
    )?;
    if let Some(types) = &key_types {
        if types.iter().any(|t| !KEY_TYPES.contains(&t.as_str())) {
            return Err(gears_error("unknown key type"));
        }
    }
    let read_value = bool_kwarg_value(kwarg("readValue")?, true, "readValue is not boolean")?;
    let commands = str_list(
        kwarg("commands")?,
        "given commands is not iterable",
        "given command type is not string",
    )?
    .filter(|c| !c.is_empty());
    let commands = match commands {
        None => None,
        Some(names) => Some(
            names
                .iter()
                .map(|name| hooked_command_keys(py, name, &prefix))
                .collect::<PyResult<Vec<_>>>()?,
        ),
    };
    Ok(KeysTrigger {
        prefix: prefix.into_bytes(),
        event_types,
        key_types,
        read_value,
        commands,
    })
}

/// The `prefix` of a KeysReader or StreamReader registration, `*` if none.
pub(super) fn prefix_kwarg<'py>(
    kwarg: &dyn Fn(&str) -> PyResult<Option<Bound<'py, PyAny>>>,
) -> PyResult<String> {
    match kwarg("prefix")? {
        None => Ok("*".to_string()),
        Some(p) => Ok(p
            .cast::<PyString>()
            .map_err(|_| gears_error("regex argument must be a string"))?
            .to_str()?
            .to_string()),
    }
}

fn bool_kwarg_value(value: Option<Bound<'_, PyAny>>, default: bool, err: &str) -> PyResult<bool> {
    match value {
        None => Ok(default),
        Some(v) if v.is_instance_of::<PyBool>() => v.is_truthy(),
        Some(_) => Err(gears_error(err)),
    }
}

/// The positional key pattern (or stream name) of KeysReader and StreamReader, `*` if none.
fn regex_arg(args: &Bound<'_, PyTuple>) -> PyResult<String> {
    if args.is_empty() {
        return Ok("*".to_string());
    }
    Ok(args
        .get_item(0)?
        .cast::<PyString>()
        .map_err(|_| gears_error("regex argument must be a string"))?
        .to_str()?
        .to_string())
}

fn bool_kwarg(
    kwargs: Option<&Bound<'_, PyDict>>,
    key: &str,
    default: bool,
    err: &str,
) -> PyResult<bool> {
    match kwargs.map(|k| k.get_item(key)).transpose()?.flatten() {
        None => Ok(default),
        Some(v) if v.is_instance_of::<PyBool>() => v.is_truthy(),
        Some(_) => Err(gears_error(err)),
    }
}

#[pymethods]
impl PyFlatExecution {
    #[pyo3(signature = (*args))]
    fn map(&mut self, py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<()> {
        let f = function_arg(args, "map", "map")?;
        let op = Operation::Map(Arc::new(PyMapper(PyCallback(f.clone_ref(py)))));
        self.push_callback(py, StepType::Map, "RedisGearsPy_PyCallbackMapper", &f, op);
        self.record("map", args);
        Ok(())
    }

    #[pyo3(signature = (*args))]
    fn flatmap(&mut self, py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<()> {
        let f = function_arg(args, "flatmap", "flatmap")?;
        let op = Operation::Map(Arc::new(PyFlatMapper(PyCallback(f.clone_ref(py)))));
        self.push_callback(
            py,
            StepType::Map,
            "RedisGearsPy_PyCallbackFlatMapper",
            &f,
            op,
        );
        self.plan.push(Step::flatmap());
        self.record("flatmap", args);
        Ok(())
    }

    #[pyo3(signature = (*args))]
    fn filter(&mut self, py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<()> {
        let f = function_arg(args, "filter", "filter")?;
        let op = Operation::Filter(Arc::new(PyFilter(PyCallback(f.clone_ref(py)))));
        self.push_callback(
            py,
            StepType::Filter,
            "RedisGearsPy_PyCallbackFilter",
            &f,
            op,
        );
        self.record("filter", args);
        Ok(())
    }

    #[pyo3(signature = (*args))]
    fn foreach(&mut self, py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<()> {
        let f = function_arg(args, "foreach", "foreach")?;
        let op = Operation::ForEach(Arc::new(PyForEach(PyCallback(f.clone_ref(py)))));
        self.push_callback(
            py,
            StepType::ForEach,
            "RedisGearsPy_PyCallbackForEach",
            &f,
            op,
        );
        self.record("foreach", args);
        Ok(())
    }

    #[pyo3(signature = (*args))]
    fn accumulate(&mut self, py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<()> {
        let f = function_arg(args, "accumulate", "accumulate")?;
        let op: Arc<dyn AccumulateFn> = match native_kind(py, &f).as_deref() {
            Some("count") => Arc::new(NativeCount),
            _ => Arc::new(PyAccumulate(PyCallback(f.clone_ref(py)))),
        };
        let op = Operation::Accumulate(op);
        self.push_callback(
            py,
            StepType::Accumulate,
            "RedisGearsPy_PyCallbackAccumulate",
            &f,
            op,
        );
        self.record("accumulate", args);
        Ok(())
    }

    #[pyo3(signature = (*args))]
    fn repartition(&mut self, py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<()> {
        let f = function_arg(args, "repartition", "repartition")?;
        let op = Operation::ExtractKey(Arc::new(PyExtractor(PyCallback(f.clone_ref(py)))));
        self.push_callback(
            py,
            StepType::ExtractKey,
            "RedisGearsPy_PyCallbackExtractor",
            &f,
            op,
        );
        self.plan
            .push(Step::plain(StepType::Repartition, Operation::Repartition));
        self.plan.push(Step::new(
            StepType::Map,
            "GetValueMapper",
            "",
            Operation::GetValue,
        ));
        self.record("repartition", args);
        Ok(())
    }

    #[pyo3(signature = (*args))]
    fn localgroupby(&mut self, py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.push_grouping(py, args, "groupby", false)?;
        self.record("localgroupby", args);
        Ok(())
    }

    #[pyo3(signature = (*args))]
    fn groupby(&mut self, py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.push_grouping(py, args, "groupby", true)?;
        self.record("groupby", args);
        Ok(())
    }

    #[pyo3(signature = (*args))]
    fn batchgroupby(&mut self, py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.push_grouping(py, args, "batchgroupby", true)?;
        self.record("batchgroupby", args);
        Ok(())
    }

    #[pyo3(signature = (*args))]
    fn collect(&mut self, args: &Bound<'_, PyTuple>) -> PyResult<()> {
        if !args.is_empty() {
            return Err(gears_error("wrong number of args to collect function"));
        }
        self.plan.push(Step::collect());
        self.record("collect", args);
        Ok(())
    }

    #[pyo3(signature = (*args))]
    fn limit(&mut self, args: &Bound<'_, PyTuple>) -> PyResult<()> {
        if args.is_empty() || args.len() > 2 {
            return Err(gears_error("wrong number of args to limit function"));
        }
        let mut numbers = Vec::new();
        for arg in args.iter() {
            if !arg.is_instance_of::<PyInt>() {
                return Err(gears_error("limit argument must be a number"));
            }
            // C long converted to an unsigned size: negative numbers become huge windows.
            let v: i64 = arg.extract().unwrap_or(i64::MAX);
            numbers.push(v as u64 as usize);
        }
        let len = numbers[0];
        let offset = numbers.get(1).copied().unwrap_or(0);
        self.plan.push(Step::limit(offset, len));
        self.record("limit", args);
        Ok(())
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn run(
        &mut self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        if !context::on_gears_thread() {
            return Err(gears_error(
                "Can only run execution on registered gears thread",
            ));
        }
        if context::script_already_ran() {
            return Err(gears_error(
                "Can not run more then 1 executions in a single script",
            ));
        }
        self.check_length()?;
        let reader = self.run_reader(args, kwargs)?;
        let mode = match kwargs.map(|k| k.get_item("mode")).transpose()?.flatten() {
            None => "async".to_string(),
            Some(mode) => {
                let mode = mode
                    .cast::<PyString>()
                    .map_err(|_| gears_error("execution mode must be a string"))?;
                let mode = mode.to_str()?;
                if mode != "async" && mode != "async_local" {
                    return Err(gears_error("unknown execution mode"));
                }
                mode.to_string()
            }
        };
        let session = context::current_session().unwrap_or_else(|| Session::new(None, None));
        // At a script's top level the script's client gets the results; anywhere else (a step,
        // a coroutine) the caller gets a future to await (gearsbuilder.md §5.1).
        let future = if context::in_script() {
            None
        } else {
            Some(
                super::prelude_function(py, "createFuture")?
                    .call0()?
                    .unbind(),
            )
        };
        // In a cluster an `async` run runs on every shard (§8.4).
        let returned = future.as_ref().map(|f| f.clone_ref(py));
        let entry = if mode == "async" && crate::shards::is_cluster() {
            check_picklable(py, &self.callbacks)?;
            let saved = self.saved_run_form(py, args, kwargs)?;
            crate::shards::executions::start(self.plan.clone(), reader, session, future, saved)
        } else {
            crate::runner::start(self.plan.clone(), reader, session, future)
        }
        .map_err(|e| gears_error(&e))?;
        context::script_started(&entry);
        Ok(returned.unwrap_or_else(|| py.None()))
    }

    #[pyo3(signature = (**kwargs))]
    fn register(&mut self, py: Python<'_>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<String> {
        if !context::on_gears_thread() {
            return Err(gears_error(
                "Can only register execution on registered gears thread",
            ));
        }
        let pending = Box::new(self.prepare_registration(py, kwargs, None)?);
        let id = pending.id.clone();
        // Inside RG.PYEXECUTE it waits for the script to succeed; elsewhere (a step) it applies
        // at once.
        if let Err(pending) = context::script_registered(pending) {
            // From a step: the registration joins the session of the code running it.
            let session = context::current_session().unwrap_or_else(|| Session::new(None, None));
            let batch = crate::persist::batch_of(&session, &pending);
            registrations::apply(*pending, &session);
            // Replicas and the AOF learn of it too (Redis lock first: the GIL is let go).
            py.detach(|| {
                redis_calls::with_redis_lock(|ctx| {
                    crate::persist::BatchExt::replicate(&batch, ctx)
                });
                crate::shards::registrations::broadcast_batch(&batch, session.requirements());
            });
        }
        Ok(id)
    }
}

/// The `register()` arguments a registration keeps in its saved form.
const REGISTER_ARGS: [&str; 17] = [
    "prefix",
    "mode",
    "onRegistered",
    "onUnregistered",
    "eventTypes",
    "keyTypes",
    "readValue",
    "commands",
    "trigger",
    "hook",
    "keyprefix",
    "inorder",
    "batch",
    "duration",
    "onFailedPolicy",
    "onFailedRetryInterval",
    "trimStream",
];

/// The version of a registration's saved form.
const SAVED_FORM_VERSION: u32 = 1;

impl PyFlatExecution {
    /// A new plan for `reader`, its first step converting records to Python.
    fn new(reader: String, desc: Option<String>) -> PyFlatExecution {
        let mut plan = Plan::new();
        plan.desc = desc;
        plan.push(to_py_step());
        PyFlatExecution {
            reader,
            plan,
            callbacks: Vec::new(),
            ops: Vec::new(),
        }
    }

    /// A plan longer than [`MAX_STEPS`] is refused: running it could overflow a thread's stack.
    fn check_length(&self) -> PyResult<()> {
        let steps = self.plan.steps.len();
        if steps > MAX_STEPS {
            return Err(gears_error(&format!(
                "the pipeline has {steps} steps, at most {MAX_STEPS} are supported"
            )));
        }
        Ok(())
    }

    /// The reader `run(*args, **kwargs)` reads with.
    fn run_reader(
        &self,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Box<dyn Reader>> {
        let reader: Box<dyn Reader> = match self.reader.as_str() {
            "PythonReader" => {
                if args.len() != 1 {
                    return Err(gears_error("python reader function is not given"));
                }
                let f = args.get_item(0)?;
                if !f.is_instance_of::<PyFunction>() {
                    return Err(gears_error("pyreader argument must be a function"));
                }
                Box::new(PythonReader::new(f.unbind()))
            }
            "KeysReader" => {
                let pattern = regex_arg(args)?;
                let no_scan =
                    bool_kwarg(kwargs, "noScan", false, "exactMatch value is not boolean")?;
                let read_value =
                    bool_kwarg(kwargs, "readValue", true, "readValue value is not boolean")?;
                // What nobody looks at (a plain count) is not read at all.
                let content = if !self.plan.inspects_reader_records() {
                    KeyContent::Nothing
                } else if read_value {
                    KeyContent::Values
                } else {
                    KeyContent::Names
                };
                let reader = Box::new(KeysReader::new(pattern.into_bytes(), no_scan, content));
                if no_scan {
                    reader
                } else {
                    read_ahead(reader)?
                }
            }
            "StreamReader" => {
                let key = regex_arg(args)?;
                let from_id = match kwargs.map(|k| k.get_item("fromId")).transpose()?.flatten() {
                    None => "0-0".to_string(),
                    Some(v) => v
                        .cast::<PyString>()
                        .map_err(|_| gears_error("fromId argument must be a string"))?
                        .to_str()?
                        .to_string(),
                };
                read_ahead(Box::new(StreamReader::new(
                    key.into_bytes(),
                    from_id.into_bytes(),
                )))?
            }
            _ => return Err(gears_error("Given reader do not support run or not exists")),
        };
        Ok(reader)
    }

    /// What makes the run again on another shard: the reader, the description, the builder
    /// calls and the `run()` arguments, cloudpickled.
    fn saved_run_form(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Vec<u8>> {
        let ops = pyo3::types::PyList::empty(py);
        for (name, op_args) in &self.ops {
            ops.append((*name, op_args.clone_ref(py)))?;
        }
        let form = (
            SAVED_FORM_VERSION,
            self.reader.as_str(),
            self.plan.desc.as_deref(),
            ops,
            args,
            kwargs.cloned().unwrap_or_else(|| PyDict::new(py)),
        );
        let bytes = py.import("cloudpickle")?.getattr("dumps")?.call1((form,))?;
        Ok(bytes.cast::<pyo3::types::PyBytes>()?.as_bytes().to_vec())
    }

    /// The registration `register(**kwargs)` asks for, validated, with its saved form. A
    /// restored registration keeps its `id`.
    fn prepare_registration(
        &self,
        py: Python<'_>,
        kwargs: Option<&Bound<'_, PyDict>>,
        id: Option<String>,
    ) -> PyResult<PendingRegistration> {
        self.check_length()?;
        let kwarg = |name: &str| -> PyResult<Option<Bound<'_, PyAny>>> {
            Ok(kwargs.map(|k| k.get_item(name)).transpose()?.flatten())
        };
        let mode = match kwarg("mode")? {
            None => Mode::Async,
            Some(m) => {
                let m = m
                    .cast::<PyString>()
                    .map_err(|_| gears_error("execution mode must be a string"))?
                    .to_str()?
                    .to_string();
                Mode::parse(&m).ok_or_else(|| gears_error("unknown execution mode"))?
            }
        };
        let callback = |name: &str, error: &str| -> PyResult<Option<Py<PyAny>>> {
            match kwarg(name)? {
                Some(f) if !f.is_none() => {
                    if !f.is_instance_of::<PyFunction>() {
                        return Err(gears_error(error));
                    }
                    Ok(Some(f.unbind()))
                }
                _ => Ok(None),
            }
        };
        let on_registered = callback("onRegistered", "OnRegistered argument must be a function")?;
        let on_unregistered = callback(
            "onUnregistered",
            "OnUnregistered argument must be a function",
        )?;
        let trigger = match self.reader.as_str() {
            "KeysReader" => Trigger::Keys(keys_trigger(py, &kwarg)?),
            "CommandReader" => Trigger::Command(command_trigger(py, &kwarg)?),
            "StreamReader" => Trigger::Stream(super::stream_args::stream_trigger(&kwarg, mode)?),
            _ => {
                return Err(gears_error(
                    "given reader does not exists or does not support register",
                ))
            }
        };
        check_picklable(py, &self.callbacks)?;
        Ok(PendingRegistration {
            id: id.unwrap_or_else(ids::next_plan_id),
            plan: self.plan.clone(),
            mode,
            trigger,
            on_registered,
            on_unregistered,
            saved: self.saved_form(py, kwargs)?.into(),
        })
    }

    /// What makes the registration again: the reader, the description, the builder calls and
    /// the `register()` arguments, cloudpickled.
    fn saved_form(&self, py: Python<'_>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Vec<u8>> {
        let ops = pyo3::types::PyList::empty(py);
        for (name, args) in &self.ops {
            ops.append((*name, args.clone_ref(py)))?;
        }
        let kept = PyDict::new(py);
        if let Some(kwargs) = kwargs {
            for (key, value) in kwargs.iter() {
                if REGISTER_ARGS.iter().any(|k| key.eq(*k).unwrap_or(false)) {
                    kept.set_item(key, value)?;
                }
            }
        }
        let form = (
            SAVED_FORM_VERSION,
            self.reader.as_str(),
            self.plan.desc.as_deref(),
            ops,
            kept,
        );
        let bytes = py.import("cloudpickle")?.getattr("dumps")?.call1((form,))?;
        Ok(bytes.cast::<pyo3::types::PyBytes>()?.as_bytes().to_vec())
    }
}

/// A builder made again from a saved form `(version, reader, desc, ops, *rest)` (`what` names
/// the form in the version error): the builder calls replayed, and `rest`.
fn replay_saved<'py>(
    py: Python<'py>,
    saved: &[u8],
    what: &str,
) -> PyResult<(Bound<'py, PyFlatExecution>, Bound<'py, PyTuple>)> {
    let form = py
        .import("cloudpickle")?
        .getattr("loads")?
        .call1((pyo3::types::PyBytes::new(py, saved),))?;
    let form = form.cast_into::<PyTuple>()?;
    if form.len() < 4 {
        return Err(gears_error(&format!("{what} saved in an unknown form")));
    }
    let version: u32 = form.get_item(0)?.extract()?;
    if version != SAVED_FORM_VERSION {
        return Err(gears_error(&format!(
            "{what} saved in format {version}, this build reads {SAVED_FORM_VERSION}"
        )));
    }
    let reader: String = form.get_item(1)?.extract()?;
    let desc: Option<String> = form.get_item(2)?.extract()?;
    let flat = Bound::new(py, PyFlatExecution::new(reader, desc))?;
    for op in form.get_item(3)?.cast_into::<pyo3::types::PyList>()?.iter() {
        let (name, args): (String, Bound<'_, PyTuple>) = op.extract()?;
        flat.call_method1(name.as_str(), args)?;
    }
    let rest = form.get_slice(4, form.len());
    Ok((flat, rest))
}

/// A registration made again from its saved form (RDB load, RG.INNERREGISTER), under its id.
pub fn restore_registration(
    py: Python<'_>,
    saved: &[u8],
    id: &str,
) -> PyResult<PendingRegistration> {
    let (flat, rest) = replay_saved(py, saved, "registration")?;
    let (kwargs,): (Bound<'_, PyDict>,) = rest.extract()?;
    let registration = flat
        .borrow()
        .prepare_registration(py, Some(&kwargs), Some(id.to_string()));
    registration
}

/// A run made again from its saved form (another shard's distributed `run()`): its plan and
/// the reader it reads here.
pub fn restore_run(py: Python<'_>, saved: &[u8]) -> PyResult<(Plan, Box<dyn Reader>)> {
    let (flat, rest) = replay_saved(py, saved, "run")?;
    let (args, kwargs): (Bound<'_, PyTuple>, Bound<'_, PyDict>) = rest.extract()?;
    let flat = flat.borrow();
    flat.check_length()?;
    let reader = flat.run_reader(&args, Some(&kwargs))?;
    Ok((flat.plan.clone(), reader))
}

/// `gearsCtx(reader, desc=None)`: a new plan whose first step converts records to Python.
#[pyfunction]
#[pyo3(name = "gearsCtx", signature = (reader, desc=None))]
fn gears_ctx(
    reader: &Bound<'_, PyAny>,
    desc: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyFlatExecution> {
    let reader = reader
        .cast::<PyString>()
        .map_err(|_| gears_error("reader argument must be a string"))?
        .to_str()?
        .to_string();
    let desc = match desc {
        Some(d) if !d.is_none() => Some(
            d.cast::<PyString>()
                .map_err(|_| gears_error("desc argument must be a string"))?
                .to_str()?
                .to_string(),
        ),
        _ => None,
    };
    if !NATIVE_READERS.contains(&reader.as_str()) {
        return Err(gears_error("The given reader does not exists"));
    }
    if !context::on_gears_thread() {
        return Err(gears_error(
            "Can not create a gearsCtx on a python created thread",
        ));
    }
    let _ = ids::next_plan_id();
    Ok(PyFlatExecution::new(reader, desc))
}

const LOG_LEVELS: [&str; 4] = ["debug", "verbose", "notice", "warning"];

/// `log(message, level='notice')` (and the deprecated `log(level, message)`).
#[pyfunction]
#[pyo3(signature = (*args, level=None))]
fn log(args: &Bound<'_, PyTuple>, level: Option<Bound<'_, PyAny>>) -> PyResult<()> {
    let (message, level) = match args.len() {
        1 => (args.get_item(0)?, level),
        2 => {
            redis_calls::log(
                "warning",
                "Specify log level as the first argument to log function is depricated, use key argument 'level' instead",
            );
            (args.get_item(1)?, Some(args.get_item(0)?))
        }
        _ => return Err(gears_error("log function must get a log message as input")),
    };
    let message = message
        .cast::<PyString>()
        .map_err(|_| gears_error("Log message must be a string"))?
        .to_str()?
        .to_string();
    let level = match level {
        None => "notice".to_string(),
        Some(l) => l
            .cast::<PyString>()
            .map_err(|_| gears_error("Log level must be a sting (debug/verbose/notice/warning)"))?
            .to_str()?
            .to_string(),
    };
    if !LOG_LEVELS.contains(&level.as_str()) {
        return Err(gears_error(
            "Log level should be one of the following : debug,verbose,notice,warning",
        ));
    }
    redis_calls::log(&level, &format!("GEARS: {message}"));
    Ok(())
}

/// `execute(command, *args)`: one Redis command, its reply converted to Python.
#[pyfunction]
#[pyo3(name = "executeCommand", signature = (*args))]
fn execute_command(py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<Py<PyAny>> {
    if args.is_empty() {
        return Ok(pyo3::types::PyList::empty(py).into_any().unbind());
    }
    let command = args.get_item(0)?;
    let command = command
        .cast::<PyString>()
        .map_err(|_| gears_error("the given command must be a string"))?
        .to_str()?;
    let held = held_args(&args.get_slice(1, args.len()))?;
    let call_args: Vec<&[u8]> = held.iter().map(HeldArg::bytes).collect::<PyResult<_>>()?;
    reply_to_py(py, redis_calls::call_slices(py, command, &call_args))
}

/// `configGet(key)`: a user-defined ("extra") configuration value, or None.
#[pyfunction]
#[pyo3(name = "config_get", signature = (*args))]
fn config_get(args: &Bound<'_, PyTuple>) -> PyResult<Option<String>> {
    if args.len() != 1 {
        return Err(gears_error(
            "get_config function must get a single key input",
        ));
    }
    let key = args.get_item(0)?;
    let key = key
        .cast::<PyString>()
        .map_err(|_| gears_error("get_config key must be a string"))?
        .to_str()?
        .to_string();
    Ok(config::read().extra(&key).map(str::to_string))
}

/// `flat_error(msg)`: an error reported as `str(msg)`, without traceback.
#[pyfunction]
#[pyo3(name = "flatError", signature = (*args))]
fn flat_error_fn(py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<()> {
    if args.len() != 1 {
        return Err(gears_error("not enough arguments for time flat error"));
    }
    Err(flat_error(py, args.get_item(0)?.unbind()))
}

/// `atomic()`: a context manager holding the Redis lock for a block, so that no other client
/// command runs in between.
#[pyclass(name = "PyAtomic", module = "redisgears")]
struct PyAtomic;

#[pymethods]
impl PyAtomic {
    fn __enter__(slf: Py<Self>, py: Python<'_>) -> PyResult<Py<Self>> {
        // Redis lock first, then the GIL: the GIL is released while waiting for the lock.
        context::enter_atomic(|| py.detach(context::take_redis_lock)).map_err(gears_error)?;
        Ok(slf)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        context::exit_atomic().map_err(gears_error)
    }
}

/// `atomic()`; extra arguments are ignored.
#[pyfunction]
#[pyo3(name = "atomicCtx", signature = (*_args))]
fn atomic_ctx(_args: &Bound<'_, PyTuple>) -> PyAtomic {
    PyAtomic
}

#[pyfunction]
#[pyo3(name = "isInAtomicBlock")]
fn is_in_atomic_block() -> bool {
    context::in_atomic()
}

/// `hashtag()`: a tag whose `{tag}` keys hash to this shard's first slot; slot 0 outside a
/// cluster, for which RedisGears' table gives `06S`.
#[pyfunction]
#[pyo3(name = "getMyHashTag")]
fn get_my_hash_tag() -> &'static str {
    crate::shards::my_hashtag()
}

/// `registerGearsThread()`: lets a thread created by user code build and run pipelines.
#[pyfunction]
#[pyo3(name = "registerGearsThread")]
fn register_gears_thread() {
    context::register_gears_thread();
}

/// The session object `getGearsSession()` returns.
#[pyclass(name = "PyExecutionSession", module = "redisgears")]
struct PyExecutionSession {
    session: Arc<Session>,
}

#[pyfunction]
#[pyo3(name = "getGearsSession")]
fn get_gears_session() -> Option<PyExecutionSession> {
    context::current_session().map(|session| PyExecutionSession { session })
}

/// The session behind a `getGearsSession()` object.
pub(super) fn session_of(object: &Bound<'_, PyAny>) -> PyResult<Arc<Session>> {
    let session = object
        .cast::<PyExecutionSession>()
        .map_err(|_| gears_error("Given object is not of type GearsSession"))?;
    Ok(session.borrow().session.clone())
}

#[pyfunction]
#[pyo3(name = "setGearsSession", signature = (*args))]
fn set_gears_session(args: &Bound<'_, PyTuple>) -> PyResult<()> {
    if args.len() != 1 {
        return Err(gears_error("Wrong number of args given to setGearsSession"));
    }
    let session = args.get_item(0)?;
    if session.is_none() {
        context::set_session(None);
        return Ok(());
    }
    let session = session
        .cast::<PyExecutionSession>()
        .map_err(|_| gears_error("Given object is not of type GearsSession"))?;
    context::set_session(Some(session.borrow().session.clone()));
    Ok(())
}

/// `call_next(*args)`: inside a hook, runs the next older matching hook or the real command
/// with `args` (the command name is implicit), and returns its reply like `execute()`.
#[pyfunction]
#[pyo3(name = "callNext", signature = (*args))]
fn call_next(py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<Py<PyAny>> {
    let hook = context::current_hook().ok_or_else(|| gears_error("Can not get CommandHook ctx"))?;
    let Some(command) = &hook.command else {
        // A trigger= registration has no next handler.
        return Err(gears_error("Failed executing command"));
    };
    let command = String::from_utf8_lossy(command).into_owned();
    let held = held_args(args)?;
    let call_args: Vec<&[u8]> = held.iter().map(HeldArg::bytes).collect::<PyResult<_>>()?;
    let reply = crate::hooks::skipping(hook.skip, || {
        redis_calls::call_slices(py, &command, &call_args)
    });
    reply_to_py(py, reply)
}

/// The reply of a command called from Python, its error as a `GearsError`.
fn reply_to_py(py: Python<'_>, reply: Result<CallReply, String>) -> PyResult<Py<PyAny>> {
    match reply {
        Ok(value) => Ok(redis_calls::value_to_py(py, value)?.unbind()),
        Err(message) => Err(gears_error(&message)),
    }
}

/// A command argument from Python, held so that the call borrows its bytes rather than copying
/// them (`execute()` runs once per record in most scripts).
enum HeldArg<'py> {
    Bytes(Bound<'py, pyo3::types::PyBytes>),
    Str(Bound<'py, PyString>),
    Copied(Vec<u8>),
}

impl HeldArg<'_> {
    fn bytes(&self) -> PyResult<&[u8]> {
        Ok(match self {
            HeldArg::Bytes(b) => b.as_bytes(),
            HeldArg::Str(s) => s.to_str()?.as_bytes(),
            HeldArg::Copied(v) => v,
        })
    }
}

/// A command argument from Python: bytes as they are, a bytearray copied (it can change),
/// anything else as `str(arg)`.
fn held_arg(arg: Bound<'_, PyAny>) -> PyResult<HeldArg<'_>> {
    let arg = match arg.cast_into::<pyo3::types::PyBytes>() {
        Ok(b) => return Ok(HeldArg::Bytes(b)),
        Err(e) => e.into_inner(),
    };
    if let Ok(b) = arg.cast::<pyo3::types::PyByteArray>() {
        return Ok(HeldArg::Copied(b.to_vec()));
    }
    // Exactly `str`: a subclass may define its own `__str__`.
    match arg.cast_into_exact::<PyString>() {
        Ok(s) => Ok(HeldArg::Str(s)),
        Err(e) => Ok(HeldArg::Str(e.into_inner().str()?)),
    }
}

/// Command arguments from Python, each as [`held_arg`] converts it.
fn held_args<'py>(args: &Bound<'py, PyTuple>) -> PyResult<Vec<HeldArg<'py>>> {
    args.iter().map(held_arg).collect()
}

/// `get_command()`: the linked client command (KeysReader `commands=`) as a list of `str`.
#[pyfunction]
#[pyo3(name = "getCommand", signature = (*_args))]
fn get_command<'py>(py: Python<'py>, _args: &Bound<'py, PyTuple>) -> PyResult<Bound<'py, PyAny>> {
    let link = context::current_link()
        .filter(|l| !l.is_detached())
        .ok_or_else(|| gears_error("Can not get command ctx"))?;
    let list = pyo3::types::PyList::empty(py);
    for arg in &link.argv {
        list.append(super::convert::bytes_to_py(py, arg))?;
    }
    Ok(list.into_any())
}

/// `override_reply(reply)`: replaces the reply of the linked client command (first one wins).
#[pyfunction]
#[pyo3(name = "overrideReply", signature = (*args))]
fn override_reply(args: &Bound<'_, PyTuple>) -> PyResult<()> {
    let link = context::current_link()
        .filter(|l| !l.is_detached())
        .ok_or_else(|| gears_error("Can not get command ctx"))?;
    if args.len() != 1 {
        return Err(gears_error("Override reply must get a single argument"));
    }
    let reply = super::convert::py_to_reply(&args.get_item(0)?);
    link.override_with(reply).map_err(gears_error)
}

/// `_warn(message)`: a warning in the Redis log as RedisGears writes its own (no `GEARS:`).
#[pyfunction]
#[pyo3(name = "_warn")]
fn warn(message: &str) {
    redis_calls::log("warning", message);
}

/// `_native(kind, f)`: marks one of the prelude's own lambdas as runnable natively; returns `f`.
#[pyfunction]
#[pyo3(name = "_native")]
fn mark_native<'py>(kind: &str, f: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    f.setattr(NATIVE_MARK, kind)?;
    Ok(f)
}

#[pymodule]
pub fn redisgears(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let [error, flat, stopped] = create_exception_types(py)?;
    m.add("GearsError", error)?;
    m.add("GearsFlatError", flat)?;
    m.add("GearsForceStopped", stopped)?;
    m.add_class::<PyFlatExecution>()?;
    m.add_function(wrap_pyfunction!(gears_ctx, m)?)?;
    m.add_function(wrap_pyfunction!(log, m)?)?;
    m.add_function(wrap_pyfunction!(execute_command, m)?)?;
    m.add_function(wrap_pyfunction!(config_get, m)?)?;
    m.add_function(wrap_pyfunction!(flat_error_fn, m)?)?;
    m.add_function(wrap_pyfunction!(mark_native, m)?)?;
    m.add_function(wrap_pyfunction!(warn, m)?)?;
    m.add_class::<PyAtomic>()?;
    m.add_class::<PyExecutionSession>()?;
    m.add_function(wrap_pyfunction!(atomic_ctx, m)?)?;
    m.add_function(wrap_pyfunction!(is_in_atomic_block, m)?)?;
    m.add_function(wrap_pyfunction!(get_my_hash_tag, m)?)?;
    m.add_function(wrap_pyfunction!(register_gears_thread, m)?)?;
    m.add_function(wrap_pyfunction!(get_gears_session, m)?)?;
    m.add_function(wrap_pyfunction!(set_gears_session, m)?)?;
    m.add_function(wrap_pyfunction!(call_next, m)?)?;
    m.add_function(wrap_pyfunction!(get_command, m)?)?;
    m.add_function(wrap_pyfunction!(override_reply, m)?)?;
    m.add_class::<super::futures::PyFuture>()?;
    m.add_class::<super::futures::PyStepContext>()?;
    m.add_function(wrap_pyfunction!(super::futures::gears_future, m)?)?;
    m.add_function(wrap_pyfunction!(super::futures::is_async_allow, m)?)?;
    m.add_function(wrap_pyfunction!(super::futures::capture_context, m)?)?;
    m.add_function(wrap_pyfunction!(
        crate::time_events::register_time_event,
        m
    )?)?;
    Ok(())
}
