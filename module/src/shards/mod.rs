//! This shard in its cluster: the topology (from `CLUSTER SLOTS`, on `RG.REFRESHCLUSTER` and
//! whenever the cron sees the slots change, or from `RG.CLUSTERSET`), a thread per other shard
//! carrying messages to it, and the receiving side of those messages.

pub mod executions;
mod peer;
pub mod registrations;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, RwLock};

use cluster::{Dedup, SlotRange, Topology};
use redis_module::{Context, ContextFlags, RedisValue};

use crate::redis_calls::log;
pub use peer::Identity;
use peer::Peer;

/// The topology with this shard's run id (a new one each time the topology is replaced) and
/// the threads reaching the other shards.
struct State {
    topology: Arc<Topology>,
    run_id: String,
    peers: HashMap<String, Arc<Peer>>,
}

static STATE: RwLock<Option<State>> = RwLock::new(None);
/// Per sender instance the last message accepted; cleared when the topology changes.
static RECEIVED: LazyLock<Mutex<Dedup>> = LazyLock::new(|| Mutex::new(Dedup::default()));
/// `RG_NetworkTest` messages received (INFO `rg.cluster` shows it).
pub static NETWORK_TEST_RECEIVED: AtomicU64 = AtomicU64::new(0);

fn received() -> MutexGuard<'static, Dedup> {
    RECEIVED.lock().unwrap_or_else(|e| e.into_inner())
}

fn read<R>(f: impl FnOnce(Option<&State>) -> R) -> R {
    let state = STATE.read().unwrap_or_else(|e| e.into_inner());
    f(state.as_ref())
}

/// A new 40-hex run id.
fn new_run_id() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..40)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
        .collect()
}

/// What a peer thread says about this shard.
fn identity() -> Option<Identity> {
    read(|state| {
        state.map(|s| Identity {
            my_id: s.topology.my_id.clone(),
            my_run_id: s.run_id.clone(),
            cluster_set: s.topology.cluster_set.clone(),
        })
    })
}

/// The credentials shards of an open-source cluster use with each other: Redis' own
/// `masteruser` / `masterauth`, which a password-protected cluster sets for its replicas.
pub fn cluster_auth() -> Option<(Option<String>, String)> {
    let (user, password) = CLUSTER_AUTH
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    password.map(|p| (user, p))
}

static CLUSTER_AUTH: Mutex<(Option<String>, Option<String>)> = Mutex::new((None, None));

/// Replaces the topology: a new run id, received-message memory forgotten, a thread for each
/// other shard (threads of shards that stay, at the same address, go on with their queues).
pub fn set_topology(topology: Topology) {
    let topology = Arc::new(topology);
    let mut state = STATE.write().unwrap_or_else(|e| e.into_inner());
    let mut old_peers = state.take().map(|s| s.peers).unwrap_or_default();
    let mut peers = HashMap::new();
    let mut new_peers = Vec::new();
    if topology.is_cluster() {
        for node in topology.peers() {
            let kept = old_peers.remove(&node.id).filter(|p| {
                p.node.host == node.host
                    && p.node.port == node.port
                    && p.node.password == node.password
            });
            let peer = kept.unwrap_or_else(|| {
                new_peers.push(node.id.clone());
                Peer::start(node.clone(), identity)
            });
            peers.insert(node.id.clone(), peer);
        }
    }
    for (_, gone) in old_peers {
        gone.stop();
    }
    crate::ids::set_shard_id(if topology.is_cluster() {
        &topology.my_id
    } else {
        crate::ids::STANDALONE_SHARD_ID
    });
    *state = Some(State {
        topology,
        run_id: new_run_id(),
        peers,
    });
    drop(state);
    received().clear();
    // A shard this one did not reach before (it joined, or this shard just formed the
    // cluster) gets the registrations.
    registrations::send_all_to(&new_peers);
}

/// The topology, if there is one.
pub fn topology() -> Option<Arc<Topology>> {
    read(|state| state.map(|s| s.topology.clone()))
}

