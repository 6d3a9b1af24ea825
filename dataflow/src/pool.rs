//! A fixed pool of named worker threads that run jobs in submission order per free worker.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

type Job = Box<dyn FnOnce() + Send + 'static>;

pub struct Pool {
    sender: Mutex<Option<Sender<Job>>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl Pool {
    /// Starts `threads` workers (at least one) named `<name>-<n>`.
    pub fn new(name: &str, threads: usize) -> std::io::Result<Pool> {
        let (sender, receiver) = channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let mut workers = Vec::new();
        for n in 0..threads.max(1) {
            let receiver: Arc<Mutex<Receiver<Job>>> = receiver.clone();
            workers.push(
                std::thread::Builder::new()
                    .name(format!("{name}-{n}"))
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
