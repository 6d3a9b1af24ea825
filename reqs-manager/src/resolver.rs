//! Resolution with pubgrub: the requirements and everything they need, one version per project,
//! each with the wheel best suited to the target interpreter.
//!
//! Extras are virtual packages (`foo[bar]` depends on `foo` at the same version plus the
//! requirements of that extra), as uv does, so a conflict involving an extra is explained in the
//! same terms as any other.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::rc::Rc;

use pep508_rs::pep440_rs::{Version, VersionSpecifiers};
use pep508_rs::{ExtraName, MarkerEnvironment, PackageName, VerbatimUrl, VersionOrUrl};
use pubgrub::{
    DefaultStringReporter, Dependencies, DependencyProvider, PackageResolutionStatistics,
    PubGrubError, Ranges, Reporter,
};

use crate::index::{DistFile, IndexError, PackageIndex};
use crate::metadata::CoreMetadata;
use crate::ranges::specifiers_to_ranges;
use crate::requirement::{Requirement, Sha256Hex};
use crate::target::{TagPriorities, TargetPython};
use crate::wheel_name::WheelName;

/// Why the requirements could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("{0}")]
    Index(#[from] IndexError),
    #[error("the requirements cannot be satisfied: {report}{versions}")]
    NoSolution { report: String, versions: String },
    #[error("{file} says it is {found}, but its file name says {expected}")]
    MetadataMismatch {
        file: String,
        found: String,
        expected: String,
    },
    #[error("requirement '{requirement}': no file of {name} {version} has a sha256 among the pinned hashes (it has {actual})")]
    HashNotPinned {
        requirement: String,
        name: String,
        version: String,
        actual: String,
    },
}

/// A package of the resolution graph.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Pkg {
    /// The requirement strings together.
    Root,
    Dist(PackageName),
    Extra(PackageName, ExtraName),
}

impl fmt::Display for Pkg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pkg::Root => f.write_str("the requirement list"),
            Pkg::Dist(name) => write!(f, "{name}"),
            Pkg::Extra(name, extra) => write!(f, "{name}[{extra}]"),
        }
    }
}

/// Dependencies of one package, each package once with its ranges intersected.
#[derive(Default)]
struct Constraints(Vec<(Pkg, Ranges<Version>)>);

impl Constraints {
    fn add(&mut self, pkg: Pkg, range: Ranges<Version>) {
        match self.0.iter_mut().find(|(p, _)| *p == pkg) {
            Some((_, existing)) => *existing = existing.intersection(&range),
            None => self.0.push((pkg, range)),
        }
    }
}

/// One distribution of the result.
#[derive(Clone, Debug)]
pub struct ResolvedDist {
    pub name: PackageName,
    pub version: Version,
    /// The chosen wheel; `sha256` is set when the index gave it or the wheel was read.
    pub file: DistFile,
    /// Names of the distributions it depends on (in this environment).
    pub requires: Vec<PackageName>,
}

/// The outcome: every distribution to install, sorted by name, and what was worth telling.
#[derive(Clone, Debug, Default)]
pub struct Resolution {
    pub dists: Vec<ResolvedDist>,
    pub warnings: Vec<String>,
}

/// Resolves requirements against an index for one interpreter.
pub struct Resolver<'a> {
    index: &'a PackageIndex,
    python_version: Version,
    tags: TagPriorities,
    markers: MarkerEnvironment,
}

impl<'a> Resolver<'a> {
    pub fn new(index: &'a PackageIndex, target: &TargetPython) -> Self {
        let (major, minor, micro) = target.version;
        Resolver {
            index,
            python_version: Version::new([major as u64, minor as u64, micro as u64]),
            tags: target.tag_priorities(),
            markers: target.marker_environment(),
        }
    }

