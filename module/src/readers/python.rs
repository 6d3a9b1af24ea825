//! PythonReader: records are whatever the user's generator function yields.

use dataflow::{Reader, Record};
use pyo3::prelude::*;

use crate::python::convert::object_record;
use crate::python::errors::format_error;

/// Records taken from the generator per GIL hold.
const RECORDS_PER_CHUNK: usize = 1000;

pub struct PythonReader {
    function: Option<Py<PyAny>>,
    iterator: Option<Py<PyAny>>,
    done: bool,
}

impl PythonReader {
    pub fn new(function: Py<PyAny>) -> PythonReader {
        PythonReader {
            function: Some(function),
            iterator: None,
            done: false,
        }
    }
}

impl Reader for PythonReader {
    fn next_chunk(&mut self) -> Result<Option<Vec<Record>>, String> {
        if self.done {
            return Ok(None);
        }
        Python::attach(|py| {
            if self.iterator.is_none() {
                let function = self.function.take().expect("the generator starts once");
                let iterator = function
                    .bind(py)
                    .call0()
                    .and_then(|g| g.try_iter())
                    .map_err(|e| {
                        self.done = true;
                        format_error(py, &e)
                    })?;
                self.iterator = Some(iterator.into_any().unbind());
            }
            let iterator = self.iterator.as_ref().expect("set above").bind(py);
            let mut chunk = Vec::new();
            while chunk.len() < RECORDS_PER_CHUNK {
                match iterator.call_method0("__next__") {
                    Ok(item) => chunk.push(object_record(item)),
                    Err(e) if e.is_instance_of::<pyo3::exceptions::PyStopIteration>(py) => {
                        self.done = true;
                        break;
                    }
                    Err(e) => {
                        // The generator failed: one error record, then the reader ends.
                        self.done = true;
                        chunk.push(Record::Error(format_error(py, &e)));
                        break;
                    }
                }
            }
            Ok(Some(chunk))
        })
    }
}
