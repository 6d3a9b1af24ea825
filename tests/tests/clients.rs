//! Real clients, installed from the package index into virtualenvs, against the module: gears-cli
//! 1.2 (run, requirements install, export and import), redis-py (single node and its cluster
//! client on a 3-node cluster) and gearsclient 1.0 (its remote builder, batch and register).
//!
//! The virtualenvs are made once under `target/client-venvs` with the machine's Python 3.11.

#[path = "../../reqs-manager/tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use e2e::{cmd, pyexecute, Cluster, Reply, Server};
use support::{wheel, Format, TestIndex};

/// The interpreter the module embeds: the clients run on the same one.
const PYTHON: &str = "/usr/bin/python3.11";

static VENVS: Mutex<()> = Mutex::new(());

fn venv_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/client-venvs")
}

fn run(command: &mut Command) -> Output {
    let output = command.output().expect("the command starts");
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A virtualenv `name` with each `pip install` argument list applied in turn; made once.
fn venv(name: &str, installs: &[&[&str]]) -> PathBuf {
    let _one_at_a_time = VENVS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = venv_root().join(name);
    let ready = dir.join(".ready");
    if !ready.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        run(Command::new(PYTHON).args(["-m", "venv"]).arg(&dir));
        for args in installs {
            run(Command::new(dir.join("bin/pip"))
                .args(["install", "-q", "--disable-pip-version-check"])
                .args(*args));
        }
        std::fs::write(&ready, "").unwrap();
    }
    dir.join("bin")
}

fn gears_cli() -> PathBuf {
    venv("gears-cli", &[&["gears-cli==1.2.0"]]).join("gears-cli")
}

/// The current redis-py.
fn redis_py() -> PathBuf {
    venv("redis-py", &[&["redis"]]).join("python")
}