/// "Cluster mode" for every decision (sessions-and-cluster.md C.1).
pub fn is_cluster() -> bool {
    read(|state| state.is_some_and(|s| s.topology.is_cluster()))
}

pub fn run_id() -> Option<String> {
    read(|state| state.map(|s| s.run_id.clone()))
}

/// The hash tag of this shard's first slot (`06S`, slot 0's, outside cluster mode).
pub fn my_hashtag() -> &'static str {
    let slot = read(|state| {
        state
            .filter(|s| s.topology.is_cluster())
            .and_then(|s| s.topology.me().map(|me| me.min_slot))
    });
    cluster::slots::hashtag(slot.unwrap_or(0))
}

/// Each shard as RG.INFOCLUSTER lists it: the node, its run id, its pending messages.
pub fn shards() -> Vec<(cluster::Node, Option<String>, usize)> {
    read(|state| {
        let Some(state) = state else {
            return Vec::new();
        };
        state
            .topology
            .nodes
            .iter()
            .map(|node| match state.peers.get(&node.id) {
                Some(peer) => (node.clone(), peer.run_id(), peer.pending_messages()),
                None => (node.clone(), Some(state.run_id.clone()), 0),
            })
            .collect()
    })
}

/// Queues `function(payload)` for every other shard.
pub fn broadcast(function: &str, payload: &[u8]) {
    read(|state| {
        if let Some(state) = state {
            for peer in state.peers.values() {
                peer.send(function, payload.to_vec());
            }
        }
    });
}

/// Queues `function(payload)` for shard `to` (dropped if it is not a shard of the topology).
pub fn send_to(to: &str, function: &str, payload: Vec<u8>) {
    read(|state| {
        if let Some(peer) = state.and_then(|s| s.peers.get(to)) {
            peer.send(function, payload);
        }
    });
}

