//! Async records: a step callback that cannot answer yet (it returned a coroutine, or a future it
//! will complete later) leaves a placeholder, an [`AsyncRecord`], that any thread completes later.
//! The execution keeps pulling the records that need no wait, and when nothing else can move it
//! parks; completing a placeholder wakes it through its [`Wakeup`].
//!
//! A callback learns whether it may go asynchronous, and creates its placeholder, through the
//! step context the engine sets on the calling thread around each callback ([`invoke`]): this is
//! how RedisGears' `gearsFuture()` finds "the current step" without any argument.

use std::cell::RefCell;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::record::Record;

/// The execution was started where a client cannot be blocked (MULTI, Lua, a `sync` KeysReader
/// registration): its steps may not wait.
pub const ASYNC_NOT_ALLOWED: &str = "Creating async record is not allowed";
/// The step (a reader, an extractor, a batch reducer) cannot wait for a record.
pub const STEP_NOT_ASYNC: &str = "Step does not support async";
pub const CREATED_TWICE: &str = "Can not create async record twice on the same step";
pub const OUTSIDE_STEP: &str = "Can not create gearsFuture outside of step";
/// The error a record gets when its placeholder was dropped without being completed.
pub const NEVER_COMPLETED: &str = "Async record did not called continue";

/// How many records a map, filter or foreach step lets wait at once before it stops pulling.
pub const MAX_IN_FLIGHT: usize = 1000;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Resumes a parked execution. The completion that wakes it may come before the execution
/// parked (it was still pulling other records): the wake is then remembered and parking resumes
/// at once.
#[derive(Default)]
pub struct Wakeup {
    state: Mutex<WakeState>,
}

#[derive(Default)]
struct WakeState {
    notified: bool,
    parked: Option<Box<dyn FnOnce() + Send>>,
}

impl Wakeup {
    /// Something the execution waits for happened (or an abort asks it to stop).
    pub fn wake(&self) {
        let resume = {
            let mut state = lock(&self.state);
            let parked = state.parked.take();
            if parked.is_none() {
                state.notified = true;
            }
            parked
        };
        if let Some(resume) = resume {
            resume();
        }
    }

    /// Parks the execution: `resume` runs on the next wake, or now if one came since
    /// [`Wakeup::clear`].
    pub fn park(&self, resume: Box<dyn FnOnce() + Send>) {
        let resume_now = {
            let mut state = lock(&self.state);
            if std::mem::take(&mut state.notified) {
                Some(resume)
            } else {
                state.parked = Some(resume);
                None
            }
        };
        if let Some(resume) = resume_now {
            resume();
        }
    }

    /// Forgets earlier wakes: called when a run slice starts, which sees every completion made
    /// so far.
    pub fn clear(&self) {
        lock(&self.state).notified = false;
    }
}

/// Why a placeholder could not be completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CompleteError {
    #[error("Can not handle future untill it returned from the callback")]
    NotReturnedYet,
    #[error("Can not continue with the same future twice")]
    Twice,
}

enum SlotState {
    /// The callback that created it is still running.
    Open,
    /// Completed by another thread while the callback was still running (a coroutine it
    /// scheduled finished first): the answer counts once the callback returned the record.
    CompletedEarly(Result<Record, String>),
    /// The callback returned it: the step waits for it.
    Awaited,
    /// The callback returned something else; the step went on without it.
    Discarded,
    Done(Result<Record, String>),
    Taken,
}

struct Slot {
    state: Mutex<SlotState>,
    wakeup: Arc<Wakeup>,
}

/// The placeholder of one record a step waits for.
#[derive(Clone)]
pub struct AsyncRecord(Arc<Slot>);

impl AsyncRecord {
    /// Completes the record with the callback's eventual answer (`Err`: the record's error text)
    /// and wakes its execution.
    pub fn complete(&self, outcome: Result<Record, String>) -> Result<(), CompleteError> {
        {
            let mut state = lock(&self.0.state);
            match *state {
                SlotState::Awaited => *state = SlotState::Done(outcome),
                // From inside the callback itself: it must return the future first.
                SlotState::Open if created_here(self) => return Err(CompleteError::NotReturnedYet),
                SlotState::Open => {
                    *state = SlotState::CompletedEarly(outcome);
                    return Ok(());
                }
                _ => return Err(CompleteError::Twice),
            }
        }
        self.0.wakeup.wake();
        Ok(())
    }

