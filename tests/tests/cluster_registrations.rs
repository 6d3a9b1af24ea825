//! Cluster part 3, registrations (sessions-and-cluster.md A.4, C.6): a session's registrations
//! made on one shard of a real 3-node cluster are made on every shard, fire there on that
//! shard's events, a node that joins later gets them, and an RG.UNREGISTER on any shard removes
//! them everywhere.

use e2e::{cmd, eventually, pyexecute, registration_ids, registration_stat, Cluster, Reply};

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

/// The ids of a node's live sessions, with each one's registration ids.
fn sessions(con: &mut redis::Connection) -> Vec<(String, Vec<String>)> {
    cmd(con, &["RG.PYDUMPSESSIONS"])
        .items()
        .iter()
        .map(|s| {
            let fields = s.items();
            let ids = fields[15].items().iter().map(|i| i.as_str().to_string());
            (fields[1].as_str().to_string(), ids.collect())
        })
        .collect()
}

#[test]
fn upgrades_and_replacements_reach_every_shard_before_the_reply() {
    let cluster = Cluster::start(3);
    let mut cons: Vec<redis::Connection> = cluster.nodes.iter().map(|n| n.con()).collect();
    let script = |version: &str| {
        format!("GB().foreach(lambda r: execute('SET', 'ver{{%s}}' % hashtag(), '{version}')).register(prefix='user:*', mode='sync')")
    };
    // Every shard has it when the client hears OK: no waiting needed.
    let same_everywhere = |cons: &mut Vec<redis::Connection>| {
        let first = sessions(&mut cons[0]);
        for con in cons.iter_mut() {
            assert_eq!(sessions(con), first);
            assert_eq!(registration_ids(con), first[0].1);
        }
        first
    };
    assert_eq!(
        pyexecute(&mut cons[0], &script("v1"), &["ID", "s"]),
        Reply::ok()
    );
    let v1 = same_everywhere(&mut cons);
    assert_eq!(v1[0].0, "s");

    // UPGRADE from another shard: the new registration replaces the old one on every shard.
    assert_eq!(
        pyexecute(&mut cons[1], &script("v2"), &["ID", "s", "UPGRADE"]),
        Reply::ok()
    );
    let v2 = same_everywhere(&mut cons);
    assert_eq!(v2.len(), 1);
    assert_ne!(v2[0].1, v1[0].1);
    let pairs: Vec<(String, String)> = (0..60)
        .map(|i| (format!("user:{i}"), i.to_string()))
        .collect();
    cluster.set_all(&pairs);
    for con in cons.iter_mut() {
        let versions = cmd(con, &["KEYS", "ver*"]);
        assert_eq!(versions.items().len(), 1, "{versions:?}");
        assert_eq!(
            cmd(con, &["GET", versions.items()[0].as_str()]),
            Reply::bulk("v2")
        );
    }

    // REPLACE_WITH from a third shard: session t takes s's place everywhere.
    assert_eq!(
        pyexecute(
            &mut cons[2],
            &script("v3"),
            &["ID", "t", "REPLACE_WITH", "s"]
        ),
        Reply::ok()
    );
    let v3 = same_everywhere(&mut cons);
    assert_eq!(v3.len(), 1);
    assert_eq!(v3[0].0, "t");

    // A trigger upgraded from another shard: validated on each shard against what the upgrade
    // leaves, not against the registration it replaces.
    let trigger = "GB('CommandReader').map(lambda x: 'one').register(trigger='which')";
    assert_eq!(
        pyexecute(&mut cons[0], trigger, &["ID", "trig"]),
        Reply::ok()
    );
    let upgraded = "GB('CommandReader').map(lambda x: 'two').register(trigger='which')";
    assert_eq!(
        pyexecute(&mut cons[2], upgraded, &["ID", "trig", "UPGRADE"]),
        Reply::ok()
    );
    for con in cons.iter_mut() {
        assert_eq!(cmd(con, &["RG.TRIGGER", "which"]), Reply::bulks(&["two"]));
    }

    // A shard that does not answer within PythonInstallReqMaxIdleTime is named in the reply; it
    // applies the batch once it runs again.
    let mut con = cons.remove(0);
    cmd(
        &mut con,
        &["RG.CONFIGSET", "PythonInstallReqMaxIdleTime", "1000"],
    );
    let silent = cmd(&mut cons[1], &["CLUSTER", "MYID"]).as_str().to_string();
    let pid = cluster.nodes[2].pid().to_string();
    let signal = |name: &str| {
        let status = std::process::Command::new("kill")
            .args([name, &pid])
            .status()
            .unwrap();
        assert!(status.success());
    };
    signal("-STOP");
    let reply = pyexecute(&mut con, &script("v4"), &["ID", "u"]);
    signal("-CONT");
    assert_eq!(
        reply,
        Reply::Arr(vec![Reply::err(&format!(
            "Execution max idle reached, no answer from shard {silent}"
        ))])
    );
    let mut on_0 = sessions(&mut con);
    on_0.sort();
    assert_eq!(on_0.len(), 3);
    eventually("the late shard applies the batch", || {
        let mut late = sessions(&mut cons[1]);
        late.sort();
        late == on_0
    });
}
