//! Event-driven KeysReader registrations and the registration management commands.

use e2e::{
    cmd, execution_ids, pyexecute, registration_stat as stat, traceback, wait_for, Reply, Server,
};

const ZEROS: &str = "0000000000000000000000000000000000000000";

/// A sync registration that logs `<event>:<key>` of every event on keys starting with `k`.
const EVENT_LOG: &str =
    "GB().foreach(lambda r: execute('RPUSH', 'log', r['event'] + ':' + r['key'])).register(prefix='k*', mode='sync')";

fn log_of(con: &mut redis::Connection) -> Vec<String> {
    cmd(con, &["LRANGE", "log", "0", "-1"])
        .items()
        .iter()
        .map(|r| r.as_str().to_string())
        .collect()
}

#[test]
fn register_replies_ok_and_returns_the_registration_id() {
    let server = Server::start();
    let mut con = server.con();
    assert_eq!(pyexecute(&mut con, "GB().register()", &[]), Reply::ok());
    // GB() took plan id 0, its registration id 1; this script's builder takes 2, its
    // registration 3.
    assert_eq!(
        pyexecute(&mut con, "flat_error(GB().register(prefix='x'))", &[]),
        Reply::err(&format!("{ZEROS}-3"))
    );
}

#[test]
fn sync_runs_inside_the_command_that_fired_it() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(&mut con, EVENT_LOG, &[]);
    cmd(&mut con, &["SET", "k1", "v"]);
    assert_eq!(log_of(&mut con), ["set:k1"]);
}

#[test]
fn every_event_type_fires_with_its_name() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(&mut con, EVENT_LOG, &[]);
    for c in [
        &["SET", "ks", "1"][..],
        &["INCR", "ks"],
        &["APPEND", "ks", "x"],
        &["EXPIRE", "ks", "100"],
        &["PERSIST", "ks"],
        &["RENAME", "ks", "kr"],
        &["DEL", "kr"],
        &["HSET", "kh", "f", "v"],
        &["HDEL", "kh", "f"],
        &["LPUSH", "kl", "a"],
        &["RPUSH", "kl", "b"],
        &["LPOP", "kl"],
        &["SADD", "kset", "m"],
        &["ZADD", "kz", "1", "m"],
        &["XADD", "kx", "1-1", "f", "v"],
        &["GET", "kmissing"],
    ] {
        cmd(&mut con, c);
    }
    assert_eq!(
        log_of(&mut con),
        [
            "set:ks",
            "incrby:ks",
            "append:ks",
            "expire:ks",
            "persist:ks",
            "rename_from:ks",
            "rename_to:kr",
            "del:kr",
            "hset:kh",
            "hdel:kh",
            "del:kh",
            "lpush:kl",
            "rpush:kl",
            "lpop:kl",
            "sadd:kset",
            "zadd:kz",
            "xadd:kx",
            "keymiss:kmissing"
        ]
    );
}

#[test]
fn expired_keys_fire_expired() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(&mut con, EVENT_LOG, &[]);
    cmd(&mut con, &["SET", "kexp", "1", "PX", "1"]);
    wait_for(&mut con, "expiry", |con| {
        log_of(con).contains(&"expired:kexp".to_string())
    });
}

#[test]
fn event_types_filter_case_insensitively() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(
        &mut con,
        "GB().foreach(lambda r: execute('RPUSH', 'log', r['event'] + ':' + r['key'])).register(prefix='k*', mode='sync', eventTypes=['SET', 'del'])",
        &[],
    );
    for c in [
        &["SET", "k1", "v"][..],
        &["APPEND", "k1", "x"],
        &["DEL", "k1"],
    ] {
        cmd(&mut con, c);
    }
    assert_eq!(log_of(&mut con), ["set:k1", "del:k1"]);
}

