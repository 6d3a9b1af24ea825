//! Conversions between records, Python objects and replies.

use dataflow::Record;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString};

use crate::reply::Reply;

/// A Python object travelling through a pipeline.
pub struct PyObj(pub Py<PyAny>);

pub fn object_record(obj: Bound<'_, PyAny>) -> Record {
    Record::object(PyObj(obj.unbind()))
}

/// Takes the Python object out of a record, converting native records the way RedisGears'
/// `RedisGearsPy_ToPyRecordMapper` does (readers.md §1).
pub fn record_into_py(py: Python<'_>, record: Record) -> PyResult<Bound<'_, PyAny>> {
    Ok(match record {
        Record::Object(o) => match o.into_any().downcast::<PyObj>() {
            Ok(obj) => obj.0.into_bound(py),
            Err(_) => py.None().into_bound(py),
        },
        Record::Null => py.None().into_bound(py),
        Record::String(bytes) => bytes_to_py(py, &bytes),
        Record::Long(v) => v.into_pyobject(py)?.into_any(),
        // RedisGears truncates doubles to int here; scripts see that.
        Record::Double(v) => (v as i64).into_pyobject(py)?.into_any(),
        Record::List(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(record_into_py(py, item)?)?;
            }
            list.into_any()
        }
        Record::HashSet(fields) => {
            let dict = PyDict::new(py);
            for (name, value) in fields {
                dict.set_item(field_name(py, &name), record_into_py(py, value)?)?;
            }
            dict.into_any()
        }
        Record::KeyValue { key, value } => {
            let dict = PyDict::new(py);
            dict.set_item("key", key)?;
            match value {
                Some(v) => dict.set_item("value", record_into_py(py, *v)?)?,
                None => dict.set_item("value", py.None())?,
            }
            dict.into_any()
        }
        Record::Error(e) => return Err(crate::python::errors::gears_error(&e)),
    })
}

/// The Python object of a record that stays in the pipeline (filter, foreach, extractors). A
/// native record is converted once, in place, so that later steps see the same object (and what
/// a foreach changed in it).
pub fn record_as_py<'py>(py: Python<'py>, record: &mut Record) -> PyResult<Bound<'py, PyAny>> {
    if let Some(obj) = record.downcast_ref::<PyObj>() {
        return Ok(obj.0.bind(py).clone());
    }
    let native = std::mem::replace(record, Record::Null);
    let obj = record_into_py(py, native)?;
    *record = Record::object(PyObj(obj.clone().unbind()));
    Ok(obj)
}

/// A field name; the names of the readers' fixed record shapes are interned once.
fn field_name<'py>(py: Python<'py>, name: &[u8]) -> Bound<'py, PyAny> {
    match name {
        b"key" => pyo3::intern!(py, "key").clone().into_any(),
        b"value" => pyo3::intern!(py, "value").clone().into_any(),
        b"type" => pyo3::intern!(py, "type").clone().into_any(),
        b"event" => pyo3::intern!(py, "event").clone().into_any(),
        b"id" => pyo3::intern!(py, "id").clone().into_any(),
        _ => bytes_to_py(py, name),
    }
}

/// Text as `str`, anything that is not UTF-8 as `bytearray`.
pub fn bytes_to_py<'py>(py: Python<'py>, bytes: &[u8]) -> Bound<'py, PyAny> {
    match std::str::from_utf8(bytes) {
        Ok(s) => PyString::new(py, s).into_any(),
        Err(_) => PyByteArray::new(py, bytes).into_any(),
    }
}

/// C's `printf("%lf")`: six decimals, `inf` / `nan` spelled as C spells them.
pub fn format_lf(v: f64) -> String {
    if v.is_nan() {
        if v.is_sign_negative() { "-nan" } else { "nan" }.to_string()
    } else if v.is_infinite() {
        if v < 0.0 { "-inf" } else { "inf" }.to_string()
    } else {
        format!("{v:.6}")
    }
}

