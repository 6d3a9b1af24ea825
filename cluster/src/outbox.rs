//! The messages a shard sent to one peer and the peer did not acknowledge yet. Each gets the
//! next id of this peer's counter; acknowledgements come back in order, so the oldest sent
//! message is the one a reply acknowledges. After a reconnect what was sent and not acknowledged
//! goes again, within the `SendMsgRetries` budget.

use std::collections::VecDeque;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub id: u64,
    pub function: String,
    pub payload: Vec<u8>,
    /// How many times it was sent again after a reconnect.
    pub retries: u32,
    sent: bool,
}

#[derive(Debug, Default)]
pub struct Outbox {
    next_id: u64,
    pending: VecDeque<Pending>,
}

impl Outbox {
    /// Queues a message; its id is the peer's next.
    pub fn push(&mut self, function: &str, payload: Vec<u8>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.pending.push_back(Pending {
            id,
            function: function.to_string(),
            payload,
            retries: 0,
            sent: false,
        });
        id
    }

    /// Up to `max` messages not sent on the current connection, marked sent, oldest first.
    pub fn take_unsent(&mut self, max: usize) -> Vec<Pending> {
        self.pending
            .iter_mut()
            .filter(|p| !p.sent)
            .take(max)
            .map(|p| {
                p.sent = true;
                p.clone()
            })
            .collect()
    }

    /// A reply acknowledged the oldest message sent.
    pub fn acknowledge(&mut self) -> Option<Pending> {
        if self.pending.front().is_some_and(|p| p.sent) {
            self.pending.pop_front()
        } else {
            None
        }
    }

    /// A new connection is up: messages sent on the old one and not acknowledged go again if
    /// their budget allows (`max_retries` 0: no limit; else a message goes at most
    /// `max_retries - 1` more times); the others are dropped and returned.
    pub fn reconnected(&mut self, max_retries: u32) -> Vec<Pending> {
        let mut dropped = Vec::new();
        let mut kept = VecDeque::with_capacity(self.pending.len());
        for mut p in self.pending.drain(..) {
            if p.sent {
                if max_retries != 0 && p.retries + 1 >= max_retries {
                    dropped.push(p);
                    continue;
                }
                p.retries += 1;
                p.sent = false;
            }
            kept.push_back(p);
        }
        self.pending = kept;
        dropped
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    pub fn has_unsent(&self) -> bool {
        self.pending.iter().any(|p| !p.sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_count_up_and_replies_acknowledge_in_order() {
        let mut o = Outbox::default();
        assert_eq!(o.push("f", b"a".to_vec()), 0);
        assert_eq!(o.push("f", b"b".to_vec()), 1);
        assert!(o.acknowledge().is_none(), "nothing was sent");
        let sent = o.take_unsent(10);
        assert_eq!(sent.iter().map(|p| p.id).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(o.acknowledge().unwrap().id, 0);
        assert_eq!(o.len(), 1);
    }

    #[test]
    fn a_reconnect_resends_within_the_budget() {
        let mut o = Outbox::default();
        o.push("f", Vec::new());
        o.push("f", Vec::new());
        o.take_unsent(1);
        // Retries 3: sent, then again twice, then dropped.
        assert!(o.reconnected(3).is_empty());
        assert_eq!(o.take_unsent(10).len(), 2);
        assert!(o.reconnected(3).is_empty());
        o.take_unsent(10);
        let dropped = o.reconnected(3);
        assert_eq!(dropped.iter().map(|p| p.id).collect::<Vec<_>>(), [0]);
        assert_eq!(o.len(), 1);
        // 0: no limit.
        for _ in 0..10 {
            o.take_unsent(10);
            assert!(o.reconnected(0).is_empty());
        }
    }
}
