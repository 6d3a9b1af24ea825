//! Execution and plan ids: `<40-char shard id>-<counter>`, with one counter per kind, each
//! starting at 0 when the process starts.

use std::sync::atomic::{AtomicI64, Ordering};

/// The shard id outside a cluster.
pub const STANDALONE_SHARD_ID: &str = "0000000000000000000000000000000000000000";

static NEXT_EXECUTION: AtomicI64 = AtomicI64::new(0);
static NEXT_PLAN: AtomicI64 = AtomicI64::new(0);

pub fn next_execution_id() -> String {
    format!(
        "{STANDALONE_SHARD_ID}-{}",
        NEXT_EXECUTION.fetch_add(1, Ordering::SeqCst)
    )
}

/// Consumed by every `GB()` builder, as in RedisGears, so later registration ids match.
pub fn next_plan_id() -> String {
    format!(
        "{STANDALONE_SHARD_ID}-{}",
        NEXT_PLAN.fetch_add(1, Ordering::SeqCst)
    )
}
