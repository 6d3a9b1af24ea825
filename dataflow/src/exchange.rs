//! How a distributed execution meets the other shards running the same plan: the `collect` and
//! `repartition` steps hand records to an [`Exchange`], and the execution ends only once every
//! shard's part ended. The engine knows nothing of the transport; the module's exchange sends
//! messages between shards, the tests' one moves records between executions in one process.

use crate::record::Record;

/// The two steps that move records between shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeKind {
    /// Every record goes to the initiator.
    Collect,
    /// Every key/value record goes to the shard owning its key's slot.
    Repartition,
}

/// One shard's side of a distributed execution. Steps are named by their index in the plan,
/// which is the same on every shard.
pub trait Exchange: Send + Sync {
    /// A record reaching exchange step `step`: kept here (returned) or sent away (None).
    fn route(&self, step: usize, kind: ExchangeKind, record: Record) -> Option<Record>;
    /// This shard's input of `step` ended: what it buffered goes out and the shards it sends to
    /// hear that nothing more comes.
    fn done_sending(&self, step: usize, kind: ExchangeKind);
    /// Moves the records received for `step` into `into`; true once every shard that sends to
    /// this one said it is done (nothing more comes).
    fn receive(&self, step: usize, kind: ExchangeKind, into: &mut Vec<Record>) -> bool;
    /// This shard's part of the execution ended.
    fn local_ended(&self);
    /// True once every shard's part ended (what the initiator waits for before it is done),
    /// adding to `errors` what the other shards reported.
    fn all_ended(&self, errors: &mut Vec<String>) -> bool;
    /// Set when the execution cannot go on (a shard stayed silent past the max idle time): it
    /// then ends `aborted` with this error.
    fn failure(&self) -> Option<String>;
}
