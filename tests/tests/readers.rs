//! Batch readers: the records each one emits, per Redis type (readers.md).

use e2e::{cmd, pyexecute, traceback, Reply, Server};

fn server_with(commands: &[&[&str]]) -> (Server, redis::Connection) {
    let server = Server::start();
    let mut con = server.con();
    for c in commands {
        let reply = cmd(&mut con, c);
        assert!(!matches!(reply, Reply::Err(_)), "{c:?}: {reply:?}");
    }
    (server, con)
}

fn one_key(setup: &[&str], expected: &str) {
    let (_s, mut con) = server_with(&[setup]);
    assert_eq!(
        pyexecute(&mut con, "GB().run()", &[]),
        Reply::results(&[expected], &[])
    );
}

#[test]
fn keys_reader_string() {
    one_key(
        &["SET", "x", "1"],
        "{'event': None, 'key': 'x', 'type': 'string', 'value': '1'}",
    );
}

#[test]
fn keys_reader_hash_fields_in_redisgears_order() {
    one_key(
        &["HSET", "person:1", "name", "Rick Sanchez", "age", "70"],
        "{'event': None, 'key': 'person:1', 'type': 'hash', 'value': {'age': '70', 'name': 'Rick Sanchez'}}",
    );
}

#[test]
fn keys_reader_hash_of_twelve_fields() {
    let mut hset = vec!["HSET".to_string(), "h".to_string()];
    for i in 0..12 {
        hset.push(format!("f{i}"));
        hset.push(i.to_string());
    }
    let hset: Vec<&str> = hset.iter().map(String::as_str).collect();
    let (_s, mut con) = server_with(&[&hset]);
    assert_eq!(
        pyexecute(
            &mut con,
            "GB().map(lambda r: list(r['value'].keys())).run()",
            &[]
        ),
        Reply::results(
            &["['f10', 'f4', 'f2', 'f0', 'f5', 'f6', 'f7', 'f11', 'f3', 'f9', 'f1', 'f8']"],
            &[]
        )
    );
}

#[test]
fn keys_reader_list_head_to_tail() {
    one_key(
        &["RPUSH", "l", "a", "b", "c"],
        "{'event': None, 'key': 'l', 'type': 'list', 'value': ['a', 'b', 'c']}",
    );
}

#[test]
fn keys_reader_set_and_zset_have_no_value() {
    one_key(
        &["SADD", "s", "m"],
        "{'event': None, 'key': 's', 'type': 'set', 'value': None}",
    );
    one_key(
        &["ZADD", "z", "1", "m"],
        "{'event': None, 'key': 'z', 'type': 'zset', 'value': None}",
    );
}

#[test]
fn keys_reader_stream_reads_as_unknown() {
    one_key(
        &["XADD", "st", "1-1", "f", "v"],
        "{'event': None, 'key': 'st', 'type': 'unknown', 'value': None}",
    );
}

#[test]
fn keys_reader_non_utf8_values_are_bytearrays() {
    let (_s, mut con) = server_with(&[]);
    e2e::call(&mut con, &[b"SET", b"bin", b"\xff\x00"]);
    assert_eq!(
        pyexecute(
            &mut con,
            "GB().map(lambda r: type(r['value']).__name__ + repr(r['value'])).run()",
            &[]
        ),
        Reply::results(&["bytearraybytearray(b'\\xff\\x00')"], &[])
    );
}

#[test]
fn keys_reader_no_scan_emits_the_key_even_when_absent() {
    let (_s, mut con) = server_with(&[&["SET", "x*", "1"], &["SET", "xy", "2"]]);
    assert_eq!(
        pyexecute(&mut con, "GB().run('missing', noScan=True)", &[]),
        Reply::results(
            &["{'event': None, 'key': 'missing', 'type': 'empty', 'value': None}"],
            &[]
        )
    );
    assert_eq!(
        pyexecute(
            &mut con,
            "GB().run('missing', noScan=True, readValue=False)",
            &[]
        ),
        Reply::results(&["{'event': None, 'key': 'missing'}"], &[])
    );
    // With noScan the pattern is one exact name, not a glob.
    assert_eq!(
        pyexecute(
            &mut con,
            "GB().map(lambda r: r['value']).run('x*', noScan=True)",
            &[]
        ),
        Reply::results(&["1"], &[])
    );
}

