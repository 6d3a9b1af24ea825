//! REQUIREMENTS in the module: installed by our reqs-manager from a real HTTP index on 127.0.0.1
//! (wheels built by the tests), imported by scripts and steps, shared between sessions,
//! reinstalled with FORCE_REINSTALL_REQUIREMENTS, listed by RG.PYDUMPREQS.

#[path = "../../reqs-manager/tests/support/mod.rs"]
mod support;

use e2e::{cmd, pyexecute, Reply, Server};
use support::{wheel, Format, TestIndex};

struct Setup {
    index: TestIndex,
    _cache: tempfile::TempDir,
    server: Server,
}

fn setup() -> Setup {
    let index = TestIndex::start(Format::Json);
    index.add(&wheel("tiny", "0.1"));
    index.add(&wheel("tiny", "0.2"));
    index.add(&wheel("app", "1.0").requires(&["tiny>=0.2"]));
    let cache = tempfile::tempdir().unwrap();
    let server = Server::with_index(&index.url, cache.path());
    Setup {
        index,
        _cache: cache,
        server,
    }
}

const VERSION_OF_TINY: &str =
    "GB('ShardsIDReader').map(lambda x: __import__('tiny').VERSION).run()";

fn downloads(index: &TestIndex) -> usize {
    index
        .requests()
        .iter()
        .filter(|p| p.starts_with("/files/"))
        .count()
}

/// The value of `key` in a flat key/value reply.
fn field<'a>(entry: &'a Reply, key: &str) -> &'a Reply {
    let items = entry.items();
    let at = items
        .iter()
        .position(|r| matches!(r, Reply::Bulk(b) if b == key.as_bytes()))
        .unwrap_or_else(|| panic!("{key} in {entry:?}"));
    &items[at + 1]
}

#[test]
fn requirements_install_import_and_are_reused() {
    let s = setup();
    let mut con = s.server.con();
    let reply = pyexecute(&mut con, VERSION_OF_TINY, &["REQUIREMENTS", "app"]);
    assert_eq!(reply, Reply::results(&["0.2"], &[]));

    // RG.PYDUMPREQS: the spec's 18-element entry.
    let reqs = cmd(&mut con, &["RG.PYDUMPREQS"]);
    assert_eq!(reqs.items().len(), 1);
    let entry = &reqs.items()[0];
    assert_eq!(entry.items().len(), 18);
    let keys: Vec<&str> = entry
        .items()
        .iter()
        .step_by(2)
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "GearReqVersion",
            "Name",
            "IsDownloaded",
            "IsInstalled",
            "CompiledOs",
            "Wheels",
            "Path",
            "RefCount",
            "IsInReqDictionary"
        ]
    );
    assert_eq!(field(entry, "GearReqVersion"), &Reply::Int(2));
    assert_eq!(field(entry, "Name"), &Reply::bulk("app"));
    assert_eq!(field(entry, "IsDownloaded"), &Reply::bulk("yes"));
    assert_eq!(field(entry, "IsInstalled"), &Reply::bulk("yes"));
    assert!(field(entry, "CompiledOs").as_str().starts_with("linux-"));
    let mut wheels = field(entry, "Wheels").sorted_strings();
    wheels.sort();
    assert_eq!(
        wheels,
        ["app-1.0-py3-none-any.whl", "tiny-0.2-py3-none-any.whl"]
    );
    let path = field(entry, "Path").as_str().to_string();
    assert!(
        std::path::Path::new(&path)
            .join("app-1.0-py3-none-any.whl")
            .exists(),
        "{path}"
    );
    assert_eq!(field(entry, "IsInReqDictionary"), &Reply::bulk("yes"));
    let fetched = downloads(&s.index);
    let info = match cmd(&mut con, &["INFO", "rg_python_requirements"]) {
        Reply::Bulk(b) => String::from_utf8(b).unwrap(),
        other => panic!("{other:?}"),
    };
    assert!(
        info.contains("app:IsDownloaded=yes,IsInstalled=yes,"),
        "{info}"
    );

    // A second script with the same requirement reuses it: nothing downloaded, same Path.
    let reply = pyexecute(
        &mut con,
        "GB('ShardsIDReader').map(lambda x: __import__('app').VERSION).run()",
        &["REQUIREMENTS", "app"],
    );
    assert_eq!(reply, Reply::results(&["1.0"], &[]));
    assert_eq!(downloads(&s.index), fetched);
    let entry = &cmd(&mut con, &["RG.PYDUMPREQS"]).items()[0].clone();
    assert_eq!(field(entry, "Path").as_str(), path);

    // A registered session holds it and shows it, VERBOSE as the PYDUMPREQS entry.
    let reply = pyexecute(
        &mut con,
        "GB().foreach(lambda r: __import__('tiny')).register(prefix='x*')",
        &["ID", "holder", "REQUIREMENTS", "app"],
    );
    assert_eq!(reply, Reply::ok());
    let sessions = cmd(&mut con, &["RG.PYDUMPSESSIONS", "SESSIONS", "holder"]);
    let session = &sessions.items()[0];
    assert_eq!(
        field(session, "requirementInstallationNeeded"),
        &Reply::Int(0)
    );
    assert_eq!(field(session, "requirements"), &Reply::bulks(&["app"]));
    let verbose = cmd(
        &mut con,
        &["RG.PYDUMPSESSIONS", "VERBOSE", "SESSIONS", "holder"],
    );
    let listed = field(&verbose.items()[0], "requirements");
    assert_eq!(listed.items().len(), 1);
    assert_eq!(field(&listed.items()[0], "Name"), &Reply::bulk("app"));
    assert_eq!(field(&listed.items()[0], "RefCount"), &Reply::Int(2));
}