#[test]
fn key_types_are_checked_after_the_command() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(
        &mut con,
        "GB().foreach(lambda r: execute('RPUSH', 'log', r['event'] + ':' + r['key'])).register(prefix='k*', mode='sync', keyTypes=['string', 'stream'])",
        &[],
    );
    for c in [
        &["SET", "k1", "v"][..],
        &["HSET", "k2", "f", "v"],
        &["XADD", "k3", "1-1", "f", "v"],
        &["DEL", "k1"],
    ] {
        cmd(&mut con, c);
    }
    // A deleted key has type 'empty', so the del does not fire.
    assert_eq!(log_of(&mut con), ["set:k1", "xadd:k3"]);
}

#[test]
fn prefix_without_star_is_one_exact_key() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(
        &mut con,
        "GB().foreach(lambda r: execute('RPUSH', 'log', r['key'])).register(prefix='bar', mode='sync')",
        &[],
    );
    for key in ["bar", "barn", "ba"] {
        cmd(&mut con, &["SET", key, "v"]);
    }
    assert_eq!(log_of(&mut con), ["bar"]);
}

#[test]
fn records_of_events() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(
        &mut con,
        "GB().foreach(lambda r: execute('RPUSH', 'log', str(r))).register(prefix='k*', mode='sync')",
        &[],
    );
    pyexecute(
        &mut con,
        "GB().foreach(lambda r: execute('RPUSH', 'log', str(r))).register(prefix='n*', mode='sync', readValue=False)",
        &[],
    );
    cmd(&mut con, &["SET", "k1", "v"]);
    cmd(&mut con, &["SET", "n1", "v"]);
    assert_eq!(
        log_of(&mut con),
        [
            "{'event': 'set', 'key': 'k1', 'type': 'string', 'value': 'v'}",
            "{'event': 'set', 'key': 'n1'}"
        ]
    );
}

#[test]
fn sync_reads_at_the_event_async_reads_when_it_runs() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(
        &mut con,
        "GB().foreach(lambda r: execute('RPUSH', 'synclog', r['value'])).register(prefix='k*', mode='sync')",
        &[],
    );
    pyexecute(
        &mut con,
        "GB().foreach(lambda r: execute('RPUSH', 'asynclog', r['value'])).register(prefix='k*', mode='async_local')",
        &[],
    );
    let mut pipe = redis::pipe();
    pipe.atomic()
        .cmd("SET")
        .arg("k")
        .arg("v1")
        .cmd("SET")
        .arg("k")
        .arg("v2");
    let _: redis::Value = pipe.query(&mut con).unwrap();
    wait_for(&mut con, "two async runs", |con| {
        cmd(con, &["LLEN", "asynclog"]) == Reply::Int(2)
    });
    assert_eq!(
        cmd(&mut con, &["LRANGE", "synclog", "0", "-1"]),
        Reply::bulks(&["v1", "v2"])
    );
    assert_eq!(
        cmd(&mut con, &["LRANGE", "asynclog", "0", "-1"]),
        Reply::bulks(&["v2", "v2"])
    );
}

#[test]
fn async_executions_of_a_registration_run_in_trigger_order() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(
        &mut con,
        "GB().foreach(lambda r: execute('RPUSH', 'log', r['key'])).register(prefix='k*')",
        &[],
    );
    let keys: Vec<String> = (0..30).map(|i| format!("k{i}")).collect();
    for k in &keys {
        cmd(&mut con, &["SET", k, "v"]);
    }
    wait_for(&mut con, "all runs", |con| {
        cmd(con, &["LLEN", "log"]) == Reply::Int(30)
    });
    assert_eq!(log_of(&mut con), keys);
    // Their executions are listed as registered ones.
    let listed = cmd(&mut con, &["RG.DUMPEXECUTIONS"]);
    assert!(listed.items().iter().all(|e| e.items()[5] == Reply::Int(1)));
}

