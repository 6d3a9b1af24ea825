//! The records of KeysReader, built from what the module read out of the keyspace.

use crate::gears_dict::gears_order;
use std::borrow::Cow;

use crate::record::{FieldName, Record};

/// A key's value as the module read it.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyValue {
    String(Vec<u8>),
    /// Field/value pairs in the order HGETALL returned them.
    Hash(Vec<(Vec<u8>, Vec<u8>)>),
    /// Elements head to tail.
    List(Vec<Vec<u8>>),
    Set,
    ZSet,
    Module,
    Stream,
    /// The key does not exist.
    Empty,
}

impl KeyValue {
    /// The `'type'` of the record. A stream reads `unknown`: RedisGears' type switch has no
    /// stream case, and users' scripts see that name.
    pub fn type_name(&self) -> &'static str {
        match self {
            KeyValue::String(_) => "string",
            KeyValue::Hash(_) => "hash",
            KeyValue::List(_) => "list",
            KeyValue::Set => "set",
            KeyValue::ZSet => "zset",
            KeyValue::Module => "module",
            KeyValue::Stream => "unknown",
            KeyValue::Empty => "empty",
        }
    }

    fn into_record(self) -> Record {
        match self {
            KeyValue::String(s) => Record::String(s),
            KeyValue::Hash(fields) => Record::HashSet(ordered_fields(fields)),
            KeyValue::List(items) => Record::List(items.into_iter().map(Record::String).collect()),
            _ => Record::Null,
        }
    }
}

/// Field/value pairs (a hash's, a stream entry's) as a record's fields in RedisGears' dict order.
fn ordered_fields(fields: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<(FieldName, Record)> {
    let fields = fields
        .into_iter()
        .map(|(f, v)| (f, Record::String(v)))
        .collect();
    gears_order(fields)
        .into_iter()
        .map(|(f, v)| (Cow::Owned(f), v))
        .collect()
}

/// A KeysReader record: `event` and `key`, plus `type` and `value` when the value was read
/// (`value` is `None` when values are not read). RedisGears assigns `key, value, type, event`;
/// its dict then iterates them as `event, key, type, value` (proven in `gears_dict`'s tests), so
/// the record is built in that order directly.
pub fn key_record(key: Vec<u8>, value: Option<KeyValue>, event: Option<&str>) -> Record {
    let event = event.map_or(Record::Null, Record::string);
    let mut fields = Vec::with_capacity(4);
    fields.push((Cow::Borrowed(b"event".as_slice()), event));
    fields.push((Cow::Borrowed(b"key".as_slice()), Record::String(key)));
    if let Some(value) = value {
        fields.push((
            Cow::Borrowed(b"type".as_slice()),
            Record::string(value.type_name()),
        ));
        fields.push((Cow::Borrowed(b"value".as_slice()), value.into_record()));
    }
    Record::HashSet(fields)
}

/// A stream entry as StreamReader emits it: `key, id, value` (RedisGears assigns `id, value,
/// key`), the entry's fields in RedisGears' dict order.
pub fn stream_record(key: Vec<u8>, id: Vec<u8>, fields: Vec<(Vec<u8>, Vec<u8>)>) -> Record {
    let value = ordered_fields(fields);
    Record::HashSet(vec![
        (Cow::Borrowed(b"key".as_slice()), Record::String(key)),
        (Cow::Borrowed(b"id".as_slice()), Record::String(id)),
        (Cow::Borrowed(b"value".as_slice()), Record::HashSet(value)),
    ])
}

/// The prefix rule of `register()`: a prefix ending in `*` matches the keys that start with
/// what comes before the `*`; any other prefix matches only the key equal to it (it is neither a
/// glob nor a plain prefix).
pub fn prefix_matches(prefix: &[u8], key: &[u8]) -> bool {
    match prefix.strip_suffix(b"*") {
        Some(start) => key.starts_with(start),
        None => prefix == key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_rule() {
        assert!(prefix_matches(b"*", b"anything"));
        assert!(prefix_matches(b"*", b""));
        assert!(prefix_matches(b"user:*", b"user:1"));
        assert!(!prefix_matches(b"user:*", b"order:1"));
        assert!(prefix_matches(b"bar", b"bar"));
        assert!(!prefix_matches(b"bar", b"barn"));
        // Only a trailing star counts; others are literal.
        assert!(!prefix_matches(b"a*b", b"aXb"));
        assert!(prefix_matches(b"a*b", b"a*b"));
    }

    #[test]
    fn hash_values_take_redisgears_dict_order() {
        let r = key_record(
            b"person:1".to_vec(),
            Some(KeyValue::Hash(vec![
                (b"name".to_vec(), b"Rick Sanchez".to_vec()),
                (b"age".to_vec(), b"70".to_vec()),
            ])),
            None,
        );
        let Record::HashSet(fields) = r else { panic!() };
        let Record::HashSet(value) = &fields[3].1 else {
            panic!()
        };
        let names: Vec<&[u8]> = value.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(names, [b"age".as_slice(), b"name".as_slice()]);
    }

    #[test]
    fn record_without_value_has_only_event_and_key() {
        let r = key_record(b"x".to_vec(), None, None);
        assert_eq!(
            r,
            Record::HashSet(vec![
                (b"event".as_slice().into(), Record::Null),
                (b"key".as_slice().into(), Record::string("x")),
            ])
        );
    }

    #[test]
    fn record_with_value_orders_event_key_type_value() {
        let r = key_record(
            b"x".to_vec(),
            Some(KeyValue::String(b"1".to_vec())),
            Some("set"),
        );
        assert_eq!(
            r,
            Record::HashSet(vec![
                (b"event".as_slice().into(), Record::string("set")),
                (b"key".as_slice().into(), Record::string("x")),
                (b"type".as_slice().into(), Record::string("string")),
                (b"value".as_slice().into(), Record::string("1")),
            ])
        );
    }

    #[test]
    fn stream_reads_as_unknown_with_no_value() {
        let r = key_record(b"s".to_vec(), Some(KeyValue::Stream), None);
        let Record::HashSet(fields) = r else { panic!() };
        assert_eq!(fields[2].1, Record::string("unknown"));
        assert_eq!(fields[3].1, Record::Null);
    }
}
