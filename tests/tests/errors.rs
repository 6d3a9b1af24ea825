//! One test per error text of gearsbuilder.md §10 and readers.md (batch), and exceptions in each
//! kind of step with and without PythonAttemptTraceback.

use e2e::{cmd, pyexecute, traceback, Reply, Server};

/// The reply of `script` on a fresh server.
fn reply_of(script: &str) -> Reply {
    let server = Server::start();
    let mut con = server.con();
    pyexecute(&mut con, script, &[])
}

/// A `gears.error` raised for the script's line 1 through prelude frames `frames`.
fn gears_error(frames: &[(u32, &str)], message: &str) -> Reply {
    let mut all = vec![(1, "<module>")];
    all.extend_from_slice(frames);
    Reply::Err(traceback(&all, &format!("gears.error: {message}")))
}

const DECO: (u32, &str) = (187, "deco");
const INIT: (u32, &str) = (84, "__init__");
const RUN: (u32, &str) = (172, "run");

macro_rules! error_test {
    ($name:ident, $script:expr, $frames:expr, $message:expr) => {
        #[test]
        fn $name() {
            assert_eq!(reply_of($script), gears_error(&$frames, $message));
        }
    };
}

// Builder: native argument checks of the primitive operations.
error_test!(
    map_arg_count,
    "GB().map()",
    [DECO],
    "wrong number of args to map function"
);
error_test!(
    map_not_function,
    "GB().map(str)",
    [DECO],
    "map argument must be a function"
);
error_test!(
    filter_arg_count,
    "GB().filter(1, 2)",
    [DECO],
    "wrong number of args to filter function"
);
error_test!(
    filter_not_function,
    "GB().filter(1)",
    [DECO],
    "filter argument must be a function"
);
error_test!(
    foreach_arg_count,
    "GB().foreach()",
    [DECO],
    "wrong number of args to foreach function"
);
error_test!(
    foreach_not_function,
    "GB().foreach(len)",
    [DECO],
    "foreach argument must be a function"
);
error_test!(
    flatmap_arg_count,
    "GB().flatmap()",
    [DECO],
    "wrong number of args to flatmap function"
);
error_test!(
    flatmap_not_function,
    "GB().flatmap('x')",
    [DECO],
    "flatmap argument must be a function"
);
error_test!(
    accumulate_arg_count,
    "GB().accumulate()",
    [DECO],
    "wrong number of args to accumulate function"
);
error_test!(
    accumulate_not_function,
    "GB().accumulate(1)",
    [DECO],
    "accumulate argument must be a function"
);
error_test!(
    repartition_arg_count,
    "GB().repartition()",
    [DECO],
    "wrong number of args to repartition function"
);
error_test!(
    repartition_not_function,
    "GB().repartition(1)",
    [DECO],
    "repartition argument must be a function"
);
error_test!(
    groupby_arg_count,
    "GB().groupby(lambda x: x)",
    [DECO],
    "wrong number of args to groupby function"
);
error_test!(
    localgroupby_arg_count,
    "GB().localgroupby(lambda x: x)",
    [DECO],
    "wrong number of args to groupby function"
);
error_test!(
    groupby_extractor,
    "GB().groupby(1, lambda k, a, r: a)",
    [DECO],
    "groupby extractor argument must be a function"
);
error_test!(
    localgroupby_extractor,
    "GB().localgroupby(1, lambda k, a, r: a)",
    [DECO],
    "groupby extractor argument must be a function"
);
error_test!(
    groupby_reducer,
    "GB().groupby(lambda x: x, 1)",
    [DECO],
    "groupby reducer argument must be a function"
);
error_test!(
    localgroupby_reducer,
    "GB().localgroupby(lambda x: x, 1)",
    [DECO],
    "groupby reducer argument must be a function"
);
error_test!(
    batchgroupby_arg_count,
    "GB().batchgroupby(lambda x: x)",
    [DECO],
    "wrong number of args to batchgroupby function"
);
error_test!(
    batchgroupby_extractor,
    "GB().batchgroupby(1, lambda k, l: l)",
    [DECO],
    "batchgroupby extractor argument must be a function"
);
error_test!(
    collect_with_argument,
    "GB().collect(1)",
    [DECO],
    "wrong number of args to collect function"
);
error_test!(
    limit_no_argument,
    "GB().limit()",
    [DECO],
    "wrong number of args to limit function"
);
error_test!(
    limit_three_arguments,
    "GB().limit(1, 2, 3)",
    [DECO],
    "wrong number of args to limit function"
);
error_test!(
    limit_not_a_number,
    "GB().limit('a')",
    [DECO],
    "limit argument must be a number"
);
error_test!(
    limit_offset_not_a_number,
    "GB().limit(1, 2.5)",
    [DECO],
    "limit argument must be a number"
);