#[test]
fn an_exception_in_a_sync_registration_keeps_the_write_and_counts_a_failure() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(
        &mut con,
        "GB().map(lambda r: 1 / 0).register(prefix='k*', mode='sync')",
        &[],
    );
    assert_eq!(cmd(&mut con, &["SET", "k1", "v"]), Reply::ok());
    assert_eq!(cmd(&mut con, &["GET", "k1"]), Reply::bulk("v"));
    assert_eq!(stat(&mut con, "numTriggered"), Reply::Int(1));
    assert_eq!(stat(&mut con, "numFailures"), Reply::Int(1));
    assert_eq!(stat(&mut con, "numSuccess"), Reply::Int(0));
    assert_eq!(
        stat(&mut con, "lastError"),
        Reply::bulk(&traceback(
            &[(1, "<lambda>")],
            "ZeroDivisionError: division by zero"
        ))
    );
}

#[test]
fn dumpregistrations_full_shape() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(
        &mut con,
        "GB(desc='counts users').foreach(lambda r: None).register(prefix='user:*', mode='async_local', eventTypes=['set'], keyTypes=['string'])",
        &["ID", "s1", "DESCRIPTION", "my session"],
    );
    cmd(&mut con, &["SET", "user:1", "v"]);
    wait_for(&mut con, "the run", |con| {
        stat(con, "numSuccess") == Reply::Int(1)
    });
    let id = format!("{ZEROS}-1");
    let mut dump = cmd(&mut con, &["RG.DUMPREGISTRATIONS"]);
    // Durations are measured: take them from the reply once checked for shape and consistency.
    let (last, total, avg) = {
        let data = dump.items()[0].items()[7].items();
        let ms = |r: &Reply| match r {
            Reply::Int(ms) => *ms,
            other => panic!("not milliseconds: {other:?}"),
        };
        (
            ms(&data[11]),
            ms(&data[13]),
            data[15].as_str().parse::<f64>().unwrap(),
        )
    };
    assert!(
        last >= 0 && total == last && avg == total as f64,
        "{last} {total} {avg}"
    );
    if let Reply::Arr(entries) = &mut dump {
        if let Reply::Arr(entry) = &mut entries[0] {
            if let Reply::Arr(data) = &mut entry[7] {
                data[11] = Reply::Int(0);
                data[13] = Reply::Int(0);
                data[15] = Reply::bulk("0");
            }
        }
    }
    assert_eq!(
        dump,
        Reply::Arr(vec![Reply::Arr(vec![
            Reply::bulk("id"),
            Reply::bulk(&id),
            Reply::bulk("reader"),
            Reply::bulk("KeysReader"),
            Reply::bulk("desc"),
            Reply::bulk("counts users"),
            Reply::bulk("RegistrationData"),
            Reply::Arr(vec![
                Reply::bulk("mode"),
                Reply::bulk("async_local"),
                Reply::bulk("numTriggered"),
                Reply::Int(1),
                Reply::bulk("numSuccess"),
                Reply::Int(1),
                Reply::bulk("numFailures"),
                Reply::Int(0),
                Reply::bulk("numAborted"),
                Reply::Int(0),
                Reply::bulk("lastRunDurationMS"),
                Reply::Int(0),
                Reply::bulk("totalRunDurationMS"),
                Reply::Int(0),
                Reply::bulk("avgRunDurationMS"),
                Reply::bulk("0"),
                Reply::bulk("lastError"),
                Reply::Nil,
                Reply::bulk("args"),
                Reply::Arr(vec![
                    Reply::bulk("regex"),
                    Reply::bulk("user:*"),
                    Reply::bulk("eventTypes"),
                    Reply::bulks(&["set"]),
                    Reply::bulk("keyTypes"),
                    Reply::bulks(&["string"]),
                    Reply::bulk("hookCommands"),
                    Reply::Nil,
                ]),
            ]),
            Reply::bulk("PD"),
            Reply::bulk(&format!(
                "{{'sessionName':'s1', 'sessionDescription':'my session', 'refCount': 2, 'linkedTo': primary, 'dead': false, 'isInstallationNeeded':0, 'registrationsList':['{id}'], 'depsList':[]}}"
            )),
            Reply::bulk("ExecutionThreadPool"),
            Reply::bulk("DefaultPool"),
        ])])
    );
}

