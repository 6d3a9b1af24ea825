//! StreamReader registrations (readers.md §4.3): consumer group, batches, duration, failure
//! policies, trimming, pause/unpause, sync mode, argument errors.

use std::time::{Duration, Instant};

use e2e::{
    cmd, list, pyexecute, registration_data, registration_ids, registration_stat as stat, wait_for,
    Reply, Server,
};

const GROUP: &str = "__gears_consumer_group__";

/// A registration on streams `s*` that appends `<key>:<field a>` of each entry to `log`.
fn logging(args: &str) -> String {
    format!(
        "GB('StreamReader').foreach(lambda r: execute('RPUSH', 'log', r['key'] + ':' + r['value']['a'])).register(prefix='s*'{args})"
    )
}

fn int(con: &mut redis::Connection, args: &[&str]) -> i64 {
    match cmd(con, args) {
        Reply::Int(i) => i,
        Reply::Bulk(b) => String::from_utf8(b).unwrap().parse().unwrap(),
        other => panic!("not an integer: {other:?}"),
    }
}

fn xadd(con: &mut redis::Connection, key: &str, a: &str) {
    cmd(con, &["XADD", key, "*", "a", a]);
}

fn wait_for_log(con: &mut redis::Connection, len: usize) {
    wait_for(con, &format!("{len} log entries"), |c| {
        int(c, &["LLEN", "log"]) >= len as i64
    });
}

/// Entries the group delivered and nobody acknowledged.
fn unacknowledged(con: &mut redis::Connection, key: &str) -> i64 {
    match cmd(con, &["XPENDING", key, GROUP]) {
        Reply::Arr(items) => match &items[0] {
            Reply::Int(n) => *n,
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

fn status(con: &mut redis::Connection) -> String {
    stat(con, "status").as_str().to_string()
}

#[test]
fn existing_and_new_entries_are_processed_in_order_acknowledged_and_trimmed() {
    let server = Server::start();
    let mut con = server.con();
    xadd(&mut con, "s1", "1");
    xadd(&mut con, "s1", "2");
    // Not a stream: ignored, no error.
    cmd(&mut con, &["SET", "s-string", "x"]);
    assert_eq!(pyexecute(&mut con, &logging(""), &[]), Reply::ok());
    wait_for_log(&mut con, 2);
    xadd(&mut con, "s1", "3");
    xadd(&mut con, "s2", "4");
    xadd(&mut con, "other", "5");
    wait_for_log(&mut con, 4);
    let mut log = list(&mut con, "log");
    log.sort();
    assert_eq!(log, ["s1:1", "s1:2", "s1:3", "s2:4"]);
    wait_for(&mut con, "trimmed streams", |c| {
        int(c, &["XLEN", "s1"]) == 0 && int(c, &["XLEN", "s2"]) == 0
    });
    assert_eq!(unacknowledged(&mut con, "s1"), 0);
    assert_eq!(int(&mut con, &["XLEN", "other"]), 1);
    // The group is the spec's, with its consumer.
    let groups = cmd(&mut con, &["XINFO", "GROUPS", "s1"]);
    assert_eq!(groups.items()[0].items()[1], Reply::bulk(GROUP));
    let consumers = cmd(&mut con, &["XINFO", "CONSUMERS", "s1", GROUP]);
    assert_eq!(
        consumers.items()[0].items()[1],
        Reply::bulk("__gears_client__")
    );
    assert_eq!(stat(&mut con, "numFailures"), Reply::Int(0));
    assert_eq!(stat(&mut con, "lastError"), Reply::Nil);
    assert_eq!(
        cmd(&mut con, &["GET", "s-string"]),
        Reply::bulk("x"),
        "a non-stream key under the prefix is left alone"
    );
}

#[test]
fn records_have_the_spec_shape() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(
        &mut con,
        "GB('StreamReader').foreach(lambda r: execute('SET', 'rec', str(r))).register(prefix='s')",
        &[],
    );
    cmd(&mut con, &["XADD", "s", "1-1", "f1", "v1", "f2", "v2"]);
    wait_for(&mut con, "the record", |c| {
        cmd(c, &["EXISTS", "rec"]) == Reply::Int(1)
    });
    // Fields in RedisGears' dict order (readers.md §1).
    assert_eq!(
        cmd(&mut con, &["GET", "rec"]),
        Reply::bulk("{'key': 's', 'id': '1-1', 'value': {'f2': 'v2', 'f1': 'v1'}}")
    );
}

#[test]
fn without_trimming_entries_stay_but_are_acknowledged() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(&mut con, &logging(", trimStream=False"), &[]);
    for i in 0..5 {
        xadd(&mut con, "s", &i.to_string());
    }
    wait_for_log(&mut con, 5);
    wait_for(&mut con, "acknowledged", |c| unacknowledged(c, "s") == 0);
    assert_eq!(int(&mut con, &["XLEN", "s"]), 5);
    assert_eq!(list(&mut con, "log"), ["s:0", "s:1", "s:2", "s:3", "s:4"]);
}

/// A registration that appends the size of each batch to `sizes`.
fn batch_sizes(args: &str) -> String {
    format!(
        "GB('StreamReader').aggregate(0, lambda a, r: a + 1, lambda a, b: a + b).foreach(lambda n: execute('RPUSH', 'sizes', n)).register(prefix='s', {args})"
    )
}

#[test]
fn a_batch_runs_when_full() {
    let server = Server::start();
    let mut con = server.con();
    assert_eq!(
        pyexecute(&mut con, &batch_sizes("batch=3"), &[]),
        Reply::ok()
    );
    xadd(&mut con, "s", "1");
    xadd(&mut con, "s", "2");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(list(&mut con, "sizes"), Vec::<String>::new());
    assert_eq!(stat(&mut con, "numTriggered"), Reply::Int(0));
    xadd(&mut con, "s", "3");
    wait_for(&mut con, "one batch", |c| int(c, &["LLEN", "sizes"]) == 1);
    assert_eq!(list(&mut con, "sizes"), ["3"]);
    assert_eq!(int(&mut con, &["XLEN", "s"]), 0);
}

#[test]
fn a_partial_batch_runs_after_its_duration() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(&mut con, &batch_sizes("batch=100, duration=300"), &[]);
    let start = Instant::now();
    xadd(&mut con, "s", "1");
    xadd(&mut con, "s", "2");
    wait_for(&mut con, "the timed batch", |c| {
        int(c, &["LLEN", "sizes"]) == 1
    });
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "ran before its duration: {:?}",
        start.elapsed()
    );
    assert_eq!(list(&mut con, "sizes"), ["2"]);
    let data = registration_data(&mut con);
    let args = &data.iter().find(|(k, _)| k == "args").unwrap().1;
    assert_eq!(
        args,
        &Reply::Arr(vec![
            Reply::bulk("batchSize"),
            Reply::Int(100),
            Reply::bulk("durationMS"),
            Reply::Int(300),
            Reply::bulk("stream"),
            Reply::bulk("s"),
            Reply::bulk("trimStream"),
            Reply::Int(1),
            Reply::bulk("onFailedPolicy"),
            Reply::bulk("continue"),
            Reply::bulk("retryInterval"),
            Reply::Int(1),
        ])
    );
}

