//! Where an execution's records come from.

use crate::record::Record;

/// A source of records, read a chunk at a time so the module can hold the Redis lock for one
/// bounded chunk and release it before the records are processed.
pub trait Reader: Send {
    /// The next chunk; `Ok(None)` once the reader is exhausted. An `Err` ends the reader with one
    /// error record.
    fn next_chunk(&mut self) -> Result<Option<Vec<Record>>, String>;

    /// True for readers that need no lock of their own (a Python generator): the engine then
    /// asks for the next chunk from inside the callback scope, only when the pipeline pulls, so
    /// such a reader (returning small chunks) never runs ahead of a `limit` or a first error.
    fn pulls_inline(&self) -> bool {
        false
    }
}

/// Records from memory, `chunk` at a time.
pub struct VecReader {
    records: std::vec::IntoIter<Record>,
    chunk: usize,
}

impl VecReader {
    pub fn new(records: Vec<Record>, chunk: usize) -> VecReader {
        VecReader {
            records: records.into_iter(),
            chunk: chunk.max(1),
        }
    }
}

impl Reader for VecReader {
    fn next_chunk(&mut self) -> Result<Option<Vec<Record>>, String> {
        let chunk: Vec<Record> = self.records.by_ref().take(self.chunk).collect();
        Ok(if chunk.is_empty() { None } else { Some(chunk) })
    }
}
