//! What a shard knows of its cluster, with no Redis and no network in it: the topology (from
//! `CLUSTER SLOTS` or `RG.CLUSTERSET`), hash slots and the hash tag of a slot, and the bookkeeping
//! of messages between shards (what is pending to a peer, what a receiver already accepted).
//! The module drives it from its commands and its networking threads.

pub mod dedup;
pub mod exchange;
pub mod outbox;
pub mod slots;
pub mod topology;

pub use dedup::Dedup;
pub use exchange::{ClusterExchange, Registry, Transport};
pub use outbox::{Outbox, Pending};
pub use topology::{Node, SlotRange, Topology, TopologyError};
