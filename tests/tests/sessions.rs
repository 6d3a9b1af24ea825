//! Sessions: ID, DESCRIPTION, UPGRADE, REPLACE_WITH and RG.PYDUMPSESSIONS.

use std::thread;
use std::time::Duration;

use e2e::{cmd, pyexecute, wait_for, Reply, Server};

const ZEROS: &str = "0000000000000000000000000000000000000000";

fn prefixes(con: &mut redis::Connection) -> Vec<String> {
    cmd(con, &["RG.DUMPREGISTRATIONS"])
        .items()
        .iter()
        .map(|r| r.items()[7].items()[19].items()[1].as_str().to_string())
        .collect()
}

fn session_ids(con: &mut redis::Connection, args: &[&str]) -> Vec<String> {
    let mut all = vec!["RG.PYDUMPSESSIONS"];
    all.extend_from_slice(args);
    cmd(con, &all)
        .items()
        .iter()
        .map(|s| s.items()[1].as_str().to_string())
        .collect()
}

#[test]
fn an_id_that_is_live_is_refused_without_upgrade() {
    let server = Server::start();
    let mut con = server.con();
    assert_eq!(
        pyexecute(&mut con, "GB().register(prefix='k*')", &["ID", "s1"]),
        Reply::ok()
    );
    assert_eq!(
        pyexecute(&mut con, "GB().register(prefix='j*')", &["ID", "s1"]),
        Reply::err("Session s1 already exists")
    );
    // A run-only session never became live, so its id is free again.
    assert_eq!(
        pyexecute(&mut con, "GB().run()", &["ID", "r1"]),
        Reply::results(&[], &[])
    );
    assert_eq!(
        pyexecute(&mut con, "GB().run()", &["ID", "r1"]),
        Reply::results(&[], &[])
    );
}

#[test]
fn upgrade_replaces_the_registrations() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(&mut con, "GB().register(prefix='k*')", &["ID", "s1"]);
    assert_eq!(
        pyexecute(
            &mut con,
            "GB().register(prefix='j*')",
            &["ID", "s1", "UPGRADE"]
        ),
        Reply::ok()
    );
    assert_eq!(prefixes(&mut con), ["j*"]);
    assert_eq!(session_ids(&mut con, &[]), ["s1"]);
}

#[test]
fn a_failing_upgrade_leaves_the_old_session_intact() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(
        &mut con,
        "GB().register(prefix='k*')",
        &["ID", "s1", "DESCRIPTION", "old"],
    );
    let reply = pyexecute(
        &mut con,
        "GB().register(prefix='j*')\nraise Exception('bad')",
        &["ID", "s1", "UPGRADE"],
    );
    assert!(matches!(reply, Reply::Err(_)));
    assert_eq!(prefixes(&mut con), ["k*"]);
    let dump = cmd(&mut con, &["RG.PYDUMPSESSIONS"]);
    assert_eq!(dump.items()[0].items()[3], Reply::bulk("old"));
}

#[test]
fn an_upgrade_that_registers_nothing_replaces_nothing() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(&mut con, "GB().register(prefix='k*')", &["ID", "s1"]);
    assert_eq!(
        pyexecute(&mut con, "x = 1", &["ID", "s1", "UPGRADE"]),
        Reply::ok()
    );
    assert_eq!(prefixes(&mut con), ["k*"]);
}

#[test]
fn upgrade_of_an_unknown_session_creates_it() {
    let server = Server::start();
    let mut con = server.con();
    assert_eq!(
        pyexecute(
            &mut con,
            "GB().register(prefix='k*')",
            &["ID", "new", "UPGRADE"]
        ),
        Reply::ok()
    );
    assert_eq!(session_ids(&mut con, &[]), ["new"]);
}

#[test]
fn replace_with_takes_over_another_session() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(&mut con, "GB().register(prefix='k*')", &["ID", "s1"]);
    assert_eq!(
        pyexecute(
            &mut con,
            "GB().register(prefix='j*')",
            &["ID", "s2", "REPLACE_WITH", "s1"]
        ),
        Reply::ok()
    );
    assert_eq!(session_ids(&mut con, &[]), ["s2"]);
    assert_eq!(prefixes(&mut con), ["j*"]);
    assert_eq!(
        pyexecute(&mut con, "x = 1", &["ID", "s3", "REPLACE_WITH", "nope"]),
        Reply::err("Can not replace with nope, session does not exists.")
    );
    pyexecute(&mut con, "GB().register(prefix='i*')", &["ID", "s4"]);
    assert_eq!(
        pyexecute(&mut con, "x = 1", &["ID", "s4", "REPLACE_WITH", "s2"]),
        Reply::err("Can not replace an existing session s4 with s2")
    );
    assert_eq!(
        pyexecute(&mut con, "x = 1", &["REPLACE_WITH"]),
        Reply::err("REPLACE_WITH is missing")
    );
}

