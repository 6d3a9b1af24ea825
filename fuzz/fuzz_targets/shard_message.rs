//! Messages between shards: the distributed-execution exchange messages (the first byte picks
//! the function) and the records inside them.
#![no_main]
use dataflow::record::Record;
use dataflow::wire::{self, ObjectCodec};
use libfuzzer_sys::fuzz_target;

/// Objects come back as their bytes, as the module's marshal codec would be handed them.
struct Bytes;

impl ObjectCodec for Bytes {
    fn encode(
        &self,
        _: &dyn dataflow::record::ObjectHandle,
        _: &mut Vec<u8>,
    ) -> Result<(), String> {
        Err("not here".into())
    }
    fn decode(&self, bytes: &[u8]) -> Result<Record, String> {
        Ok(Record::String(bytes.to_vec()))
    }
}

const FUNCTIONS: [&str; 7] = [
    cluster::exchange::COLLECT_RECORDS,
    cluster::exchange::COLLECT_DONE,
    cluster::exchange::REPARTITION_RECORDS,
    cluster::exchange::REPARTITION_DONE,
    cluster::exchange::EXECUTION_ENDED,
    cluster::exchange::EXECUTION_FAILED,
    "RG_Unknown",
];

fuzz_target!(|data: &[u8]| {
    let Some((&kind, payload)) = data.split_first() else {
        return;
    };
    let function = FUNCTIONS[kind as usize % FUNCTIONS.len()];
    let _ = cluster::exchange::decode_message(function, payload);
    let mut input = payload;
    while !input.is_empty() {
        if wire::decode(&mut input, &Bytes).is_err() {
            break;
        }
    }
});
