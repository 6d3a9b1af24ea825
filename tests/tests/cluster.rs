//! Cluster part 1 (sessions-and-cluster.md C.1–C.4, C.8; commands.md §6): a real 3-node Redis
//! Cluster on loopback with the module on every node: topology, RG.INFOCLUSTER, hash tags, and
//! messages between shards delivered exactly once across a dropped connection and a restart.

use std::time::{Duration, Instant};

use e2e::{cmd, eventually, pyexecute, redis_cli, Cluster, Reply, Server};

fn text(r: &Reply) -> String {
    r.as_str().to_string()
}

fn int(r: &Reply) -> i64 {
    match r {
        Reply::Int(i) => *i,
        other => panic!("not an integer: {other:?}"),
    }
}

/// RG.INFOCLUSTER's shard entries as (field → value) lists.
fn shard_entries(con: &mut redis::Connection) -> Vec<Vec<(String, Reply)>> {
    let info = cmd(con, &["RG.INFOCLUSTER"]);
    info.items()[4]
        .items()
        .iter()
        .map(|entry| {
            entry
                .items()
                .chunks(2)
                .map(|kv| (text(&kv[0]), kv[1].clone()))
                .collect()
        })
        .collect()
}

fn field<'a>(entry: &'a [(String, Reply)], name: &str) -> &'a Reply {
    &entry.iter().find(|(k, _)| k == name).unwrap().1
}

/// `network_test_received` from INFO rg.
fn received(con: &mut redis::Connection) -> i64 {
    let info = cmd(con, &["INFO", "rg"]);
    let info = String::from_utf8_lossy(match &info {
        Reply::Bulk(b) => b,
        other => panic!("{other:?}"),
    })
    .into_owned();
    info.lines()
        .find_map(|l| l.strip_prefix("rg_network_test_received:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no network_test_received in {info}"))
}

/// The pending messages node `from` holds for the shard `to_id`.
fn pending(from: &mut redis::Connection, to_id: &str) -> i64 {
    let entries = shard_entries(from);
    let entry = entries
        .iter()
        .find(|e| text(field(e, "id")) == to_id)
        .expect("the shard is listed");
    int(field(entry, "pendingMessages"))
}

