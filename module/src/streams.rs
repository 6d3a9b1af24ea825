//! StreamReader registrations (readers.md §4.3), the Redis side: XADD notifications, scans of
//! the keyspace, batches through the consumer group, acknowledging and trimming, timers. When
//! what runs is decided by `dataflow::stream_consumer`.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dataflow::keys::prefix_matches;
use dataflow::stream_consumer::{
    id_after, parse_id, BatchEnd, BatchRule, ConsumerState, ConsumerStatus, FailurePolicy, Next,
};
use dataflow::Status;
use redis_module::{Context, KeyType, RedisValue};

use crate::executions::ExecutionEntry;
use crate::readers::scan::ChunkedScan;
use crate::readers::stream::{GroupReader, ReadBatch, GROUP};
use crate::redis_calls::{self, CallReply};
use crate::registrations::{self, Mode, Registration, Trigger};
use crate::{runner, threads, timers};

/// What fires a StreamReader registration.
#[derive(Debug, Clone)]
pub struct StreamTrigger {
    pub prefix: Vec<u8>,
    pub rule: BatchRule,
    pub retry_interval_secs: u64,
    /// Delete the entries once acknowledged.
    pub trim: bool,
}

impl StreamTrigger {
    pub fn policy(&self) -> FailurePolicy {
        self.rule.policy
    }
}

/// The consuming state of a StreamReader registration.
#[derive(Debug, Default)]
pub struct Consumer {
    state: Mutex<ConsumerState>,
}

impl Consumer {
    fn lock(&self) -> MutexGuard<'_, ConsumerState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn status(&self) -> ConsumerStatus {
        self.lock().status()
    }

    /// The registration was removed: nothing starts any more.
    pub fn stop(&self) {
        self.lock().stop();
    }
}

fn stream_trigger(registration: &Registration) -> Option<(&StreamTrigger, &Arc<Consumer>)> {
    match (&registration.trigger, &registration.consumer) {
        (Trigger::Stream(trigger), Some(consumer)) => Some((trigger, consumer)),
        _ => None,
    }
}

/// An `xadd` notification (main thread, Redis lock held): every stream registration whose
/// prefix takes `key` counts the entry and may run a batch.
pub fn on_xadd(ctx: &Context, key: &[u8]) {
    for registration in registrations::all().iter() {
        let Some((trigger, consumer)) = stream_trigger(registration) else {
            continue;
        };
        if !prefix_matches(&trigger.prefix, key) {
            continue;
        }
        let next = consumer
            .lock()
            .arrived(key, || stream_length(ctx, key), &trigger.rule);
        follow(registration, key, next, Some(ctx));
    }
}

/// Tracks every stream matching the registration's prefix (as a glob) and runs what is due:
/// on registration, after a retry interval and on unpause. Runs on the management thread, the
/// keyspace walked in chunks.
pub fn track_existing(registration: &Arc<Registration>) {
    let registration = registration.clone();
    if !threads::run_management(move || scan_streams(&registration)) {
        redis_calls::log(
            "warning",
            "could not queue the scan of a stream registration",
        );
    }
}

fn scan_streams(registration: &Arc<Registration>) {
    let Some((trigger, consumer)) = stream_trigger(registration) else {
        return;
    };
    let mut scan = ChunkedScan::new(trigger.prefix.clone());
    while let Some(chunk) = scan.next_chunk(|_, name, key| {
        key.filter(|k| k.key_type() == KeyType::Stream)
            .map(|_| name.as_slice().to_vec())
    }) {
        let streams: Vec<Vec<u8>> = chunk.into_iter().flatten().collect();
        if streams.is_empty() {
            continue;
        }
        scan.with_lock(|ctx| {
            for key in streams {
                let (length, unacknowledged) =
                    (stream_length(ctx, &key), unacknowledged(ctx, &key) > 0);
                let next = consumer
                    .lock()
                    .rescanned(&key, length, unacknowledged, &trigger.rule);
                follow(registration, &key, next, Some(ctx));
            }
        });
    }
}