/// A final Python record as a reply (gearsbuilder.md §6).
pub fn py_to_reply(obj: &Bound<'_, PyAny>) -> Reply {
    if let Ok(list) = obj.cast::<PyList>() {
        return Reply::Array(list.iter().map(|item| py_to_reply(&item)).collect());
    }
    if obj.is_instance_of::<PyBool>() {
        return Reply::Integer(obj.is_truthy().unwrap_or(false) as i64);
    }
    if obj.is_instance_of::<PyInt>() {
        return match obj.extract::<i64>() {
            Ok(v) => Reply::Integer(v),
            // Beyond 64 bits: keep the digits rather than lose the value.
            Err(_) => Reply::bulk(obj.str().map(|s| s.to_string()).unwrap_or_default()),
        };
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Reply::bulk(format_lf(f.value()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        let text = s.to_string_lossy().into_owned();
        if text.len() > 1 {
            if let Some(rest) = text.strip_prefix('+') {
                return Reply::Simple(rest.to_string());
            }
            if let Some(rest) = text.strip_prefix('-') {
                return Reply::Error(rest.to_string());
            }
        }
        return Reply::Bulk(text.into_bytes());
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Reply::Bulk(b.as_bytes().to_vec());
    }
    Reply::bulk("PY RECORD")
}

/// A final record of a plan built from Python: every record of such a plan is a Python object
/// (native ones only because conversion is lazy), so all go out by the Python rules. A native
/// record gets the reply its Python object would get, without building that object.
pub fn python_record_to_reply(py: Python<'_>, record: Record) -> Reply {
    match record {
        Record::Object(_) => match record_into_py(py, record) {
            Ok(obj) => py_to_reply(&obj),
            Err(_) => Reply::bulk("PY RECORD"),
        },
        Record::String(bytes) => match std::str::from_utf8(&bytes) {
            // A str: the '+'/'-' prefix rules apply.
            Ok(text) => py_to_reply(&pyo3::types::PyString::new(py, text).into_any()),
            // A bytearray.
            Err(_) => Reply::bulk("PY RECORD"),
        },
        Record::Long(v) => Reply::Integer(v),
        Record::Double(v) => Reply::Integer(v as i64),
        Record::List(items) => Reply::Array(
            items
                .into_iter()
                .map(|r| python_record_to_reply(py, r))
                .collect(),
        ),
        // dict, None: neither has a reply of its own.
        Record::HashSet(_) | Record::KeyValue { .. } | Record::Null => Reply::bulk("PY RECORD"),
        Record::Error(e) => Reply::Error(e),
    }
}

/// A final record as a reply: Python objects by the Python rules, native records by the
/// engine's (commands.md §0.6).
pub fn record_to_reply(py: Python<'_>, record: &Record) -> Reply {
    match record {
        Record::Object(_) => match record.downcast_ref::<PyObj>() {
            Some(obj) => py_to_reply(obj.0.bind(py)),
            None => Reply::bulk("PY RECORD"),
        },
        Record::Null => Reply::Null,
        Record::String(s) => Reply::Bulk(s.clone()),
        Record::Long(v) => Reply::Integer(*v),
        Record::Double(v) => Reply::bulk(format!("{v}")),
        Record::List(items) => Reply::Array(items.iter().map(|r| record_to_reply(py, r)).collect()),
        Record::HashSet(fields) => Reply::Array(
            fields
                .iter()
                .flat_map(|(k, v)| [Reply::Bulk(k.to_vec()), record_to_reply(py, v)])
                .collect(),
        ),
        Record::KeyValue { key, value } => Reply::Array(vec![
            Reply::bulk(key.as_str()),
            value
                .as_ref()
                .map_or(Reply::Null, |v| record_to_reply(py, v)),
        ]),
        Record::Error(e) => Reply::Error(e.clone()),
    }
}
