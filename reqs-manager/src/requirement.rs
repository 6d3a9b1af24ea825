//! Requirement strings as RedisGears users write them after `REQUIREMENTS`: PEP 508
//! (`name[extra]>=1,<2 ; marker`) plus pip's `--hash=sha256:<hex>` suffixes for hash-pinned
//! requirements. The string itself stays the identity of the requirement (spec/requirements.md
//! §1); the parsed form is what the resolver works with.

use std::fmt;
use std::str::FromStr;

use pep508_rs::{PackageName, VerbatimUrl, VersionOrUrl};

/// A sha256 digest as 64 lowercase hex characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Hex(String);

impl Sha256Hex {
    /// Accepts 64 hex digits in either case; stores them lowercase.
    pub fn parse(hex: &str) -> Option<Self> {
        (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Sha256Hex(hex.to_ascii_lowercase()))
    }

    /// Hex of the sha256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(bytes);
        Sha256Hex(digest.iter().map(|b| format!("{b:02x}")).collect())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sha256Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a requirement string was refused.
#[derive(Debug, thiserror::Error)]
pub enum RequirementError {
    #[error("invalid requirement '{input}': {message}")]
    Syntax { input: String, message: String },
    #[error(
        "invalid requirement '{input}': hash '{hash}' is not of the form sha256:<64 hex digits>"
    )]
    BadHash { input: String, hash: String },
    #[error("invalid requirement '{input}': unknown option '{option}' (only --hash=sha256:<hex> is accepted)")]
    UnknownOption { input: String, option: String },
    #[error("invalid requirement '{input}': direct URL requirements are not supported, use a package index or a find-links directory")]
    DirectUrl { input: String },
}

/// One parsed requirement string.
#[derive(Clone, Debug)]
pub struct Requirement {
    /// The string exactly as the user wrote it: the requirement's identity.
    pub raw: String,
    /// The PEP 508 part, with the name PEP 503-normalised by pep508_rs.
    pub pep508: pep508_rs::Requirement<VerbatimUrl>,
    /// Hashes from `--hash=sha256:…`; when not empty, only a file with one of them is accepted.
    pub hashes: Vec<Sha256Hex>,
}

impl Requirement {
    pub fn name(&self) -> &PackageName {
        &self.pep508.name
    }

    /// The version specifiers, empty when the requirement names no version.
    pub fn specifiers(&self) -> pep508_rs::pep440_rs::VersionSpecifiers {
        match &self.pep508.version_or_url {
            Some(VersionOrUrl::VersionSpecifier(specifiers)) => specifiers.clone(),
            _ => pep508_rs::pep440_rs::VersionSpecifiers::empty(),
        }
    }
}

/// A PEP 508 requirement, or why not. pep508_rs 0.9 panics (an `expect`) on a package or extra
/// name that ends in `.`, `-` or `_` when something follows it (`foo- >=1`, found by fuzzing):
/// those are refused here first, and any other such panic becomes an error too.
pub fn parse_pep508(text: &str) -> Result<pep508_rs::Requirement<VerbatimUrl>, String> {
    if let Some(name) = badly_ended_name(text) {
        return Err(format!(
            "Name '{name}' must end with an alphanumeric character"
        ));
    }
    std::panic::catch_unwind(|| pep508_rs::Requirement::<VerbatimUrl>::from_str(text))
        .map_err(|_| "the requirement parser failed on it".to_string())?
        .map_err(|err| err.message.to_string())
}

/// The package name, or an extra in the `[...]` after it, ending in `.`, `-` or `_` before
/// another character: what pep508_rs panics on.
fn badly_ended_name(text: &str) -> Option<&str> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
    let text = text.trim_start();
    let end = text.find(|c: char| !is_name(c)).unwrap_or(text.len());
    let (name, rest) = text.split_at(end);
    if !rest.is_empty() && name.ends_with(['.', '-', '_']) {
        return Some(name);
    }
    let extras = rest.trim_start().strip_prefix('[')?;
    let extras = &extras[..extras.find(']').unwrap_or(extras.len())];
    for extra in extras.split(',') {
        let extra = extra.trim_start();
        let end = extra.find(|c: char| !is_name(c)).unwrap_or(extra.len());
        // Inside the brackets even the last extra is followed by more text (`]`).
        let name = &extra[..end];
        if name.ends_with(['.', '-', '_']) {
            return Some(name);
        }
    }
    None
}

impl FromStr for Requirement {
    type Err = RequirementError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let (spec, hashes) = split_options(input)?;
        let pep508 = parse_pep508(spec.trim()).map_err(|message| RequirementError::Syntax {
            input: input.to_string(),
            message,
        })?;
        if matches!(pep508.version_or_url, Some(VersionOrUrl::Url(_))) {
            return Err(RequirementError::DirectUrl {
                input: input.to_string(),
            });
        }
        Ok(Requirement {
            raw: input.to_string(),
            pep508,
            hashes,
        })
    }
}

