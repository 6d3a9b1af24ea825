//! CommandReader hooks: `hook=` registrations that override Redis commands (readers.md §7.4).

use e2e::{cmd, pyexecute, traceback, wait_for, Reply, Server};

fn server_with(scripts: &[&str]) -> (Server, redis::Connection) {
    let server = Server::start();
    let mut con = server.con();
    for s in scripts {
        assert_eq!(pyexecute(&mut con, s, &[]), Reply::ok(), "{s}");
    }
    (server, con)
}

#[test]
fn call_next_runs_the_real_command() {
    let (_s, mut con) = server_with(&[
        "GB('CommandReader').map(lambda r: call_next(*r[1:])).register(hook='hset', mode='sync', convertToStr=False)",
    ]);
    assert_eq!(cmd(&mut con, &["HSET", "h", "f", "v"]), Reply::Int(1));
    assert_eq!(cmd(&mut con, &["HGET", "h", "f"]), Reply::bulk("v"));
}

#[test]
fn default_string_conversion_turns_integers_into_strings() {
    let (_s, mut con) = server_with(&[
        "GB('CommandReader').map(lambda r: call_next(*r[1:])).register(hook='hset', mode='sync')",
    ]);
    assert_eq!(
        cmd(&mut con, &["HSET", "h", "a", "1", "b", "2"]),
        Reply::bulk("2")
    );
}

#[test]
fn the_record_is_the_command_as_typed_with_its_arguments() {
    let (_s, mut con) = server_with(&["GB('CommandReader').register(hook='get', mode='sync')"]);
    assert_eq!(cmd(&mut con, &["GeT", "k"]), Reply::bulk("['GeT', 'k']"));
}

#[test]
fn keyprefix_selects_the_calls_a_hook_takes() {
    let (_s, mut con) = server_with(&[
        "GB('CommandReader').map(lambda r: 'hooked').register(hook='get', keyprefix='x:', mode='sync')",
    ]);
    cmd(&mut con, &["SET", "y:1", "plain"]);
    assert_eq!(cmd(&mut con, &["GET", "x:1"]), Reply::bulk("hooked"));
    assert_eq!(cmd(&mut con, &["GET", "y:1"]), Reply::bulk("plain"));
    // Too short to hold a key: left to Redis.
    assert_eq!(
        cmd(&mut con, &["GET"]),
        Reply::err("ERR wrong number of arguments for 'get' command")
    );
}

#[test]
fn hooks_stack_newest_first() {
    let (_s, mut con) = server_with(&[
        "GB('CommandReader').map(lambda r: 'old:' + str(call_next(*r[1:]))).register(hook='get', keyprefix='x', mode='sync')",
        "GB('CommandReader').map(lambda r: 'new:' + str(call_next(*r[1:]))).register(hook='get', mode='sync')",
    ]);
    cmd(&mut con, &["SET", "x1", "v"]);
    cmd(&mut con, &["SET", "y1", "w"]);
    assert_eq!(cmd(&mut con, &["GET", "x1"]), Reply::bulk("new:old:v"));
    assert_eq!(cmd(&mut con, &["GET", "y1"]), Reply::bulk("new:w"));
}

#[test]
fn execute_goes_through_hooks_too() {
    let (_s, mut con) = server_with(&[
        "GB('CommandReader').map(lambda r: 'hooked').register(hook='get', mode='sync')",
    ]);
    assert_eq!(
        pyexecute(&mut con, "flat_error(execute('GET', 'k'))", &[]),
        Reply::err("hooked")
    );
}

#[test]
fn unregistering_a_hook_restores_the_command() {
    let (_s, mut con) = server_with(&[
        "GB('CommandReader').map(lambda r: 'hooked').register(hook='get', mode='sync')",
    ]);
    cmd(&mut con, &["SET", "k", "v"]);
    let dump = cmd(&mut con, &["RG.DUMPREGISTRATIONS"]);
    let entry = dump.items()[0].items().to_vec();
    assert_eq!(
        entry[7].items()[19],
        Reply::Arr(vec![
            Reply::bulk("trigger"),
            Reply::bulk("get"),
            Reply::bulk("inorder"),
            Reply::Int(0)
        ])
    );
    assert_eq!(
        cmd(&mut con, &["RG.UNREGISTER", entry[1].as_str()]),
        Reply::ok()
    );
    assert_eq!(cmd(&mut con, &["GET", "k"]), Reply::bulk("v"));
}

