//! Registrations on every shard (sessions-and-cluster.md A.4, C.6): a registration batch applied
//! on one shard in cluster mode goes to every other shard, which applies it the way a replica
//! applies RG.INNERREGISTER (and passes it on to its own replicas and AOF); an RG.UNREGISTER
//! likewise. Each shard's copy then fires on that shard's events.
//!
//! A shard that joins gets every registration from each shard that sees it appear.
//!
//! Not yet: the requirement wheels of a session (a shard without them refuses the batch, logged).

use redis_module::Context;

use crate::persist::{self, Batch};
use crate::redis_calls::log;

/// Carries an encoded [`Batch`].
pub const BATCH: &str = "RG_InnerRegister";
/// Carries `<id>` or `<id>\0abortpending`.
pub const UNREGISTER: &str = "RG_InnerUnregister";

/// Sends a batch this shard applied to every other shard.
pub fn broadcast_batch(batch: &Batch) {
    if super::is_cluster() {
        super::broadcast(BATCH, &batch.encode());
    }
}

/// Sends every registration to each of `peers` (shards that may not have them: they joined
/// the cluster). Applying a batch twice is harmless: it replaces its own registrations.
pub fn send_all_to(peers: &[String]) {
    if peers.is_empty() {
        return;
    }
    for batch in persist::all_batches() {
        let encoded = batch.encode();
        for peer in peers {
            super::send_to(peer, BATCH, encoded.clone());
        }
    }
}

/// Sends an RG.UNREGISTER this shard applied to every other shard.
pub fn broadcast_unregister(id: &str, abort_pending: bool) {
    if super::is_cluster() {
        let mut payload = id.as_bytes().to_vec();
        if abort_pending {
            payload.extend_from_slice(b"\0abortpending");
        }
        super::broadcast(UNREGISTER, &payload);
    }
}

fn batch_received(ctx: &Context, sender: &str, _function: &str, payload: &[u8]) {
    let applied = Batch::decode(payload).and_then(|batch| {
        batch.apply(ctx)?;
        batch.replicate(ctx);
        Ok(())
    });
    if let Err(e) = applied {
        log(
            "warning",
            &format!("a registration batch from shard {sender} was not applied: {e}"),
        );
    }
}

fn unregister_received(ctx: &Context, _sender: &str, _function: &str, payload: &[u8]) {
    let text = String::from_utf8_lossy(payload);
    let (id, abort_pending) = match text.split_once('\0') {
        Some((id, _)) => (id, true),
        None => (text.as_ref(), false),
    };
    if persist::unregister(id, abort_pending) {
        persist::replicate_unregister(ctx, id, abort_pending);
    }
}

/// Receives `function`'s messages, if it is one of these.
pub fn handler(function: &str) -> Option<super::Handler> {
    match function {
        BATCH => Some(batch_received),
        UNREGISTER => Some(unregister_received),
        _ => None,
    }
}
