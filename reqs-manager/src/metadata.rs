//! Core metadata (`METADATA` of a wheel, or the PEP 658 `.metadata` file): the fields the
//! resolver needs, read from the RFC 822 style header block.

use std::io::Read;
use std::str::FromStr;

use pep508_rs::pep440_rs::{Version, VersionSpecifiers};
use pep508_rs::{ExtraName, PackageName, VerbatimUrl};

/// Why metadata could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("metadata of {source_name} is not valid: {reason}")]
    Invalid { source_name: String, reason: String },
    #[error("{source_name} is not a readable wheel: {reason}")]
    Archive { source_name: String, reason: String },
}

/// What a distribution says about itself.
#[derive(Clone, Debug)]
pub struct CoreMetadata {
    pub name: PackageName,
    pub version: Version,
    pub requires_dist: Vec<pep508_rs::Requirement<VerbatimUrl>>,
    pub requires_python: Option<VersionSpecifiers>,
    pub provides_extras: Vec<ExtraName>,
}

impl CoreMetadata {
    /// Parses the header block; `source_name` names the file in errors.
    pub fn parse(bytes: &[u8], source_name: &str) -> Result<Self, MetadataError> {
        let invalid = |reason: String| MetadataError::Invalid {
            source_name: source_name.to_string(),
            reason,
        };
        let text = std::str::from_utf8(bytes).map_err(|_| invalid("it is not UTF-8".into()))?;
        let headers = parse_headers(text);
        let single = |field: &str| -> Result<&str, MetadataError> {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(field))
                .map(|(_, v)| v.as_str())
                .ok_or_else(|| invalid(format!("it has no {field} field")))
        };
        let name = PackageName::from_str(single("Name")?)
            .map_err(|err| invalid(format!("bad Name: {err}")))?;
        let version = Version::from_str(single("Version")?)
            .map_err(|err| invalid(format!("bad Version: {err}")))?;
        let mut requires_dist = Vec::new();
        let mut provides_extras = Vec::new();
        let mut requires_python = None;
        for (key, value) in &headers {
            if key.eq_ignore_ascii_case("Requires-Dist") {
                let req = crate::requirement::parse_pep508(value)
                    .map_err(|err| invalid(format!("bad Requires-Dist '{value}': {err}")))?;
                requires_dist.push(req);
            } else if key.eq_ignore_ascii_case("Provides-Extra") {
                let extra = ExtraName::from_str(value)
                    .map_err(|err| invalid(format!("bad Provides-Extra '{value}': {err}")))?;
                provides_extras.push(extra);
            } else if key.eq_ignore_ascii_case("Requires-Python") {
                let spec = VersionSpecifiers::from_str(value)
                    .map_err(|err| invalid(format!("bad Requires-Python '{value}': {err}")))?;
                requires_python = Some(spec);
            }
        }
        Ok(CoreMetadata {
            name,
            version,
            requires_dist,
            requires_python,
            provides_extras,
        })
    }

    /// Reads `<name>-<version>.dist-info/METADATA` out of a wheel archive.
    pub fn from_wheel(bytes: &[u8], wheel_filename: &str) -> Result<Self, MetadataError> {
        Self::from_wheel_reader(std::io::Cursor::new(bytes), wheel_filename)
    }

    /// As [`CoreMetadata::from_wheel`], from a file or any seekable reader.
    pub fn from_wheel_reader(
        reader: impl std::io::Read + std::io::Seek,
        wheel_filename: &str,
    ) -> Result<Self, MetadataError> {
        let archive_error = |reason: String| MetadataError::Archive {
            source_name: wheel_filename.to_string(),
            reason,
        };
        let mut archive =
            zip::ZipArchive::new(reader).map_err(|err| archive_error(err.to_string()))?;
        let path = dist_info_metadata_path(&archive)
            .ok_or_else(|| archive_error("it has no *.dist-info/METADATA".into()))?;
        let mut file = archive
            .by_name(&path)
            .map_err(|err| archive_error(err.to_string()))?;
        let mut metadata = Vec::new();
        file.by_ref()
            .take(16 * 1024 * 1024)
            .read_to_end(&mut metadata)
            .map_err(|err| archive_error(err.to_string()))?;
        Self::parse(&metadata, wheel_filename)
    }
}

/// The one top-level `*.dist-info/METADATA` entry of a wheel.
fn dist_info_metadata_path<R: std::io::Read + std::io::Seek>(
    archive: &zip::ZipArchive<R>,
) -> Option<String> {
    archive
        .file_names()
        .filter_map(Result::ok)
        .find(|name| {
            let mut parts = name.split('/');
            matches!(
                (parts.next(), parts.next(), parts.next()),
                (Some(dir), Some("METADATA"), None) if dir.ends_with(".dist-info")
            )
        })
        .map(|name| name.into_owned())
}

/// RFC 822 headers up to the first blank line; continuation lines (leading whitespace) are
/// folded into the previous value.
fn parse_headers(text: &str) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((key, value)) = line.split_once(':') {
            headers.push((key.trim().to_string(), value.trim().to_string()));
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    const METADATA: &str = "Metadata-Version: 2.1\nName: Foo_Bar\nVersion: 1.0.post2\nRequires-Python: >=3.8\nRequires-Dist: six (>=1.0)\nRequires-Dist: requests[socks] >=2 ; extra == 'net'\nProvides-Extra: net\nDescription: long\n  continued\n\nBody: not a header\n";

    #[test]
    fn reads_the_fields_the_resolver_needs() {
        let meta = CoreMetadata::parse(METADATA.as_bytes(), "x").unwrap();
        assert_eq!(meta.name.as_ref(), "foo-bar");
        assert_eq!(meta.version.to_string(), "1.0.post2");
        assert_eq!(meta.requires_dist.len(), 2);
        assert_eq!(meta.requires_python.unwrap().to_string(), ">=3.8");
        assert_eq!(meta.provides_extras.len(), 1);
    }

    #[test]
    fn refuses_metadata_that_does_not_parse() {
        for bad in [
            "Name: foo\n",
            "Version: 1.0\n",
            "Name: foo\nVersion: one\n",
            "Name: foo\nVersion: 1\nRequires-Dist: bar >>= 1\n",
            "Name: foo\nVersion: 1\nRequires-Python: >=three\n",
            "\u{0}garbage",
        ] {
            let err = CoreMetadata::parse(bad.as_bytes(), "foo.metadata").unwrap_err();
            assert!(err.to_string().contains("foo.metadata"), "{err}");
        }
        assert!(CoreMetadata::parse(&[0xff, 0xfe], "x").is_err());
    }

    #[test]
    fn refuses_archives_that_are_not_wheels() {
        let err = CoreMetadata::from_wheel(b"PK not a zip", "foo-1-py3-none-any.whl").unwrap_err();
        assert!(err.to_string().contains("not a readable wheel"), "{err}");
    }
}
