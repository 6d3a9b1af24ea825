//! Cluster part 2 (sessions-and-cluster.md C.5, gearsbuilder.md §8.4): on a real 3-node Redis
//! Cluster an `async` `run()` runs on every shard, and every operation gives what one server
//! holding all the data gives; a shard that dies mid-execution gives an error, not a hang.

use std::time::{Duration, Instant};

use e2e::{cmd, eventually, execution_ids, pyexecute, Cluster, Reply, Server};

/// 300 string keys `user:<i>` = i and 40 `order:<i>` = 10 * i.
fn data() -> Vec<(String, String)> {
    let users = (0..300).map(|i| (format!("user:{i}"), i.to_string()));
    let orders = (0..40).map(|i| (format!("order:{i}"), (10 * i).to_string()));
    users.chain(orders).collect()
}

fn single_node_with_data() -> Server {
    let server = Server::start();
    let mut con = server.con();
    let mut pipe = redis::pipe();
    for (k, v) in data() {
        pipe.cmd("SET").arg(k).arg(v).ignore();
    }
    let () = pipe.query(&mut con).unwrap();
    server
}

fn cluster_with_data() -> Cluster {
    let cluster = Cluster::start(3);
    cluster.set_all(&data());
    cluster
}

/// The pipelines every operation is checked with, and whether their output order is defined.
const PIPELINES: &[(&str, bool)] = &[
    ("GB().map(lambda r: r['key']).run()", false),
    ("GB().filter(lambda r: r['key'].startswith('order:')).map(lambda r: int(r['value'])).run()", false),
    ("GB().map(lambda r: int(r['value'])).aggregate(0, lambda a, r: a + r, lambda a, r: a + r).run()", true),
    ("GB().count().run()", true),
    ("GB().countby(lambda r: r['key'].split(':')[0]).run()", false),
    ("GB().countby(lambda r: str(int(r['value']) % 7)).run()", false),
    ("GB().groupby(lambda r: str(int(r['value']) % 5), lambda k, a, r: (a if a else 0) + int(r['value'])).run()", false),
    ("GB().batchgroupby(lambda r: str(int(r['value']) % 3), lambda k, rs: sorted(int(x['value']) for x in rs)[:3]).run()", false),
    ("GB().aggregateby(lambda r: str(int(r['value']) % 4), 0, lambda k, a, r: a + 1, lambda k, a, r: a + r).run()", false),
    ("GB().map(lambda r: int(r['value'])).avg().run()", true),
    ("GB().map(lambda r: int(r['value']) % 10).distinct().run()", false),
    ("GB().map(lambda r: int(r['value'])).sort().run()", true),
    ("GB().map(lambda r: int(r['value'])).sort(reverse=False).limit(5, 3).run()", true),
    ("GB().repartition(lambda r: r['value']).map(lambda r: r['key']).run()", false),
    ("GB().localgroupby(lambda r: r['key'][0], lambda k, a, r: (a if a else 0) + 1).collect().map(lambda r: r['key']).distinct().run()", false),
    ("GB().map(lambda r: 1 / 0 if r['key'] == 'user:7' else r['key']).filter(lambda k: False).run()", false),
];

/// Results and errors of a run, sorted unless their order is defined.
fn outcome(con: &mut redis::Connection, script: &str, ordered: bool) -> (Vec<String>, Vec<String>) {
    let reply = pyexecute(con, script, &[]);
    let items = reply.items();
    assert_eq!(items.len(), 2, "{script}: {reply:?}");
    let strings =
        |r: &Reply| -> Vec<String> { r.items().iter().map(|i| i.as_str().to_string()).collect() };
    if ordered {
        (strings(&items[0]), strings(&items[1]))
    } else {
        (items[0].sorted_strings(), items[1].sorted_strings())
    }
}

#[test]
fn every_operation_gives_what_one_node_holding_all_the_data_gives() {
    let single = single_node_with_data();
    let cluster = cluster_with_data();
    let mut one = single.con();
    let mut entries: Vec<redis::Connection> = cluster.nodes.iter().map(|n| n.con()).collect();
    for (i, (script, ordered)) in PIPELINES.iter().enumerate() {
        let expected = outcome(&mut one, script, *ordered);
        assert!(
            !expected.0.is_empty() || !expected.1.is_empty(),
            "{script} gives nothing to compare"
        );
        // Any node may be the initiator.
        let entry = &mut entries[i % 3];
        assert_eq!(outcome(entry, script, *ordered), expected, "{script}");
    }
    // Each shard holds only part of the keys, so a local run sees less.
    let local = outcome(
        &mut entries[0],
        "GB().count().run(mode='async_local')",
        true,
    );
    let all = outcome(&mut one, "GB().count().run()", true);
    assert!(local.0[0].parse::<i64>().unwrap() < all.0[0].parse::<i64>().unwrap());
}

