//! Sessions and registrations survive DEBUG RELOAD and restarts, reach replicas (which fire
//! nothing until promoted) and the AOF (sessions-and-cluster.md Part B).

use std::path::Path;
use std::time::Duration;

use e2e::{cmd, list, pyexecute, registration_stat, wait_for, Reply, Server};

/// One registration of each reader kind, in one session with an id and a description.
const EVERY_KIND: &str = "GB().foreach(lambda r: execute('INCR', 'fired-by-keys')).register(prefix='k*', mode='sync')
GB('CommandReader').map(lambda a: 'hello ' + a[1]).register(trigger='hi')
GB('CommandReader').map(lambda r: 'hooked').register(hook='get', keyprefix='h:', mode='sync')
GB('StreamReader').foreach(lambda r: execute('RPUSH', 'stream-log', r['value']['a'])).register(prefix='st*')";

/// (id, reader, args) of every registration, sorted by id.
fn registrations(con: &mut redis::Connection) -> Vec<(String, String, Reply)> {
    let mut all: Vec<(String, String, Reply)> = cmd(con, &["RG.DUMPREGISTRATIONS"])
        .items()
        .iter()
        .map(|r| {
            let r = r.items();
            let data = r[7].items();
            let args = data
                .chunks(2)
                .find(|kv| kv[0] == Reply::bulk("args"))
                .map(|kv| kv[1].clone())
                .unwrap();
            (r[1].as_str().to_string(), r[3].as_str().to_string(), args)
        })
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

fn int(con: &mut redis::Connection, key: &str) -> i64 {
    match cmd(con, &["GET", key]) {
        Reply::Bulk(b) => String::from_utf8(b).unwrap().parse().unwrap(),
        Reply::Nil => 0,
        other => panic!("{other:?}"),
    }
}

/// Every registration of [`EVERY_KIND`] fires as it should.
fn assert_all_fire(con: &mut redis::Connection, round: usize) {
    let before = int(con, "fired-by-keys");
    cmd(con, &["SET", "k1", "v"]);
    assert_eq!(int(con, "fired-by-keys"), before + 1, "KeysReader");
    assert_eq!(
        cmd(con, &["RG.TRIGGER", "hi", "you"]),
        Reply::bulks(&["hello you"]),
        "trigger"
    );
    assert_eq!(cmd(con, &["GET", "h:x"]), Reply::bulk("hooked"), "hook");
    cmd(con, &["XADD", "st1", "*", "a", &round.to_string()]);
    wait_for(con, "the stream entry", |c| {
        list(c, "stream-log").contains(&round.to_string())
    });
}

fn session_line(con: &mut redis::Connection) -> Vec<Reply> {
    let sessions = cmd(con, &["RG.PYDUMPSESSIONS"]);
    sessions.items()[0].items().to_vec()
}

#[test]
fn every_reader_kind_survives_debug_reload_and_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let server_args = ["--dir", data.path().to_str().unwrap()];
    let first = Server::with_server_args(&server_args, &[]);
    let mut con = first.con();
    assert_eq!(
        pyexecute(
            &mut con,
            EVERY_KIND,
            &["ID", "app", "DESCRIPTION", "the app"]
        ),
        Reply::ok()
    );
    let registered = registrations(&mut con);
    assert_eq!(registered.len(), 4);
    let session = session_line(&mut con);
    assert_all_fire(&mut con, 1);

    assert_eq!(cmd(&mut con, &["DEBUG", "RELOAD"]), Reply::ok());
    assert_eq!(registrations(&mut con), registered);
    assert_eq!(session_line(&mut con), session);
    assert_all_fire(&mut con, 2);

    assert_eq!(cmd(&mut con, &["SAVE"]), Reply::ok());
    drop(con);
    drop(first);
    let second = Server::with_server_args(&server_args, &[]);
    let mut con = second.con();
    assert_eq!(registrations(&mut con), registered);
    assert_eq!(session_line(&mut con), session);
    // Statistics start from zero.
    assert_eq!(registration_stat(&mut con, "numTriggered"), Reply::Int(0));
    assert_all_fire(&mut con, 3);
    // New ids come after the restored ones.
    assert_eq!(
        pyexecute(&mut con, "GB().register(prefix='new')", &[]),
        Reply::ok()
    );
    let ids: Vec<String> = registrations(&mut con).into_iter().map(|r| r.0).collect();
    let highest = |ids: &[String]| {
        ids.iter()
            .map(|i| i.rsplit('-').next().unwrap().parse::<u64>().unwrap())
            .max()
            .unwrap()
    };
    let old_ids: Vec<String> = registered.into_iter().map(|r| r.0).collect();
    assert!(highest(&ids) > highest(&old_ids));
    // The session can still be upgraded: its registrations are replaced.
    assert_eq!(
        pyexecute(
            &mut con,
            "GB().register(prefix='only')",
            &["ID", "app", "UPGRADE"]
        ),
        Reply::ok()
    );
    assert_eq!(registrations(&mut con).len(), 2);
}

