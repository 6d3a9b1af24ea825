//! The module's thread pools: `DefaultPool` runs executions (`ExecutionThreads` of them),
//! `MgmtPool` (one thread) runs management work such as aborting an execution.

use std::sync::OnceLock;

use std::sync::Arc;

use dataflow::pool::{Pool, SerialQueue};

static EXECUTION_POOL: OnceLock<Pool> = OnceLock::new();
static MANAGEMENT_POOL: OnceLock<Pool> = OnceLock::new();
static INSTALL_POOL: OnceLock<Pool> = OnceLock::new();

pub fn start(execution_threads: usize) -> std::io::Result<()> {
    let _ = EXECUTION_POOL.set(Pool::new("gears-exec", execution_threads)?);
    let _ = MANAGEMENT_POOL.set(Pool::new("gears-mgmt", 1)?);
    let _ = INSTALL_POOL.set(Pool::new("gears-reqs", 1)?);
    Ok(())
}

/// Queues an execution job; false if the pools are not running.
pub fn run_execution(job: impl FnOnce() + Send + 'static) -> bool {
    EXECUTION_POOL.get().is_some_and(|p| p.submit(job))
}

/// Queues a job behind the others of `queue`, run on the execution threads.
pub fn run_on(queue: &Arc<SerialQueue>, job: impl FnOnce() + Send + 'static) -> bool {
    EXECUTION_POOL.get().is_some_and(|p| queue.push(p, job))
}

/// Queues management work; false if the pools are not running.
pub fn run_management(job: impl FnOnce() + Send + 'static) -> bool {
    MANAGEMENT_POOL.get().is_some_and(|p| p.submit(job))
}

/// Queues a requirements install (one at a time, in order, spec requirements.md §2.2).
pub fn run_install(job: impl FnOnce() + Send + 'static) -> bool {
    INSTALL_POOL.get().is_some_and(|p| p.submit(job))
}