#[test]
fn hook_errors_and_result_count() {
    let (_s, mut con) = server_with(&[
        "GB('CommandReader').map(lambda r: 1 / 0).register(hook='get', mode='sync')",
        "GB('CommandReader').flatmap(lambda r: [1, 2]).register(hook='strlen', mode='sync')",
    ]);
    assert_eq!(
        cmd(&mut con, &["GET", "k"]),
        Reply::Err(traceback(
            &[(1, "<lambda>")],
            "ZeroDivisionError: division by zero"
        ))
    );
    assert_eq!(
        cmd(&mut con, &["STRLEN", "k"]),
        Reply::err("Command hook must return exactly one result")
    );
}

#[test]
fn an_async_local_hook_blocks_the_client_and_cannot_be_stacked_on() {
    let (_s, mut con) = server_with(&[
        "GB('CommandReader').map(lambda r: 'async:' + str(call_next(*r[1:]))).register(hook='get', mode='async_local')",
    ]);
    cmd(&mut con, &["SET", "k", "v"]);
    assert_eq!(cmd(&mut con, &["GET", "k"]), Reply::bulk("async:v"));
    cmd(&mut con, &["MULTI"]);
    cmd(&mut con, &["GET", "k"]);
    assert_eq!(
        cmd(&mut con, &["EXEC"]),
        Reply::Arr(vec![Reply::err(
            "ERR can not run a non-sync execution inside a MULTI/LUA (blocking is not allowed) or on loading."
        )])
    );
    assert_eq!(
        pyexecute(
            &mut con,
            "GB('CommandReader').register(hook='get', mode='sync')",
            &[]
        ),
        Reply::Err(traceback(
            &[(1, "<module>"), (183, "register")],
            "gears.error: Can not override a none sync registration"
        ))
    );
}

#[test]
fn a_non_sync_hook_in_the_same_script_cannot_be_stacked_on() {
    let server = Server::start();
    let mut con = server.con();
    assert_eq!(
        pyexecute(
            &mut con,
            "GB('CommandReader').register(hook='get', mode='async_local')\nGB('CommandReader').register(hook='get', mode='sync')",
            &[]
        ),
        Reply::Err(traceback(
            &[(2, "<module>"), (183, "register")],
            "gears.error: Can not override a none sync registration which already created on this session"
        ))
    );
}

#[test]
fn a_sync_hook_runs_inside_multi() {
    let (_s, mut con) = server_with(&[
        "GB('CommandReader').map(lambda r: 'hooked').register(hook='get', mode='sync')",
    ]);
    cmd(&mut con, &["MULTI"]);
    cmd(&mut con, &["GET", "k"]);
    assert_eq!(
        cmd(&mut con, &["EXEC"]),
        Reply::Arr(vec![Reply::bulk("hooked")])
    );
}

#[test]
fn hook_registration_errors() {
    let server = Server::start();
    let mut con = server.con();
    for (args, message) in [
        (
            "hook='nosuchcommand'",
            "Can not override an unexisting command",
        ),
        (
            "hook='multi'",
            "Can not override a command which are not allowed inside a script",
        ),
        (
            "hook='zunionstore', keyprefix='a'",
            "Can not override a command with moveable keys by key prefix",
        ),
        (
            "hook='ping', keyprefix='a'",
            "Can not override a command by key prefix with none positive first key",
        ),
    ] {
        assert_eq!(
            pyexecute(
                &mut con,
                &format!("GB('CommandReader').register({args})"),
                &[]
            ),
            Reply::Err(traceback(
                &[(1, "<module>"), (183, "register")],
                &format!("gears.error: {message}")
            )),
            "{args}"
        );
    }
}

#[test]
fn call_next_needs_a_hook() {
    let (_s, mut con) = server_with(&[
        "GB('CommandReader').map(lambda r: call_next('x')).register(trigger='t', mode='sync')",
    ]);
    assert_eq!(
        cmd(&mut con, &["RG.TRIGGER", "t"]),
        Reply::Err(traceback(
            &[(1, "<lambda>")],
            "gears.error: Failed executing command"
        ))
    );
}

#[test]
fn replicated_commands_bypass_hooks() {
    let primary = Server::start();
    let replica = Server::start();
    let mut r = replica.con();
    cmd(
        &mut r,
        &["REPLICAOF", "127.0.0.1", &primary.port.to_string()],
    );
    pyexecute(
        &mut r,
        "GB('CommandReader').map(lambda r: 'never').register(hook='set', mode='sync')",
        &[],
    );
    let mut p = primary.con();
    assert_eq!(cmd(&mut p, &["SET", "k", "real"]), Reply::ok());
    wait_for(&mut r, "replication", |r| {
        cmd(r, &["GET", "k"]) == Reply::bulk("real")
    });
}