// Builder: the constructor.
error_test!(
    reader_not_a_string,
    "GB(1)",
    [INIT],
    "reader argument must be a string"
);
error_test!(
    desc_not_a_string,
    "GB('KeysReader', '*', 1)",
    [INIT],
    "desc argument must be a string"
);
error_test!(
    unknown_reader,
    "GB('NoSuchReader')",
    [INIT],
    "The given reader does not exists"
);

// run().
#[test]
fn second_run() {
    assert_eq!(
        reply_of("GB().run()\nGB().run()"),
        Reply::Err(traceback(
            &[(2, "<module>"), RUN],
            "gears.error: Can not run more then 1 executions in a single script"
        ))
    );
}
error_test!(
    python_reader_needs_a_function,
    "GB('PythonReader').run()",
    [RUN],
    "pyreader argument must be a function"
);
error_test!(
    python_reader_string,
    "GB('PythonReader').run('gen')",
    [RUN],
    "pyreader argument must be a function"
);
error_test!(
    regex_not_a_string,
    "GB().run(1)",
    [RUN],
    "regex argument must be a string"
);
error_test!(
    stream_key_not_a_string,
    "GB('StreamReader').run(['s'])",
    [RUN],
    "regex argument must be a string"
);
error_test!(
    command_reader_cannot_run,
    "GB('CommandReader').run()",
    [RUN],
    "Given reader do not support run or not exists"
);
error_test!(
    internal_shard_reader_cannot_run,
    "GB('ShardIDReader').run()",
    [RUN],
    "Given reader do not support run or not exists"
);
error_test!(
    mode_not_a_string,
    "GB().run(mode=1)",
    [RUN],
    "execution mode must be a string"
);
error_test!(
    mode_unknown,
    "GB().run(mode='sync')",
    [RUN],
    "unknown execution mode"
);
error_test!(
    no_scan_not_bool,
    "GB().run(noScan=1)",
    [RUN],
    "exactMatch value is not boolean"
);
error_test!(
    read_value_not_bool,
    "GB().run(readValue='yes')",
    [RUN],
    "readValue value is not boolean"
);
error_test!(
    from_id_not_a_string,
    "GB('StreamReader').run('s', fromId=5)",
    [RUN],
    "fromId argument must be a string"
);

#[test]
fn python_reader_without_exactly_one_argument() {
    assert_eq!(
        reply_of("GB('PythonReader').gearsCtx.run()"),
        Reply::Err(traceback(
            &[(1, "<module>")],
            "gears.error: python reader function is not given"
        ))
    );
}

#[test]
fn primitives_take_positional_arguments_only() {
    assert_eq!(
        reply_of("GB().limit(length=3)"),
        Reply::Err(traceback(
            &[(1, "<module>")],
            "TypeError: createDecorator.<locals>.deco() got an unexpected keyword argument 'length'"
        ))
    );
}

#[test]
fn avg_needs_a_python_function() {
    assert_eq!(
        reply_of("GB().avg(1)"),
        gears_error(&[(155, "avg"), DECO], "map argument must be a function")
    );
}

#[test]
fn keys_only_reader_takes_no_mode() {
    assert_eq!(
        reply_of("GB('KeysOnlyReader').run(mode='async_local')"),
        Reply::Err(traceback(
            &[(1, "<module>"), (171, "run")],
            "TypeError: createKeysOnlyReader() got an unexpected keyword argument 'mode'"
        ))
    );
    assert_eq!(
        reply_of("GB('KeysOnlyReader').run('a', pattern='b')"),
        Reply::Err(traceback(
            &[(1, "<module>"), (171, "run")],
            "TypeError: createKeysOnlyReader() got multiple values for argument 'pattern'"
        ))
    );
}

/// Runs `body` on a thread created with `threading`, and reports what it raised.
fn on_python_thread(body: &str) -> Reply {
    let script = format!(
        "
import threading
gb = GB()
caught = []
def body():
    try:
        {body}
    except Exception as e:
        caught.append(str(e))
t = threading.Thread(target=body)
t.start()
t.join()
flat_error(caught[0] if caught else 'nothing raised')"
    );
    reply_of(&script)
}

#[test]
fn gb_on_a_python_created_thread() {
    assert_eq!(
        on_python_thread("GB()"),
        Reply::err("Can not create a gearsCtx on a python created thread")
    );
}