#[test]
fn force_reinstall_switches_versions_in_a_running_server() {
    let s = setup();
    let mut con = s.server.con();
    let first = "import tiny\nexecute('SET', 'first', '%s %d' % (tiny.VERSION, id(tiny)))\nGB().foreach(lambda r: r).register(prefix='k*')";
    assert_eq!(
        pyexecute(&mut con, first, &["ID", "s1", "REQUIREMENTS", "tiny==0.1"]),
        Reply::ok()
    );
    let (v1, id1) = split(cmd(&mut con, &["GET", "first"]).as_str());
    assert_eq!(v1, "0.1");

    // A plain UPGRADE with another requirement string installs it; FORCE_REINSTALL reinstalls
    // even a known string; either way the next import loads the new files.
    let second = "import tiny\nexecute('SET', 'second', '%s %d' % (tiny.VERSION, id(tiny)))\nGB().foreach(lambda r: r).register(prefix='k*')";
    assert_eq!(
        pyexecute(
            &mut con,
            second,
            &[
                "ID",
                "s1",
                "UPGRADE",
                "FORCE_REINSTALL_REQUIREMENTS",
                "REQUIREMENTS",
                "tiny==0.2"
            ]
        ),
        Reply::ok()
    );
    let (v2, id2) = split(cmd(&mut con, &["GET", "second"]).as_str());
    assert_eq!(v2, "0.2");
    assert_ne!(id1, id2, "a new module object after the reinstall");
    let log = s.server.log();
    assert!(
        log.contains("installing tiny 0.2 replaces tiny-0.1-py3-none-any.whl of requirement 'tiny==0.1' used by session(s) s1"),
        "{log}"
    );
    let sessions = cmd(&mut con, &["RG.PYDUMPSESSIONS", "SESSIONS", "s1"]);
    assert_eq!(
        field(&sessions.items()[0], "requirementInstallationNeeded"),
        &Reply::Int(1)
    );
    // The replaced session's requirement left the table with it.
    let names: Vec<String> = cmd(&mut con, &["RG.PYDUMPREQS"])
        .items()
        .iter()
        .map(|e| field(e, "Name").as_str().to_string())
        .collect();
    assert_eq!(names, ["tiny==0.2"]);

    // A reinstall whose script fails keeps the old session and the old version.
    let failing = "import tiny\nraise Exception('no')";
    let reply = pyexecute(
        &mut con,
        failing,
        &[
            "ID",
            "s1",
            "UPGRADE",
            "FORCE_REINSTALL_REQUIREMENTS",
            "REQUIREMENTS",
            "tiny==0.1",
        ],
    );
    assert!(
        matches!(&reply, Reply::Err(e) if e.contains("no")),
        "{reply:?}"
    );
    let reply = pyexecute(
        &mut con,
        "GB('ShardsIDReader').map(lambda x: __import__('tiny').VERSION).run()",
        &["FORCE_REINSTALL_REQUIREMENTS"],
    );
    assert_eq!(reply, Reply::results(&["0.2"], &[]));
    assert_eq!(
        cmd(&mut con, &["RG.PYDUMPSESSIONS", "SESSIONS", "s1"]).items()[0].items()[1],
        Reply::bulk("s1")
    );
}

fn split(text: &str) -> (String, String) {
    let (a, b) = text.split_once(' ').unwrap();
    (a.to_string(), b.to_string())
}

