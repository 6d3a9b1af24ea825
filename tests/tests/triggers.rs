//! CommandReader trigger registrations: RG.TRIGGER and RG.TRIGGERONKEY.

use e2e::{call, cmd, pyexecute, traceback, Reply, Server};

const ZEROS: &str = "0000000000000000000000000000000000000000";

fn with_trigger(script: &str) -> (Server, redis::Connection) {
    let server = Server::start();
    let mut con = server.con();
    assert_eq!(pyexecute(&mut con, script, &[]), Reply::ok());
    (server, con)
}

#[test]
fn trigger_replies_with_the_results() {
    let (_s, mut con) =
        with_trigger("GB('CommandReader').map(lambda x: len(x)).register(trigger='t')");
    assert_eq!(
        cmd(&mut con, &["RG.TRIGGER", "t", "a"]),
        Reply::bulks(&["2"])
    );
    // Results use the Python reply rules.
    let (_s2, mut con2) = with_trigger(
        "GB('CommandReader').map(lambda x: x[1:]).register(trigger='echo', convertToStr=False, mode='async_local')",
    );
    assert_eq!(
        cmd(&mut con2, &["RG.TRIGGER", "echo", "x", "+OK"]),
        Reply::Arr(vec![Reply::Arr(vec![
            Reply::bulk("x"),
            Reply::Simple("OK".into())
        ])])
    );
}

#[test]
fn the_record_is_the_trigger_and_its_arguments() {
    let (_s, mut con) = with_trigger("GB('CommandReader').register(trigger='show', mode='sync')");
    assert_eq!(
        cmd(&mut con, &["RG.TRIGGER", "show", "a", "b"]),
        Reply::bulks(&["['show', 'a', 'b']"])
    );
    // Arguments are C strings (cut at NUL); invalid UTF-8 becomes a bytearray.
    assert_eq!(
        call(&mut con, &[b"RG.TRIGGER", b"show", b"ab\x00cd", b"\xff"]),
        Reply::bulks(&["['show', 'ab', bytearray(b'\\xff')]"])
    );
}

#[test]
fn countby_example_from_the_spec() {
    let (_s, mut con) = with_trigger(
        "GB('CommandReader').flatmap(lambda x: x[1:]).countby().register(trigger='cnt')",
    );
    let mut got = cmd(&mut con, &["RG.TRIGGER", "cnt", "a", "a", "b"])
        .items()
        .iter()
        .map(|r| r.as_str().to_string())
        .collect::<Vec<_>>();
    got.sort();
    assert_eq!(
        got,
        ["{'key': 'a', 'value': 2}", "{'key': 'b', 'value': 1}"]
    );
}

#[test]
fn trigger_on_key_takes_the_key_as_an_argument() {
    let (_s, mut con) =
        with_trigger("GB('CommandReader').register(trigger='k', mode='async_local')");
    assert_eq!(
        cmd(&mut con, &["RG.TRIGGERONKEY", "k", "user:1", "x"]),
        Reply::bulks(&["['k', 'user:1', 'x']"])
    );
}

#[test]
fn an_error_is_an_error_reply() {
    let (_s, mut con) =
        with_trigger("GB('CommandReader').map(lambda x: noexists(x)).register(trigger='bad')");
    assert_eq!(
        cmd(&mut con, &["RG.TRIGGER", "bad"]),
        Reply::Err(traceback(
            &[(1, "<lambda>")],
            "NameError: name 'noexists' is not defined"
        ))
    );
    let (_s2, mut con2) = with_trigger("GB('CommandReader').map(lambda x: flat_error('ERR bad input')).register(trigger='flat', mode='sync')");
    assert_eq!(
        cmd(&mut con2, &["RG.TRIGGER", "flat"]),
        Reply::err("ERR bad input")
    );
}

#[test]
fn trigger_errors() {
    let (_s, mut con) =
        with_trigger("GB('CommandReader').register(trigger='t', mode='async_local')");
    assert_eq!(
        cmd(&mut con, &["RG.TRIGGER", "nope"]),
        Reply::err("ERR subcommand not found")
    );
    assert_eq!(
        cmd(&mut con, &["RG.TRIGGER", "T"]),
        Reply::err("ERR subcommand not found"),
        "case-sensitive"
    );
    assert_eq!(
        cmd(&mut con, &["RG.TRIGGER"]),
        Reply::err("ERR wrong number of arguments for 'rg.trigger' command")
    );
    // A non-sync trigger cannot run inside MULTI.
    cmd(&mut con, &["MULTI"]);
    cmd(&mut con, &["RG.TRIGGER", "t"]);
    assert_eq!(
        cmd(&mut con, &["EXEC"]),
        Reply::Arr(vec![Reply::err(
            "ERR can not run a non-sync execution inside a MULTI/LUA (blocking is not allowed) or on loading."
        )])
    );
}

