//! The executions family: RG.DUMPEXECUTIONS, RG.GETEXECUTION, RG.GETRESULTS(BLOCKING),
//! RG.DROPEXECUTION, RG.ABORTEXECUTION, eviction at MaxExecutions, INFO and RG.DUMPPLUGINS.

use std::thread::sleep;
use std::time::{Duration, Instant};

use e2e::{cmd, execution_ids, pyexecute, Reply, Server};

const ZEROS: &str = "0000000000000000000000000000000000000000";

/// An UNBLOCKING execution that never ends by itself.
const ENDLESS: &str = "
def gen():
    i = 0
    while True:
        i += 1
        yield i
GB('PythonReader').map(lambda x: x).run(gen)";

fn start(con: &mut redis::Connection, script: &str) -> String {
    let id = pyexecute(con, script, &["UNBLOCKING"]);
    id.as_str().to_string()
}

/// The `execution_plan` map of a local GETEXECUTION view, as (key, value) pairs.
fn plan_of(view: &Reply) -> Vec<(String, Reply)> {
    let shard = &view.items()[0];
    let plan = shard.items()[3].items();
    plan.chunks(2)
        .map(|kv| (kv[0].as_str().to_string(), kv[1].clone()))
        .collect()
}

fn field(plan: &[(String, Reply)], name: &str) -> Reply {
    plan.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("no {name} in {plan:?}"))
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        sleep(Duration::from_millis(5));
    }
}

fn status(con: &mut redis::Connection, id: &str) -> String {
    let view = cmd(con, &["RG.GETEXECUTION", id]);
    field(&plan_of(&view), "status").as_str().to_string()
}

#[test]
fn dumpexecutions_lists_id_status_and_registered() {
    let server = Server::start();
    let mut con = server.con();
    let id = start(&mut con, "GB().run()");
    cmd(&mut con, &["RG.GETRESULTSBLOCKING", &id]);
    assert_eq!(
        cmd(&mut con, &["RG.DUMPEXECUTIONS", "extra", "args", "ignored"]),
        Reply::Arr(vec![Reply::Arr(vec![
            Reply::bulk("executionId"),
            Reply::bulk(&id),
            Reply::bulk("status"),
            Reply::bulk("done"),
            Reply::bulk("registered"),
            Reply::Int(0),
        ])])
    );
}

#[test]
fn getexecution_shows_the_plan_last_step_first() {
    let server = Server::start();
    let mut con = server.con();
    cmd(&mut con, &["SET", "x", "1"]);
    let id = start(&mut con, "GB().map(lambda x: x['key']).run()");
    cmd(&mut con, &["RG.GETRESULTSBLOCKING", &id]);
    let view = cmd(&mut con, &["RG.GETEXECUTION", &id]);
    let shard = view.items();
    assert_eq!(shard.len(), 1);
    assert_eq!(
        shard[0].items()[..3],
        [
            Reply::bulk("shard_id"),
            Reply::bulk(ZEROS),
            Reply::bulk("execution_plan")
        ]
    );
    let plan = plan_of(&view);
    let keys: Vec<&str> = plan.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "status",
            "shards_received",
            "shards_completed",
            "results",
            "errors",
            "total_duration",
            "read_duration",
            "steps"
        ]
    );
    assert_eq!(field(&plan, "status"), Reply::bulk("done"));
    assert_eq!(field(&plan, "shards_received"), Reply::Int(0));
    assert_eq!(field(&plan, "results"), Reply::Int(1));
    assert_eq!(field(&plan, "errors"), Reply::Arr(vec![]));
    assert_eq!(field(&plan, "read_duration"), Reply::Int(0));
    let steps: Vec<(String, String, String)> = field(&plan, "steps")
        .items()
        .iter()
        .map(|s| {
            let s = s.items();
            assert_eq!(s[0], Reply::bulk("type"));
            assert_eq!(s[2], Reply::bulk("duration"));
            assert_eq!(s[3], Reply::Int(0));
            (
                s[1].as_str().into(),
                s[5].as_str().into(),
                s[7].as_str().into(),
            )
        })
        .collect();
    assert_eq!(steps.len(), 4);
    assert_eq!(steps[0], ("collect".into(), "collect".into(), "".into()));
    assert_eq!(
        (steps[1].0.as_str(), steps[1].1.as_str()),
        ("map", "RedisGearsPy_PyCallbackMapper")
    );
    assert!(
        steps[1]
            .2
            .starts_with("<function GearsBuilder.run.<locals>.<lambda> at 0x"),
        "{steps:?}"
    );
    assert!(
        steps[2].2.starts_with("<function <lambda> at 0x"),
        "{steps:?}"
    );
    assert_eq!(
        steps[3],
        (
            "map".into(),
            "RedisGearsPy_ToPyRecordMapper".into(),
            "".into()
        )
    );
    assert_eq!(
        cmd(&mut con, &["RG.GETEXECUTION", &id, "shard"]),
        view,
        "SHARD gives the same local view"
    );
}

