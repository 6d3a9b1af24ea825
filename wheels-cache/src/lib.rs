//! The content-addressed wheel store shared by the shards of one host: wheel files keyed by their
//! sha256, an index by normalised name / version / tag, atomic writes (tempfile + rename) and
//! verification on every read.
//!
//! Nothing is here yet: the issue "reqs-manager, part 2" builds it.