/// On a cluster node, a rerouted call keeps the original command's keys, so Redis still
/// refuses keys this node does not serve instead of running the hook on them.
#[test]
fn hooked_calls_keep_cluster_routing() {
    let server = Server::with_server_args(
        &[
            "--cluster-enabled",
            "yes",
            "--cluster-require-full-coverage",
            "no",
        ],
        &[],
    );
    let mut con = server.con();
    assert_eq!(
        cmd(&mut con, &["CLUSTER", "ADDSLOTSRANGE", "0", "8191"]),
        Reply::ok()
    );
    wait_for(&mut con, "the cluster to serve its slots", |c| {
        cmd(c, &["CLUSTER", "INFO"])
            .as_str()
            .contains("cluster_state:ok")
    });
    let key_in = |c: &mut redis::Connection, served: bool| {
        (0..1000)
            .map(|i| format!("k{i}"))
            .find(|k| match cmd(c, &["CLUSTER", "KEYSLOT", k]) {
                Reply::Int(slot) => (slot < 8192) == served,
                _ => false,
            })
            .unwrap()
    };
    let (served, elsewhere) = (key_in(&mut con, true), key_in(&mut con, false));
    assert_eq!(
        pyexecute(
            &mut con,
            "GB('CommandReader').map(lambda r: 'hooked').register(hook='get', mode='sync')",
            &[]
        ),
        Reply::ok()
    );
    assert_eq!(cmd(&mut con, &["GET", &served]), Reply::bulk("hooked"));
    assert_eq!(
        cmd(&mut con, &["GET", &elsewhere]),
        Reply::err("CLUSTERDOWN Hash slot not served")
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// With a second node owning the other slots, a hooked command on a key of that node still gets
/// Redis' MOVED redirection.
#[test]
fn hooked_calls_keep_moved_redirections() {
    let node = |bus: u16| {
        let bus = bus.to_string();
        Server::with_server_args(&["--cluster-enabled", "yes", "--cluster-port", &bus], &[])
    };
    let (a, b) = (node(free_port()), node(free_port()));
    let (mut ca, mut cb) = (a.con(), b.con());
    assert_eq!(
        cmd(&mut ca, &["CLUSTER", "ADDSLOTSRANGE", "0", "8191"]),
        Reply::ok()
    );
    assert_eq!(
        cmd(&mut cb, &["CLUSTER", "ADDSLOTSRANGE", "8192", "16383"]),
        Reply::ok()
    );
    let b_bus = match cmd(&mut cb, &["CONFIG", "GET", "cluster-port"]).items()[1]
        .as_str()
        .parse::<u16>()
    {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        cmd(
            &mut ca,
            &[
                "CLUSTER",
                "MEET",
                "127.0.0.1",
                &b.port.to_string(),
                &b_bus.to_string()
            ]
        ),
        Reply::ok()
    );
    wait_for(&mut ca, "the two-node cluster", |c| {
        cmd(c, &["CLUSTER", "INFO"])
            .as_str()
            .contains("cluster_state:ok")
    });
    let elsewhere = (0..1000)
        .map(|i| format!("k{i}"))
        .find(|k| matches!(cmd(&mut ca, &["CLUSTER", "KEYSLOT", k]), Reply::Int(s) if s >= 8192))
        .unwrap();
    let slot = match cmd(&mut ca, &["CLUSTER", "KEYSLOT", &elsewhere]) {
        Reply::Int(s) => s,
        _ => unreachable!(),
    };
    pyexecute(
        &mut ca,
        "GB('CommandReader').map(lambda r: 'hooked').register(hook='get', mode='sync')",
        &[],
    );
    assert_eq!(
        cmd(&mut ca, &["GET", &elsewhere]),
        Reply::err(&format!("MOVED {slot} 127.0.0.1:{}", b.port))
    );
}

#[test]
fn hooks_apply_to_commands_from_lua() {
    let (_s, mut con) = server_with(&[
        "GB('CommandReader').map(lambda r: 'hooked').register(hook='get', mode='sync')",
        "GB('CommandReader').map(lambda r: 'async').register(hook='strlen', mode='async_local')",
    ]);
    assert_eq!(
        cmd(&mut con, &["EVAL", "return redis.call('GET', 'k')", "0"]),
        Reply::bulk("hooked")
    );
    assert_eq!(
        cmd(&mut con, &["EVAL", "return redis.pcall('STRLEN', 'k')", "0"]),
        Reply::err("ERR can not run a non-sync execution inside a MULTI/LUA (blocking is not allowed) or on loading.")
    );
}
