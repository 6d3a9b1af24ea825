//! METADATA files (PEP 658 files from the index and METADATA inside wheels).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The PEP 508 parser's own panics are caught by reqs-manager (they become errors); only a
    // panic that escapes is a crash: libFuzzer's hook would abort on the caught ones too.
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    let _ = reqs_manager::metadata::CoreMetadata::parse(data, "fuzz-1.0.dist-info/METADATA");
});
