//! Wheel file names (`{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl`, PEP 427), with
//! their compressed tag sets (`py2.py3-none-any`) expanded.

use std::str::FromStr;

use pep508_rs::pep440_rs::Version;
use pep508_rs::PackageName;

/// Why a file name is not a wheel name.
#[derive(Debug, thiserror::Error)]
#[error("'{filename}' is not a valid wheel file name: {reason}")]
pub struct WheelNameError {
    pub filename: String,
    pub reason: &'static str,
}

/// The parts of a wheel file name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WheelName {
    pub name: PackageName,
    pub version: Version,
    pub python_tags: Vec<String>,
    pub abi_tags: Vec<String>,
    pub platform_tags: Vec<String>,
}

impl WheelName {
    /// Every (python, abi, platform) triple the wheel declares.
    pub fn tags(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.python_tags.iter().flat_map(move |python| {
            self.abi_tags.iter().flat_map(move |abi| {
                self.platform_tags
                    .iter()
                    .map(move |platform| (python.as_str(), abi.as_str(), platform.as_str()))
            })
        })
    }
}

impl FromStr for WheelName {
    type Err = WheelNameError;

    fn from_str(filename: &str) -> Result<Self, Self::Err> {
        let error = |reason| WheelNameError {
            filename: filename.to_string(),
            reason,
        };
        let stem = filename
            .strip_suffix(".whl")
            .ok_or_else(|| error("it does not end in .whl"))?;
        let parts: Vec<&str> = stem.split('-').collect();
        let (name, version, tags) = match parts.as_slice() {
            [name, version, python, abi, platform] => (name, version, [python, abi, platform]),
            [name, version, build, python, abi, platform] => {
                if !build.starts_with(|c: char| c.is_ascii_digit()) {
                    return Err(error("its build tag does not start with a digit"));
                }
                (name, version, [python, abi, platform])
            }
            _ => return Err(error("it does not have 5 or 6 dash-separated parts")),
        };
        if name.is_empty() {
            return Err(error("its name is empty"));
        }
        let name = PackageName::from_str(name).map_err(|_| error("its name is not valid"))?;
        let version = Version::from_str(version).map_err(|_| error("its version is not valid"))?;
        let split = |tag: &str| -> Result<Vec<String>, WheelNameError> {
            let tags: Vec<String> = tag.split('.').map(str::to_string).collect();
            if tags.iter().any(String::is_empty) {
                return Err(error("it has an empty tag"));
            }
            Ok(tags)
        };
        Ok(WheelName {
            name,
            version,
            python_tags: split(tags[0])?,
            abi_tags: split(tags[1])?,
            platform_tags: split(tags[2])?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_compressed_tag_sets_and_build_tags() {
        let wheel: WheelName =
            "Foo_Bar-1.2.post1-3-py2.py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
                .parse()
                .unwrap();
        assert_eq!(wheel.name.as_ref(), "foo-bar");
        assert_eq!(wheel.version.to_string(), "1.2.post1");
        assert_eq!(wheel.tags().count(), 4);
        assert!(wheel
            .tags()
            .any(|t| t == ("py3", "none", "manylinux2014_x86_64")));
    }

    #[test]
    fn refuses_non_wheel_names() {
        for bad in [
            "foo-1.0.tar.gz",
            "foo-1.0-py3-none.whl",
            "foo-1.0-x-py3-none-any.whl",
            "foo-bad version-py3-none-any.whl",
            "foo-1.0-py3..x-none-any.whl",
            "-1.0-py3-none-any.whl",
        ] {
            assert!(
                bad.parse::<WheelName>().is_err(),
                "{bad}: {:?}",
                bad.parse::<WheelName>()
            );
        }
    }
}
