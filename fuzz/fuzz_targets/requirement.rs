//! Requirement strings (RG.PYEXECUTE REQUIREMENTS, requirements.txt lines, METADATA
//! Requires-Dist): parsed or refused, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The PEP 508 parser's own panics are caught by reqs-manager (they become errors); only a
    // panic that escapes is a crash: libFuzzer's hook would abort on the caught ones too.
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(requirement) = text.parse::<reqs_manager::Requirement>() {
            // What parsed keeps its string and prints its PEP 508 part, which parses again.
            assert_eq!(requirement.raw, text);
            let _ = requirement.specifiers();
            let _ = requirement
                .pep508
                .to_string()
                .parse::<reqs_manager::Requirement>();
        }
    }
});
