//! Every GB() operation, with its exact reply (gearsbuilder.md §4). Inputs come from PythonReader
//! generators so that record order is fixed.

use e2e::{pyexecute, Reply, Server};

/// Runs `pipeline` (the text between `GB('PythonReader')` and `.run(...)`) over `values`.
fn run_over(values: &str, pipeline: &str, run_args: &str) -> Reply {
    let server = Server::start();
    let mut con = server.con();
    let script = format!(
        "def gen():\n    yield from [{values}]\nGB('PythonReader'){pipeline}.run(gen{run_args})"
    );
    pyexecute(&mut con, &script, &[])
}

fn results(values: &str, pipeline: &str) -> Vec<String> {
    let reply = run_over(values, pipeline, "");
    let parts = reply.items();
    assert_eq!(parts[1], Reply::Arr(vec![]), "unexpected errors: {reply:?}");
    parts[0]
        .items()
        .iter()
        .map(|r| r.as_str().to_string())
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn map_replaces_each_record_and_keeps_none() {
    assert_eq!(results("1, 2", ".map(lambda x: x * 10)"), ["10", "20"]);
    assert_eq!(results("1", ".map(lambda x: None)"), ["None"]);
}

#[test]
fn flatmap_expands_lists_last_element_first() {
    assert_eq!(
        results("0", ".flatmap(lambda x: [1, 2, 3])"),
        ["3", "2", "1"]
    );
    assert_eq!(results("0", ".flatmap(lambda x: [])"), Vec::<String>::new());
    // Only lists expand: tuples, dicts and other values are one record.
    assert_eq!(results("0", ".flatmap(lambda x: (1, 2))"), ["(1, 2)"]);
    assert_eq!(results("0", ".flatmap(lambda x: 'ab')"), ["ab"]);
}

#[test]
fn filter_keeps_truthy_records_unchanged() {
    assert_eq!(
        results("0, 1, 2, '', 'a'", ".filter(lambda x: x)"),
        ["1", "2", "a"]
    );
}

#[test]
fn foreach_passes_the_original_record_on_changed_in_place() {
    assert_eq!(
        results(
            "{'a': 1, 'event': 'x'}",
            ".foreach(lambda x: x.pop('event', None))"
        ),
        ["{'a': 1}"]
    );
    assert_eq!(results("5", ".foreach(lambda x: 'ignored')"), ["5"]);
}

#[test]
fn accumulate_emits_the_last_value_once() {
    assert_eq!(
        results("1, 2, 3", ".accumulate(lambda a, r: (a or 0) + r)"),
        ["6"]
    );
    assert_eq!(
        results("", ".accumulate(lambda a, r: 1)"),
        Vec::<String>::new()
    );
    assert_eq!(results("1, 2", ".accumulate(lambda a, r: None)"), ["None"]);
}

#[test]
fn localgroupby_emits_one_key_value_dict_per_key() {
    assert_eq!(
        sorted(results(
            "'a', 'b', 'a', 'c', 'a'",
            ".localgroupby(lambda x: x, lambda k, a, r: (a or 0) + 1)"
        )),
        [
            "{'key': 'a', 'value': 3}",
            "{'key': 'b', 'value': 1}",
            "{'key': 'c', 'value': 1}"
        ]
    );
}

#[test]
fn grouping_keys_that_are_not_str_use_repr() {
    assert_eq!(
        sorted(results(
            "1, None, ('a', 1), b'x'",
            ".localgroupby(lambda x: x, lambda k, a, r: type(k).__name__)"
        )),
        [
            "{'key': \"('a', 1)\", 'value': 'str'}",
            "{'key': \"b'x'\", 'value': 'str'}",
            "{'key': '1', 'value': 'str'}",
            "{'key': 'None', 'value': 'str'}",
        ]
    );
}

#[test]
fn groupby_accumulates_by_key() {
    assert_eq!(
        sorted(results(
            "1, 2, 3, 4",
            ".groupby(lambda x: str(x % 2), lambda k, a, r: (a or 0) + r)"
        )),
        ["{'key': '0', 'value': 6}", "{'key': '1', 'value': 4}"]
    );
}

#[test]
fn batchgroupby_reduces_each_group_once_last_seen_first() {
    assert_eq!(
        results(
            "1, 2, 3, 2",
            ".batchgroupby(lambda x: x, lambda k, l: len(l))"
        ),
        [
            "{'key': '3', 'value': 1}",
            "{'key': '2', 'value': 2}",
            "{'key': '1', 'value': 1}"
        ]
    );
}

#[test]
fn batchgroupby_with_a_non_function_reducer_fails_per_group_without_traceback() {
    assert_eq!(
        run_over("1, 2, 3, 2", ".batchgroupby(lambda x: x, 1)", ""),
        Reply::results(
            &[],
            &["Error type: <class 'TypeError'>, Value: 'int' object is not callable"; 3]
        )
    );
}

#[test]
fn repartition_and_collect_keep_records_on_one_shard() {
    assert_eq!(results("1, 2", ".repartition(lambda x: 'k')"), ["1", "2"]);
    assert_eq!(results("1, 2", ".collect()"), ["1", "2"]);
}

#[test]
fn limit_takes_a_window() {
    assert_eq!(results("0, 1, 2, 3, 4, 5", ".limit(2)"), ["0", "1"]);
    assert_eq!(results("0, 1, 2, 3, 4, 5", ".limit(2, 3)"), ["3", "4"]);
    assert_eq!(results("0, 1, 2", ".limit(0)"), Vec::<String>::new());
    assert_eq!(results("0, 1, 2", ".limit(True)"), ["0"]);
}

#[test]
fn limit_stops_pulling_upstream() {
    let server = Server::start();
    let mut con = server.con();
    let script = "
def gen():
    for i in range(1000000):
        execute('INCR', 'pulled')
        yield i
GB('PythonReader').limit(3).run(gen)";
    assert_eq!(
        pyexecute(&mut con, script, &[]),
        Reply::results(&["0", "1", "2"], &[])
    );
    // Three records, and the one extra the limit pulls and discards.
    assert_eq!(e2e::cmd(&mut con, &["GET", "pulled"]), Reply::bulk("4"));
}

#[test]
fn aggregate_folds_locally_then_globally() {
    assert_eq!(
        results(
            "1, 2, 3",
            ".aggregate(0, lambda a, r: a + r, lambda a, r: a + r)"
        ),
        ["6"]
    );
    assert_eq!(
        results("", ".aggregate(0, lambda a, r: a + r, lambda a, r: a + r)"),
        Vec::<String>::new()
    );
}

#[test]
fn aggregate_replaces_any_falsy_accumulator_with_a_copy_of_zero() {
    // The accumulator legitimately becomes 0, and is replaced by zero (5) before the next call.
    assert_eq!(
        results(
            "1, 1, 1",
            ".aggregate(5, lambda a, r: 0 if a == 5 else a + r, lambda a, r: a + r)"
        ),
        ["5"]
    );
    // Mutable zeros are deep-copied, never shared.
    assert_eq!(
        results(
            "1, 2",
            ".aggregate([], lambda a, r: a + [r], lambda a, r: a + r)"
        ),
        ["[1, 2]"]
    );
}

#[test]
fn aggregateby_emits_key_value_dicts() {
    assert_eq!(
        sorted(results(
            "'a', 'b', 'a'",
            ".aggregateby(lambda x: x, 0, lambda k, a, r: a + 1, lambda k, a, r: a + r)"
        )),
        ["{'key': 'a', 'value': 2}", "{'key': 'b', 'value': 1}"]
    );
}

#[test]
fn local_aggregateby_helper() {
    assert_eq!(
        sorted(results(
            "'a', 'b', 'a'",
            ".__localAggregateby__(lambda x: x, 0, lambda k, a, r: a + 1)"
        )),
        ["{'key': 'a', 'value': 2}", "{'key': 'b', 'value': 1}"]
    );
}

#[test]
fn count_and_count_of_nothing() {
    assert_eq!(results("'a', 'b', 'c'", ".count()"), ["3"]);
    assert_eq!(results("", ".count()"), Vec::<String>::new());
}

#[test]
fn countby_counts_per_key() {
    assert_eq!(
        sorted(results("'a', 'a', 'b'", ".countby()")),
        ["{'key': 'a', 'value': 2}", "{'key': 'b', 'value': 1}"]
    );
    assert_eq!(
        sorted(results(
            "1, 2, 3",
            ".countby(extractor=lambda x: str(x % 2))"
        )),
        ["{'key': '0', 'value': 1}", "{'key': '1', 'value': 2}"]
    );
}

#[test]
fn sort_default_is_ascending_and_reverse_false_descending() {
    let types = "'string', 'hash', 'zset', 'list', 'set'";
    assert_eq!(
        results(types, ".sort()"),
        ["hash", "list", "set", "string", "zset"]
    );
    assert_eq!(
        results(types, ".sort(reverse=False)"),
        ["zset", "string", "set", "list", "hash"]
    );
}

#[test]
fn distinct_keeps_one_of_each() {
    assert_eq!(
        sorted(results("1, 2, 1, 3, 2", ".distinct()")),
        ["1", "2", "3"]
    );
}

#[test]
fn avg_is_a_float_and_nothing_for_no_input() {
    assert_eq!(results("1, 2, 3, 4", ".avg()"), ["2.5"]);
    assert_eq!(results("'40', '44'", ".avg()"), ["42.0"]);
    assert_eq!(
        results("{'v': 1}, {'v': 2}", ".avg(lambda x: x['v'])"),
        ["1.5"]
    );
    assert_eq!(results("", ".avg()"), Vec::<String>::new());
}

#[test]
fn operations_chain_and_mutate_the_builder_in_place() {
    let server = Server::start();
    let mut con = server.con();
    let script = "
def gen():
    yield from [1, 2, 3]
gb = GB('PythonReader')
gb.map(lambda x: x + 1)
gb.filter(lambda x: x > 2).run(gen)";
    assert_eq!(
        pyexecute(&mut con, script, &[]),
        Reply::results(&["3", "4"], &[])
    );
}

#[test]
fn run_without_string_conversion_or_collect() {
    assert_eq!(
        run_over(
            "1, 2",
            ".map(lambda x: x * 2)",
            ", convertToStr=False, collect=False"
        ),
        Reply::Arr(vec![
            Reply::Arr(vec![Reply::Int(2), Reply::Int(4)]),
            Reply::Arr(vec![])
        ])
    );
}

#[test]
fn run_modes_async_and_async_local_are_accepted() {
    assert_eq!(
        run_over("1", "", ", mode='async'"),
        Reply::results(&["1"], &[])
    );
    assert_eq!(
        run_over("1", "", ", mode='async_local'"),
        Reply::results(&["1"], &[])
    );
}

#[test]
fn unknown_run_keywords_are_ignored() {
    assert_eq!(
        run_over("1", "", ", prefix='x', whatever=3"),
        Reply::results(&["1"], &[])
    );
}

#[test]
fn builder_attributes_and_script_name() {
    let server = Server::start();
    let mut con = server.con();
    let script = "
gb = GB('KeysOnlyReader', 'a*', 'my desc')
flat_error('%s %s %s %s %s' % (gb.realReader, gb.reader, gb.defaultArg, type(gb.gearsCtx).__name__, __name__))";
    assert_eq!(
        pyexecute(&mut con, script, &[]),
        Reply::err("KeysOnlyReader PythonReader a* PyFlatExecution not_main")
    );
    assert_eq!(
        pyexecute(
            &mut con,
            "if __name__ == '__main__':\n    raise Exception('x')",
            &[]
        ),
        Reply::ok()
    );
}