#[test]
fn unregister_stops_firing() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(&mut con, EVENT_LOG, &[]);
    let id = format!("{ZEROS}-1");
    cmd(&mut con, &["SET", "k1", "v"]);
    assert_eq!(cmd(&mut con, &["RG.UNREGISTER", &id]), Reply::ok());
    assert_eq!(cmd(&mut con, &["RG.DUMPREGISTRATIONS"]), Reply::Arr(vec![]));
    cmd(&mut con, &["SET", "k2", "v"]);
    assert_eq!(log_of(&mut con), ["set:k1"]);
    assert_eq!(
        cmd(&mut con, &["RG.UNREGISTER", &id]),
        Reply::err("execution is not registered")
    );
    assert_eq!(
        cmd(&mut con, &["RG.UNREGISTER"]),
        Reply::err("ERR wrong number of arguments for 'rg.unregister' command")
    );
    assert_eq!(
        cmd(&mut con, &["RG.UNREGISTER", &id, "abortpending", "x"]),
        Reply::err("ERR wrong number of arguments for 'rg.unregister' command")
    );
}

#[test]
fn unregister_abortpending_aborts_queued_executions() {
    let server = Server::with_module_args(&["ExecutionThreads", "1"]);
    let mut con = server.con();
    pyexecute(
        &mut con,
        "import time\nGB().foreach(lambda r: time.sleep(0.2)).register(prefix='k*', mode='async_local')",
        &[],
    );
    for i in 0..5 {
        cmd(&mut con, &["SET", &format!("k{i}"), "v"]);
    }
    assert_eq!(
        cmd(
            &mut con,
            &["RG.UNREGISTER", &format!("{ZEROS}-1"), "ABORTPENDING"]
        ),
        Reply::ok()
    );
    wait_for(&mut con, "the queue to settle", |con| {
        cmd(con, &["RG.DUMPEXECUTIONS"])
            .items()
            .iter()
            .all(|e| e.items()[3] == Reply::bulk("done") || e.items()[3] == Reply::bulk("aborted"))
    });
    let statuses: Vec<String> = cmd(&mut con, &["RG.DUMPEXECUTIONS"])
        .items()
        .iter()
        .map(|e| e.items()[3].as_str().to_string())
        .collect();
    assert!(statuses.iter().any(|s| s == "aborted"), "{statuses:?}");
}

#[test]
fn pause_and_unpause_are_for_stream_readers_only() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(&mut con, "GB().register()", &[]);
    let id = format!("{ZEROS}-1");
    assert_eq!(
        cmd(&mut con, &["RG.PAUSEREGISTRATIONS", &id]),
        Reply::err("Reader KeysReader does not support pause")
    );
    assert_eq!(
        cmd(&mut con, &["RG.UNPAUSEREGISTRATIONS", &id]),
        Reply::err("Reader KeysReader does not support unpause")
    );
    assert_eq!(
        cmd(&mut con, &["RG.PAUSEREGISTRATIONS", "nope"]),
        Reply::err(&format!("Execution nope does not exists on shard {ZEROS}"))
    );
    assert_eq!(
        cmd(&mut con, &["RG.PAUSEREGISTRATIONS", "ABORTPENDING"]),
        Reply::err("ERR no registration to pause")
    );
    assert_eq!(
        cmd(&mut con, &["RG.PAUSEREGISTRATIONS", &id, &id]),
        Reply::err("ERR wrong number of arguments for 'rg.pauseregistrations' command")
    );
}