    /// True while the step waits for it: not completed, and its callback returned it.
    pub fn is_awaited(&self) -> bool {
        matches!(*lock(&self.0.state), SlotState::Awaited)
    }

    pub fn same_as(&self, other: &AsyncRecord) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The answer, once there is one.
    fn take(&self) -> Option<Result<Record, String>> {
        let mut state = lock(&self.0.state);
        match std::mem::replace(&mut *state, SlotState::Taken) {
            SlotState::Done(outcome) => Some(outcome),
            other => {
                *state = other;
                None
            }
        }
    }
}

/// What the engine tells the callbacks of one step invocation.
struct StepContext {
    /// The execution may wait (it was not started in MULTI, Lua, ...).
    allowed: bool,
    /// The step can wait for a record.
    supported: bool,
    wakeup: Arc<Wakeup>,
    created: Option<AsyncRecord>,
}

thread_local! {
    static STEP: RefCell<Option<StepContext>> = const { RefCell::new(None) };
}

/// How an execution's steps may wait, passed down to each invocation.
#[derive(Clone)]
pub struct AsyncPolicy {
    pub allowed: bool,
    pub wakeup: Arc<Wakeup>,
}

/// Runs one callback invocation of a step (`supported`: the step can wait) with its step context
/// on this thread. Returns what the callback returned, and the placeholder it asked the step to
/// wait for, if any; one it created but did not return is discarded.
pub fn invoke<R>(
    policy: &AsyncPolicy,
    supported: bool,
    f: impl FnOnce() -> R,
) -> (R, Option<AsyncRecord>) {
    let context = StepContext {
        allowed: policy.allowed,
        supported,
        wakeup: policy.wakeup.clone(),
        created: None,
    };
    let previous = STEP.with(|s| s.replace(Some(context)));
    let result = f();
    let context = STEP.with(|s| s.replace(previous));
    let created = context.and_then(|c| c.created);
    let awaited = created.filter(|record| {
        let mut state = lock(&record.0.state);
        match *state {
            SlotState::Open | SlotState::CompletedEarly(_) => {
                *state = SlotState::Discarded;
                false
            }
            _ => true,
        }
    });
    (result, awaited)
}

/// True while a step callback runs on this thread.
pub fn in_step() -> bool {
    STEP.with(|s| s.borrow().is_some())
}

/// `isAsyncAllow()`: a step callback runs on this thread and its execution may wait.
pub fn async_allowed() -> bool {
    STEP.with(|s| s.borrow().as_ref().is_some_and(|c| c.allowed))
}

/// Creates the placeholder of the record the running step callback is handling. The callback
/// then returns it ([`wait_for`]) or the step goes on without it.
pub fn create() -> Result<AsyncRecord, &'static str> {
    STEP.with(|s| {
        let mut step = s.borrow_mut();
        let context = step.as_mut().ok_or(OUTSIDE_STEP)?;
        if !context.supported {
            return Err(STEP_NOT_ASYNC);
        }
        if !context.allowed {
            return Err(ASYNC_NOT_ALLOWED);
        }
        if context.created.is_some() {
            return Err(CREATED_TWICE);
        }
        let record = AsyncRecord(Arc::new(Slot {
            state: Mutex::new(SlotState::Open),
            wakeup: context.wakeup.clone(),
        }));
        context.created = Some(record.clone());
        Ok(record)
    })
}

/// The running callback hands `record` back as its answer: the step waits for it. True if it is
/// the record this invocation created (anything else is not something the step can wait for).
pub fn wait_for(record: &AsyncRecord) -> bool {
    let ours = created_here(record);
    if ours {
        let mut state = lock(&record.0.state);
        *state = match std::mem::replace(&mut *state, SlotState::Taken) {
            SlotState::Open => SlotState::Awaited,
            SlotState::CompletedEarly(outcome) => SlotState::Done(outcome),
            other => other,
        };
    }
    ours
}

/// True when `record` is the one the step callback running on this thread created.
fn created_here(record: &AsyncRecord) -> bool {
    STEP.with(|s| {
        s.borrow()
            .as_ref()
            .and_then(|c| c.created.as_ref())
            .is_some_and(|created| created.same_as(record))
    })
}

