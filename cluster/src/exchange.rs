//! One shard's side of a distributed execution (sessions-and-cluster.md C.5): where each record
//! of a `collect` or `repartition` step goes, the batches of records and the "done" notices
//! shards send each other, and the end of every shard's part, which the initiator waits for.
//! The transport is a trait: the module sends through its peer threads, the tests move messages
//! between exchanges in one process.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use dataflow::wire::{self, put_bytes, take_bytes, take_u32, ObjectCodec, WireError};
use dataflow::{Exchange, ExchangeKind, Record, Wakeup};

use crate::slots::key_slot;
use crate::Topology;

/// Records of a collect, for the initiator.
pub const COLLECT_RECORDS: &str = "ExecutionPlan_CollectOnRecordReceived";
/// A shard sent all its records of a collect.
pub const COLLECT_DONE: &str = "ExecutionPlan_CollectDoneSendingRecords";
/// Records of a repartition, for the shard owning their keys.
pub const REPARTITION_RECORDS: &str = "ExecutionPlan_OnRepartitionRecordReceived";
/// A shard sent all its records of a repartition.
pub const REPARTITION_DONE: &str = "ExecutionPlan_DoneRepartition";
/// A shard's part of the execution ended (with the errors it reports).
pub const EXECUTION_ENDED: &str = "ExecutionPlan_NotifyExecutionDone";
/// A shard cannot go on with the execution (it could not create it, or it was aborted there):
/// every shard ends it.
pub const EXECUTION_FAILED: &str = "ExecutionPlan_TeminateExecution";

/// Records are sent in batches of about this many bytes: one message per record would cost a
/// command per record on the receiving shard.
const BATCH_BYTES: usize = 64 * 1024;

/// The fallback text of a record that cannot be encoded (gearsbuilder.md §10).
pub const FAILED_SERIALIZING: &str = "Failed serializing record";

/// Carries a message to another shard; delivery is in order per destination.
pub trait Transport: Send + Sync {
    fn send(&self, to: &str, function: &'static str, payload: Vec<u8>);
}

/// A message about an execution's exchange.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Records { step: usize, batch: Vec<u8> },
    Done { step: usize },
    Ended { errors: Vec<String> },
    Failed { error: String },
}

fn take_text(input: &mut &[u8]) -> Result<String, WireError> {
    Ok(String::from_utf8_lossy(take_bytes(input)?).into_owned())
}

/// The payload of a message about execution `id`.
pub fn encode_message(id: &str, message: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    put_bytes(&mut out, id.as_bytes());
    match message {
        Message::Records { step, batch } => {
            out.extend_from_slice(&(*step as u32).to_le_bytes());
            out.extend_from_slice(batch);
        }
        Message::Done { step } => out.extend_from_slice(&(*step as u32).to_le_bytes()),
        Message::Ended { errors } => {
            out.extend_from_slice(&(errors.len() as u32).to_le_bytes());
            for e in errors {
                put_bytes(&mut out, e.as_bytes());
            }
        }
        Message::Failed { error } => put_bytes(&mut out, error.as_bytes()),
    }
    out
}

/// The execution id and message of a received `function(payload)`; None for a function that
/// is not an exchange message.
pub fn decode_message(
    function: &str,
    payload: &[u8],
) -> Option<Result<(String, Message), WireError>> {
    let kind = match function {
        COLLECT_RECORDS | REPARTITION_RECORDS => 0,
        COLLECT_DONE | REPARTITION_DONE => 1,
        EXECUTION_ENDED => 2,
        EXECUTION_FAILED => 3,
        _ => return None,
    };
    let mut input = payload;
    let decoded = (|| {
        let id = take_text(&mut input)?;
        let message = match kind {
            0 => Message::Records {
                step: take_u32(&mut input)? as usize,
                batch: input.to_vec(),
            },
            1 => Message::Done {
                step: take_u32(&mut input)? as usize,
            },
            3 => Message::Failed {
                error: take_text(&mut input)?,
            },
            _ => {
                let n = take_u32(&mut input)? as usize;
                let mut errors = Vec::with_capacity(n.min(input.len()));
                for _ in 0..n {
                    errors.push(take_text(&mut input)?);
                }
                Message::Ended { errors }
            }
        };
        Ok((id, message))
    })();
    Some(decoded)
}

