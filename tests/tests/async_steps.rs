//! Async steps (runtime.md §6): coroutines and `gearsFuture()` in every operation that may wait,
//! in runs and in registrations, their errors, aborts while waiting, the asyncio helpers, and
//! time events (§3.7).

use e2e::{cmd, list, pyexecute, registration_stat, wait_for, Reply, Server};

/// Five keys `k1..k5` whose values are 1..5.
fn with_numbers() -> (Server, redis::Connection) {
    let server = Server::start();
    let mut con = server.con();
    for i in 1..=5 {
        cmd(&mut con, &["SET", &format!("k{i}"), &i.to_string()]);
    }
    (server, con)
}

/// The sorted results of a script that must run without errors.
fn results(con: &mut redis::Connection, script: &str) -> Vec<String> {
    let reply = pyexecute(con, script, &[]);
    assert_eq!(reply.items()[1], Reply::Arr(vec![]), "errors of {script}");
    reply.items()[0].sorted_strings()
}

/// The errors of a script's execution.
fn errors(con: &mut redis::Connection, script: &str) -> Vec<String> {
    pyexecute(con, script, &[]).items()[1].sorted_strings()
}

/// A coroutine and a future-returning version of each callback shape the operations take.
const HELPERS: &str = "
import threading
def later(value):
    # Completes a gearsFuture from another thread, after the callback returned it.
    f = gearsFuture()
    def go():
        import time
        time.sleep(0.01)
        f.continueRun(value)
    threading.Thread(target=go).start()
    return f
async def soon(value):
    await asyncio.sleep(0.01)
    return value
";

#[test]
fn every_operation_that_may_wait_gives_the_same_results_as_without_waiting() {
    let (_s, mut con) = with_numbers();
    // (pipeline with a {wait} placeholder for how each callback answers, expected results)
    let cases: &[(&str, &[&str])] = &[
        (
            "GB().map(lambda r: {wait}(int(r['value']) * 10)).run()",
            &["10", "20", "30", "40", "50"],
        ),
        (
            "GB().flatmap(lambda r: {wait}([r['key'], r['value']])).run()",
            &["1", "2", "3", "4", "5", "k1", "k2", "k3", "k4", "k5"],
        ),
        (
            "GB().filter(lambda r: {wait}(int(r['value']) % 2 == 1)).map(lambda r: r['key']).run()",
            &["k1", "k3", "k5"],
        ),
        (
            "GB().foreach(lambda r: {wait}(None)).map(lambda r: r['key']).run()",
            &["k1", "k2", "k3", "k4", "k5"],
        ),
        (
            "GB().map(lambda r: int(r['value'])).accumulate(lambda a, r: {wait}((a or 0) + r)).run()",
            &["15"],
        ),
        (
            "GB().map(lambda r: int(r['value'])).aggregate(0, lambda a, r: {wait}(a + r), lambda a, r: a + r).run()",
            &["15"],
        ),
        (
            "GB().map(lambda r: int(r['value'])).groupby(lambda r: str(r % 2), lambda k, a, r: {wait}((a or 0) + r)).run()",
            &["{'key': '0', 'value': 6}", "{'key': '1', 'value': 9}"],
        ),
        (
            "GB().map(lambda r: int(r['value'])).aggregateby(lambda r: str(r % 2), 0, lambda k, a, r: {wait}(a + 1), lambda k, a, r: a + r).run()",
            &["{'key': '0', 'value': 2}", "{'key': '1', 'value': 3}"],
        ),
        ("GB().map(lambda r: {wait}(r)).count().run()", &["5"]),
    ];
    for (pipeline, expected) in cases {
        for wait in ["soon", "later"] {
            let script = format!("{HELPERS}\n{}", pipeline.replace("{wait}", wait));
            assert_eq!(results(&mut con, &script), *expected, "{wait}: {pipeline}");
        }
        let direct = pipeline.replace("{wait}", "");
        assert_eq!(results(&mut con, &direct), *expected, "direct: {pipeline}");
    }
}

