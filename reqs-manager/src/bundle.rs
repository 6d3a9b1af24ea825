//! RedisGears' serialized requirement (spec/requirements.md §6): what RG.PYEXPORTREQ returns in
//! chunks and RG.PYIMPORTREQ reads, and what gears-cli keeps as `Data.bin` in its bundle zips.
//!
//! ```text
//! long    version (2)          long = 8 bytes, little-endian
//! string  requirement string   string = long length (NUL included) + bytes + NUL
//! string  compiled OS          (version >= 1)
//! long    in-table flag        (version >= 2)
//! long    number of wheels N
//! N times: string wheel file name, buffer wheel bytes   (buffer = long length + bytes)
//! ```

/// The format version written, and the newest read.
pub const BUNDLE_VERSION: i64 = 2;

/// Largest chunk of RG.PYEXPORTREQ's reply (10 MiB).
pub const CHUNK_SIZE: usize = 10 * 1024 * 1024;

/// A parse failure, with RedisGears' reply texts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("Bad serialization format on reading requirement version")]
    Version,
    #[error("Requirement version is not compatible, upgrade to newer RedisGears.")]
    TooNew,
    #[error("Bad serialization format on reading requirement name")]
    Name,
    #[error("Bad serialization format on reading requirement os")]
    Os,
    #[error("Bad serialization format on reading requirement wheels amount")]
    WheelsAmount,
    #[error("Bad serialization format on reading wheel file name")]
    WheelName,
    #[error("Bad serialization format on reading wheel file data")]
    WheelData,
    #[error("Failed deserialize requirement")]
    Other,
}

/// One requirement with its wheels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequirementBundle {
    pub name: String,
    pub compiled_os: String,
    pub in_table: bool,
    pub wheels: Vec<(String, Vec<u8>)>,
}

impl RequirementBundle {
    /// The version-2 bytes.
    pub fn serialize(&self) -> Vec<u8> {
        let size: usize = self
            .wheels
            .iter()
            .map(|(n, b)| n.len() + b.len() + 17)
            .sum();
        let mut out = Vec::with_capacity(size + self.name.len() + self.compiled_os.len() + 64);
        put_long(&mut out, BUNDLE_VERSION);
        put_string(&mut out, &self.name);
        put_string(&mut out, &self.compiled_os);
        put_long(&mut out, i64::from(self.in_table));
        put_long(&mut out, self.wheels.len() as i64);
        for (name, bytes) in &self.wheels {
            put_string(&mut out, name);
            put_long(&mut out, bytes.len() as i64);
            out.extend_from_slice(bytes);
        }
        out
    }

    /// Parses the concatenated chunks. Every truncation point has its error.
    pub fn parse(bytes: &[u8]) -> Result<Self, BundleError> {
        let mut reader = Reader { bytes, at: 0 };
        let version = reader.long().ok_or(BundleError::Version)?;
        if version > BUNDLE_VERSION {
            return Err(BundleError::TooNew);
        }
        if version < 0 {
            return Err(BundleError::Version);
        }
        let name = reader.string().ok_or(BundleError::Name)?;
        let compiled_os = if version >= 1 {
            reader.string().ok_or(BundleError::Os)?
        } else {
            String::new()
        };
        let in_table = if version >= 2 {
            reader.long().ok_or(BundleError::Other)? == 1
        } else {
            true
        };
        let count = reader.long().ok_or(BundleError::WheelsAmount)?;
        if count < 0 || count as usize > bytes.len() {
            return Err(BundleError::WheelsAmount);
        }
        let mut wheels = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let name = reader.string().ok_or(BundleError::WheelName)?;
            let data = reader.buffer().ok_or(BundleError::WheelData)?;
            wheels.push((name, data.to_vec()));
        }
        if reader.at != bytes.len() {
            return Err(BundleError::Other);
        }
        Ok(RequirementBundle {
            name,
            compiled_os,
            in_table,
            wheels,
        })
    }

    /// RG.PYEXPORTREQ's chunks: the serialized bytes cut every 10 MiB.
    pub fn chunks(&self) -> Vec<Vec<u8>> {
        self.serialize()
            .chunks(CHUNK_SIZE)
            .map(<[u8]>::to_vec)
            .collect()
    }
}

fn put_long(out: &mut Vec<u8>, value: i64) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_string(out: &mut Vec<u8>, text: &str) {
    put_long(out, text.len() as i64 + 1);
    out.extend_from_slice(text.as_bytes());
    out.push(0);
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn long(&mut self) -> Option<i64> {
        let raw = self.bytes.get(self.at..self.at + 8)?;
        self.at += 8;
        Some(i64::from_le_bytes(raw.try_into().ok()?))
    }

    fn buffer(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.long()?).ok()?;
        let end = self.at.checked_add(len)?;
        let data = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(data)
    }

    /// A string buffer: its last byte must be the NUL.
    fn string(&mut self) -> Option<String> {
        let data = self.buffer()?;
        let (last, text) = data.split_last()?;
        if *last != 0 {
            return None;
        }
        String::from_utf8(text.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RequirementBundle {
        RequirementBundle {
            name: "redis==4.5.1".into(),
            compiled_os: "linux-bookworm-x64".into(),
            in_table: true,
            wheels: vec![
                (
                    "redis-4.5.1-py3-none-any.whl".into(),
                    b"PK\x03\x04wheel one".to_vec(),
                ),
                (
                    "async_timeout-5.0.1-py3-none-any.whl".into(),
                    vec![7u8; 1000],
                ),
            ],
        }
    }

    #[test]
    fn round_trips_with_the_spec_layout() {
        let bytes = sample().serialize();
        assert_eq!(&bytes[..8], &2i64.to_le_bytes());
        assert_eq!(
            &bytes[8..16],
            &13i64.to_le_bytes(),
            "the length counts the NUL"
        );
        assert_eq!(&bytes[16..29], b"redis==4.5.1\0");
        assert_eq!(RequirementBundle::parse(&bytes).unwrap(), sample());
        assert_eq!(sample().chunks().concat(), bytes);
    }

    #[test]
    fn every_truncation_has_its_error() {
        let bytes = sample().serialize();
        for cut in 0..bytes.len() {
            let err = RequirementBundle::parse(&bytes[..cut]).unwrap_err();
            let expected = if cut < 8 {
                BundleError::Version
            } else if cut < 29 {
                BundleError::Name
            } else if cut < 8 + 21 + 8 + 19 {
                BundleError::Os
            } else if cut < 8 + 21 + 8 + 19 + 8 {
                BundleError::Other
            } else if cut < 8 + 21 + 8 + 19 + 16 {
                BundleError::WheelsAmount
            } else {
                // Inside a wheel: its name or its data.
                assert!(
                    matches!(err, BundleError::WheelName | BundleError::WheelData),
                    "{cut}: {err}"
                );
                continue;
            };
            assert_eq!(err, expected, "cut at {cut}");
        }
        let mut newer = bytes.clone();
        newer[..8].copy_from_slice(&3i64.to_le_bytes());
        assert_eq!(
            RequirementBundle::parse(&newer).unwrap_err(),
            BundleError::TooNew
        );
        let mut longer = bytes;
        longer.push(0);
        assert_eq!(
            RequirementBundle::parse(&longer).unwrap_err(),
            BundleError::Other
        );
        assert!(
            RequirementBundle::parse(b"garbage that is long enough to read a version").is_err()
        );
    }
}
