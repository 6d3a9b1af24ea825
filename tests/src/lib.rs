//! The end-to-end harness: a real `redis-server` on a free loopback port with the built module
//! loaded, talked to with the `redis` crate, and stopped when the test drops it.

use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The module under test: `$GEARS_MODULE`, else the workspace's release build.
pub fn module_path() -> PathBuf {
    if let Ok(p) = std::env::var("GEARS_MODULE") {
        return PathBuf::from(p);
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/libredisgears.so");
    assert!(
        p.exists(),
        "{} is missing: build it first (cargo build --release -p redisgears, or ci/test.sh)",
        p.display()
    );
    p
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A free port whose cluster bus port (port + 10000) is free too.
fn free_cluster_port() -> u16 {
    loop {
        let port = free_port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// A command that runs every server under a tool (`GEARS_E2E_WRAPPER`, words separated by
/// spaces, e.g. `ci/leaks.sh`'s valgrind): servers then start more slowly and are stopped with
/// SIGTERM, so the tool writes its report.
fn wrapper() -> Option<Vec<String>> {
    let words: Vec<String> = std::env::var("GEARS_E2E_WRAPPER")
        .ok()?
        .split_whitespace()
        .map(str::to_string)
        .collect();
    (!words.is_empty()).then_some(words)
}

/// Starts `redis-server` on `port` in `dir` with the module loaded.
fn spawn(port: u16, dir: &std::path::Path, server_args: &[&str], module_args: &[&str]) -> Child {
    let mut command = match wrapper() {
        Some(words) => {
            let mut command = Command::new(&words[0]);
            command.args(&words[1..]).arg("redis-server");
            command
        }
        None => Command::new("redis-server"),
    };
    command
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .args(["--enable-debug-command", "local"])
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(dir.join("redis.log"))
        .args(server_args)
        .arg("--loadmodule")
        .arg(module_path())
        .args(module_args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("redis-server on PATH (ci/setup.sh installs it)")
}

pub struct Server {
    child: Child,
    pub port: u16,
    dir: PathBuf,
    server_args: Vec<String>,
    module_args: Vec<String>,
}

/// A server that did not come up, with what it logged.
#[derive(Debug)]
pub struct StartFailure {
    pub log: String,
}

impl Server {
    /// A server with the module loaded without arguments.
    pub fn start() -> Server {
        Server::with_module_args(&[])
    }

    pub fn with_module_args(args: &[&str]) -> Server {
        Server::try_start(args).unwrap_or_else(|f| panic!("redis-server did not start:\n{}", f.log))
    }

    /// A server installing requirements from the index at `index_url`, its wheels cached in
    /// `cache`.
    pub fn with_index(index_url: &str, cache: &std::path::Path) -> Server {
        let cache = cache.to_str().expect("a UTF-8 cache path");
        Server::with_module_args(&["RequirementsIndexUrl", index_url, "WheelsCacheDir", cache])
    }

    /// Starts a server; `Err` with its log if it exits instead of answering PING.
    pub fn try_start(module_args: &[&str]) -> Result<Server, StartFailure> {
        Server::try_start_with(&[], module_args)
    }

    /// A server started with extra redis-server arguments (e.g. cluster mode).
    pub fn with_server_args(server_args: &[&str], module_args: &[&str]) -> Server {
        Server::try_start_with(server_args, module_args)
            .unwrap_or_else(|f| panic!("redis-server did not start:\n{}", f.log))
    }

    /// [`Server::try_start`] with extra redis-server arguments, given before the module.
    pub fn try_start_with(
        server_args: &[&str],
        module_args: &[&str],
    ) -> Result<Server, StartFailure> {
        Server::try_start_on(free_port(), server_args, module_args)
    }

    fn try_start_on(
        port: u16,
        server_args: &[&str],
        module_args: &[&str],
    ) -> Result<Server, StartFailure> {
        // Unique per server, not per port: a port freed by a test that is still removing its
        // directory may be handed to the next server at once.
        static SERVERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = SERVERS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("gears-e2e-{}-{n}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        let mut server = Server {
            child: spawn(port, &dir, server_args, module_args),
            port,
            dir,
            server_args: server_args.iter().map(|s| s.to_string()).collect(),
            module_args: module_args.iter().map(|s| s.to_string()).collect(),
        };
        server.wait_up()?;
        Ok(server)
    }

    /// Waits until the server answers PING; `Err` with its log if it exits first.
    fn wait_up(&mut self) -> Result<(), StartFailure> {
        let patience = if wrapper().is_some() { 600 } else { 20 };
        let deadline = Instant::now() + Duration::from_secs(patience);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                let mut stderr = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut stderr);
                }
                return Err(StartFailure {
                    log: format!("{}{stderr}", self.log()),
                });
            }
            if let Ok(client) = redis::Client::open(self.url()) {
                if let Ok(mut con) = client.get_connection() {
                    if redis::cmd("PING").query::<String>(&mut con).is_ok() {
                        return Ok(());
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(StartFailure {
            log: format!("timed out waiting for PING\n{}", self.log()),
        })
    }

    /// Kills the server (SIGKILL; SIGTERM under a [`wrapper`], so its report is written);
    /// [`Server::restart`] starts it again.
    pub fn stop(&mut self) {
        if wrapper().is_some() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
        } else {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }

    /// Kills the server if it runs and starts it again on the same port and directory with the
    /// same arguments.
    pub fn restart(&mut self) {
        self.stop();
        let server_args: Vec<&str> = self.server_args.iter().map(String::as_str).collect();
        let module_args: Vec<&str> = self.module_args.iter().map(String::as_str).collect();
        self.child = spawn(self.port, &self.dir, &server_args, &module_args);
        if let Err(f) = self.wait_up() {
            panic!("redis-server did not restart:\n{}", f.log);
        }
    }

    /// The server's process id (for reading its memory use).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self) -> String {
        match self.password() {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}/", self.port),
            None => format!("redis://127.0.0.1:{}/", self.port),
        }
    }

    /// The `--requirepass` the server was started with.
    fn password(&self) -> Option<&str> {
        let at = self.server_args.iter().position(|a| a == "--requirepass")?;
        self.server_args.get(at + 1).map(String::as_str)
    }

    pub fn con(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .expect("a connection to the test server")
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
    }

    /// True while the process runs (it did not crash).
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster of primaries on loopback, made with `redis-cli --cluster create`, each node
/// with the module loaded.
pub struct Cluster {
    pub nodes: Vec<Server>,
    /// Every node's module arguments, nodes added later included.
    module_args: Vec<String>,
}

/// Runs `redis-cli args`, which must succeed; its output.
pub fn redis_cli(args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(args)
        .output()
        .expect("redis-cli on PATH");
    assert!(
        out.status.success(),
        "redis-cli {args:?} failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The redis-server arguments of a cluster node.
const CLUSTER_ARGS: &[&str] = &[
    "--cluster-enabled",
    "yes",
    "--cluster-config-file",
    "nodes.conf",
    "--cluster-node-timeout",
    "3000",
];

impl Cluster {
    /// `n` primaries sharing the slots, every shard's module connected to every other.
    pub fn start(n: usize) -> Cluster {
        Cluster::start_with(n, None)
    }

    /// [`Cluster::start`] with every node requiring `password` (`requirepass`, and `masterauth`
    /// for the nodes between themselves).
    pub fn start_with(n: usize, password: Option<&str>) -> Cluster {
        Cluster::start_configured(n, password, &[])
    }

    /// [`Cluster::start_with`] with `module_args` for every node's module (nodes added later
    /// too).
    pub fn start_configured(n: usize, password: Option<&str>, module_args: &[&str]) -> Cluster {
        Cluster::create(n, 0, password, module_args)
    }

    /// `primaries` primaries, each with one replica (`--cluster-replicas 1`); `nodes` holds
    /// all of them, ROLE says which is which.
    pub fn start_with_replicas(primaries: usize, module_args: &[&str]) -> Cluster {
        Cluster::create(primaries * 2, 1, None, module_args)
    }

    fn create(n: usize, replicas: usize, password: Option<&str>, module_args: &[&str]) -> Cluster {
        let mut args: Vec<&str> = CLUSTER_ARGS.to_vec();
        if let Some(password) = password {
            args.extend(["--requirepass", password, "--masterauth", password]);
        }
        let nodes: Vec<Server> = (0..n)
            .map(|_| {
                Server::try_start_on(free_cluster_port(), &args, module_args)
                    .unwrap_or_else(|f| panic!("a cluster node did not start:\n{}", f.log))
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        let mut args: Vec<&str> = Vec::new();
        if let Some(password) = password {
            args.extend(["-a", password, "--no-auth-warning"]);
        }
        args.extend(["--cluster", "create"]);
        args.extend(addresses.iter().map(String::as_str));
        let replicas = replicas.to_string();
        if replicas != "0" {
            args.extend(["--cluster-replicas", &replicas]);
        }
        args.push("--cluster-yes");
        redis_cli(&args);
        let cluster = Cluster {
            nodes,
            module_args: module_args.iter().map(|a| a.to_string()).collect(),
        };
        cluster.wait_ready();
        cluster.wait_state_ok();
        cluster
    }

    /// Every node's Redis Cluster says `cluster_state:ok`. A node answers CLUSTERDOWN until it
    /// does, and under load that can come after the modules already see each other.
    fn wait_state_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let ok = |node: &Server| match cmd(&mut node.con(), &["CLUSTER", "INFO"]) {
            Reply::Bulk(b) => String::from_utf8_lossy(&b).contains("cluster_state:ok"),
            _ => false,
        };
        while !self.nodes.iter().all(ok) {
            assert!(
                Instant::now() < deadline,
                "the cluster's state did not become ok"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts one more node, joins it with `redis-cli --cluster add-node` and gives it its share
    /// of the slots (`rebalance --cluster-use-empty-masters`, keys moving with them); returns
    /// its index in `nodes` once every node's module sees every other.
    pub fn add_node(&mut self) -> usize {
        let module_args: Vec<&str> = self.module_args.iter().map(String::as_str).collect();
        let node = Server::try_start_on(free_cluster_port(), CLUSTER_ARGS, &module_args)
            .unwrap_or_else(|f| panic!("a cluster node did not start:\n{}", f.log));
        let existing = format!("127.0.0.1:{}", self.nodes[0].port);
        let added = format!("127.0.0.1:{}", node.port);
        self.nodes.push(node);
        redis_cli(&["--cluster", "add-node", &added, &existing]);
        // Every node must know the new one, and agree on the slots, before slots move.
        let deadline = Instant::now() + Duration::from_secs(30);
        let known = format!("cluster_known_nodes:{}", self.nodes.len());
        let agreed = || {
            Command::new("redis-cli")
                .args(["--cluster", "check", &existing])
                .output()
                .is_ok_and(|o| {
                    o.status.success() && !String::from_utf8_lossy(&o.stdout).contains("[ERR]")
                })
        };
        while !self
            .nodes
            .iter()
            .all(|n| match cmd(&mut n.con(), &["CLUSTER", "INFO"]) {
                Reply::Bulk(b) => {
                    let info = String::from_utf8_lossy(&b);
                    info.contains(&known) && info.contains("cluster_state:ok")
                }
                _ => false,
            })
            || !agreed()
        {
            assert!(Instant::now() < deadline, "the new node did not join");
            std::thread::sleep(Duration::from_millis(100));
        }
        redis_cli(&[
            "--cluster",
            "rebalance",
            &existing,
            "--cluster-use-empty-masters",
        ]);
        self.wait_ready();
        self.nodes.len() - 1
    }

    /// Writes every `(key, value)` on the node owning the key's slot (read from CLUSTER SLOTS).
    pub fn set_all(&self, pairs: &[(String, String)]) {
        let mut con = self.nodes[0].con();
        let slots = cmd(&mut con, &["CLUSTER", "SLOTS"]);
        let owner = |slot: i64| -> usize {
            let range = slots
                .items()
                .iter()
                .find(|r| {
                    let (Reply::Int(start), Reply::Int(end)) = (&r.items()[0], &r.items()[1])
                    else {
                        return false;
                    };
                    *start <= slot && slot <= *end
                })
                .expect("every slot is served");
            let Reply::Int(port) = range.items()[2].items()[1] else {
                panic!("no port in {range:?}");
            };
            self.nodes
                .iter()
                .position(|n| i64::from(n.port) == port)
                .expect("a node of this cluster")
        };
        let mut pipes: Vec<redis::Pipeline> = self.nodes.iter().map(|_| redis::pipe()).collect();
        let mut used = vec![false; self.nodes.len()];
        for (key, value) in pairs {
            let node = owner(i64::from(cluster::slots::key_slot(key.as_bytes())));
            pipes[node].cmd("SET").arg(key).arg(value).ignore();
            used[node] = true;
        }
        for ((pipe, node), used) in pipes.iter().zip(&self.nodes).zip(used) {
            if used {
                let () = pipe.query(&mut node.con()).expect("SET on the owning node");
            }
        }
    }

    /// Waits until every node lists every shard in RG.INFOCLUSTER with that shard's current
    /// run id (every peer answered RG.HELLO since the last topology change).
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut cons: Vec<redis::Connection> = self.nodes.iter().map(Server::con).collect();
        loop {
            let infos: Vec<Reply> = cons
                .iter_mut()
                .map(|c| cmd(c, &["RG.INFOCLUSTER"]))
                .collect();
            let primary: Vec<bool> = cons.iter_mut().map(is_primary).collect();
            if consistent(&infos, &primary) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not become ready: {infos:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// ROLE says this node is a primary.
pub fn is_primary(con: &mut redis::Connection) -> bool {
    cmd(con, &["ROLE"])
        .items()
        .first()
        .is_some_and(|role| role.as_str() == "master")
}

/// Every primary lists every primary, each with the run id that primary gives itself.
fn consistent(infos: &[Reply], primary: &[bool]) -> bool {
    let mut own = Vec::new();
    for (info, _) in infos.iter().zip(primary).filter(|(_, p)| **p) {
        match info {
            Reply::Arr(items) if items.len() == 5 => own.push((&items[1], &items[3])),
            _ => return false,
        }
    }
    infos
        .iter()
        .zip(primary)
        .filter(|(_, p)| **p)
        .all(|(info, _)| {
            let shards = info.items()[4].items();
            shards.len() == own.len()
                && shards.iter().all(|s| {
                    own.iter()
                        .any(|(id, run)| **id == s.items()[1] && **run == s.items()[9])
                })
        })
}

/// A reply as a client sees it on the wire, errors included with their exact text.
#[derive(Clone, PartialEq)]
pub enum Reply {
    Simple(String),
    Bulk(Vec<u8>),
    Int(i64),
    Err(String),
    Arr(Vec<Reply>),
    Nil,
}

impl std::fmt::Debug for Reply {
    /// Bulk strings as text, so a failed assertion reads like redis-cli.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reply::Simple(s) => write!(f, "+{s}"),
            Reply::Bulk(b) => write!(f, "{:?}", String::from_utf8_lossy(b)),
            Reply::Int(i) => write!(f, "(integer) {i}"),
            Reply::Err(e) => write!(f, "(error) {e}"),
            Reply::Arr(items) => f.debug_list().entries(items).finish(),
            Reply::Nil => write!(f, "(nil)"),
        }
    }
}

impl Reply {
    pub fn bulk(s: &str) -> Reply {
        Reply::Bulk(s.as_bytes().to_vec())
    }

    pub fn err(s: &str) -> Reply {
        Reply::Err(s.to_string())
    }

    pub fn ok() -> Reply {
        Reply::Simple("OK".into())
    }

    /// An array of bulk strings.
    pub fn bulks(items: &[&str]) -> Reply {
        Reply::Arr(items.iter().map(|s| Reply::bulk(s)).collect())
    }

    /// `[[results...], [errors...]]`, all bulk strings.
    pub fn results(results: &[&str], errors: &[&str]) -> Reply {
        Reply::Arr(vec![Reply::bulks(results), Reply::bulks(errors)])
    }

    pub fn as_str(&self) -> &str {
        match self {
            Reply::Bulk(b) => std::str::from_utf8(b).expect("utf-8"),
            Reply::Simple(s) | Reply::Err(s) => s,
            other => panic!("not a string reply: {other:?}"),
        }
    }

    pub fn items(&self) -> &[Reply] {
        match self {
            Reply::Arr(items) => items,
            other => panic!("not an array: {other:?}"),
        }
    }

    /// The bulk strings of an array, sorted, for replies whose order is unspecified.
    pub fn sorted_strings(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .items()
            .iter()
            .map(|r| r.as_str().to_string())
            .collect();
        v.sort();
        v
    }
}

fn error_text(code: &str, detail: Option<&str>) -> String {
    match detail {
        Some(d) => format!("{code} {d}"),
        None => code.to_string(),
    }
}

fn from_value(v: redis::Value) -> Reply {
    match v {
        redis::Value::Nil => Reply::Nil,
        redis::Value::Int(i) => Reply::Int(i),
        redis::Value::BulkString(b) => Reply::Bulk(b),
        redis::Value::Array(items) => Reply::Arr(items.into_iter().map(from_value).collect()),
        redis::Value::SimpleString(s) => Reply::Simple(s),
        redis::Value::Okay => Reply::ok(),
        redis::Value::ServerError(e) => Reply::Err(error_text(e.code(), e.details())),
        other => panic!("unexpected RESP2 value {other:?}"),
    }
}

/// The RegistrationData of the first registration RG.DUMPREGISTRATIONS lists, as (key, value).
pub fn registration_data(con: &mut redis::Connection) -> Vec<(String, Reply)> {
    let dump = cmd(con, &["RG.DUMPREGISTRATIONS"]);
    let entry = dump.items()[0].items();
    entry[7]
        .items()
        .chunks(2)
        .map(|kv| (kv[0].as_str().to_string(), kv[1].clone()))
        .collect()
}

/// The ids of the registrations, in RG.DUMPREGISTRATIONS order.
pub fn registration_ids(con: &mut redis::Connection) -> Vec<String> {
    cmd(con, &["RG.DUMPREGISTRATIONS"])
        .items()
        .iter()
        .map(|r| r.items()[1].as_str().to_string())
        .collect()
}

/// The ids of the listed executions, in RG.DUMPEXECUTIONS order (oldest first).
pub fn execution_ids(con: &mut redis::Connection) -> Vec<String> {
    cmd(con, &["RG.DUMPEXECUTIONS"])
        .items()
        .iter()
        .map(|e| e.items()[1].as_str().to_string())
        .collect()
}

/// The elements of the list at `key`.
pub fn list(con: &mut redis::Connection, key: &str) -> Vec<String> {
    cmd(con, &["LRANGE", key, "0", "-1"])
        .items()
        .iter()
        .map(|r| r.as_str().to_string())
        .collect()
}

/// One field of [`registration_data`].
pub fn registration_stat(con: &mut redis::Connection, name: &str) -> Reply {
    registration_data(con)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no {name} in RegistrationData"))
}

/// Polls `check` every few milliseconds until it holds; panics naming `what` after 20 s.
pub fn wait_for(
    con: &mut redis::Connection,
    what: &str,
    mut check: impl FnMut(&mut redis::Connection) -> bool,
) {
    eventually(what, || check(con));
}

/// Polls `check` every few milliseconds until it holds; panics naming `what` after 20 s.
pub fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Sends one command and returns its reply; an error reply is `Reply::Err` with its text.
pub fn call(con: &mut redis::Connection, args: &[&[u8]]) -> Reply {
    let mut cmd = redis::cmd(std::str::from_utf8(args[0]).expect("command name"));
    for a in &args[1..] {
        cmd.arg(*a);
    }
    // Sent and read raw: a query would turn an error nested in an array into a failure.
    let sent = con.send_packed_command(&cmd.get_packed_command());
    match sent.and_then(|()| con.recv_response()) {
        Ok(v) => from_value(v),
        Err(e) if e.code().is_some() => Reply::Err(error_text(e.code().unwrap_or(""), e.detail())),
        Err(e) => panic!("transport error: {e}"),
    }
}

/// [`call`] with text arguments.
pub fn cmd(con: &mut redis::Connection, args: &[&str]) -> Reply {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    call(con, &args)
}

/// `RG.PYEXECUTE script [options...]`.
pub fn pyexecute(con: &mut redis::Connection, script: &str, options: &[&str]) -> Reply {
    let mut args = vec!["RG.PYEXECUTE", script];
    args.extend_from_slice(options);
    cmd(con, &args)
}

/// Python's `repr` of a str (the quoting `str(list)` uses): single quotes unless the text holds a
/// single quote and no double quote.
pub fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::new();
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// The text RedisGears gives a Python error with PythonAttemptTraceback on: `str()` of the
/// `traceback.format_exception` list. `frames` are (line, function) of `<string>` frames.
pub fn traceback(frames: &[(u32, &str)], last: &str) -> String {
    let mut lines = vec!["Traceback (most recent call last):\n".to_string()];
    for (line, function) in frames {
        lines.push(format!("  File \"<string>\", line {line}, in {function}\n"));
    }
    lines.push(format!("{last}\n"));
    let items: Vec<String> = lines.iter().map(|l| py_repr(l)).collect();
    format!("[{}]", items.join(", "))
}
