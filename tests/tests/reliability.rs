//! Runaway code and faults: a registration's step stuck in an endless loop is stopped by
//! RG.ABORTEXECUTION while the server goes on serving; a server killed with SIGKILL in the middle
//! of a stream batch loses no entry.

#[path = "../../reqs-manager/tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::time::Duration;

use e2e::{cmd, list, pyexecute, registration_stat, wait_for, Reply, Server};
use support::{wheel, Format, RawWheel, TestIndex};

/// The id and status of every listed execution.
fn executions(con: &mut redis::Connection) -> Vec<(String, String)> {
    cmd(con, &["RG.DUMPEXECUTIONS"])
        .items()
        .iter()
        .map(|e| {
            let e = e.items();
            (e[1].as_str().to_string(), e[3].as_str().to_string())
        })
        .collect()
}

#[test]
fn abort_stops_a_registration_stuck_in_an_endless_loop() {
    let server = Server::start();
    let mut con = server.con();
    let script = "def step(r):\n    if r['key'] == 'k:loop':\n        while True:\n            pass\n    execute('INCR', 'done')\nGB().foreach(step).register(prefix='k:*', mode='async_local')";
    assert_eq!(pyexecute(&mut con, script, &[]), Reply::ok());
    cmd(&mut con, &["SET", "k:loop", "1"]);
    wait_for(&mut con, "the execution to spin", |c| {
        executions(c).iter().any(|(_, status)| status == "running")
    });
    // The server answers meanwhile.
    for _ in 0..20 {
        assert_eq!(cmd(&mut con, &["PING"]), Reply::Simple("PONG".into()));
    }
    let (spinning, _) = executions(&mut con)
        .into_iter()
        .find(|(_, status)| status == "running")
        .unwrap();
    assert_eq!(
        cmd(&mut con, &["RG.ABORTEXECUTION", &spinning]),
        Reply::ok()
    );
    wait_for(&mut con, "the execution to stop", |c| {
        executions(c)
            .iter()
            .any(|(id, status)| id == &spinning && status != "running")
    });
    // The registration goes on: the next event (queued behind the stuck one) runs.
    cmd(&mut con, &["SET", "k:next", "1"]);
    wait_for(&mut con, "the next event", |c| {
        cmd(c, &["GET", "done"]) == Reply::bulk("1")
    });
    assert_eq!(registration_stat(&mut con, "numTriggered"), Reply::Int(2));
}

#[test]
fn a_kill_in_the_middle_of_a_stream_batch_loses_no_entry() {
    let data = tempfile::tempdir().unwrap();
    let server_args = [
        "--dir",
        data.path().to_str().unwrap(),
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
    ];
    let first = Server::with_server_args(&server_args, &[]);
    let mut con = first.con();
    // Slow on purpose: each entry is logged, then the step waits, so a kill lands mid-batch.
    let script = "import time\ndef step(r):\n    execute('RPUSH', 'seen', r['value']['n'])\n    time.sleep(0.02)\nGB('StreamReader').foreach(step).register(prefix='s', batch=50)";
    assert_eq!(pyexecute(&mut con, script, &[]), Reply::ok());
    for n in 0..50 {
        cmd(&mut con, &["XADD", "s", "*", "n", &n.to_string()]);
    }
    wait_for(&mut con, "the batch to be under way", |c| {
        list(c, "seen").len() >= 10
    });
    drop(con);
    drop(first); // SIGKILL
    let second = Server::with_server_args(&server_args, &[]);
    let mut con = second.con();
    // The unacknowledged batch is delivered again: every entry is processed at least once.
    wait_for(&mut con, "the batch again", |c| {
        let seen = list(c, "seen");
        (0..50).all(|n| seen.contains(&n.to_string()))
    });
    wait_for(&mut con, "the batch acknowledged and trimmed", |c| {
        cmd(c, &["XLEN", "s"]) == Reply::Int(0)
    });
    let pending = cmd(&mut con, &["XPENDING", "s", "__gears_consumer_group__"]);
    assert_eq!(pending.items()[0], Reply::Int(0));
    std::thread::sleep(Duration::from_millis(100));
    // Entries processed before the kill were processed again (at least once, as consumer-group
    // redelivery gives); the others once.
    let seen = list(&mut con, "seen");
    let times = |n: usize| seen.iter().filter(|s| **s == n.to_string()).count();
    let twice = (0..50).take_while(|&n| times(n) == 2).count();
    assert!(
        (10..50).contains(&twice),
        "the kill did not land mid-batch: {seen:?}"
    );
    assert!((twice..50).all(|n| times(n) == 1), "{seen:?}");
    assert_eq!(seen.len(), twice + 50, "{seen:?}");
}

