//! One-shot timers on a thread of their own: stream registrations' `duration` and
//! `onFailedRetryInterval`. Redis' own timers would fire on the main thread, which must not run
//! what these start (a scan, a batch) unless a registration is `sync`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Condvar, LazyLock, Mutex};
use std::time::{Duration, Instant};

type Job = Box<dyn FnOnce() + Send>;

struct Timer {
    due: Instant,
    /// Breaks ties between timers due at the same instant: the first armed fires first.
    seq: u64,
    job: Job,
}

impl PartialEq for Timer {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Timer {}
impl PartialOrd for Timer {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Timer {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

#[derive(Default)]
struct Queue {
    timers: BinaryHeap<Reverse<Timer>>,
    next_seq: u64,
    started: bool,
}

static QUEUE: LazyLock<(Mutex<Queue>, Condvar)> =
    LazyLock::new(|| (Mutex::new(Queue::default()), Condvar::new()));

/// Runs `job` on the timer thread once `delay` has passed. A job must be short: it runs before
/// the timers due after it.
pub fn after(delay: Duration, job: impl FnOnce() + Send + 'static) {
    let (lock, wake) = &*QUEUE;
    let mut queue = lock.lock().unwrap_or_else(|e| e.into_inner());
    if !queue.started {
        // A timer may run a `sync` stream batch inline: a worker's deep stack.
        let spawned = std::thread::Builder::new()
            .name("gears-timers".into())
            .stack_size(dataflow::pool::WORKER_STACK)
            .spawn(run);
        if spawned.is_err() {
            crate::redis_calls::log("warning", "could not start the timer thread");
            return;
        }
        queue.started = true;
    }
    let seq = queue.next_seq;
    queue.next_seq += 1;
    queue.timers.push(Reverse(Timer {
        due: Instant::now() + delay,
        seq,
        job: Box::new(job),
    }));
    wake.notify_one();
}

fn run() {
    let (lock, wake) = &*QUEUE;
    let mut queue = lock.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let now = Instant::now();
        match queue.timers.peek() {
            Some(Reverse(timer)) if timer.due <= now => {
                let Some(Reverse(timer)) = queue.timers.pop() else {
                    continue;
                };
                drop(queue);
                // A panicking job must not take the timer thread with it.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(timer.job));
                queue = lock.lock().unwrap_or_else(|e| e.into_inner());
            }
            Some(Reverse(timer)) => {
                let wait = timer.due - now;
                queue = wake
                    .wait_timeout(queue, wait)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            None => queue = wake.wait(queue).unwrap_or_else(|e| e.into_inner()),
        }
    }
}