#[test]
fn failures_of_waited_records_become_error_records() {
    let (_s, mut con) = with_numbers();
    // A coroutine's exception is reported as str(e), without traceback or type.
    let script = "
async def fail(r):
    raise Exception('failed ' + r['key'])
GB().map(fail).run()";
    // Records already waiting when the first error arrived still report theirs.
    let errs = errors(&mut con, script);
    assert!(!errs.is_empty(), "{errs:?}");
    assert!(errs.iter().all(|e| e.starts_with("failed k")), "{errs:?}");
    let script = "
def fail(r):
    f = gearsFuture()
    def go():
        f.continueFailed('bad ' + r['key'])
    import threading
    threading.Thread(target=go).start()
    return f
GB().filter(fail).run()";
    let errs = errors(&mut con, script);
    assert!(errs[0].starts_with("bad k"), "{errs:?}");
    // A returned future dropped without completion.
    assert_eq!(
        errors(
            &mut con,
            "GB('ShardsIDReader').map(lambda r: gearsFuture()).run()"
        ),
        ["Async record did not called continue"]
    );
    // setFutureException wraps what is not an Exception.
    let script = "
async def timeout(r):
    f = createFuture()
    setFutureException(f, 'timedout')
    return await f
GB('ShardsIDReader').map(timeout).run()";
    assert_eq!(errors(&mut con, script), ["timedout"]);
}

#[test]
fn future_misuse_is_refused_with_the_spec_texts() {
    let (_s, mut con) = with_numbers();
    let gears_error = |con: &mut redis::Connection, script: &str| -> String {
        let errs = errors(con, script);
        assert_eq!(errs.len(), 1, "{script}: {errs:?}");
        errs[0].clone()
    };
    let cases: &[(&str, &str)] = &[
        (
            "GB('ShardsIDReader').map(lambda r: (gearsFuture(), gearsFuture())).run()",
            "gears.error: Can not create async record twice on the same step",
        ),
        (
            "GB('ShardsIDReader').map(lambda r: gearsFuture(1)).run()",
            "gears.error: Future gets no arguments",
        ),
        (
            "GB('ShardsIDReader').map(lambda r: gearsFuture().continueRun(1)).run()",
            "gears.error: Can not handle future untill it returned from the callback",
        ),
        (
            "GB('ShardsIDReader').groupby(lambda r: gearsFuture(), lambda k, a, r: 1).run()",
            "gears.error: Step does not support async",
        ),
        (
            "GB('ShardsIDReader').map(lambda r: gearsFuture().continueRun()).run()",
            "gears.error: Continue function expect an object",
        ),
    ];
    for (script, text) in cases {
        let error = gears_error(&mut con, script);
        assert!(error.contains(text), "{script}: {error}");
    }
    // A future discarded because the callback returned something else cannot be completed.
    let script = "
held = []
def keep(r):
    held.append(gearsFuture())
    return r
def use(r):
    held[0].continueRun(1)
    return r
GB('ShardsIDReader').map(keep).map(use).run()";
    let error = gears_error(&mut con, script);
    assert!(
        error.contains("Can not continue with the same future twice"),
        "{error}"
    );
    // Coroutines where a step cannot wait.
    let script = "
async def key(r):
    return 'k'
GB().groupby(key, lambda k, a, r: 1).run()";
    assert_eq!(
        errors(&mut con, script),
        ["coroutine are not allow on extractor"]
    );
    let script = "
async def reduce(k, records):
    return 1
GB().batchgroupby(lambda r: 'k', reduce).run()";
    assert_eq!(
        errors(&mut con, script),
        ["coroutine are not allow on reduce"]
    );
    // Outside any step.
    let reply = pyexecute(&mut con, "gearsFuture()", &[]);
    assert!(
        reply
            .as_str()
            .contains("Future object can only be created inside certain execution steps"),
        "{reply:?}"
    );
    // await inside atomic().
    let script = "
async def inside(r):
    f = createFuture()
    with atomic():
        await f
GB('ShardsIDReader').map(inside).run()";
    assert_eq!(
        errors(&mut con, script),
        ["await is not allow inside atomic block"]
    );
}