fn stream_length(ctx: &Context, key: &[u8]) -> u64 {
    match ctx.call("XLEN", &[key]) {
        Ok(RedisValue::Integer(n)) => n.max(0) as u64,
        _ => 0,
    }
}

/// Entries the group delivered and nobody acknowledged (XPENDING's count); 0 without a group.
fn unacknowledged(ctx: &Context, key: &[u8]) -> u64 {
    match ctx.call("XPENDING", &[key, GROUP.as_bytes()]) {
        Ok(RedisValue::Array(summary)) => match summary.first() {
            Some(RedisValue::Integer(n)) => (*n).max(0) as u64,
            _ => 0,
        },
        _ => 0,
    }
}

/// Carries out `next` for the stream `key`. `ctx` is the Redis lock the caller holds, if any;
/// a `sync` registration's batch runs inline under it.
fn follow(registration: &Arc<Registration>, key: &[u8], next: Next, ctx: Option<&Context>) {
    match next {
        Next::Nothing => {}
        Next::Arm { delay, token } => arm_duration(registration, key, delay, token),
        Next::Run { redeliver } => match (registration.mode, ctx) {
            (Mode::Sync, Some(ctx)) => run_inline(registration, key, redeliver, ctx),
            (Mode::Sync, None) => {
                redis_calls::with_redis_lock(|ctx| run_inline(registration, key, redeliver, ctx))
            }
            (Mode::Async | Mode::AsyncLocal, _) => queue(registration, key, redeliver),
        },
    }
}

/// The reader of the next batch of `key`, and where it leaves what it read.
fn reader(
    registration: &Arc<Registration>,
    key: &[u8],
    redeliver: bool,
) -> (GroupReader, Arc<Mutex<ReadBatch>>) {
    let read = Arc::new(Mutex::new(ReadBatch::default()));
    let (consumer, slot, stream) = (registration.consumer.clone(), read.clone(), key.to_vec());
    let count = stream_trigger(registration).map_or(1, |(t, _)| t.rule.batch_size()) as usize;
    let on_read = Box::new(move |batch: ReadBatch| {
        if let Some(consumer) = consumer {
            consumer
                .lock()
                .was_read(&stream, batch.new_entries as u64, batch.caught_up);
        }
        *slot.lock().unwrap_or_else(|e| e.into_inner()) = batch;
    });
    (
        GroupReader::new(key.to_vec(), count, redeliver, on_read),
        read,
    )
}

fn taken(read: &Mutex<ReadBatch>) -> ReadBatch {
    std::mem::take(&mut *read.lock().unwrap_or_else(|e| e.into_inner()))
}

/// A `sync` registration's batches, run one after another right here while more are due.
fn run_inline(registration: &Arc<Registration>, key: &[u8], redeliver: bool, ctx: &Context) {
    let mut redeliver = redeliver;
    loop {
        registration.triggered();
        let (reader, read) = reader(registration, key, redeliver);
        let entry = runner::run_inline(registration, ctx, Box::new(reader), None, None, false);
        match settle(registration, ctx, key, &taken(&read), &entry) {
            Next::Run { redeliver: again } => redeliver = again,
            other => return follow(registration, key, other, Some(ctx)),
        }
    }
}

