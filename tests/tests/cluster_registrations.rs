//! Cluster part 3, registrations (sessions-and-cluster.md A.4, C.6): a session's registrations
//! made on one shard of a real 3-node cluster are made on every shard, fire there on that
//! shard's events, and an RG.UNREGISTER on any shard removes them everywhere.

use std::time::{Duration, Instant};

use e2e::{cmd, pyexecute, Cluster, Reply};

fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn registration_ids(con: &mut redis::Connection) -> Vec<String> {
    cmd(con, &["RG.DUMPREGISTRATIONS"])
        .items()
        .iter()
        .map(|r| r.items()[1].as_str().to_string())
        .collect()
}

/// The `fired{<tag>}` counter of each node (its own hash tag keeps it on that node).
fn fired(con: &mut redis::Connection) -> i64 {
    let reply = pyexecute(
        con,
        "GB('ShardsIDReader').map(lambda r: execute('GET', 'fired{%s}' % hashtag()) or '0').run(mode='async_local')",
        &[],
    );
    reply.items()[0].items()[0].as_str().parse().unwrap()
}

#[test]
fn a_registration_made_on_one_shard_fires_on_every_shard() {
    let cluster = Cluster::start(3);
    let mut cons: Vec<redis::Connection> = cluster.nodes.iter().map(|n| n.con()).collect();
    let script = "
GB().foreach(lambda r: execute('INCR', 'fired{%s}' % hashtag())).register(prefix='user:*', mode='sync', eventTypes=['set'])";
    assert_eq!(
        pyexecute(&mut cons[1], script, &["ID", "counter"]),
        Reply::ok()
    );
    let ids = registration_ids(&mut cons[1]);
    assert_eq!(ids.len(), 1);
    for con in cons.iter_mut() {
        eventually("the registration on every shard", || {
            registration_ids(con) == ids
        });
        let sessions = cmd(con, &["RG.PYDUMPSESSIONS"]);
        assert_eq!(sessions.items().len(), 1, "{sessions:?}");
    }
    // Each shard's keys fire that shard's copy.
    let pairs: Vec<(String, String)> = (0..90)
        .map(|i| (format!("user:{i}"), i.to_string()))
        .collect();
    cluster.set_all(&pairs);
    let counts: Vec<i64> = cons.iter_mut().map(fired).collect();
    assert_eq!(counts.iter().sum::<i64>(), 90, "{counts:?}");
    assert!(counts.iter().all(|&c| c > 0), "{counts:?}");

    // UNREGISTER on another shard removes it everywhere.
    assert_eq!(cmd(&mut cons[2], &["RG.UNREGISTER", &ids[0]]), Reply::ok());
    for con in cons.iter_mut() {
        eventually("unregistered everywhere", || {
            registration_ids(con).is_empty()
        });
    }
    cluster.set_all(&pairs);
    let after: Vec<i64> = cons.iter_mut().map(fired).collect();
    assert_eq!(after, counts);
}
