//! Replies as a tree, written with the raw module API so that error elements can sit inside
//! arrays and error texts go out verbatim (no `ERR ` added), as RedisGears writes them.

use std::ffi::CString;
use std::os::raw::{c_char, c_long};

use redis_module::{raw, Context};

#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Simple(String),
    Bulk(Vec<u8>),
    Integer(i64),
    /// A double; RESP2 sends it as a bulk string in Redis' own formatting.
    Double(f64),
    Error(String),
    Array(Vec<Reply>),
    Null,
}

impl Reply {
    pub fn ok() -> Reply {
        Reply::Simple("OK".into())
    }

    pub fn bulk(s: impl Into<Vec<u8>>) -> Reply {
        Reply::Bulk(s.into())
    }

    pub fn error(s: impl Into<String>) -> Reply {
        Reply::Error(s.into())
    }

    /// Writes the reply to `context` (a command's context or a blocked client's reply context).
    pub fn write(&self, context: &Context) {
        let ctx = context.ctx;
        // SAFETY: `ctx` is a live context handed to us by Redis for the duration of this call.
        unsafe {
            match self {
                Reply::Simple(s) => {
                    let s = c_text(s);
                    raw::RedisModule_ReplyWithSimpleString.unwrap()(ctx, s.as_ptr());
                }
                Reply::Bulk(b) => {
                    raw::RedisModule_ReplyWithStringBuffer.unwrap()(
                        ctx,
                        b.as_ptr().cast::<c_char>(),
                        b.len(),
                    );
                }
                Reply::Integer(i) => {
                    raw::RedisModule_ReplyWithLongLong.unwrap()(ctx, *i);
                }
                Reply::Double(d) => {
                    raw::RedisModule_ReplyWithDouble.unwrap()(ctx, *d);
                }
                Reply::Error(e) => {
                    let e = c_text(e);
                    raw::RedisModule_ReplyWithError.unwrap()(ctx, e.as_ptr());
                }
                Reply::Array(items) => {
                    raw::RedisModule_ReplyWithArray.unwrap()(ctx, items.len() as c_long);
                    for item in items {
                        item.write(context);
                    }
                }
                Reply::Null => {
                    raw::RedisModule_ReplyWithNull.unwrap()(ctx);
                }
            }
        }
    }
}

/// A C string of `s`; NUL bytes, CR and LF (which would break the protocol) become spaces, as
/// Redis itself does for error texts.
fn c_text(s: &str) -> CString {
    let clean: Vec<u8> = s
        .bytes()
        .map(|b| {
            if b == 0 || b == b'\r' || b == b'\n' {
                b' '
            } else {
                b
            }
        })
        .collect();
    CString::new(clean).unwrap_or_default()
}
