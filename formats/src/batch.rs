//! The batch registrations are applied as: what one RG.PYEXECUTE (or one `register()` from a
//! step) changed, sent to replicas and the AOF as `RG.INNERREGISTER <batch>` and to other shards.

use std::sync::Arc;

use crate::FormatError;

/// The version of [`Batch::encode`]'s layout.
pub const BATCH_FORMAT: u8 = 1;

/// A session as it is saved: what makes it again elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedSession {
    pub id: String,
    pub description: Option<String>,
    /// Names in the requirements table, which is saved (and replicated) before.
    pub requirements: Vec<String>,
}

/// Registrations applied together, with the session they belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub session: SavedSession,
    /// The session this one replaces (UPGRADE / REPLACE_WITH), unlinked first.
    pub unlink: Option<String>,
    /// Registrations removed first (those of the replaced session).
    pub unregister: Vec<String>,
    /// (id, saved form) of each new registration, in call order.
    pub registrations: Vec<(String, Arc<[u8]>)>,
}

impl Batch {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![BATCH_FORMAT];
        let mut put = |bytes: &[u8]| {
            out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            out.extend_from_slice(bytes);
        };
        put(self.session.id.as_bytes());
        put(self.session.description.as_deref().unwrap_or("").as_bytes());
        put(&[self.session.description.is_some() as u8]);
        put(&(self.session.requirements.len() as u64).to_le_bytes());
        for name in &self.session.requirements {
            put(name.as_bytes());
        }
        put(self.unlink.as_deref().unwrap_or("").as_bytes());
        put(&[self.unlink.is_some() as u8]);
        put(&(self.unregister.len() as u64).to_le_bytes());
        for id in &self.unregister {
            put(id.as_bytes());
        }
        put(&(self.registrations.len() as u64).to_le_bytes());
        for (id, saved) in &self.registrations {
            put(id.as_bytes());
            put(saved);
        }
        out
    }

    /// Every count is bounded by the input itself (each item takes at least 8 bytes), so a
    /// hostile count ends in `truncated batch`, not in a huge allocation.
    pub fn decode(bytes: &[u8]) -> Result<Batch, FormatError> {
        let Some((&format, mut rest)) = bytes.split_first() else {
            return Err(FormatError::EmptyBatch);
        };
        if format != BATCH_FORMAT {
            return Err(FormatError::BatchFormat {
                found: format,
                reads: BATCH_FORMAT,
            });
        }
        let mut take = || -> Result<&[u8], FormatError> {
            const TRUNCATED: FormatError = FormatError::Truncated("batch");
            let (len, tail) = rest.split_first_chunk::<8>().ok_or(TRUNCATED)?;
            let len = usize::try_from(u64::from_le_bytes(*len)).map_err(|_| TRUNCATED)?;
            if tail.len() < len {
                return Err(TRUNCATED);
            }
            let (item, tail) = tail.split_at(len);
            rest = tail;
            Ok(item)
        };
        fn text(bytes: &[u8]) -> Result<String, FormatError> {
            String::from_utf8(bytes.to_vec()).map_err(|_| FormatError::NotUtf8)
        }
        fn count(bytes: &[u8]) -> Result<u64, FormatError> {
            let raw: [u8; 8] = bytes.try_into().map_err(|_| FormatError::BadCount)?;
            Ok(u64::from_le_bytes(raw))
        }
        let id = text(take()?)?;
        let description = text(take()?)?;
        let description = (take()? == [1]).then_some(description);
        let mut requirements = Vec::new();
        for _ in 0..count(take()?)? {
            requirements.push(text(take()?)?);
        }
        let unlink = text(take()?)?;
        let unlink = (take()? == [1]).then_some(unlink);
        let mut unregister = Vec::new();
        for _ in 0..count(take()?)? {
            unregister.push(text(take()?)?);
        }
        let mut registrations = Vec::new();
        for _ in 0..count(take()?)? {
            let id = text(take()?)?;
            registrations.push((id, Arc::from(take()?)));
        }
        Ok(Batch {
            session: SavedSession {
                id,
                description,
                requirements,
            },
            unlink,
            unregister,
            registrations,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Batch {
        Batch {
            session: SavedSession {
                id: "s1".into(),
                description: Some("desc".into()),
                requirements: vec!["tiny==0.1".into(), "other".into()],
            },
            unlink: Some("s0".into()),
            unregister: vec!["0000000000000000000000000000000000000000-1".into()],
            registrations: vec![("id-2".into(), Arc::from(&b"saved\0form"[..]))],
        }
    }

    #[test]
    fn a_batch_comes_back_as_it_was_sent() {
        let batch = sample();
        assert_eq!(Batch::decode(&batch.encode()).unwrap(), batch);
        let bare = Batch {
            session: SavedSession {
                id: "s".into(),
                description: None,
                requirements: vec![],
            },
            unlink: None,
            unregister: vec![],
            registrations: vec![],
        };
        assert_eq!(Batch::decode(&bare.encode()).unwrap(), bare);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let encoded = sample().encode();
        for len in 0..encoded.len() {
            assert!(Batch::decode(&encoded[..len]).is_err(), "length {len}");
        }
    }

    #[test]
    fn hostile_counts_and_formats_are_refused() {
        assert_eq!(
            Batch::decode(&[2]).unwrap_err().to_string(),
            "batch format 2, this build reads 1"
        );
        assert_eq!(Batch::decode(&[]).unwrap_err(), FormatError::EmptyBatch);
        // A requirement count of 2^64-1 with nothing after it.
        let mut bytes = vec![BATCH_FORMAT];
        for item in [&b"s"[..], b"", &[0]] {
            bytes.extend_from_slice(&(item.len() as u64).to_le_bytes());
            bytes.extend_from_slice(item);
        }
        bytes.extend_from_slice(&8u64.to_le_bytes());
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(
            Batch::decode(&bytes).unwrap_err().to_string(),
            "truncated batch"
        );
        // A length past the end of the input.
        let mut bytes = vec![BATCH_FORMAT];
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(
            Batch::decode(&bytes).unwrap_err(),
            FormatError::Truncated("batch")
        );
        let mut bytes = vec![BATCH_FORMAT];
        bytes.extend_from_slice(&2u64.to_le_bytes());
        bytes.extend_from_slice(&[0xff, 0xfe]);
        assert_eq!(Batch::decode(&bytes).unwrap_err(), FormatError::NotUtf8);
    }
}
