//! The messages shards exchange about registrations, requirements and runs (the distributed
//! execution's own messages are `cluster::exchange`'s). Each payload is decoded here, so a
//! broken or hostile one is an error before the module acts on it.

use dataflow::wire;

use crate::{check_wheel_name, FormatError};

const TRUNCATED: FormatError = FormatError::Truncated("message");

fn take_text(input: &mut &[u8]) -> Result<String, FormatError> {
    let bytes = wire::take_bytes(input).map_err(|_| TRUNCATED)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| FormatError::NotUtf8)
}

fn take_u32(input: &mut &[u8]) -> Result<u32, FormatError> {
    wire::take_u32(input).map_err(|_| TRUNCATED)
}

fn take_u64(input: &mut &[u8]) -> Result<u64, FormatError> {
    let bytes = wire::take(input, 8).map_err(|_| TRUNCATED)?;
    Ok(u64::from_le_bytes(bytes.try_into().map_err(|_| TRUNCATED)?))
}

/// One piece of a requirement's wheel (`RG_InnerReqPut`), pieces in order from offset 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WheelPiece<'a> {
    pub requirement: String,
    pub wheel: String,
    pub offset: u64,
    pub bytes: &'a [u8],
}

impl<'a> WheelPiece<'a> {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.bytes.len() + 256);
        wire::put_bytes(&mut out, self.requirement.as_bytes());
        wire::put_bytes(&mut out, self.wheel.as_bytes());
        out.extend_from_slice(&self.offset.to_le_bytes());
        wire::put_bytes(&mut out, self.bytes);
        out
    }

    pub fn decode(mut input: &'a [u8]) -> Result<WheelPiece<'a>, FormatError> {
        let input = &mut input;
        let requirement = take_text(input)?;
        let wheel = take_text(input)?;
        check_wheel_name(&wheel)?;
        let offset = take_u64(input)?;
        let bytes = wire::take_bytes(input).map_err(|_| TRUNCATED)?;
        Ok(WheelPiece {
            requirement,
            wheel,
            offset,
            bytes,
        })
    }
}

/// The end of a requirement's wheels (`RG_InnerReqDone`): each wheel's name and sha256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WheelsDone {
    pub requirement: String,
    pub wheels: Vec<(String, String)>,
}

impl WheelsDone {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        wire::put_bytes(&mut out, self.requirement.as_bytes());
        out.extend_from_slice(&(self.wheels.len() as u32).to_le_bytes());
        for (wheel, sha256) in &self.wheels {
            wire::put_bytes(&mut out, wheel.as_bytes());
            wire::put_bytes(&mut out, sha256.as_bytes());
        }
        out
    }

    pub fn decode(mut input: &[u8]) -> Result<WheelsDone, FormatError> {
        let input = &mut input;
        let requirement = take_text(input)?;
        let mut wheels = Vec::new();
        for _ in 0..take_u32(input)? {
            let wheel = take_text(input)?;
            check_wheel_name(&wheel)?;
            wheels.push((wheel, take_text(input)?));
        }
        Ok(WheelsDone {
            requirement,
            wheels,
        })
    }
}

/// A batch whose sender waits for an answer (`RG_InnerRegisterAsk`): a token, then the batch.
pub fn encode_ask(token: u64, batch: &[u8]) -> Vec<u8> {
    let mut out = token.to_le_bytes().to_vec();
    out.extend_from_slice(batch);
    out
}

/// The token and the encoded batch of [`encode_ask`]'s payload.
pub fn decode_ask(mut input: &[u8]) -> Result<(u64, &[u8]), FormatError> {
    let token = take_u64(&mut input).map_err(|_| FormatError::Message("a batch with no token"))?;
    Ok((token, input))
}

/// The answer to an ask (`RG_InnerRegisterAnswer`): its token, then why the batch was not
/// applied (nothing when it was).
pub fn encode_answer(token: u64, error: Option<&str>) -> Vec<u8> {
    let mut out = token.to_le_bytes().to_vec();
    out.extend_from_slice(error.unwrap_or("").as_bytes());
    out
}

pub fn decode_answer(mut input: &[u8]) -> Result<(u64, Option<String>), FormatError> {
    let token = take_u64(&mut input)?;
    let error = (!input.is_empty()).then(|| String::from_utf8_lossy(input).into_owned());
    Ok((token, error))
}

