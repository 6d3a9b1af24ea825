//! Records as bytes, for the records a distributed execution ships to other shards (collect,
//! repartition). Native records have a fixed binary form; runtime objects (Python values) are
//! encoded by the runtime's [`ObjectCodec`].

use thiserror::Error;

use crate::record::{ObjectHandle, Record};

/// Encodes and decodes the runtime's objects (the module: Python `marshal`, as RedisGears).
pub trait ObjectCodec: Send + Sync {
    fn encode(&self, object: &dyn ObjectHandle, out: &mut Vec<u8>) -> Result<(), String>;
    fn decode(&self, bytes: &[u8]) -> Result<Record, String>;
}

#[derive(Debug, Error, PartialEq)]
pub enum WireError {
    #[error("truncated record")]
    Truncated,
    #[error("unknown record tag {0}")]
    UnknownTag(u8),
    #[error("records nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("{0}")]
    Object(String),
}

/// Deeper nesting is refused on decoding, so a hostile message cannot exhaust the stack.
pub const MAX_DEPTH: usize = 512;

const NULL: u8 = 0;
const STRING: u8 = 1;
const LONG: u8 = 2;
const DOUBLE: u8 = 3;
const LIST: u8 = 4;
const HASH_SET: u8 = 5;
const KEY_VALUE: u8 = 6;
const ERROR: u8 = 7;
const OBJECT: u8 = 8;

/// Appends `bytes` with its length (u32, little-endian) in front.
pub fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Appends `record` to `out`; on failure (an object the codec cannot encode) `out` is left as
/// it was and the codec's message is returned.
pub fn encode(record: &Record, codec: &dyn ObjectCodec, out: &mut Vec<u8>) -> Result<(), String> {
    let start = out.len();
    let encoded = encode_into(record, codec, out);
    if encoded.is_err() {
        out.truncate(start);
    }
    encoded
}

