//! The readers an execution pulls its records from.

pub mod keys;
pub mod python;
pub mod scan;
pub mod stream;
