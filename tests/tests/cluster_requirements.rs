//! Cluster part 3, requirements (requirements.md §4): a session's requirements installed on one
//! shard reach every other shard with its registrations: the wheels are sent from the shard
//! that downloaded them, in pieces, checked against their sha256 on arrival, and installed there,
//! so only that shard needs the index. A node that joins later gets them too.

#[path = "../../reqs-manager/tests/support/mod.rs"]
mod support;

use e2e::{cmd, eventually, pyexecute, Cluster, Reply};
use support::{wheel, Format, TestIndex};

/// Nothing listens there: a shard configured with it cannot download anything.
const NO_INDEX: &str = "http://127.0.0.1:9/simple/";

fn requirement_names(con: &mut redis::Connection) -> Vec<String> {
    let mut names: Vec<String> = cmd(con, &["RG.PYDUMPREQS"])
        .items()
        .iter()
        .map(|r| r.items()[3].as_str().to_string())
        .collect();
    names.sort();
    names
}

/// A cluster whose nodes have no index, but node 0, which reads `index`.
fn cluster_with_index_on_node_0(index: &TestIndex, cache: &std::path::Path) -> Cluster {
    let cache = cache.to_str().unwrap();
    let cluster = Cluster::start_configured(
        3,
        None,
        &["RequirementsIndexUrl", NO_INDEX, "WheelsCacheDir", cache],
    );
    let mut con = cluster.nodes[0].con();
    assert_eq!(
        cmd(
            &mut con,
            &["RG.CONFIGSET", "RequirementsIndexUrl", &index.url]
        ),
        Reply::Arr(vec![Reply::Simple(
            "OK - value was saved in extra config dictionary".into()
        )])
    );
    cluster
}

#[test]
fn requirements_reach_every_shard_from_the_one_with_the_index() {
    let index = TestIndex::start(Format::Json);
    index.add(&wheel("tiny", "0.2"));
    index.add(&wheel("app", "1.0").requires(&["tiny"]));
    index.add(&wheel("other", "2.0"));
    let cache = tempfile::tempdir().unwrap();
    let mut cluster = cluster_with_index_on_node_0(&index, cache.path());
    let mut cons: Vec<redis::Connection> = cluster.nodes.iter().map(|n| n.con()).collect();

    // Node 1 cannot reach an index.
    let refused = pyexecute(&mut cons[1], "GB().run()", &["REQUIREMENTS", "app"]);
    assert!(
        matches!(&refused, Reply::Err(e) if e.starts_with("Could not satisfy requirements")),
        "{refused:?}"
    );

    // A run's requirements travel with it: every shard's part imports them.
    let versions = pyexecute(
        &mut cons[0],
        "GB('ShardsIDReader').map(lambda x: __import__('other').VERSION).run()",
        &["REQUIREMENTS", "other"],
    );
    assert_eq!(
        versions.items()[0].sorted_strings(),
        ["2.0", "2.0", "2.0"],
        "{versions:?}"
    );
    for con in cons.iter_mut() {
        assert_eq!(requirement_names(con), ["other"]);
    }

    // Registered from node 0: every shard gets the registration and the packages.
    let script = "
import app, tiny
GB().foreach(lambda r: execute('SET', 'seen{%s}' % hashtag(), app.VERSION + '/' + tiny.VERSION)).register(prefix='user:*', mode='sync')";
    assert_eq!(
        pyexecute(
            &mut cons[0],
            script,
            &["ID", "withapp", "REQUIREMENTS", "app"]
        ),
        Reply::ok()
    );
    for con in cons.iter_mut() {
        eventually("the requirement and registration on every shard", || {
            requirement_names(con) == ["app", "other"]
                && cmd(con, &["RG.DUMPREGISTRATIONS"]).items().len() == 1
        });
    }
    // Each shard's copy imports them when it fires.
    let pairs: Vec<(String, String)> = (0..60)
        .map(|i| (format!("user:{i}"), i.to_string()))
        .collect();
    cluster.set_all(&pairs);
    for con in cons.iter_mut() {
        let tag = pyexecute(
            con,
            "GB('ShardsIDReader').map(lambda x: hashtag()).run(mode='async_local')",
            &[],
        );
        let tag = tag.items()[0].items()[0].as_str().to_string();
        assert_eq!(
            cmd(con, &["GET", &format!("seen{{{tag}}}")]),
            Reply::bulk("1.0/0.2")
        );
    }
    // A run started on node 2 imports them on every shard.
    let versions = pyexecute(
        &mut cons[2],
        "GB('ShardsIDReader').map(lambda x: __import__('app').VERSION).run()",
        &[],
    );
    assert_eq!(
        versions.items()[0].sorted_strings(),
        ["1.0", "1.0", "1.0"],
        "{versions:?}"
    );
    // Only node 0 asked the index.
    assert!(index.requests().iter().any(|r| r.contains("app")));

    // A node that joins gets the requirement with the registration.
    let added = cluster.add_node();
    let mut new_con = cluster.nodes[added].con();
    eventually("the requirement on the new node", || {
        // The run's requirement is not a registration's: it stays where the run went.
        requirement_names(&mut new_con) == ["app"]
            && cmd(&mut new_con, &["RG.DUMPREGISTRATIONS"]).items().len() == 1
    });
    let imported = pyexecute(
        &mut new_con,
        "GB('ShardsIDReader').map(lambda x: __import__('tiny').VERSION).run(mode='async_local')",
        &[],
    );
    assert_eq!(imported.items()[0], Reply::bulks(&["0.2"]), "{imported:?}");
}