#[test]
fn clear_registrations_stats() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(
        &mut con,
        "GB().map(lambda r: 1 / 0).register(prefix='k*', mode='sync')",
        &[],
    );
    cmd(&mut con, &["SET", "k1", "v"]);
    assert_eq!(cmd(&mut con, &["RG.CLEARREGISTRATIONSSTATS"]), Reply::ok());
    for name in [
        "numTriggered",
        "numSuccess",
        "numFailures",
        "numAborted",
        "lastRunDurationMS",
        "totalRunDurationMS",
    ] {
        assert_eq!(stat(&mut con, name), Reply::Int(0), "{name}");
    }
    assert_eq!(stat(&mut con, "lastError"), Reply::Nil);
    assert_eq!(
        cmd(&mut con, &["RG.CLEARREGISTRATIONSSTATS", "x"]),
        Reply::err("ERR wrong number of arguments for 'rg.clearregistrationsstats' command")
    );
}

#[test]
fn max_executions_per_registration_keeps_the_newest() {
    let server = Server::start();
    let mut con = server.con();
    cmd(
        &mut con,
        &["RG.CONFIGSET", "MaxExecutionsPerRegistration", "2"],
    );
    pyexecute(
        &mut con,
        "GB().register(prefix='k*', mode='async_local')",
        &[],
    );
    for i in 0..5 {
        cmd(&mut con, &["SET", &format!("k{i}"), "v"]);
    }
    wait_for(&mut con, "five runs", |con| {
        stat(con, "numSuccess") == Reply::Int(5)
    });
    assert_eq!(cmd(&mut con, &["RG.DUMPEXECUTIONS"]).items().len(), 2);
}

#[test]
fn a_failing_script_registers_nothing() {
    let server = Server::start();
    let mut con = server.con();
    let reply = pyexecute(&mut con, "GB().register()\nraise Exception('no')", &[]);
    assert!(matches!(reply, Reply::Err(_)));
    assert_eq!(cmd(&mut con, &["RG.DUMPREGISTRATIONS"]), Reply::Arr(vec![]));
}

#[test]
fn register_and_run_in_one_script_replies_ok_and_the_run_continues() {
    let server = Server::start();
    let mut con = server.con();
    cmd(&mut con, &["SET", "x", "1"]);
    assert_eq!(
        pyexecute(
            &mut con,
            "GB().register(prefix='k*')\nGB().run()",
            &["UNBLOCKING"]
        ),
        Reply::ok()
    );
    let listed = cmd(&mut con, &["RG.DUMPEXECUTIONS"]);
    assert_eq!(listed.items().len(), 1);
}

#[test]
fn on_registered_runs_when_the_registration_applies() {
    let server = Server::start();
    let mut con = server.con();
    assert_eq!(
        pyexecute(
            &mut con,
            "GB().register(prefix='k*', onRegistered=lambda: execute('SET', 'ready', '1'))",
            &[]
        ),
        Reply::ok()
    );
    assert_eq!(cmd(&mut con, &["GET", "ready"]), Reply::bulk("1"));
    // Its errors are only logged.
    assert_eq!(
        pyexecute(
            &mut con,
            "GB().register(prefix='j*', onRegistered=lambda: 1 / 0)",
            &[]
        ),
        Reply::ok()
    );
    assert!(
        server
            .log()
            .contains("Error occured on RedisGearsPy_OnRegistered, error='['Traceback"),
        "{}",
        server.log()
    );
}

