//! The batch engine against its floors. Every figure runs both sides in the same run on the same
//! data, alternating, at least five times each, and prints the median with the range.

use std::time::{Duration, Instant};

use e2e::{cmd, pyexecute, Reply, Server};

const COUNT: &str = "GB().count().run()";
const PIPELINE: &str =
    "GB().map(lambda r: r['value']).filter(lambda v: v.endswith('7')).count().run()";
const GROUPBY: &str = "GB().map(lambda r: r['value'][-1]).countby().run()";

const LUA_COUNT: &str = "local n = 0 local cur = '0' repeat local r = redis.call('SCAN', cur, 'COUNT', 1000) cur = r[1] n = n + #r[2] until cur == '0' return n";
const LUA_PIPELINE: &str = "local n = 0 local cur = '0' repeat local r = redis.call('SCAN', cur, 'COUNT', 1000) cur = r[1] for _, k in ipairs(r[2]) do local v = redis.call('GET', k) if string.sub(v, -1) == '7' then n = n + 1 end end until cur == '0' return n";
const LUA_GROUPBY: &str = "local c = {} local cur = '0' repeat local r = redis.call('SCAN', cur, 'COUNT', 1000) cur = r[1] for _, k in ipairs(r[2]) do local v = redis.call('GET', k) local d = string.sub(v, -1) c[d] = (c[d] or 0) + 1 end until cur == '0' local out = {} for d, n in pairs(c) do table.insert(out, d .. '=' .. n) end return out";

/// Keeps the records our engine hands to Python in a list, for the plain-loop floors.
const KEEP_RECORDS: &str =
    "import sys\nsys.bench_records = []\nGB().foreach(lambda r: sys.bench_records.append(r)).count().run()";

/// The pipeline's two lambdas in a plain Python loop over the kept records.
const LOOP_PIPELINE: &str = "        if g(f(r)):\n            n += 1";
/// The groupby's map lambda and countby's default extractor, counting into a dict.
const LOOP_GROUPBY: &str = "        k = e(h(r))\n        counts[k] = counts.get(k, 0) + 1";

/// A script timing `body` over the kept records inside the server, by the same interpreter, on
/// an execution thread; it replies with the seconds the loop took.
fn python_loop(body: &str) -> String {
    format!(
        "import sys, time
f = lambda r: r['value']
g = lambda v: v.endswith('7')
h = lambda r: r['value'][-1]
e = lambda x: x
def timed():
    records = sys.bench_records
    counts = {{}}
    n = 0
    start = time.perf_counter()
    for r in records:
{body}
    yield repr(time.perf_counter() - start)
GB('PythonReader').run(timed)"
    )
}

/// (median, min, max) in seconds.
fn summary(mut samples: Vec<Duration>) -> (f64, f64, f64) {
    samples.sort();
    let s = |d: Duration| d.as_secs_f64();
    (
        s(samples[samples.len() / 2]),
        s(samples[0]),
        s(samples[samples.len() - 1]),
    )
}

fn show(d: (f64, f64, f64)) -> String {
    format!("{:.3}s[{:.3}-{:.3}]", d.0, d.1, d.2)
}

fn ok_results(reply: &Reply) -> bool {
    matches!(reply, Reply::Arr(parts) if parts.len() == 2 && parts[1] == Reply::Arr(vec![]))
}

/// Wall time of one command, checking its reply.
fn wall(con: &mut redis::Connection, args: &[&str], expect: fn(&Reply) -> bool) -> Duration {
    let start = Instant::now();
    let reply = cmd(con, args);
    let took = start.elapsed();
    assert!(expect(&reply), "{args:?} replied {reply:?}");
    took
}

fn ours(con: &mut redis::Connection, script: &str) -> Duration {
    wall(con, &["RG.PYEXECUTE", script], ok_results)
}

fn scan_floor(con: &mut redis::Connection, values: bool) -> Duration {
    let mut args = vec!["RG.DEBUGSCANFLOOR", "*"];
    if values {
        args.push("VALUES");
    }
    wall(con, &args, |r| matches!(r, Reply::Int(_)))
}

fn python_seconds(con: &mut redis::Connection, script: &str) -> Duration {
    let reply = pyexecute(con, script, &[]);
    assert!(ok_results(&reply), "{reply:?}");
    let secs: f64 = reply.items()[0].items()[0]
        .as_str()
        .parse()
        .expect("seconds");
    Duration::from_secs_f64(secs)
}

fn lua(con: &mut redis::Connection, script: &str) -> Duration {
    wall(con, &["EVAL", script, "0"], |r| !matches!(r, Reply::Err(_)))
}

