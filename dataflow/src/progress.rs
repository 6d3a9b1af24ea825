//! Live counters of an execution, shared with whoever asks while it runs (RG.GETEXECUTION):
//! records read, records out of each step and, when profiling, time spent in each step.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Counters for one pull level: level 0 is the reader, level `i + 1` is step `i`.
#[derive(Default)]
struct Level {
    records: AtomicU64,
    /// Time spent pulling from this level, its upstream included (profiling only).
    inclusive_nanos: AtomicU64,
}

pub struct Progress {
    levels: Vec<Level>,
    profiling: AtomicBool,
}

impl Progress {
    pub fn new(steps: usize, profiling: bool) -> Progress {
        Progress {
            levels: (0..=steps).map(|_| Level::default()).collect(),
            profiling: AtomicBool::new(profiling),
        }
    }

    pub fn profiling(&self) -> bool {
        self.profiling.load(Ordering::Relaxed)
    }

    pub(crate) fn record_out(&self, level: usize) {
        self.levels[level].records.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_time(&self, level: usize, nanos: u64) {
        self.levels[level]
            .inclusive_nanos
            .fetch_add(nanos, Ordering::Relaxed);
    }

    /// Records the reader produced so far.
    pub fn records_read(&self) -> u64 {
        self.levels[0].records.load(Ordering::Relaxed)
    }

    /// Records step `i` emitted so far.
    pub fn records_out(&self, step: usize) -> u64 {
        self.levels[step + 1].records.load(Ordering::Relaxed)
    }

    fn inclusive(&self, level: usize) -> u64 {
        self.levels[level].inclusive_nanos.load(Ordering::Relaxed)
    }

    /// Time spent in the reader (profiling only, else zero).
    pub fn read_duration(&self) -> Duration {
        Duration::from_nanos(self.inclusive(0))
    }

    /// Time spent in step `i` itself, without its upstream (profiling only, else zero).
    pub fn step_duration(&self, step: usize) -> Duration {
        let level = step + 1;
        Duration::from_nanos(
            self.inclusive(level)
                .saturating_sub(self.inclusive(level - 1)),
        )
    }

    pub fn steps(&self) -> usize {
        self.levels.len() - 1
    }
}
