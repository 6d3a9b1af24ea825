//! PEP 440 specifiers as pubgrub version ranges, so the resolver can intersect and complement
//! them. Pre-release exclusion is not a range property; the resolver applies it when it picks a
//! version. Local versions (`1.0+cpu`) are compared as plain versions.

use pep508_rs::pep440_rs::{Operator, Version, VersionSpecifier, VersionSpecifiers};
use pubgrub::Ranges;

/// The versions every specifier of the set allows.
pub fn specifiers_to_ranges(specifiers: &VersionSpecifiers) -> Ranges<Version> {
    specifiers.iter().fold(Ranges::full(), |acc, spec| {
        acc.intersection(&specifier_to_ranges(spec))
    })
}

/// The versions one specifier allows.
pub fn specifier_to_ranges(spec: &VersionSpecifier) -> Ranges<Version> {
    let version = spec.version().clone();
    match spec.operator() {
        Operator::Equal | Operator::ExactEqual => Ranges::singleton(version),
        Operator::NotEqual => Ranges::singleton(version).complement(),
        Operator::EqualStar => prefix_range(&version),
        Operator::NotEqualStar => prefix_range(&version).complement(),
        Operator::TildeEqual => {
            let release = version.release();
            let prefix = &release[..release.len().saturating_sub(1).max(1)];
            let prefix_version = Version::new(prefix.iter().copied()).with_epoch(version.epoch());
            Ranges::higher_than(version).intersection(&prefix_range(&prefix_version))
        }
        Operator::LessThan => {
            // `<V` excludes V's own pre-releases unless V is one.
            if is_plain_release(&version) {
                Ranges::strictly_lower_than(version.with_min(Some(0)))
            } else {
                Ranges::strictly_lower_than(version)
            }
        }
        Operator::LessThanEqual => Ranges::lower_than(version),
        Operator::GreaterThan => {
            // `>V` excludes V's post-releases unless V is one.
            if version.is_post() || version.is_dev() {
                Ranges::strictly_higher_than(version)
            } else {
                Ranges::strictly_higher_than(version.with_max(Some(0)))
            }
        }
        Operator::GreaterThanEqual => Ranges::higher_than(version),
    }
}

fn is_plain_release(version: &Version) -> bool {
    !version.is_pre() && !version.is_dev() && !version.is_post() && !version.is_local()
}

/// Every version whose release starts with `prefix`'s release (`==1.2.*`), pre-releases and
/// post-releases included.
fn prefix_range(prefix: &Version) -> Ranges<Version> {
    let release = prefix.release();
    let epoch = prefix.epoch();
    let low = Version::new(release.iter().copied())
        .with_epoch(epoch)
        .with_min(Some(0));
    let mut bumped = release.to_vec();
    if let Some(last) = bumped.last_mut() {
        *last += 1;
    }
    let high = Version::new(bumped).with_epoch(epoch).with_min(Some(0));
    Ranges::between(low, high)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    /// The ranges agree with pep440_rs' own `contains` on a grid of versions and specifiers.
    #[test]
    fn agrees_with_pep440_contains() {
        let versions = [
            "0.9",
            "1.0.dev0",
            "1.0a1",
            "1.0a2.dev1",
            "1.0b1",
            "1.0rc1",
            "1.0",
            "1.0.post1",
            "1.0.1",
            "1.1.dev0",
            "1.1a1",
            "1.1",
            "1.1.post2",
            "1.2",
            "1.9.9",
            "2.0.dev0",
            "2.0a1",
            "2.0",
            "2.0.post1",
            "2.1",
            "3",
            "1!0.5",
            "1!1.0",
        ];
        let specifiers = [
            "==1.0",
            "!=1.0",
            "==1.0.*",
            "!=1.0.*",
            "==1.*",
            "~=1.0",
            "~=1.0.0",
            "~=1.1a1",
            "<2.0",
            "<2.0a1",
            "<=2.0",
            ">1.0",
            ">1.0.post1",
            ">=1.0",
            ">=1.0a1",
            "===1.1",
            ">=1.0,<2.0",
            ">=1.0,!=1.1,<2",
            "<1!0",
            ">=1!0",
        ];
        for spec in specifiers {
            let spec = VersionSpecifiers::from_str(spec).unwrap();
            let ranges = specifiers_to_ranges(&spec);
            for version in versions {
                let version = Version::from_str(version).unwrap();
                // `<V` with V a pre-release: pep440_rs refuses every pre-release of V's
                // release, packaging (pip) only those above V; the ranges follow pip.
                let pip_less_than_pre = spec.len() == 1
                    && *spec[0].operator() == Operator::LessThan
                    && spec[0].version().any_prerelease();
                let expected = if pip_less_than_pre {
                    version < *spec[0].version()
                } else {
                    spec.contains(&version)
                };
                assert_eq!(ranges.contains(&version), expected, "{spec} on {version}");
            }
        }
    }
}