#[test]
fn a_stream_registration_resumes_after_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let server_args = ["--dir", data.path().to_str().unwrap()];
    let first = Server::with_server_args(&server_args, &[]);
    let mut con = first.con();
    pyexecute(
        &mut con,
        "GB('StreamReader').foreach(lambda r: execute('RPUSH', 'seen', r['value']['a'])).register(prefix='s', trimStream=False)",
        &[],
    );
    for a in ["1", "2"] {
        cmd(&mut con, &["XADD", "s", "*", "a", a]);
    }
    wait_for(&mut con, "two entries", |c| list(c, "seen").len() == 2);
    // Paused (which is not saved), two more entries arrive and wait.
    let id = registrations(&mut con)[0].0.clone();
    assert_eq!(cmd(&mut con, &["RG.PAUSEREGISTRATIONS", &id]), Reply::ok());
    for a in ["3", "4"] {
        cmd(&mut con, &["XADD", "s", "*", "a", a]);
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(cmd(&mut con, &["SAVE"]), Reply::ok());
    drop(con);
    drop(first);
    let second = Server::with_server_args(&server_args, &[]);
    let mut con = second.con();
    // The waiting entries are processed; those processed before are not processed again.
    wait_for(&mut con, "four entries", |c| list(c, "seen").len() >= 4);
    cmd(&mut con, &["XADD", "s", "*", "a", "5"]);
    wait_for(&mut con, "five entries", |c| list(c, "seen").len() >= 5);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(list(&mut con, "seen"), ["1", "2", "3", "4", "5"]);
    assert_eq!(registration_stat(&mut con, "status"), Reply::bulk("OK"));
}

fn attach(replica: &mut redis::Connection, primary: &Server) {
    cmd(
        replica,
        &["REPLICAOF", "127.0.0.1", &primary.port.to_string()],
    );
    wait_for(replica, "the replica to sync", |r| {
        cmd(r, &["INFO", "replication"])
            .as_str()
            .contains("master_link_status:up")
    });
}

