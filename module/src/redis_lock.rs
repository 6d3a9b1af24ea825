//! The Redis lock (the module GIL) for threads other than the main one, taken through one
//! thread-safe context per thread, made once.
//!
//! Not `redis_module::ThreadSafeContext::lock`: it makes a new thread-safe context (a new client
//! inside Redis) at every lock and frees it at every unlock, after releasing the lock. That cost
//! more than the command most locks are taken for (7% of a stream registration's time went to
//! creating and freeing those clients), and freed a client without holding the lock.

use std::ops::Deref;

use redis_module::{raw, Context};

/// This thread's thread-safe context: not bound to any client, freed when the thread ends.
struct ThreadContext(*mut raw::RedisModuleCtx);

impl Drop for ThreadContext {
    fn drop(&mut self) {
        // SAFETY: made by RedisModule_GetThreadSafeContext for this thread and freed once; the
        // thread does not hold the lock any more (every RedisLock was dropped before).
        unsafe { raw::RedisModule_FreeThreadSafeContext.unwrap()(self.0) };
    }
}

thread_local! {
    static THREAD_CONTEXT: ThreadContext =
        // SAFETY: a detached thread-safe context may be made from any thread.
        ThreadContext(unsafe { raw::RedisModule_GetThreadSafeContext.unwrap()(std::ptr::null_mut()) });
}

/// The Redis lock, held until dropped, with a context to call Redis through. Neither `Send` nor
/// `Sync`: the thread that took it releases it.
pub struct RedisLock {
    ctx: Context,
}

impl RedisLock {
    /// Waits for the lock. The calling thread must not hold it already, nor the GIL (lock order:
    /// Redis lock first).
    pub fn acquire() -> RedisLock {
        let raw = THREAD_CONTEXT.with(|c| c.0);
        // SAFETY: `raw` is this thread's live thread-safe context.
        unsafe { raw::RedisModule_ThreadSafeContextLock.unwrap()(raw) };
        RedisLock {
            ctx: Context::new(raw),
        }
    }

    /// The lock if it is free right now. Never waits, so a thread may try it while holding the
    /// GIL: the main thread holding the lock and waiting for the GIL makes it fail, not hang.
    pub fn try_acquire() -> Option<RedisLock> {
        let raw = THREAD_CONTEXT.with(|c| c.0);
        // SAFETY: as in `acquire`.
        let taken = unsafe { raw::RedisModule_ThreadSafeContextTryLock.unwrap()(raw) };
        (taken == raw::REDISMODULE_OK as i32).then(|| RedisLock {
            ctx: Context::new(raw),
        })
    }
}

impl Deref for RedisLock {
    type Target = Context;

    fn deref(&self) -> &Context {
        &self.ctx
    }
}

impl Drop for RedisLock {
    fn drop(&mut self) {
        // SAFETY: locked through this context by `acquire`, on this thread.
        unsafe { raw::RedisModule_ThreadSafeContextUnlock.unwrap()(self.ctx.ctx) };
    }
}
