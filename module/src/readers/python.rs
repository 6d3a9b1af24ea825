//! PythonReader: records are what the user's function produces. A function returning a
//! generator yields its items; one returning anything else emits that value and is called again
//! for the next record (RedisGears' rule).

use dataflow::{Reader, Record};
use pyo3::prelude::*;

use crate::python::convert::object_record;
use crate::python::errors::format_error;

enum Source {
    /// Not called yet, or called and returned a plain value: call it (again).
    Function,
    Generator(Py<PyAny>),
    Done,
}

pub struct PythonReader {
    function: Py<PyAny>,
    source: Source,
}

impl PythonReader {
    pub fn new(function: Py<PyAny>) -> PythonReader {
        PythonReader {
            function,
            source: Source::Function,
        }
    }

    /// The next record, `None` at the end; an error ends the reader.
    fn next_record(&mut self, py: Python<'_>) -> Result<Option<Record>, String> {
        loop {
            match &self.source {
                Source::Done => return Ok(None),
                Source::Generator(g) => {
                    // SAFETY: PyIter_Next on a live generator with the GIL held; it returns a
                    // new reference, or NULL at the end or on error.
                    let item = unsafe { pyo3::ffi::PyIter_Next(g.as_ptr()) };
                    if item.is_null() {
                        self.source = Source::Done;
                        return match PyErr::take(py) {
                            Some(e) => Err(format_error(py, &e)),
                            None => Ok(None),
                        };
                    }
                    // SAFETY: `item` is a new, non-null reference we now own.
                    let item = unsafe { Bound::from_owned_ptr(py, item) };
                    return Ok(Some(object_record(item)));
                }
                Source::Function => {
                    let out = match self.function.bind(py).call0() {
                        Ok(out) => out,
                        Err(e) => {
                            self.source = Source::Done;
                            return Err(format_error(py, &e));
                        }
                    };
                    // SAFETY: PyGen_Check only reads the object's type.
                    if unsafe { pyo3::ffi::PyGen_Check(out.as_ptr()) } != 0 {
                        self.source = Source::Generator(out.unbind());
                        continue;
                    }
                    return Ok(Some(object_record(out)));
                }
            }
        }
    }
}

impl Reader for PythonReader {
    /// One record at a time: the generator only runs when the pipeline pulls, as in RedisGears.
    fn next_chunk(&mut self) -> Result<Option<Vec<Record>>, String> {
        Python::attach(|py| match self.next_record(py) {
            Ok(Some(r)) => Ok(Some(vec![r])),
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        })
    }

    /// The generator needs no Redis lock, so it is pulled inside the engine's GIL hold.
    fn pulls_inline(&self) -> bool {
        true
    }
}