fn encode_into(record: &Record, codec: &dyn ObjectCodec, out: &mut Vec<u8>) -> Result<(), String> {
    match record {
        Record::Null => out.push(NULL),
        Record::String(s) => {
            out.push(STRING);
            put_bytes(out, s);
        }
        Record::Long(v) => {
            out.push(LONG);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Record::Double(v) => {
            out.push(DOUBLE);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Record::List(items) => {
            out.push(LIST);
            out.extend_from_slice(&(items.len() as u32).to_le_bytes());
            for item in items {
                encode_into(item, codec, out)?;
            }
        }
        Record::HashSet(fields) => {
            out.push(HASH_SET);
            out.extend_from_slice(&(fields.len() as u32).to_le_bytes());
            for (name, value) in fields {
                put_bytes(out, name);
                encode_into(value, codec, out)?;
            }
        }
        Record::KeyValue { key, value } => {
            out.push(KEY_VALUE);
            put_bytes(out, key.as_bytes());
            match value {
                Some(v) => {
                    out.push(1);
                    encode_into(v, codec, out)?;
                }
                None => out.push(0),
            }
        }
        Record::Error(e) => {
            out.push(ERROR);
            put_bytes(out, e.as_bytes());
        }
        Record::Object(o) => {
            out.push(OBJECT);
            let at = out.len();
            out.extend_from_slice(&[0; 4]);
            codec.encode(o.as_ref(), out)?;
            let len = (out.len() - at - 4) as u32;
            out[at..at + 4].copy_from_slice(&len.to_le_bytes());
        }
    }
    Ok(())
}

/// Takes `n` bytes off the front of `input`.
pub fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], WireError> {
    if input.len() < n {
        return Err(WireError::Truncated);
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Ok(head)
}

/// Takes a u32 (little-endian) off the front of `input`.
pub fn take_u32(input: &mut &[u8]) -> Result<u32, WireError> {
    let bytes = take(input, 4)?;
    Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

/// Takes what [`put_bytes`] wrote off the front of `input`.
pub fn take_bytes<'a>(input: &mut &'a [u8]) -> Result<&'a [u8], WireError> {
    let len = take_u32(input)? as usize;
    take(input, len)
}

fn take_8(input: &mut &[u8]) -> Result<[u8; 8], WireError> {
    let bytes = take(input, 8)?;
    let mut array = [0; 8];
    array.copy_from_slice(bytes);
    Ok(array)
}

/// Reads one record from the front of `input`.
pub fn decode(input: &mut &[u8], codec: &dyn ObjectCodec) -> Result<Record, WireError> {
    decode_at(input, codec, 0)
}

fn decode_at(
    input: &mut &[u8],
    codec: &dyn ObjectCodec,
    depth: usize,
) -> Result<Record, WireError> {
    if depth > MAX_DEPTH {
        return Err(WireError::TooDeep);
    }
    let tag = take(input, 1)?[0];
    Ok(match tag {
        NULL => Record::Null,
        STRING => Record::String(take_bytes(input)?.to_vec()),
        LONG => Record::Long(i64::from_le_bytes(take_8(input)?)),
        DOUBLE => Record::Double(f64::from_le_bytes(take_8(input)?)),
        LIST => {
            let n = take_u32(input)? as usize;
            // Each item takes at least one byte: a count beyond what is left is a lie.
            let mut items = Vec::with_capacity(n.min(input.len()));
            for _ in 0..n {
                items.push(decode_at(input, codec, depth + 1)?);
            }
            Record::List(items)
        }
        HASH_SET => {
            let n = take_u32(input)? as usize;
            let mut fields = Vec::with_capacity(n.min(input.len()));
            for _ in 0..n {
                let name = take_bytes(input)?.to_vec();
                fields.push((name.into(), decode_at(input, codec, depth + 1)?));
            }
            Record::HashSet(fields)
        }
        KEY_VALUE => {
            let key = String::from_utf8_lossy(take_bytes(input)?).into_owned();
            let value = match take(input, 1)?[0] {
                0 => None,
                _ => Some(Box::new(decode_at(input, codec, depth + 1)?)),
            };
            Record::KeyValue { key, value }
        }
        ERROR => Record::Error(String::from_utf8_lossy(take_bytes(input)?).into_owned()),
        OBJECT => codec
            .decode(take_bytes(input)?)
            .map_err(WireError::Object)?,
        other => return Err(WireError::UnknownTag(other)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Objects are `String`s, encoded as their bytes; "bad" cannot be encoded.
    struct Strings;

    impl ObjectCodec for Strings {
        fn encode(&self, object: &dyn ObjectHandle, out: &mut Vec<u8>) -> Result<(), String> {
            let s = object
                .as_any()
                .downcast_ref::<String>()
                .ok_or("not a string")?;
            if s == "bad" {
                return Err("unmarshallable object".into());
            }
            out.extend_from_slice(s.as_bytes());
            Ok(())
        }
        fn decode(&self, bytes: &[u8]) -> Result<Record, String> {
            Ok(Record::object(String::from_utf8_lossy(bytes).into_owned()))
        }
    }

    fn round_trip(record: &Record) -> Record {
        let mut out = Vec::new();
        encode(record, &Strings, &mut out).unwrap();
        let mut input = out.as_slice();
        let decoded = decode(&mut input, &Strings).unwrap();
        assert!(input.is_empty());
        decoded
    }

    #[test]
    fn every_native_shape_comes_back_equal() {
        let record = Record::List(vec![
            Record::Null,
            Record::string("héllo"),
            Record::Long(-7),
            Record::Double(2.5),
            Record::HashSet(vec![(b"key".as_slice().into(), Record::string("k"))]),
            Record::KeyValue {
                key: "g".into(),
                value: Some(Box::new(Record::Long(1))),
            },
            Record::KeyValue {
                key: "none".into(),
                value: None,
            },
            Record::Error("boom".into()),
        ]);
        assert_eq!(round_trip(&record), record);
    }

    #[test]
    fn objects_go_through_the_codec() {
        let back = round_trip(&Record::List(vec![Record::object("x".to_string())]));
        let Record::List(items) = back else { panic!() };
        assert_eq!(
            items[0].downcast_ref::<String>().map(String::as_str),
            Some("x")
        );
    }

    #[test]
    fn an_object_the_codec_refuses_leaves_nothing_written() {
        let mut out = vec![9];
        let bad = Record::List(vec![Record::Long(1), Record::object("bad".to_string())]);
        assert_eq!(
            encode(&bad, &Strings, &mut out),
            Err("unmarshallable object".to_string())
        );
        assert_eq!(out, vec![9]);
    }

    #[test]
    fn broken_input_is_an_error_not_a_panic() {
        let mut out = Vec::new();
        encode(&Record::string("abcdef"), &Strings, &mut out).unwrap();
        for cut in 0..out.len() {
            let mut input = &out[..cut];
            assert_eq!(decode(&mut input, &Strings), Err(WireError::Truncated));
        }
        let mut input: &[u8] = &[42];
        assert_eq!(decode(&mut input, &Strings), Err(WireError::UnknownTag(42)));
        let deep = [LIST, 1, 0, 0, 0].repeat(MAX_DEPTH + 2);
        let mut input = deep.as_slice();
        assert_eq!(decode(&mut input, &Strings), Err(WireError::TooDeep));
        // A count far beyond the input does not allocate for it.
        let mut input: &[u8] = &[LIST, 255, 255, 255, 255];
        assert_eq!(decode(&mut input, &Strings), Err(WireError::Truncated));
    }
}