/// Runs both sides alternately `repetitions` times and prints one line.
fn compare(
    name: &str,
    repetitions: usize,
    mut ours: impl FnMut() -> Duration,
    mut floor: impl FnMut() -> Duration,
    floor_is: &str,
) {
    let (mut o, mut f) = (Vec::new(), Vec::new());
    for _ in 0..repetitions {
        o.push(ours());
        f.push(floor());
    }
    let (o, f) = (summary(o), summary(f));
    println!(
        "{name:<16} ours={}  floor={}  ratio={:.2}   floor = {floor_is}",
        show(o),
        show(f),
        o.0 / f.0
    );
}

/// Prints a figure that has no floor (a reference point or a measurement).
fn reference(name: &str, repetitions: usize, mut run: impl FnMut() -> Duration, what: &str) {
    let samples = (0..repetitions).map(|_| run()).collect();
    println!("{name:<16} time={}   {what}", show(summary(samples)));
}

fn populate(con: &mut redis::Connection, keys: usize) {
    cmd(con, &["FLUSHALL"]);
    let reply = cmd(con, &["DEBUG", "POPULATE", &keys.to_string()]);
    assert_eq!(reply, Reply::ok());
}

fn proc_status_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Peak resident memory of the server while `run` runs (VmHWM, reset before).
fn peak_rss(pid: u32, run: impl FnOnce()) -> String {
    let before = proc_status_mib(pid, "VmRSS:");
    let reset = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();
    run();
    match (before, proc_status_mib(pid, "VmHWM:")) {
        (Some(b), Some(peak)) if reset => format!("rss_before={b:.0}MiB peak={peak:.0}MiB"),
        _ => "unavailable (no /proc access)".to_string(),
    }
}

/// SET throughput from `redis-benchmark -t set -n 200000 -P <pipeline>`.
fn set_throughput(port: u16, pipeline: u32) -> f64 {
    let out = std::process::Command::new("redis-benchmark")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            "set",
            "-n",
            "200000",
        ])
        .args(["-P", &pipeline.to_string()])
        .output()
        .expect("redis-benchmark (redis-tools) on PATH");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.trim().strip_prefix("throughput summary: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no throughput in redis-benchmark output: {text}"))
}

/// Issue 6: SET throughput with a sync registration whose step is `lambda r: None`, against the
/// same server with no registration, alternating. The figure is the share of plain throughput
/// kept (higher is better).
fn sync_registration_throughput(repetitions: usize) {
    let server = Server::start();
    let mut con = server.con();
    let id = "0000000000000000000000000000000000000000";
    for pipeline in [1u32, 16] {
        let (mut plain, mut with) = (Vec::new(), Vec::new());
        for _ in 0..repetitions {
            cmd(&mut con, &["FLUSHALL"]);
            plain.push(set_throughput(server.port, pipeline));
            let reply = pyexecute(
                &mut con,
                "GB().map(lambda r: None).register(mode='sync')",
                &[],
            );
            assert_eq!(reply, Reply::ok());
            cmd(&mut con, &["FLUSHALL"]);
            with.push(set_throughput(server.port, pipeline));
            let registered = cmd(&mut con, &["RG.DUMPREGISTRATIONS"]);
            let rid = registered.items()[0].items()[1].as_str().to_string();
            assert!(rid.starts_with(id));
            cmd(&mut con, &["RG.UNREGISTER", &rid]);
        }
        plain.sort_by(f64::total_cmp);
        with.sort_by(f64::total_cmp);
        let (p, w) = (plain[plain.len() / 2], with[with.len() / 2]);
        let bar = if pipeline == 1 { 0.80 } else { 0.50 };
        println!(
            "sync_reg_set_P{pipeline:<3} ours={w:.0}rps[{:.0}-{:.0}]  floor={p:.0}rps[{:.0}-{:.0}]  kept={:.2}   floor = same server, no registration (bar: kept >= {bar:.2})",
            with[0],
            with[with.len() - 1],
            plain[0],
            plain[plain.len() - 1],
            w / p
        );
    }
}

