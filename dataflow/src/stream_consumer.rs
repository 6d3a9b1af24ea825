//! The scheduling state of a StreamReader registration (readers.md §4.3), without Redis: which
//! streams it tracks, when a batch of a stream runs, and what follows the end of a batch
//! (acknowledge it, or the failure policy). The module feeds it the XADDs, the reads and the
//! ends of batches, and carries out what it answers.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What a registration does with a batch whose execution failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Acknowledge (and trim) the entries anyway.
    Continue,
    /// Stop the registration (status ABORTED); the entries stay unacknowledged.
    Abort,
    /// Run the same entries again after the retry interval.
    Retry,
}

impl FailurePolicy {
    /// `continue` / `abort` / `retry`, in any case.
    pub fn parse(s: &str) -> Option<FailurePolicy> {
        match s.to_ascii_lowercase().as_str() {
            "continue" => Some(FailurePolicy::Continue),
            "abort" => Some(FailurePolicy::Abort),
            "retry" => Some(FailurePolicy::Retry),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FailurePolicy::Continue => "continue",
            FailurePolicy::Abort => "abort",
            FailurePolicy::Retry => "retry",
        }
    }
}

/// When a registration's batches run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRule {
    /// Unread entries that start a batch (also the most a batch reads); 0 counts as 1.
    pub batch: u64,
    /// How long a partial batch waits before it runs anyway; zero: it waits for more entries.
    pub duration: Duration,
    pub policy: FailurePolicy,
}

impl BatchRule {
    pub fn batch_size(&self) -> u64 {
        self.batch.max(1)
    }
}

/// RG.DUMPREGISTRATIONS `status` of a stream registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerStatus {
    Ok,
    WaitingForRetry,
    Aborted,
    Paused,
}

impl ConsumerStatus {
    pub fn name(self) -> &'static str {
        match self {
            ConsumerStatus::Ok => "OK",
            ConsumerStatus::WaitingForRetry => "WAITING_FOR_RETRY_ON_FAILURE",
            ConsumerStatus::Aborted => "ABORTED",
            ConsumerStatus::Paused => "PAUSED",
        }
    }
}

/// What to do next for one stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    Nothing,
    /// Run a batch now; `redeliver`: first read again what was delivered and not acknowledged.
    Run {
        redeliver: bool,
    },
    /// Arm the partial-batch timer; when it fires, call [`ConsumerState::timer_fired`].
    Arm {
        delay: Duration,
        token: u64,
    },
}

/// How a batch ended.
#[derive(Debug, PartialEq, Eq)]
pub enum BatchEnd<'a> {
    Succeeded,
    /// With at least one error; the first one.
    Failed(&'a str),
    /// Aborted (RG.ABORTEXECUTION, or UNREGISTER ... ABORTPENDING).
    Aborted,
}

/// What follows the end of a batch.
#[derive(Debug, PartialEq, Eq)]
pub struct AfterBatch {
    /// Acknowledge (and trim) the entries the batch read.
    pub acknowledge: bool,
    /// Arm the retry timer with this token; when it fires, call [`ConsumerState::retry_due`].
    pub retry: Option<u64>,
    pub next: Next,
}

/// One tracked stream.
#[derive(Debug, Default)]
struct Track {
    /// Entries added and not yet read by a batch.
    pending: u64,
    /// A batch of this stream is queued or running.
    running: bool,
    /// The token of the armed partial-batch timer, if one is armed.
    timer: Option<u64>,
    /// The next batch first reads again what the group delivered and nobody acknowledged.
    redeliver: bool,
    /// When the oldest unread entry arrived, as far as we know.
    oldest: Option<Instant>,
}

/// The consuming state of one stream registration, keyed by stream name.
#[derive(Debug)]
pub struct ConsumerState {
    status: ConsumerStatus,
    streams: HashMap<Vec<u8>, Track>,
    /// Unregistered: nothing starts any more.
    stopped: bool,
    next_token: u64,
    /// The token of the retry timer that may end WAITING_FOR_RETRY_ON_FAILURE.
    retry_token: u64,
}

impl Default for ConsumerState {
    fn default() -> ConsumerState {
        ConsumerState {
            status: ConsumerStatus::Ok,
            streams: HashMap::new(),
            stopped: false,
            next_token: 1,
            retry_token: 0,
        }
    }
}

impl ConsumerState {
    pub fn status(&self) -> ConsumerStatus {
        self.status
    }

    /// The registration was removed: nothing starts any more (a running batch still ends and
    /// is acknowledged).
    pub fn stop(&mut self) {
        self.stopped = true;
    }