#[test]
fn every_shard_runs_its_part_and_the_ids_say_which() {
    let cluster = cluster_with_data();
    let mut con = cluster.nodes[1].con();
    let mut ids: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| cmd(&mut n.con(), &["CLUSTER", "MYID"]).as_str().to_string())
        .collect();
    ids.sort();
    let (shards, errors) = outcome(&mut con, "GB('ShardsIDReader').run()", false);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(shards, ids);
    // A PythonReader's generator runs on every shard (§8.4): three times the sum.
    let script = "GB('PythonReader', lambda: (x for x in range(5))).aggregate(0, lambda a, r: a + r, lambda a, r: a + r).run()";
    assert_eq!(
        outcome(&mut con, script, true),
        (vec!["30".to_string()], vec![])
    );
    // A run from inside a step runs on every shard too: each shard's coroutine awaits a run
    // that sees all the keys.
    let script = "
async def nested(r):
    res = await GB().map(lambda x: x['key']).run()
    return len(res[0]) if not res[1] else res[1]
GB('ShardsIDReader').map(nested).run()";
    let total = data().len().to_string();
    assert_eq!(
        outcome(&mut con, script, false),
        (vec![total.clone(), total.clone(), total], vec![])
    );
    // Without a collect only the initiator's own records come back (§8.4), but every shard ran
    // its part before the reply: each wrote its marker key.
    let script = "
GB('ShardsIDReader').foreach(lambda r: execute('SET', 'ran{%s}' % hashtag(), r)).run(collect=False)";
    let (mine, errors) = outcome(&mut con, script, false);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        mine,
        [cmd(&mut con, &["CLUSTER", "MYID"]).as_str().to_string()]
    );
    for (node, id) in cluster.nodes.iter().zip(
        cluster
            .nodes
            .iter()
            .map(|n| cmd(&mut n.con(), &["CLUSTER", "MYID"]).as_str().to_string()),
    ) {
        let mut c = node.con();
        let keys = cmd(&mut c, &["KEYS", "ran*"]);
        assert_eq!(keys.items().len(), 1, "{keys:?}");
        assert_eq!(cmd(&mut c, &["GET", keys.items()[0].as_str()]).as_str(), id);
    }
}

#[test]
fn records_python_cannot_ship_become_error_records() {
    let cluster = cluster_with_data();
    let mut con = cluster.nodes[0].con();
    // A class instance cannot go through marshal: every shard's record that must travel to
    // the initiator becomes an error, the initiator's own record stays a result.
    let script = "
class Box:
    def __repr__(self):
        return 'Box'
GB('ShardsIDReader').map(lambda r: Box()).collect().map(lambda b: repr(b)).run()";
    let (results, errors) = outcome(&mut con, script, false);
    assert_eq!(results, ["Box"]);
    assert_eq!(
        errors,
        [
            "Error type: <class 'ValueError'>, Value: unmarshallable object",
            "Error type: <class 'ValueError'>, Value: unmarshallable object"
        ]
    );
}

#[test]
fn a_shard_killed_mid_execution_gives_an_error_not_a_hang() {
    let mut cluster = cluster_with_data();
    let mut con = cluster.nodes[0].con();
    cmd(&mut con, &["RG.CONFIGSET", "ExecutionMaxIdleTime", "1500"]);
    let victim_id = cmd(&mut cluster.nodes[2].con(), &["CLUSTER", "MYID"])
        .as_str()
        .to_string();
    // Every shard sleeps a little per record, so the execution is under way when node 2 dies.
    let script = "
import time
def slow(r):
    time.sleep(0.01)
    return r['key']
GB().map(slow).run()";
    let started = Instant::now();
    let killer = {
        let pid = cluster.nodes[2].pid();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status()
                .unwrap();
        })
    };
    let reply = pyexecute(&mut con, script, &[]);
    killer.join().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    let errors = reply.items()[1].sorted_strings();
    assert_eq!(
        errors,
        [format!(
            "Execution max idle reached, no answer from shard {victim_id}"
        )],
        "{reply:?}"
    );
    // The surviving shards go on serving.
    assert_eq!(cmd(&mut con, &["PING"]), Reply::Simple("PONG".into()));
    cluster.nodes[2].stop();
}

