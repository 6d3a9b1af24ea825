//! The names a script finds in its globals (runtime.md §2-§3, §8), used from steps and from the
//! script body.

use e2e::{cmd, pyexecute, traceback, Reply, Server};

fn run_in_step(con: &mut redis::Connection, body: &str) -> Reply {
    let script = format!("def f(x):\n    {body}\nGB('PythonReader').map(f).run(lambda: (yield 1))");
    pyexecute(con, &script, &[])
}

fn flat(con: &mut redis::Connection, expression: &str) -> Reply {
    pyexecute(con, &format!("flat_error(repr({expression}))"), &[])
}

#[test]
fn execute_converts_replies() {
    let server = Server::start();
    let mut con = server.con();
    cmd(&mut con, &["HSET", "h", "f", "v"]);
    assert_eq!(
        flat(
            &mut con,
            "[execute('PING'), execute('SET', 'x', 1), execute('GET', 'missing'), execute('HGETALL', 'h'), execute('INCR', 'n'), execute(), execute('ping', b'\\xff'), execute('echo', 1.5), execute('echo', bytearray(b'ba')), execute('BLPOP', 'nolist', 0)]"
        ),
        Reply::err("['PONG', 'OK', None, ['f', 'v'], 1, [], bytearray(b'\\xff'), '1.5', 'ba', None]")
    );
    assert_eq!(
        flat(
            &mut con,
            "execute('EVAL', \"return {1, redis.error_reply('boom')}\", 0)"
        ),
        Reply::err("[1, 'ERR boom']")
    );
}

/// Each argument reaches Redis as its bytes: `bytes` as they are, a `bytearray` as it was when
/// called, anything else as `str(arg)` (a `str` subclass through its own `__str__`).
#[test]
fn execute_passes_each_argument_as_its_bytes() {
    let server = Server::start();
    let mut con = server.con();
    let script = "class Loud(str):\n    def __str__(self):\n        return 'LOUD'\nclass Thing:\n    def __str__(self):\n        return 'thing'\nflat_error(repr([execute('echo', Loud('quiet')), execute('echo', Thing()), execute('echo', 7), execute('echo', None), execute('echo', 'caf\\u00e9'), execute('echo', b'\\x00z')]))";
    assert_eq!(
        pyexecute(&mut con, script, &[]),
        Reply::err("['LOUD', 'thing', '7', 'None', 'caf\u{e9}', '\\x00z']")
    );
    // A str that has no UTF-8 form fails the call, which then runs nothing.
    let surrogate = "try:\n    execute('SET', 'k', '\\udc80')\nexcept Exception as e:\n    flat_error(type(e).__name__)";
    assert_eq!(
        pyexecute(&mut con, surrogate, &[]),
        Reply::err("UnicodeEncodeError")
    );
    assert_eq!(cmd(&mut con, &["EXISTS", "k"]), Reply::Int(0));
}

#[test]
fn execute_works_from_steps_on_worker_threads() {
    let server = Server::start();
    let mut con = server.con();
    assert_eq!(
        run_in_step(&mut con, "return execute('INCRBY', 'counter', 5)"),
        Reply::results(&["5"], &[])
    );
    assert_eq!(cmd(&mut con, &["GET", "counter"]), Reply::bulk("5"));
}

#[test]
fn execute_errors() {
    let server = Server::start();
    let mut con = server.con();
    cmd(&mut con, &["HSET", "h", "f", "v"]);
    let caught = |con: &mut redis::Connection, call: &str| {
        pyexecute(
            con,
            &format!("try:\n    {call}\nexcept Exception as e:\n    flat_error(repr(str(e)))"),
            &[],
        )
    };
    assert_eq!(
        caught(&mut con, "execute('INCR', 'h')"),
        Reply::err("'WRONGTYPE Operation against a key holding the wrong kind of value\\r\\n'")
    );
    assert_eq!(
        caught(&mut con, "execute('NOSUCHCOMMAND')"),
        Reply::err("'No such file or directory'")
    );
    assert_eq!(
        caught(&mut con, "execute('get')"),
        Reply::err("'Invalid argument'")
    );
    assert_eq!(
        caught(&mut con, "execute('get', 'a', 'b')"),
        Reply::err("'Invalid argument'")
    );
    assert_eq!(
        caught(&mut con, "execute(1)"),
        Reply::err("'the given command must be a string'")
    );
    assert_eq!(
        caught(&mut con, "execute('RG.PYEXECUTE', 'x=1')"),
        Reply::err(
            "'Can not run gears inside a multi exec, lua, or when blocking is not allowed\\r\\n'"
        )
    );
}