/// A record a step waits for, with what the step keeps meanwhile (a filter or foreach emits the
/// original record).
pub(crate) struct InFlight {
    pub record: AsyncRecord,
    pub kept: Option<Record>,
}

/// Takes the first completed record of `in_flight`, in completion-check order.
pub(crate) fn take_completed(
    in_flight: &mut Vec<InFlight>,
) -> Option<(Result<Record, String>, Option<Record>)> {
    let position = in_flight
        .iter()
        .position(|f| !matches!(*lock(&f.record.0.state), SlotState::Awaited))?;
    let entry = in_flight.remove(position);
    let outcome = entry
        .record
        .take()
        .unwrap_or_else(|| Err(NEVER_COMPLETED.to_string()));
    Some((outcome, entry.kept))
}

/// The answer of a single waited record (accumulators wait for one at a time): None while it is
/// pending.
pub(crate) fn take_single(record: &AsyncRecord) -> Option<Result<Record, String>> {
    if record.is_awaited() {
        return None;
    }
    Some(
        record
            .take()
            .unwrap_or_else(|| Err(NEVER_COMPLETED.to_string())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn policy(allowed: bool) -> AsyncPolicy {
        AsyncPolicy {
            allowed,
            wakeup: Arc::new(Wakeup::default()),
        }
    }

    #[test]
    fn a_created_record_must_be_returned_to_be_waited_for() {
        let p = policy(true);
        let ((), kept) = invoke(&p, true, || {
            create().unwrap();
        });
        assert!(kept.is_none());
        let (record, kept) = invoke(&p, true, || {
            let r = create().unwrap();
            assert!(wait_for(&r));
            r
        });
        assert!(kept.unwrap().same_as(&record));
        assert_eq!(record.complete(Ok(Record::Long(1))), Ok(()));
        assert_eq!(
            record.complete(Ok(Record::Long(2))),
            Err(CompleteError::Twice)
        );
    }

    #[test]
    fn creation_errors_name_the_reason() {
        assert_eq!(create().err(), Some(OUTSIDE_STEP));
        let (e, _) = invoke(&policy(false), true, || create().err());
        assert_eq!(e, Some(ASYNC_NOT_ALLOWED));
        let (e, _) = invoke(&policy(true), false, || create().err());
        assert_eq!(e, Some(STEP_NOT_ASYNC));
        let (e, _) = invoke(&policy(true), true, || {
            create().unwrap();
            create().err()
        });
        assert_eq!(e, Some(CREATED_TWICE));
    }

    #[test]
    fn completing_inside_the_callback_or_after_discard_fails() {
        let p = policy(true);
        let (record, _) = invoke(&p, true, || {
            let r = create().unwrap();
            assert_eq!(
                r.complete(Ok(Record::Null)),
                Err(CompleteError::NotReturnedYet)
            );
            r
        });
        assert_eq!(record.complete(Ok(Record::Null)), Err(CompleteError::Twice));
    }

    #[test]
    fn another_thread_may_complete_a_record_before_its_callback_returned_it() {
        let p = policy(true);
        let (record, waited) = invoke(&p, true, || {
            let r = create().unwrap();
            let other = r.clone();
            std::thread::spawn(move || other.complete(Ok(Record::Long(7))))
                .join()
                .unwrap()
                .unwrap();
            assert!(wait_for(&r));
            r
        });
        assert!(waited.is_some());
        assert_eq!(take_single(&record), Some(Ok(Record::Long(7))));
    }

    #[test]
    fn a_wake_before_parking_resumes_at_once() {
        let wakeup = Wakeup::default();
        let resumed = Arc::new(AtomicUsize::new(0));
        wakeup.wake();
        let r = resumed.clone();
        wakeup.park(Box::new(move || {
            r.fetch_add(1, Ordering::SeqCst);
        }));
        assert_eq!(resumed.load(Ordering::SeqCst), 1);
        let r = resumed.clone();
        wakeup.park(Box::new(move || {
            r.fetch_add(1, Ordering::SeqCst);
        }));
        assert_eq!(resumed.load(Ordering::SeqCst), 1);
        wakeup.wake();
        assert_eq!(resumed.load(Ordering::SeqCst), 2);
    }
}
