//! Issue 7: a StreamReader registration (batch 1000, duration 5 ms) whose step calls
//! `execute('INCR', 'processed')` per record.
//!   1. XADD throughput from `redis-benchmark -P 16` (200,000 entries) with the registration,
//!      against the same server with no registration, alternating; and how long after the last
//!      XADD every entry was processed.
//!      Beside it, the time Redis alone takes to consume the same entries by the same
//!      consumer-group protocol from a Lua script (no Python): the floor under any drain.
//!   2. XADD paced at 50,000 entries/s for 10 s: lag from XADD to processing, p50 and p99.
//!
//! `stream-registrations [--quick]`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use e2e::{cmd, pyexecute, Reply, Server};

const ENTRIES: u32 = 200_000;
const REGISTRATION: &str = "GB('StreamReader').foreach(lambda r: execute('INCR', 'processed')).register(prefix='s', batch=1000, duration=5)";
/// The same step, plus the lag of each entry (from the time the client wrote in field `t`, in
/// microseconds) counted in 0.1 ms buckets.
const LAG_REGISTRATION: &str = "import time\ndef step(r):\n    execute('INCR', 'processed')\n    lag = time.time() * 1e6 - int(r['value']['t'])\n    execute('HINCRBY', 'lag', min(int(lag / 100), 100000), 1)\nGB('StreamReader').foreach(step).register(prefix='s', batch=1000, duration=5)";

fn xadd_throughput(port: u16) -> f64 {
    let out = std::process::Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-n", &ENTRIES.to_string(), "-P", "16", "-q"])
        .args(["XADD", "s", "*", "f", "v"])
        .output()
        .expect("redis-benchmark (redis-tools) on PATH");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // `-q`: "XADD s * f v: 123456.79 requests per second, p50=..."
    text.rsplit("\r")
        .flat_map(|part| part.lines())
        .find_map(|l| l.split_once(": ").map(|(_, rest)| rest.to_string()))
        .and_then(|rest| rest.split_whitespace().next().map(str::to_string))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no throughput in redis-benchmark output: {text}"))
}

/// One batch of the consumer-group protocol our registration follows (XREADGROUP of up to 1000
/// new entries, the step's INCR per entry, XACK, XTRIM), run by Redis alone from Lua.
const LUA_BATCH: &str = "local r = redis.call('XREADGROUP', 'GROUP', 'g', 'c', 'COUNT', 1000, 'STREAMS', KEYS[1], '>')\n\
if not r then return 0 end\n\
local ids = {}\n\
for _, e in ipairs(r[1][2]) do redis.call('INCR', 'processed'); ids[#ids + 1] = e[1] end\n\
if #ids == 0 then return 0 end\n\
redis.call('XACK', KEYS[1], 'g', unpack(ids))\n\
redis.call('XTRIM', KEYS[1], 'MAXLEN', redis.call('XLEN', KEYS[1]) - #ids)\n\
return #ids";

/// Seconds Redis alone takes to consume stream `s` with [`LUA_BATCH`]: the part of a drain no
/// module can avoid while it keeps the spec's consumer-group protocol.
fn lua_drain(con: &mut redis::Connection) -> f64 {
    cmd(con, &["XGROUP", "CREATE", "s", "g", "0"]);
    let sha = match cmd(con, &["SCRIPT", "LOAD", LUA_BATCH]) {
        Reply::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
        other => panic!("SCRIPT LOAD: {other:?}"),
    };
    let started = Instant::now();
    while cmd(con, &["EVALSHA", &sha, "1", "s"]) != Reply::Int(0) {}
    let took = started.elapsed().as_secs_f64();
    assert_eq!(
        processed(con),
        ENTRIES as i64,
        "the Lua consumer missed entries"
    );
    took
}

fn processed(con: &mut redis::Connection) -> i64 {
    match cmd(con, &["GET", "processed"]) {
        Reply::Bulk(b) => String::from_utf8_lossy(&b).parse().unwrap_or(0),
        _ => 0,
    }
}

fn register(con: &mut redis::Connection, script: &str) -> String {
    assert_eq!(pyexecute(con, script, &[]), Reply::ok());
    let dump = cmd(con, &["RG.DUMPREGISTRATIONS"]);
    dump.items()[0].items()[1].as_str().to_string()
}

fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn throughput(repetitions: usize) {
    let server = Server::start();
    let mut con = server.con();
    let (mut plain, mut with, mut drain, mut lua) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..repetitions {
        cmd(&mut con, &["FLUSHALL"]);
        plain.push(xadd_throughput(server.port));
        lua.push(lua_drain(&mut con));
        cmd(&mut con, &["FLUSHALL"]);
        let id = register(&mut con, REGISTRATION);
        with.push(xadd_throughput(server.port));
        let last_xadd = Instant::now();
        let deadline = last_xadd + Duration::from_secs(60);
        while processed(&mut con) < ENTRIES as i64 {
            assert!(Instant::now() < deadline, "entries left unprocessed");
            std::thread::sleep(Duration::from_micros(200));
        }
        drain.push(last_xadd.elapsed().as_secs_f64());
        assert_eq!(cmd(&mut con, &["RG.UNREGISTER", &id]), Reply::ok());
    }
    let (p, p_lo, p_hi) = median(plain);
    let (w, w_lo, w_hi) = median(with);
    let (d, d_lo, d_hi) = median(drain);
    let (l, l_lo, l_hi) = median(lua);
    println!(
        "stream_xadd_P16  ours={w:.0}rps[{w_lo:.0}-{w_hi:.0}]  floor={p:.0}rps[{p_lo:.0}-{p_hi:.0}]  kept={:.2}   floor = same server, no registration (bar: kept >= 0.90; RedisGears 1.2: 0.83)",
        w / p
    );
    println!(
        "stream_drain     all {ENTRIES} processed {d:.3}s[{d_lo:.3}-{d_hi:.3}] after the last XADD (bar: < 0.3 s; RedisGears 1.2: 1.2 s)"
    );
    println!(
        "stream_drain_lua Redis alone, same protocol from Lua, no Python: {l:.3}s[{l_lo:.3}-{l_hi:.3}]  ours/lua={:.2}",
        d / l
    );
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The `q` quantile of a histogram of 0.1 ms buckets, in ms.
fn quantile(buckets: &[(u64, u64)], q: f64) -> f64 {
    let total: u64 = buckets.iter().map(|(_, n)| n).sum();
    let target = (total as f64 * q).ceil() as u64;
    let mut seen = 0;
    for (bucket, n) in buckets {
        seen += n;
        if seen >= target {
            return (*bucket as f64 + 1.0) / 10.0;
        }
    }
    f64::NAN
}

fn paced_lag(seconds: u64) {
    let server = Server::start();
    let mut con = server.con();
    register(&mut con, LAG_REGISTRATION);
    let mut writer = server.con();
    const RATE: u64 = 50_000;
    const PER_MS: u64 = RATE / 1000;
    let start = Instant::now();
    let total = RATE * seconds;
    let mut sent = 0;
    while sent < total {
        // Absolute schedule: one pipeline of 50 XADDs per millisecond.
        let due = start + Duration::from_micros(sent * 1_000_000 / RATE);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let mut pipe = redis::pipe();
        for _ in 0..PER_MS {
            pipe.cmd("XADD")
                .arg("s")
                .arg("*")
                .arg("t")
                .arg(now_us())
                .ignore();
        }
        pipe.query::<()>(&mut writer).expect("XADD");
        sent += PER_MS;
    }
    let achieved = sent as f64 / start.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(60);
    while processed(&mut con) < total as i64 {
        assert!(Instant::now() < deadline, "entries left unprocessed");
        std::thread::sleep(Duration::from_millis(1));
    }
    let histogram = match cmd(&mut con, &["HGETALL", "lag"]) {
        Reply::Arr(items) => items,
        other => panic!("{other:?}"),
    };
    let mut buckets: Vec<(u64, u64)> = histogram
        .chunks(2)
        .map(|kv| {
            (
                kv[0].as_str().parse().unwrap(),
                kv[1].as_str().parse().unwrap(),
            )
        })
        .collect();
    buckets.sort();
    println!(
        "stream_lag       {total} entries at {achieved:.0}/s: p50={:.1}ms p99={:.1}ms max={:.1}ms   (bar: p99 < 15 ms)",
        quantile(&buckets, 0.50),
        quantile(&buckets, 0.99),
        quantile(&buckets, 1.0),
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    throughput(if quick { 3 } else { 5 });
    paced_lag(10);
}