#[test]
fn getexecution_errors() {
    let server = Server::start();
    let mut con = server.con();
    let id = start(&mut con, "GB().run()");
    cmd(&mut con, &["RG.GETRESULTSBLOCKING", &id]);
    let missing = format!("{ZEROS}-999");
    let too_short = format!("{ZEROS}-");
    for bad in ["abc", &missing, &format!("{ZEROS}x5"), &too_short] {
        assert_eq!(
            cmd(&mut con, &["RG.GETEXECUTION", bad]),
            Reply::err("execution plan does not exist"),
            "{bad}"
        );
    }
    // The id is looked up before the option.
    assert_eq!(
        cmd(&mut con, &["RG.GETEXECUTION", &missing, "bogus"]),
        Reply::err("execution plan does not exist")
    );
    assert_eq!(
        cmd(&mut con, &["RG.GETEXECUTION", &id, "bogus"]),
        Reply::err("unknown subcommand")
    );
    assert_eq!(
        cmd(&mut con, &["RG.GETEXECUTION", &id, "CLUSTER"]),
        Reply::err("no cluster detected - use `RG.GETEXECUTION <id> [SHARD]` instead")
    );
    assert_eq!(
        cmd(&mut con, &["RG.GETEXECUTION"]),
        Reply::err("ERR wrong number of arguments for 'rg.getexecution' command")
    );
    assert_eq!(
        cmd(&mut con, &["RG.GETEXECUTION", &id, "SHARD", "x"]),
        Reply::err("ERR wrong number of arguments for 'rg.getexecution' command")
    );
}

#[test]
fn a_long_execution_is_listed_running_with_growing_progress_then_aborted_and_dropped() {
    let server = Server::start();
    let mut con = server.con();
    let id = start(&mut con, ENDLESS);
    wait_until("running", || status(&mut con, &id) == "running");
    let progress = |con: &mut redis::Connection| {
        let view = cmd(con, &["RG.GETEXECUTION", &id]);
        let shard = view.items()[0].items().to_vec();
        assert_eq!(shard[4], Reply::bulk("progress"));
        let p = shard[5].items().to_vec();
        assert_eq!(p[0], Reply::bulk("records_read"));
        assert_eq!(p[2], Reply::bulk("records_out"));
        // Results are not known yet while running.
        assert_eq!(field(&plan_of(&view), "results"), Reply::Int(-1));
        match p[1] {
            Reply::Int(n) => n,
            _ => panic!(),
        }
    };
    let first = progress(&mut con);
    wait_until("progress to grow", || progress(&mut con) > first);
    assert!(cmd(&mut con, &["RG.DUMPEXECUTIONS"])
        .items()
        .iter()
        .any(|e| e.items()[1] == Reply::bulk(&id) && e.items()[3] == Reply::bulk("running")));
    assert_eq!(
        cmd(&mut con, &["RG.GETRESULTS", &id]),
        Reply::err("execution is still running")
    );
    assert_eq!(
        cmd(&mut con, &["RG.DROPEXECUTION", &id]),
        Reply::err("can not drop a not yet finished execution, abort it first.")
    );
    assert_eq!(cmd(&mut con, &["RG.ABORTEXECUTION", &id]), Reply::ok());
    // A running Python execution that is force-stopped ends done, with the one error.
    let view = cmd(&mut con, &["RG.GETEXECUTION", &id]);
    assert_eq!(
        view.items()[0].items().len(),
        4,
        "no progress once finished"
    );
    let plan = plan_of(&view);
    assert_eq!(field(&plan, "status"), Reply::bulk("done"));
    let errors = field(&plan, "errors");
    assert_eq!(errors.items().len(), 1);
    assert!(
        errors.items()[0].as_str().contains("gears.forcestopped"),
        "{errors:?}"
    );
    assert_eq!(
        cmd(&mut con, &["RG.ABORTEXECUTION", &id]),
        Reply::ok(),
        "aborting a done one is OK"
    );
    assert_eq!(cmd(&mut con, &["RG.DROPEXECUTION", &id]), Reply::ok());
    assert_eq!(
        cmd(&mut con, &["RG.GETEXECUTION", &id]),
        Reply::err("execution plan does not exist")
    );
    assert_eq!(cmd(&mut con, &["PING"]), Reply::Simple("PONG".into()));
}

