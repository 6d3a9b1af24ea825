//! Reading ahead on a helper thread, so that a reader bound by one lock (the Redis lock, for a
//! keyspace scan) works on the next chunk while the steps run on the current one under another
//! (the GIL): the execution then takes about the longer of the two, not their sum.

use std::sync::mpsc::{sync_channel, Receiver};
use std::thread;

use crate::reader::Reader;
use crate::record::Record;

type Chunk = Result<Option<Vec<Record>>, String>;

/// A reader whose chunks are read by a helper thread, at most `depth` chunks ahead.
pub struct Prefetch {
    chunks: Receiver<Chunk>,
    done: bool,
}

impl Prefetch {
    /// Starts reading `reader` on a new thread named `name`. The thread stops after the reader's
    /// last chunk, after an error, or as soon as this `Prefetch` is dropped (its next send fails).
    pub fn spawn(
        mut reader: Box<dyn Reader>,
        depth: usize,
        name: &str,
    ) -> std::io::Result<Prefetch> {
        let (sender, chunks) = sync_channel::<Chunk>(depth.max(1));
        thread::Builder::new()
            .name(name.to_string())
            .spawn(move || loop {
                let chunk = reader.next_chunk();
                let last = !matches!(chunk, Ok(Some(_)));
                if sender.send(chunk).is_err() || last {
                    return;
                }
            })?;
        Ok(Prefetch {
            chunks,
            done: false,
        })
    }
}

impl Reader for Prefetch {
    fn next_chunk(&mut self) -> Result<Option<Vec<Record>>, String> {
        if self.done {
            return Ok(None);
        }
        match self.chunks.recv() {
            Ok(Ok(Some(chunk))) => Ok(Some(chunk)),
            Ok(other) => {
                self.done = true;
                other
            }
            // The helper thread died (it panicked): end like an exhausted reader would not, with
            // an error the user can see.
            Err(_) => {
                self.done = true;
                Err("the reader stopped unexpectedly".to_string())
            }
        }
    }
}
