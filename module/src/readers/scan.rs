//! Walking the keyspace from a worker thread: the module scan API under the Redis lock, one
//! bounded chunk per lock hold, with a pause after each so the main thread gets the lock.

use std::ffi::c_void;
use std::ptr::NonNull;
use std::time::Duration;

use dataflow::glob;
use redis_module::key::RedisKey;
use redis_module::{raw, Context, RedisString};

use crate::redis_lock::RedisLock;

/// Keys visited per lock hold; about 1-2 ms of work (BUILD-NOTES-2 §2).
pub const KEYS_PER_CHUNK: usize = 1000;
/// Pause after releasing the lock: taking it straight back starves the main thread.
const PAUSE_BETWEEN_CHUNKS: Duration = Duration::from_micros(20);

/// The scan cursor; only used with the Redis lock held, by one thread at a time.
///
/// Ours rather than `redis_module::KeysCursor`, whose callback retains every key name and never
/// releases it: one leaked string per key scanned (found under valgrind).
struct Cursor(*mut raw::RedisModuleScanCursor);
// SAFETY: the cursor is a handle to Redis' scan state, used only under the Redis lock and by the
// one worker that owns this scan.
unsafe impl Send for Cursor {}

impl Cursor {
    fn new() -> Cursor {
        // SAFETY: creating a cursor needs no lock; it is destroyed once, on drop.
        Cursor(unsafe { raw::RedisModule_ScanCursorCreate.unwrap()() })
    }

    /// One `RedisModule_Scan` step (a hash bucket); false once the keyspace is exhausted.
    fn scan<F: FnMut(&Context, &RedisString, Option<&RedisKey>)>(
        &self,
        ctx: &Context,
        visit: &mut F,
    ) -> bool {
        // SAFETY: `ctx` holds the Redis lock; `visit` outlives the call, which is synchronous.
        let more = unsafe {
            raw::RedisModule_Scan.unwrap()(
                ctx.ctx,
                self.0,
                Some(visit_key::<F>),
                (visit as *mut F).cast::<c_void>(),
            )
        };
        more != 0
    }
}

impl Drop for Cursor {
    fn drop(&mut self) {
        // SAFETY: created by `Cursor::new`, destroyed only here.
        unsafe { raw::RedisModule_ScanCursorDestroy.unwrap()(self.0) };
    }
}

/// Hands one scanned key to the visitor. The name is retained while the visitor sees it and
/// released after; the key is Redis' own and is not closed here.
extern "C" fn visit_key<F: FnMut(&Context, &RedisString, Option<&RedisKey>)>(
    ctx: *mut raw::RedisModuleCtx,
    key_name: *mut raw::RedisModuleString,
    key: *mut raw::RedisModuleKey,
    visit: *mut c_void,
) {
    let context = Context::new(ctx);
    let name = RedisString::new(NonNull::new(ctx), key_name);
    // SAFETY: the key is valid for this callback and the `RedisKey` does not outlive it.
    let key = (!key.is_null()).then(|| unsafe { RedisKey::from_raw_parts(ctx, key) });
    // SAFETY: `visit` is the `&mut F` `Cursor::scan` passed, alive for this synchronous call.
    let visit = unsafe { &mut *visit.cast::<F>() };
    visit(&context, &name, key.as_ref());
    // Closing the key is Redis' job; the name's extra reference goes with `name`.
    std::mem::forget(key);
}

/// A scan over the keys matching a glob pattern.
pub struct ChunkedScan {
    pattern: Vec<u8>,
    cursor: Option<Cursor>,
    done: bool,
}

impl ChunkedScan {
    pub fn new(pattern: Vec<u8>) -> ChunkedScan {
        ChunkedScan {
            pattern,
            cursor: None,
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
        let guard = RedisLock::acquire();
        let cursor = self.cursor.get_or_insert_with(Cursor::new);
        let mut out = Vec::with_capacity(KEYS_PER_CHUNK);
        let pattern = &self.pattern;
        // Each scan call covers one hash bucket, so loop until the chunk is full.
        while out.len() < KEYS_PER_CHUNK {
            let more = cursor.scan(&guard, &mut |ctx, name, key| {
                if glob::matches(pattern, name.as_slice()) {
                    out.push(visit(ctx, name, key));
                }
            });
            if !more {
                self.done = true;
                break;
            }
        }
        drop(guard);
        std::thread::sleep(PAUSE_BETWEEN_CHUNKS);
        Some(out)
    }

    /// A scan that yields nothing more.
    pub fn finished() -> ChunkedScan {
        ChunkedScan {
            pattern: Vec::new(),
            cursor: None,
            done: true,
        }
    }

    /// Runs `f` on the context under the lock (for single-key reads).
    pub fn with_lock<R>(&mut self, f: impl FnOnce(&Context) -> R) -> R {
        let guard = RedisLock::acquire();
        f(&guard)
    }
}
