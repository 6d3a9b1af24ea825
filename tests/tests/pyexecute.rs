//! RG.PYEXECUTE: the path of a record from the keyspace through GB() steps to the reply.

use std::thread;
use std::time::{Duration, Instant};

use e2e::{call, cmd, pyexecute, Reply, Server};

fn with_keys(pairs: &[(&str, &str)]) -> (Server, redis::Connection) {
    let server = Server::start();
    let mut con = server.con();
    for (k, v) in pairs {
        assert_eq!(cmd(&mut con, &["SET", k, v]), Reply::ok());
    }
    (server, con)
}

fn results_of(reply: &Reply) -> (Vec<String>, Vec<String>) {
    let parts = reply.items();
    assert_eq!(parts.len(), 2, "{reply:?}");
    (parts[0].sorted_strings(), parts[1].sorted_strings())
}

#[test]
fn map_lists_the_keys() {
    let (_s, mut con) = with_keys(&[("x", "1"), ("y", "2"), ("z", "3")]);
    let reply = pyexecute(&mut con, "GB().map(lambda r: r['key']).run()", &[]);
    assert_eq!(
        results_of(&reply),
        (vec!["x".into(), "y".into(), "z".into()], vec![])
    );
}

#[test]
fn run_with_no_keys_replies_two_empty_arrays() {
    let (_s, mut con) = with_keys(&[]);
    assert_eq!(
        pyexecute(&mut con, "GB().run()", &[]),
        Reply::results(&[], &[])
    );
}

#[test]
fn a_script_that_runs_nothing_replies_ok() {
    let (_s, mut con) = with_keys(&[]);
    assert_eq!(pyexecute(&mut con, "x = 1", &[]), Reply::ok());
}

#[test]
fn keys_reader_records_read_as_redisgears_prints_them() {
    let (_s, mut con) = with_keys(&[("x", "1")]);
    assert_eq!(
        pyexecute(&mut con, "GB().run()", &[]),
        Reply::results(
            &["{'event': None, 'key': 'x', 'type': 'string', 'value': '1'}"],
            &[]
        )
    );
    assert_eq!(
        pyexecute(&mut con, "GB().run(readValue=False)", &[]),
        Reply::results(&["{'event': None, 'key': 'x'}"], &[])
    );
}

#[test]
fn the_pattern_selects_keys_as_scan_match_would() {
    let (_s, mut con) = with_keys(&[("user:1", "a"), ("user:2", "b"), ("order:1", "c")]);
    let reply = pyexecute(&mut con, "GB().map(lambda r: r['key']).run('user:*')", &[]);
    assert_eq!(results_of(&reply).0, vec!["user:1", "user:2"]);
    let reply = pyexecute(&mut con, "GB().map(lambda r: r['key']).run('*:[1]')", &[]);
    assert_eq!(results_of(&reply).0, vec!["order:1", "user:1"]);
}