/// A batch on the registration's queue; what follows it is decided when it ended.
fn queue(registration: &Arc<Registration>, key: &[u8], redeliver: bool) {
    registration.triggered();
    let (reader, read) = reader(registration, key, redeliver);
    let (then_registration, stream) = (registration.clone(), key.to_vec());
    let after = move |entry: &Arc<ExecutionEntry>| {
        let next = redis_calls::with_redis_lock(|ctx| {
            settle(&then_registration, ctx, &stream, &taken(&read), entry)
        });
        follow(&then_registration, &stream, next, None);
    };
    if runner::start_for_then(registration, Box::new(reader), Box::new(after)).is_none() {
        if let Some((_, consumer)) = stream_trigger(registration) {
            consumer.lock().not_started(key);
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Acknowledges `ids` in the group and, with `trim`, deletes them and everything older.
/// (By id, not XTRIM MAXLEN <unread>: a count that is off by one would delete an unread entry.)
fn acknowledge(ctx: &Context, key: &[u8], ids: &[Vec<u8>], trim: bool) {
    let mut args: Vec<&[u8]> = Vec::with_capacity(ids.len() + 2);
    args.extend([key, GROUP.as_bytes()]);
    args.extend(ids.iter().map(Vec::as_slice));
    match redis_calls::call_read(ctx, "XACK", &args, redis_calls::own) {
        Ok(CallReply::Integer(n)) if n > 0 => {}
        // Nothing acknowledged: the stream went (and may be back, new, with entries whose ids
        // can equal the old ones): trimming by id would lose them.
        Ok(_) => return,
        Err(e) => {
            redis_calls::log("warning", &format!("XACK failed: {}", e.trim_end()));
            return;
        }
    }
    let newest = ids.iter().max_by_key(|id| parse_id(id));
    if let (true, Some(threshold)) = (trim, newest.and_then(|id| id_after(id))) {
        let args = [key.to_vec(), b"MINID".to_vec(), threshold];
        if let Err(e) = redis_calls::call_with(ctx, "XTRIM", &args) {
            redis_calls::log("warning", &format!("XTRIM failed: {}", e.trim_end()));
        }
    }
}

/// After a batch of `key` ended (Redis lock held): acknowledge it or apply the failure policy,
/// then say what runs next.
fn settle(
    registration: &Arc<Registration>,
    ctx: &Context,
    key: &[u8],
    read: &ReadBatch,
    entry: &Arc<ExecutionEntry>,
) -> Next {
    let Some((trigger, consumer)) = stream_trigger(registration) else {
        return Next::Nothing;
    };
    if let Some((first_ms, _)) = read.ids.first().and_then(|id| parse_id(id)) {
        registration.record_lag(now_ms().saturating_sub(first_ms));
    }
    let first_error = entry.outcome().and_then(|o| o.errors.first().cloned());
    let end = match (&first_error, entry.status()) {
        (_, Status::Aborted) => BatchEnd::Aborted,
        (Some(error), _) => BatchEnd::Failed(error),
        (None, _) => BatchEnd::Succeeded,
    };
    let after = consumer.lock().batch_ended(key, end, &trigger.rule);
    if after.acknowledge && !read.ids.is_empty() {
        acknowledge(ctx, key, &read.ids, trigger.trim);
    }
    if let Some(token) = after.retry {
        arm_retry(registration, trigger.retry_interval_secs, token);
    }
    after.next
}

/// Runs the partial batch of `key` once `delay` passed, unless a batch ran meanwhile.
fn arm_duration(registration: &Arc<Registration>, key: &[u8], delay: Duration, token: u64) {
    let (registration, key) = (registration.clone(), key.to_vec());
    timers::after(delay, move || {
        let Some((trigger, consumer)) = stream_trigger(&registration) else {
            return;
        };
        let next = consumer.lock().timer_fired(&key, token, &trigger.rule);
        follow(&registration, &key, next, None);
    });
}

/// Ends WAITING_FOR_RETRY_ON_FAILURE after `seconds`: the registration rescans and delivers
/// again what failed.
fn arm_retry(registration: &Arc<Registration>, seconds: u64, token: u64) {
    let registration = registration.clone();
    timers::after(Duration::from_secs(seconds), move || {
        let due = stream_trigger(&registration).is_some_and(|(_, c)| c.lock().retry_due(token));
        if due {
            track_existing(&registration);
        }
    });
}

/// RG.PAUSEREGISTRATIONS: no new batch starts (one running ends and is acknowledged).
pub fn pause(registration: &Arc<Registration>) {
    if let Some((_, consumer)) = stream_trigger(registration) {
        consumer.lock().pause();
    }
}

/// RG.UNPAUSEREGISTRATIONS: a paused registration rescans and goes on where it stopped.
pub fn unpause(registration: &Arc<Registration>) {
    let unpaused = stream_trigger(registration).is_some_and(|(_, c)| c.lock().unpause());
    if unpaused {
        track_existing(registration);
    }
}
