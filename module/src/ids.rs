//! Execution and plan ids: `<40-char shard id>-<counter>`, with one counter per kind, each
//! starting at 0 when the process starts.

use std::sync::atomic::{AtomicI64, Ordering};

/// The shard id outside a cluster.
pub const STANDALONE_SHARD_ID: &str = "0000000000000000000000000000000000000000";

static NEXT_EXECUTION: AtomicI64 = AtomicI64::new(0);
static NEXT_PLAN: AtomicI64 = AtomicI64::new(0);

/// `<shard id>-<n>`, built without the formatting machinery: every registration-fired
/// execution takes one, so it is on the hot path of sync registrations.
fn id_with(counter: i64) -> String {
    let n = counter.to_string();
    let mut id = String::with_capacity(STANDALONE_SHARD_ID.len() + 1 + n.len());
    id.push_str(STANDALONE_SHARD_ID);
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