    /// Resolves `requirements` (their markers are evaluated for the target; those that do not
    /// apply are left out).
    pub fn resolve(&self, requirements: &[Requirement]) -> Result<Resolution, ResolveError> {
        let provider = Provider::new(self, requirements);
        let root_version = Version::new([0u64]);
        let selected = match pubgrub::resolve(&provider, Pkg::Root, root_version) {
            Ok(selected) => selected,
            Err(PubGrubError::NoSolution(mut tree)) => {
                tree.collapse_no_versions();
                // The root is the requirement list itself; its placeholder version says nothing.
                let report = DefaultStringReporter::report(&tree)
                    .replace("the requirement list 0", "the requirement list");
                let mut names: Vec<&PackageName> = tree
                    .packages()
                    .into_iter()
                    .filter_map(|pkg| match pkg {
                        Pkg::Dist(name) | Pkg::Extra(name, _) => Some(name),
                        Pkg::Root => None,
                    })
                    .collect::<HashSet<_>>()
                    .into_iter()
                    .collect();
                names.sort();
                let versions: String = names
                    .iter()
                    .map(|name| provider.describe_versions(name))
                    .collect();
                return Err(ResolveError::NoSolution { report, versions });
            }
            Err(PubGrubError::ErrorChoosingVersion { source, .. })
            | Err(PubGrubError::ErrorRetrievingDependencies { source, .. })
            | Err(PubGrubError::ErrorInShouldCancel(source)) => return Err(source),
        };
        provider.finish(
            selected
                .iter()
                .map(|(pkg, version)| (pkg.clone(), version.clone())),
        )
    }
}

/// A version the target can install, with its best wheel.
#[derive(Clone, Debug)]
struct Candidate {
    file: DistFile,
    rank: usize,
    /// A source distribution: a wheel is built from it when its metadata is needed.
    needs_build: bool,
}

/// What a project offers the target.
#[derive(Debug, Default)]
struct Candidates {
    usable: BTreeMap<Version, Candidate>,
    /// Versions left out, with why: the error messages list them.
    unusable: BTreeMap<Version, String>,
}

struct Provider<'r, 'a> {
    resolver: &'r Resolver<'a>,
    roots: Vec<Requirement>,
    pins: HashMap<PackageName, Vec<(String, Vec<Sha256Hex>)>>,
    candidates: RefCell<HashMap<PackageName, Rc<Candidates>>>,
    metadata: RefCell<HashMap<(PackageName, Version), Rc<CoreMetadata>>>,
    hashes: RefCell<HashMap<(PackageName, Version), Sha256Hex>>,
    allow_pre: RefCell<HashSet<PackageName>>,
    /// Wheels built from source distributions, which replace them in the result.
    built: RefCell<HashMap<(PackageName, Version), DistFile>>,
    warnings: RefCell<Vec<String>>,
}

impl<'r, 'a> Provider<'r, 'a> {
    fn new(resolver: &'r Resolver<'a>, requirements: &[Requirement]) -> Self {
        let mut pins: HashMap<PackageName, Vec<(String, Vec<Sha256Hex>)>> = HashMap::new();
        for req in requirements.iter().filter(|r| !r.hashes.is_empty()) {
            pins.entry(req.name().clone())
                .or_default()
                .push((req.raw.clone(), req.hashes.clone()));
        }
        Provider {
            resolver,
            roots: requirements.to_vec(),
            pins,
            candidates: RefCell::default(),
            metadata: RefCell::default(),
            hashes: RefCell::default(),
            allow_pre: RefCell::default(),
            built: RefCell::default(),
            warnings: RefCell::default(),
        }
    }

    fn candidates(&self, name: &PackageName) -> Result<Rc<Candidates>, IndexError> {
        if let Some(found) = self.candidates.borrow().get(name) {
            return Ok(found.clone());
        }
        let (files, index_error) = self.resolver.index.files(name)?;
        if let Some(err) = index_error {
            self.warnings.borrow_mut().push(format!(
                "{name}: using the find-links directory only, the index failed: {err}"
            ));
        }
        let candidates = Rc::new(self.select_wheels(name, files));
        self.candidates
            .borrow_mut()
            .insert(name.clone(), candidates.clone());
        Ok(candidates)
    }

