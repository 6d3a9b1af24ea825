//! The module's RDB aux sections, read and written through [`AuxRead`] / [`AuxWrite`]: Redis'
//! RDB calls in the module, a plain byte layout ([`SliceAux`], [`VecAux`]) in tests and the
//! fuzzer. Redis decodes its own encoding; what is ours, and checked here, is what the values
//! say: counts, names, owners, wheel file names.

use std::sync::Arc;

use crate::batch::SavedSession;
use crate::{check_wheel_name, FormatError};

/// Values as Redis' `RedisModule_Load*` calls give them back.
pub trait AuxRead {
    fn unsigned(&mut self) -> Result<u64, FormatError>;
    fn bytes(&mut self) -> Result<Vec<u8>, FormatError>;

    fn text(&mut self) -> Result<String, FormatError> {
        String::from_utf8(self.bytes()?).map_err(|_| FormatError::NotUtf8)
    }
}

/// Values as Redis' `RedisModule_Save*` calls take them.
pub trait AuxWrite {
    fn unsigned(&mut self, value: u64);
    fn bytes(&mut self, bytes: &[u8]);
}

/// A registration in the aux section: the session it belongs to (an index into the section's
/// sessions), its id and saved form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedRegistration {
    pub owner: usize,
    pub id: String,
    pub form: Arc<[u8]>,
}

/// The registrations section (after the keyspace): the live sessions that own registrations,
/// then every registration in registration order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegistrationsSection {
    pub sessions: Vec<SavedSession>,
    pub registrations: Vec<SavedRegistration>,
}

impl RegistrationsSection {
    pub fn write(&self, out: &mut impl AuxWrite) {
        out.unsigned(self.sessions.len() as u64);
        for (index, session) in self.sessions.iter().enumerate() {
            out.unsigned(index as u64);
            out.bytes(session.id.as_bytes());
            out.unsigned(session.description.is_some() as u64);
            out.bytes(session.description.as_deref().unwrap_or("").as_bytes());
            out.unsigned(session.requirements.len() as u64);
            for name in &session.requirements {
                out.bytes(name.as_bytes());
            }
        }
        out.unsigned(self.registrations.len() as u64);
        for registration in &self.registrations {
            out.unsigned(registration.owner as u64);
            out.bytes(registration.id.as_bytes());
            out.bytes(&registration.form);
        }
    }

    /// Refuses a registration whose owner is not one of the section's sessions.
    pub fn read(input: &mut impl AuxRead) -> Result<RegistrationsSection, FormatError> {
        let mut sessions = Vec::new();
        for _ in 0..input.unsigned()? {
            let _index = input.unsigned()?;
            let id = input.text()?;
            let has_description = input.unsigned()? == 1;
            let description = input.text()?;
            let mut requirements = Vec::new();
            for _ in 0..input.unsigned()? {
                requirements.push(input.text()?);
            }
            sessions.push(SavedSession {
                id,
                description: has_description.then_some(description),
                requirements,
            });
        }
        let mut registrations = Vec::new();
        for _ in 0..input.unsigned()? {
            let owner = input.unsigned()?;
            let id = input.text()?;
            let form: Arc<[u8]> = Arc::from(input.bytes()?);
            let owner = usize::try_from(owner)
                .ok()
                .filter(|o| *o < sessions.len())
                .ok_or_else(|| FormatError::NoSession(id.clone()))?;
            registrations.push(SavedRegistration { owner, id, form });
        }
        Ok(RegistrationsSection {
            sessions,
            registrations,
        })
    }
}

/// A requirement in the requirements section (before the keyspace): its name in the table and
/// its wheels, file name and bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedRequirement {
    pub name: String,
    pub wheels: Vec<(String, Vec<u8>)>,
}

/// Writes the requirements section's count; each requirement follows with
/// [`write_requirement`].
pub fn write_requirements_count(out: &mut impl AuxWrite, count: usize) {
    out.unsigned(count as u64);
}

/// Writes one requirement, asking `wheel_bytes` for each wheel in turn, so memory holds one
/// wheel at a time however many there are.
pub fn write_requirement(
    out: &mut impl AuxWrite,
    name: &str,
    wheels: &[String],
    mut wheel_bytes: impl FnMut(&str) -> Vec<u8>,
) {
    out.bytes(name.as_bytes());
    out.unsigned(wheels.len() as u64);
    for wheel in wheels {
        out.bytes(wheel.as_bytes());
        out.bytes(&wheel_bytes(wheel));
    }
}