/// The cloudpickle the server unpickles with: the client must pickle with the same.
fn server_cloudpickle() -> String {
    let out = run(
        Command::new(PYTHON).args(["-c", "import cloudpickle; print(cloudpickle.__version__)"])
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// gearsclient 1.0 without its pins (redis 3.5.3 and cloudpickle < 2, which cannot run on
/// Python 3.11), beside current redis-py and the server's cloudpickle.
fn gearsclient_python() -> PathBuf {
    let cloudpickle = format!("cloudpickle=={}", server_cloudpickle());
    venv(
        "gearsclient",
        &[
            &["--no-deps", "gearsclient==1.0.2"],
            &["redis", cloudpickle.as_str()],
        ],
    )
    .join("python")
}

fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs `script` with `python`, the server's port as argv[1]; its stdout.
fn python(python: &Path, script: &str, port: u16) -> String {
    text(&run(Command::new(python)
        .args(["-c", script])
        .arg(port.to_string())))
}

fn cli(args: &[&str], port: u16) -> Output {
    let mut command = Command::new(gears_cli());
    command
        .arg(args[0])
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(&args[1..]);
    command.output().expect("gears-cli starts")
}

/// An index serving `app` 1.0 (which needs `tiny` 0.2), and a server reading it.
fn server_with_app_index() -> (TestIndex, tempfile::TempDir, Server) {
    let index = TestIndex::start(Format::Json);
    index.add(&wheel("tiny", "0.2"));
    index.add(&wheel("app", "1.0").requires(&["tiny"]));
    let cache = tempfile::tempdir().unwrap();
    let server = Server::with_index(&index.url, cache.path());
    (index, cache, server)
}

#[test]
fn gears_cli_runs_scripts_and_moves_requirements() {
    let (index, _cache, source) = server_with_app_index();
    let mut con = source.con();
    cmd(&mut con, &["SET", "k1", "v1"]);
    let work = tempfile::tempdir().unwrap();

    // run: results printed one per line.
    let script = work.path().join("keys.py");
    std::fs::write(
        &script,
        "GB().map(lambda r: r['key'] + '=' + r['value']).run()",
    )
    .unwrap();
    let out = cli(&["run", script.to_str().unwrap()], source.port);
    assert!(out.status.success(), "{out:?}");
    assert!(text(&out).contains("k1=v1"), "{}", text(&out));

    // run --requirements: installed from the index before the script runs.
    let script = work.path().join("app.py");
    std::fs::write(
        &script,
        "GB('ShardsIDReader').map(lambda x: 'app ' + __import__('app').VERSION).run()",
    )
    .unwrap();
    let reqs = work.path().join("requirements.txt");
    std::fs::write(&reqs, "app\n").unwrap();
    let out = cli(
        &[
            "run",
            "--requirements",
            reqs.to_str().unwrap(),
            script.to_str().unwrap(),
        ],
        source.port,
    );
    assert!(out.status.success(), "{out:?}");
    assert!(text(&out).contains("app 1.0"), "{}", text(&out));

    // A script error: printed, exit status 1.
    let script = work.path().join("bad.py");
    std::fs::write(&script, "GB().map(lambda r: 1 / 0).run()").unwrap();
    let out = cli(&["run", script.to_str().unwrap()], source.port);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("ZeroDivisionError"), "{}", text(&out));

    // export-requirements --all: one zip per requirement, its dependencies' wheels inside.
    let exported = work.path().join("exported");
    std::fs::create_dir(&exported).unwrap();
    let out = cli(
        &[
            "export-requirements",
            "--all",
            "--save-directory",
            exported.to_str().unwrap(),
        ],
        source.port,
    );
    assert!(out.status.success(), "{out:?}");
    let mut zips: Vec<String> = std::fs::read_dir(&exported)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    zips.sort();
    assert_eq!(
        zips,
        ["redisgears-requirement-v2-app-linux-bookworm-x64.zip"],
        "{zips:?}"
    );

    // import-requirements into a server with no index, then the script runs there.
    let offline_cache = tempfile::tempdir().unwrap();
    let offline = Server::with_module_args(&[
        "RequirementsIndexUrl",
        "",
        "WheelsCacheDir",
        offline_cache.path().to_str().unwrap(),
    ]);
    let mut args = vec![
        "import-requirements",
        "--requirements-path",
        exported.to_str().unwrap(),
    ];
    args.extend(zips.iter().map(String::as_str));
    let out = cli(&args, offline.port);
    assert!(out.status.success(), "{out:?}");
    let mut offline_con = offline.con();
    assert_eq!(
        pyexecute(
            &mut offline_con,
            "GB('ShardsIDReader').map(lambda x: __import__('app').VERSION + ' ' + __import__('tiny').VERSION).run()",
            &["REQUIREMENTS", "app"]
        ),
        Reply::results(&["1.0 0.2"], &[])
    );

    // install-requirements on a fresh server with the index.
    let other_cache = tempfile::tempdir().unwrap();
    let other = Server::with_index(&index.url, other_cache.path());
    let out = cli(&["install-requirements", "app"], other.port);
    assert!(out.status.success(), "{out:?}");
    let mut other_con = other.con();
    let names: Vec<String> = cmd(&mut other_con, &["RG.PYDUMPREQS"])
        .items()
        .iter()
        .map(|e| e.items()[3].as_str().to_string())
        .collect();
    assert_eq!(names, ["app"]);
    // Installed for good: later scripts import it without asking for it.
    assert_eq!(
        pyexecute(
            &mut other_con,
            "GB('ShardsIDReader').map(lambda x: __import__('app').VERSION).run()",
            &[]
        ),
        Reply::results(&["1.0"], &[])
    );
}

/// redis-py's view of the replies, printed as JSON.
const REDIS_PY_SINGLE: &str = r#"
import json, sys, redis
r = redis.Redis(host='127.0.0.1', port=int(sys.argv[1]), decode_responses=True)
r.set('x', '1')
out = {}
out['run'] = r.execute_command('RG.PYEXECUTE', "GB().map(lambda r: r['key']).run()")
out['count'] = r.execute_command('RG.PYEXECUTE', "GB().count().run()")
out['register'] = r.execute_command('RG.PYEXECUTE', "GB('CommandReader').map(lambda x: len(x)).register(trigger='t')")
out['trigger'] = r.execute_command('RG.TRIGGER', 't', 'a', 'b')
regs = r.execute_command('RG.DUMPREGISTRATIONS')
out['registration_fields'] = regs[0][0::2]
eid = r.execute_command('RG.PYEXECUTE', "GB().filter(lambda r: False).run()", 'UNBLOCKING')
out['blocking'] = r.execute_command('RG.GETRESULTSBLOCKING', eid)
try:
    r.execute_command('RG.PYEXECUTE', 'GB(')
    out['syntax'] = None
except redis.exceptions.ResponseError as e:
    out['syntax'] = str(e).splitlines()[0]
try:
    r.execute_command('RG.GETEXECUTION', 'nope')
except redis.exceptions.ResponseError as e:
    out['missing'] = str(e)
print(json.dumps(out))
"#;

#[test]
fn redis_py_parses_replies_as_with_redisgears() {
    let server = Server::start();
    let out: serde_json::Value =
        serde_json::from_str(&python(&redis_py(), REDIS_PY_SINGLE, server.port)).unwrap();
    assert_eq!(out["run"], serde_json::json!([["x"], []]));
    assert_eq!(out["count"], serde_json::json!([["1"], []]));
    assert_eq!(out["register"], "OK");
    assert_eq!(out["trigger"], serde_json::json!(["3"]));
    assert_eq!(
        out["registration_fields"],
        serde_json::json!([
            "id",
            "reader",
            "desc",
            "RegistrationData",
            "PD",
            "ExecutionThreadPool"
        ])
    );
    assert_eq!(out["blocking"], serde_json::json!([[], []]));
    assert!(
        out["syntax"].as_str().unwrap_or("").contains("SyntaxError"),
        "{out}"
    );
    assert_eq!(out["missing"], "execution plan does not exist");
}

/// redis-py's cluster client: RG.* commands have no keys, so they go to a node the caller picks
/// (a node flag such as `RedisCluster.RANDOM` is not enough for a command redis-py does not know,
/// with RedisGears as with us).
const REDIS_PY_CLUSTER: &str = r#"
import json, sys
from redis.cluster import RedisCluster
rc = RedisCluster(host='127.0.0.1', port=int(sys.argv[1]), decode_responses=True)
for i in range(100):
    rc.set('user:%d' % i, str(i))
out = {}
out['sum'] = rc.execute_command('RG.PYEXECUTE',
    "GB().map(lambda r: int(r['value'])).aggregate(0, lambda a, r: a + r, lambda a, r: a + r).run()",
    target_nodes=rc.get_random_node())
out['shards'] = rc.execute_command('RG.PYEXECUTE', "GB('ShardsIDReader').run()",
    target_nodes=rc.get_random_node())
out['ids'] = sorted(rc.execute_command('CLUSTER', 'MYID', target_nodes=n) for n in rc.get_primaries())
out['byshard'] = rc.execute_command('RG.PYEXECUTE',
    "GB().countby(lambda r: str(int(r['value']) % 3)).run()",
    target_nodes=rc.get_random_node())
print(json.dumps(out))
"#;

#[test]
fn redis_py_cluster_client_runs_on_the_cluster() {
    let cluster = Cluster::start(3);
    let out: serde_json::Value = serde_json::from_str(&python(
        &redis_py(),
        REDIS_PY_CLUSTER,
        cluster.nodes[0].port,
    ))
    .unwrap();
    assert_eq!(out["sum"], serde_json::json!([["4950"], []]));
    let mut shards: Vec<String> = out["shards"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    shards.sort();
    let ids: Vec<String> = out["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(shards, ids);
    let mut counts: Vec<String> = out["byshard"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    counts.sort();
    assert_eq!(
        counts,
        [
            "{'key': '0', 'value': 34}",
            "{'key': '1', 'value': 33}",
            "{'key': '2', 'value': 33}"
        ]
    );
}

/// gearsclient's default requirement is its own git repository, which our installer refuses
/// (a URL without a package name); instead its module is pickled by value, so the server needs
/// no copy of it. `requirements=[]` is passed each time: its default list is shared between
/// builders.
const GEARSCLIENT: &str = r#"
import json, sys, redis, cloudpickle
import gearsclient.redisgears_builder
from gearsclient import GearsRemoteBuilder
cloudpickle.register_pickle_by_value(gearsclient.redisgears_builder)
def GRB(reader, r):
    return GearsRemoteBuilder(reader, r=r, requirements=[], addClientToRequirements=False)
r = redis.Redis(host='127.0.0.1', port=int(sys.argv[1]))
try:
    GearsRemoteBuilder('KeysReader', r=r).map(lambda x: x).run()
except redis.exceptions.ResponseError as e:
    default_requirement = str(e)
for i in range(10):
    r.set('n:%d' % i, str(i))
out = {}
res, errs = GRB('KeysReader', r=r).map(lambda x: int(x['value'])).filter(lambda v: v % 2 == 0).run()
out['even'] = sorted(res)
out['even_errors'] = errs
res, errs = GRB('KeysReader', r=r).map(lambda x: {'k': x['key'], 'v': int(x['value'])}).run()
out['objects'] = sorted(res, key=lambda o: o['k'])[:2]
res, errs = GRB('KeysReader', r=r).countby(lambda x: int(x['value']) % 2).run()
out['countby'] = sorted(res, key=lambda o: o['key'])
res, errs = GRB('KeysReader', r=r).map(lambda x: 1 / 0).run()
out['failed'] = [len(res), len(errs)]
out['register'] = GRB('CommandReader', r=r).map(lambda x: 'got ' + x[1]).register(trigger='hello')
out['trigger'] = r.execute_command('RG.TRIGGER', 'hello', 'there')
res, errs = GearsRemoteBuilder('ShardsIDReader', r=r, requirements=['app'], addClientToRequirements=False).map(lambda x: __import__('app').VERSION).run()
out['with_requirements'] = [res, errs]
out['default_requirement'] = default_requirement
print(json.dumps(out, default=str))
"#;

#[test]
fn gearsclient_remote_builder_runs_and_registers() {
    let (_index, _cache, server) = server_with_app_index();
    let out: serde_json::Value =
        serde_json::from_str(&python(&gearsclient_python(), GEARSCLIENT, server.port)).unwrap();
    assert_eq!(out["even"], serde_json::json!([0, 2, 4, 6, 8]));
    assert_eq!(out["even_errors"], serde_json::json!([]));
    assert_eq!(
        out["objects"],
        serde_json::json!([{"k": "n:0", "v": 0}, {"k": "n:1", "v": 1}])
    );
    assert_eq!(
        out["countby"],
        serde_json::json!([{"key": "0", "value": 5}, {"key": "1", "value": 5}])
    );
    assert_eq!(out["failed"], serde_json::json!([0, 1]));
    assert_eq!(out["register"], "b'OK'");
    assert_eq!(out["trigger"], serde_json::json!(["b'got there'"]));
    assert_eq!(out["with_requirements"], serde_json::json!([["1.0"], []]));
    assert!(
        out["default_requirement"]
            .as_str()
            .unwrap()
            .contains("URL requirement must be preceded by a package name"),
        "{out}"
    );
}
