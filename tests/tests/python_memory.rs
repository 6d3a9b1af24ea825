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