#[test]
fn on_unregistered_runs_when_this_shard_unregisters_it() {
    let mut server = Server::start();
    let mut con = server.con();
    let register = |con: &mut redis::Connection, options: &[&str]| {
        pyexecute(
            con,
            "GB().register(prefix='k*', onUnregistered=lambda: execute('INCR', 'gone'))",
            options,
        )
    };
    assert_eq!(register(&mut con, &["ID", "s"]), Reply::ok());
    assert_eq!(cmd(&mut con, &["GET", "gone"]), Reply::Nil);
    // Replaced by an upgrade of its session: the old registration is unregistered.
    assert_eq!(register(&mut con, &["ID", "s", "UPGRADE"]), Reply::ok());
    assert_eq!(cmd(&mut con, &["GET", "gone"]), Reply::bulk("1"));
    // The callback is part of the saved form: it survives a restart.
    cmd(&mut con, &["SAVE"]);
    server.restart();
    let mut con = server.con();
    let id = e2e::registration_ids(&mut con).remove(0);
    assert_eq!(cmd(&mut con, &["RG.UNREGISTER", &id]), Reply::ok());
    assert_eq!(cmd(&mut con, &["GET", "gone"]), Reply::bulk("2"));
    // Its errors are only logged.
    pyexecute(
        &mut con,
        "GB().register(prefix='j*', onUnregistered=lambda: 1 / 0)",
        &[],
    );
    let id = e2e::registration_ids(&mut con).remove(0);
    assert_eq!(cmd(&mut con, &["RG.UNREGISTER", &id]), Reply::ok());
    assert!(
        server
            .log()
            .contains("Error occured on RedisGearsPy_OnUnregistered, error='['Traceback"),
        "{}",
        server.log()
    );
}

#[test]
fn the_deprecated_regex_keyword_wins_over_prefix() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(
        &mut con,
        "GB().foreach(lambda r: execute('RPUSH', 'log', r['key'])).register(prefix='a*', regex='k*', mode='sync', unknownKeyword=1)",
        &[],
    );
    cmd(&mut con, &["SET", "a1", "v"]);
    cmd(&mut con, &["SET", "k1", "v"]);
    assert_eq!(log_of(&mut con), ["k1"]);
    assert!(server.log().contains(
        "Using regex argument with register is deprecated and missleading, use prefix instead."
    ));
}

/// Redis does not re-enter a module's notification callback, so a sync registration writing
/// keys it matches does not fire itself (no loop).
#[test]
fn writes_inside_a_sync_registration_fire_no_registration() {
    let mut server = Server::start();
    let mut con = server.con();
    pyexecute(
        &mut con,
        "GB().foreach(lambda r: execute('INCR', 'k:count')).register(prefix='k*', mode='sync')",
        &[],
    );
    assert_eq!(cmd(&mut con, &["SET", "k1", "v"]), Reply::ok());
    assert!(server.is_alive());
    assert_eq!(cmd(&mut con, &["GET", "k:count"]), Reply::bulk("1"));
    assert_eq!(stat(&mut con, "numTriggered"), Reply::Int(1));
}

/// Writes made by an async execution (outside any notification) do fire registrations.
#[test]
fn writes_inside_an_async_registration_fire_others() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(&mut con, "GB().foreach(lambda r: execute('SET', 'j' + r['key'], '1')).register(prefix='k*', mode='async_local')", &[]);
    pyexecute(&mut con, "GB().foreach(lambda r: execute('RPUSH', 'log', r['key'])).register(prefix='jk*', mode='sync')", &[]);
    cmd(&mut con, &["SET", "k1", "v"]);
    wait_for(&mut con, "the chained registration", |con| {
        log_of(con) == ["jk1"]
    });
}

#[test]
fn replicas_do_not_fire() {
    let primary = Server::start();
    let replica = Server::try_start(&[]).unwrap_or_else(|f| panic!("{}", f.log));
    let mut r = replica.con();
    cmd(
        &mut r,
        &["REPLICAOF", "127.0.0.1", &primary.port.to_string()],
    );
    // A full sync replaces what the replica had with the primary's registrations.
    let mut p = primary.con();
    pyexecute(&mut p, "GB().register(prefix='k*', mode='sync')", &[]);
    wait_for(&mut r, "the registration", |r| {
        cmd(r, &["RG.DUMPREGISTRATIONS"]) != Reply::Arr(vec![])
    });
    cmd(&mut p, &["SET", "k1", "v"]);
    wait_for(&mut r, "replication", |r| {
        cmd(r, &["GET", "k1"]) == Reply::bulk("v")
    });
    assert_eq!(stat(&mut r, "numTriggered"), Reply::Int(0));
}

