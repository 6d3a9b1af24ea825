//! StreamReader in batch mode: the entries of one stream after `fromId`, oldest first.

use dataflow::keys::stream_record;
use dataflow::{Reader, Record};
use redis_module::{Context, DetachedFromClient, RedisError, RedisValue, ThreadSafeContext};

use super::keys::value_bytes;

/// Entries read per lock hold.
const ENTRIES_PER_CHUNK: usize = 1000;

pub struct StreamReader {
    key: Vec<u8>,
    /// Entries strictly after this id are read next.
    after: Vec<u8>,
    context: Option<ThreadSafeContext<DetachedFromClient>>,
    done: bool,
}

impl StreamReader {
    pub fn new(key: Vec<u8>, from_id: Vec<u8>) -> StreamReader {
        StreamReader {
            key,
            after: from_id,
            context: None,
            done: false,
        }
    }
}

/// A stream entry: its id and its field/value pairs in XADD order.
type StreamEntry = (Vec<u8>, Vec<(Vec<u8>, Vec<u8>)>);

/// The entries of an XREAD reply `[[key, [[id, [field, value, ...]], ...]]]`.
fn entries(reply: RedisValue) -> Vec<StreamEntry> {
    let RedisValue::Array(streams) = reply else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for stream in streams {
        let RedisValue::Array(mut parts) = stream else {
            continue;
        };
        let Some(RedisValue::Array(items)) = parts.pop() else {
            continue;
        };
        for item in items {
            let RedisValue::Array(mut pair) = item else {
                continue;
            };
            let fields = match pair.pop() {
                Some(RedisValue::Array(flat)) => flat,
                _ => Vec::new(),
            };
            let Some(id) = pair.pop().and_then(value_bytes) else {
                continue;
            };
            let mut values = fields.into_iter().filter_map(value_bytes);
            let mut pairs = Vec::new();
            while let (Some(f), Some(v)) = (values.next(), values.next()) {
                pairs.push((f, v));
            }
            out.push((id, pairs));
        }
    }
    out
}

fn xread(ctx: &Context, key: &[u8], after: &[u8]) -> Result<RedisValue, String> {
    let count = ENTRIES_PER_CHUNK.to_string();
    let args: [&[u8]; 5] = [b"COUNT", count.as_bytes(), b"STREAMS", key, after];
    match ctx.call("XREAD", args.as_slice()) {
        Ok(v) => Ok(v),
        Err(RedisError::String(s)) => Err(s),
        Err(e) => Err(e.to_string()),
    }
}

impl Reader for StreamReader {
    fn next_chunk(&mut self) -> Result<Option<Vec<Record>>, String> {
        if self.done {
            return Ok(None);
        }
        let context = self.context.get_or_insert_with(ThreadSafeContext::new);
        let reply = {
            let guard = context.lock();
            xread(&guard, &self.key, &self.after)
        };
        let reply = match reply {
            Ok(r) => r,
            Err(e) => {
                // A Redis error (wrong type, malformed id) is one error record.
                self.done = true;
                return Err(e);
            }
        };
        let entries = entries(reply);
        if entries.len() < ENTRIES_PER_CHUNK {
            self.done = true;
        }
        if let Some((last, _)) = entries.last() {
            self.after = last.clone();
        }
        Ok(Some(
            entries
                .into_iter()
                .map(|(id, fields)| stream_record(self.key.clone(), id, fields))
                .collect(),
        ))
    }
}
