//! Cluster commands (commands.md §6): the topology (RG.REFRESHCLUSTER, RG.CLUSTERSET,
//! RG.CLUSTERSETFROMSHARD, RG.INFOCLUSTER) and the shard-to-shard protocol (RG.HELLO,
//! RG.INNERMSGCOMMAND, RG.NETWORKTEST).

use cluster::Topology;
use redis_module::{Context, RedisString};

use super::Answer;
use crate::reply::Reply;
use crate::shards::{self as shards, Delivery};

/// RG.INFOCLUSTER: `no cluster mode`, or this shard's id and run id and every shard.
pub fn info_cluster(_ctx: &Context, _args: Vec<RedisString>) -> Answer {
    let (Some(topology), Some(run_id)) = (shards::topology(), shards::run_id()) else {
        return Reply::bulk("no cluster mode").into();
    };
    if !topology.is_cluster() {
        return Reply::bulk("no cluster mode").into();
    }
    let nodes = shards::shards()
        .into_iter()
        .map(|(node, run_id, pending)| {
            Reply::Array(vec![
                Reply::bulk("id"),
                Reply::bulk(node.id),
                Reply::bulk("ip"),
                Reply::bulk(node.host),
                Reply::bulk("port"),
                Reply::Integer(i64::from(node.port)),
                Reply::bulk("unixSocket"),
                Reply::bulk(node.unix_socket.unwrap_or_else(|| "None".into())),
                Reply::bulk("runid"),
                run_id.map_or(Reply::Null, Reply::bulk),
                Reply::bulk("minHslot"),
                Reply::Integer(i64::from(node.min_slot)),
                Reply::bulk("maxHslot"),
                Reply::Integer(i64::from(node.max_slot)),
                Reply::bulk("pendingMessages"),
                Reply::Integer(pending as i64),
            ])
        })
        .collect();
    Reply::Array(vec![
        Reply::bulk("MyId"),
        Reply::bulk(topology.my_id.clone()),
        Reply::bulk("MyRunId"),
        Reply::bulk(run_id),
        Reply::Array(nodes),
    ])
    .into()
}

/// RG.REFRESHCLUSTER: reads the topology again (no arity check).
pub fn refresh_cluster(ctx: &Context, _args: Vec<RedisString>) -> Answer {
    shards::refresh(ctx);
    Reply::ok().into()
}

fn bytes(args: &[RedisString]) -> Vec<Vec<u8>> {
    args.iter().map(|a| a.as_slice().to_vec()).collect()
}

/// RG.CLUSTERSET: a cluster manager's topology, applied whatever this shard had.
pub fn cluster_set(_ctx: &Context, args: Vec<RedisString>) -> Answer {
    match Topology::from_cluster_set(&bytes(&args)) {
        Ok(topology) => {
            shards::set_topology(topology);
            Reply::ok().into()
        }
        Err(e) => Reply::error(e.to_string()).into(),
    }
}

/// RG.CLUSTERSETFROMSHARD: a peer's topology, applied only if this shard has none.
pub fn cluster_set_from_shard(_ctx: &Context, args: Vec<RedisString>) -> Answer {
    match Topology::from_cluster_set(&bytes(&args)) {
        Ok(topology) => {
            if shards::topology().is_none() {
                shards::set_topology(topology);
            }
            Reply::ok().into()
        }
        Err(e) => Reply::error(e.to_string()).into(),
    }
}

/// RG.HELLO: this shard's run id.
pub fn hello(_ctx: &Context, _args: Vec<RedisString>) -> Answer {
    match shards::run_id() {
        Some(run_id) => Reply::bulk(run_id).into(),
        None => Reply::error("ERRCLUSTER NULL cluster state on hello msg").into(),
    }
}

/// RG.INNERMSGCOMMAND <sender id> <sender run id> <function> <payload> <msg id>.
pub fn inner_msg_command(ctx: &Context, args: Vec<RedisString>) -> Answer {
    if args.len() != 6 {
        return Answer::WrongArity;
    }
    if shards::topology().is_none() {
        return Reply::error("ERRCLUSTER NULL cluster state").into();
    }
    let Some(msg_id) = std::str::from_utf8(args[5].as_slice())
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
    else {
        return Reply::error("bad msg id given").into();
    };
    let text = |a: &RedisString| String::from_utf8_lossy(a.as_slice()).into_owned();
    match shards::deliver(
        ctx,
        &text(&args[1]),
        &text(&args[2]),
        &text(&args[3]),
        args[4].as_slice(),
        msg_id,
    ) {
        Delivery::Accepted => Reply::ok().into(),
        Delivery::Duplicate => Reply::Simple("duplicate message ignored".into()).into(),
        Delivery::UnknownFunction => Reply::error("can not find the callback requested").into(),
        Delivery::NoTopology => Reply::error("ERRCLUSTER NULL cluster state").into(),
        Delivery::UnknownSender => {
            Reply::error(format!("ERRCLUSTER unknown sender {}", text(&args[1]))).into()
        }
    }
}

/// RG.NETWORKTEST: a `test` message to every other shard.
pub fn network_test(_ctx: &Context, _args: Vec<RedisString>) -> Answer {
    shards::broadcast("RG_NetworkTest", b"test");
    Reply::ok().into()
}
