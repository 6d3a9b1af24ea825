//! The byte layouts the module reads from outside its own process: the batch a script's
//! registrations travel in (replicas, the AOF, other shards), the RDB aux sections, and the
//! registration and requirement messages between shards.
//!
//! Kept apart from the module (no Redis, no Python) so every decoder is unit-tested and fuzzed
//! (`fuzz/fuzz_targets/saved_state.rs`): an RDB, an AOF or a shard is outside input, and a
//! decoder must answer a hostile one with an error, never a panic or a huge allocation.

pub mod aux;
pub mod batch;
mod error;
pub mod messages;

pub use error::FormatError;

/// A wheel file name safe to join under a directory: no separator, no NUL, not hidden, a
/// `.whl`. A hostile RDB or shard could otherwise write outside the requirement's directory.
pub fn check_wheel_name(wheel: &str) -> Result<(), FormatError> {
    if wheel.is_empty()
        || wheel.contains(['/', '\\', '\0'])
        || wheel.starts_with('.')
        || !wheel.ends_with(".whl")
    {
        return Err(FormatError::BadWheelName(wheel.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wheel_names_that_could_escape_are_refused() {
        assert!(check_wheel_name("tiny-0.1-py3-none-any.whl").is_ok());
        for bad in [
            "",
            "../../evil.whl",
            "a/b.whl",
            "a\\b.whl",
            ".hidden.whl",
            "nul\0.whl",
            "tiny-0.1.tar.gz",
        ] {
            assert_eq!(
                check_wheel_name(bad).unwrap_err().to_string(),
                format!("bad wheel name '{bad}'")
            );
        }
    }
}