/// An RG.UNREGISTER applied on another shard (`RG_InnerUnregister`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unregister {
    pub id: String,
    pub abort_pending: bool,
}

impl Unregister {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.id.as_bytes().to_vec();
        if self.abort_pending {
            out.extend_from_slice(b"\0abortpending");
        }
        out
    }

    pub fn decode(input: &[u8]) -> Unregister {
        let text = String::from_utf8_lossy(input);
        match text.split_once('\0') {
            Some((id, _)) => Unregister {
                id: id.to_string(),
                abort_pending: true,
            },
            None => Unregister {
                id: text.into_owned(),
                abort_pending: false,
            },
        }
    }
}

/// A run started on another shard (`ExecutionPlan_OnReceived`): its execution id, the
/// requirements it needs (their wheels came before it), its saved form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedRun {
    pub id: String,
    pub requirements: Vec<String>,
    pub saved: Vec<u8>,
}

impl ReceivedRun {
    pub fn encode(id: &str, requirements: &[&str], saved: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(saved.len() + 64);
        wire::put_bytes(&mut out, id.as_bytes());
        out.extend_from_slice(&(requirements.len() as u32).to_le_bytes());
        for name in requirements {
            wire::put_bytes(&mut out, name.as_bytes());
        }
        out.extend_from_slice(saved);
        out
    }

    pub fn decode(mut input: &[u8]) -> Result<ReceivedRun, FormatError> {
        let input = &mut input;
        let id =
            take_text(input).map_err(|_| FormatError::Message("a run with no execution id"))?;
        let count = take_u32(input)?;
        let mut requirements = Vec::new();
        for _ in 0..count {
            requirements.push(
                take_text(input)
                    .map_err(|_| FormatError::Message("a run with a broken requirement list"))?,
            );
        }
        Ok(ReceivedRun {
            id,
            requirements,
            saved: input.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_comes_back_as_sent() {
        let piece = WheelPiece {
            requirement: "tiny".into(),
            wheel: "tiny-0.1-py3-none-any.whl".into(),
            offset: 1 << 20,
            bytes: b"PK\x03\x04",
        };
        assert_eq!(WheelPiece::decode(&piece.encode()).unwrap(), piece);
        let done = WheelsDone {
            requirement: "tiny".into(),
            wheels: vec![("tiny-0.1-py3-none-any.whl".into(), "ab".repeat(32))],
        };
        assert_eq!(WheelsDone::decode(&done.encode()).unwrap(), done);
        assert_eq!(
            decode_ask(&encode_ask(7, b"batch")).unwrap(),
            (7, &b"batch"[..])
        );
        assert_eq!(decode_answer(&encode_answer(7, None)).unwrap(), (7, None));
        assert_eq!(
            decode_answer(&encode_answer(9, Some("no"))).unwrap(),
            (9, Some("no".to_string()))
        );
        for abort_pending in [false, true] {
            let unregister = Unregister {
                id: "x-1".into(),
                abort_pending,
            };
            assert_eq!(Unregister::decode(&unregister.encode()), unregister);
        }
        let run = ReceivedRun::decode(&ReceivedRun::encode("e-1", &["tiny"], b"plan")).unwrap();
        assert_eq!(
            run,
            ReceivedRun {
                id: "e-1".into(),
                requirements: vec!["tiny".into()],
                saved: b"plan".to_vec(),
            }
        );
    }

    #[test]
    fn broken_messages_are_errors() {
        let piece = WheelPiece {
            requirement: "tiny".into(),
            wheel: "../../evil.whl".into(),
            offset: 0,
            bytes: b"",
        };
        assert_eq!(
            WheelPiece::decode(&piece.encode()).unwrap_err().to_string(),
            "bad wheel name '../../evil.whl'"
        );
        let good = WheelPiece {
            wheel: "tiny-0.1-py3-none-any.whl".into(),
            ..piece
        }
        .encode();
        for len in 0..good.len() {
            assert!(WheelPiece::decode(&good[..len]).is_err());
        }
        assert!(decode_ask(b"short").is_err());
        assert!(decode_answer(b"").is_err());
        // A wheel count far past what the message holds.
        let mut done = Vec::new();
        wire::put_bytes(&mut done, b"tiny");
        done.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(WheelsDone::decode(&done).unwrap_err(), TRUNCATED);
        assert!(ReceivedRun::decode(b"\xff\xff\xff\xff").is_err());
    }
}
