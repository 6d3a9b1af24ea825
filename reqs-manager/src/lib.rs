//! The requirements manager: PEP 508 requirements, resolution against a package index, download,
//! sha256 verification and installation of wheels into a shard's requirements directory, and the
//! offline bundles of RG.PYEXPORTREQ / RG.PYIMPORTREQ.
//!
//! Nothing is here yet: the issues "reqs-manager, part 1" and "part 2" build it. It must never
//! depend on redis-module or pyo3.
