//! RG.PYIMPORTREQ payloads (offline requirement bundles).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = reqs_manager::bundle::RequirementBundle::parse(data);
});