#[test]
fn an_execution_aborted_before_it_started_ends_aborted() {
    let server = Server::with_module_args(&["ExecutionThreads", "1"]);
    let mut con = server.con();
    let busy = start(&mut con, ENDLESS);
    wait_until("running", || status(&mut con, &busy) == "running");
    let queued = start(&mut con, "GB().run()");
    assert_eq!(status(&mut con, &queued), "created");
    assert_eq!(cmd(&mut con, &["RG.ABORTEXECUTION", &queued]), Reply::ok());
    assert_eq!(status(&mut con, &queued), "aborted");
    assert_eq!(
        cmd(&mut con, &["RG.GETRESULTS", &queued]),
        Reply::results(&[], &[])
    );
    assert_eq!(cmd(&mut con, &["RG.ABORTEXECUTION", &busy]), Reply::ok());
    assert_eq!(status(&mut con, &busy), "done");
}

#[test]
fn abort_and_drop_errors() {
    let server = Server::start();
    let mut con = server.con();
    let missing = format!("{ZEROS}-999");
    assert_eq!(
        cmd(&mut con, &["RG.ABORTEXECUTION", &missing]),
        Reply::err("execution does not exist")
    );
    assert_eq!(
        cmd(&mut con, &["RG.DROPEXECUTION", &missing]),
        Reply::err("execution plan does not exist")
    );
    assert_eq!(
        cmd(&mut con, &["RG.GETRESULTS", "nope"]),
        Reply::err("execution plan does not exist")
    );
    assert_eq!(
        cmd(&mut con, &["RG.GETRESULTSBLOCKING", &missing]),
        Reply::err("execution plan does not exist")
    );
    for command in [
        "RG.ABORTEXECUTION",
        "RG.DROPEXECUTION",
        "RG.GETRESULTSBLOCKING",
    ] {
        let lower = command.to_ascii_lowercase();
        assert_eq!(
            cmd(&mut con, &[command]),
            Reply::err(&format!(
                "ERR wrong number of arguments for '{lower}' command"
            ))
        );
    }
}

#[test]
fn eviction_at_max_executions_drops_the_oldest() {
    let server = Server::start();
    let mut con = server.con();
    cmd(&mut con, &["RG.CONFIGSET", "MaxExecutions", "3"]);
    let ids: Vec<String> = (0..5).map(|_| start(&mut con, "GB().run()")).collect();
    assert_eq!(execution_ids(&mut con), ids[2..]);
}

#[test]
fn an_evicted_running_execution_keeps_running() {
    let server = Server::start();
    let mut con = server.con();
    cmd(&mut con, &["RG.CONFIGSET", "MaxExecutions", "1"]);
    let script = "
import time
def gen():
    time.sleep(0.3)
    execute('SET', 'finished', '1')
    yield 1
GB('PythonReader').run(gen)";
    let slow = start(&mut con, script);
    start(&mut con, "GB().run()");
    assert_eq!(
        cmd(&mut con, &["RG.GETEXECUTION", &slow]),
        Reply::err("execution plan does not exist")
    );
    wait_until("the evicted execution to finish", || {
        cmd(&mut con, &["GET", "finished"]) == Reply::bulk("1")
    });
}

#[test]
fn profile_executions_measures_steps() {
    let server = Server::start();
    let mut con = server.con();
    assert_eq!(
        cmd(&mut con, &["RG.CONFIGSET", "ProfileExecutions", "1"]),
        Reply::Arr(vec![Reply::ok()])
    );
    let script = "
import time
def gen():
    yield from range(20)
def slow(x):
    time.sleep(0.01)
    return x
GB('PythonReader').map(slow).run(gen)";
    let id = start(&mut con, script);
    cmd(&mut con, &["RG.GETRESULTSBLOCKING", &id]);
    let plan = plan_of(&cmd(&mut con, &["RG.GETEXECUTION", &id]));
    let steps = field(&plan, "steps");
    // Steps are last first: collect, str map, slow map, to-python map.
    let slow_ms = match steps.items()[2].items()[3] {
        Reply::Int(ms) => ms,
        _ => panic!(),
    };
    assert!(slow_ms >= 150, "slow step measured {slow_ms} ms");
    match field(&plan, "total_duration") {
        Reply::Int(ms) => assert!(ms >= slow_ms, "total {ms} < step {slow_ms}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn dumpplugins_and_info() {
    let server = Server::start();
    let mut con = server.con();
    assert_eq!(
        cmd(&mut con, &["RG.DUMPPLUGINS"]),
        Reply::Arr(vec![Reply::Arr(vec![
            Reply::bulk("GearsPythonPlugin"),
            Reply::Int(10000)
        ])])
    );
    start(&mut con, "GB().run()");
    let info = cmd(&mut con, &["INFO", "everything"]);
    let info = info.as_str();
    assert!(
        info.contains("# rg\r\nrg_nexecutions:1\r\nrg_nregistrations:0\r\n"),
        "{info}"
    );
    assert!(info.contains("# rg_regisrations\r\n"));
    assert!(info.contains("# rg_plugins\r\nrg_GearsPythonPlugin:version=10000\r\n"));
}