#[test]
fn every_node_sees_the_whole_cluster() {
    let cluster = Cluster::start(3);
    let mut run_ids = Vec::new();
    let mut my_ids = Vec::new();
    for node in &cluster.nodes {
        let mut con = node.con();
        let info = cmd(&mut con, &["RG.INFOCLUSTER"]);
        assert_eq!(info.items()[0], Reply::bulk("MyId"));
        assert_eq!(info.items()[1], cmd(&mut con, &["CLUSTER", "MYID"]));
        assert_eq!(info.items()[2], Reply::bulk("MyRunId"));
        let run_id = text(&info.items()[3]);
        assert_eq!(run_id.len(), 40);
        assert!(run_id.chars().all(|c| c.is_ascii_hexdigit()));
        my_ids.push(text(&info.items()[1]));
        run_ids.push(run_id);
    }
    for node in &cluster.nodes {
        let mut con = node.con();
        // The executions of the previous rounds ran on every shard: their last messages are
        // acknowledged soon after their replies.
        // (an UNBLOCKING run of the previous round may still be sending: one snapshot is read)
        let mut entries = Vec::new();
        eventually("every message acknowledged", || {
            entries = shard_entries(&mut con);
            entries
                .iter()
                .all(|e| int(field(e, "pendingMessages")) == 0)
        });
        assert_eq!(entries.len(), 3);
        for entry in &entries {
            let keys: Vec<&str> = entry.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(
                keys,
                [
                    "id",
                    "ip",
                    "port",
                    "unixSocket",
                    "runid",
                    "minHslot",
                    "maxHslot",
                    "pendingMessages"
                ]
            );
            let id = text(field(entry, "id"));
            let index = my_ids.iter().position(|m| *m == id).expect("a known shard");
            let shard = &cluster.nodes[index];
            assert_eq!(field(entry, "ip"), &Reply::bulk("127.0.0.1"));
            assert_eq!(int(field(entry, "port")), i64::from(shard.port));
            assert_eq!(field(entry, "unixSocket"), &Reply::bulk("None"));
            assert_eq!(field(entry, "runid"), &Reply::bulk(&run_ids[index]));
            assert_eq!(int(field(entry, "pendingMessages")), 0);
            // The slots are the shard's own: its min slot's keys live there.
            let min = int(field(entry, "minHslot"));
            let max = int(field(entry, "maxHslot"));
            assert!(min <= max);
            let mut shard_con = shard.con();
            let owned: Vec<i64> = match cmd(&mut shard_con, &["CLUSTER", "SLOTS"]) {
                Reply::Arr(ranges) => ranges
                    .iter()
                    .filter(|r| text(&r.items()[2].items()[2]) == id)
                    .map(|r| int(&r.items()[0]))
                    .collect(),
                other => panic!("{other:?}"),
            };
            assert!(owned.contains(&min), "{owned:?} {min}");
        }
        // hashtag() names a key of this shard's first slot; new ids carry the node id.
        let tag = pyexecute(
            &mut con,
            "GB('ShardsIDReader').map(lambda r: hashtag()).run()",
            &[],
        );
        let tag = text(&tag.items()[0].items()[0]);
        let slot = int(&cmd(
            &mut con,
            &["CLUSTER", "KEYSLOT", &format!("k{{{tag}}}")],
        ));
        let me = entries
            .iter()
            .find(|e| field(e, "id") == &cmd(&mut con, &["CLUSTER", "MYID"]))
            .unwrap();
        assert_eq!(slot, int(field(me, "minHslot")));
        let id = pyexecute(&mut con, "GB('ShardsIDReader').run()", &["UNBLOCKING"]);
        assert!(text(&id).starts_with(&text(field(me, "id"))), "{id:?}");
    }
    // The first shard holds slot 0: its tag is RedisGears' own.
    let first = cluster.nodes.iter().find(|n| {
        let mut con = n.con();
        let tag = pyexecute(
            &mut con,
            "GB('ShardsIDReader').map(lambda r: hashtag()).run()",
            &[],
        );
        tag.items()[0].items()[0] == Reply::bulk("06S")
    });
    assert!(first.is_some(), "no shard reported 06S");
}