#[test]
fn pydumpsessions_shape() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(
        &mut con,
        "GB().register(prefix='k*')",
        &["ID", "test", "DESCRIPTION", "desc"],
    );
    assert_eq!(
        cmd(&mut con, &["RG.PYDUMPSESSIONS"]),
        Reply::Arr(vec![Reply::Arr(vec![
            Reply::bulk("ID"),
            Reply::bulk("test"),
            Reply::bulk("sessionDescription"),
            Reply::bulk("desc"),
            Reply::bulk("refCount"),
            Reply::Int(1),
            Reply::bulk("linked"),
            Reply::bulk("primary"),
            Reply::bulk("dead"),
            Reply::bulk("false"),
            Reply::bulk("requirementInstallationNeeded"),
            Reply::Int(0),
            Reply::bulk("requirements"),
            Reply::Arr(vec![]),
            Reply::bulk("registrations"),
            Reply::bulks(&[&format!("{ZEROS}-1")]),
        ])])
    );
    // VERBOSE: registrations in RG.DUMPREGISTRATIONS form without PD.
    let verbose = cmd(&mut con, &["RG.PYDUMPSESSIONS", "VERBOSE"]);
    let registration = verbose.items()[0].items()[15].items()[0].items().to_vec();
    assert_eq!(registration.len(), 10);
    assert_eq!(registration[0], Reply::bulk("id"));
    assert_eq!(registration[8], Reply::bulk("ExecutionThreadPool"));
    // No description: null.
    pyexecute(&mut con, "GB().register(prefix='j*')", &["ID", "a-first"]);
    let dump = cmd(&mut con, &["RG.PYDUMPSESSIONS"]);
    assert_eq!(
        dump.items()[0].items()[1],
        Reply::bulk("a-first"),
        "ordered by id"
    );
    assert_eq!(dump.items()[0].items()[3], Reply::Nil);
}

#[test]
fn pydumpsessions_options() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(&mut con, "GB().register(prefix='k*')", &["ID", "test"]);
    let listed = cmd(&mut con, &["RG.PYDUMPSESSIONS", "SESSIONS", "test", "nope"]);
    assert_eq!(listed.items()[0].items()[1], Reply::bulk("test"));
    assert_eq!(
        listed.items()[1],
        Reply::bulk("Session nope does not exists")
    );
    assert_eq!(
        cmd(&mut con, &["RG.PYDUMPSESSIONS", "sessions"]),
        Reply::Arr(vec![])
    );
    assert_eq!(
        cmd(&mut con, &["RG.PYDUMPSESSIONS", "foo"]),
        Reply::err("Unknown option foo")
    );
    assert_eq!(
        cmd(&mut con, &["RG.PYDUMPSESSIONS", "TS"]),
        Reply::err("Unknown option TS")
    );
    assert_eq!(
        cmd(&mut con, &["RG.PYDUMPSESSIONS", "DEAD", "VERBOSE", "DEAD"]),
        Reply::Arr(vec![])
    );
}

#[test]
fn a_replaced_session_is_dead_while_its_execution_runs() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(
        &mut con,
        "import time\nGB().foreach(lambda r: time.sleep(0.5)).register(prefix='k*', mode='async_local')",
        &["ID", "s1"],
    );
    cmd(&mut con, &["SET", "k1", "v"]);
    thread::sleep(Duration::from_millis(100));
    pyexecute(
        &mut con,
        "GB().register(prefix='j*')",
        &["ID", "s1", "UPGRADE"],
    );
    let dead = cmd(&mut con, &["RG.PYDUMPSESSIONS", "DEAD"]);
    let entry = dead.items()[0].items().to_vec();
    assert_eq!(entry[1], Reply::bulk("s1"));
    assert_eq!(entry[7], Reply::bulk("None"));
    assert_eq!(entry[9], Reply::bulk("true"));
    // Once the execution finished and is gone, nothing holds the dead session.
    cmd(&mut con, &["RG.CONFIGSET", "MaxExecutions", "1"]);
    wait_for(&mut con, "the dead session to go", |con| {
        pyexecute(con, "GB().run()", &["UNBLOCKING"]);
        cmd(con, &["RG.PYDUMPSESSIONS", "DEAD"]) == Reply::Arr(vec![])
    });
}

#[test]
fn unregistering_the_last_registration_ends_the_session() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(
        &mut con,
        "GB().register(prefix='k*')\nGB().register(prefix='j*')",
        &["ID", "s1"],
    );
    cmd(&mut con, &["RG.UNREGISTER", &format!("{ZEROS}-1")]);
    assert_eq!(session_ids(&mut con, &[]), ["s1"]);
    cmd(&mut con, &["RG.UNREGISTER", &format!("{ZEROS}-3")]);
    assert_eq!(session_ids(&mut con, &[]), Vec::<String>::new());
    // Its id is free again.
    assert_eq!(
        pyexecute(&mut con, "GB().register(prefix='k*')", &["ID", "s1"]),
        Reply::ok()
    );
}

