//! Debug-only commands, for benchmarks: enabled with the module argument `DebugCommands 1`.

use redis_module::{Context, RedisString};

use super::{text_args, Answer};
use crate::blocked::BlockedClient;
use crate::config;
use crate::readers::keys::read_value;
use crate::readers::scan::ChunkedScan;
use crate::reply::Reply;

fn enabled() -> bool {
    config::read().extra("DebugCommands") == Some("1")
}

/// `RG.DEBUGSCANFLOOR <pattern> [VALUES]`: the floor a KeysReader execution is measured
/// against. Walks the keyspace exactly as KeysReader does (same chunks, same lock holds, values
/// read the same way with VALUES) on a thread of its own, but builds no records and runs no
/// Python; replies with the number of keys that matched.
pub fn scan_floor(ctx: &Context, args: Vec<RedisString>) -> Answer {
    if !enabled() {
        return Reply::error(
            "ERR debug commands are disabled (load the module with DebugCommands 1)",
        )
        .into();
    }
    let args = text_args(&args);
    if args.len() < 2 || args.len() > 3 {
        return Answer::WrongArity;
    }
    let read_values = args
        .get(2)
        .is_some_and(|a| a.eq_ignore_ascii_case("VALUES"));
    let pattern = args[1].clone().into_bytes();
    let client = BlockedClient::block(ctx, 0);
    let spawned = std::thread::Builder::new()
        .name("gears-scan-floor".into())
        .spawn(move || {
            let mut scan = ChunkedScan::new(pattern);
            let mut count: i64 = 0;
            while let Some(chunk) = scan.next_chunk(|ctx, name, key| {
                if read_values {
                    if let Some(key) = key {
                        std::hint::black_box(read_value(ctx, name, key));
                    }
                }
            }) {
                count += chunk.len() as i64;
            }
            client.reply(Reply::Integer(count));
        });
    match spawned {
        Ok(_) => Answer::NoReply,
        Err(e) => Reply::error(format!("ERR could not start the scan: {e}")).into(),
    }
}