/// Reads the requirements section; a wheel file name that could escape its directory is
/// refused here, before anything is written.
pub fn read_requirements(input: &mut impl AuxRead) -> Result<Vec<SavedRequirement>, FormatError> {
    let mut loaded = Vec::new();
    for _ in 0..input.unsigned()? {
        let name = input.text()?;
        let mut wheels = Vec::new();
        for _ in 0..input.unsigned()? {
            let wheel = input.text()?;
            check_wheel_name(&wheel)?;
            wheels.push((wheel, input.bytes()?));
        }
        loaded.push(SavedRequirement { name, wheels });
    }
    Ok(loaded)
}

/// Reads values from a plain layout: an unsigned as 8 bytes little-endian, bytes as a 4-byte
/// little-endian length and the bytes. For tests and the fuzzer.
pub struct SliceAux<'a>(pub &'a [u8]);

impl AuxRead for SliceAux<'_> {
    fn unsigned(&mut self) -> Result<u64, FormatError> {
        let (value, rest) = self
            .0
            .split_first_chunk::<8>()
            .ok_or(FormatError::Truncated("section"))?;
        self.0 = rest;
        Ok(u64::from_le_bytes(*value))
    }

    fn bytes(&mut self) -> Result<Vec<u8>, FormatError> {
        let (len, rest) = self
            .0
            .split_first_chunk::<4>()
            .ok_or(FormatError::Truncated("section"))?;
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len {
            return Err(FormatError::Truncated("section"));
        }
        let (bytes, rest) = rest.split_at(len);
        self.0 = rest;
        Ok(bytes.to_vec())
    }
}

/// Writes [`SliceAux`]'s layout.
#[derive(Default)]
pub struct VecAux(pub Vec<u8>);

impl AuxWrite for VecAux {
    fn unsigned(&mut self, value: u64) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }

    fn bytes(&mut self, bytes: &[u8]) {
        self.0
            .extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        self.0.extend_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section() -> RegistrationsSection {
        RegistrationsSection {
            sessions: vec![
                SavedSession {
                    id: "a".into(),
                    description: None,
                    requirements: vec![],
                },
                SavedSession {
                    id: "b".into(),
                    description: Some("two".into()),
                    requirements: vec!["tiny".into()],
                },
            ],
            registrations: vec![
                SavedRegistration {
                    owner: 1,
                    id: "r1".into(),
                    form: Arc::from(&b"form1"[..]),
                },
                SavedRegistration {
                    owner: 0,
                    id: "r2".into(),
                    form: Arc::from(&b""[..]),
                },
            ],
        }
    }

    #[test]
    fn the_registrations_section_comes_back_as_written() {
        let mut out = VecAux::default();
        section().write(&mut out);
        let read = RegistrationsSection::read(&mut SliceAux(&out.0)).unwrap();
        assert_eq!(read, section());
        for len in 0..out.0.len() {
            assert!(RegistrationsSection::read(&mut SliceAux(&out.0[..len])).is_err());
        }
    }

    #[test]
    fn a_registration_without_its_session_is_refused() {
        let mut bad = section();
        bad.registrations[0].owner = 2;
        let mut out = VecAux::default();
        bad.write(&mut out);
        assert_eq!(
            RegistrationsSection::read(&mut SliceAux(&out.0))
                .unwrap_err()
                .to_string(),
            "registration r1 has no session"
        );
    }

    #[test]
    fn requirements_come_back_and_hostile_wheel_names_are_refused() {
        let wheels = vec!["tiny-0.1-py3-none-any.whl".to_string()];
        let mut out = VecAux::default();
        write_requirements_count(&mut out, 1);
        write_requirement(&mut out, "tiny", &wheels, |w| w.as_bytes().to_vec());
        assert_eq!(
            read_requirements(&mut SliceAux(&out.0)).unwrap(),
            vec![SavedRequirement {
                name: "tiny".into(),
                wheels: vec![(wheels[0].clone(), wheels[0].as_bytes().to_vec())],
            }]
        );
        let mut out = VecAux::default();
        write_requirements_count(&mut out, 1);
        write_requirement(&mut out, "tiny", &["../x.whl".to_string()], |_| vec![]);
        assert_eq!(
            read_requirements(&mut SliceAux(&out.0)).unwrap_err(),
            FormatError::BadWheelName("../x.whl".into())
        );
    }
}
