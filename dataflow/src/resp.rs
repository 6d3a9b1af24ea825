//! Reading a command's reply straight from its RESP2 bytes (what `RedisModule_CallReplyProto`
//! hands over). Redis' own call-reply reader allocates an object per element as it is visited;
//! a batch of 1,000 stream entries is 5,000 of them, so the stream reader walks the bytes
//! instead, borrowing every string from them.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum RespError {
    #[error("the reply ends early")]
    Truncated,
    #[error("expected {expected} at byte {at}")]
    Unexpected { expected: &'static str, at: usize },
}

/// A cursor over RESP2 bytes.
pub struct Resp<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Resp<'a> {
    pub fn new(bytes: &'a [u8]) -> Resp<'a> {
        Resp { bytes, at: 0 }
    }

    /// The header line of the next element if its type byte is `kind`: the number after it.
    fn header(&mut self, kind: u8, expected: &'static str) -> Result<i64, RespError> {
        let start = self.at;
        match self.bytes.get(start) {
            None => return Err(RespError::Truncated),
            Some(&b) if b != kind => {
                return Err(RespError::Unexpected {
                    expected,
                    at: start,
                })
            }
            Some(_) => {}
        }
        let rest = &self.bytes[start + 1..];
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or(RespError::Truncated)?;
        let number = std::str::from_utf8(&rest[..end])
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or(RespError::Unexpected {
                expected: "a length",
                at: start + 1,
            })?;
        self.at = start + 1 + end + 2;
        Ok(number)
    }

    /// An array's length; `None` for a null array.
    pub fn array(&mut self) -> Result<Option<usize>, RespError> {
        let n = self.header(b'*', "an array")?;
        Ok(usize::try_from(n).ok())
    }

    /// A bulk string; `None` for a null one.
    pub fn bulk(&mut self) -> Result<Option<&'a [u8]>, RespError> {
        let n = self.header(b'$', "a bulk string")?;
        let Ok(len) = usize::try_from(n) else {
            return Ok(None);
        };
        let end = self.at.checked_add(len).ok_or(RespError::Truncated)?;
        if self.bytes.len() < end + 2 {
            return Err(RespError::Truncated);
        }
        if &self.bytes[end..end + 2] != b"\r\n" {
            return Err(RespError::Unexpected {
                expected: "CRLF",
                at: end,
            });
        }
        let value = &self.bytes[self.at..end];
        self.at = end + 2;
        Ok(Some(value))
    }

    /// The next element, whatever it is, skipped.
    pub fn skip(&mut self) -> Result<(), RespError> {
        match self.bytes.get(self.at) {
            None => Err(RespError::Truncated),
            Some(b'*') => {
                for _ in 0..self.array()?.unwrap_or(0) {
                    self.skip()?;
                }
                Ok(())
            }
            Some(b'$') => self.bulk().map(|_| ()),
            Some(b'+' | b'-' | b':') => {
                let rest = &self.bytes[self.at..];
                let end = rest
                    .windows(2)
                    .position(|w| w == b"\r\n")
                    .ok_or(RespError::Truncated)?;
                self.at += end + 2;
                Ok(())
            }
            Some(_) => Err(RespError::Unexpected {
                expected: "an element",
                at: self.at,
            }),
        }
    }
}

/// One entry of an XREAD / XREADGROUP reply: its id and field/value pairs (`None`: the entry
/// was deleted after it was delivered, so the reply has nil for it).
pub type StreamEntry<'a> = (&'a [u8], Option<Vec<(&'a [u8], &'a [u8])>>);

/// Calls `each` with every entry of an XREAD / XREADGROUP reply
/// `[[key, [[id, [f, v, ...] | nil], ...]], ...]` (nil: no entries at all), in order.
pub fn stream_entries<'a>(
    bytes: &'a [u8],
    mut each: impl FnMut(StreamEntry<'a>),
) -> Result<(), RespError> {
    let mut resp = Resp::new(bytes);
    let Some(streams) = resp.array()? else {
        return Ok(());
    };
    for _ in 0..streams {
        if resp.array()? != Some(2) {
            return Err(RespError::Unexpected {
                expected: "[key, entries]",
                at: resp.at,
            });
        }
        resp.skip()?; // the stream's name
        for _ in 0..resp.array()?.unwrap_or(0) {
            if resp.array()? != Some(2) {
                return Err(RespError::Unexpected {
                    expected: "[id, fields]",
                    at: resp.at,
                });
            }
            let id = resp.bulk()?.ok_or(RespError::Unexpected {
                expected: "an entry id",
                at: resp.at,
            })?;
            let fields = match resp.array()? {
                None => None,
                Some(n) => {
                    let mut pairs = Vec::with_capacity(n / 2);
                    for _ in 0..n / 2 {
                        let field = resp.bulk()?.unwrap_or_default();
                        let value = resp.bulk()?.unwrap_or_default();
                        pairs.push((field, value));
                    }
                    if n % 2 == 1 {
                        resp.skip()?;
                    }
                    Some(pairs)
                }
            };
            each((id, fields));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(bytes: &[u8]) -> Result<Vec<StreamEntry<'_>>, RespError> {
        let mut out = Vec::new();
        stream_entries(bytes, |e| out.push(e))?;
        Ok(out)
    }

    #[test]
    fn reads_entries_and_deleted_ones() {
        let reply = b"*1\r\n*2\r\n$1\r\ns\r\n*2\r\n*2\r\n$3\r\n1-0\r\n*4\r\n$1\r\na\r\n$2\r\nxy\r\n$1\r\nb\r\n$0\r\n\r\n*2\r\n$3\r\n2-0\r\n*-1\r\n";
        assert_eq!(
            entries(reply).unwrap(),
            vec![
                (
                    b"1-0".as_slice(),
                    Some(vec![
                        (b"a".as_slice(), b"xy".as_slice()),
                        (b"b".as_slice(), b"".as_slice())
                    ])
                ),
                (b"2-0".as_slice(), None),
            ]
        );
    }

    #[test]
    fn nothing_read_is_a_null_array() {
        assert_eq!(entries(b"*-1\r\n").unwrap(), vec![]);
        assert_eq!(entries(b"*0\r\n").unwrap(), vec![]);
    }

    #[test]
    fn binary_values_keep_their_bytes() {
        let reply = b"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nf\r\n$4\r\n\r\n\x00\xff\r\n";
        let read = entries(reply).unwrap();
        assert_eq!(read[0].1.as_ref().unwrap()[0].1, b"\r\n\x00\xff");
    }

    #[test]
    fn broken_replies_are_errors_not_panics() {
        let whole = b"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n";
        for cut in 0..whole.len() {
            assert!(entries(&whole[..cut]).is_err(), "cut at {cut}");
        }
        assert!(entries(whole).is_ok());
        assert!(matches!(
            entries(b"+OK\r\n"),
            Err(RespError::Unexpected { .. })
        ));
        assert!(entries(b"*1\r\n*2\r\n$99999999999999999999\r\n").is_err());
        assert!(entries(b"*1\r\n*2\r\n$9223372036854775807\r\nx\r\n").is_err());
    }
}