#[test]
fn replicas_get_registrations_fire_nothing_and_serve_them_once_promoted() {
    let primary = Server::start();
    let mut p = primary.con();
    // One registration before the replica attaches (it comes with the full sync), the others
    // after (they come as RG.INNERREGISTER).
    assert_eq!(
        pyexecute(
            &mut p,
            "GB().foreach(lambda r: execute('INCR', 'fired')).register(prefix='k*', mode='sync')",
            &["ID", "before"]
        ),
        Reply::ok()
    );
    // Started with --replicaof, as a deployment would.
    let port = primary.port.to_string();
    let replica = Server::with_server_args(&["--replicaof", "127.0.0.1", &port], &[]);
    let mut r = replica.con();
    wait_for(&mut r, "the replica to sync", |r| {
        cmd(r, &["INFO", "replication"])
            .as_str()
            .contains("master_link_status:up")
    });
    assert_eq!(
        pyexecute(
            &mut p,
            "GB('StreamReader').foreach(lambda r: execute('INCR', 'stream-fired')).register(prefix='st')\nGB('CommandReader').register(trigger='t')",
            &["ID", "after"]
        ),
        Reply::ok()
    );
    wait_for(&mut r, "the registrations on the replica", |c| {
        registrations(c).len() == 3
    });
    assert_eq!(registrations(&mut r), registrations(&mut p));
    cmd(&mut p, &["SET", "k1", "v"]);
    cmd(&mut p, &["XADD", "st", "*", "a", "1"]);
    wait_for(&mut p, "the stream entry", |c| int(c, "stream-fired") == 1);
    cmd(&mut p, &["WAIT", "1", "5000"]);
    wait_for(&mut r, "the primary's writes", |c| {
        int(c, "fired") == 1 && int(c, "stream-fired") == 1
    });
    // The replica ran nothing itself: only the primary's writes arrived, once.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(int(&mut r, "fired"), 1);
    assert_eq!(int(&mut r, "stream-fired"), 1);
    for (id, _, _) in registrations(&mut r) {
        let dump = cmd(&mut r, &["RG.DUMPREGISTRATIONS"]);
        let entry = dump
            .items()
            .iter()
            .find(|e| e.items()[1] == Reply::bulk(&id))
            .unwrap()
            .clone();
        let data = entry.items()[7].items().to_vec();
        assert_eq!(data[3], Reply::Int(0), "{id} fired on the replica");
    }
    // An upgrade of the session holding trigger 't' reaches the replica: its copy is checked
    // against what the upgrade leaves (the trigger belongs to the session it upgrades).
    assert_eq!(
        pyexecute(
            &mut p,
            "GB('StreamReader').foreach(lambda r: execute('INCR', 'stream-fired')).register(prefix='st')\nGB('CommandReader').register(trigger='t')",
            &["ID", "after", "UPGRADE"]
        ),
        Reply::ok()
    );
    wait_for(&mut r, "the upgrade on the replica", |c| {
        registrations(c) == registrations(&mut p)
    });
    // RG.UNREGISTER reaches the replica.
    let before = registrations(&mut p)[0].0.clone();
    assert_eq!(cmd(&mut p, &["RG.UNREGISTER", &before]), Reply::ok());
    wait_for(&mut r, "the unregister on the replica", |c| {
        registrations(c).len() == 2
    });

    // Promoted, the replica serves them: the stream entries that arrived since are consumed.
    drop(p);
    drop(primary);
    assert_eq!(cmd(&mut r, &["REPLICAOF", "NO", "ONE"]), Reply::ok());
    cmd(&mut r, &["XADD", "st", "*", "a", "2"]);
    wait_for(&mut r, "the promoted replica to consume", |c| {
        int(c, "stream-fired") == 2
    });
    assert_eq!(cmd(&mut r, &["RG.TRIGGER", "t"]), Reply::bulks(&["['t']"]));
}

fn aof_server(dir: &Path, preamble: &str) -> Server {
    Server::with_server_args(
        &[
            "--dir",
            dir.to_str().unwrap(),
            "--appendonly",
            "yes",
            "--aof-use-rdb-preamble",
            preamble,
            // The harness kills servers: every write must be in the file before its reply.
            "--appendfsync",
            "always",
        ],
        &[],
    )
}