#[test]
fn is_async_allow_says_where_a_step_may_wait() {
    let (_s, mut con) = with_numbers();
    let script = "
async def inside(r):
    return isAsyncAllow()
GB('ShardsIDReader').map(lambda r: [isAsyncAllow(), inside(r)]).map(lambda r: r[0]).run()";
    assert_eq!(results(&mut con, script), ["True"]);
    let script = "
async def inside(r):
    return isAsyncAllow()
GB('ShardsIDReader').map(inside).run()";
    assert_eq!(results(&mut con, script), ["False"]);
    assert_eq!(
        pyexecute(&mut con, "log(str(isAsyncAllow()))", &[]),
        Reply::ok()
    );
}

#[test]
fn coroutines_see_their_session_and_await_nested_runs() {
    let (_s, mut con) = with_numbers();
    let script = "
async def nested(r):
    res = await GB().map(lambda x: x['key']).run()
    if res[1]:
        raise Exception(res[1][0])
    return sorted(res[0])
GB('ShardsIDReader').map(nested).run()";
    assert_eq!(
        results(&mut con, script),
        ["['k1', 'k2', 'k3', 'k4', 'k5']"]
    );
    // The nested execution was dropped once done (and the outer one once it replied).
    assert_eq!(cmd(&mut con, &["RG.DUMPEXECUTIONS"]), Reply::Arr(vec![]));
    // runCoroutine completes a gearsFuture; execute() works inside coroutines.
    let script = "
def start(r):
    f = gearsFuture()
    async def work():
        await asyncio.sleep(0.01)
        return execute('GET', 'k3')
    runCoroutine(work(), f)
    return f
GB('ShardsIDReader').map(start).run()";
    assert_eq!(results(&mut con, script), ["3"]);
}

#[test]
fn registrations_of_every_reader_wait() {
    let server = Server::start();
    let mut con = server.con();
    let script = "
async def slow(r):
    await asyncio.sleep(0.01)
    return 'slow ' + r[1]
GB('CommandReader').map(slow).register(trigger='async', mode='async_local')
GB('CommandReader').map(slow).register(trigger='sync', mode='sync')
async def copy(r):
    await asyncio.sleep(0.01)
    execute('RPUSH', 'copied', r['key'])
GB().foreach(copy).register(prefix='src:*', mode='async_local')
GB('StreamReader').foreach(copy).register(prefix='s:*', mode='async_local')
async def hooked(r):
    await asyncio.sleep(0.01)
    return call_next(r[1], 'hooked-' + r[2])
GB('CommandReader').map(hooked).register(hook='set', keyprefix='h:', mode='sync')
async def answer(r):
    await asyncio.sleep(0.01)
    override_reply('overridden')
GB().foreach(answer).register(prefix='ov:*', commands=['set'], mode='async_local')
";
    assert_eq!(pyexecute(&mut con, script, &[]), Reply::ok());
    assert_eq!(
        cmd(&mut con, &["RG.TRIGGER", "async", "a"]),
        Reply::bulks(&["slow a"])
    );
    // A sync trigger that waits continues in the background, its client blocked meanwhile.
    assert_eq!(
        cmd(&mut con, &["RG.TRIGGER", "sync", "b"]),
        Reply::bulks(&["slow b"])
    );
    cmd(&mut con, &["SET", "src:1", "x"]);
    cmd(&mut con, &["XADD", "s:1", "*", "f", "v"]);
    wait_for(&mut con, "both copies", |con| {
        list(con, "copied").len() == 2
    });
    let mut copied = list(&mut con, "copied");
    copied.sort();
    assert_eq!(copied, ["s:1", "src:1"]);
    // A hook goes on after await, call_next included.
    assert_eq!(cmd(&mut con, &["SET", "h:1", "v"]), Reply::bulk("OK"));
    assert_eq!(cmd(&mut con, &["GET", "h:1"]), Reply::bulk("hooked-v"));
    // A commands= registration overrides the reply after await (SET has a hook too, which does
    // not take this key).
    assert_eq!(
        cmd(&mut con, &["SET", "ov:1", "v"]),
        Reply::bulk("overridden")
    );
}

