//! Simple-API pages, JSON and HTML (the first byte picks which).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The PEP 508 parser's own panics are caught by reqs-manager (they become errors); only a
    // panic that escapes is a crash: libFuzzer's hook would abort on the caught ones too.
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let page = url::Url::parse("https://index.example/simple/fuzz/").unwrap();
    let _ = if kind & 1 == 0 {
        reqs_manager::index::simple::parse_json(body, &page)
    } else {
        reqs_manager::index::simple::parse_html(body, &page)
    };
});
