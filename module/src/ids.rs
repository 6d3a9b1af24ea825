//! Execution and plan ids: `<40-char shard id>-<counter>`, with one counter per kind, each
//! starting at 0 when the process starts.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::RwLock;

/// The shard id outside a cluster.
pub const STANDALONE_SHARD_ID: &str = "0000000000000000000000000000000000000000";

/// This shard's id in new ids: its cluster node id in cluster mode. Leaked on change (a
/// topology change is rare), so reading it is one uncontended read lock.
static SHARD_ID: RwLock<&'static str> = RwLock::new(STANDALONE_SHARD_ID);

/// The id new executions and registrations carry from now on.
pub fn set_shard_id(id: &str) {
    let mut current = SHARD_ID.write().unwrap_or_else(|e| e.into_inner());
    if *current != id {
        *current = Box::leak(id.to_string().into_boxed_str());
    }
}

pub fn shard_id() -> &'static str {
    *SHARD_ID.read().unwrap_or_else(|e| e.into_inner())
}

static NEXT_EXECUTION: AtomicI64 = AtomicI64::new(0);
static NEXT_PLAN: AtomicI64 = AtomicI64::new(0);

/// `<shard id>-<n>`, built without the formatting machinery: every registration-fired
/// execution takes one, so it is on the hot path of sync registrations.
fn id_with(counter: i64) -> String {
    let n = counter.to_string();
    let shard = shard_id();
    let mut id = String::with_capacity(shard.len() + 1 + n.len());
    id.push_str(shard);
    id.push('-');
    id.push_str(&n);
    id
}

pub fn next_execution_id() -> String {
    id_with(NEXT_EXECUTION.fetch_add(1, Ordering::SeqCst))
}

/// A registration restored under `id` (RDB, replica, AOF): later plan ids come after it.
pub fn plan_id_seen(id: &str) {
    if let Some(n) = id.rsplit('-').next().and_then(|n| n.parse::<i64>().ok()) {
        NEXT_PLAN.fetch_max(n + 1, Ordering::SeqCst);
    }
}

/// Consumed by every `GB()` builder, as in RedisGears, so later registration ids match.
pub fn next_plan_id() -> String {
    id_with(NEXT_PLAN.fetch_add(1, Ordering::SeqCst))
}
