//! RG.CONFIGGET and RG.CONFIGSET.

use redis_module::{Context, RedisString};

use super::{text_args, Answer};
use crate::config;
use crate::reply::Reply;

pub fn config_get(_ctx: &Context, args: Vec<RedisString>) -> Answer {
    let keys = text_args(&args[1..]);
    let config = config::read();
    Reply::Array(keys.iter().map(|k| config.get(k)).collect()).into()
}

pub fn config_set(_ctx: &Context, args: Vec<RedisString>) -> Answer {
    let pairs = text_args(&args[1..]);
    Reply::Array(config::with_mut(|c| c.set_many(&pairs))).into()
}