/// The function a message is sent as, by its step's kind.
fn function_of(message: &Message, kind: ExchangeKind) -> &'static str {
    match (message, kind) {
        (Message::Records { .. }, ExchangeKind::Collect) => COLLECT_RECORDS,
        (Message::Records { .. }, ExchangeKind::Repartition) => REPARTITION_RECORDS,
        (Message::Done { .. }, ExchangeKind::Collect) => COLLECT_DONE,
        (Message::Done { .. }, ExchangeKind::Repartition) => REPARTITION_DONE,
        (Message::Ended { .. }, _) => EXECUTION_ENDED,
        (Message::Failed { .. }, _) => EXECUTION_FAILED,
    }
}

/// The records a step received and who said it is done.
#[derive(Default)]
struct Inbox {
    batches: Vec<Vec<u8>>,
    done: HashSet<String>,
}

#[derive(Default)]
struct State {
    /// Encoded records waiting to go, per (step, destination).
    outgoing: HashMap<(usize, String), Vec<u8>>,
    inboxes: HashMap<usize, Inbox>,
    /// The shards whose part ended (the initiator's count).
    ended: HashSet<String>,
    /// The shards heard from about this execution: they have their part.
    heard_from: HashSet<String>,
    peer_errors: Vec<String>,
    /// Since when the execution waits for other shards, and for which; None while it runs.
    waiting: Option<(Instant, Vec<String>)>,
    failure: Option<String>,
}

/// This shard's side of one distributed execution.
pub struct ClusterExchange {
    id: String,
    me: String,
    initiator: String,
    /// Every shard taking part, this one included.
    shards: Vec<String>,
    topology: Arc<Topology>,
    transport: Arc<dyn Transport>,
    codec: Arc<dyn ObjectCodec>,
    wakeup: Arc<Wakeup>,
    max_idle: Duration,
    state: Mutex<State>,
}