    /// Keeps, for each version, the wheel whose tag ranks best for the target; files that
    /// cannot be used are remembered with the reason.
    fn select_wheels(&self, name: &PackageName, files: Vec<DistFile>) -> Candidates {
        let mut candidates = Candidates::default();
        let mut reasons: BTreeMap<Version, Vec<String>> = BTreeMap::new();
        let pinned: Option<Vec<&Sha256Hex>> = self
            .pins
            .get(name)
            .map(|pins| pins.iter().flat_map(|(_, hashes)| hashes).collect());
        let mut sdists: BTreeMap<Version, DistFile> = BTreeMap::new();
        for file in files {
            let Ok(wheel) = file.filename.parse::<WheelName>() else {
                if let Some(version) = sdist_version(&file.filename, name) {
                    if !file.yanked {
                        sdists.entry(version).or_insert(file);
                    }
                }
                continue;
            };
            if &wheel.name != name {
                continue;
            }
            let version = wheel.version.clone();
            let reason = if file.yanked {
                Some("yanked".to_string())
            } else if let Some(rp) = file
                .requires_python
                .as_ref()
                .filter(|rp| !rp.contains(&self.resolver.python_version))
            {
                Some(format!("requires Python {rp}"))
            } else if let (Some(pinned), Some(sha)) = (&pinned, &file.sha256) {
                (!pinned.contains(&sha)).then(|| format!("sha256 {sha} is not pinned"))
            } else {
                None
            };
            let rank = self.resolver.tags.best_rank(wheel.tags());
            match (reason, rank) {
                (Some(reason), _) => reasons.entry(version).or_default().push(reason),
                (None, None) => reasons
                    .entry(version)
                    .or_default()
                    .push(format!("{} is not for this interpreter", file.filename)),
                (None, Some(rank)) => {
                    let better = candidates
                        .usable
                        .get(&version)
                        .is_none_or(|c| rank < c.rank);
                    if better {
                        candidates.usable.insert(
                            version,
                            Candidate {
                                file,
                                rank,
                                needs_build: false,
                            },
                        );
                    }
                }
            }
        }
        // A version with no usable wheel falls back to its source distribution.
        for (version, file) in sdists {
            if candidates.usable.contains_key(&version) {
                continue;
            }
            let requires_python_ok = file
                .requires_python
                .as_ref()
                .is_none_or(|rp| rp.contains(&self.resolver.python_version));
            if self.resolver.index.can_build() && requires_python_ok {
                let candidate = Candidate {
                    file,
                    rank: usize::MAX,
                    needs_build: true,
                };
                candidates.usable.insert(version, candidate);
            } else if requires_python_ok {
                reasons.entry(version).or_default().push(format!(
                    "only the source distribution {} (building is off)",
                    file.filename
                ));
            }
        }
        for (version, why) in reasons {
            if !candidates.usable.contains_key(&version) {
                candidates.unusable.insert(version, why.join(", "));
            }
        }
        candidates
    }

    fn note_prereleases(&self, name: &PackageName, specifiers: &VersionSpecifiers) {
        if specifiers.iter().any(|s| s.any_prerelease()) {
            self.allow_pre.borrow_mut().insert(name.clone());
        }
    }

    fn metadata(
        &self,
        name: &PackageName,
        version: &Version,
    ) -> Result<Rc<CoreMetadata>, ResolveError> {
        let key = (name.clone(), version.clone());
        if let Some(found) = self.metadata.borrow().get(&key) {
            return Ok(found.clone());
        }
        let candidates = self.candidates(name)?;
        let candidate = candidates
            .usable
            .get(version)
            .expect("pubgrub only asks for versions we offered");
        let file = if candidate.needs_build {
            let built = self.resolver.index.build_wheel(&candidate.file)?;
            self.built.borrow_mut().insert(key.clone(), built.clone());
            built
        } else {
            candidate.file.clone()
        };
        let (metadata, sha256) = self.resolver.index.metadata(&file)?;
        if &metadata.name != name || &metadata.version != version {
            return Err(ResolveError::MetadataMismatch {
                file: file.filename.clone(),
                found: format!("{} {}", metadata.name, metadata.version),
                expected: format!("{name} {version}"),
            });
        }
        if let Some(sha256) = sha256 {
            self.hashes.borrow_mut().insert(key.clone(), sha256);
        }
        let metadata = Rc::new(metadata);
        self.metadata.borrow_mut().insert(key, metadata.clone());
        Ok(metadata)
    }

