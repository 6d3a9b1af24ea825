//! The requirements manager: PEP 508 requirements, resolution against a package index,
//! download, sha256 verification and installation of wheels into a shard's requirements
//! directory, and the offline bundles of RG.PYEXPORTREQ / RG.PYIMPORTREQ.
//!
//! Part 1 (this much is built): requirement parsing, the index client (find-links directory
//! first, then a PEP 691 / PEP 503 simple index) and the pubgrub resolver over wheel metadata.
//! It never depends on redis-module or pyo3.

pub mod bundle;
pub mod index;
pub mod install;
pub mod metadata;
pub mod ranges;
pub mod requirement;
pub mod resolver;
pub mod target;
pub mod wheel_name;

pub use index::{IndexError, IndexOptions, PackageIndex};
pub use requirement::{Requirement, RequirementError, Sha256Hex};
pub use resolver::{Resolution, ResolveError, ResolvedDist, Resolver};
pub use target::{Libc, TargetPython};