#[test]
fn the_aof_replays_registrations_and_unregistrations() {
    let data = tempfile::tempdir().unwrap();
    let first = aof_server(data.path(), "no");
    let mut con = first.con();
    pyexecute(
        &mut con,
        "GB().foreach(lambda r: execute('INCR', 'fired')).register(prefix='a*', mode='sync')",
        &["ID", "one"],
    );
    pyexecute(
        &mut con,
        "GB().foreach(lambda r: execute('INCR', 'fired')).register(prefix='b*', mode='sync')",
        &["ID", "two"],
    );
    let gone = registrations(&mut con)[0].0.clone();
    assert_eq!(cmd(&mut con, &["RG.UNREGISTER", &gone]), Reply::ok());
    let expected = registrations(&mut con);
    assert_eq!(expected.len(), 1);
    drop(con);
    drop(first);

    let mut second = aof_server(data.path(), "no");
    let mut con = second.con();
    assert_eq!(registrations(&mut con), expected);
    let fired = int(&mut con, "fired");
    cmd(&mut con, &["SET", "b1", "v"]);
    cmd(&mut con, &["SET", "a1", "v"]);
    assert_eq!(int(&mut con, "fired"), fired + 1);
    // A rewrite without the RDB preamble keeps them (they are written again after it), twice.
    for _ in 0..2 {
        rewrite(&mut con, data.path());
        drop(con);
        drop(second);
        second = aof_server(data.path(), "no");
        con = second.con();
        assert_eq!(registrations(&mut con), expected);
        let sessions = cmd(&mut con, &["RG.PYDUMPSESSIONS"]);
        assert_eq!(sessions.items().len(), 1);
        assert_eq!(sessions.items()[0].items()[1], Reply::bulk("two"));
    }
    drop(con);
    drop(second);

    // A rewrite with the RDB preamble keeps them too.
    let third = aof_server(data.path(), "yes");
    let mut con = third.con();
    assert_eq!(registrations(&mut con), expected);
    rewrite(&mut con, data.path());
    drop(con);
    drop(third);
    let fourth = aof_server(data.path(), "yes");
    let mut con = fourth.con();
    assert_eq!(registrations(&mut con), expected);
}

/// BGREWRITEAOF, waited for until the new incremental AOF file holds the registrations.
fn rewrite(con: &mut redis::Connection, dir: &Path) {
    assert!(!cmd(con, &["BGREWRITEAOF"]).as_str().is_empty());
    wait_for(con, "the rewrite", |c| {
        let info = cmd(c, &["INFO", "persistence"]);
        info.as_str().contains("aof_rewrite_in_progress:0")
            && info.as_str().contains("aof_rewrite_scheduled:0")
    });
    wait_for(con, "the registrations in the new AOF", |_| {
        let aof = dir.join("appendonlydir");
        let manifest = std::fs::read_to_string(aof.join("appendonly.aof.manifest")).unwrap();
        let incr = manifest
            .lines()
            .rfind(|l| l.ends_with("type i"))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap()
            .to_string();
        let base_has_them = manifest.lines().any(|l| {
            l.ends_with("type b")
                && l.split_whitespace()
                    .nth(1)
                    .is_some_and(|f| f.ends_with(".rdb"))
        });
        let content = std::fs::read(aof.join(incr)).unwrap_or_default();
        base_has_them || content.windows(16).any(|w| w == b"RG.INNERREGISTER")
    });
}

#[test]
fn flushall_keeps_registrations() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(
        &mut con,
        "GB().foreach(lambda r: execute('INCR', 'fired')).register(prefix='k*', mode='sync')",
        &[],
    );
    assert_eq!(cmd(&mut con, &["FLUSHALL"]), Reply::ok());
    cmd(&mut con, &["SET", "k1", "v"]);
    assert_eq!(int(&mut con, "fired"), 1);
}

/// The module type id RDB files carry for `name` at `version` (Redis' moduleTypeEncodeId).
fn module_type_id(name: &str, version: u64) -> u64 {
    const CHARSET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut id = 0u64;
    for c in name.bytes() {
        id = (id << 6) | CHARSET.iter().position(|&x| x == c).unwrap() as u64;
    }
    (id << 10) | version
}

/// An RDB with a registration, saved by a server that is then stopped.
fn saved_rdb(dir: &Path) -> Vec<u8> {
    let server = Server::with_server_args(&["--dir", dir.to_str().unwrap()], &[]);
    let mut con = server.con();
    pyexecute(&mut con, "GB().register(prefix='k*')", &[]);
    assert_eq!(cmd(&mut con, &["SAVE"]), Reply::ok());
    drop(con);
    drop(server);
    std::fs::read(dir.join("dump.rdb")).unwrap()
}