#[test]
fn keys_reader_read_value_false_omits_type_and_value() {
    let (_s, mut con) = server_with(&[&["HSET", "h", "a", "1"]]);
    assert_eq!(
        pyexecute(&mut con, "GB().run(readValue=False)", &[]),
        Reply::results(&["{'event': None, 'key': 'h'}"], &[])
    );
}

#[test]
fn keys_reader_default_arg_is_the_pattern() {
    let (_s, mut con) = server_with(&[&["SET", "a:1", "x"], &["SET", "b:1", "y"]]);
    assert_eq!(
        pyexecute(
            &mut con,
            "GB('KeysReader', 'b:*').map(lambda r: r['key']).run()",
            &[]
        ),
        Reply::results(&["b:1"], &[])
    );
    // A falsy argument falls back to defaultArg.
    assert_eq!(
        pyexecute(
            &mut con,
            "GB('KeysReader', 'a:*').map(lambda r: r['key']).run('')",
            &[]
        ),
        Reply::results(&["a:1"], &[])
    );
}

#[test]
fn keys_only_reader_yields_names() {
    let (_s, mut con) = server_with(&[
        &["SET", "user:1", "x"],
        &["SET", "user:2", "y"],
        &["SET", "o", "z"],
    ]);
    let reply = pyexecute(&mut con, "GB('KeysOnlyReader').run('user:*')", &[]);
    assert_eq!(reply.items()[0].sorted_strings(), vec!["user:1", "user:2"]);
    assert_eq!(
        pyexecute(&mut con, "GB('KeysOnlyReader').run('user:*', count=1)", &[]).items()[0]
            .sorted_strings(),
        vec!["user:1", "user:2"]
    );
}

#[test]
fn keys_only_reader_no_scan_checks_existence() {
    let (_s, mut con) = server_with(&[&["SET", "user:1", "x"]]);
    assert_eq!(
        pyexecute(
            &mut con,
            "GB('KeysOnlyReader').run('user:1', noScan=True)",
            &[]
        ),
        Reply::results(&["user:1"], &[])
    );
    assert_eq!(
        pyexecute(
            &mut con,
            "GB('KeysOnlyReader').run('nope', noScan=True)",
            &[]
        ),
        Reply::results(&[], &[])
    );
}

#[test]
fn keys_only_reader_pattern_generator_overrides_both() {
    let (_s, mut con) = server_with(&[&["SET", "user:1", "x"], &["SET", "o", "z"]]);
    assert_eq!(
        pyexecute(
            &mut con,
            "GB('KeysOnlyReader').run('nothing*', patternGenerator=lambda: ('o', True))",
            &[]
        ),
        Reply::results(&["o"], &[])
    );
}

#[test]
fn keys_only_reader_errors_land_in_the_errors_list() {
    let (_s, mut con) = server_with(&[&["SET", "user:1", "x"]]);
    let reply = pyexecute(&mut con, "GB('KeysOnlyReader').run(count='x')", &[]);
    let errors = reply.items()[1].sorted_strings();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].contains("value is not an integer or out of range"),
        "{errors:?}"
    );
    let reply = pyexecute(
        &mut con,
        "GB('KeysOnlyReader').run(patternGenerator=1)",
        &[],
    );
    let errors = reply.items()[1].sorted_strings();
    assert!(
        errors[0].ends_with("\"TypeError: 'int' object is not callable\\n\"]"),
        "{errors:?}"
    );
}

#[test]
fn shards_id_reader_gives_one_id_per_shard() {
    let (_s, mut con) = server_with(&[]);
    assert_eq!(
        pyexecute(&mut con, "GB('ShardsIDReader').run()", &[]),
        Reply::results(&["1"], &[])
    );
    assert_eq!(
        pyexecute(&mut con, "GB('ShardsIDReader').count().run('ignored')", &[]),
        Reply::results(&["1"], &[])
    );
}

#[test]
fn python_reader_yields_the_generator_items_in_order() {
    let (_s, mut con) = server_with(&[]);
    let script = "
def make(n):
    def gen():
        yield from range(n)
    return gen
GB('PythonReader').run(make(5))";
    assert_eq!(
        pyexecute(&mut con, script, &[]),
        Reply::results(&["0", "1", "2", "3", "4"], &[])
    );
}

