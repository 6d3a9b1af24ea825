//! Wheel file names from index pages and bundles.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(name) = text.parse::<reqs_manager::wheel_name::WheelName>() {
            let _ = name.tags().count();
        }
    }
});
