//! How final records become replies (gearsbuilder.md §6), seen with convertToStr=False.

use e2e::{pyexecute, Reply, Server};

fn emit(values: &str) -> Reply {
    let server = Server::start();
    let mut con = server.con();
    let script = format!(
        "def gen():\n    yield from [{values}]\nGB('PythonReader').run(gen, convertToStr=False)"
    );
    let reply = pyexecute(&mut con, &script, &[]);
    let parts = reply.items();
    assert_eq!(parts[1], Reply::Arr(vec![]), "{reply:?}");
    parts[0].clone()
}

#[test]
fn numbers() {
    assert_eq!(
        emit("1, -7, True, False, 1.5, 0.1, -2.0"),
        Reply::Arr(vec![
            Reply::Int(1),
            Reply::Int(-7),
            Reply::Int(1),
            Reply::Int(0),
            Reply::bulk("1.500000"),
            Reply::bulk("0.100000"),
            Reply::bulk("-2.000000"),
        ])
    );
}

#[test]
fn strings_with_status_and_error_prefixes() {
    assert_eq!(
        emit("'+OK', '-ERR x', 'plain', '+', '-', ''"),
        Reply::Arr(vec![
            Reply::Simple("OK".into()),
            Reply::err("ERR x"),
            Reply::bulk("plain"),
            Reply::bulk("+"),
            Reply::bulk("-"),
            Reply::bulk(""),
        ])
    );
}

#[test]
fn bytes_are_raw_bulk_strings() {
    assert_eq!(
        emit("b'raw\\xff'"),
        Reply::Arr(vec![Reply::Bulk(b"raw\xff".to_vec())])
    );
}

#[test]
fn nested_lists_become_nested_arrays() {
    assert_eq!(
        emit("[1, ['a', 2.5, []]]"),
        Reply::Arr(vec![Reply::Arr(vec![
            Reply::Int(1),
            Reply::Arr(vec![
                Reply::bulk("a"),
                Reply::bulk("2.500000"),
                Reply::Arr(vec![])
            ]),
        ])])
    );
}

#[test]
fn everything_else_is_py_record() {
    assert_eq!(
        emit("None, {'a': 1}, (1, 2), {1}, bytearray(b'x'), object()"),
        Reply::Arr(vec![Reply::bulk("PY RECORD"); 6])
    );
}

#[test]
fn default_string_conversion() {
    assert_eq!(emit("1"), Reply::Arr(vec![Reply::Int(1)]),);
    let server = Server::start();
    let mut con = server.con();
    let script =
        "def gen():\n    yield from [1, 1.5, None, '-ERR from str']\nGB('PythonReader').run(gen)";
    assert_eq!(
        pyexecute(&mut con, script, &[]),
        Reply::Arr(vec![
            Reply::Arr(vec![
                Reply::bulk("1"),
                Reply::bulk("1.5"),
                Reply::bulk("None"),
                Reply::err("ERR from str"),
            ]),
            Reply::Arr(vec![]),
        ])
    );
}