/// A registration on `s` that fails on entries whose `a` is `bad` and logs the others.
fn failing_on_bad(args: &str) -> String {
    format!(
        "def f(r):\n    if r['value']['a'] == 'bad':\n        raise Exception('bad entry')\n    execute('RPUSH', 'log', r['value']['a'])\nGB('StreamReader').foreach(f).register(prefix='s'{args})"
    )
}

#[test]
fn continue_acknowledges_failed_entries_and_goes_on() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(&mut con, &failing_on_bad(""), &[]);
    xadd(&mut con, "s", "bad");
    xadd(&mut con, "s", "good");
    wait_for_log(&mut con, 1);
    assert_eq!(list(&mut con, "log"), ["good"]);
    wait_for(&mut con, "acknowledged", |c| unacknowledged(c, "s") == 0);
    assert_eq!(stat(&mut con, "numFailures"), Reply::Int(1));
    assert!(stat(&mut con, "lastError").as_str().contains("bad entry"));
    assert_eq!(status(&mut con), "OK");
}

#[test]
fn abort_stops_the_registration_and_keeps_the_entries() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(&mut con, &failing_on_bad(", onFailedPolicy='abort'"), &[]);
    xadd(&mut con, "s", "bad");
    wait_for(&mut con, "ABORTED", |c| status(c) == "ABORTED");
    xadd(&mut con, "s", "good");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(list(&mut con, "log"), Vec::<String>::new());
    assert_eq!(unacknowledged(&mut con, "s"), 1);
    assert_eq!(int(&mut con, &["XLEN", "s"]), 2);
    assert_eq!(stat(&mut con, "numTriggered"), Reply::Int(1));
    // Unpausing an aborted registration changes nothing.
    let id = registration_ids(&mut con).remove(0);
    assert_eq!(
        cmd(&mut con, &["RG.UNPAUSEREGISTRATIONS", &id]),
        Reply::ok()
    );
    assert_eq!(status(&mut con), "ABORTED");
}

