//! KeysReader in batch mode: walks the keyspace with the module scan API from a worker thread,
//! holding the Redis lock for one bounded chunk at a time.

use std::cell::RefCell;
use std::time::Duration;

use dataflow::glob;
use dataflow::keys::{key_record, KeyValue};
use dataflow::{Reader, Record};
use redis_module::{
    key::RedisKey, Context, DetachedFromClient, KeyType, KeysCursor, RedisString, RedisValue,
    ThreadSafeContext,
};

/// Keys read per lock hold; about 1-2 ms of work (BUILD-NOTES-2 §2).
const KEYS_PER_CHUNK: usize = 1000;
/// Pause after releasing the lock so the main thread gets it before we take it again.
const PAUSE_BETWEEN_CHUNKS: Duration = Duration::from_micros(20);

/// The scan cursor lives on the worker; it is only used with the Redis lock held.
struct Cursor(KeysCursor);
// SAFETY: the cursor is a handle to Redis' scan state, used only under the Redis lock and by one
// thread at a time (the reader is owned by one execution).
unsafe impl Send for Cursor {}

pub struct KeysReader {
    pattern: Vec<u8>,
    no_scan: bool,
    read_value: bool,
    cursor: Option<Cursor>,
    context: Option<ThreadSafeContext<DetachedFromClient>>,
    done: bool,
}

impl KeysReader {
    pub fn new(pattern: Vec<u8>, no_scan: bool, read_value: bool) -> KeysReader {
        KeysReader {
            pattern,
            no_scan,
            read_value,
            cursor: None,
            context: None,
            done: false,
        }
    }
}

impl Reader for KeysReader {
    fn next_chunk(&mut self) -> Result<Option<Vec<Record>>, String> {
        if self.done {
            return Ok(None);
        }
        let context = self.context.get_or_insert_with(ThreadSafeContext::new);
        let guard = context.lock();
        if self.no_scan {
            self.done = true;
            let name = RedisString::create_from_slice(std::ptr::null_mut(), &self.pattern);
            let key = guard.open_key(&name);
            let value = self.read_value.then(|| read_value(&guard, &name, &key));
            return Ok(Some(vec![key_record(self.pattern.clone(), value, None)]));
        }
        let cursor = self.cursor.get_or_insert_with(|| Cursor(KeysCursor::new()));
        let records = RefCell::new(Vec::with_capacity(KEYS_PER_CHUNK));
        let (pattern, read) = (&self.pattern, self.read_value);
        let visit = |ctx: &Context, name: &RedisString, key: Option<&RedisKey>| {
            let bytes = name.as_slice();
            if !glob::matches(pattern, bytes) {
                return;
            }
            let value = read.then(|| match key {
                Some(key) => read_value(ctx, name, key),
                None => KeyValue::Empty,
            });
            records
                .borrow_mut()
                .push(key_record(bytes.to_vec(), value, None));
        };
        // Each scan call covers one hash bucket, so loop until the chunk is full.
        while records.borrow().len() < KEYS_PER_CHUNK {
            if !cursor.0.scan(&guard, &visit) {
                self.done = true;
                break;
            }
        }
        drop(guard);
        std::thread::sleep(PAUSE_BETWEEN_CHUNKS);
        Ok(Some(records.into_inner()))
    }
}

/// The key's value as the record shows it; must run with the Redis lock held.
fn read_value(ctx: &Context, name: &RedisString, key: &RedisKey) -> KeyValue {
    match key.key_type() {
        KeyType::Empty => KeyValue::Empty,
        KeyType::String => match key.read() {
            Ok(Some(bytes)) => KeyValue::String(bytes.to_vec()),
            _ => KeyValue::String(Vec::new()),
        },
        KeyType::Hash => {
            let flat = call_strings(ctx, "HGETALL", &[name.as_slice()]);
            let mut fields = Vec::with_capacity(flat.len() / 2);
            let mut it = flat.into_iter();
            while let (Some(f), Some(v)) = (it.next(), it.next()) {
                fields.push((f, v));
            }
            KeyValue::Hash(fields)
        }
        KeyType::List => {
            KeyValue::List(call_strings(ctx, "LRANGE", &[name.as_slice(), b"0", b"-1"]))
        }
        KeyType::Set => KeyValue::Set,
        KeyType::ZSet => KeyValue::ZSet,
        KeyType::Module => KeyValue::Module,
        KeyType::Stream => KeyValue::Stream,
    }
}

/// Runs a command that answers with an array of strings.
fn call_strings(ctx: &Context, command: &str, args: &[&[u8]]) -> Vec<Vec<u8>> {
    match ctx.call(command, args) {
        Ok(RedisValue::Array(items)) => items.into_iter().filter_map(value_bytes).collect(),
        _ => Vec::new(),
    }
}

pub fn value_bytes(v: RedisValue) -> Option<Vec<u8>> {
    match v {
        RedisValue::SimpleString(s) | RedisValue::BulkString(s) => Some(s.into_bytes()),
        RedisValue::SimpleStringStatic(s) => Some(s.as_bytes().to_vec()),
        RedisValue::StringBuffer(b) => Some(b),
        RedisValue::BulkRedisString(s) => Some(s.as_slice().to_vec()),
        _ => None,
    }
}