/// Splits pip's per-requirement options (`--hash=sha256:…`, space separated, after the PEP 508
/// part) from the requirement itself.
fn split_options(input: &str) -> Result<(&str, Vec<Sha256Hex>), RequirementError> {
    let Some(start) = input
        .find(" --")
        .or_else(|| input.starts_with("--").then_some(0))
    else {
        return Ok((input, Vec::new()));
    };
    let mut hashes = Vec::new();
    for option in input[start..].split_whitespace() {
        let Some(value) = option
            .strip_prefix("--hash=")
            .or_else(|| option.strip_prefix("--hash:"))
        else {
            return Err(RequirementError::UnknownOption {
                input: input.to_string(),
                option: option.to_string(),
            });
        };
        let hash = value
            .strip_prefix("sha256:")
            .and_then(Sha256Hex::parse)
            .ok_or_else(|| RequirementError::BadHash {
                input: input.to_string(),
                hash: value.to_string(),
            })?;
        hashes.push(hash);
    }
    Ok((&input[..start], hashes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_extras_specifiers_and_markers() {
        let req: Requirement = "Pillow[extra_one]>=2.0,<3 ; python_version >= '3.8'"
            .parse()
            .unwrap();
        assert_eq!(req.name().as_ref(), "pillow");
        assert_eq!(req.pep508.extras.len(), 1);
        assert_eq!(req.specifiers().to_string(), ">=2.0, <3");
        assert!(req.hashes.is_empty());
        assert_eq!(
            req.raw,
            "Pillow[extra_one]>=2.0,<3 ; python_version >= '3.8'"
        );
    }

    /// Found by fuzzing (fuzz/seeds/{requirement,metadata}/regression-*): pep508_rs panicked on these.
    #[test]
    fn names_ending_in_punctuation_are_refused_not_a_panic() {
        for text in [
            "foo- >=1",
            "6.\0.5rz",
            "foo_ ; python_version > '3'",
            "foo[bar-]",
            "foo[ok, bad.]>=1",
            "foo [bar_ , baz]",
        ] {
            let err = text.parse::<Requirement>().unwrap_err().to_string();
            assert!(
                err.contains("must end with an alphanumeric character"),
                "{text:?}: {err}"
            );
        }
        // Still accepted: what PEP 508 allows.
        for text in [
            "foo-bar >=1",
            "foo[bar-baz]",
            "a.b_c-d[e.f] ; extra == 'x'",
            "foo-",
        ] {
            let parsed = text.parse::<Requirement>();
            assert!(parsed.is_ok() || text == "foo-", "{text:?}: {parsed:?}");
        }
        // The parser also slices inside a multi-byte character on some inputs: caught, an error.
        let text = std::str::from_utf8(include_bytes!(
            "../../fuzz/seeds/requirement/regression-non-char-boundary"
        ))
        .unwrap();
        assert!(text.parse::<Requirement>().is_err());
        let meta = include_bytes!("../../fuzz/seeds/metadata/regression-non-char-boundary");
        assert!(crate::metadata::CoreMetadata::parse(meta, "METADATA").is_err());
        let meta = "Metadata-Version: 2.1\nName: app\nVersion: 1.0\nRequires-Dist: extra- ; x\n";
        let err = crate::metadata::CoreMetadata::parse(meta.as_bytes(), "METADATA")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("must end with an alphanumeric character"),
            "{err}"
        );
    }

    #[test]
    fn names_compare_normalised() {
        let a: Requirement = "Foo.Bar_baz".parse().unwrap();
        let b: Requirement = "foo-bar-baz==1".parse().unwrap();
        assert_eq!(a.name(), b.name());
    }

    #[test]
    fn reads_hash_suffixes() {
        let hex = "A".repeat(64);
        let req: Requirement = format!(
            "six==1.16.0 --hash=sha256:{hex} --hash=sha256:{}",
            "b".repeat(64)
        )
        .parse()
        .unwrap();
        assert_eq!(req.hashes.len(), 2);
        assert_eq!(req.hashes[0].as_str(), "a".repeat(64));
        assert_eq!(req.specifiers().to_string(), "==1.16.0");
    }

    #[test]
    fn refuses_malformed_strings() {
        for bad in [
            "",
            "==1.0",
            "foo>=",
            "foo[bar",
            "foo ; python_version >>> '3'",
            "foo===",
            "foo --hash=md5:abc",
            "foo --hash=sha256:abc",
            "foo --index-url=http://x",
            "foo @ https://example.com/foo-1.0-py3-none-any.whl",
        ] {
            let err = bad.parse::<Requirement>().unwrap_err().to_string();
            assert!(err.starts_with("invalid requirement"), "{bad}: {err}");
        }
    }

    #[test]
    fn sha256_of_bytes() {
        assert_eq!(
            Sha256Hex::of(b"abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