#[test]
fn execute_error_traceback_from_a_step() {
    let server = Server::start();
    let mut con = server.con();
    cmd(&mut con, &["SET", "x", "notanumber"]);
    assert_eq!(
        run_in_step(&mut con, "return execute('INCR', 'x')"),
        Reply::results(
            &[],
            &[&traceback(
                &[(2, "f")],
                "gears.error: ERR value is not an integer or out of range\r\n"
            )]
        )
    );
}

#[test]
fn atomic_holds_the_lock_for_a_block() {
    let server = Server::start();
    let mut con = server.con();
    let body = "with atomic():\n        execute('INCR', 'a{%s}' % hashtag())\n        execute('INCR', 'b{%s}' % hashtag())\n        inside = isInAtomicBlock()\n    return [inside, isInAtomicBlock()]";
    assert_eq!(
        run_in_step(&mut con, body),
        Reply::results(&["[True, False]"], &[])
    );
    assert_eq!(
        cmd(&mut con, &["MGET", "a{06S}", "b{06S}"]),
        Reply::bulks(&["1", "1"])
    );
    // In the script body (main thread, lock already held) it nests fine.
    assert_eq!(
        pyexecute(
            &mut con,
            "with atomic():\n    execute('SET', 'c', '1')",
            &[]
        ),
        Reply::ok()
    );
}

#[test]
fn atomic_errors() {
    let server = Server::start();
    let mut con = server.con();
    assert_eq!(
        pyexecute(
            &mut con,
            "with atomic():\n    with atomic():\n        pass",
            &[]
        ),
        Reply::Err(traceback(
            &[(2, "<module>")],
            "gears.error: Already inside an atomic block"
        ))
    );
    assert_eq!(
        pyexecute(&mut con, "atomic().__exit__(None, None, None)", &[]),
        Reply::Err(traceback(
            &[(1, "<module>")],
            "gears.error: Not inside an atomic block"
        ))
    );
    // An exception inside the block is not swallowed, and the lock is released.
    assert_eq!(
        run_in_step(
            &mut con,
            "with atomic():\n        raise ValueError('inside')"
        ),
        Reply::results(&[], &[&traceback(&[(3, "f")], "ValueError: inside")])
    );
    assert_eq!(cmd(&mut con, &["PING"]), Reply::Simple("PONG".into()));
}

#[test]
fn log_writes_to_the_redis_log() {
    let server = Server::start();
    let mut con = server.con();
    assert_eq!(
        pyexecute(&mut con, "log('hello from gears')", &[]),
        Reply::ok()
    );
    assert_eq!(
        pyexecute(&mut con, "log('a warning', level='warning')", &[]),
        Reply::ok()
    );
    assert_eq!(
        pyexecute(&mut con, "log('warning', 'old form')", &[]),
        Reply::ok()
    );
    assert_eq!(
        pyexecute(&mut con, "Log('via the old name')", &[]),
        Reply::ok()
    );
    let log = server.log();
    assert!(log.contains("<rg> GEARS: hello from gears"), "{log}");
    assert!(log.contains("# <rg> GEARS: a warning"), "{log}");
    assert!(log.contains("<rg> Specify log level as the first argument to log function is depricated, use key argument 'level' instead"));
    assert!(log.contains("<rg> GEARS: old form"));
    assert!(
        log.contains("# <rg> Log is deprecated, use log instead\n"),
        "{log}"
    );
    assert!(log.contains("<rg> GEARS: via the old name"));
}

#[test]
fn log_errors() {
    let server = Server::start();
    let mut con = server.con();
    for (call, message) in [
        ("log()", "log function must get a log message as input"),
        (
            "log('a', 'b', 'c')",
            "log function must get a log message as input",
        ),
        ("log(1)", "Log message must be a string"),
        (
            "log('m', level=1)",
            "Log level must be a sting (debug/verbose/notice/warning)",
        ),
        (
            "log('m', level='loud')",
            "Log level should be one of the following : debug,verbose,notice,warning",
        ),
    ] {
        assert_eq!(
            pyexecute(&mut con, call, &[]),
            Reply::Err(traceback(
                &[(1, "<module>")],
                &format!("gears.error: {message}")
            )),
            "{call}"
        );
    }
}

#[test]
fn config_get_errors() {
    let server = Server::start();
    let mut con = server.con();
    assert_eq!(
        pyexecute(&mut con, "configGet()", &[]),
        Reply::Err(traceback(
            &[(1, "<module>")],
            "gears.error: get_config function must get a single key input"
        ))
    );
    assert_eq!(
        pyexecute(&mut con, "configGet(1)", &[]),
        Reply::Err(traceback(
            &[(1, "<module>")],
            "gears.error: get_config key must be a string"
        ))
    );
}

