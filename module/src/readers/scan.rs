//! Walking the keyspace from a worker thread: the module scan API under the Redis lock, one
//! bounded chunk per lock hold, with a pause after each so the main thread gets the lock.

use std::cell::RefCell;
use std::time::Duration;

use dataflow::glob;
use redis_module::key::RedisKey;
use redis_module::{Context, DetachedFromClient, KeysCursor, RedisString, ThreadSafeContext};

/// Keys visited per lock hold; about 1-2 ms of work (BUILD-NOTES-2 §2).
pub const KEYS_PER_CHUNK: usize = 1000;
/// Pause after releasing the lock: taking it straight back starves the main thread.
const PAUSE_BETWEEN_CHUNKS: Duration = Duration::from_micros(20);

/// The scan cursor; only used with the Redis lock held, by one thread at a time.
struct Cursor(KeysCursor);
// SAFETY: the cursor is a handle to Redis' scan state, used only under the Redis lock and by the
// one worker that owns this scan.
unsafe impl Send for Cursor {}

/// A scan over the keys matching a glob pattern.
pub struct ChunkedScan {
    pattern: Vec<u8>,
    cursor: Option<Cursor>,
    context: Option<ThreadSafeContext<DetachedFromClient>>,
    done: bool,
}

impl ChunkedScan {
    pub fn new(pattern: Vec<u8>) -> ChunkedScan {
        ChunkedScan {
            pattern,
            cursor: None,
            context: None,
            done: false,
        }
    }

    /// Visits the next chunk of matching keys under the lock, keeping what `visit` returns;
    /// `None` once the keyspace is exhausted.
    pub fn next_chunk<T>(
        &mut self,
        mut visit: impl FnMut(&Context, &RedisString, Option<&RedisKey>) -> T,
    ) -> Option<Vec<T>> {
        if self.done {
            return None;
        }
        let context = self.context.get_or_insert_with(ThreadSafeContext::new);
        let guard = context.lock();
        let cursor = self.cursor.get_or_insert_with(|| Cursor(KeysCursor::new()));
        let out = RefCell::new(Vec::with_capacity(KEYS_PER_CHUNK));
        let pattern = &self.pattern;
        let visit = RefCell::new(&mut visit);
        let callback = |ctx: &Context, name: &RedisString, key: Option<&RedisKey>| {
            if glob::matches(pattern, name.as_slice()) {
                let item = (visit.borrow_mut())(ctx, name, key);
                out.borrow_mut().push(item);
            }
        };
        // Each scan call covers one hash bucket, so loop until the chunk is full.
        while out.borrow().len() < KEYS_PER_CHUNK {
            if !cursor.0.scan(&guard, &callback) {
                self.done = true;
                break;
            }
        }
        drop(guard);
        std::thread::sleep(PAUSE_BETWEEN_CHUNKS);
        Some(out.into_inner())
    }

    /// A scan that yields nothing more.
    pub fn finished() -> ChunkedScan {
        ChunkedScan {
            pattern: Vec::new(),
            cursor: None,
            context: None,
            done: true,
        }
    }

    /// Runs `f` on the context under the lock (for single-key reads).
    pub fn with_lock<R>(&mut self, f: impl FnOnce(&Context) -> R) -> R {
        let context = self.context.get_or_insert_with(ThreadSafeContext::new);
        let guard = context.lock();
        f(&guard)
    }
}