#[test]
fn retry_runs_the_same_entries_again_after_the_interval() {
    let server = Server::start();
    let mut con = server.con();
    // Fails on its first attempt only.
    let script = "def f(r):\n    if int(execute('INCR', 'attempts')) == 1:\n        raise Exception('first attempt')\n    execute('RPUSH', 'log', r['value']['a'])\nGB('StreamReader').foreach(f).register(prefix='s', onFailedPolicy='ReTrY', onFailedRetryInterval=1)";
    pyexecute(&mut con, script, &[]);
    let start = Instant::now();
    xadd(&mut con, "s", "1");
    wait_for(&mut con, "waiting for retry", |c| {
        status(c) == "WAITING_FOR_RETRY_ON_FAILURE"
    });
    assert_eq!(stat(&mut con, "numFailures"), Reply::Int(1));
    wait_for_log(&mut con, 1);
    assert!(start.elapsed() >= Duration::from_millis(900));
    assert_eq!(list(&mut con, "log"), ["1"]);
    wait_for(&mut con, "OK again", |c| status(c) == "OK");
    wait_for(&mut con, "acknowledged", |c| unacknowledged(c, "s") == 0);
    // Later entries go through normally.
    xadd(&mut con, "s", "2");
    wait_for_log(&mut con, 2);
    let data = registration_data(&mut con);
    let args = &data.iter().find(|(k, _)| k == "args").unwrap().1;
    assert_eq!(args.items()[9], Reply::bulk("retry"));
}

#[test]
fn an_error_starting_with_pause_pauses_until_unpaused() {
    let server = Server::start();
    let mut con = server.con();
    let script = "def f(r):\n    if execute('GET', 'hold') == '1':\n        flat_error('PAUSE waiting for hold')\n    execute('RPUSH', 'log', r['value']['a'])\nGB('StreamReader').foreach(f).register(prefix='s')";
    cmd(&mut con, &["SET", "hold", "1"]);
    pyexecute(&mut con, script, &[]);
    xadd(&mut con, "s", "1");
    wait_for(&mut con, "PAUSED", |c| status(c) == "PAUSED");
    assert_eq!(unacknowledged(&mut con, "s"), 1);
    xadd(&mut con, "s", "2");
    cmd(&mut con, &["SET", "hold", "0"]);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(list(&mut con, "log"), Vec::<String>::new());
    let id = registration_ids(&mut con).remove(0);
    assert_eq!(
        cmd(&mut con, &["RG.UNPAUSEREGISTRATIONS", &id]),
        Reply::ok()
    );
    wait_for_log(&mut con, 2);
    assert_eq!(list(&mut con, "log"), ["1", "2"]);
    assert_eq!(status(&mut con), "OK");
}

#[test]
fn pause_and_unpause_while_entries_keep_arriving() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(&mut con, &logging(""), &[]);
    let id = registration_ids(&mut con).remove(0);
    xadd(&mut con, "s", "1");
    wait_for_log(&mut con, 1);
    assert_eq!(cmd(&mut con, &["RG.PAUSEREGISTRATIONS", &id]), Reply::ok());
    // Pausing twice is fine.
    assert_eq!(cmd(&mut con, &["RG.PAUSEREGISTRATIONS", &id]), Reply::ok());
    assert_eq!(status(&mut con), "PAUSED");
    for i in 2..=50 {
        xadd(&mut con, "s", &i.to_string());
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(list(&mut con, "log"), ["s:1"]);
    assert_eq!(int(&mut con, &["XLEN", "s"]), 49);
    assert_eq!(
        cmd(&mut con, &["RG.UNPAUSEREGISTRATIONS", &id]),
        Reply::ok()
    );
    for i in 51..=60 {
        xadd(&mut con, "s", &i.to_string());
    }
    wait_for_log(&mut con, 60);
    let expected: Vec<String> = (1..=60).map(|i| format!("s:{i}")).collect();
    assert_eq!(list(&mut con, "log"), expected);
    assert_eq!(status(&mut con), "OK");
    // Errors: unknown id, arity, other readers.
    assert_eq!(
        cmd(&mut con, &["RG.PAUSEREGISTRATIONS", "nope"]),
        Reply::err(
            "Execution nope does not exists on shard 0000000000000000000000000000000000000000"
        )
    );
    pyexecute(&mut con, "GB().register(prefix='k')", &[]);
    let keys_id = registration_ids(&mut con)
        .into_iter()
        .find(|i| i != &id)
        .unwrap();
    assert_eq!(
        cmd(&mut con, &["RG.PAUSEREGISTRATIONS", &keys_id]),
        Reply::err("Reader KeysReader does not support pause")
    );
}