    /// Adds the requirements that apply (markers true for `extras`) as constraints.
    fn add_requirements<'x>(
        &self,
        requirements: impl Iterator<Item = &'x pep508_rs::Requirement<VerbatimUrl>>,
        extras: &[ExtraName],
        skip: Option<&PackageName>,
        constraints: &mut Constraints,
    ) {
        for req in requirements {
            if !req.evaluate_markers(&self.resolver.markers, extras) || Some(&req.name) == skip {
                continue;
            }
            let specifiers = match &req.version_or_url {
                Some(VersionOrUrl::VersionSpecifier(s)) => s.clone(),
                _ => VersionSpecifiers::empty(),
            };
            self.note_prereleases(&req.name, &specifiers);
            let range = specifiers_to_ranges(&specifiers);
            let targets = std::iter::once(Pkg::Dist(req.name.clone())).chain(
                req.extras
                    .iter()
                    .map(|extra| Pkg::Extra(req.name.clone(), extra.clone())),
            );
            for pkg in targets {
                constraints.add(pkg, range.clone());
            }
        }
    }

    /// Builds the result once pubgrub chose a version for every package.
    fn finish(
        &self,
        selected: impl Iterator<Item = (Pkg, Version)>,
    ) -> Result<Resolution, ResolveError> {
        let mut dists = Vec::new();
        for (pkg, version) in selected {
            let Pkg::Dist(name) = pkg else { continue };
            let candidates = self.candidates(&name)?;
            let metadata = self.metadata(&name, &version)?;
            let built = self
                .built
                .borrow()
                .get(&(name.clone(), version.clone()))
                .cloned();
            let mut file = built.unwrap_or_else(|| candidates.usable[&version].file.clone());
            if file.sha256.is_none() {
                file.sha256 = self
                    .hashes
                    .borrow()
                    .get(&(name.clone(), version.clone()))
                    .cloned();
            }
            if let Some(pins) = self.pins.get(&name) {
                let actual = match &file.sha256 {
                    Some(sha) => sha.clone(),
                    None => self.resolver.index.fetch(&file)?.1,
                };
                for (requirement, hashes) in pins {
                    if !hashes.contains(&actual) {
                        return Err(ResolveError::HashNotPinned {
                            requirement: requirement.clone(),
                            name: name.to_string(),
                            version: version.to_string(),
                            actual: actual.to_string(),
                        });
                    }
                }
                file.sha256 = Some(actual);
            }
            let mut requires: Vec<PackageName> = metadata
                .requires_dist
                .iter()
                .filter(|req| req.evaluate_markers(&self.resolver.markers, &[]) && req.name != name)
                .map(|req| req.name.clone())
                .collect();
            requires.sort();
            requires.dedup();
            dists.push(ResolvedDist {
                name,
                version,
                file,
                requires,
            });
        }
        dists.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Resolution {
            dists,
            warnings: self.warnings.take(),
        })
    }

    /// "foo has 1.0, 2.0 (2.1: requires Python >=3.12)" for error messages.
    fn describe_versions(&self, name: &PackageName) -> String {
        // pubgrub may have found the conflict before it looked at this project's versions.
        let Ok(found) = self.candidates(name) else {
            return String::new();
        };
        let usable: Vec<String> = found.usable.keys().map(ToString::to_string).collect();
        let mut text = if usable.is_empty() {
            format!("; {name} has no version installable here")
        } else {
            format!("; {name} has {}", usable.join(", "))
        };
        if !found.unusable.is_empty() {
            let unusable: Vec<String> = found
                .unusable
                .iter()
                .map(|(version, why)| format!("{version}: {why}"))
                .collect();
            text.push_str(&format!(" (left out: {})", unusable.join("; ")));
        }
        text
    }
}