/// Where the registrations section starts: its module id, length-encoded as 0x81 + 8 bytes
/// big-endian (the id names the format version).
fn registrations_section(rdb: &[u8]) -> usize {
    let mut ours = vec![0x81];
    ours.extend(module_type_id("GRS_REGS0", 1).to_be_bytes());
    rdb.windows(ours.len())
        .position(|w| w == ours)
        .expect("the registrations section in the RDB")
}

#[test]
fn an_rdb_from_a_newer_format_is_refused_with_a_clear_line() {
    let data = tempfile::tempdir().unwrap();
    let mut rdb = saved_rdb(data.path());
    let at = registrations_section(&rdb);
    rdb[at + 1..at + 9].copy_from_slice(&module_type_id("GRS_REGS0", 2).to_be_bytes());
    // A zero checksum is not checked.
    let len = rdb.len();
    rdb[len - 8..].fill(0);
    std::fs::write(data.path().join("dump.rdb"), &rdb).unwrap();
    let log = refused_load(data.path());
    assert!(
        log.contains("could not load rdb created with higher RedisGears version"),
        "{log}"
    );
}

#[test]
fn a_truncated_registrations_section_fails_the_load_cleanly() {
    let data = tempfile::tempdir().unwrap();
    let rdb = saved_rdb(data.path());
    let at = registrations_section(&rdb);
    // Cut inside the section, after its first few fields.
    std::fs::write(data.path().join("dump.rdb"), &rdb[..at + 40]).unwrap();
    let log = refused_load(data.path());
    assert!(
        log.contains("Failed loading registrations") || log.contains("Short read"),
        "{log}"
    );
}

/// The log of a server that refused to start from `dir`'s dump.rdb, which did not crash.
fn refused_load(dir: &Path) -> String {
    let failure = Server::try_start_with(&["--dir", dir.to_str().unwrap()], &[])
        .err()
        .expect("the load refused");
    assert!(
        !failure.log.contains("crashed by signal"),
        "{}",
        failure.log
    );
    failure.log
}

#[test]
fn a_broken_inner_register_changes_nothing() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(&mut con, "GB().register(prefix='k*')", &[]);
    let before = registrations(&mut con);
    for garbage in [
        &b""[..],
        b"\x01",
        b"\x09junk",
        b"\x01\x05\x00\x00\x00\x00\x00\x00\x00ab",
    ] {
        match e2e::call(&mut con, &[b"RG.INNERREGISTER", garbage]) {
            Reply::Err(_) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(registrations(&mut con), before);
    assert_eq!(
        cmd(&mut con, &["RG.INNERUNREGISTER", "no-such-id"]),
        Reply::ok()
    );
}

#[test]
fn a_registration_made_by_a_step_is_saved_and_replicated() {
    let primary = Server::start();
    let replica = Server::start();
    let mut r = replica.con();
    attach(&mut r, &primary);
    let mut p = primary.con();
    pyexecute(
        &mut p,
        "def make(a):\n    return GB().foreach(lambda r: execute('INCR', 'fired')).register(prefix='late*', mode='sync')\nGB('CommandReader').map(make).register(trigger='make')",
        &["ID", "maker"],
    );
    assert_eq!(cmd(&mut p, &["RG.TRIGGER", "make"]).items().len(), 1);
    assert_eq!(registrations(&mut p).len(), 2);
    wait_for(&mut r, "both registrations on the replica", |c| {
        registrations(c).len() == 2
    });
    assert_eq!(registrations(&mut r), registrations(&mut p));
    assert_eq!(cmd(&mut p, &["DEBUG", "RELOAD"]), Reply::ok());
    assert_eq!(registrations(&mut p).len(), 2);
    cmd(&mut p, &["SET", "late1", "v"]);
    assert_eq!(int(&mut p, "fired"), 1);
}
