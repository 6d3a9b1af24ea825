use thiserror::Error;

/// Why bytes from outside were refused. The texts reach Redis' log and, for shards, the client.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FormatError {
    #[error("empty batch")]
    EmptyBatch,
    #[error("batch format {found}, this build reads {reads}")]
    BatchFormat { found: u8, reads: u8 },
    #[error("truncated {0}")]
    Truncated(&'static str),
    #[error("a name is not UTF-8")]
    NotUtf8,
    #[error("bad count")]
    BadCount,
    #[error("bad wheel name '{0}'")]
    BadWheelName(String),
    #[error("registration {0} has no session")]
    NoSession(String),
    #[error("{0}")]
    Message(&'static str),
}
