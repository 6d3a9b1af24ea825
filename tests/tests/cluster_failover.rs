//! Cluster part 3, failover: in a cluster with a replica per primary, the replicas hold the
//! sessions, registrations and requirements of their primary (replicated), do not fire, and a
//! replica promoted by a failover serves all of them and fires in its primary's place.

#[path = "../../reqs-manager/tests/support/mod.rs"]
mod support;

use e2e::{cmd, eventually, is_primary, pyexecute, registration_stat, Cluster, Reply};
use support::{wheel, Format, TestIndex};

fn fired(con: &mut redis::Connection) -> i64 {
    match registration_stat(con, "numTriggered") {
        Reply::Int(n) => n,
        other => panic!("{other:?}"),
    }
}

fn port_of_primary(replica: &mut redis::Connection) -> i64 {
    match &cmd(replica, &["ROLE"]).items()[2] {
        Reply::Int(port) => *port,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_promoted_replica_serves_sessions_registrations_and_requirements() {
    let index = TestIndex::start(Format::Json);
    index.add(&wheel("app", "1.0"));
    let cache = tempfile::tempdir().unwrap();
    let cluster = Cluster::start_with_replicas(
        3,
        &[
            "RequirementsIndexUrl",
            &index.url,
            "WheelsCacheDir",
            cache.path().to_str().unwrap(),
        ],
    );
    let mut cons: Vec<redis::Connection> = cluster.nodes.iter().map(|n| n.con()).collect();
    let primaries: Vec<usize> = (0..cons.len())
        .filter(|&i| is_primary(&mut cons[i]))
        .collect();
    assert_eq!(primaries.len(), 3);
    let replicas: Vec<usize> = (0..cons.len()).filter(|i| !primaries.contains(i)).collect();

    let script = "
import app
GB().foreach(lambda r: execute('INCR', 'fired{%s}' % hashtag())).register(prefix='user:*', mode='sync')";
    assert_eq!(
        pyexecute(
            &mut cons[primaries[0]],
            script,
            &["ID", "s", "REQUIREMENTS", "app"]
        ),
        Reply::ok()
    );
    // Primaries got it from the shard, replicas from their primary.
    for con in cons.iter_mut() {
        eventually("the registration and requirement on every node", || {
            cmd(con, &["RG.DUMPREGISTRATIONS"]).items().len() == 1
                && cmd(con, &["RG.PYDUMPREQS"]).items().len() == 1
        });
    }
    let pairs: Vec<(String, String)> = (0..60)
        .map(|i| (format!("user:{i}"), i.to_string()))
        .collect();
    cluster.set_all(&pairs);
    let on_primaries: i64 = primaries.iter().map(|&i| fired(&mut cons[i])).sum();
    assert_eq!(on_primaries, 60);
    for &i in &replicas {
        // The replica has the writes (and the counters the primaries wrote), fires nothing.
        let port = port_of_primary(&mut cons[i]);
        let primary = (0..cluster.nodes.len())
            .find(|&p| i64::from(cluster.nodes[p].port) == port)
            .unwrap();
        let size = cmd(&mut cons[primary], &["DBSIZE"]);
        eventually("the replica caught up", || {
            cmd(&mut cons[i], &["DBSIZE"]) == size
        });
        assert_eq!(fired(&mut cons[i]), 0);
    }

    // The replica of the second primary takes over.
    let old = primaries[1];
    let old_port = i64::from(cluster.nodes[old].port);
    let promoted = *replicas
        .iter()
        .find(|&&i| port_of_primary(&mut cons[i]) == old_port)
        .expect("a replica of that primary");
    assert_eq!(
        cmd(&mut cons[promoted], &["CLUSTER", "FAILOVER"]),
        Reply::ok()
    );
    eventually("the failover", || {
        is_primary(&mut cons[promoted]) && !is_primary(&mut cons[old])
    });
    let promoted_port = i64::from(cluster.nodes[promoted].port);
    for con in cons.iter_mut() {
        eventually("every node sees the new primary", || {
            cmd(con, &["CLUSTER", "SLOTS"])
                .items()
                .iter()
                .any(|r| r.items()[2].items()[1] == Reply::Int(promoted_port))
        });
    }
    cluster.wait_ready();

    // Writes now fire on the promoted node, not on the old primary.
    let old_fired = fired(&mut cons[old]);
    let new_primaries = [primaries[0], primaries[2], promoted];
    let before: i64 = new_primaries.iter().map(|&i| fired(&mut cons[i])).sum();
    cluster.set_all(&pairs);
    let after: i64 = new_primaries.iter().map(|&i| fired(&mut cons[i])).sum();
    assert_eq!(after - before, 60, "the three primaries fired once per key");
    assert!(fired(&mut cons[promoted]) > 0);
    assert_eq!(fired(&mut cons[old]), old_fired);

    // The promoted node has the session, imports the requirement, and runs over the cluster.
    let session = cmd(&mut cons[promoted], &["RG.PYDUMPSESSIONS"]);
    assert_eq!(
        session.items()[0].items()[1],
        Reply::bulk("s"),
        "{session:?}"
    );
    let versions = pyexecute(
        &mut cons[promoted],
        "GB('ShardsIDReader').map(lambda x: __import__('app').VERSION).run()",
        &[],
    );
    assert_eq!(
        versions.items()[0].sorted_strings(),
        ["1.0", "1.0", "1.0"],
        "{versions:?}"
    );
    // A registration made on it reaches the other primaries, and their replicas.
    assert_eq!(
        pyexecute(
            &mut cons[promoted],
            "GB().register(prefix='other:*')",
            &["ID", "t"]
        ),
        Reply::ok()
    );
    for con in cons.iter_mut() {
        eventually("the new registration on every node", || {
            cmd(con, &["RG.DUMPREGISTRATIONS"]).items().len() == 2
        });
    }
}
