//! The field order of RedisGears' hash-set records.
//!
//! RedisGears keeps record fields in its private copy of Redis 5's `dict.c` and hands them to
//! Python in that table's iteration order, which `str(record)` makes visible. Scripts and tests
//! compare those strings, so the order is reproduced here exactly: SipHash-1-2 with an all-zero
//! key, 4 initial buckets, growth to the next power of two >= 2*used, incremental rehashing one
//! bucket per lookup and per insert, new entries at the head of their chain.

/// Redis' SipHash-1-2 (one compression round, two finalization rounds) with a zero key.
pub fn siphash12_zero_key(input: &[u8]) -> u64 {
    let (k0, k1) = (0u64, 0u64);
    let mut v0 = 0x736f6d6570736575u64 ^ k0;
    let mut v1 = 0x646f72616e646f6du64 ^ k1;
    let mut v2 = 0x6c7967656e657261u64 ^ k0;
    let mut v3 = 0x7465646279746573u64 ^ k1;
    let round = |v0: &mut u64, v1: &mut u64, v2: &mut u64, v3: &mut u64| {
        *v0 = v0.wrapping_add(*v1);
        *v1 = v1.rotate_left(13);
        *v1 ^= *v0;
        *v0 = v0.rotate_left(32);
        *v2 = v2.wrapping_add(*v3);
        *v3 = v3.rotate_left(16);
        *v3 ^= *v2;
        *v0 = v0.wrapping_add(*v3);
        *v3 = v3.rotate_left(21);
        *v3 ^= *v0;
        *v2 = v2.wrapping_add(*v1);
        *v1 = v1.rotate_left(17);
        *v1 ^= *v2;
        *v2 = v2.rotate_left(32);
    };
    let mut chunks = input.chunks_exact(8);
    for chunk in &mut chunks {
        let m = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        v3 ^= m;
        round(&mut v0, &mut v1, &mut v2, &mut v3);
        v0 ^= m;
    }
    let mut b = (input.len() as u64) << 56;
    for (i, byte) in chunks.remainder().iter().enumerate() {
        b |= (*byte as u64) << (8 * i);
    }
    v3 ^= b;
    round(&mut v0, &mut v1, &mut v2, &mut v3);
    v0 ^= b;
    v2 ^= 0xff;
    round(&mut v0, &mut v1, &mut v2, &mut v3);
    round(&mut v0, &mut v1, &mut v2, &mut v3);
    v0 ^ v1 ^ v2 ^ v3
}

/// A bucket array; each chain lists entry indexes head first.
struct Table {
    buckets: Vec<Vec<usize>>,
    used: usize,
}

impl Table {
    fn new(size: usize) -> Table {
        Table {
            buckets: vec![Vec::new(); size],
            used: 0,
        }
    }

    fn mask(&self) -> u64 {
        self.buckets.len() as u64 - 1
    }
}

/// The simulated dict: which entry (by insertion index) sits where.
struct Dict<'a> {
    keys: Vec<&'a [u8]>,
    hashes: Vec<u64>,
    main: Table,
    rehash: Option<(Table, usize)>,
}

impl<'a> Dict<'a> {
    fn rehash_step(&mut self) {
        let Some((new, index)) = self.rehash.as_mut() else {
            return;
        };
        let mut empty_visits = 10;
        if self.main.used != 0 {
            while self.main.buckets[*index].is_empty() {
                *index += 1;
                empty_visits -= 1;
                if empty_visits == 0 {
                    return;
                }
            }
            // Walking the old chain head to tail and pushing each entry at the new head.
            let chain = std::mem::take(&mut self.main.buckets[*index]);
            for entry in chain {
                let h = (self.hashes[entry] & new.mask()) as usize;
                new.buckets[h].insert(0, entry);
                self.main.used -= 1;
                new.used += 1;
            }
            *index += 1;
        }
        if self.main.used == 0 {
            let (new, _) = self.rehash.take().expect("rehashing");
            self.main = new;
        }
    }

    fn find(&mut self, key: &[u8]) -> Option<usize> {
        if self.main.used + self.rehash.as_ref().map_or(0, |(t, _)| t.used) == 0 {
            return None;
        }
        self.rehash_step();
        let h = siphash12_zero_key(key);
        let tables = std::iter::once(&self.main).chain(self.rehash.as_ref().map(|(t, _)| t));
        for table in tables {
            let chain = &table.buckets[(h & table.mask()) as usize];
            if let Some(&e) = chain.iter().find(|&&e| self.keys[e] == key) {
                return Some(e);
            }
        }
        None
    }

    fn expand_if_needed(&mut self) {
        if self.rehash.is_some() {
            return;
        }
        if self.main.buckets.is_empty() {
            self.main = Table::new(4);
        } else if self.main.used >= self.main.buckets.len() {
            let mut size = 4;
            while size < self.main.used * 2 {
                size *= 2;
            }
            self.rehash = Some((Table::new(size), 0));
        }
    }

