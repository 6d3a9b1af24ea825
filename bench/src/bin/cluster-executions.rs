//! Issue 17: the batch pipelines on a 3-node loopback Redis Cluster (every shard runs its part,
//! collect and repartition move records between shards) against one node holding the same
//! data, alternating, in the same run. Both give the same results (checked on every run).
//!
//! All nodes share this machine's cores: the cluster gains only from running three Python
//! interpreters (one GIL each) on the cores one node leaves idle, and pays for the messages,
//! the record shipping and the end handshake.
//!
//! `cluster-executions [--quick]`.

use std::time::{Duration, Instant};

use e2e::{pyexecute, Cluster, Reply, Server};

const PIPELINES: [(&str, &str); 5] = [
    ("count", "GB().count().run()"),
    (
        "pipeline",
        "GB().map(lambda r: r['value']).filter(lambda v: v.endswith('7')).count().run()",
    ),
    (
        "groupby",
        "GB().map(lambda r: r['value'][-1]).countby().run()",
    ),
    // Every record crosses to the initiator before it is counted.
    (
        "collect_all",
        "GB().map(lambda r: r['key']).collect().count().run()",
    ),
    // Every record crosses to the shard owning its group.
    (
        "repartition",
        "GB().repartition(lambda r: r['value'][-2:]).count().run()",
    ),
];

/// A tiny execution: the fixed cost of running on every shard.
const SHARDS_ONLY: &str = "GB('ShardsIDReader').count().run()";

fn median(mut samples: Vec<Duration>) -> (f64, f64, f64) {
    samples.sort();
    let s = |d: Duration| d.as_secs_f64();
    (
        s(samples[samples.len() / 2]),
        s(samples[0]),
        s(samples[samples.len() - 1]),
    )
}

fn timed(con: &mut redis::Connection, script: &str) -> (Duration, Reply) {
    let start = Instant::now();
    let reply = pyexecute(con, script, &[]);
    let took = start.elapsed();
    assert!(
        matches!(&reply, Reply::Arr(parts) if parts.len() == 2 && parts[1] == Reply::Arr(vec![])),
        "{script} replied {reply:?}"
    );
    (took, reply)
}

fn sorted(reply: &Reply) -> Vec<String> {
    reply.items()[0].sorted_strings()
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (keys, repetitions) = if quick { (200_000, 5) } else { (1_000_000, 7) };
    let pairs: Vec<(String, String)> = (0..keys)
        .map(|i| (format!("key:{i}"), format!("value:{i}")))
        .collect();
    let single = Server::start();
    let mut one = single.con();
    let mut pipe = redis::pipe();
    for (k, v) in &pairs {
        pipe.cmd("SET").arg(k).arg(v).ignore();
    }
    let () = pipe.query(&mut one).expect("SET on the single node");
    let cluster = Cluster::start(3);
    cluster.set_all(&pairs);
    let mut entry = cluster.nodes[0].con();
    println!(
        "# gears-rs cluster executions: {keys} keys, 3-node loopback cluster vs 1 node, {repetitions} runs a side, median[min-max]"
    );
    for (name, script) in PIPELINES
        .iter()
        .copied()
        .chain([("shards_only", SHARDS_ONLY)])
    {
        let (mut ours, mut floor) = (Vec::new(), Vec::new());
        for _ in 0..repetitions {
            let (took, clustered) = timed(&mut entry, script);
            ours.push(took);
            let (took, alone) = timed(&mut one, script);
            floor.push(took);
            if name != "shards_only" {
                assert_eq!(sorted(&clustered), sorted(&alone), "{script}");
            }
        }
        let (o, o_lo, o_hi) = median(ours);
        let (f, f_lo, f_hi) = median(floor);
        println!(
            "cluster_{name:<12} ours={o:.4}s[{o_lo:.4}-{o_hi:.4}]  floor={f:.4}s[{f_lo:.4}-{f_hi:.4}]  ratio={:.2}   floor = one node with all the keys (2 cores shared by 3 nodes)",
            o / f
        );
    }
}
