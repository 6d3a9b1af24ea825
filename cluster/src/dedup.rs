//! What a receiving shard already accepted: per sender (id and run id) the highest message id.
//! A message with an id not above it is a resend of one already delivered.

use std::collections::HashMap;

#[derive(Debug, Default)]
pub struct Dedup {
    last: HashMap<(String, String), i64>,
}

impl Dedup {
    /// True if the message is new (and remembers it), false for a duplicate.
    pub fn accept(&mut self, sender: &str, run_id: &str, msg_id: i64) -> bool {
        let key = (sender.to_string(), run_id.to_string());
        match self.last.get(&key) {
            Some(&last) if msg_id <= last => false,
            _ => {
                self.last.insert(key, msg_id);
                true
            }
        }
    }

    /// Forgets everything (the receiver's topology changed).
    pub fn clear(&mut self) {
        self.last.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::Dedup;

    #[test]
    fn duplicates_are_per_sender_instance() {
        let mut d = Dedup::default();
        assert!(d.accept("a", "r1", 0));
        assert!(d.accept("a", "r1", 1));
        assert!(!d.accept("a", "r1", 1));
        assert!(!d.accept("a", "r1", 0));
        // The sender restarted: a new run id, its ids start again.
        assert!(d.accept("a", "r2", 0));
        assert!(d.accept("b", "r1", 0));
        d.clear();
        assert!(d.accept("a", "r1", 0));
    }
}