/// `field` of a `shard_id/execution_plan` view.
fn plan_field(view: &Reply, field: &str) -> Reply {
    let plan = view.items()[3].items();
    let at = plan
        .iter()
        .position(|f| *f == Reply::bulk(field))
        .unwrap_or_else(|| panic!("no {field} in {view:?}"));
    plan[at + 1].clone()
}

#[test]
fn executions_are_seen_dropped_and_aborted_cluster_wide() {
    let cluster = cluster_with_data();
    let mut cons: Vec<redis::Connection> = cluster.nodes.iter().map(|n| n.con()).collect();
    let id = pyexecute(
        &mut cons[0],
        "GB().map(lambda r: r['key']).run()",
        &["UNBLOCKING"],
    )
    .as_str()
    .to_string();
    eventually("the execution ended", || {
        matches!(cmd(&mut cons[0], &["RG.GETRESULTS", &id]), Reply::Arr(_))
    });
    assert_eq!(
        cmd(&mut cons[0], &["RG.GETRESULTSBLOCKING", &id]).items()[0]
            .items()
            .len(),
        data().len()
    );
    // Every shard has its part under the same id.
    for con in cons.iter_mut() {
        assert!(execution_ids(con).contains(&id), "{:?}", execution_ids(con));
    }
    // The cluster view has one entry per shard; SHARD only this one's.
    let views = cmd(&mut cons[1], &["RG.GETEXECUTION", &id]);
    assert_eq!(views.items().len(), 3, "{views:?}");
    let mut shard_ids: Vec<String> = views
        .items()
        .iter()
        .map(|v| v.items()[1].as_str().to_string())
        .collect();
    shard_ids.sort();
    let mut node_ids: Vec<String> = cons
        .iter_mut()
        .map(|c| cmd(c, &["CLUSTER", "MYID"]).as_str().to_string())
        .collect();
    node_ids.sort();
    assert_eq!(shard_ids, node_ids);
    let initiator = cmd(&mut cons[0], &["CLUSTER", "MYID"]);
    let mut results = 0;
    for view in views.items() {
        assert_eq!(plan_field(view, "status"), Reply::bulk("done"));
        // Only the initiator counts the other shards (C.7).
        let others = if view.items()[1] == initiator { 2 } else { 0 };
        assert_eq!(plan_field(view, "shards_received"), Reply::Int(others));
        assert_eq!(plan_field(view, "shards_completed"), Reply::Int(others));
        results += match plan_field(view, "results") {
            Reply::Int(n) => n,
            other => panic!("{other:?}"),
        };
    }
    // Every record was collected on the initiator.
    assert_eq!(results, data().len() as i64);
    let mine = cmd(&mut cons[1], &["RG.GETEXECUTION", &id, "SHARD"]);
    assert_eq!(mine.items().len(), 1);
    assert_eq!(
        mine.items()[0].items()[1],
        cmd(&mut cons[1], &["CLUSTER", "MYID"])
    );
    assert_eq!(
        cmd(&mut cons[1], &["RG.GETEXECUTION", &id, "NOPE"]),
        Reply::err("unknown subcommand")
    );
    // The helper executions of the cluster view are gone from every shard.
    for con in cons.iter_mut() {
        eventually("helpers dropped", || execution_ids(con) == [id.clone()]);
    }
    // Dropping it on the initiator drops every part.
    assert_eq!(cmd(&mut cons[0], &["RG.DROPEXECUTION", &id]), Reply::ok());
    for con in cons.iter_mut() {
        eventually("every part dropped", || !execution_ids(con).contains(&id));
    }
    // A blocking run leaves nothing behind on any shard.
    let reply = pyexecute(&mut cons[2], "GB().count().run()", &[]);
    assert_eq!(reply, Reply::results(&[&data().len().to_string()], &[]));
    for con in cons.iter_mut() {
        eventually("nothing listed", || execution_ids(con).is_empty());
    }
    // An abort on the initiator ends every part.
    let id = pyexecute(
        &mut cons[0],
        "
import time
def slow(r):
    time.sleep(0.05)
    return r
GB().map(slow).run()",
        &["UNBLOCKING"],
    )
    .as_str()
    .to_string();
    for con in cons.iter_mut() {
        eventually("every part started", || execution_ids(con).contains(&id));
    }
    assert_eq!(cmd(&mut cons[0], &["RG.ABORTEXECUTION", &id]), Reply::ok());
    for con in cons.iter_mut() {
        eventually("every part ended", || {
            let view = cmd(con, &["RG.GETEXECUTION", &id, "SHARD"]);
            matches!(view, Reply::Err(_))
                || plan_field(&view.items()[0], "status") != Reply::bulk("running")
        });
    }
}