    fn token(&mut self) -> u64 {
        let token = self.next_token;
        self.next_token += 1;
        token
    }

    /// An XADD to `key`. A stream seen for the first time starts with `length()` unread
    /// entries (the new one included), all to be delivered.
    ///
    /// Called inside every XADD to a tracked stream, so it looks the stream up once.
    pub fn arrived(&mut self, key: &[u8], length: impl FnOnce() -> u64, rule: &BatchRule) -> Next {
        let open = self.status == ConsumerStatus::Ok && !self.stopped;
        let track = match self.streams.get_mut(key) {
            Some(track) => {
                track.pending += 1;
                track
            }
            None => self.streams.entry(key.to_vec()).or_insert_with(|| Track {
                pending: length().max(1),
                redeliver: true,
                ..Track::default()
            }),
        };
        track.oldest.get_or_insert_with(Instant::now);
        if !open {
            return Next::Nothing;
        }
        decide_track(track, &mut self.next_token, rule, false)
    }

    /// A batch of `key` read `new_entries` entries new to the group; `caught_up`: it asked for
    /// more than there were. Called under the same lock as [`arrived`](Self::arrived), so the
    /// count of unread entries stays exact.
    pub fn was_read(&mut self, key: &[u8], new_entries: u64, caught_up: bool) {
        if let Some(track) = self.streams.get_mut(key) {
            track.pending = if caught_up {
                0
            } else {
                track.pending.saturating_sub(new_entries)
            };
            if track.pending == 0 {
                track.oldest = None;
            }
        }
    }

    /// A scan (registration, retry, unpause) found `key` with `length` entries;
    /// `unacknowledged`: some were delivered and never acknowledged, which runs a batch at once.
    pub fn rescanned(
        &mut self,
        key: &[u8],
        length: u64,
        unacknowledged: bool,
        rule: &BatchRule,
    ) -> Next {
        let track = self.streams.entry(key.to_vec()).or_default();
        if !track.running {
            track.pending = length;
            track.redeliver = true;
            if length > 0 {
                track.oldest.get_or_insert_with(Instant::now);
            }
        }
        self.decide(key, rule, unacknowledged)
    }

    /// A batch of `key` could not even be queued.
    pub fn not_started(&mut self, key: &[u8]) {
        if let Some(track) = self.streams.get_mut(key) {
            track.running = false;
            track.redeliver = true;
        }
    }

    /// A batch of `key` ended: whether to acknowledge it, the failure policy, what runs next.
    pub fn batch_ended(&mut self, key: &[u8], end: BatchEnd<'_>, rule: &BatchRule) -> AfterBatch {
        let pause = matches!(end, BatchEnd::Failed(e) if e.starts_with("PAUSE"));
        let acknowledge = match end {
            BatchEnd::Succeeded => true,
            BatchEnd::Failed(_) => rule.policy == FailurePolicy::Continue && !pause,
            BatchEnd::Aborted => false,
        };
        if let Some(track) = self.streams.get_mut(key) {
            track.running = false;
            if !acknowledge {
                track.redeliver = true;
            }
        }
        let mut retry = None;
        if let BatchEnd::Failed(_) = end {
            if pause {
                self.status = ConsumerStatus::Paused;
                self.redeliver_all();
            } else if rule.policy == FailurePolicy::Abort {
                self.status = ConsumerStatus::Aborted;
            } else if rule.policy == FailurePolicy::Retry && self.status == ConsumerStatus::Ok {
                self.status = ConsumerStatus::WaitingForRetry;
                self.redeliver_all();
                self.retry_token = self.token();
                retry = Some(self.retry_token);
            }
        }
        AfterBatch {
            acknowledge,
            retry,
            next: self.decide(key, rule, false),
        }
    }

    /// The partial-batch timer `token` of `key` fired.
    pub fn timer_fired(&mut self, key: &[u8], token: u64, rule: &BatchRule) -> Next {
        match self.streams.get_mut(key) {
            Some(track) if track.timer == Some(token) => {
                track.timer = None;
                self.decide(key, rule, false)
            }
            _ => Next::Nothing,
        }
    }

    /// The retry timer `token` fired: true if the registration is back to OK and must rescan.
    pub fn retry_due(&mut self, token: u64) -> bool {
        if self.stopped
            || self.status != ConsumerStatus::WaitingForRetry
            || self.retry_token != token
        {
            return false;
        }
        self.status = ConsumerStatus::Ok;
        true
    }

