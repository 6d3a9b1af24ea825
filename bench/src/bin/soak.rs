//! The soak of issue "Reliability: fuzzing of every parser, leak and soak checks": 1,000,000
//! executions and 1,000,000 registration events against a real redis-server with the module,
//! printing the server's RSS (and Redis' own `used_memory`) every 100,000 so a leak shows as a
//! climb. Prints, asserts nothing.
//!
//! Executions: half RG.PYEXECUTE of a batch pipeline (a session, a compiled script, an
//! execution each; every other one scans 100 keys with KeysReader, the rest ShardsIDReader),
//! half RG.TRIGGER of a CommandReader registration (an execution each).
//! Events: SETs over 10,000 keys firing a `sync` and an `async` KeysReader registration (so the
//! keyspace stays the same size), and XADDs to a stream whose registration trims it.
//!
//!     cargo run --release -p gears-bench --bin soak [-- <executions> <events>]

use std::time::Instant;

use e2e::{cmd, pyexecute, Server};

const STEP: usize = 100_000;
const PIPELINE: usize = 500;

#[path = "../proc_status.rs"]
mod proc_status;

fn used_memory_mb(con: &mut redis::Connection) -> f64 {
    let info: String = redis::cmd("INFO").arg("memory").query(con).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0.0, |b| b / 1024.0 / 1024.0)
}

/// Waits until the registrations' statistics stop moving (nothing queued any more), so a
/// sample measures what stays.
fn settle(con: &mut redis::Connection) {
    let started = Instant::now();
    let mut last = format!("{:?}", cmd(con, &["RG.DUMPREGISTRATIONS"]));
    while started.elapsed().as_secs() < 600 {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let now = format!("{:?}", cmd(con, &["RG.DUMPREGISTRATIONS"]));
        if now == last {
            return;
        }
        last = now;
    }
}

struct Samples {
    pid: u32,
    rows: Vec<(usize, f64, f64)>,
    started: Instant,
}

impl Samples {
    fn take(&mut self, con: &mut redis::Connection, what: &str, done: usize) {
        settle(con);
        let rss = proc_status::megabytes(self.pid, "VmRSS");
        let used = used_memory_mb(con);
        println!(
            "{what:>10} {done:>9}  rss {rss:8.1} MB  used_memory {used:7.1} MB  ({:.0} s)",
            self.started.elapsed().as_secs_f64()
        );
        self.rows.push((done, rss, used));
    }

    /// RSS growth from the first sample past 20% to the last, per 100,000.
    fn summary(&self, what: &str) {
        let Some(last) = self.rows.last() else {
            return;
        };
        let first = self.rows[self.rows.len() / 5];
        let per = (last.1 - first.1) / ((last.0 - first.0).max(1) as f64 / STEP as f64);
        println!(
            "{what}: rss {:.1} MB after {} -> {:.1} MB after {} ({per:+.2} MB per 100,000); \
             used_memory {:.1} -> {:.1} MB",
            first.1, first.0, last.1, last.0, first.2, last.2
        );
    }
}

/// Sends `total` commands, [`PIPELINE`] at a time (`command` adds the n-th to the pipeline),
/// sampling memory every [`STEP`] under `what`; the replies of each pipeline go to `check`.
fn drive(
    server: &Server,
    con: &mut redis::Connection,
    what: &str,
    total: usize,
    mut command: impl FnMut(&mut redis::Pipeline, usize),
    check: impl Fn(&[redis::Value]),
) {
    let mut samples = Samples {
        pid: server.pid(),
        rows: Vec::new(),
        started: Instant::now(),
    };
    samples.take(con, what, 0);
    let mut done = 0;
    while done < total {
        let mut pipe = redis::pipe();
        for n in done..done + PIPELINE {
            command(&mut pipe, n);
        }
        let replies: Vec<redis::Value> = pipe.query(con).unwrap();
        check(&replies);
        done += PIPELINE;
        if done % STEP == 0 {
            samples.take(con, what, done);
        }
    }
    samples.summary(what);
}

fn executions(server: &Server, total: usize) {
    let mut con = server.con();
    pyexecute(
        &mut con,
        "GB('CommandReader').map(lambda x: len(x)).register(trigger='soak')",
        &[],
    );
    let mut pipe = redis::pipe();
    for i in 0..100 {
        pipe.cmd("SET").arg(format!("x:{i}")).arg(i).ignore();
    }
    pipe.query::<()>(&mut con).unwrap();
    let scripts = [
        "GB('ShardsIDReader').map(lambda x: 1).run()",
        "GB().map(lambda r: r['value']).count().run('x:*')",
    ];
    drive(
        server,
        &mut con,
        "executions",
        total,
        |pipe, n| {
            if n % 2 == 0 {
                pipe.cmd("RG.PYEXECUTE").arg(scripts[n / 2 % 2]);
            } else {
                pipe.cmd("RG.TRIGGER").arg("soak").arg(n);
            }
        },
        |replies| {
            if let Some(e) = replies
                .iter()
                .find(|v| matches!(v, redis::Value::ServerError(_)))
            {
                panic!("an execution failed: {e:?}");
            }
        },
    );
}

fn events(server: &Server, total: usize) {
    let mut con = server.con();
    pyexecute(
        &mut con,
        "GB().foreach(lambda r: None).register(prefix='s:*', mode='sync')",
        &[],
    );
    pyexecute(
        &mut con,
        "GB().map(lambda r: r['key']).register(prefix='a:*', mode='async')",
        &[],
    );
    pyexecute(
        &mut con,
        "GB('StreamReader').map(lambda r: r['id']).register(prefix='st:*', batch=100, duration=5)",
        &[],
    );
    drive(
        server,
        &mut con,
        "events",
        total,
        |pipe, n| {
            match n % 5 {
                0 | 1 => pipe.cmd("SET").arg(format!("s:{}", n % 5_000)).arg(n),
                2 | 3 => pipe.cmd("SET").arg(format!("a:{}", n % 5_000)).arg(n),
                _ => pipe.cmd("XADD").arg("st:1").arg("*").arg("n").arg(n),
            };
        },
        |_| {},
    );
    let stream_len: i64 = redis::cmd("XLEN").arg("st:1").query(&mut con).unwrap();
    println!("stream left with {stream_len} entries (trimmed as processed)");
    settle(&mut con);
    println!("registrations after the events:");
    for registration in cmd(&mut con, &["RG.DUMPREGISTRATIONS"]).items() {
        let fields = registration.items();
        let data = fields[7].items();
        let stat = |name: &str| {
            data.chunks(2)
                .find(|kv| kv[0].as_str() == name)
                .map(|kv| format!("{:?}", kv[1]))
                .unwrap_or_default()
        };
        println!(
            "{} {}: triggered {}, succeeded {}, failed {}",
            fields[3].as_str(),
            stat("mode"),
            stat("numTriggered"),
            stat("numSuccess"),
            stat("numFailures")
        );
    }
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let total_executions = args.first().copied().unwrap_or(1_000_000);
    let total_events = args.get(1).copied().unwrap_or(1_000_000);
    let server = Server::start();
    executions(&server, total_executions);
    events(&server, total_events);
}