/// Commands called from a step: 300,000 `execute('INCR', ...)` in one step on a worker thread,
/// against the same calls from a Lua loop (`redis.call`, Redis' own scripting path, on the main
/// thread). Both run one command after another; the ratio is what a call from Python costs
/// beside one from Lua.
fn command_calls(repetitions: usize) {
    const CALLS: usize = 300_000;
    let server = Server::start();
    let (mut a, mut b) = (server.con(), server.con());
    let step = format!(
        "def f(x):\n    for i in range({CALLS}):\n        execute('INCR', 'calls')\n    return 1\nGB('PythonReader').map(f).run(lambda: (yield 1))"
    );
    let lua_loop = format!("for i = 1, {CALLS} do redis.call('INCR', 'calls') end return 1");
    compare(
        "execute_calls",
        repetitions,
        || ours(&mut a, &step),
        || lua(&mut b, &lua_loop),
        "the same 300,000 INCR calls from a Lua loop (EVAL, redis.call)",
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let only_registrations = std::env::args().any(|a| a == "--registrations");
    let (repetitions, scaling_repetitions) = if quick { (5, 1) } else { (7, 3) };
    let keys = 1_000_000;

    if only_registrations {
        sync_registration_throughput(if quick { 5 } else { 7 });
        return;
    }
    if std::env::args().any(|a| a == "--calls") {
        command_calls(repetitions);
        return;
    }
    let server = Server::with_module_args(&["DebugCommands", "1"]);
    let (mut a, mut b) = (server.con(), server.con());
    println!(
        "# gears-rs batch benchmarks: {keys} keys from DEBUG POPULATE, {repetitions} runs a side, median[min-max]"
    );
    populate(&mut a, keys);

    // 1. Scan: a count needs no value and no Python.
    compare(
        "scan_count",
        repetitions,
        || ours(&mut a, COUNT),
        || scan_floor(&mut b, false),
        "RG.DEBUGSCANFLOOR (same chunked module scan, no records, no Python)",
    );

    // 5. Memory while 1 and 2 run (before anything keeps records alive in Python).
    let pid = server.pid();
    println!(
        "memory_count     {}",
        peak_rss(pid, || {
            ours(&mut a, COUNT);
        })
    );
    println!(
        "memory_pipeline  {}",
        peak_rss(pid, || {
            ours(&mut a, PIPELINE);
        })
    );
    // 2 and 3: Python lambdas, against the same lambdas in a plain loop plus the scan that reads
    // the values.
    assert!(ok_results(&pyexecute(&mut a, KEEP_RECORDS, &[])));
    let pipeline_loop = python_loop(LOOP_PIPELINE);
    compare(
        "python_pipeline",
        repetitions,
        || ours(&mut a, PIPELINE),
        || python_seconds(&mut b, &pipeline_loop) + scan_floor(&mut b, true),
        "plain Python loop of the two lambdas over the records + scan reading values",
    );
    let groupby_loop = python_loop(LOOP_GROUPBY);
    compare(
        "groupby",
        repetitions,
        || ours(&mut a, GROUPBY),
        || python_seconds(&mut b, &groupby_loop) + scan_floor(&mut b, true),
        "plain Python loop of both lambdas into a dict + scan reading values",
    );
    pyexecute(&mut a, "import sys\nsys.bench_records = None", &[]);

    // 4. Reference point: the same three queries as server-side Lua.
    reference(
        "lua_count",
        repetitions,
        || lua(&mut b, LUA_COUNT),
        "EVAL: SCAN loop counting keys",
    );
    reference(
        "lua_pipeline",
        repetitions,
        || lua(&mut b, LUA_PIPELINE),
        "EVAL: SCAN + GET + string.sub",
    );
    reference(
        "lua_groupby",
        repetitions,
        || lua(&mut b, LUA_GROUPBY),
        "EVAL: SCAN + GET + table count",
    );

    // 5. Scaling.
    // The scan floor is printed beside ours at each size: Redis' own keyspace walk does not grow
    // quite linearly (a larger dict is colder in the caches), and ours follows it.
    for size in [100_000usize, 1_000_000, 3_000_000] {
        populate(&mut a, size);
        let samples = (0..scaling_repetitions)
            .map(|_| scan_floor(&mut b, false))
            .collect();
        let (median, _, _) = summary(samples);
        println!(
            "scale_floor      keys={size:<8} time={median:.3}s  per_key={:.0}ns",
            median * 1e9 / size as f64
        );
        for (name, script) in [
            ("count", COUNT),
            ("pipeline", PIPELINE),
            ("groupby", GROUPBY),
        ] {
            let samples = (0..scaling_repetitions)
                .map(|_| ours(&mut a, script))
                .collect();
            let (median, _, _) = summary(samples);
            println!(
                "scale_{name:<10} keys={size:<8} time={median:.3}s  per_key={:.0}ns",
                median * 1e9 / size as f64
            );
        }
    }

    // Event-driven registrations (issue 6) and command calls from steps.
    drop(a);
    drop(b);
    drop(server);
    sync_registration_throughput(repetitions);
    command_calls(repetitions);
}