    /// RG.PAUSEREGISTRATIONS: no new batch starts (one running ends and is acknowledged).
    pub fn pause(&mut self) {
        if matches!(
            self.status,
            ConsumerStatus::Ok | ConsumerStatus::WaitingForRetry
        ) {
            self.status = ConsumerStatus::Paused;
            self.redeliver_all();
        }
    }

    /// RG.UNPAUSEREGISTRATIONS: true if the registration was paused and must rescan.
    pub fn unpause(&mut self) -> bool {
        if self.status != ConsumerStatus::Paused {
            return false;
        }
        self.status = ConsumerStatus::Ok;
        true
    }

    fn redeliver_all(&mut self) {
        for track in self.streams.values_mut() {
            track.redeliver = true;
        }
    }

    /// Whether the stream `key` runs a batch now (marking it running), arms its timer, or
    /// waits. `force` runs even a partial batch.
    fn decide(&mut self, key: &[u8], rule: &BatchRule, force: bool) -> Next {
        if self.status != ConsumerStatus::Ok || self.stopped {
            return Next::Nothing;
        }
        match self.streams.get_mut(key) {
            Some(track) => decide_track(track, &mut self.next_token, rule, force),
            None => Next::Nothing,
        }
    }
}

/// What one stream of an open registration does now: run a batch (`force`, a full batch, or a
/// partial one that waited `duration`), arm the partial-batch timer (taking a token from
/// `next_token`), or nothing.
fn decide_track(track: &mut Track, next_token: &mut u64, rule: &BatchRule, force: bool) -> Next {
    if track.running {
        return Next::Nothing;
    }
    let timed = !rule.duration.is_zero() && track.pending > 0;
    // Reading the clock only when a duration applies: most XADDs of a busy stream need none.
    let waited = match (timed, track.oldest) {
        (true, Some(oldest)) => oldest.elapsed(),
        _ => Duration::ZERO,
    };
    if force || track.pending >= rule.batch_size() || (timed && waited >= rule.duration) {
        track.running = true;
        track.timer = None;
        return Next::Run {
            redeliver: std::mem::take(&mut track.redeliver),
        };
    }
    if timed && track.timer.is_none() {
        let token = *next_token;
        *next_token += 1;
        track.timer = Some(token);
        return Next::Arm {
            delay: rule.duration - waited,
            token,
        };
    }
    Next::Nothing
}