#[test]
fn python_reader_calls_a_plain_function_again_for_each_record() {
    let (_s, mut con) = server_with(&[]);
    let script = "
calls = [0]
def next_value():
    calls[0] += 1
    if calls[0] > 3:
        raise Exception('no more')
    return calls[0]
GB('PythonReader').run(next_value)";
    assert_eq!(
        pyexecute(&mut con, script, &[]),
        Reply::results(
            &["1", "2", "3"],
            &[&traceback(&[(6, "next_value")], "Exception: no more")]
        )
    );
}

#[test]
fn python_reader_generator_error_ends_the_reader_with_one_error() {
    let (_s, mut con) = server_with(&[]);
    let script = "
def gen():
    yield 'a'
    raise ValueError('broken')
GB('PythonReader').run(gen)";
    assert_eq!(
        pyexecute(&mut con, script, &[]),
        Reply::results(&["a"], &[&traceback(&[(4, "gen")], "ValueError: broken")])
    );
}

#[test]
fn python_reader_takes_the_generator_from_default_arg() {
    let (_s, mut con) = server_with(&[]);
    let script = "
def gen():
    yield 'x'
GB('PythonReader', gen).run()";
    assert_eq!(
        pyexecute(&mut con, script, &[]),
        Reply::results(&["x"], &[])
    );
}

fn stream_server() -> (Server, redis::Connection) {
    server_with(&[
        &["XADD", "s", "1-1", "name", "a", "n", "1"],
        &["XADD", "s", "2-1", "name", "b"],
        &["SET", "str", "v"],
    ])
}

#[test]
fn stream_reader_reads_every_entry_oldest_first() {
    let (_s, mut con) = stream_server();
    assert_eq!(
        pyexecute(&mut con, "GB('StreamReader').run('s')", &[]),
        Reply::results(
            &[
                "{'key': 's', 'id': '1-1', 'value': {'name': 'a', 'n': '1'}}",
                "{'key': 's', 'id': '2-1', 'value': {'name': 'b'}}"
            ],
            &[]
        )
    );
}

#[test]
fn stream_reader_from_id_is_exclusive() {
    let (_s, mut con) = stream_server();
    assert_eq!(
        pyexecute(
            &mut con,
            "GB('StreamReader').map(lambda r: r['id']).run('s', fromId='1-1')",
            &[]
        ),
        Reply::results(&["2-1"], &[])
    );
}

#[test]
fn stream_reader_entry_fields_in_redisgears_order() {
    let mut xadd = vec!["XADD".to_string(), "big".to_string(), "1-1".to_string()];
    for i in 0..10 {
        xadd.push(format!("f{i}"));
        xadd.push(i.to_string());
    }
    let xadd: Vec<&str> = xadd.iter().map(String::as_str).collect();
    let (_s, mut con) = server_with(&[&xadd]);
    assert_eq!(
        pyexecute(
            &mut con,
            "GB('StreamReader').map(lambda r: list(r['value'])).run('big')",
            &[]
        ),
        Reply::results(
            &["['f6', 'f7', 'f3', 'f4', 'f1', 'f2', 'f0', 'f5', 'f9', 'f8']"],
            &[]
        )
    );
}

#[test]
fn stream_reader_reads_large_streams_completely() {
    let (_s, mut con) = server_with(&[]);
    let reply = pyexecute(
        &mut con,
        "for i in range(2500): execute('XADD', 'big', '*', 'i', i)\nGB('StreamReader').count().run('big')",
        &[],
    );
    assert_eq!(reply, Reply::results(&["2500"], &[]));
}

#[test]
fn stream_reader_missing_key_is_no_records() {
    let (_s, mut con) = stream_server();
    assert_eq!(
        pyexecute(&mut con, "GB('StreamReader').run('nokey')", &[]),
        Reply::results(&[], &[])
    );
}

#[test]
fn stream_reader_redis_errors_are_error_records() {
    let (_s, mut con) = stream_server();
    assert_eq!(
        pyexecute(&mut con, "GB('StreamReader').run('s', fromId='test')", &[]),
        Reply::results(
            &[],
            &["ERR Invalid stream ID specified as stream command argument"]
        )
    );
    assert_eq!(
        pyexecute(&mut con, "GB('StreamReader').run('str')", &[]),
        Reply::results(
            &[],
            &["WRONGTYPE Operation against a key holding the wrong kind of value"]
        )
    );
}
