//! Hash slots as Redis Cluster computes them, and a short hash tag for every slot.

use std::sync::LazyLock;

pub const SLOTS: usize = 16384;

/// CRC16/XMODEM, the checksum Redis Cluster hashes keys with (cluster spec, appendix A).
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The slot of `key`: only the part inside the first non-empty `{...}` counts, if there is one.
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.iter()
                .position(|&b| b == b'}')
                .filter(|&close| close > 0)
                .map(|close| &rest[..close])
        })
        .unwrap_or(key);
    crc16(hashed) % SLOTS as u16
}

/// For each slot the first string, shortest first, over `0-9a-z A-Z` in that order, hashing to it:
/// the same strings RedisGears' table holds where they are known (slot 0 → `06S`, 8193 → `7e`).
static TAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut tags: Vec<Option<String>> = vec![None; SLOTS];
    let mut left = SLOTS;
    let mut candidates: Vec<Vec<u8>> = vec![Vec::new()];
    while left > 0 {
        let mut longer = Vec::with_capacity(candidates.len() * ALPHABET.len());
        for prefix in &candidates {
            for &c in ALPHABET {
                let mut s = prefix.clone();
                s.push(c);
                let slot = key_slot(&s) as usize;
                if tags[slot].is_none() {
                    tags[slot] = Some(String::from_utf8_lossy(&s).into_owned());
                    left -= 1;
                }
                longer.push(s);
            }
        }
        candidates = longer;
    }
    tags.into_iter().map(Option::unwrap_or_default).collect()
});

/// A short string `t` such that keys containing `{t}` hash to `slot`.
pub fn hashtag(slot: u16) -> &'static str {
    &TAGS[slot as usize % SLOTS]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // Values from `CLUSTER KEYSLOT`.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
        assert_eq!(key_slot(b"{}foo"), crc16(b"{}foo") % 16384);
    }

    #[test]
    fn every_slot_has_a_tag_hashing_to_it() {
        assert_eq!(hashtag(0), "06S");
        assert_eq!(hashtag(8193), "7e");
        for slot in 0..SLOTS as u16 {
            let tag = hashtag(slot);
            assert!(!tag.is_empty() && tag.len() <= 3);
            assert_eq!(key_slot(format!("x{{{tag}}}y").as_bytes()), slot);
        }
    }
}
