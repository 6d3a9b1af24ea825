//! StreamReader: in batch mode the entries of one stream after `fromId`, oldest first; for a
//! registration, one batch read through the consumer group.

use dataflow::keys::stream_record;
use dataflow::{Reader, Record};
use redis_module::{Context, RedisError, RedisValue};

use super::keys::value_bytes;
use crate::redis_calls::{call_read, call_with, with_redis_lock};
use crate::redis_lock::RedisLock;

/// Entries read per lock hold.
const ENTRIES_PER_CHUNK: usize = 1000;

pub struct StreamReader {
    key: Vec<u8>,
    /// Entries strictly after this id are read next.
    after: Vec<u8>,
    done: bool,
}

impl StreamReader {
    pub fn new(key: Vec<u8>, from_id: Vec<u8>) -> StreamReader {
        StreamReader {
            key,
            after: from_id,
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
        let reply = {
            let guard = RedisLock::acquire();
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

/// The consumer group of stream registrations (readers.md §4.3).
pub const GROUP: &str = "__gears_consumer_group__";
/// The consumer name within [`GROUP`].
pub const CONSUMER: &str = "__gears_client__";

/// What one registration batch read: every id the group delivered (acknowledged after a
/// successful run, entries deleted since included) and how the read ended.
#[derive(Debug, Default, Clone)]
pub struct ReadBatch {
    pub ids: Vec<Vec<u8>>,
    /// Entries read with `>` (new to the group), as opposed to redelivered ones.
    pub new_entries: usize,
    /// The read with `>` returned fewer than asked: nothing new was left at that instant.
    pub caught_up: bool,
}

/// Told what a batch read, under the Redis lock it was read with.
pub type OnRead = Box<dyn FnOnce(ReadBatch) + Send>;

/// The StreamReader of a registration: one batch of one stream, read through the consumer group
/// under the Redis lock. `on_read` runs under that lock too, right after the read, so the
/// registration's count of unread entries stays exact against the XADDs around it.
pub struct GroupReader {
    key: Vec<u8>,
    count: usize,
    /// First deliver again what the group delivered and nobody acknowledged (a newly tracked
    /// stream, a retry, an unpause).
    redeliver: bool,
    on_read: Option<OnRead>,
    done: bool,
}

impl GroupReader {
    pub fn new(key: Vec<u8>, count: usize, redeliver: bool, on_read: OnRead) -> GroupReader {
        GroupReader {
            key,
            count: count.max(1),
            redeliver,
            on_read: Some(on_read),
            done: false,
        }
    }
}

fn reply_bytes(reply: &redis_module::CallReply<'_>) -> Option<Vec<u8>> {
    match reply {
        redis_module::CallReply::String(s) => Some(s.as_bytes().to_vec()),
        _ => None,
    }
}

/// The field/value pairs of an entry, `None` for an entry deleted since it was delivered (nil).
fn entry_fields(reply: &redis_module::CallReply<'_>) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    let redis_module::CallReply::Array(flat) = reply else {
        return None;
    };
    let mut values = flat
        .iter()
        .filter_map(|v| v.ok().as_ref().and_then(reply_bytes));
    let mut pairs = Vec::with_capacity(flat.len() / 2);
    while let (Some(f), Some(v)) = (values.next(), values.next()) {
        pairs.push((f, v));
    }
    Some(pairs)
}

/// Reads an XREADGROUP reply `[[key, [[id, [f, v, ...] | nil], ...]]]` (nil: nothing) in one
/// pass, straight from Redis' reply: the ids of every entry delivered go to `ids`, the records of
/// those that still exist are returned.
fn group_records(
    key: &[u8],
    reply: &redis_module::CallReply<'_>,
    ids: &mut Vec<Vec<u8>>,
) -> Vec<Record> {
    let mut records = Vec::new();
    let redis_module::CallReply::Array(streams) = reply else {
        return records;
    };
    for stream in streams.iter().flatten() {
        let redis_module::CallReply::Array(parts) = &stream else {
            continue;
        };
        let Some(Ok(redis_module::CallReply::Array(items))) = parts.get(1) else {
            continue;
        };
        records.reserve(items.len());
        ids.reserve(items.len());
        for item in items.iter().flatten() {
            let redis_module::CallReply::Array(pair) = &item else {
                continue;
            };
            let Some(id) = pair
                .get(0)
                .and_then(|r| r.ok().as_ref().and_then(reply_bytes))
            else {
                continue;
            };
            let fields = pair
                .get(1)
                .and_then(|r| r.ok().as_ref().and_then(entry_fields));
            if let Some(fields) = fields {
                records.push(stream_record(key.to_vec(), id.clone(), fields));
            }
            ids.push(id);
        }
    }
    records
}

/// Creates the group at the stream's start, so entries already there get processed. False if
/// the stream does not exist (any more).
fn create_group(ctx: &Context, key: &[u8]) -> bool {
    let args = [
        b"CREATE".to_vec(),
        key.to_vec(),
        GROUP.as_bytes().to_vec(),
        b"0".to_vec(),
    ];
    match call_with(ctx, "XGROUP", &args) {
        Ok(_) => true,
        Err(e) => e.starts_with("BUSYGROUP"),
    }
}

/// XREADGROUP of `key` from `from` (`0`: what was delivered and not acknowledged; `>`: new
/// entries), `count` at most; the ids delivered go to `ids`, the records are returned.
fn read_group(
    ctx: &Context,
    key: &[u8],
    count: Option<usize>,
    from: &str,
    ids: &mut Vec<Vec<u8>>,
) -> Result<Vec<Record>, String> {
    let count = count.map(|c| c.to_string());
    let mut args: Vec<&[u8]> = vec![b"GROUP", GROUP.as_bytes(), CONSUMER.as_bytes()];
    if let Some(count) = &count {
        args.extend([b"COUNT".as_slice(), count.as_bytes()]);
    }
    args.extend([b"STREAMS".as_slice(), key, from.as_bytes()]);
    call_read(ctx, "XREADGROUP", &args, |reply| {
        group_records(key, reply, ids)
    })
}

impl GroupReader {
    fn read(&self, ctx: &Context) -> Result<(Vec<Record>, ReadBatch), String> {
        let mut batch = ReadBatch::default();
        if self.redeliver {
            if !create_group(ctx, &self.key) {
                batch.caught_up = true;
                return Ok((Vec::new(), batch));
            }
            let pending = read_group(ctx, &self.key, None, "0", &mut batch.ids)?;
            if !batch.ids.is_empty() {
                return Ok((pending, batch));
            }
        }
        let count = Some(self.count);
        let records = match read_group(ctx, &self.key, count, ">", &mut batch.ids) {
            // The stream was deleted and written again: its group went with it.
            Err(e) if e.starts_with("NOGROUP") => {
                if !create_group(ctx, &self.key) {
                    batch.caught_up = true;
                    return Ok((Vec::new(), batch));
                }
                read_group(ctx, &self.key, count, ">", &mut batch.ids)?
            }
            other => other?,
        };
        batch.new_entries = batch.ids.len();
        batch.caught_up = batch.ids.len() < self.count;
        Ok((records, batch))
    }
}

impl Reader for GroupReader {
    fn next_chunk(&mut self) -> Result<Option<Vec<Record>>, String> {
        if self.done {
            return Ok(None);
        }
        self.done = true;
        let on_read = self.on_read.take();
        let records = with_redis_lock(|ctx| {
            let (records, batch) = match self.read(ctx) {
                Ok((records, batch)) => (Ok(records), batch),
                // A stream that cannot be read (it is not a stream any more) is not retried on
                // its own: the next XADD to it tries again.
                Err(e) => (
                    Err(e),
                    ReadBatch {
                        caught_up: true,
                        ..ReadBatch::default()
                    },
                ),
            };
            if let Some(on_read) = on_read {
                on_read(batch);
            }
            records
        });
        records.map(Some).map_err(|e| e.trim_end().to_string())
    }
}