#[test]
fn run_on_a_python_created_thread() {
    assert_eq!(
        on_python_thread("gb.run()"),
        Reply::err("Can only run execution on registered gears thread")
    );
}

#[test]
fn a_failing_script_reply_without_python_error_info_is_never_empty() {
    // Raising a bare class still carries Python error information.
    assert_eq!(
        reply_of("raise KeyError"),
        Reply::Err(traceback(&[(1, "<module>")], "KeyError"))
    );
}

#[test]
fn stream_reader_malformed_id() {
    let server = Server::start();
    let mut con = server.con();
    cmd(&mut con, &["XADD", "s", "1-1", "f", "v"]);
    assert_eq!(
        pyexecute(&mut con, "GB('StreamReader').run('s', fromId='test')", &[]),
        Reply::results(
            &[],
            &["ERR Invalid stream ID specified as stream command argument"]
        )
    );
}

/// Step exceptions: `pipeline` runs over the values 1 and 2; the first record fails.
fn step_error(pipeline: &str, traceback_on: bool) -> Reply {
    let server = Server::start();
    let mut con = server.con();
    if !traceback_on {
        cmd(&mut con, &["RG.CONFIGSET", "PythonAttemptTraceback", "0"]);
    }
    let script =
        format!("def gen():\n    yield from [1, 2]\nGB('PythonReader'){pipeline}.run(gen)");
    pyexecute(&mut con, &script, &[])
}

macro_rules! step_error_test {
    ($with:ident, $without:ident, $pipeline:expr, $frame:expr) => {
        #[test]
        fn $with() {
            assert_eq!(
                step_error($pipeline, true),
                Reply::results(
                    &[],
                    &[&traceback(&[$frame], "ZeroDivisionError: division by zero")]
                )
            );
        }

        #[test]
        fn $without() {
            assert_eq!(
                step_error($pipeline, false),
                Reply::results(
                    &[],
                    &["Error type: <class 'ZeroDivisionError'>, Value: division by zero"]
                )
            );
        }
    };
}

const LAMBDA: (u32, &str) = (3, "<lambda>");

step_error_test!(
    map_raises,
    map_raises_plain,
    ".map(lambda x: x / 0)",
    LAMBDA
);
step_error_test!(
    flatmap_raises,
    flatmap_raises_plain,
    ".flatmap(lambda x: [x / 0])",
    LAMBDA
);
step_error_test!(
    filter_raises,
    filter_raises_plain,
    ".filter(lambda x: x / 0)",
    LAMBDA
);
step_error_test!(
    foreach_raises,
    foreach_raises_plain,
    ".foreach(lambda x: x / 0)",
    LAMBDA
);
step_error_test!(
    accumulate_raises,
    accumulate_raises_plain,
    ".accumulate(lambda a, x: x / 0)",
    LAMBDA
);
step_error_test!(
    extractor_raises,
    extractor_raises_plain,
    ".localgroupby(lambda x: x / 0, lambda k, a, r: r)",
    LAMBDA
);
step_error_test!(
    reducer_raises,
    reducer_raises_plain,
    ".groupby(lambda x: 'k', lambda k, a, r: r / 0)",
    LAMBDA
);
step_error_test!(
    batch_reducer_raises,
    batch_reducer_raises_plain,
    ".batchgroupby(lambda x: 'k', lambda k, l: 1 / 0)",
    LAMBDA
);
step_error_test!(
    repartition_raises,
    repartition_raises_plain,
    ".repartition(lambda x: x / 0)",
    LAMBDA
);

#[test]
fn sugar_lambdas_show_their_prelude_frames() {
    let server = Server::start();
    let mut con = server.con();
    let reply = pyexecute(
        &mut con,
        "def gen():\n    yield [1]\nGB('PythonReader').distinct().run(gen)",
        &[],
    );
    assert_eq!(
        reply,
        Reply::results(
            &[],
            &[&traceback(
                &[(98, "<lambda>"), (145, "<lambda>")],
                "TypeError: unhashable type: 'list'"
            )]
        )
    );
}

#[test]
fn a_step_error_keeps_partial_results_of_blocking_steps() {
    let server = Server::start();
    let mut con = server.con();
    let script = "
def gen():
    yield from [1, 2, 0, 4]
GB('PythonReader').map(lambda x: 1 / x).count().run(gen)";
    let reply = pyexecute(&mut con, script, &[]);
    assert_eq!(reply.items()[0], Reply::bulks(&["2"]));
    assert_eq!(reply.items()[1].items().len(), 1);
}