#[test]
fn hashtag_outside_a_cluster() {
    let server = Server::start();
    let mut con = server.con();
    assert_eq!(flat(&mut con, "hashtag()"), Reply::err("'06S'"));
}

#[test]
fn flat_error_argument_count() {
    let server = Server::start();
    let mut con = server.con();
    assert_eq!(
        pyexecute(&mut con, "flat_error()", &[]),
        Reply::Err(traceback(
            &[(1, "<module>")],
            "gears.error: not enough arguments for time flat error"
        ))
    );
    assert_eq!(
        pyexecute(&mut con, "try:\n    flat_error('x')\nexcept Exception as e:\n    flat_error(type(e).__module__ + '.' + type(e).__name__)", &[]),
        Reply::err("gears.flat_error")
    );
}

#[test]
fn hook_builtins_need_their_context() {
    let server = Server::start();
    let mut con = server.con();
    for (call, message) in [
        ("call_next('x')", "Can not get CommandHook ctx"),
        ("get_command()", "Can not get command ctx"),
        ("override_reply(1)", "Can not get command ctx"),
    ] {
        assert_eq!(
            pyexecute(&mut con, call, &[]),
            Reply::Err(traceback(
                &[(1, "<module>")],
                &format!("gears.error: {message}")
            )),
            "{call}"
        );
    }
}

#[test]
fn session_helpers() {
    let server = Server::start();
    let mut con = server.con();
    assert_eq!(
        pyexecute(&mut con, "setGearsSession()", &[]),
        Reply::Err(traceback(
            &[(1, "<module>")],
            "gears.error: Wrong number of args given to setGearsSession"
        ))
    );
    assert_eq!(
        pyexecute(&mut con, "setGearsSession(1)", &[]),
        Reply::Err(traceback(
            &[(1, "<module>")],
            "gears.error: Given object is not of type GearsSession"
        ))
    );
    assert_eq!(
        pyexecute(&mut con, "setGearsSession(None)", &[]),
        Reply::ok()
    );
}

#[test]
fn registered_python_threads_may_build_pipelines() {
    let server = Server::start();
    let mut con = server.con();
    let script = "
import threading
out = []
def body():
    registerGearsThread()
    out.append(type(GB().map(lambda x: x)).__name__)
t = threading.Thread(target=body)
t.start()
t.join()
flat_error(out[0])";
    assert_eq!(pyexecute(&mut con, script, &[]), Reply::err("GearsBuilder"));
}

#[test]
fn the_globals_a_script_starts_with() {
    let server = Server::start();
    let mut con = server.con();
    let names = "GearsBuilder GB execute atomic log configGet gearsConfigGet hashtag flat_error override_reply get_command call_next getGearsSession setGearsSession registerGearsThread isInAtomicBlock gearsCtx PyFlatExecution createKeysOnlyReader shardReaderCallback Log ConfigGet GearsConfigGet redisgears rg copy asyncio cProfile pstats io Future Thread GearsSession createDecorator genDeprecated";
    assert_eq!(
        pyexecute(
            &mut con,
            &format!("flat_error(repr([n for n in '{names}'.split() if n not in globals()]))"),
            &[]
        ),
        Reply::err("[]")
    );
    assert_eq!(
        flat(&mut con, "(redisgears.GearsError.__module__, redisgears.GearsError.__name__, issubclass(redisgears.GearsForceStopped, Exception))"),
        Reply::err("('gears', 'error', False)")
    );
}

#[test]
fn scripts_do_not_share_globals() {
    let server = Server::start();
    let mut con = server.con();
    assert_eq!(pyexecute(&mut con, "mine = 1", &[]), Reply::ok());
    assert_eq!(flat(&mut con, "'mine' in globals()"), Reply::err("False"));
}

#[test]
fn writes_made_by_execute_reach_replicas() {
    let primary = Server::start();
    let replica = Server::start();
    let mut r = replica.con();
    cmd(
        &mut r,
        &["REPLICAOF", "127.0.0.1", &primary.port.to_string()],
    );
    let mut p = primary.con();
    e2e::wait_for(&mut r, "the replica to sync", |r| {
        cmd(r, &["INFO", "replication"])
            .as_str()
            .contains("master_link_status:up")
    });
    assert_eq!(
        run_in_step(&mut p, "execute('SET', 'from:step', 'v')\n    with atomic():\n        execute('INCR', 'from:atomic')\n    return 1"),
        Reply::results(&["1"], &[])
    );
    pyexecute(&mut p, "execute('SET', 'from:script', 'w')", &[]);
    e2e::wait_for(&mut r, "the writes to replicate", |r| {
        cmd(r, &["MGET", "from:step", "from:atomic", "from:script"])
            == Reply::bulks(&["v", "1", "w"])
    });
}