#[test]
fn where_no_client_can_wait_steps_may_not() {
    let server = Server::start();
    let mut con = server.con();
    let script = "
async def slow(r):
    return 'slow'
GB('CommandReader').map(slow).register(trigger='sync', mode='sync')
GB().foreach(slow).register(prefix='k:*', mode='sync')
";
    assert_eq!(pyexecute(&mut con, script, &[]), Reply::ok());
    let mut pipe = redis::pipe();
    pipe.atomic().cmd("RG.TRIGGER").arg("sync").arg("x");
    let in_multi: redis::RedisResult<redis::Value> = pipe.query(&mut con);
    let text = format!("{in_multi:?}");
    assert!(
        text.contains("<class 'gears.error'>, Value: Creating async record is not allowed"),
        "{text}"
    );
    // A sync KeysReader registration refuses too (RedisGears would abort the server here).
    cmd(&mut con, &["SET", "k:1", "v"]);
    assert_eq!(
        registration_stat(&mut con, "lastError"),
        Reply::bulk(
            "Error type: <class 'gears.error'>, Value: Creating async record is not allowed"
        )
    );
}

#[test]
fn abort_and_unregister_reach_a_waiting_execution() {
    let server = Server::start();
    let mut con = server.con();
    // The coroutine runs on the event loop while the worker that scheduled it leaves the step
    // and parks; it signals only after a pause, so that the abort below meets a waiting
    // execution and not one still in its step (which ends done, with gears.forcestopped).
    let script = "
async def forever(r):
    await asyncio.sleep(0.2)
    execute('INCR', 'parked')
    await createFuture()
GB('ShardsIDReader').map(forever).run()";
    let id = pyexecute(&mut con, script, &["UNBLOCKING"])
        .as_str()
        .to_string();
    wait_for(&mut con, "the execution to wait", |con| {
        cmd(con, &["GET", "parked"]) == Reply::bulk("1")
    });
    assert_eq!(cmd(&mut con, &["RG.ABORTEXECUTION", &id]), Reply::ok());
    let dump = format!("{:?}", cmd(&mut con, &["RG.DUMPEXECUTIONS"]));
    assert!(dump.contains("aborted"), "{dump}");
    // A registration's waiting execution, aborted by UNREGISTER ... ABORTPENDING.
    let script = "
async def forever(r):
    execute('INCR', 'parked')
    await createFuture()
GB('CommandReader').map(forever).register(trigger='forever', mode='async_local')";
    assert_eq!(pyexecute(&mut con, script, &[]), Reply::ok());
    // Sent without waiting for the reply: the client stays blocked while the execution waits.
    let mut waiting = server.con();
    let trigger = redis::cmd("RG.TRIGGER")
        .arg("forever")
        .arg("x")
        .get_packed_command();
    waiting.send_packed_command(&trigger).unwrap();
    wait_for(&mut con, "the registration's execution to wait", |con| {
        cmd(con, &["GET", "parked"]) == Reply::bulk("2")
    });
    let registration = e2e::registration_ids(&mut con)[0].clone();
    assert_eq!(
        cmd(&mut con, &["RG.UNREGISTER", &registration, "abortpending"]),
        Reply::ok()
    );
    wait_for(&mut con, "the waiting execution to end", |con| {
        !format!("{:?}", cmd(con, &["RG.DUMPEXECUTIONS"])).contains("running")
    });
    // Its client hears back.
    assert!(waiting.recv_response().is_ok());
}

#[test]
fn registrations_using_the_async_helpers_survive_a_reload() {
    let server = Server::start();
    let mut con = server.con();
    let script = "
def start(r):
    f = gearsFuture()
    async def work():
        return 'done ' + r[1]
    runCoroutine(work(), f)
    return f
GB('CommandReader').map(start).register(trigger='rc', mode='async_local')";
    assert_eq!(pyexecute(&mut con, script, &[]), Reply::ok());
    assert_eq!(cmd(&mut con, &["DEBUG", "RELOAD"]), Reply::ok());
    assert_eq!(
        cmd(&mut con, &["RG.TRIGGER", "rc", "x"]),
        Reply::bulks(&["done x"])
    );
}

fn int(reply: Reply) -> i64 {
    match reply {
        Reply::Bulk(b) => String::from_utf8(b).unwrap().parse().unwrap(),
        Reply::Nil => 0,
        other => panic!("not a number: {other:?}"),
    }
}

