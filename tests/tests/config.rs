//! RG.CONFIGGET / RG.CONFIGSET with every key of configuration.md, and configGet from Python.

use e2e::{cmd, pyexecute, Reply, Server};

fn saved() -> Reply {
    Reply::Simple("OK - value was saved in extra config dictionary".into())
}

#[test]
fn defaults_of_every_key() {
    let server = Server::start();
    let mut con = server.con();
    assert_eq!(
        cmd(
            &mut con,
            &[
                "RG.CONFIGGET",
                "MaxExecutions",
                "MaxExecutionsPerRegistration",
                "ProfileExecutions",
                "ExecutionThreads",
                "ExecutionMaxIdleTime",
                "SendMsgRetries",
                "Plugin",
                "CreateVenv",
                "DownloadDeps",
                "ForeceDownloadDepsOnEnterprise",
                "PythonAttemptTraceback",
                "OverridePythonAllocators",
                "PythonInstallReqMaxIdleTime",
                "PythonInstallationDir",
            ]
        ),
        Reply::Arr(vec![
            Reply::Int(1000),
            Reply::Int(100),
            Reply::Int(0),
            Reply::Int(3),
            Reply::Int(5000),
            Reply::Int(3),
            Reply::Arr(vec![]),
            Reply::Int(0),
            Reply::Int(0),
            Reply::Int(0),
            Reply::Int(1),
            Reply::Int(1),
            Reply::Int(30000),
            Reply::bulk("/var/opt/redislabs/modules/rg"),
        ])
    );
    let url = cmd(&mut con, &["RG.CONFIGGET", "DependenciesUrl"]);
    assert!(url.items()[0].as_str().starts_with("http"), "{url:?}");
}

#[test]
fn configset_round_trips_as_the_spec_example_shows() {
    let server = Server::start();
    let mut con = server.con();
    assert_eq!(
        cmd(
            &mut con,
            &[
                "RG.CONFIGSET",
                "MaxExecutions",
                "10",
                "ExecutionThreads",
                "5",
                "foo",
                "bar",
                "PythonAttemptTraceback",
                "0",
                "CreateVenv",
                "1"
            ]
        ),
        Reply::Arr(vec![
            Reply::ok(),
            Reply::err("(error) Config value ExecutionThreads not modifiable at runtime"),
            saved(),
            saved(),
            Reply::err("(error) CreateVenv is not configurable at runtime"),
        ])
    );
    assert_eq!(
        cmd(
            &mut con,
            &[
                "RG.CONFIGGET",
                "MaxExecutions",
                "ExecutionThreads",
                "foo",
                "PythonAttemptTraceback",
                "CreateVenv"
            ]
        ),
        Reply::Arr(vec![
            Reply::Int(10),
            Reply::Int(3),
            Reply::bulk("bar"),
            Reply::Int(0),
            Reply::Int(0)
        ])
    );
}

#[test]
fn invalid_values_are_refused_per_key() {
    let server = Server::start();
    let mut con = server.con();
    assert_eq!(
        cmd(
            &mut con,
            &[
                "RG.CONFIGSET",
                "ExecutionMaxIdleTime",
                "0",
                "SendMsgRetries",
                "-1",
                "PythonInstallReqMaxIdleTime",
                "0"
            ]
        ),
        Reply::Arr(vec![
            Reply::err("(error) Failed setting config value ExecutionMaxIdleTime"),
            Reply::err("(error) Failed setting config value SendMsgRetries"),
            Reply::err(
                "Failed setting config value for key 'PythonInstallReqMaxIdleTime' with value '0'"
            ),
        ])
    );
    for bad in [" 5", "abc", "99999999999999999999", "+5", "05", ""] {
        assert_eq!(
            cmd(&mut con, &["RG.CONFIGSET", "MaxExecutions", bad]),
            Reply::Arr(vec![Reply::err(
                "(error) Failed setting config value MaxExecutions"
            )]),
            "{bad:?}"
        );
    }
    assert_eq!(
        cmd(&mut con, &["RG.CONFIGSET", "MaxExecutions", "-1"]),
        Reply::Arr(vec![Reply::ok()])
    );
    assert_eq!(
        cmd(&mut con, &["RG.CONFIGGET", "MaxExecutions"]),
        Reply::Arr(vec![Reply::Int(-1)])
    );
}