#[test]
fn failures_reply_the_spec_text_and_the_reason_and_lose_nothing() {
    let s = setup();
    let mut con = s.server.con();
    assert_eq!(
        pyexecute(&mut con, "GB().register(prefix='keep*')", &["ID", "keep"]),
        Reply::ok()
    );
    let prefix = "Could not satisfy requirements (look at redis log file for more information): ";
    for (requirement, reason) in [
        (
            "no-such-package",
            "package 'no-such-package' was not found in the index",
        ),
        ("tiny>5", "the requirements cannot be satisfied"),
        ("tiny>=", "invalid requirement 'tiny>='"),
        // Found by fuzzing: the PEP 508 parser panicked on it ("internal error" before).
        (
            "tiny- >=1",
            "invalid requirement 'tiny- >=1': Name 'tiny-' must end with an alphanumeric character",
        ),
        (
            &*format!("tiny==0.2 --hash=sha256:{}", "0".repeat(64)),
            "is not pinned",
        ),
    ] {
        let reply = pyexecute(&mut con, VERSION_OF_TINY, &["REQUIREMENTS", requirement]);
        match reply {
            Reply::Err(text) => {
                assert!(text.starts_with(prefix), "{requirement}: {text}");
                assert!(text.contains(reason), "{requirement}: {text}");
            }
            other => panic!("{requirement}: {other:?}"),
        }
    }
    // The index goes down.
    s.index.with(|b| b.always_fail = true);
    let reply = pyexecute(&mut con, VERSION_OF_TINY, &["REQUIREMENTS", "app"]);
    assert!(
        matches!(&reply, Reply::Err(e) if e.starts_with(prefix) && e.contains("HTTP 500")),
        "{reply:?}"
    );
    // Nothing was lost, nothing half-made is listed.
    assert_eq!(cmd(&mut con, &["RG.PYDUMPREQS"]), Reply::Arr(vec![]));
    assert_eq!(
        cmd(&mut con, &["RG.PYDUMPSESSIONS", "SESSIONS", "keep"]).items()[0].items()[1],
        Reply::bulk("keep")
    );
    assert_eq!(cmd(&mut con, &["PING"]), Reply::Simple("PONG".into()));

    // Zero requirements are allowed; FORCE_REINSTALL alone runs the script.
    assert_eq!(
        pyexecute(
            &mut con,
            "GB('ShardsIDReader').count().run()",
            &["REQUIREMENTS"]
        ),
        Reply::results(&["1"], &[])
    );
    assert_eq!(
        pyexecute(
            &mut con,
            "GB('ShardsIDReader').count().run()",
            &["FORCE_REINSTALL_REQUIREMENTS"]
        ),
        Reply::results(&["1"], &[])
    );
}

#[test]
fn other_clients_are_served_while_an_install_runs() {
    let s = setup();
    s.index
        .with(|b| b.delay = Some(std::time::Duration::from_millis(300)));
    let mut waiting = s.server.con();
    let installing = std::thread::spawn(move || {
        pyexecute(&mut waiting, VERSION_OF_TINY, &["REQUIREMENTS", "app"])
    });
    // Wait until the install has asked the index, then use the server meanwhile.
    let mut other = s.server.con();
    e2e::wait_for(&mut other, "the install to reach the index", |_| {
        !s.index.requests().is_empty()
    });
    assert_eq!(cmd(&mut other, &["SET", "during", "1"]), Reply::ok());
    assert_eq!(cmd(&mut other, &["GET", "during"]), Reply::bulk("1"));
    assert!(
        !installing.is_finished(),
        "the install is still running (the index answers slowly)"
    );
    assert_eq!(installing.join().unwrap(), Reply::results(&["0.2"], &[]));
}