impl DependencyProvider for Provider<'_, '_> {
    type P = Pkg;
    type V = Version;
    type VS = Ranges<Version>;
    type M = String;
    type Err = ResolveError;
    type Priority = (u32, Reverse<bool>);

    fn prioritize(
        &self,
        _package: &Pkg,
        range: &Ranges<Version>,
        stats: &PackageResolutionStatistics,
    ) -> Self::Priority {
        // Packages in conflict first, then pinned ones (fewest choices) before open ones.
        (
            stats.conflict_count(),
            Reverse(range.as_singleton().is_none()),
        )
    }

    fn choose_version(
        &self,
        package: &Pkg,
        range: &Ranges<Version>,
    ) -> Result<Option<Version>, ResolveError> {
        let name = match package {
            Pkg::Root => return Ok(Some(Version::new([0u64]))),
            Pkg::Dist(name) | Pkg::Extra(name, _) => name,
        };
        let candidates = self.candidates(name)?;
        let mut in_range = candidates.usable.keys().rev().filter(|v| range.contains(v));
        let allow_pre = self.allow_pre.borrow().contains(name);
        let stable = in_range
            .clone()
            .find(|v| allow_pre || !(v.any_prerelease()));
        // As pip does: pre-releases only when asked for, or when nothing else fits.
        Ok(stable.or_else(|| in_range.next()).cloned())
    }

    fn get_dependencies(
        &self,
        package: &Pkg,
        version: &Version,
    ) -> Result<Dependencies<Pkg, Ranges<Version>, String>, ResolveError> {
        let mut constraints = Constraints::default();
        match package {
            Pkg::Root => {
                for root in &self.roots {
                    self.add_requirements(
                        std::iter::once(&root.pep508),
                        &[],
                        None,
                        &mut constraints,
                    );
                }
            }
            Pkg::Dist(name) => {
                let metadata = self.metadata(name, version)?;
                if let Some(rp) = metadata
                    .requires_python
                    .as_ref()
                    .filter(|rp| !rp.contains(&self.resolver.python_version))
                {
                    return Ok(Dependencies::Unavailable(format!(
                        "it requires Python {rp}"
                    )));
                }
                self.add_requirements(
                    metadata.requires_dist.iter(),
                    &[],
                    Some(name),
                    &mut constraints,
                );
            }
            Pkg::Extra(name, extra) => {
                let metadata = self.metadata(name, version)?;
                if !metadata.provides_extras.contains(extra) {
                    self.warnings.borrow_mut().push(format!(
                        "{name} {version} does not provide the extra '{extra}'"
                    ));
                }
                constraints.add(Pkg::Dist(name.clone()), Ranges::singleton(version.clone()));
                let extras = std::slice::from_ref(extra);
                let for_extra = metadata.requires_dist.iter().filter(|req| {
                    req.evaluate_markers(&self.resolver.markers, extras)
                        && !req.evaluate_markers(&self.resolver.markers, &[])
                });
                let mut extra_constraints = Constraints::default();
                self.add_requirements(for_extra, extras, None, &mut extra_constraints);
                for (pkg, range) in extra_constraints.0 {
                    if pkg != Pkg::Dist(name.clone()) {
                        constraints.add(pkg, range);
                    }
                }
            }
        }
        Ok(Dependencies::Available(constraints.0.into_iter().collect()))
    }
}

/// The version of a source distribution file of project `name` (`name-1.0.tar.gz`, `.zip`).
fn sdist_version(filename: &str, name: &PackageName) -> Option<Version> {
    let stem = filename
        .strip_suffix(".tar.gz")
        .or_else(|| filename.strip_suffix(".zip"))?;
    let (project, version) = stem.rsplit_once('-')?;
    let project: PackageName = project.parse().ok()?;
    (&project == name).then(|| version.parse().ok()).flatten()
}
