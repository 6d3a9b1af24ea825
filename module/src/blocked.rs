//! Blocking the calling client and answering it later from any thread.
//!
//! The client is blocked with a reply callback; the thread that finishes the work unblocks it
//! with the reply as private data, and Redis writes it on the main thread.

use std::os::raw::{c_int, c_void};
use std::ptr;

use redis_module::{raw, Context};

use crate::reply::Reply;

/// A blocked client that must be answered exactly once. Dropping it unanswered answers with an
/// error, so a client is never left hanging.
pub struct BlockedClient {
    handle: *mut raw::RedisModuleBlockedClient,
}

// SAFETY: RedisModule_UnblockClient may be called from any thread.
unsafe impl Send for BlockedClient {}

impl BlockedClient {
    /// Blocks the client of `ctx`; `timeout_ms` 0 means no timeout.
    pub fn block(ctx: &Context, timeout_ms: i64) -> BlockedClient {
        // SAFETY: called on the main thread from a command context.
        let handle = unsafe {
            raw::RedisModule_BlockClient.unwrap()(
                ctx.ctx,
                Some(reply_callback),
                Some(timeout_callback),
                Some(free_reply),
                timeout_ms,
            )
        };
        BlockedClient { handle }
    }

    pub fn reply(mut self, reply: Reply) {
        self.unblock(reply);
    }

    fn unblock(&mut self, reply: Reply) {
        let handle = std::mem::replace(&mut self.handle, ptr::null_mut());
        if handle.is_null() {
            return;
        }
        let data = Box::into_raw(Box::new(reply)).cast::<c_void>();
        // SAFETY: `handle` came from RedisModule_BlockClient and is unblocked once.
        unsafe {
            raw::RedisModule_UnblockClient.unwrap()(handle, data);
        }
    }
}

impl Drop for BlockedClient {
    fn drop(&mut self) {
        self.unblock(Reply::error(
            "ERR the execution ended without producing a reply",
        ));
    }
}

extern "C" fn reply_callback(
    ctx: *mut raw::RedisModuleCtx,
    _argv: *mut *mut raw::RedisModuleString,
    _argc: c_int,
) -> c_int {
    // SAFETY: the private data is the `Reply` boxed by `unblock`; Redis frees it with free_reply.
    unsafe {
        let data = raw::RedisModule_GetBlockedClientPrivateData.unwrap()(ctx).cast::<Reply>();
        let context = Context::new(ctx);
        match data.as_ref() {
            Some(reply) => reply.write(&context),
            None => Reply::error("ERR no reply").write(&context),
        }
    }
    raw::REDISMODULE_OK as c_int
}

extern "C" fn timeout_callback(
    ctx: *mut raw::RedisModuleCtx,
    _argv: *mut *mut raw::RedisModuleString,
    _argc: c_int,
) -> c_int {
    Reply::error("ERR timed out waiting for the execution").write(&Context::new(ctx));
    raw::REDISMODULE_OK as c_int
}

extern "C" fn free_reply(_ctx: *mut raw::RedisModuleCtx, data: *mut c_void) {
    if !data.is_null() {
        // SAFETY: `data` is the box made in `unblock`, freed once here.
        drop(unsafe { Box::from_raw(data.cast::<Reply>()) });
    }
}
