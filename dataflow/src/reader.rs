//! Where an execution's records come from.

use crate::record::Record;

/// A source of records, read a chunk at a time so the module can hold the Redis lock for one
/// bounded chunk and release it before the records are processed.
pub trait Reader: Send {
    /// The next chunk; `Ok(None)` once the reader is exhausted. An `Err` ends the reader with one
    /// error record.
    fn next_chunk(&mut self) -> Result<Option<Vec<Record>>, String>;
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