#[test]
fn a_long_pipeline_runs_and_a_too_long_one_gets_a_clear_error() {
    let mut server = Server::start();
    let mut con = server.con();
    cmd(&mut con, &["SET", "k1", "1"]);
    // 4,990 steps: the deepest plans run, in a run() on a worker and in a sync registration on
    // the Redis main thread.
    let long = "g = GB()\nfor i in range(4985):\n    g = g.map(lambda x: x)\n";
    let reply = pyexecute(&mut con, &format!("{long}g.count().run()"), &[]);
    assert_eq!(reply, Reply::results(&["1"], &[]));
    let reply = pyexecute(
        &mut con,
        &format!(
            "{long}g.foreach(lambda r: execute('INCR', 'hits')).register(prefix='k*', mode='sync')"
        ),
        &[],
    );
    assert_eq!(reply, Reply::ok());
    cmd(&mut con, &["SET", "k2", "1"]);
    assert_eq!(cmd(&mut con, &["GET", "hits"]), Reply::bulk("1"));
    // 10,000 steps: refused before anything runs.
    let reply = pyexecute(
        &mut con,
        "g = GB()\nfor i in range(10000):\n    g = g.map(lambda x: x)\ng.run()",
        &[],
    );
    match reply {
        Reply::Err(e) => assert!(
            e.contains("the pipeline has 10003 steps, at most 5000 are supported"),
            "{e}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(server.is_alive());
}

#[test]
fn twenty_thousand_registrations_in_one_session() {
    let server = Server::start();
    let mut con = server.con();
    let script = "for i in range(20000):\n    GB().foreach(lambda r: execute('INCR', 'hits')).register(prefix='p%d' % i, mode='sync')";
    assert_eq!(pyexecute(&mut con, script, &["ID", "many"]), Reply::ok());
    cmd(&mut con, &["SET", "p19999", "v"]);
    assert_eq!(cmd(&mut con, &["GET", "hits"]), Reply::bulk("1"));
    let dump = cmd(&mut con, &["RG.DUMPREGISTRATIONS"]);
    assert_eq!(dump.items().len(), 20_000);
    // The session's printable form lists 20 ids, then how many more.
    let pd = dump.items()[0].items()[9].as_str().to_string();
    assert!(pd.contains("'... 19980 more'"), "{pd}");
    assert_eq!(cmd(&mut con, &["DEBUG", "RELOAD"]), Reply::ok());
    assert_eq!(
        cmd(&mut con, &["RG.DUMPREGISTRATIONS"]).items().len(),
        20_000
    );
    cmd(&mut con, &["SET", "p0", "v"]);
    assert_eq!(cmd(&mut con, &["GET", "hits"]), Reply::bulk("2"));
}

/// The pids of `parent`'s children (a BGSAVE's forked child).
fn children(parent: u32) -> Vec<u32> {
    let out = std::process::Command::new("pgrep")
        .args(["-P", &parent.to_string()])
        .output()
        .expect("pgrep");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

#[test]
fn a_kill_during_an_rdb_save_keeps_the_last_complete_save() {
    let data = tempfile::tempdir().unwrap();
    let args = ["--dir", data.path().to_str().unwrap()];
    let mut server = Server::with_server_args(&args, &[]);
    let mut con = server.con();
    let before =
        "GB().foreach(lambda r: execute('INCR', 'fired')).register(prefix='before:*', mode='sync')";
    assert_eq!(pyexecute(&mut con, before, &[]), Reply::ok());
    assert_eq!(cmd(&mut con, &["SAVE"]), Reply::ok());
    // Then more work, and a save slowed down (100 µs a key) so the kill lands in the middle.
    let after = "GB('CommandReader').register(trigger='after')";
    assert_eq!(pyexecute(&mut con, after, &[]), Reply::ok());
    cmd(&mut con, &["DEBUG", "POPULATE", "50000"]);
    cmd(&mut con, &["CONFIG", "SET", "rdb-key-save-delay", "100"]);
    assert_eq!(
        cmd(&mut con, &["BGSAVE"]),
        Reply::Simple("Background saving started".into())
    );
    let mut saving = Vec::new();
    wait_for(&mut con, "the forked save", |_| {
        saving = children(server.pid());
        !saving.is_empty()
    });
    std::thread::sleep(Duration::from_millis(200));
    // The machine dies: the server and its saving child at once.
    for child in &saving {
        let _ = std::process::Command::new("kill")
            .args(["-9", &child.to_string()])
            .status();
    }
    server.stop();
    server.restart();
    let mut con = server.con();
    // The last complete save came back: the first registration, none of what followed.
    assert_eq!(cmd(&mut con, &["DBSIZE"]), Reply::Int(0));
    assert_eq!(
        cmd(&mut con, &["RG.TRIGGER", "after"]),
        Reply::err("ERR subcommand not found")
    );
    cmd(&mut con, &["SET", "before:1", "x"]);
    assert_eq!(cmd(&mut con, &["GET", "fired"]), Reply::bulk("1"));
    assert!(server.is_alive());
}

#[test]
fn an_install_killed_half_way_leaves_nothing_importable_and_is_cleaned_at_start() {
    let data = tempfile::tempdir().unwrap();
    // What a kill -9 in the middle of an install leaves: its staging directory, package inside.
    let staging = data
        .path()
        .join("gears-rs/requirements/site-packages/.gears-staging-killed");
    std::fs::create_dir_all(staging.join("halfpkg")).unwrap();
    std::fs::write(staging.join("halfpkg/__init__.py"), "VALUE = 1\n").unwrap();
    let server = Server::with_server_args(&["--dir", data.path().to_str().unwrap()], &[]);
    let mut con = server.con();
    assert!(
        !staging.exists(),
        "the staging directory was removed at start"
    );
    assert!(server
        .log()
        .contains("removed 1 staging directories left by an interrupted install"));
    let reply = pyexecute(&mut con, "import halfpkg", &[]);
    assert!(
        reply.as_str().contains("No module named 'halfpkg'"),
        "{reply:?}"
    );
}

/// A script of `n` assignments, padded with a comment to `size` bytes.
fn long_script(n: usize, size: usize, last: &str) -> String {
    let mut script: String = (0..n).map(|i| format!("v{i} = {i}\n")).collect();
    script.push_str(last);
    script.push('\n');
    let pad = size.saturating_sub(script.len() + 2);
    script.push('#');
    script.push_str(&"x".repeat(pad));
    script.push('\n');
    script
}

#[test]
fn a_long_script_is_compiled_while_the_server_serves() {
    let server = Server::start();
    let mut con = server.con();
    // About 4 MB: over a second of compiling, off the main thread. A SET sent meanwhile is
    // served before the script runs, so the script sees it.
    let script = long_script(
        200_000,
        4_000_000,
        "seen = execute('GET', 'during')\nGB('ShardsIDReader').map(lambda x: '%d %s' % (v199999 + 1, seen)).run()",
    );
    let sender = {
        let mut con = server.con();
        std::thread::spawn(move || pyexecute(&mut con, &script, &[]))
    };
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(cmd(&mut con, &["SET", "during", "1"]), Reply::ok());
    let reply = sender.join().unwrap();
    assert_eq!(reply, Reply::results(&["200000 1"], &[]));

    // Its errors read as a short script's do.
    let broken = long_script(10, 2_000_000, "def f(:");
    let long = pyexecute(&mut con, &broken, &[]);
    let short = pyexecute(&mut con, "v0 = 0\ndef f(:", &[]);
    let (Reply::Err(long), Reply::Err(short)) = (&long, &short) else {
        panic!("{long:?} {short:?}")
    };
    assert!(long.contains("SyntaxError"), "{long}");
    assert_eq!(
        long.split("line").next(),
        short.split("line").next(),
        "{long} / {short}"
    );
}

/// A small tmpfs mounted for the test, unmounted when dropped.
struct SmallDisk(tempfile::TempDir);

impl SmallDisk {
    /// None where mounting is not allowed (not root).
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then_some(SmallDisk(dir))
    }

    fn path(&self, name: &str) -> String {
        self.0.path().join(name).to_str().unwrap().to_string()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

/// An index serving `tiny` and `huge` (a 2 MB wheel).
fn index_with_a_huge_wheel() -> TestIndex {
    let index = TestIndex::start(Format::Json);
    index.add(&wheel("tiny", "0.2"));
    let blob: Vec<u8> = (0..2_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let huge = RawWheel::new("huge", "1.0").entry("huge/blob.bin", &blob, 0o644);
    index.add_file(
        "huge",
        "huge-1.0-py3-none-any.whl",
        huge.build("huge-1.0.dist-info"),
    );
    index
}

/// `huge` does not fit: a clear error, the server serves, nothing is listed or importable, and
/// `tiny` installs after it (nothing half-written was left taking the space).
fn full_disk_fails_cleanly(server: &Server, what: &str) {
    let mut con = server.con();
    let reply = pyexecute(&mut con, "import huge", &["REQUIREMENTS", "huge"]);
    let Reply::Err(text) = &reply else {
        panic!("{what}: {reply:?}")
    };
    assert!(text.contains("No space left on device"), "{what}: {text}");
    println!("{what} on a full disk: {text}");
    assert_eq!(cmd(&mut con, &["PING"]), Reply::Simple("PONG".into()));
    assert_eq!(
        cmd(&mut con, &["RG.PYDUMPREQS"]),
        Reply::Arr(vec![]),
        "{what}"
    );
    let imported = pyexecute(&mut con, "import huge", &[]);
    assert!(
        imported.as_str().contains("No module named 'huge'"),
        "{what}: {imported:?}"
    );
    assert_eq!(
        pyexecute(
            &mut con,
            "import tiny\nGB('ShardsIDReader').map(lambda x: tiny.VERSION).run()",
            &["REQUIREMENTS", "tiny"]
        ),
        Reply::results(&["0.2"], &[]),
        "{what}"
    );
}

#[test]
fn a_full_disk_for_the_cache_or_the_requirements_gets_a_clear_error() {
    let Some(disk) = SmallDisk::mount("1m") else {
        println!("skipped: cannot mount a small tmpfs here (needs root)");
        return;
    };
    let index = index_with_a_huge_wheel();
    // The wheels cache on the small disk.
    let server = Server::with_module_args(&[
        "RequirementsIndexUrl",
        &index.url,
        "WheelsCacheDir",
        &disk.path("cache"),
    ]);
    full_disk_fails_cleanly(&server, "cache");
    drop(server);
    // The requirements directory on the small disk, the cache elsewhere.
    let cache = tempfile::tempdir().unwrap();
    let server = Server::with_module_args(&[
        "RequirementsIndexUrl",
        &index.url,
        "WheelsCacheDir",
        cache.path().to_str().unwrap(),
        "RequirementsDir",
        &disk.path("requirements"),
    ]);
    full_disk_fails_cleanly(&server, "requirements");
    assert!(Path::new(&disk.path("requirements")).is_dir());
}
