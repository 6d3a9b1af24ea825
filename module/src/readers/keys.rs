//! KeysReader in batch mode: the records of the keys matching a pattern (or one exact key).

use dataflow::keys::{key_record, KeyValue};
use dataflow::{Reader, Record};
use redis_module::key::RedisKey;
use redis_module::{Context, KeyType, RedisString, RedisValue};

use super::scan::ChunkedScan;

/// What the records must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyContent {
    /// No step looks at the records (a plain count): one placeholder per key.
    Nothing,
    /// `{'event', 'key'}` (readValue=False).
    Names,
    /// `{'event', 'key', 'type', 'value'}`.
    Values,
}

pub struct KeysReader {
    scan: ChunkedScan,
    exact_key: Option<Vec<u8>>,
    /// The event that fired a registration's execution (`'event'` of the record).
    event: Option<String>,
    content: KeyContent,
}

impl KeysReader {
    /// With `no_scan` the pattern is one exact key name, read even if it does not exist.
    pub fn new(pattern: Vec<u8>, no_scan: bool, content: KeyContent) -> KeysReader {
        KeysReader {
            exact_key: no_scan.then(|| pattern.clone()),
            scan: ChunkedScan::new(pattern),
            event: None,
            content,
        }
    }

    /// The one record of the key an event fired on, read when the execution runs.
    pub fn for_event(key: Vec<u8>, event: &str, content: KeyContent) -> KeysReader {
        KeysReader {
            exact_key: Some(key),
            scan: ChunkedScan::finished(),
            event: Some(event.to_string()),
            content,
        }
    }
}

/// The record of one key, read now with the lock `ctx` holds. Opening the key fires no
/// registration (a missing key would otherwise notify `keymiss`).
pub fn exact_key_record(
    ctx: &Context,
    name: &[u8],
    event: Option<&str>,
    content: KeyContent,
) -> Record {
    crate::python::context::opening_keys(|| {
        let name = RedisString::create_from_slice(std::ptr::null_mut(), name);
        // Only the values need the key open.
        let key = matches!(content, KeyContent::Values).then(|| ctx.open_key(&name));
        content_record(ctx, content, &name, key.as_ref(), event)
    })
}

/// The record of one key, holding what `content` asks for; a missing `key` reads as empty.
fn content_record(
    ctx: &Context,
    content: KeyContent,
    name: &RedisString,
    key: Option<&RedisKey>,
    event: Option<&str>,
) -> Record {
    match content {
        KeyContent::Nothing => Record::Null,
        KeyContent::Names => key_record(name.as_slice().to_vec(), None, event),
        KeyContent::Values => {
            let value = key.map_or(KeyValue::Empty, |k| read_value(ctx, name, k));
            key_record(name.as_slice().to_vec(), Some(value), event)
        }
    }
}

impl Reader for KeysReader {
    fn next_chunk(&mut self) -> Result<Option<Vec<Record>>, String> {
        let content = self.content;
        if let Some(name) = self.exact_key.take() {
            let event = self.event.take();
            let record = self
                .scan
                .with_lock(|ctx| exact_key_record(ctx, &name, event.as_deref(), content));
            // The exact key was the whole input.
            self.scan = ChunkedScan::finished();
            return Ok(Some(vec![record]));
        }
        Ok(self
            .scan
            .next_chunk(|ctx, name, key| content_record(ctx, content, name, key, None)))
    }
}

/// The key's value as the record shows it; must run with the Redis lock held.
pub fn read_value(ctx: &Context, name: &RedisString, key: &RedisKey) -> KeyValue {
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