#[test]
fn a_sync_trigger_runs_inside_multi() {
    let (_s, mut con) = with_trigger("GB('CommandReader').map(lambda x: execute('INCR', 'n')).register(trigger='s', mode='sync')");
    cmd(&mut con, &["MULTI"]);
    cmd(&mut con, &["RG.TRIGGER", "s"]);
    cmd(&mut con, &["RG.TRIGGER", "s"]);
    assert_eq!(
        cmd(&mut con, &["EXEC"]),
        Reply::Arr(vec![Reply::bulks(&["1"]), Reply::bulks(&["2"])])
    );
}

#[test]
fn inorder_triggers_run_one_after_another() {
    let (s, mut con) = with_trigger(
        "import time\nGB('CommandReader').foreach(lambda x: execute('RPUSH', 'log', 'start')).foreach(lambda x: time.sleep(0.05)).foreach(lambda x: execute('RPUSH', 'log', 'end')).register(trigger='o', mode='async_local', inorder=True)",
    );
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let mut c = s.con();
            std::thread::spawn(move || cmd(&mut c, &["RG.TRIGGER", "o"]))
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    assert_eq!(
        cmd(&mut con, &["LRANGE", "log", "0", "-1"]),
        Reply::bulks(&["start", "end", "start", "end", "start", "end"])
    );
}

#[test]
fn trigger_executions_are_dropped_and_counted() {
    let (_s, mut con) =
        with_trigger("GB('CommandReader').register(trigger='t', mode='async_local')");
    cmd(&mut con, &["RG.TRIGGER", "t"]);
    cmd(&mut con, &["RG.TRIGGER", "t"]);
    assert_eq!(cmd(&mut con, &["RG.DUMPEXECUTIONS"]), Reply::Arr(vec![]));
    let dump = cmd(&mut con, &["RG.DUMPREGISTRATIONS"]);
    let entry = dump.items()[0].items().to_vec();
    assert_eq!(entry[3], Reply::bulk("CommandReader"));
    let data = entry[7].items().to_vec();
    assert_eq!(
        data[2..6],
        [
            Reply::bulk("numTriggered"),
            Reply::Int(2),
            Reply::bulk("numSuccess"),
            Reply::Int(2)
        ]
    );
    assert_eq!(
        data[19],
        Reply::Arr(vec![
            Reply::bulk("trigger"),
            Reply::bulk("t"),
            Reply::bulk("inorder"),
            Reply::Int(0)
        ])
    );
}

fn register_error(script: &str, message: &str) {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(
        &mut con,
        "GB('CommandReader').register(trigger='taken')",
        &["ID", "first"],
    );
    assert_eq!(
        pyexecute(&mut con, script, &[]),
        Reply::Err(traceback(
            &[
                (script.lines().count() as u32, "<module>"),
                (183, "register")
            ],
            &format!("gears.error: {message}")
        )),
        "{script}"
    );
}

#[test]
fn command_reader_register_errors() {
    register_error(
        "GB('CommandReader').register(trigger=1)",
        "trigger argument is not string",
    );
    register_error(
        "GB('CommandReader').register(hook=1)",
        "hook argument is not string",
    );
    register_error(
        "GB('CommandReader').register(trigger='x', keyprefix=1)",
        "keyprefix argument is not string",
    );
    register_error(
        "GB('CommandReader').register(trigger='x', inorder=1)",
        "inorder argument is be boolean",
    );
    register_error(
        "GB('CommandReader').register()",
        "no trigger or hook argument was given",
    );
    // The positional value is the ignored prefix.
    register_error(
        "GB('CommandReader').register('x')",
        "no trigger or hook argument was given",
    );
    register_error(
        "GB('CommandReader').register(trigger='taken')",
        "trigger already registered",
    );
    register_error(
        "GB('CommandReader').register(trigger='twice')\nGB('CommandReader').register(trigger='twice')",
        "trigger already registered in this session",
    );
}

#[test]
fn upgrading_the_session_that_owns_a_trigger_keeps_the_name() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(
        &mut con,
        "GB('CommandReader').register(trigger='t')",
        &["ID", "s1"],
    );
    assert_eq!(
        pyexecute(
            &mut con,
            "GB('CommandReader').map(lambda x: 'v2').register(trigger='t')",
            &["ID", "s1", "UPGRADE"]
        ),
        Reply::ok()
    );
    assert_eq!(cmd(&mut con, &["RG.TRIGGER", "t"]), Reply::bulks(&["v2"]));
    assert_eq!(cmd(&mut con, &["RG.DUMPREGISTRATIONS"]).items().len(), 1);
    let id = format!("{ZEROS}-3");
    assert_eq!(
        cmd(&mut con, &["RG.DUMPREGISTRATIONS"]).items()[0].items()[1],
        Reply::bulk(&id)
    );
}
