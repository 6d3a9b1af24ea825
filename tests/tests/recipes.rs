//! Every recipe of `examples/` run against a real server, its result checked.

#[path = "../../reqs-manager/tests/support/mod.rs"]
mod support;

use e2e::{cmd, pyexecute, Reply, Server};

fn recipe(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn wordcount_counts_words_of_text_fields() {
    let server = Server::start();
    let mut con = server.con();
    cmd(&mut con, &["HSET", "doc:1", "text", "the cat saw the dog"]);
    cmd(&mut con, &["HSET", "doc:2", "text", "The dog"]);
    cmd(&mut con, &["HSET", "doc:3", "title", "no text here"]);
    cmd(&mut con, &["SET", "doc:4", "a plain string"]);
    let reply = pyexecute(&mut con, &recipe("wordcount.py"), &[]);
    let mut results: Vec<String> = reply.items()[0]
        .items()
        .iter()
        .map(|r| r.as_str().to_string())
        .collect();
    results.sort();
    assert_eq!(
        results,
        [
            "{'key': 'cat', 'value': 1}",
            "{'key': 'dog', 'value': 2}",
            "{'key': 'saw', 'value': 1}",
            "{'key': 'the', 'value': 3}",
        ]
    );
}

#[test]
fn delete_by_prefix_deletes_only_the_prefix() {
    let server = Server::start();
    let mut con = server.con();
    for i in 0..250 {
        cmd(&mut con, &["SET", &format!("session:{i}"), "x"]);
    }
    cmd(&mut con, &["SET", "keep:1", "x"]);
    assert_eq!(
        pyexecute(&mut con, &recipe("delete_by_prefix.py"), &[]),
        Reply::results(&["250"], &[])
    );
    assert_eq!(cmd(&mut con, &["DBSIZE"]), Reply::Int(1));
}

#[test]
fn average_field_averages_ages() {
    let server = Server::start();
    let mut con = server.con();
    cmd(&mut con, &["HSET", "user:1", "age", "20"]);
    cmd(&mut con, &["HSET", "user:2", "age", "31"]);
    cmd(&mut con, &["HSET", "user:3", "name", "no age"]);
    assert_eq!(
        pyexecute(&mut con, &recipe("average_field.py"), &[]),
        Reply::results(&["25.5"], &[])
    );
}

#[test]
fn notifications_reach_the_stream_inside_the_write() {
    let server = Server::start();
    let mut con = server.con();
    assert_eq!(
        pyexecute(&mut con, &recipe("notifications_to_stream.py"), &[]),
        Reply::ok()
    );
    cmd(&mut con, &["SET", "watched:a", "1"]);
    cmd(&mut con, &["HSET", "watched:b", "f", "v"]);
    cmd(&mut con, &["DEL", "watched:a"]);
    cmd(&mut con, &["SET", "other", "1"]);
    // Sync mode: the entries exist as soon as the writes returned.
    let entries = cmd(&mut con, &["XRANGE", "notifications", "-", "+"]);
    let fields: Vec<Vec<String>> = entries
        .items()
        .iter()
        .map(|e| {
            e.items()[1]
                .items()
                .iter()
                .map(|f| f.as_str().to_string())
                .collect()
        })
        .collect();
    assert_eq!(
        fields,
        [
            ["key", "watched:a", "event", "set"],
            ["key", "watched:b", "event", "hset"],
            ["key", "watched:a", "event", "del"],
        ]
    );
}

#[test]
fn the_stream_logger_copies_entries_in_order() {
    let server = Server::start();
    let mut con = server.con();
    assert_eq!(
        pyexecute(&mut con, &recipe("stream_logger.py"), &[]),
        Reply::ok()
    );
    for n in 1..=250 {
        let n = n.to_string();
        cmd(
            &mut con,
            &["XADD", "events:a", &format!("{n}-1"), "n", &n, "b", "x"],
        );
    }
    cmd(&mut con, &["XADD", "events:b", "7-7", "only", "one"]);
    cmd(&mut con, &["XADD", "other", "*", "n", "0"]);
    e2e::wait_for(&mut con, "every entry logged", |c| {
        cmd(c, &["LLEN", "log:events:a"]) == Reply::Int(250)
            && cmd(c, &["LLEN", "log:events:b"]) == Reply::Int(1)
    });
    let log = cmd(&mut con, &["LRANGE", "log:events:a", "0", "-1"]);
    let expected: Vec<String> = (1..=250).map(|n| format!("{n}-1 b=x n={n}")).collect();
    let got: Vec<String> = log.items().iter().map(|r| r.as_str().to_string()).collect();
    assert_eq!(got, expected);
    assert_eq!(
        cmd(&mut con, &["LRANGE", "log:events:b", "0", "-1"]),
        Reply::bulks(&["7-7 only=one"])
    );
    e2e::wait_for(&mut con, "the streams trimmed", |c| {
        cmd(c, &["XLEN", "events:a"]) == Reply::Int(0)
    });
    assert_eq!(cmd(&mut con, &["XLEN", "other"]), Reply::Int(1));
}

#[test]
fn monte_carlo_estimates_pi() {
    let server = Server::start();
    let mut con = server.con();
    let reply = pyexecute(&mut con, &recipe("monte_carlo_pi.py"), &[]);
    let estimate: f64 = reply.items()[0].items()[0].as_str().parse().unwrap();
    assert!((estimate - std::f64::consts::PI).abs() < 0.02, "{estimate}");
}

#[test]
fn hooked_hset_gives_cache_keys_a_ttl() {
    let server = Server::start();
    let mut con = server.con();
    assert_eq!(
        pyexecute(&mut con, &recipe("expire_touched_keys.py"), &[]),
        Reply::ok()
    );
    assert_eq!(
        cmd(&mut con, &["HSET", "cache:1", "f", "v", "g", "w"]),
        Reply::Int(2)
    );
    assert_eq!(cmd(&mut con, &["HGET", "cache:1", "g"]), Reply::bulk("w"));
    let ttl = match cmd(&mut con, &["TTL", "cache:1"]) {
        Reply::Int(t) => t,
        other => panic!("{other:?}"),
    };
    assert!((1..=60).contains(&ttl), "{ttl}");
    cmd(&mut con, &["HSET", "other:1", "f", "v"]);
    assert_eq!(cmd(&mut con, &["TTL", "other:1"]), Reply::Int(-1));
}

#[test]
fn the_requirement_recipe_imports_its_package() {
    // A local index serving a `redis` 4.5.1 wheel stands in for the public one.
    let index = support::TestIndex::start(support::Format::Json);
    let mut fake = support::RawWheel::new("redis", "4.5.1");
    fake.entries[0].1 = b"__version__ = '4.5.1'\n".to_vec();
    let bytes = fake.build("redis-4.5.1.dist-info");
    index.add_file("redis", "redis-4.5.1-py3-none-any.whl", bytes);
    let cache = tempfile::tempdir().unwrap();
    let server = Server::with_index(&index.url, cache.path());
    let mut con = server.con();
    let reply = pyexecute(
        &mut con,
        &recipe("with_requirement.py"),
        &["REQUIREMENTS", "redis==4.5.1"],
    );
    assert_eq!(reply, Reply::results(&["4.5.1"], &[]));
}
