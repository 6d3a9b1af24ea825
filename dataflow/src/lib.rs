//! The data-flow engine behind `GB()` pipelines, with no Redis and no Python in it.
//!
//! A pipeline is a [`Plan`]: a list of [`Step`]s, each a primitive operation (map, filter,
//! accumulate, …) with the callback the module gave it. An [`Execution`] runs a plan over the
//! records of a [`Reader`]: records are pulled from the last step back to the reader, one at a time,
//! exactly like RedisGears' pull model, but the reader hands them over in chunks and the whole
//! chunk is pulled inside one [`CallbackScope::enter`], so the module takes the Python GIL once per
//! chunk rather than once per record. Every step keeps its state in the execution, so a step that
//! runs out of input returns and resumes when the next chunk arrives.
//!
//! The module implements the callback traits with Python; the tests here use plain closures.

pub mod callbacks;
pub mod exchange;
pub mod execution;
pub mod gears_dict;
pub mod glob;
pub mod keys;
pub mod pending;
pub mod plan;
pub mod pool;
pub mod prefetch;
pub mod progress;
pub mod reader;
pub mod record;
pub mod record_wise;
pub mod stream_consumer;
pub mod wire;

pub use callbacks::{
    AccumulateByKeyFn, AccumulateFn, CallbackScope, ExtractFn, FilterFn, ForEachFn, MapFn, NoScope,
    ReduceFn, StepError,
};
pub use exchange::{Exchange, ExchangeKind};
pub use execution::{Execution, Status};
pub use pending::{AsyncRecord, Wakeup};
pub use plan::{Operation, Plan, Step, StepType};
pub use prefetch::Prefetch;
pub use progress::Progress;
pub use reader::{Reader, VecReader};
pub use record::{ObjectHandle, Record};
pub use wire::ObjectCodec;