#[test]
fn unregister_stops_consuming() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(&mut con, &logging(""), &[]);
    let id = registration_ids(&mut con).remove(0);
    xadd(&mut con, "s", "1");
    wait_for_log(&mut con, 1);
    assert_eq!(cmd(&mut con, &["RG.UNREGISTER", &id]), Reply::ok());
    xadd(&mut con, "s", "2");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(list(&mut con, "log"), ["s:1"]);
    assert_eq!(int(&mut con, &["XLEN", "s"]), 1);
}

#[test]
fn sync_runs_inside_the_xadd() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(&mut con, &logging(", mode='sync'"), &[]);
    xadd(&mut con, "s", "1");
    // No waiting: the entry was processed before XADD replied.
    assert_eq!(list(&mut con, "log"), ["s:1"]);
    xadd(&mut con, "s", "2");
    assert_eq!(list(&mut con, "log"), ["s:1", "s:2"]);
    assert_eq!(int(&mut con, &["XLEN", "s"]), 0);
    assert_eq!(stat(&mut con, "mode"), Reply::bulk("sync"));
}

#[test]
fn a_deleted_and_recreated_stream_is_consumed_again() {
    let mut server = Server::start();
    let mut con = server.con();
    pyexecute(&mut con, &logging(""), &[]);
    xadd(&mut con, "s", "1");
    wait_for_log(&mut con, 1);
    cmd(&mut con, &["DEL", "s"]);
    xadd(&mut con, "s", "2");
    wait_for_log(&mut con, 2);
    assert_eq!(list(&mut con, "log"), ["s:1", "s:2"]);
    // A stream replaced by a string under the prefix is not an error either.
    cmd(&mut con, &["DEL", "s"]);
    cmd(&mut con, &["SET", "s", "text"]);
    xadd(&mut con, "s9", "3");
    wait_for_log(&mut con, 3);
    assert!(server.is_alive());
}

#[test]
fn stats_lag_info_and_clearing() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(&mut con, &logging(""), &[]);
    xadd(&mut con, "s", "1");
    wait_for_log(&mut con, 1);
    wait_for(&mut con, "the run counted", |c| {
        stat(c, "numSuccess") == Reply::Int(1)
    });
    let data = registration_data(&mut con);
    let keys: Vec<&str> = data.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "mode",
            "numTriggered",
            "numSuccess",
            "numFailures",
            "numAborted",
            "lastRunDurationMS",
            "totalRunDurationMS",
            "avgRunDurationMS",
            "lastEstimatedLagMS",
            "avgEstimatedLagMS",
            "lastError",
            "args",
            "status"
        ]
    );
    assert!(
        matches!(stat(&mut con, "lastEstimatedLagMS"), Reply::Int(n) if (0..5000).contains(&n))
    );
    let info = match cmd(&mut con, &["INFO", "rg"]) {
        Reply::Bulk(b) => String::from_utf8(b).unwrap(),
        other => panic!("{other:?}"),
    };
    for field in [
        "reader=StreamReader",
        "batchSize=1",
        "durationMS=0",
        "stream=s*",
        "status=OK",
        "trimStream=1",
        "onFailedPolicy=continue",
        "retryInterval=1",
        "lastEstimatedLagMS=",
        "avgEstimatedLagMS=",
    ] {
        assert!(info.contains(field), "INFO lacks {field}: {info}");
    }
    assert_eq!(cmd(&mut con, &["RG.CLEARREGISTRATIONSSTATS"]), Reply::ok());
    assert_eq!(stat(&mut con, "lastEstimatedLagMS"), Reply::Int(0));
    assert_eq!(stat(&mut con, "numSuccess"), Reply::Int(0));
}

