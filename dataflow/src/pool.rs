//! A fixed pool of named worker threads that run jobs in submission order per free worker.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// A worker's stack: an execution pulls its records through one nested call per step, so a long
/// pipeline needs a deep stack (about 1 KiB a step; see `plan::MAX_STEPS`). Only the pages used
/// are ever committed.
pub const WORKER_STACK: usize = 64 << 20;

type Job = Box<dyn FnOnce() + Send + 'static>;

pub struct Pool {
    sender: Mutex<Option<Sender<Job>>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl Pool {
    /// Starts `threads` workers (at least one) named `<name>-<n>`, each with a
    /// [`WORKER_STACK`] stack.
    pub fn new(name: &str, threads: usize) -> std::io::Result<Pool> {
        let (sender, receiver) = channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let mut workers = Vec::new();
        for n in 0..threads.max(1) {
            let receiver: Arc<Mutex<Receiver<Job>>> = receiver.clone();
            workers.push(
                std::thread::Builder::new()
                    .name(format!("{name}-{n}"))
                    .stack_size(WORKER_STACK)
                    .spawn(move || loop {
                        let job = match receiver.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    })?,
            );
        }
        Ok(Pool {
            sender: Mutex::new(Some(sender)),
            workers: Mutex::new(workers),
        })
    }

    /// Queues a job; false if the pool was shut down.
    pub fn submit(&self, job: impl FnOnce() + Send + 'static) -> bool {
        match self.sender.lock().ok().and_then(|s| s.clone()) {
            Some(sender) => sender.send(Box::new(job)).is_ok(),
            None => false,
        }
    }

    /// Stops taking jobs and waits for the queued ones to finish.
    pub fn shutdown(&self) {
        if let Ok(mut s) = self.sender.lock() {
            s.take();
        }
        if let Ok(mut workers) = self.workers.lock() {
            for w in workers.drain(..) {
                let _ = w.join();
            }
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Jobs that must run one after another, in the order they were queued (the executions of one
/// registration), on a shared [`Pool`]: at most one of them is on a worker at a time, and a
/// worker is only taken while the queue has work.
#[derive(Default)]
pub struct SerialQueue {
    state: Mutex<QueueState>,
}

#[derive(Default)]
struct QueueState {
    jobs: std::collections::VecDeque<Job>,
    draining: bool,
}

impl SerialQueue {
    pub fn new() -> Arc<SerialQueue> {
        Arc::new(SerialQueue::default())
    }

    /// Queues `job`; starts draining the queue on `pool` if nothing is draining it. False if the
    /// pool was shut down (the job is dropped).
    pub fn push(self: &Arc<Self>, pool: &Pool, job: impl FnOnce() + Send + 'static) -> bool {
        let start = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            state.jobs.push_back(Box::new(job));
            !std::mem::replace(&mut state.draining, true)
        };
        if !start {
            return true;
        }
        let queue = self.clone();
        let submitted = pool.submit(move || queue.drain());
        if !submitted {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            state.jobs.clear();
            state.draining = false;
        }
        submitted
    }

    fn drain(&self) {
        loop {
            let job = {
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                match state.jobs.pop_front() {
                    Some(job) => job,
                    None => {
                        state.draining = false;
                        return;
                    }
                }
            };
            job();
        }
    }

    /// Jobs waiting (not counting one running).
    pub fn pending(&self) -> usize {
        self.state.lock().map(|s| s.jobs.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn serial_jobs_run_in_order_one_at_a_time() {
        let pool = Pool::new("t", 4).unwrap();
        let queue = SerialQueue::new();
        let log = Arc::new(Mutex::new(Vec::new()));
        let running = Arc::new(AtomicUsize::new(0));
        for i in 0..50 {
            let (log, running) = (log.clone(), running.clone());
            queue.push(&pool, move || {
                assert_eq!(
                    running.fetch_add(1, Ordering::SeqCst),
                    0,
                    "two jobs at once"
                );
                std::thread::sleep(Duration::from_micros(200));
                log.lock().unwrap().push(i);
                running.fetch_sub(1, Ordering::SeqCst);
            });
        }
        pool.shutdown();
        assert_eq!(*log.lock().unwrap(), (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn separate_queues_run_side_by_side() {
        let pool = Pool::new("t", 2).unwrap();
        let (a, b) = (SerialQueue::new(), SerialQueue::new());
        let both = Arc::new(std::sync::Barrier::new(2));
        let (x, y) = (both.clone(), both.clone());
        a.push(&pool, move || {
            x.wait();
        });
        b.push(&pool, move || {
            y.wait();
        });
        pool.shutdown();
    }
}
