//! KeysReader `commands=`: registrations fired by a client command, linked to its reply
//! (readers.md §2.4, runtime.md §7.2).

use e2e::{cmd, pyexecute, traceback, Reply, Server};

const READ_THROUGH: &str = "
def fetch(r):
    v = 'loaded:' + r['key']
    execute('set', r['key'], v)
    override_reply(v)
GB().foreach(fetch).register(prefix='cache:*', eventTypes=['keymiss'], commands=['get'], mode='async_local')";

#[test]
fn read_through_cache() {
    let server = Server::start();
    let mut con = server.con();
    assert_eq!(pyexecute(&mut con, READ_THROUGH, &[]), Reply::ok());
    assert_eq!(
        cmd(&mut con, &["GET", "cache:1"]),
        Reply::bulk("loaded:cache:1")
    );
    // Now cached: no keymiss, the real reply.
    assert_eq!(
        cmd(&mut con, &["GET", "cache:1"]),
        Reply::bulk("loaded:cache:1")
    );
    // Keys outside the prefix are not intercepted.
    assert_eq!(cmd(&mut con, &["GET", "other"]), Reply::Nil);
}

#[test]
fn only_the_listed_commands_fire_the_registration() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(
        &mut con,
        "GB().foreach(lambda r: execute('RPUSH', 'log', r['event'])).register(prefix='k*', commands=['set'], mode='sync')",
        &[],
    );
    cmd(&mut con, &["SET", "k1", "v"]);
    cmd(&mut con, &["APPEND", "k1", "x"]);
    cmd(&mut con, &["DEL", "k1"]);
    assert_eq!(
        cmd(&mut con, &["LRANGE", "log", "0", "-1"]),
        Reply::bulks(&["set"])
    );
}

#[test]
fn get_command_and_override_in_a_sync_registration() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(
        &mut con,
        "GB().foreach(lambda r: override_reply(get_command())).register(prefix='s:*', commands=['set'], mode='sync')",
        &[],
    );
    assert_eq!(
        cmd(&mut con, &["SET", "s:1", "v"]),
        Reply::bulks(&["SET", "s:1", "v"])
    );
    assert_eq!(
        cmd(&mut con, &["GET", "s:1"]),
        Reply::bulk("v"),
        "the command itself ran"
    );
}

#[test]
fn override_reply_conversions_and_once_only() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(
        &mut con,
        "GB().foreach(lambda r: override_reply(42)).register(prefix='i:*', commands=['set'], mode='sync')",
        &[],
    );
    assert_eq!(cmd(&mut con, &["SET", "i:1", "v"]), Reply::Int(42));
    let server = Server::start();
    let mut con = server.con();
    pyexecute(
        &mut con,
        "def twice(r):\n    override_reply('+first')\n    override_reply('second')\nGB().foreach(twice).register(prefix='t:*', commands=['set'], mode='sync')",
        &[],
    );
    // The second override fails the step; the first one still answers the client.
    assert_eq!(
        cmd(&mut con, &["SET", "t:1", "v"]),
        Reply::Simple("first".into())
    );
    let dump = cmd(&mut con, &["RG.DUMPREGISTRATIONS"]);
    let data = dump.items()[0].items()[7].items().to_vec();
    assert_eq!(
        data[17],
        Reply::bulk(&traceback(
            &[(3, "twice")],
            "gears.error: Can only override reply once"
        ))
    );
}

#[test]
fn without_an_override_the_client_gets_the_real_reply() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(
        &mut con,
        "GB().foreach(lambda r: None).register(prefix='k*', commands=['get'], eventTypes=['keymiss'], mode='async_local')",
        &[],
    );
    assert_eq!(cmd(&mut con, &["GET", "kmissing"]), Reply::Nil);
}

#[test]
fn inside_multi_the_link_is_dropped() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(&mut con, READ_THROUGH, &[]);
    cmd(&mut con, &["MULTI"]);
    cmd(&mut con, &["GET", "cache:m"]);
    // The client gets the real reply at once; the execution still runs (and cannot override).
    assert_eq!(cmd(&mut con, &["EXEC"]), Reply::Arr(vec![Reply::Nil]));
}

#[test]
fn override_and_get_command_need_a_linked_command() {
    let server = Server::start();
    let mut con = server.con();
    cmd(&mut con, &["SET", "x", "1"]);
    assert_eq!(
        pyexecute(&mut con, "GB().map(lambda r: get_command()).run()", &[]),
        Reply::results(
            &[],
            &[&traceback(
                &[(1, "<lambda>")],
                "gears.error: Can not get command ctx"
            )]
        )
    );
    let server = Server::start();
    let mut con = server.con();
    pyexecute(
        &mut con,
        "GB().foreach(lambda r: override_reply(1, 2)).register(prefix='a:*', commands=['set'], mode='sync')",
        &[],
    );
    cmd(&mut con, &["SET", "a:1", "v"]);
    let dump = cmd(&mut con, &["RG.DUMPREGISTRATIONS"]);
    assert_eq!(
        dump.items()[0].items()[7].items()[17],
        Reply::bulk(&traceback(
            &[(1, "<lambda>")],
            "gears.error: Override reply must get a single argument"
        ))
    );
}

#[test]
fn commands_registration_errors() {
    let server = Server::start();
    let mut con = server.con();
    for (args, message) in [
        ("commands=['nosuchcommand']", "bad reply on COMMAND command"),
        (
            "commands=['multi']",
            "Can not hook a command which are not allowed inside a script",
        ),
        (
            "commands=['zunionstore']",
            "Can not hook a command with moveable keys by key prefix",
        ),
        (
            "commands=['ping']",
            "Can not hook a command by key prefix with none positive first key",
        ),
        (
            "prefix='', commands=['get']",
            "Empty perfix given to command hooker",
        ),
    ] {
        assert_eq!(
            pyexecute(&mut con, &format!("GB().register({args})"), &[]),
            Reply::Err(traceback(
                &[(1, "<module>"), (183, "register")],
                &format!("gears.error: {message}")
            )),
            "{args}"
        );
    }
}

#[test]
fn hook_commands_show_in_dumpregistrations() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(
        &mut con,
        "GB().register(prefix='k*', commands=['get', 'SET'])",
        &[],
    );
    let dump = cmd(&mut con, &["RG.DUMPREGISTRATIONS"]);
    let args = dump.items()[0].items()[7].items()[19].items().to_vec();
    assert_eq!(args[6], Reply::bulk("hookCommands"));
    assert_eq!(args[7], Reply::bulks(&["get", "set"]));
}

#[test]
fn the_real_reply_keeps_its_exact_type() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(
        &mut con,
        "GB().foreach(lambda r: None).register(prefix='a:*', commands=['set'], mode='async_local')",
        &[],
    );
    pyexecute(
        &mut con,
        "GB().foreach(lambda r: None).register(prefix='s:*', commands=['set', 'incr'], mode='sync')",
        &[],
    );
    // Answered after the async execution: still a status reply.
    assert_eq!(
        cmd(&mut con, &["SET", "a:1", "v"]),
        Reply::Simple("OK".into())
    );
    // Answered at once: exactly what Redis replied.
    assert_eq!(
        cmd(&mut con, &["SET", "s:1", "v"]),
        Reply::Simple("OK".into())
    );
    assert_eq!(cmd(&mut con, &["INCR", "s:2"]), Reply::Int(1));
    assert_eq!(
        cmd(&mut con, &["INCR", "s:1"]),
        Reply::err("ERR value is not an integer or out of range")
    );
}