#[test]
fn registering_from_inside_a_registration_joins_its_session() {
    let server = Server::start();
    let mut con = server.con();
    let script = "
def add(r):
    GB().foreach(lambda r: execute('RPUSH', 'log', r['key'])).register(prefix='new*', mode='sync')
GB().foreach(add).register(prefix='go', mode='async_local')";
    pyexecute(&mut con, script, &["ID", "s1"]);
    cmd(&mut con, &["SET", "go", "1"]);
    wait_for(&mut con, "the inner registration", |con| {
        cmd(con, &["RG.DUMPREGISTRATIONS"]).items().len() == 2
    });
    let dump = cmd(&mut con, &["RG.PYDUMPSESSIONS", "SESSIONS", "s1"]);
    assert_eq!(dump.items()[0].items()[15].items().len(), 2);
    cmd(&mut con, &["SET", "new1", "v"]);
    assert_eq!(
        cmd(&mut con, &["LRANGE", "log", "0", "-1"]),
        Reply::bulks(&["new1"])
    );
}

#[test]
fn upgrade_while_events_keep_coming_loses_no_event() {
    let server = Server::start();
    let mut con = server.con();
    let register = "GB().foreach(lambda r: execute('RPUSH', 'seen', r['key'])).register(prefix='k*', mode='async_local')";
    pyexecute(&mut con, register, &["ID", "s1"]);
    let mut writer = server.con();
    let writes = thread::spawn(move || {
        for i in 0..400 {
            cmd(&mut writer, &["SET", &format!("k{i}"), "v"]);
        }
    });
    for _ in 0..5 {
        thread::sleep(Duration::from_millis(10));
        assert_eq!(
            pyexecute(&mut con, register, &["ID", "s1", "UPGRADE"]),
            Reply::ok()
        );
    }
    writes.join().unwrap();
    wait_for(&mut con, "every event", |con| {
        cmd(con, &["LLEN", "seen"]) == Reply::Int(400)
    });
    thread::sleep(Duration::from_millis(100));
    assert_eq!(
        cmd(&mut con, &["LLEN", "seen"]),
        Reply::Int(400),
        "no event twice"
    );
}

#[test]
fn pyprofile_collects_per_session_while_profiling_is_on() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(
        &mut con,
        "def work(r):\n    return sum(range(100))\nGB().foreach(work).register(prefix='k*', mode='sync')",
        &["ID", "p1"],
    );
    // Nothing profiled yet: pstats refuses the empty profiler.
    let empty = cmd(&mut con, &["RG.PYPROFILE", "STATS", "p1"]);
    let text = empty.as_str();
    assert!(text.contains("in profileGetInfo"), "{text}");
    assert!(text.contains("TypeError: Cannot create or construct a <class 'pstats.Stats'> object from <cProfile.Profile object at 0x"), "{text}");
    cmd(&mut con, &["RG.CONFIGSET", "ProfileExecutions", "1"]);
    cmd(&mut con, &["SET", "k1", "v"]);
    cmd(&mut con, &["SET", "k2", "v"]);
    let stats = cmd(&mut con, &["RG.PYPROFILE", "STATS", "p1", "cumtime"]);
    let stats = stats.as_str();
    assert!(stats.contains("function calls in"), "{stats}");
    assert!(
        stats.contains("Ordered by: internal time"),
        "the order argument is ignored: {stats}"
    );
    assert!(stats.contains("<string>:1(work)"), "{stats}");
    assert!(
        stats.contains("<string>:176(<lambda>)"),
        "register()'s str conversion: {stats}"
    );
    assert!(stats.contains("was called by..."), "{stats}");
    assert!(stats.contains("called..."), "{stats}");
    assert_eq!(cmd(&mut con, &["RG.PYPROFILE", "RESET", "p1"]), Reply::ok());
    let after_reset = cmd(&mut con, &["RG.PYPROFILE", "STATS", "p1"]);
    assert!(after_reset
        .as_str()
        .contains("TypeError: Cannot create or construct"));
}

#[test]
fn pyprofile_errors() {
    let server = Server::start();
    let mut con = server.con();
    let arity = Reply::err("ERR wrong number of arguments for 'rg.pyprofile' command");
    assert_eq!(cmd(&mut con, &["RG.PYPROFILE"]), arity);
    assert_eq!(cmd(&mut con, &["RG.PYPROFILE", "STATS"]), arity);
    assert_eq!(
        cmd(&mut con, &["RG.PYPROFILE", "STATS", "a", "b", "c"]),
        arity
    );
    assert_eq!(cmd(&mut con, &["RG.PYPROFILE", "RESET", "a", "b"]), arity);
    assert_eq!(
        cmd(&mut con, &["RG.PYPROFILE", "STATS", "nope"]),
        Reply::err("session does not exists")
    );
    assert_eq!(
        cmd(&mut con, &["RG.PYPROFILE", "RESET", "nope"]),
        Reply::err("session does not exists")
    );
    assert_eq!(
        cmd(&mut con, &["RG.PYPROFILE", "DUMP", "x"]),
        Reply::err("Wrong subcommand given to RG.PYPROFILE")
    );
}
