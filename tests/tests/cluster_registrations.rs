//! Cluster part 3, registrations (sessions-and-cluster.md A.4, C.6): a session's registrations
//! made on one shard of a real 3-node cluster are made on every shard, fire there on that
//! shard's events, a node that joins later gets them, and an RG.UNREGISTER on any shard removes
//! them everywhere.

use e2e::{cmd, eventually, pyexecute, registration_stat, Cluster, Reply};

fn registration_ids(con: &mut redis::Connection) -> Vec<String> {
    cmd(con, &["RG.DUMPREGISTRATIONS"])
        .items()
        .iter()
        .map(|r| r.items()[1].as_str().to_string())
        .collect()
}

/// How many times a node's copy of the registration fired.
fn fired(con: &mut redis::Connection) -> i64 {
    match registration_stat(con, "numTriggered") {
        Reply::Int(n) => n,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_registration_made_on_one_shard_fires_on_every_shard() {
    let mut cluster = Cluster::start(3);
    let mut cons: Vec<redis::Connection> = cluster.nodes.iter().map(|n| n.con()).collect();
    // Each firing counts on its own shard (the statistics say how often each copy fired).
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

    // A node that joins later gets the registration, and it fires there too.
    let added = cluster.add_node();
    let mut new_con = cluster.nodes[added].con();
    eventually("the registration on the new node", || {
        registration_ids(&mut new_con) == ids
    });
    cons.push(new_con);
    cluster.set_all(&pairs);
    let with_new: Vec<i64> = cons.iter_mut().map(fired).collect();
    assert_eq!(with_new.iter().sum::<i64>(), 180, "{with_new:?}");
    assert!(with_new[3] > 0, "{with_new:?}");
    let counts = with_new;

    // UNREGISTER on another shard removes it everywhere.
    assert_eq!(cmd(&mut cons[2], &["RG.UNREGISTER", &ids[0]]), Reply::ok());
    for con in cons.iter_mut() {
        eventually("unregistered everywhere", || {
            registration_ids(con).is_empty()
        });
    }
    // Nothing fires any more: the counters stay where they were.
    let counter_total = |cons: &mut Vec<redis::Connection>| -> i64 {
        cons.iter_mut()
            .map(|c| {
                let keys = cmd(c, &["KEYS", "fired*"]);
                keys.items()
                    .iter()
                    .map(|k| {
                        cmd(c, &["GET", k.as_str()])
                            .as_str()
                            .parse::<i64>()
                            .unwrap()
                    })
                    .sum::<i64>()
            })
            .sum()
    };
    let before = counter_total(&mut cons);
    assert_eq!(before, counts.iter().sum::<i64>());
    cluster.set_all(&pairs);
    assert_eq!(counter_total(&mut cons), before);
}
