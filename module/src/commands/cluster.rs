//! Cluster commands. Only the standalone answers exist so far: topology and messaging between
//! shards are the cluster issues' work.

use redis_module::{Context, RedisString};

use super::Answer;
use crate::reply::Reply;

/// RG.INFOCLUSTER: outside a cluster, the bulk string `no cluster mode`.
pub fn info_cluster(_ctx: &Context, _args: Vec<RedisString>) -> Answer {
    Reply::bulk("no cluster mode").into()
}