#[test]
fn an_odd_argument_count_leaves_the_last_key_without_value() {
    let server = Server::start();
    let mut con = server.con();
    assert_eq!(
        cmd(&mut con, &["RG.CONFIGSET", "foo"]),
        Reply::Arr(vec![Reply::err("(error) Value was not given to foo")])
    );
    assert_eq!(
        cmd(&mut con, &["RG.CONFIGSET", "a", "1", "MaxExecutions"]),
        Reply::Arr(vec![
            saved(),
            Reply::err("(error) Failed setting config value MaxExecutions")
        ])
    );
    assert_eq!(cmd(&mut con, &["RG.CONFIGSET"]), Reply::Arr(vec![]));
    assert_eq!(cmd(&mut con, &["RG.CONFIGGET"]), Reply::Arr(vec![]));
}

#[test]
fn core_keys_set_in_any_case_but_read_in_exact_case() {
    let server = Server::start();
    let mut con = server.con();
    assert_eq!(
        cmd(&mut con, &["RG.CONFIGSET", "maxexecutions", "5"]),
        Reply::Arr(vec![Reply::ok()])
    );
    assert_eq!(
        cmd(
            &mut con,
            &["RG.CONFIGGET", "maxexecutions", "MaxExecutions"]
        ),
        Reply::Arr(vec![
            Reply::err("(error) Unsupported config parameter: maxexecutions"),
            Reply::Int(5)
        ])
    );
    // A wrong-case Python key is only an extra key.
    assert_eq!(
        cmd(&mut con, &["RG.CONFIGSET", "pythonattempttraceback", "0"]),
        Reply::Arr(vec![saved()])
    );
    assert_eq!(
        cmd(
            &mut con,
            &[
                "RG.CONFIGGET",
                "pythonattempttraceback",
                "PythonAttemptTraceback"
            ]
        ),
        Reply::Arr(vec![Reply::bulk("0"), Reply::Int(1)])
    );
}

#[test]
fn bool_keys_echo_as_set_or_as_used() {
    let server = Server::start();
    let mut con = server.con();
    cmd(
        &mut con,
        &[
            "RG.CONFIGSET",
            "ProfileExecutions",
            "5",
            "PythonAttemptTraceback",
            "5",
        ],
    );
    assert_eq!(
        cmd(
            &mut con,
            &[
                "RG.CONFIGGET",
                "ProfileExecutions",
                "PythonAttemptTraceback"
            ]
        ),
        Reply::Arr(vec![Reply::Int(5), Reply::Int(1)])
    );
    assert_eq!(
        pyexecute(
            &mut con,
            "flat_error(repr(configGet('PythonAttemptTraceback')))",
            &[]
        ),
        Reply::err("'5'")
    );
}

#[test]
fn python_config_get_sees_only_extra_keys() {
    let server = Server::with_module_args(&["TestConfig", "TestVal", "CreateVenv", "0"]);
    let mut con = server.con();
    assert_eq!(
        pyexecute(
            &mut con,
            "flat_error(repr((gearsConfigGet('TestConfig'), gearsConfigGet('NotExists', 'default'), configGet('ProfileExecutions'), configGet('MaxExecutions'), configGet('CreateVenv'), configGet('PythonAttemptTraceback'), configGet('nope'))))",
            &[]
        ),
        Reply::err("('TestVal', 'default', None, None, '0', None, None)")
    );
    cmd(&mut con, &["RG.CONFIGSET", "Later", "v"]);
    assert_eq!(
        pyexecute(&mut con, "flat_error(configGet('Later'))", &[]),
        Reply::err("v")
    );
}

#[test]
fn execution_threads_takes_effect() {
    // One thread: a second execution waits for the first.
    let server = Server::with_module_args(&["ExecutionThreads", "1"]);
    let mut con = server.con();
    let script = "
import threading
def gen():
    yield threading.current_thread().name
GB('PythonReader').run(gen)";
    let names: Vec<Reply> = (0..4).map(|_| pyexecute(&mut con, script, &[])).collect();
    assert!(names.windows(2).all(|w| w[0] == w[1]), "{names:?}");
}
