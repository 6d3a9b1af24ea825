//! What the module reads back from an RDB, the AOF, a primary or another shard: registration
//! batches (`RG.INNERREGISTER` and other shards' batches), the registrations and requirements RDB
//! aux sections (as the values Redis' RDB calls hand back), and the registration, requirement
//! and run messages between shards. The first byte picks the decoder. Whatever decodes must
//! encode back to the same value.
#![no_main]
use formats::aux::{self, RegistrationsSection, SliceAux, VecAux};
use formats::batch::Batch;
use formats::messages::{self, ReceivedRun, Unregister, WheelPiece, WheelsDone};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, input)) = data.split_first() else {
        return;
    };
    match kind % 9 {
        0 => {
            if let Ok(batch) = Batch::decode(input) {
                assert_eq!(Batch::decode(&batch.encode()).unwrap(), batch);
            }
        }
        1 => {
            if let Ok(section) = RegistrationsSection::read(&mut SliceAux(input)) {
                let mut out = VecAux::default();
                section.write(&mut out);
                let again = RegistrationsSection::read(&mut SliceAux(&out.0)).unwrap();
                assert_eq!(again, section);
            }
        }
        2 => {
            if let Ok(requirements) = aux::read_requirements(&mut SliceAux(input)) {
                for requirement in &requirements {
                    for (wheel, _) in &requirement.wheels {
                        assert!(!wheel.contains('/') && !wheel.starts_with('.'));
                    }
                }
            }
        }
        3 => {
            if let Ok(piece) = WheelPiece::decode(input) {
                assert_eq!(WheelPiece::decode(&piece.encode()).unwrap(), piece);
            }
        }
        4 => {
            if let Ok(done) = WheelsDone::decode(input) {
                assert_eq!(WheelsDone::decode(&done.encode()).unwrap(), done);
            }
        }
        5 => {
            if let Ok((token, batch)) = messages::decode_ask(input) {
                let _ = Batch::decode(batch);
                assert_eq!(token.to_le_bytes(), input[..8]);
            }
        }
        6 => {
            let _ = messages::decode_answer(input);
        }
        7 => {
            let unregister = Unregister::decode(input);
            if !unregister.id.contains('\0') {
                assert_eq!(Unregister::decode(&unregister.encode()), unregister);
            }
        }
        _ => {
            if let Ok(run) = ReceivedRun::decode(input) {
                let names: Vec<&str> = run.requirements.iter().map(String::as_str).collect();
                let again = ReceivedRun::decode(&ReceivedRun::encode(&run.id, &names, &run.saved));
                assert_eq!(again.unwrap(), run);
            }
        }
    }
});