#[test]
fn info_lists_registrations() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(
        &mut con,
        "GB().register(prefix='k*', eventTypes=['set', 'del'])",
        &["ID", "s"],
    );
    let info = cmd(&mut con, &["INFO", "rg"]);
    let info = info.as_str();
    assert!(info.contains("rg_nregistrations:1"), "{info}");
    let everything = cmd(&mut con, &["INFO", "everything"]);
    let line = everything
        .as_str()
        .lines()
        .find(|l| l.starts_with(&format!("rg_{ZEROS}-1:")))
        .unwrap_or_else(|| panic!("{everything:?}"))
        .to_string();
    assert!(
        line.contains("reader=KeysReader,mode=async,numTriggered=0"),
        "{line}"
    );
    assert!(
        line.contains("regex=k*,eventTypes=[set|del],keyTypes=None,hookCommands=None"),
        "{line}"
    );
    assert!(line.contains("PD={'sessionName':'s'|"), "{line}");
}

/// The Redis lock and the GIL taken in both orders at once: a step on a worker thread calls
/// `execute()` in a loop (holding the GIL, it takes the Redis lock when free, else lets the GIL
/// go and waits) while the client's writes fire a sync registration on the main thread (holding
/// the Redis lock, it takes the GIL). Nothing hangs and every call lands.
#[test]
fn worker_steps_and_sync_registrations_run_side_by_side() {
    let server = Server::start();
    let mut con = server.con();
    con.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let sync =
        "GB().foreach(lambda r: execute('INCR', 'fired')).register(prefix='w:*', mode='sync')";
    assert_eq!(pyexecute(&mut con, sync, &[]), Reply::ok());
    // Spins on execute() until every write below fired the sync registration.
    let worker = "def f(x):\n    while int(execute('GET', 'fired') or 0) < 10000:\n        execute('INCR', 'worker')\n    return 'done'\nGB('PythonReader').map(f).run(lambda: (yield 1))";
    let id = pyexecute(&mut con, worker, &["UNBLOCKING"]);
    assert!(id.as_str().starts_with(ZEROS), "{id:?}");
    wait_for(&mut con, "the worker spinning", |con| {
        cmd(con, &["EXISTS", "worker"]) == Reply::Int(1)
    });
    for round in 0..20 {
        let mut pipe = redis::pipe();
        for i in 0..500 {
            pipe.cmd("SET")
                .arg(format!("w:{round}:{i}"))
                .arg(i)
                .ignore();
        }
        pipe.query::<()>(&mut con).expect("pipelined writes");
    }
    assert_eq!(cmd(&mut con, &["GET", "fired"]), Reply::bulk("10000"));
    wait_for(&mut con, "the worker to see every write", |con| {
        cmd(con, &["RG.GETRESULTS", id.as_str()]) == Reply::results(&["done"], &[])
    });
}