/// Reads `CLUSTER MYID` and `CLUSTER SLOTS`; None when Redis is not a cluster (or the reply
/// is not understood).
fn read_cluster_slots(ctx: &Context) -> Option<(String, Vec<SlotRange>)> {
    let my_id = match ctx.call("CLUSTER", &["MYID"]).ok()? {
        RedisValue::BulkString(s) | RedisValue::SimpleString(s) => s,
        RedisValue::BulkRedisString(s) => s.to_string_lossy(),
        RedisValue::StringBuffer(b) => String::from_utf8_lossy(&b).into_owned(),
        _ => return None,
    };
    let RedisValue::Array(entries) = ctx.call("CLUSTER", &["SLOTS"]).ok()? else {
        return None;
    };
    let text = |v: &RedisValue| match v {
        RedisValue::BulkString(s) | RedisValue::SimpleString(s) => Some(s.clone()),
        RedisValue::BulkRedisString(s) => Some(s.to_string_lossy()),
        RedisValue::StringBuffer(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    };
    let int = |v: &RedisValue| match v {
        RedisValue::Integer(i) => Some(*i),
        _ => None,
    };
    let mut ranges = Vec::new();
    for entry in entries {
        let RedisValue::Array(fields) = entry else {
            return None;
        };
        let RedisValue::Array(primary) = fields.get(2)? else {
            return None;
        };
        ranges.push(SlotRange {
            start: int(fields.first()?)? as u16,
            end: int(fields.get(1)?)? as u16,
            host: text(primary.first()?)?,
            port: int(primary.get(1)?)? as u16,
            id: text(primary.get(2)?)?,
        });
    }
    ranges.sort_by_key(|r| r.start);
    Some((my_id, ranges))
}

fn load_cluster_auth(ctx: &Context) {
    let get = |name: &str| -> Option<String> {
        match ctx.call("CONFIG", &["GET", name]).ok()? {
            RedisValue::Array(values) => match values.get(1)? {
                RedisValue::BulkString(s) | RedisValue::SimpleString(s) => Some(s.clone()),
                RedisValue::BulkRedisString(s) => Some(s.to_string_lossy()),
                RedisValue::StringBuffer(b) => Some(String::from_utf8_lossy(b).into_owned()),
                _ => None,
            },
            _ => None,
        }
        .filter(|s| !s.is_empty())
    };
    *CLUSTER_AUTH.lock().unwrap_or_else(|e| e.into_inner()) =
        (get("masteruser"), get("masterauth"));
}

/// `RG.REFRESHCLUSTER`: the topology from Redis Cluster (a standalone server gets a topology
/// that is not cluster mode).
pub fn refresh(ctx: &Context) {
    load_cluster_auth(ctx);
    let topology = if ctx.get_flags().contains(ContextFlags::CLUSTER) {
        read_cluster_slots(ctx)
            .map(|(my_id, ranges)| Topology::from_cluster_slots(&my_id, ranges))
            .unwrap_or_default()
    } else {
        Topology::default()
    };
    set_topology(topology);
}

/// On the cron: a Redis Cluster whose slots changed (or that this shard has not seen yet) gets
/// its topology read again. Redis 7.0 has no topology event, so this polls, once a second.
pub fn watch(ctx: &Context) {
    executions::sweep();
    registrations::sweep();
    static TICKS: AtomicU64 = AtomicU64::new(0);
    if !TICKS.fetch_add(1, Ordering::Relaxed).is_multiple_of(10) {
        return;
    }
    if !ctx.get_flags().contains(ContextFlags::CLUSTER) {
        return;
    }
    let current = topology();
    // A cluster manager's topology (RG.CLUSTERSET) is not the cron's to replace.
    if current.as_ref().is_some_and(|t| t.cluster_set.is_some()) {
        return;
    }
    let Some((my_id, ranges)) = read_cluster_slots(ctx) else {
        return;
    };
    let changed = current
        .as_ref()
        .is_none_or(|t| t.my_id != my_id || t.ranges != ranges);
    if changed {
        load_cluster_auth(ctx);
        set_topology(Topology::from_cluster_slots(&my_id, ranges));
        log("notice", "cluster topology changed, reloaded");
    }
}

/// What `RG.INNERMSGCOMMAND` did with a message.
pub enum Delivery {
    Accepted,
    Duplicate,
    UnknownFunction,
    NoTopology,
    /// The sender is not a shard of this topology (yet: the sender retries).
    UnknownSender,
}

/// Delivers a message from another shard: duplicates (a resend of one already accepted) are
/// ignored; the id counts even when the function is unknown.
pub fn deliver(
    ctx: &Context,
    sender: &str,
    run_id: &str,
    function: &str,
    payload: &[u8],
    msg_id: i64,
) -> Delivery {
    let Some(topology) = topology() else {
        return Delivery::NoTopology;
    };
    if topology.node(sender).is_none() {
        return Delivery::UnknownSender;
    }
    if !received().accept(sender, run_id, msg_id) {
        return Delivery::Duplicate;
    }
    match handler(function) {
        Some(handle) => {
            handle(ctx, sender, function, payload);
            Delivery::Accepted
        }
        None => Delivery::UnknownFunction,
    }
}

/// What runs a message on the receiving shard, on the main thread: (sender, function, payload).
pub type Handler = fn(&Context, &str, &str, &[u8]);

/// The receiver of `function`, by the names of sessions-and-cluster.md C.4.
fn handler(function: &str) -> Option<Handler> {
    match function {
        "RG_NetworkTest" => Some(network_test_received),
        _ => executions::handler(function).or_else(|| registrations::handler(function)),
    }
}

/// `RG_NetworkTest`: counted (INFO `rg_network_test_received`) and logged.
fn network_test_received(_ctx: &Context, sender: &str, _function: &str, payload: &[u8]) {
    NETWORK_TEST_RECEIVED.fetch_add(1, Ordering::SeqCst);
    log(
        "notice",
        &format!(
            "got a test message from {sender}: {}",
            String::from_utf8_lossy(payload)
        ),
    );
}