/// A stream id `ms-seq` as numbers.
pub fn parse_id(id: &[u8]) -> Option<(u64, u64)> {
    let (ms, seq) = std::str::from_utf8(id).ok()?.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// The smallest id after `id`: XTRIM MINID takes it to drop `id` and all before.
pub fn id_after(id: &[u8]) -> Option<Vec<u8>> {
    let (ms, seq) = parse_id(id)?;
    Some(
        match seq.checked_add(1) {
            Some(seq) => format!("{ms}-{seq}"),
            None => format!("{}-0", ms.checked_add(1)?),
        }
        .into_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(batch: u64, duration_ms: u64, policy: FailurePolicy) -> BatchRule {
        BatchRule {
            batch,
            duration: Duration::from_millis(duration_ms),
            policy,
        }
    }

    const S: &[u8] = b"s";

    #[test]
    fn a_new_stream_counts_its_entries_and_runs_when_full() {
        let mut state = ConsumerState::default();
        let r = rule(3, 0, FailurePolicy::Continue);
        assert_eq!(state.arrived(S, || 2, &r), Next::Nothing);
        assert_eq!(
            state.arrived(S, || unreachable!(), &r),
            Next::Run { redeliver: true }
        );
        // One batch per stream at a time.
        assert_eq!(state.arrived(S, || 0, &r), Next::Nothing);
        state.was_read(S, 3, false);
        let after = state.batch_ended(S, BatchEnd::Succeeded, &r);
        assert!(after.acknowledge);
        // The entry that came during the batch waits for two more.
        assert_eq!(after.next, Next::Nothing);
        state.arrived(S, || 0, &r);
        assert_eq!(state.arrived(S, || 0, &r), Next::Run { redeliver: false });
    }

    #[test]
    fn a_read_that_caught_up_leaves_nothing_pending() {
        let mut state = ConsumerState::default();
        let r = rule(1, 0, FailurePolicy::Continue);
        // XLEN overstated what is unread (entries processed before a restart, not trimmed).
        assert_eq!(
            state.rescanned(S, 10, false, &r),
            Next::Run { redeliver: true }
        );
        state.was_read(S, 0, true);
        assert_eq!(
            state.batch_ended(S, BatchEnd::Succeeded, &r).next,
            Next::Nothing
        );
    }

    #[test]
    fn a_partial_batch_waits_for_its_duration_once() {
        let mut state = ConsumerState::default();
        let r = rule(10, 50, FailurePolicy::Continue);
        let Next::Arm { delay, token } = state.arrived(S, || 1, &r) else {
            panic!("expected a timer");
        };
        assert!(delay <= Duration::from_millis(50));
        assert_eq!(state.arrived(S, || 0, &r), Next::Nothing, "armed once");
        assert_eq!(
            state.timer_fired(S, token + 1, &r),
            Next::Nothing,
            "stale token"
        );
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(
            state.timer_fired(S, token, &r),
            Next::Run { redeliver: true }
        );
        // Without a duration a partial batch just waits.
        let mut state = ConsumerState::default();
        let r = rule(10, 0, FailurePolicy::Continue);
        assert_eq!(state.arrived(S, || 1, &r), Next::Nothing);
    }

    #[test]
    fn continue_acknowledges_a_failed_batch() {
        let mut state = ConsumerState::default();
        let r = rule(1, 0, FailurePolicy::Continue);
        state.arrived(S, || 1, &r);
        let after = state.batch_ended(S, BatchEnd::Failed("boom"), &r);
        assert!(after.acknowledge);
        assert_eq!(after.retry, None);
        assert_eq!(state.status(), ConsumerStatus::Ok);
    }

    #[test]
    fn abort_stops_everything() {
        let mut state = ConsumerState::default();
        let r = rule(1, 0, FailurePolicy::Abort);
        state.arrived(S, || 1, &r);
        let after = state.batch_ended(S, BatchEnd::Failed("boom"), &r);
        assert!(!after.acknowledge);
        assert_eq!(state.status(), ConsumerStatus::Aborted);
        assert_eq!(state.arrived(S, || 0, &r), Next::Nothing);
        assert!(!state.unpause(), "an aborted registration stays aborted");
    }

    #[test]
    fn retry_waits_then_delivers_again() {
        let mut state = ConsumerState::default();
        let r = rule(1, 0, FailurePolicy::Retry);
        state.arrived(S, || 1, &r);
        let after = state.batch_ended(S, BatchEnd::Failed("boom"), &r);
        assert!(!after.acknowledge);
        let token = after.retry.expect("a retry timer");
        assert_eq!(state.status(), ConsumerStatus::WaitingForRetry);
        assert_eq!(state.arrived(S, || 0, &r), Next::Nothing);
        assert!(!state.retry_due(token + 1));
        assert!(state.retry_due(token));
        assert_eq!(
            state.rescanned(S, 2, true, &r),
            Next::Run { redeliver: true }
        );
    }

    #[test]
    fn pause_errors_and_commands() {
        let mut state = ConsumerState::default();
        let r = rule(1, 0, FailurePolicy::Continue);
        state.arrived(S, || 1, &r);
        let after = state.batch_ended(S, BatchEnd::Failed("PAUSE please"), &r);
        assert!(
            !after.acknowledge,
            "a PAUSE error keeps the entries, whatever the policy"
        );
        assert_eq!(state.status(), ConsumerStatus::Paused);
        assert!(state.unpause());
        assert!(
            !state.unpause(),
            "unpausing a running registration is a no-op"
        );
        state.pause();
        state.pause();
        assert_eq!(state.status(), ConsumerStatus::Paused);
        state.stop();
        assert!(state.unpause());
        assert_eq!(state.rescanned(S, 1, true, &r), Next::Nothing, "stopped");
    }

    #[test]
    fn an_aborted_batch_is_delivered_again_without_the_policy() {
        let mut state = ConsumerState::default();
        let r = rule(1, 0, FailurePolicy::Abort);
        state.arrived(S, || 1, &r);
        // Aborted before it read anything: the entry is still unread.
        let after = state.batch_ended(S, BatchEnd::Aborted, &r);
        assert!(!after.acknowledge);
        assert_eq!(state.status(), ConsumerStatus::Ok);
        assert_eq!(after.next, Next::Run { redeliver: true });
    }

    #[test]
    fn ids() {
        assert_eq!(id_after(b"5-3").unwrap(), b"5-4");
        assert_eq!(
            id_after(format!("7-{}", u64::MAX).as_bytes()).unwrap(),
            b"8-0"
        );
        assert_eq!(parse_id(b"1700000000000-2"), Some((1_700_000_000_000, 2)));
        assert_eq!(parse_id(b"x"), None);
        assert_eq!(FailurePolicy::parse("ReTrY"), Some(FailurePolicy::Retry));
        assert_eq!(FailurePolicy::parse("stop"), None);
    }
}