#[test]
fn bad_arguments_get_the_spec_errors() {
    let server = Server::start();
    let mut con = server.con();
    let cases = [
        ("prefix=1", "regex argument must be a string"),
        ("batch='a'", "batch argument must be a number"),
        ("duration='a'", "duration argument must be a number"),
        (
            "onFailedPolicy=1",
            "onFailedPolicy must be a string (Continue/Abort/Retry)",
        ),
        (
            "onFailedPolicy='stop'",
            "onFailedPolicy must be Continue/Abort/Retry",
        ),
        (
            "onFailedRetryInterval='a'",
            "retryInterval argument must be a number",
        ),
        ("trimStream=1", "pyTrimmStream argument must be a boolean"),
        (
            "mode='sync', onFailedPolicy='retry'",
            "ExecutionMode sync can only be combined with OnFailedPolicy Continue",
        ),
        (
            "batch=2.5",
            "'float' object cannot be interpreted as an integer",
        ),
    ];
    for (args, error) in cases {
        let script = format!("GB('StreamReader').register({args})");
        match pyexecute(&mut con, &script, &[]) {
            Reply::Err(e) => assert!(e.contains(error), "{args}: {e}"),
            other => panic!("{args}: {other:?}"),
        }
    }
    assert_eq!(cmd(&mut con, &["RG.DUMPREGISTRATIONS"]), Reply::Arr(vec![]));
}

#[test]
fn a_hundred_thousand_entries_from_another_client_are_processed_once_in_order() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(
        &mut con,
        "GB('StreamReader').foreach(lambda r: execute('RPUSH', 'seen:' + r['key'], r['value']['n'])).register(prefix='in:*', batch=1000, duration=5)",
        &[],
    );
    let url = server.url();
    let writers: Vec<_> = ["in:a", "in:b"]
        .into_iter()
        .map(|key| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
                for chunk in (0..50_000).collect::<Vec<u32>>().chunks(500) {
                    let mut pipe = redis::pipe();
                    for n in chunk {
                        pipe.cmd("XADD").arg(key).arg("*").arg("n").arg(n).ignore();
                    }
                    pipe.query::<()>(&mut con).unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    for key in ["seen:in:a", "seen:in:b"] {
        wait_for(&mut con, &format!("all of {key}"), |c| {
            int(c, &["LLEN", key]) >= 50_000
        });
    }
    std::thread::sleep(Duration::from_millis(100));
    for key in ["seen:in:a", "seen:in:b"] {
        let seen = list(&mut con, key);
        assert_eq!(seen.len(), 50_000, "{key}: processed more than once");
        for (i, n) in seen.iter().enumerate() {
            assert_eq!(n, &i.to_string(), "{key}: out of order at {i}");
        }
    }
    assert_eq!(int(&mut con, &["XLEN", "in:a"]), 0);
    assert_eq!(unacknowledged(&mut con, "in:a"), 0);
}

/// A retried batch is read again from the group's pending entries; one deleted meanwhile comes
/// back as nil: it is acknowledged, not processed. Binary values and several fields keep their
/// bytes and their fields.
#[test]
fn a_retry_skips_entries_deleted_meanwhile_and_values_keep_their_bytes() {
    let server = Server::start();
    let mut con = server.con();
    let script = "def f(r):\n    if execute('GET', 'fail') == '1':\n        raise Exception('not yet')\n    execute('RPUSH', 'log', repr(sorted(r['value'].items())))\nGB('StreamReader').foreach(f).register(prefix='s', batch=3, onFailedPolicy='retry', onFailedRetryInterval=1)";
    assert_eq!(pyexecute(&mut con, script, &[]), Reply::ok());
    cmd(&mut con, &["SET", "fail", "1"]);
    let entries: [&[u8]; 3] = [b"1", b"2", b"\xff\x00"];
    let ids: Vec<Vec<u8>> = entries
        .iter()
        .map(
            |n| match e2e::call(&mut con, &[b"XADD", b"s", b"*", b"n", n, b"other", b"x"]) {
                Reply::Bulk(id) => id,
                other => panic!("{other:?}"),
            },
        )
        .collect();
    wait_for(&mut con, "the first failure", |c| {
        stat(c, "status") == Reply::bulk("WAITING_FOR_RETRY_ON_FAILURE")
    });
    assert_eq!(unacknowledged(&mut con, "s"), 3);
    e2e::call(&mut con, &[b"XDEL", b"s", &ids[1]]);
    cmd(&mut con, &["SET", "fail", "0"]);
    wait_for_log(&mut con, 2);
    assert_eq!(
        list(&mut con, "log"),
        [
            "[('n', '1'), ('other', 'x')]",
            "[('n', bytearray(b'\\xff\\x00')), ('other', 'x')]",
        ]
    );
    wait_for(&mut con, "everything acknowledged", |c| {
        unacknowledged(c, "s") == 0 && stat(c, "status") == Reply::bulk("OK")
    });
}