#[test]
fn time_events_tick_until_they_fail_and_keyed_ones_persist() {
    let server = Server::start();
    let mut con = server.con();
    let script = "
registerTE(1, lambda: execute('INCR', 'plain'))
registerTE(1, lambda: execute('INCR', 'keyed'), 'te:1')
def once():
    execute('INCR', 'failing')
    raise Exception('stop here')
registerTE(1, once)";
    assert_eq!(pyexecute(&mut con, script, &[]), Reply::ok());
    assert_eq!(
        cmd(&mut con, &["TYPE", "te:1"]),
        Reply::Simple("rg_timeev".into())
    );
    // The key exists: nothing is created.
    let script = "GB('ShardsIDReader').map(lambda r: registerTE(1, lambda: 1, 'te:1')).run()";
    assert_eq!(results(&mut con, script), ["False"]);
    wait_for(&mut con, "two ticks", |con| {
        int(cmd(con, &["GET", "plain"])) >= 2 && int(cmd(con, &["GET", "keyed"])) >= 2
    });
    assert_eq!(int(cmd(&mut con, &["GET", "failing"])), 1);
    assert!(server
        .log()
        .contains("Error occured on TimeEvent_Callback, error="));
    // Reloaded: the keyed timer is re-armed from the RDB.
    assert_eq!(cmd(&mut con, &["DEBUG", "RELOAD"]), Reply::ok());
    let keyed = int(cmd(&mut con, &["GET", "keyed"]));
    wait_for(&mut con, "a tick after the reload", |con| {
        int(cmd(con, &["GET", "keyed"])) > keyed
    });
    // Deleting the key stops it.
    cmd(&mut con, &["DEL", "te:1"]);
    let stopped_at = int(cmd(&mut con, &["GET", "keyed"]));
    std::thread::sleep(std::time::Duration::from_millis(2200));
    assert!(int(cmd(&mut con, &["GET", "keyed"])) <= stopped_at + 1);
    // Bad arguments.
    for (script, text) in [
        ("registerTE(1)", "not enough arguments for time event"),
        ("registerTE('1', lambda: 1)", "time argument must be a long"),
        ("registerTE(1, 5)", "callback must be a function"),
    ] {
        let reply = pyexecute(&mut con, script, &[]);
        assert!(reply.as_str().contains(text), "{script}: {reply:?}");
    }
}

#[test]
fn keyed_time_events_survive_the_aof_with_and_without_a_rewrite() {
    let data = tempfile::tempdir().unwrap();
    let args = [
        "--dir",
        data.path().to_str().unwrap(),
        "--appendonly",
        "yes",
        "--aof-use-rdb-preamble",
        "no",
    ];
    let mut server = Server::with_server_args(&args, &[]);
    let mut con = server.con();
    let script = "registerTE(1, lambda: execute('INCR', 'ticks'), 'te:aof')";
    assert_eq!(pyexecute(&mut con, script, &[]), Reply::ok());
    // Replayed from the AOF's commands.
    server.restart();
    let mut con = server.con();
    assert_ticking(&mut con, "te:aof", "ticks");
    // Rewritten without the RDB preamble: the timer is written as the command that makes it.
    assert_eq!(
        cmd(&mut con, &["BGREWRITEAOF"]),
        Reply::Simple("Background append only file rewriting started".into())
    );
    wait_for(&mut con, "the rewrite", |c| {
        let info = cmd(c, &["INFO", "persistence"]);
        String::from_utf8_lossy(match &info {
            Reply::Bulk(b) => b,
            _ => return false,
        })
        .contains("aof_rewrite_in_progress:0")
    });
    server.restart();
    let mut con = server.con();
    assert_ticking(&mut con, "te:aof", "ticks");
}

/// The keyed timer `key` exists and its callback (incrementing `counter`) still runs.
fn assert_ticking(con: &mut redis::Connection, key: &str, counter: &str) {
    assert_eq!(cmd(con, &["TYPE", key]), Reply::Simple("rg_timeev".into()));
    let ticks = int(cmd(con, &["GET", counter]));
    wait_for(con, "a tick", |c| int(cmd(c, &["GET", counter])) > ticks);
}