/// A sync execution of one record through steps that each take records one by one skips the
/// engine (unless executions are profiled): it must list, answer and count exactly as the
/// engine's would. The same registration fires once each way and both are compared.
#[test]
fn a_sync_execution_without_the_engine_matches_one_with_it() {
    let server = Server::start();
    let mut con = server.con();
    // [key, 0, 'x'] flattened (last first), 'x' dropped, 0 fails, the key passes.
    let script = "GB().map(lambda r: [r['key'], 0, 'x']).flatmap(lambda x: x).filter(lambda x: x != 'x').map(lambda x: 10 / x if isinstance(x, int) else x).foreach(lambda x: execute('RPUSH', 'seen', x)).register(prefix='k*', mode='sync')";
    assert_eq!(pyexecute(&mut con, script, &[]), Reply::ok());
    let fire = |con: &mut redis::Connection, key: &str| -> (String, Reply, Reply) {
        assert_eq!(cmd(con, &["SET", key, "v"]), Reply::ok());
        let listed = cmd(con, &["RG.DUMPEXECUTIONS"]);
        let last = listed
            .items()
            .last()
            .expect("the execution is listed")
            .clone();
        let id = last.items()[1].as_str().to_string();
        assert_eq!(last.items()[3], Reply::bulk("done"));
        assert_eq!(last.items()[5], Reply::Int(1));
        let results = cmd(con, &["RG.GETRESULTS", &id]);
        let view = cmd(con, &["RG.GETEXECUTION", &id]);
        let plan = view.items()[0].items()[3].clone();
        (id, results, plan)
    };
    let (lean_id, lean_results, lean_plan) = fire(&mut con, "k1");
    assert_eq!(
        cmd(&mut con, &["RG.CONFIGSET", "ProfileExecutions", "1"]),
        Reply::Arr(vec![Reply::Simple("OK".into())])
    );
    let (engine_id, engine_results, engine_plan) = fire(&mut con, "k2");
    assert_ne!(lean_id, engine_id);
    let error = traceback(&[(1, "<lambda>")], "ZeroDivisionError: division by zero");
    assert_eq!(lean_results, Reply::results(&["k1"], &[&error]));
    assert_eq!(engine_results, Reply::results(&["k2"], &[&error]));
    // status, shards, results count, errors: the same; durations and steps are not compared
    // (profiling times the steps).
    assert_eq!(lean_plan.items()[..10], engine_plan.items()[..10]);
    assert_eq!(
        cmd(&mut con, &["LRANGE", "seen", "0", "-1"]),
        Reply::bulks(&["k1", "k2"])
    );
    assert_eq!(stat(&mut con, "numTriggered"), Reply::Int(2));
    assert_eq!(stat(&mut con, "numFailures"), Reply::Int(2));
    assert_eq!(stat(&mut con, "lastError"), Reply::bulk(&error));
}

/// The steps RG.GETEXECUTION lists for execution `id`, by type, last step first.
fn step_types(con: &mut redis::Connection, id: &str) -> Vec<String> {
    let view = cmd(con, &["RG.GETEXECUTION", id]);
    let plan = view.items()[0].items()[3].items().to_vec();
    let steps = plan
        .chunks(2)
        .find(|kv| kv[0].as_str() == "steps")
        .map(|kv| kv[1].clone())
        .expect("steps in the execution plan");
    steps
        .items()
        .iter()
        .map(|s| s.items()[1].as_str().to_string())
        .collect()
}

#[test]
fn register_converts_to_str_and_collects_unless_told_not_to_and_ignores_unknown_keywords() {
    let server = Server::start();
    let mut con = server.con();
    let by_default = "GB().map(lambda r: len(r['key'])).register(prefix='s*', mode='sync')";
    let without = "GB().map(lambda r: len(r['key'])).register(prefix='n*', mode='sync', convertToStr=False, collect=False, whatever=3)";
    assert_eq!(pyexecute(&mut con, by_default, &[]), Reply::ok());
    assert_eq!(pyexecute(&mut con, without, &[]), Reply::ok());
    cmd(&mut con, &["SET", "s12", "v"]);
    cmd(&mut con, &["SET", "n1", "v"]);
    let ids = execution_ids(&mut con);
    let [converted, raw] = ids.as_slice() else {
        panic!("one execution per registration: {ids:?}");
    };
    assert_eq!(
        cmd(&mut con, &["RG.GETRESULTS", converted]),
        Reply::results(&["3"], &[])
    );
    assert_eq!(
        cmd(&mut con, &["RG.GETRESULTS", raw]),
        Reply::Arr(vec![Reply::Arr(vec![Reply::Int(2)]), Reply::Arr(vec![])])
    );
    assert_eq!(
        step_types(&mut con, converted),
        ["collect", "map", "map", "map"]
    );
    assert_eq!(step_types(&mut con, raw), ["map", "map"]);
}
