//! Python's memory through Redis' allocator: RG.PYSTATS, INFO python_stats, used_memory.

use e2e::{cmd, pyexecute, Reply, Server};

fn stats(con: &mut redis::Connection) -> (i64, i64, i64) {
    let reply = cmd(con, &["RG.PYSTATS"]);
    let items = reply.items();
    assert_eq!(items[0], Reply::bulk("TotalAllocated"));
    assert_eq!(items[2], Reply::bulk("PeakAllocated"));
    assert_eq!(items[4], Reply::bulk("CurrAllocated"));
    let n = |r: &Reply| match r {
        Reply::Int(i) => *i,
        other => panic!("{other:?}"),
    };
    (n(&items[1]), n(&items[3]), n(&items[5]))
}

fn used_memory(con: &mut redis::Connection) -> i64 {
    let info = cmd(con, &["INFO", "memory"]);
    info.as_str()
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory")
}

#[test]
fn python_allocations_are_counted_and_reach_used_memory() {
    let server = Server::start();
    let mut con = server.con();
    let (total, peak, current) = stats(&mut con);
    assert!(
        current > 0 && peak >= current && total >= peak,
        "{total} {peak} {current}"
    );
    let before = used_memory(&mut con);
    assert_eq!(
        pyexecute(&mut con, "import sys\nsys.big = bytearray(50_000_000)", &[]),
        Reply::ok()
    );
    let (_, _, grown) = stats(&mut con);
    assert!(grown - current >= 50_000_000, "{current} -> {grown}");
    assert!(used_memory(&mut con) - before >= 50_000_000);
    assert_eq!(
        pyexecute(&mut con, "import sys\nsys.big = None", &[]),
        Reply::ok()
    );
    let (_, peak_after, released) = stats(&mut con);
    assert!(grown - released >= 50_000_000, "{grown} -> {released}");
    assert!(peak_after >= grown);
    assert!(cmd(&mut con, &["INFO", "everything"])
        .as_str()
        .contains("# rg_python_stats\r\nrg_TotalAllocated:"));
}

#[test]
fn without_the_override_nothing_is_counted() {
    let server = Server::with_module_args(&["OverridePythonAllocators", "0"]);
    let mut con = server.con();
    pyexecute(&mut con, "import sys\nsys.big = bytearray(10_000_000)", &[]);
    assert_eq!(stats(&mut con), (0, 0, 0));
}

#[test]
fn info_lists_the_sessions_of_registrations() {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(&mut con, "GB().register(prefix='k*')", &["ID", "mine"]);
    let info = cmd(&mut con, &["INFO", "everything"]);
    let info = info.as_str();
    assert!(info.contains("# rg_python_requirements\r\n"), "{info}");
    assert!(
        info.contains("# rg_python_sessions\r\nrg_mine:{'sessionName':'mine', "),
        "{info}"
    );
}

/// A keyspace scan gives back every key name it was handed: redis-module's scan cursor kept one
/// reference to each (found under valgrind), ~30 bytes per key per run.
#[test]
fn scanning_the_keyspace_leaks_nothing() {
    let server = Server::start();
    let mut con = server.con();
    let mut pipe = redis::pipe();
    for i in 0..100_000 {
        pipe.cmd("SET").arg(format!("k{i}")).arg(i).ignore();
    }
    pipe.query::<()>(&mut con).unwrap();
    let count = |con: &mut redis::Connection| {
        pyexecute(con, "GB().map(lambda r: r['key']).count().run()", &[])
    };
    // The first run creates what stays (the session, Python's caches).
    assert_eq!(count(&mut con), Reply::results(&["100000"], &[]));
    let before = used_memory(&mut con);
    for _ in 0..5 {
        count(&mut con);
    }
    let grown = used_memory(&mut con) - before;
    assert!(grown < 2_000_000, "used_memory grew by {grown} bytes");
}
