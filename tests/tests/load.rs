//! Loading the module, with and without RedisGears 1.2 start-up arguments.

use e2e::{cmd, Reply, Server};

#[test]
fn module_registers_as_rg_version_10213() {
    let server = Server::start();
    let mut con = server.con();
    let modules = cmd(&mut con, &["MODULE", "LIST"]);
    let first = &modules.items()[0];
    assert_eq!(
        first,
        &Reply::Arr(vec![
            Reply::bulk("name"),
            Reply::bulk("rg"),
            Reply::bulk("ver"),
            Reply::Int(10213),
            Reply::bulk("path"),
            first.items()[5].clone(),
            Reply::bulk("args"),
            first.items()[7].clone(),
        ])
    );
}

#[test]
fn redisgears_start_up_arguments_are_accepted_and_echoed() {
    let server = Server::with_module_args(&[
        "Plugin",
        "/var/opt/redislabs/modules/rg/plugin/gears_python.so",
        "CreateVenv",
        "1",
        "ExecutionThreads",
        "5",
        "maxexecutions",
        "10",
        "TestConfig",
        "TestVal",
    ]);
    let mut con = server.con();
    assert_eq!(
        cmd(
            &mut con,
            &[
                "RG.CONFIGGET",
                "Plugin",
                "CreateVenv",
                "ExecutionThreads",
                "MaxExecutions",
                "TestConfig",
                "PythonAttemptTraceback",
                "nosuch",
            ]
        ),
        Reply::Arr(vec![
            Reply::bulks(&["/var/opt/redislabs/modules/rg/plugin/gears_python.so"]),
            Reply::Int(1),
            Reply::Int(5),
            Reply::Int(10),
            Reply::bulk("TestVal"),
            Reply::Int(1),
            Reply::err("(error) Unsupported config parameter: nosuch"),
        ])
    );
    // The configured values show in the log, as RedisGears prints them.
    assert!(server.log().contains("ExecutionThreads:5"));
}

#[test]
fn an_invalid_core_value_refuses_to_load() {
    let failure = Server::try_start(&["ExecutionThreads", "0"])
        .err()
        .expect("load must fail");
    assert!(
        failure
            .log
            .contains("Failed setting config value ExecutionThreads"),
        "{}",
        failure.log
    );
    let failure = Server::try_start(&["MaxExecutions", "abc"])
        .err()
        .expect("load must fail");
    assert!(failure
        .log
        .contains("Failed setting config value MaxExecutions"));
}

#[test]
fn a_key_without_value_refuses_to_load() {
    let failure = Server::try_start(&["TestConfig"])
        .err()
        .expect("load must fail");
    assert!(
        failure.log.contains("Value was not given to TestConfig"),
        "{}",
        failure.log
    );
}

#[test]
fn a_bad_python_key_value_refuses_to_load() {
    let failure = Server::try_start(&["PythonInstallReqMaxIdleTime", "0"])
        .err()
        .expect("load must fail");
    assert!(
        failure.log.contains("PythonInstallReqMaxIdleTime"),
        "{}",
        failure.log
    );
}

#[test]
fn c_extension_modules_import_inside_steps() {
    let server = Server::start();
    let mut con = server.con();
    let script = "
import decimal, sqlite3, ctypes, ssl
def probe(x):
    d = str(decimal.Decimal(x) / 4)
    q = sqlite3.connect(':memory:').execute('select 6*7').fetchone()[0]
    c = ctypes.c_int(7).value
    s = ssl.OPENSSL_VERSION.split()[0]
    return '%s %s %s %s' % (d, q, c, s)
def one():
    yield '1'
GB('PythonReader').map(probe).run(one)
";
    assert_eq!(
        e2e::pyexecute(&mut con, script, &[]),
        Reply::results(&["0.25 42 7 OpenSSL"], &[])
    );
}