    fn add(&mut self, key: &'a [u8]) -> usize {
        self.rehash_step();
        self.expand_if_needed();
        let entry = self.keys.len();
        let hash = siphash12_zero_key(key);
        self.keys.push(key);
        self.hashes.push(hash);
        let table = match self.rehash.as_mut() {
            Some((new, _)) => new,
            None => &mut self.main,
        };
        let h = (hash & table.mask()) as usize;
        table.buckets[h].insert(0, entry);
        table.used += 1;
        entry
    }

    fn iteration_order(&self) -> Vec<usize> {
        let tables = std::iter::once(&self.main).chain(self.rehash.as_ref().map(|(t, _)| t));
        tables
            .flat_map(|t| t.buckets.iter().flatten().copied())
            .collect()
    }
}

/// Orders `fields` (in the order they are assigned) as RedisGears' dict iterates them. A field
/// assigned twice keeps its first place and its last value.
pub fn gears_order<V>(fields: Vec<(Vec<u8>, V)>) -> Vec<(Vec<u8>, V)> {
    // One field has one order (a stream entry often has one): no dict to build.
    if fields.len() < 2 {
        return fields;
    }
    // Which dict entry each assignment lands in, and the entries in iteration order.
    let (entry_of_field, order) = {
        let mut dict = Dict {
            keys: Vec::with_capacity(fields.len()),
            hashes: Vec::with_capacity(fields.len()),
            main: Table::new(0),
            rehash: None,
        };
        let entries: Vec<usize> = fields
            .iter()
            .map(|(key, _)| match dict.find(key) {
                Some(entry) => entry,
                None => dict.add(key),
            })
            .collect();
        (entries, dict.iteration_order())
    };
    let mut slots: Vec<Option<(Vec<u8>, V)>> = Vec::new();
    slots.resize_with(order.len(), || None);
    for ((key, value), entry) in fields.into_iter().zip(entry_of_field) {
        match &mut slots[entry] {
            Some(existing) => existing.1 = value,
            empty => *empty = Some((key, value)),
        }
    }
    order.into_iter().filter_map(|e| slots[e].take()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siphash_matches_the_spec_values() {
        for (key, hash) in [
            ("key", 0xdfdbf1f36ecaf6f4u64),
            ("value", 0x50b4e4b9ecc286ae),
            ("type", 0xb79a43c4c5eb235d),
            ("event", 0xe52646e755a947b0),
            ("id", 0xe17344b37328ea61),
            ("name", 0x7a11f7188ff7df14),
            ("age", 0x3880498c299aa094),
        ] {
            assert_eq!(siphash12_zero_key(key.as_bytes()), hash, "{key}");
        }
    }

    fn names(fields: &[&str]) -> Vec<String> {
        let input = fields.iter().map(|f| (f.as_bytes().to_vec(), ())).collect();
        gears_order(input)
            .into_iter()
            .map(|(k, ())| String::from_utf8(k).unwrap())
            .collect()
    }

    #[test]
    fn fixed_record_shapes() {
        assert_eq!(
            names(&["key", "value", "type", "event"]),
            ["event", "key", "type", "value"]
        );
        assert_eq!(names(&["key", "event"]), ["event", "key"]);
        assert_eq!(names(&["id", "value", "key"]), ["key", "id", "value"]);
        assert_eq!(names(&["name", "age"]), ["age", "name"]);
    }

    #[test]
    fn larger_hashes_and_stream_entries() {
        let twelve: Vec<String> = (0..12).map(|i| format!("f{i}")).collect();
        let twelve: Vec<&str> = twelve.iter().map(String::as_str).collect();
        assert_eq!(
            names(&twelve),
            ["f10", "f4", "f2", "f0", "f5", "f6", "f7", "f11", "f3", "f9", "f1", "f8"]
        );
        let ten: Vec<String> = (0..10).map(|i| format!("f{i}")).collect();
        let ten: Vec<&str> = ten.iter().map(String::as_str).collect();
        assert_eq!(
            names(&ten),
            ["f6", "f7", "f3", "f4", "f1", "f2", "f0", "f5", "f9", "f8"]
        );
    }

    #[test]
    fn none_or_one_field_stays_as_it_is() {
        assert!(gears_order(Vec::<(Vec<u8>, ())>::new()).is_empty());
        assert_eq!(gears_order(vec![(b"f".to_vec(), 1)]), [(b"f".to_vec(), 1)]);
    }

    #[test]
    fn a_repeated_field_keeps_its_place_and_takes_the_last_value() {
        let out = gears_order(vec![
            (b"a".to_vec(), 1),
            (b"b".to_vec(), 2),
            (b"a".to_vec(), 3),
        ]);
        assert_eq!(out.len(), 2);
        assert!(out.contains(&(b"a".to_vec(), 3)));
    }
}