#[test]
fn the_public_index_when_reachable() {
    if !support::public_index_reachable() {
        println!("skipped: pypi.org:443 is not reachable from this machine");
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let server = Server::with_module_args(&["WheelsCacheDir", cache.path().to_str().unwrap()]);
    let mut con = server.con();
    let reply = pyexecute(
        &mut con,
        "GB('ShardsIDReader').map(lambda x: __import__('redis').__version__).run()",
        &["REQUIREMENTS", "redis==4.5.1"],
    );
    match reply {
        Reply::Err(text) if text.contains("could not be reached") || text.contains("HTTP 5") => {
            println!("skipped: the public index did not answer: {text}")
        }
        other => assert_eq!(other, Reply::results(&["4.5.1"], &[])),
    }
}

fn names_in_table(con: &mut redis::Connection) -> Vec<String> {
    let mut names: Vec<String> = cmd(con, &["RG.PYDUMPREQS"])
        .items()
        .iter()
        .map(|e| field(e, "Name").as_str().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn requirements_survive_reload_and_restart_without_the_index() {
    let index = TestIndex::start(Format::Html);
    index.add(&wheel("tiny", "0.2"));
    index.add(&wheel("app", "1.0").requires(&["tiny>=0.2"]));
    let cache = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let server_args = ["--dir", data.path().to_str().unwrap()];
    let url = index.url.clone();
    let module_args = [
        "RequirementsIndexUrl",
        &url,
        "WheelsCacheDir",
        cache.path().to_str().unwrap(),
    ];
    let first = Server::with_server_args(&server_args, &module_args);
    let mut con = first.con();
    assert_eq!(
        pyexecute(&mut con, VERSION_OF_TINY, &["REQUIREMENTS", "app"]),
        Reply::results(&["0.2"], &[])
    );
    assert_eq!(cmd(&mut con, &["DEBUG", "RELOAD"]), Reply::ok());
    assert_eq!(names_in_table(&mut con), ["app"]);
    assert_eq!(cmd(&mut con, &["SAVE"]), Reply::ok());
    drop(con);
    drop(first);

    // The index is gone and the shard's packages too: the RDB alone brings them back.
    drop(index);
    std::fs::remove_dir_all(data.path().join("gears-rs")).unwrap();
    let second = Server::with_server_args(&server_args, &module_args);
    let mut con = second.con();
    assert_eq!(names_in_table(&mut con), ["app"]);
    let entry = cmd(&mut con, &["RG.PYDUMPREQS"]).items()[0].clone();
    assert_eq!(field(&entry, "IsInstalled"), &Reply::bulk("yes"));
    let mut wheels = field(&entry, "Wheels").sorted_strings();
    wheels.sort();
    assert_eq!(
        wheels,
        ["app-1.0-py3-none-any.whl", "tiny-0.2-py3-none-any.whl"]
    );
    let reply = pyexecute(&mut con, "GB('ShardsIDReader').map(lambda x: __import__('app').VERSION + __import__('tiny').VERSION).run()", &["REQUIREMENTS", "app"]);
    assert_eq!(reply, Reply::results(&["1.00.2"], &[]));
}

#[test]
fn replicas_receive_requirements() {
    let s = setup();
    let replica = Server::with_module_args(&["WheelsCacheDir", s._cache.path().to_str().unwrap()]);
    let mut r = replica.con();
    cmd(
        &mut r,
        &["REPLICAOF", "127.0.0.1", &s.server.port.to_string()],
    );
    e2e::wait_for(&mut r, "the replica to sync", |r| {
        cmd(r, &["INFO", "replication"])
            .as_str()
            .contains("master_link_status:up")
    });
    let mut p = s.server.con();
    assert_eq!(
        pyexecute(&mut p, VERSION_OF_TINY, &["REQUIREMENTS", "app"]),
        Reply::results(&["0.2"], &[])
    );
    e2e::wait_for(&mut r, "the requirement to reach the replica", |r| {
        names_in_table(r) == ["app"]
    });
    let entry = cmd(&mut r, &["RG.PYDUMPREQS"]).items()[0].clone();
    assert_eq!(field(&entry, "IsDownloaded"), &Reply::bulk("yes"));
    assert_eq!(field(&entry, "IsInstalled"), &Reply::bulk("yes"));
    // The replica imports it without ever asking an index (it has none configured here).
    let reply = pyexecute(
        &mut r,
        "GB('ShardsIDReader').map(lambda x: __import__('app').VERSION).run()",
        &[],
    );
    assert_eq!(reply, Reply::results(&["1.0"], &[]));

    // A wheel larger than one replicated piece (8 MiB) arrives whole.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let payload: Vec<u8> = (0..20_000_000)
        .map(|_| {
            // xorshift64: incompressible bytes, so the wheel is as big as its content.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect();
    let big = support::RawWheel::new("big", "1.0").entry("big/blob.bin", &payload, 0o644);
    let bytes = big.build("big-1.0.dist-info");
    assert!(
        bytes.len() > 16 * 1024 * 1024,
        "incompressible enough: {}",
        bytes.len()
    );
    s.index.add_file("big", "big-1.0-py3-none-any.whl", bytes);
    let size = "GB('ShardsIDReader').map(lambda x: len(open(__import__('big').__path__[0] + '/blob.bin', 'rb').read())).run()";
    assert_eq!(
        pyexecute(&mut p, size, &["REQUIREMENTS", "big"]),
        Reply::results(&["20000000"], &[])
    );
    e2e::wait_for(&mut r, "the big requirement to reach the replica", |r| {
        names_in_table(r) == ["app", "big"]
    });
    assert_eq!(
        pyexecute(&mut r, size, &[]),
        Reply::results(&["20000000"], &[])
    );
    // Two small wheels in one piece each, the big one in three pieces of at most 8 MiB.
    let stats = cmd(&mut r, &["INFO", "commandstats"]).as_str().to_string();
    assert!(stats.contains("cmdstat_rg.innerreqput:calls=5,"), "{stats}");

    // A replica that syncs later gets it through the RDB.
    let late = Server::start();
    let mut l = late.con();
    cmd(
        &mut l,
        &["REPLICAOF", "127.0.0.1", &s.server.port.to_string()],
    );
    e2e::wait_for(&mut l, "the late replica to sync", |l| {
        cmd(l, &["INFO", "replication"])
            .as_str()
            .contains("master_link_status:up")
    });
    assert_eq!(names_in_table(&mut l), ["app", "big"]);
}

#[test]
fn the_aof_replays_requirements_and_a_rewrite_keeps_them() {
    let index = TestIndex::start(Format::Json);
    index.add(&wheel("tiny", "0.2"));
    let cache = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let server_args = [
        "--dir",
        data.path().to_str().unwrap(),
        "--appendonly",
        "yes",
    ];
    let url = index.url.clone();
    let module_args = [
        "RequirementsIndexUrl",
        &url,
        "WheelsCacheDir",
        cache.path().to_str().unwrap(),
    ];
    let first = Server::with_server_args(&server_args, &module_args);
    let mut con = first.con();
    assert_eq!(
        pyexecute(&mut con, VERSION_OF_TINY, &["REQUIREMENTS", "tiny"]),
        Reply::results(&["0.2"], &[])
    );
    drop(con);
    drop(first);
    drop(index);
    std::fs::remove_dir_all(data.path().join("gears-rs")).unwrap();

    // Replayed from the AOF's RG.INNERREQPUT / RG.INNERREQDONE, with no index.
    let second = Server::with_server_args(&server_args, &module_args);
    let mut con = second.con();
    assert_eq!(names_in_table(&mut con), ["tiny"]);
    assert_eq!(
        pyexecute(&mut con, VERSION_OF_TINY, &["REQUIREMENTS", "tiny"]),
        Reply::results(&["0.2"], &[])
    );
    // After a rewrite (RDB preamble) they are still there.
    cmd(&mut con, &["BGREWRITEAOF"]);
    e2e::wait_for(&mut con, "the rewrite", |c| {
        let info = cmd(c, &["INFO", "persistence"]).as_str().to_string();
        info.contains("aof_rewrite_in_progress:0")
            && info.contains("aof_rewrite_scheduled:0")
            && info.contains("aof_last_bgrewrite_status:ok")
    });
    drop(con);
    drop(second);
    std::fs::remove_dir_all(data.path().join("gears-rs")).unwrap();
    let third = Server::with_server_args(&server_args, &module_args);
    let mut con = third.con();
    assert_eq!(names_in_table(&mut con), ["tiny"]);
}

#[test]
fn a_thousand_requirements_install_or_fail_with_the_missing_name() {
    let index = TestIndex::start(Format::Json);
    let names: Vec<&'static str> = (0..1000)
        .map(|i| &*Box::leak(format!("pkg{i:04}").into_boxed_str()))
        .collect();
    for name in &names {
        index.add(&wheel(name, "1.0"));
    }
    let cache = tempfile::tempdir().unwrap();
    let server = Server::with_index(&index.url, cache.path());
    let mut con = server.con();
    // One name missing among a thousand: a clear error naming it, nothing installed.
    let mut args = vec!["REQUIREMENTS"];
    args.extend(names[..999].iter().copied());
    args.push("pkg-missing");
    let reply = pyexecute(&mut con, "GB('ShardsIDReader').count().run()", &args);
    assert!(
        matches!(&reply, Reply::Err(e) if e.contains("package 'pkg-missing' was not found")),
        "{reply:?}"
    );
    assert_eq!(cmd(&mut con, &["RG.PYDUMPREQS"]), Reply::Arr(vec![]));
    // All thousand present: installed and importable.
    let mut args = vec!["REQUIREMENTS"];
    args.extend(names.iter().copied());
    let script = "GB('ShardsIDReader').map(lambda x: __import__('pkg0999').VERSION).run()";
    assert_eq!(
        pyexecute(&mut con, script, &args),
        Reply::results(&["1.0"], &[])
    );
    assert_eq!(cmd(&mut con, &["RG.PYDUMPREQS"]).items().len(), 1000);
}
