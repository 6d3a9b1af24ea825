//! register() argument errors (gearsbuilder.md §5.2, readers.md §2.3).

use e2e::{pyexecute, traceback, Reply, Server};

const REGISTER: (u32, &str) = (183, "register");

fn register_error(args: &str, message: &str) {
    let server = Server::start();
    let mut con = server.con();
    assert_eq!(
        pyexecute(&mut con, &format!("GB().register({args})"), &[]),
        Reply::Err(traceback(
            &[(1, "<module>"), REGISTER],
            &format!("gears.error: {message}")
        )),
        "register({args})"
    );
}

#[test]
fn mode_not_a_string() {
    register_error("mode=1", "execution mode must be a string");
}

#[test]
fn mode_unknown() {
    register_error("mode='later'", "unknown execution mode");
}

#[test]
fn on_registered_not_a_function() {
    register_error("onRegistered=1", "OnRegistered argument must be a function");
}

#[test]
fn on_unregistered_not_a_function() {
    register_error(
        "onUnregistered=1",
        "OnUnregistered argument must be a function",
    );
}

#[test]
fn prefix_not_a_string() {
    register_error("prefix=1", "regex argument must be a string");
}

#[test]
fn event_types_not_iterable() {
    register_error("eventTypes=1", "given eventTypes is not iterable");
}

#[test]
fn event_type_not_a_string() {
    register_error("eventTypes=[1]", "given event type is not string");
}

#[test]
fn key_types_not_iterable() {
    register_error("keyTypes=1", "given keyTypes is not iterable");
}

#[test]
fn key_type_not_a_string() {
    register_error("keyTypes=[1]", "given key type is not string");
}

#[test]
fn key_type_unknown() {
    register_error("keyTypes=['strings']", "unknown key type");
}

#[test]
fn read_value_not_bool() {
    register_error("readValue=1", "readValue is not boolean");
}

#[test]
fn commands_not_iterable() {
    register_error("commands=1", "given commands is not iterable");
}

#[test]
fn command_not_a_string() {
    register_error("commands=[1]", "given command type is not string");
}

#[test]
fn python_readers_cannot_register() {
    for reader in ["PythonReader", "KeysOnlyReader", "ShardsIDReader"] {
        let server = Server::start();
        let mut con = server.con();
        assert_eq!(
            pyexecute(&mut con, &format!("GB('{reader}').register()"), &[]),
            Reply::Err(traceback(
                &[(1, "<module>"), REGISTER],
                "gears.error: given reader does not exists or does not support register"
            )),
            "{reader}"
        );
    }
}

#[test]
fn unpicklable_callbacks_are_refused() {
    let server = Server::start();
    let mut con = server.con();
    let reply = pyexecute(
        &mut con,
        "import threading\nlock = threading.Lock()\ndef holds(r):\n    return lock\nGB().map(holds).register()",
        &[],
    );
    let text = reply.as_str().to_string();
    assert!(
        text.contains(
            "gears.error: Error occured when serialized a python callback, callback=holds error="
        ),
        "{text}"
    );
    assert!(text.contains("cannot pickle"), "{text}");
}