/// `RG_InnerReqPut` / `RG_InnerReqDone` payloads as a shard sends them.
fn piece(name: &str, wheel: &str, offset: u64, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put(&mut out, name.as_bytes());
    put(&mut out, wheel.as_bytes());
    out.extend_from_slice(&offset.to_le_bytes());
    put(&mut out, bytes);
    out
}

fn done(name: &str, wheels: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    put(&mut out, name.as_bytes());
    out.extend_from_slice(&(wheels.len() as u32).to_le_bytes());
    for (wheel, sha256) in wheels {
        put(&mut out, wheel.as_bytes());
        put(&mut out, sha256.as_bytes());
    }
    out
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn wheels_from_another_shard_are_checked_before_they_are_installed() {
    let cluster = Cluster::start(3);
    let sender = cmd(&mut cluster.nodes[0].con(), &["CLUSTER", "MYID"])
        .as_str()
        .to_string();
    let node = &cluster.nodes[1];
    let mut con = node.con();
    let mut id = 0;
    let mut send = |con: &mut redis::Connection, function: &str, payload: Vec<u8>| {
        id += 1;
        let reply = e2e::call(
            con,
            &[
                b"RG.INNERMSGCOMMAND",
                sender.as_bytes(),
                b"forged-run",
                function.as_bytes(),
                &payload,
                id.to_string().as_bytes(),
            ],
        );
        assert_eq!(reply, Reply::Simple("OK".into()));
    };
    let good = wheel("good", "1.0").build();
    let good_name = wheel("good", "1.0").filename();

    // Bytes changed on the way: refused, nothing listed.
    let mut changed = good.clone();
    let last = changed.len() - 1;
    changed[last] ^= 0xff;
    send(
        &mut con,
        "RG_InnerReqPut",
        piece("good", &good_name, 0, &changed),
    );
    send(
        &mut con,
        "RG_InnerReqDone",
        done("good", &[(&good_name, &sha256(&good))]),
    );
    // A wheel that is not one, with its true digest: refused by the installer.
    let junk = b"not a zip archive".to_vec();
    let junk_name = "junk-1.0-py3-none-any.whl";
    send(
        &mut con,
        "RG_InnerReqPut",
        piece("junk", junk_name, 0, &junk),
    );
    send(
        &mut con,
        "RG_InnerReqDone",
        done("junk", &[(junk_name, &sha256(&junk))]),
    );
    // A name that would leave its directory.
    send(
        &mut con,
        "RG_InnerReqPut",
        piece("evil", "../../evil.whl", 0, &good),
    );
    // Pieces out of order.
    send(
        &mut con,
        "RG_InnerReqPut",
        piece("gap", &good_name, 100, &good),
    );
    // Truncated messages.
    send(&mut con, "RG_InnerReqDone", vec![1, 2, 3]);

    eventually("every forged message handled", || {
        let log = node.log();
        log.contains("arrived with sha256")
            && log.contains("installing requirement 'junk' failed")
            && log.contains("bad wheel name '../../evil.whl'")
            && log.contains("piece at offset 100, but 0 bytes arrived")
    });
    assert_eq!(requirement_names(&mut con), Vec::<String>::new());

    // The same wheel, intact, is installed and importable.
    send(
        &mut con,
        "RG_InnerReqPut",
        piece("good", &good_name, 0, &good),
    );
    send(
        &mut con,
        "RG_InnerReqDone",
        done("good", &[(&good_name, &sha256(&good))]),
    );
    eventually("the intact wheel installed", || {
        requirement_names(&mut con) == ["good"]
    });
    let imported = pyexecute(
        &mut con,
        "GB('ShardsIDReader').map(lambda x: __import__('good').VERSION).run(mode='async_local')",
        &[],
    );
    assert_eq!(imported.items()[0], Reply::bulks(&["1.0"]), "{imported:?}");
    // The node still serves, and so does the cluster.
    cluster.wait_ready();
}

#[test]
fn a_shard_that_cannot_install_answers_with_the_reason() {
    let index = TestIndex::start(Format::Json);
    index.add(&wheel("app", "1.0"));
    let cache = tempfile::tempdir().unwrap();
    let cluster = cluster_with_index_on_node_0(&index, cache.path());
    let mut cons: Vec<redis::Connection> = cluster.nodes.iter().map(|n| n.con()).collect();
    // Node 2's requirements directory is a file: nothing can be written there.
    let dir = cmd(&mut cons[2], &["CONFIG", "GET", "dir"]).items()[1]
        .as_str()
        .to_string();
    let requirements = std::path::Path::new(&dir).join("gears-rs/requirements");
    let _ = std::fs::remove_dir_all(&requirements);
    std::fs::create_dir_all(requirements.parent().unwrap()).unwrap();
    std::fs::write(&requirements, "not a directory").unwrap();
    let node_2 = cmd(&mut cons[2], &["CLUSTER", "MYID"]).as_str().to_string();

    let reply = pyexecute(
        &mut cons[0],
        "import app\nGB().register(prefix='user:*', mode='sync')",
        &["ID", "withapp", "REQUIREMENTS", "app"],
    );
    // One error, naming node 2 and why; the others applied the batch.
    let Reply::Arr(errors) = &reply else {
        panic!("{reply:?}")
    };
    assert_eq!(errors.len(), 1, "{reply:?}");
    let Reply::Err(text) = &errors[0] else {
        panic!("{reply:?}")
    };
    let expected = format!(
        "-ERR shard-{node_2}: Failed deserializing session, Failed installing requirements on shard, please check shard logs for more details. (app: "
    );
    assert!(text.starts_with(&expected), "{text}");
    for con in &mut cons[..2] {
        assert_eq!(cmd(con, &["RG.DUMPREGISTRATIONS"]).items().len(), 1);
        assert_eq!(cmd(con, &["RG.PYDUMPSESSIONS"]).items().len(), 1);
    }
    // Node 2 is left as it was: no registration, no session, no requirement.
    assert_eq!(
        cmd(&mut cons[2], &["RG.DUMPREGISTRATIONS"]),
        Reply::Arr(vec![])
    );
    assert_eq!(
        cmd(&mut cons[2], &["RG.PYDUMPSESSIONS"]),
        Reply::Arr(vec![])
    );
    assert_eq!(requirement_names(&mut cons[2]), Vec::<String>::new());
    cluster.wait_ready();
}