impl ClusterExchange {
    /// The exchange of execution `id` on shard `topology.my_id`, started by `initiator`; every
    /// shard of `topology` takes part. `wakeup` resumes the execution when something arrives.
    pub fn new(
        id: String,
        initiator: String,
        topology: Arc<Topology>,
        transport: Arc<dyn Transport>,
        codec: Arc<dyn ObjectCodec>,
        wakeup: Arc<Wakeup>,
        max_idle: Duration,
    ) -> ClusterExchange {
        ClusterExchange {
            id,
            me: topology.my_id.clone(),
            initiator,
            shards: topology.nodes.iter().map(|n| n.id.clone()).collect(),
            topology,
            transport,
            codec,
            wakeup,
            max_idle,
            state: Mutex::default(),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn is_initiator(&self) -> bool {
        self.me == self.initiator
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn peers(&self) -> impl Iterator<Item = &String> {
        self.shards.iter().filter(move |s| **s != self.me)
    }

    fn send(&self, to: &str, kind: ExchangeKind, message: Message) {
        let function = function_of(&message, kind);
        let payload = encode_message(&self.id, &message);
        self.transport.send(to, function, payload);
    }

    /// The shards whose records `step` of `kind` receives.
    fn senders(&self, kind: ExchangeKind) -> Vec<String> {
        match kind {
            ExchangeKind::Collect if !self.is_initiator() => Vec::new(),
            _ => self.peers().cloned().collect(),
        }
    }

    /// A message from shard `sender`: kept, and the execution woken.
    pub fn deliver(&self, sender: &str, message: Message) {
        {
            let mut state = self.lock();
            if !state.heard_from.contains(sender) {
                state.heard_from.insert(sender.to_string());
            }
            match message {
                Message::Records { step, batch } => {
                    state.inboxes.entry(step).or_default().batches.push(batch)
                }
                Message::Done { step } => {
                    state
                        .inboxes
                        .entry(step)
                        .or_default()
                        .done
                        .insert(sender.to_string());
                }
                Message::Ended { errors } => {
                    state.ended.insert(sender.to_string());
                    state.peer_errors.extend(errors);
                }
                Message::Failed { error } => {
                    state.failure.get_or_insert(error);
                }
            }
            // Heard from: the idle clock starts again.
            if let Some((since, _)) = &mut state.waiting {
                *since = Instant::now();
            }
        }
        self.wakeup.wake();
    }

    /// Ends the execution with `Execution max idle reached` if it waited for other shards
    /// longer than its max idle time, naming the shards it waits for. True if it did.
    pub fn check_idle(&self, now: Instant) -> bool {
        {
            let mut state = self.lock();
            let Some((since, silent)) = &state.waiting else {
                return false;
            };
            if state.failure.is_some() || now.duration_since(*since) < self.max_idle {
                return false;
            }
            let failure = format!(
                "Execution max idle reached, no answer from shard {}",
                silent.join(", ")
            );
            state.failure = Some(failure);
        }
        self.wakeup.wake();
        true
    }

    /// Starts (or keeps) the idle clock: the execution waits for `silent`.
    fn wait_for(state: &mut State, silent: Vec<String>) {
        match &mut state.waiting {
            Some((_, waited)) => *waited = silent,
            None => state.waiting = Some((Instant::now(), silent)),
        }
    }

    /// Ends the execution here with `error` and tells every other shard to end it too.
    pub fn fail_everywhere(&self, error: &str) {
        self.lock().failure.get_or_insert_with(|| error.to_string());
        for peer in self.peers() {
            self.send(
                peer,
                ExchangeKind::Collect,
                Message::Failed {
                    error: error.to_string(),
                },
            );
        }
        self.wakeup.wake();
    }

    /// (shards known to have their part, shards whose part ended), other than this one: what
    /// RG.GETEXECUTION shows as `shards_received` and `shards_completed` on the initiator.
    pub fn shard_counts(&self) -> (usize, usize) {
        let state = self.lock();
        (state.heard_from.len(), state.ended.len())
    }

    fn flush(&self, step: usize, kind: ExchangeKind, to: &str, batch: Vec<u8>) {
        if !batch.is_empty() {
            self.send(to, kind, Message::Records { step, batch });
        }
    }

    /// Appends `record` to the batch for `to`, sending the batch once it is big enough.
    fn ship(&self, step: usize, kind: ExchangeKind, to: String, record: Record) {
        let mut encoded = Vec::new();
        if let Err(e) = wire::encode(&record, self.codec.as_ref(), &mut encoded) {
            let text = if e.is_empty() {
                FAILED_SERIALIZING.into()
            } else {
                e
            };
            let _ = wire::encode(&Record::Error(text), self.codec.as_ref(), &mut encoded);
        }
        let full = {
            let mut state = self.lock();
            let batch = state.outgoing.entry((step, to.clone())).or_default();
            batch.extend_from_slice(&encoded);
            if batch.len() >= BATCH_BYTES {
                Some(std::mem::take(batch))
            } else {
                None
            }
        };
        if let Some(batch) = full {
            self.flush(step, kind, &to, batch);
        }
    }
}

impl Exchange for ClusterExchange {
    fn route(&self, step: usize, kind: ExchangeKind, record: Record) -> Option<Record> {
        let to = match kind {
            ExchangeKind::Collect => &self.initiator,
            ExchangeKind::Repartition => match &record {
                // Errors stay where they happened.
                Record::KeyValue { key, .. } => {
                    match self.topology.owner_of(key_slot(key.as_bytes())) {
                        Some(owner) => &owner.id,
                        None => &self.me,
                    }
                }
                _ => &self.me,
            },
        };
        if *to == self.me {
            return Some(record);
        }
        self.ship(step, kind, to.clone(), record);
        None
    }

    fn done_sending(&self, step: usize, kind: ExchangeKind) {
        let batches: Vec<(String, Vec<u8>)> = {
            let mut state = self.lock();
            let keys: Vec<(usize, String)> = state
                .outgoing
                .keys()
                .filter(|(s, _)| *s == step)
                .cloned()
                .collect();
            keys.into_iter()
                .filter_map(|k| state.outgoing.remove(&k).map(|b| (k.1, b)))
                .collect()
        };
        for (to, batch) in batches {
            self.flush(step, kind, &to, batch);
        }
        let receivers: Vec<String> = match kind {
            ExchangeKind::Collect if self.is_initiator() => Vec::new(),
            ExchangeKind::Collect => vec![self.initiator.clone()],
            ExchangeKind::Repartition => self.peers().cloned().collect(),
        };
        for to in receivers {
            self.send(&to, kind, Message::Done { step });
        }
    }

    fn receive(&self, step: usize, kind: ExchangeKind, into: &mut Vec<Record>) -> bool {
        let senders = self.senders(kind);
        let (batches, all_done) = {
            let mut state = self.lock();
            let inbox = state.inboxes.entry(step).or_default();
            let batches = std::mem::take(&mut inbox.batches);
            let silent: Vec<String> = senders
                .iter()
                .filter(|s| !inbox.done.contains(*s))
                .cloned()
                .collect();
            let all_done = silent.is_empty();
            if all_done {
                state.waiting = None;
            } else {
                Self::wait_for(&mut state, silent);
            }
            (batches, all_done)
        };
        for batch in batches {
            let mut input = batch.as_slice();
            while !input.is_empty() {
                match wire::decode(&mut input, self.codec.as_ref()) {
                    Ok(record) => into.push(record),
                    Err(e) => {
                        into.push(Record::Error(format!("Failed deserializing record: {e}")));
                        break;
                    }
                }
            }
        }
        all_done
    }

    fn local_ended(&self) {
        if !self.is_initiator() {
            self.send(
                &self.initiator,
                ExchangeKind::Collect,
                Message::Ended { errors: Vec::new() },
            );
        }
    }

    fn all_ended(&self, errors: &mut Vec<String>) -> bool {
        if !self.is_initiator() {
            return true;
        }
        let mut state = self.lock();
        let silent: Vec<String> = self
            .peers()
            .filter(|s| !state.ended.contains(*s))
            .cloned()
            .collect();
        if !silent.is_empty() {
            Self::wait_for(&mut state, silent);
            return false;
        }
        state.waiting = None;
        errors.append(&mut state.peer_errors);
        true
    }

    fn failure(&self) -> Option<String> {
        self.lock().failure.clone()
    }
}

/// Ids of ended executions remembered, so that a late message for one is dropped rather than
/// kept for an execution that will never come.
const REMEMBERED_ENDED: usize = 10_000;

/// The exchanges of this shard's distributed executions, by execution id, with the messages
/// that arrived before their execution was created here (a repartition batch from a shard that
/// started sooner).
#[derive(Default)]
pub struct Registry {
    live: HashMap<String, Arc<ClusterExchange>>,
    early: HashMap<String, (Instant, Vec<(String, Message)>)>,
    ended: HashSet<String>,
    ended_order: VecDeque<String>,
}

impl Registry {
    /// Lists `exchange`, handing it what arrived for it already.
    pub fn insert(&mut self, exchange: Arc<ClusterExchange>) {
        if let Some((_, messages)) = self.early.remove(exchange.id()) {
            for (sender, message) in messages {
                exchange.deliver(&sender, message);
            }
        }
        self.live.insert(exchange.id().to_string(), exchange);
    }

    /// The execution ended here: later messages for it are dropped.
    pub fn remove(&mut self, id: &str) {
        self.live.remove(id);
        self.early.remove(id);
        if self.ended.insert(id.to_string()) {
            self.ended_order.push_back(id.to_string());
            if self.ended_order.len() > REMEMBERED_ENDED {
                if let Some(old) = self.ended_order.pop_front() {
                    self.ended.remove(&old);
                }
            }
        }
    }

    pub fn get(&self, id: &str) -> Option<Arc<ClusterExchange>> {
        self.live.get(id).cloned()
    }

    /// Hands a message to its execution's exchange, or keeps it until the execution exists.
    pub fn deliver(&mut self, id: &str, sender: &str, message: Message) {
        if let Some(exchange) = self.live.get(id) {
            exchange.deliver(sender, message);
        } else if !self.ended.contains(id) {
            self.early
                .entry(id.to_string())
                .or_insert_with(|| (Instant::now(), Vec::new()))
                .1
                .push((sender.to_string(), message));
        }
    }

    /// Ends executions silent past their max idle time; forgets early messages older than
    /// `forget_after` (their execution never came).
    pub fn sweep(&mut self, now: Instant, forget_after: Duration) {
        for exchange in self.live.values() {
            exchange.check_idle(now);
        }
        self.early
            .retain(|_, (since, _)| now.duration_since(*since) < forget_after);
    }
}