#[test]
fn filter_foreach_and_count() {
    let (_s, mut con) = with_keys(&[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")]);
    let script = "GB().filter(lambda r: int(r['value']) % 2 == 0)\
        .foreach(lambda r: r.update({'seen': True})).map(lambda r: r['seen']).count().run()";
    assert_eq!(
        pyexecute(&mut con, script, &[]),
        Reply::results(&["2"], &[])
    );
}

#[test]
fn count_of_nothing_is_no_result_at_all() {
    let (_s, mut con) = with_keys(&[("a", "1")]);
    assert_eq!(
        pyexecute(&mut con, "GB().filter(lambda r: False).count().run()", &[]),
        Reply::results(&[], &[])
    );
}

#[test]
fn unblocking_returns_the_execution_id_and_results_come_later() {
    let (_s, mut con) = with_keys(&[("x", "1")]);
    let id = pyexecute(
        &mut con,
        "GB().map(lambda r: r['key']).run()",
        &["UNBLOCKING"],
    );
    let id = id.as_str().to_string();
    let (shard, counter) = id.split_at(40);
    assert_eq!(shard, "0".repeat(40));
    assert!(
        counter.strip_prefix('-').unwrap().parse::<i64>().is_ok(),
        "{id}"
    );
    assert_eq!(
        cmd(&mut con, &["RG.GETRESULTSBLOCKING", &id]),
        Reply::results(&["x"], &[])
    );
    assert_eq!(
        cmd(&mut con, &["RG.GETRESULTS", &id]),
        Reply::results(&["x"], &[])
    );
    assert_eq!(cmd(&mut con, &["RG.DROPEXECUTION", &id]), Reply::ok());
    assert_eq!(
        cmd(&mut con, &["RG.GETRESULTS", &id]),
        Reply::err("execution plan does not exist")
    );
}

#[test]
fn a_blocking_run_is_dropped_after_it_replied() {
    let (_s, mut con) = with_keys(&[("x", "1")]);
    pyexecute(&mut con, "GB().run()", &[]);
    assert_eq!(cmd(&mut con, &["RG.DUMPEXECUTIONS"]), Reply::Arr(vec![]));
}

/// Redis 7 names the command as registered (lowercase), whatever case the client typed; the
/// original module registers the same name through the same API.
#[test]
fn wrong_arity_is_the_redis_error() {
    let (_s, mut con) = with_keys(&[]);
    assert_eq!(
        cmd(&mut con, &["RG.PYEXECUTE"]),
        Reply::err("ERR wrong number of arguments for 'rg.pyexecute' command")
    );
}

#[test]
fn a_syntax_error_has_no_traceback() {
    let (_s, mut con) = with_keys(&[]);
    assert_eq!(
        pyexecute(&mut con, "GB((", &[]),
        Reply::err(
            "Error type: <class 'SyntaxError'>, Value: '(' was never closed (<string>, line 1)"
        )
    );
}

#[test]
fn an_exception_in_a_step_lands_in_the_errors_list() {
    let (_s, mut con) = with_keys(&[("x", "1")]);
    assert_eq!(
        pyexecute(&mut con, "GB().map(lambda x: notexists(x)).run()", &[]),
        Reply::results(
            &[],
            &["['Traceback (most recent call last):\\n', '  File \"<string>\", line 1, in <lambda>\\n', \"NameError: name 'notexists' is not defined\\n\"]"]
        )
    );
}

#[test]
fn the_first_error_stops_the_reader() {
    let (_s, mut con) = with_keys(&[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")]);
    let reply = pyexecute(&mut con, "GB().map(lambda r: 1 / 0).run()", &[]);
    let (results, errors) = results_of(&reply);
    assert!(results.is_empty());
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].ends_with("'ZeroDivisionError: division by zero\\n']"),
        "{errors:?}"
    );
}

#[test]
fn tracebacks_can_be_turned_off_at_runtime() {
    let (_s, mut con) = with_keys(&[("x", "1")]);
    assert_eq!(
        cmd(&mut con, &["RG.CONFIGSET", "PythonAttemptTraceback", "0"]),
        Reply::Arr(vec![Reply::Simple(
            "OK - value was saved in extra config dictionary".into()
        )])
    );
    assert_eq!(
        pyexecute(&mut con, "GB().map(lambda x: notexists(x)).run()", &[]),
        Reply::results(
            &[],
            &["Error type: <class 'NameError'>, Value: name 'notexists' is not defined"]
        )
    );
}

#[test]
fn flat_errors_read_as_their_message() {
    let (_s, mut con) = with_keys(&[("x", "1")]);
    assert_eq!(
        pyexecute(
            &mut con,
            "GB().map(lambda r: flat_error('ERR bad input')).run()",
            &[]
        ),
        Reply::results(&[], &["ERR bad input"])
    );
}

#[test]
fn builder_errors_show_the_redisgears_prelude_frames() {
    let (_s, mut con) = with_keys(&[]);
    assert_eq!(
        pyexecute(&mut con, "GB().limit('a')", &[]),
        Reply::err("['Traceback (most recent call last):\\n', '  File \"<string>\", line 1, in <module>\\n', '  File \"<string>\", line 187, in deco\\n', 'gears.error: limit argument must be a number\\n']")
    );
    assert_eq!(
        pyexecute(&mut con, "GB('NoSuchReader')", &[]),
        Reply::err("['Traceback (most recent call last):\\n', '  File \"<string>\", line 1, in <module>\\n', '  File \"<string>\", line 84, in __init__\\n', 'gears.error: The given reader does not exists\\n']")
    );
    assert_eq!(
        pyexecute(&mut con, "GB().run(1)", &[]),
        Reply::err("['Traceback (most recent call last):\\n', '  File \"<string>\", line 1, in <module>\\n', '  File \"<string>\", line 172, in run\\n', 'gears.error: regex argument must be a string\\n']")
    );
    assert_eq!(
        pyexecute(&mut con, "GB().map(str)", &[]),
        Reply::err("['Traceback (most recent call last):\\n', '  File \"<string>\", line 1, in <module>\\n', '  File \"<string>\", line 187, in deco\\n', 'gears.error: map argument must be a function\\n']")
    );
}

#[test]
fn only_one_run_per_script() {
    let (_s, mut con) = with_keys(&[]);
    let reply = pyexecute(&mut con, "GB().run()\nGB().run()", &[]);
    assert!(
        reply
            .as_str()
            .ends_with("'gears.error: Can not run more then 1 executions in a single script\\n']"),
        "{reply:?}"
    );
    // The first run was aborted and dropped with the failed script.
    assert_eq!(cmd(&mut con, &["RG.DUMPEXECUTIONS"]), Reply::Arr(vec![]));
}

#[test]
fn options_are_validated_in_order() {
    let (_s, mut con) = with_keys(&[]);
    assert_eq!(
        pyexecute(&mut con, "GB().run()", &["foo"]),
        Reply::err("Unknown arguments were given: foo")
    );
    assert_eq!(
        pyexecute(&mut con, "x=1", &["ID", "bad@id"]),
        Reply::err("ID must be compose of: ['A'-'Z' | 'a'-'z' | '0' - '9' | '-' | '_']")
    );
    assert_eq!(
        pyexecute(&mut con, "x=1", &["ID"]),
        Reply::err("ID is missing")
    );
    assert_eq!(
        pyexecute(&mut con, "x=1", &["DESCRIPTION"]),
        Reply::err("DESCRIPTION is missing")
    );
    assert_eq!(
        pyexecute(
            &mut con,
            "x=1",
            &["unblocking", "ID", "ok_id-1", "DESCRIPTION", "d"]
        ),
        Reply::ok()
    );
}

#[test]
fn non_utf8_script_bytes_get_an_error_and_the_server_stays_up() {
    let (s, mut con) = with_keys(&[("x", "1")]);
    let reply = call(&mut con, &[b"RG.PYEXECUTE", b"GB().run()\xff\xfe"]);
    assert!(
        reply
            .as_str()
            .starts_with("Error type: <class 'SyntaxError'>"),
        "{reply:?}"
    );
    assert_eq!(cmd(&mut con, &["GET", "x"]), Reply::bulk("1"));
    drop(s);
}

#[test]
fn refused_inside_multi() {
    let (_s, mut con) = with_keys(&[]);
    assert_eq!(cmd(&mut con, &["MULTI"]), Reply::ok());
    assert_eq!(
        cmd(&mut con, &["RG.PYEXECUTE", "GB().run()"]),
        Reply::Simple("QUEUED".into())
    );
    assert_eq!(
        cmd(&mut con, &["EXEC"]),
        Reply::Arr(vec![Reply::err(
            "Can not run gears inside a multi exec, lua, or when blocking is not allowed"
        )])
    );
}

#[test]
fn python_errors_keep_the_server_and_the_data() {
    let (mut s, mut con) = with_keys(&[("x", "1")]);
    for script in [
        "raise Exception('x')",
        "GB().map(lambda r: r.nope).run()",
        "import sys; sys.exit(3)",
    ] {
        let reply = pyexecute(&mut con, script, &[]);
        assert!(matches!(reply, Reply::Err(_) | Reply::Arr(_)), "{reply:?}");
    }
    assert!(s.is_alive());
    assert_eq!(cmd(&mut con, &["GET", "x"]), Reply::bulk("1"));
}

#[test]
fn other_clients_are_served_while_a_million_key_execution_runs() {
    let server = Server::start();
    let mut con = server.con();
    assert_eq!(
        cmd(&mut con, &["DEBUG", "POPULATE", "1000000"]),
        Reply::ok()
    );
    let mut runner = server.con();
    let run = thread::spawn(move || {
        pyexecute(
            &mut runner,
            "GB().map(lambda r: r['key']).count().run()",
            &[],
        )
    });
    // Wait until the execution is listed as running, then PING and check it still runs.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut answered_while_running = false;
    while Instant::now() < deadline && !run.is_finished() {
        let running = |con: &mut redis::Connection| {
            cmd(con, &["RG.DUMPEXECUTIONS"])
                .items()
                .iter()
                .any(|e| e.items()[3] == Reply::bulk("running"))
        };
        if running(&mut con) {
            assert_eq!(cmd(&mut con, &["PING"]), Reply::Simple("PONG".into()));
            if running(&mut con) {
                answered_while_running = true;
                break;
            }
        }
        thread::sleep(Duration::from_millis(1));
    }
    assert!(
        answered_while_running,
        "PING was never answered during the execution"
    );
    assert_eq!(run.join().unwrap(), Reply::results(&["1000000"], &[]));
}

#[test]
fn refused_inside_lua() {
    let (_s, mut con) = with_keys(&[]);
    let reply = cmd(
        &mut con,
        &["EVAL", "return redis.pcall('RG.PYEXECUTE', 'x = 1')", "0"],
    );
    assert_eq!(
        reply,
        Reply::err("Can not run gears inside a multi exec, lua, or when blocking is not allowed")
    );
}