#[test]
fn messages_are_delivered_exactly_once_across_a_restart_and_a_dropped_connection() {
    let mut cluster = Cluster::start(3);
    let mut a = cluster.nodes[0].con();
    let id_b = text(&cmd(&mut cluster.nodes[1].con(), &["CLUSTER", "MYID"]));
    for _ in 0..2 {
        assert_eq!(cmd(&mut a, &["RG.NETWORKTEST"]), Reply::ok());
    }
    for node in &cluster.nodes[1..] {
        let mut con = node.con();
        eventually("two test messages", || received(&mut con) == 2);
    }
    assert_eq!(received(&mut a), 0, "a shard sends none to itself");

    // B goes down: what A sends meanwhile waits, then arrives once B is back.
    cluster.nodes[1].stop();
    for _ in 0..3 {
        assert_eq!(cmd(&mut a, &["RG.NETWORKTEST"]), Reply::ok());
    }
    eventually("three messages pending for the stopped shard", || {
        pending(&mut a, &id_b) == 3
    });
    cluster.nodes[1].restart();
    let mut b = cluster.nodes[1].con();
    eventually("the restarted shard to get the three", || {
        received(&mut b) == 3
    });
    eventually("nothing pending", || pending(&mut a, &id_b) == 0);

    // B drops A's connection: A connects again and nothing is lost or doubled.
    let clients = text(&cmd(&mut b, &["CLIENT", "LIST"]));
    let peer_connections: Vec<&str> = clients
        .lines()
        .filter(|l| l.contains("cmd=rg.innermsgcommand") || l.contains("cmd=rg.hello"))
        .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")))
        .collect();
    assert!(!peer_connections.is_empty(), "{clients}");
    for id in peer_connections {
        cmd(&mut b, &["CLIENT", "KILL", "ID", id]);
    }
    for _ in 0..4 {
        assert_eq!(cmd(&mut a, &["RG.NETWORKTEST"]), Reply::ok());
    }
    eventually("the four after the dropped connection", || {
        received(&mut b) == 7
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(received(&mut b), 7);
    let mut c = cluster.nodes[2].con();
    eventually("the third shard to get all nine", || received(&mut c) == 9);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(received(&mut c), 9);
}

#[test]
fn the_receiver_refuses_duplicates_and_bad_messages() {
    let cluster = Cluster::start(3);
    let mut a = cluster.nodes[0].con();
    let sender = text(&cmd(&mut cluster.nodes[1].con(), &["CLUSTER", "MYID"]));
    let message = |con: &mut redis::Connection, function: &str, id: &str| {
        cmd(
            con,
            &["RG.INNERMSGCOMMAND", &sender, "run1", function, "test", id],
        )
    };
    let before = received(&mut a);
    assert_eq!(message(&mut a, "RG_NetworkTest", "5"), Reply::ok());
    assert_eq!(
        message(&mut a, "RG_NetworkTest", "5"),
        Reply::Simple("duplicate message ignored".into())
    );
    assert_eq!(
        message(&mut a, "RG_NetworkTest", "4"),
        Reply::Simple("duplicate message ignored".into())
    );
    assert_eq!(received(&mut a), before + 1);
    assert_eq!(
        message(&mut a, "NoSuchFunction", "6"),
        Reply::err("can not find the callback requested")
    );
    // The unknown function still used up its id.
    assert_eq!(
        message(&mut a, "RG_NetworkTest", "6"),
        Reply::Simple("duplicate message ignored".into())
    );
    assert_eq!(
        message(&mut a, "RG_NetworkTest", "x"),
        Reply::err("bad msg id given")
    );
    assert_eq!(
        cmd(
            &mut a,
            &[
                "RG.INNERMSGCOMMAND",
                &sender,
                "run1",
                "RG_NetworkTest",
                "test"
            ]
        ),
        Reply::err("ERR wrong number of arguments for 'rg.innermsgcommand' command")
    );
    let stranger = "f".repeat(40);
    assert_eq!(
        cmd(
            &mut a,
            &[
                "RG.INNERMSGCOMMAND",
                &stranger,
                "r",
                "RG_NetworkTest",
                "test",
                "0"
            ]
        ),
        Reply::err(&format!("ERRCLUSTER unknown sender {stranger}"))
    );
    assert_eq!(received(&mut a), before + 1);
}

#[test]
fn a_password_protected_cluster_connects_with_masterauth() {
    let cluster = Cluster::start_with(3, Some("s3cret"));
    let mut a = cluster.nodes[0].con();
    assert_eq!(cmd(&mut a, &["RG.NETWORKTEST"]), Reply::ok());
    for node in &cluster.nodes[1..] {
        let mut con = node.con();
        eventually("the test message", || received(&mut con) == 1);
    }
}

#[test]
fn outside_a_cluster_and_with_a_managers_topology() {
    let server = Server::start();
    let mut con = server.con();
    assert_eq!(
        cmd(&mut con, &["RG.INFOCLUSTER"]),
        Reply::bulk("no cluster mode")
    );
    assert_eq!(
        cmd(&mut con, &["RG.HELLO"]),
        Reply::err("ERRCLUSTER NULL cluster state on hello msg")
    );
    assert_eq!(
        cmd(&mut con, &["RG.INNERMSGCOMMAND", "a", "b", "c", "d", "0"]),
        Reply::err("ERRCLUSTER NULL cluster state")
    );
    assert_eq!(cmd(&mut con, &["RG.REFRESHCLUSTER"]), Reply::ok());
    assert_eq!(
        cmd(&mut con, &["RG.INFOCLUSTER"]),
        Reply::bulk("no cluster mode")
    );
    assert_eq!(text(&cmd(&mut con, &["RG.HELLO"])).len(), 40);
    assert_eq!(
        cmd(&mut con, &["RG.CLUSTERSET", "a", "b"]),
        Reply::err("Could not parse cluster set arguments")
    );
    // A manager's topology of two shards, the other one down: its messages wait.
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let me = format!("password@127.0.0.1:{}", server.port);
    let other = format!("password@127.0.0.1:{down}");
    let set = [
        "RG.CLUSTERSET",
        "NO-USED",
        "NO-USED",
        "NO-USED",
        "NO-USED",
        "NO-USED",
        "1",
        "NO-USED",
        "2",
        "NO-USED",
        "1",
        "NO-USED",
        "0",
        "8192",
        "NO-USED",
        &me,
        "NO-USED",
        "NO-USED",
        "2",
        "NO-USED",
        "8193",
        "16383",
        "NO-USED",
        &other,
    ];
    assert_eq!(cmd(&mut con, &set), Reply::ok());
    let info = cmd(&mut con, &["RG.INFOCLUSTER"]);
    assert_eq!(
        info.items()[1],
        Reply::bulk("0000000000000000000000000000000000000001")
    );
    let peer = "0000000000000000000000000000000000000002";
    let entries = shard_entries(&mut con);
    let peer_entry = entries
        .iter()
        .find(|e| text(field(e, "id")) == peer)
        .unwrap();
    assert_eq!(field(peer_entry, "runid"), &Reply::Nil);
    assert_eq!(int(field(peer_entry, "minHslot")), 8193);
    cmd(&mut con, &["RG.NETWORKTEST"]);
    cmd(&mut con, &["RG.NETWORKTEST"]);
    assert_eq!(pending(&mut con, peer), 2);
    // A peer's forwarded topology does not replace one this shard has.
    let mut from_shard = set.to_vec();
    from_shard[0] = "RG.CLUSTERSETFROMSHARD";
    from_shard[6] = "2";
    assert_eq!(cmd(&mut con, &from_shard), Reply::ok());
    assert_eq!(
        cmd(&mut con, &["RG.INFOCLUSTER"]).items()[1],
        Reply::bulk("0000000000000000000000000000000000000001")
    );
    // hashtag() is shard 1's first slot's.
    let tag = pyexecute(
        &mut con,
        "GB('ShardsIDReader').map(lambda r: hashtag()).run()",
        &[],
    );
    assert_eq!(tag.items()[0], Reply::bulks(&["06S"]));
}

#[test]
fn slot_moves_are_picked_up_without_a_refresh() {
    let cluster = Cluster::start(3);
    let mut cons: Vec<redis::Connection> = cluster.nodes.iter().map(|n| n.con()).collect();
    let run_ids: Vec<Reply> = cons
        .iter_mut()
        .map(|c| cmd(c, &["RG.INFOCLUSTER"]).items()[3].clone())
        .collect();
    let ids: Vec<String> = cons
        .iter_mut()
        .map(|c| text(&cmd(c, &["CLUSTER", "MYID"])))
        .collect();
    redis_cli(&[
        "--cluster",
        "reshard",
        &format!("127.0.0.1:{}", cluster.nodes[0].port),
        "--cluster-from",
        &ids[0],
        "--cluster-to",
        &ids[1],
        "--cluster-slots",
        "100",
        "--cluster-yes",
    ]);
    // Every shard reads the new slots (a new run id) and its peers learn it.
    for (con, before) in cons.iter_mut().zip(&run_ids) {
        eventually("a new topology", || {
            cmd(con, &["RG.INFOCLUSTER"]).items()[3] != *before
        });
    }
    cluster.wait_ready();
    let entries = shard_entries(&mut cons[2]);
    let first = entries
        .iter()
        .find(|e| text(field(e, "id")) == ids[0])
        .unwrap();
    assert_ne!(int(field(first, "minHslot")), 0, "slot 0 moved away");
}

#[test]
fn a_slow_peer_does_not_hold_up_the_sender() {
    let cluster = Cluster::start(3);
    let mut a = cluster.nodes[0].con();
    let mut b = cluster.nodes[1].con();
    // B sleeps on its main thread (DEBUG SLEEP blocks it); A keeps serving meanwhile.
    let sleeper = std::thread::spawn({
        let mut con = cluster.nodes[1].con();
        move || cmd(&mut con, &["DEBUG", "SLEEP", "2"])
    });
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    for _ in 0..3 {
        assert_eq!(cmd(&mut a, &["RG.NETWORKTEST"]), Reply::ok());
    }
    assert_eq!(cmd(&mut a, &["PING"]), Reply::Simple("PONG".into()));
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "the sender waited for the sleeping peer"
    );
    assert_eq!(sleeper.join().unwrap(), Reply::ok());
    eventually("the three messages after the sleep", || {
        received(&mut b) == 3
    });
}
