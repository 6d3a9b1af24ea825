//! Wheel archives: METADATA read from them, and the whole install (entries, RECORD, paths) into a
//! scratch directory; whatever the bytes, an error or files inside that directory only.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The PEP 508 parser's own panics are caught by reqs-manager (they become errors); only a
    // panic that escapes is a crash: libFuzzer's hook would abort on the caught ones too.
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    const NAME: &str = "fuzz-1.0-py3-none-any.whl";
    let _ = reqs_manager::metadata::CoreMetadata::from_wheel(data, NAME);
    let scratch = tempfile::tempdir().unwrap();
    let target = scratch.path().join("site");
    std::fs::create_dir(&target).unwrap();
    let _ = reqs_manager::install::install_wheel(std::io::Cursor::new(data), NAME, &target);
});
