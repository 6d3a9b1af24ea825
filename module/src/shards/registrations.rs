//! Registrations on every shard (sessions-and-cluster.md A.4, C.6; requirements.md §4): a
//! registration batch applied on one shard in cluster mode goes to every other shard, which
//! applies it the way a replica applies RG.INNERREGISTER (and passes it on to its own replicas
//! and AOF); an RG.UNREGISTER likewise. Each shard's copy then fires on that shard's events.
//!
//! The session's requirement wheels go first, from the shard that has them, in pieces, each
//! wheel checked against its sha256 on arrival and installed there: only one shard needs the
//! index. A distributed run whose session has requirements sends them the same way, before the
//! run, and each shard starts its part once they are installed. A shard that joins gets every
//! registration (and its wheels) from each shard that sees it appear.
//!
//! Both ends work on their own thread, one message after another, so the main thread neither
//! reads nor installs wheels, and a batch, its wheels and a later unregister keep their order.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Instant;

use formats::messages::{self, Unregister, WheelPiece, WheelsDone};
use redis_module::Context;
use sha2::{Digest, Sha256};

use super::executions;
use crate::blocked::BlockedClient;
use crate::persist::{self, Batch, BatchExt};
use crate::redis_calls::{log, with_redis_lock};
use crate::reply::Reply;
use crate::reqs::{self, Requirement};

/// Carries an encoded [`Batch`].
pub const BATCH: &str = "RG_InnerRegister";
/// Carries a token and an encoded [`Batch`] whose shard waits for an [`ANSWER`].
pub const ASK: &str = "RG_InnerRegisterAsk";
/// Carries the token of an [`ASK`] and why its batch was not applied (nothing: it was).
pub const ANSWER: &str = "RG_InnerRegisterAnswer";
/// Carries `<id>` or `<id>\0abortpending`.
pub const UNREGISTER: &str = "RG_InnerUnregister";
/// Carries one piece of a requirement's wheel: name, wheel, offset, bytes.
pub const REQ_PUT: &str = "RG_InnerReqPut";
/// Carries a requirement's name and its wheels with their sha256: all pieces were sent.
pub const REQ_DONE: &str = "RG_InnerReqDone";

/// Largest piece of a wheel in one message: small enough that a peer's queue of unacknowledged
/// messages stays small, large enough that a 100 MB wheel is a hundred messages.
const PIECE: usize = 1024 * 1024;

/// What the sending thread does, in order.
enum Outgoing {
    /// A batch (and its session's wheels) to `to`, or to every other shard.
    Batch {
        batch: Batch,
        requirements: Vec<Arc<Requirement>>,
        to: Option<Vec<String>>,
        /// The [`ASK`] token when the sender waits for answers.
        token: Option<u64>,
    },
    Unregister(Vec<u8>),
    /// A distributed run (`ExecutionPlan_OnReceived`) and its session's wheels, to every shard.
    Run {
        payload: Vec<u8>,
        requirements: Vec<Arc<Requirement>>,
    },
}

/// What the receiving thread does, in order of arrival.
struct Incoming {
    sender: String,
    function: &'static str,
    payload: Vec<u8>,
}

static OUTGOING: LazyLock<Mutex<Sender<Outgoing>>> = LazyLock::new(|| {
    let (tx, rx) = channel::<Outgoing>();
    spawn("rg-reg-send", move || {
        for job in rx {
            send(job);
        }
    });
    Mutex::new(tx)
});

static INCOMING: LazyLock<Mutex<Sender<Incoming>>> = LazyLock::new(|| {
    let (tx, rx) = channel::<Incoming>();
    spawn("rg-reg-recv", move || {
        let mut receiving = Receiving::default();
        for message in rx {
            receiving.handle(message);
        }
    });
    Mutex::new(tx)
});

fn spawn(name: &str, work: impl FnOnce() + Send + 'static) {
    if let Err(e) = std::thread::Builder::new().name(name.into()).spawn(work) {
        log("warning", &format!("could not start thread {name}: {e}"));
    }
}

fn queue_out(job: Outgoing) {
    let _ = OUTGOING.lock().unwrap_or_else(|e| e.into_inner()).send(job);
}

/// Sends a batch this shard applied to every other shard (a registration made from a step:
/// nobody waits for it, failures are logged where they happen).
pub fn broadcast_batch(batch: &Batch, requirements: Vec<Arc<Requirement>>) {
    if super::is_cluster() {
        queue_out(Outgoing::Batch {
            batch: batch.clone(),
            requirements,
            to: None,
            token: None,
        });
    }
}

/// The other shards of the cluster, if any.
fn peers() -> Vec<String> {
    match super::topology() {
        Some(t) if t.cluster_mode => t
            .nodes
            .iter()
            .filter(|n| n.id != t.my_id)
            .map(|n| n.id.clone())
            .collect(),
        _ => Vec::new(),
    }
}

pub fn has_peers() -> bool {
    !peers().is_empty()
}

/// An RG.PYEXECUTE waiting for the other shards to apply its batch.
struct Waiting {
    client: BlockedClient,
    shards: BTreeSet<String>,
    errors: Vec<Reply>,
    deadline: Instant,
}

impl Waiting {
    fn answer(self) {
        self.client.reply(if self.errors.is_empty() {
            Reply::ok()
        } else {
            Reply::Array(self.errors)
        });
    }
}

static WAITING: LazyLock<Mutex<HashMap<u64, Waiting>>> = LazyLock::new(Mutex::default);

fn waiting() -> std::sync::MutexGuard<'static, HashMap<u64, Waiting>> {
    WAITING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sends a batch this shard applied (from RG.PYEXECUTE) to every other shard, and answers
/// `client` once each answered (sessions-and-cluster.md A.4): `OK`, or one error per shard that
/// did not apply it (`-ERR shard-<id>: <why>`; a shard silent for PythonInstallReqMaxIdleTime
/// is named as such). There is no rollback: a shard that failed keeps what it had.
pub fn distribute_batch(batch: Batch, requirements: Vec<Arc<Requirement>>, client: BlockedClient) {
    static TOKENS: AtomicU64 = AtomicU64::new(1);
    let token = TOKENS.fetch_add(1, Ordering::Relaxed);
    let shards: BTreeSet<String> = peers().into_iter().collect();
    if shards.is_empty() {
        client.reply(Reply::ok());
        return;
    }
    let deadline = Instant::now() + crate::config::read().install_req_max_idle();
    waiting().insert(
        token,
        Waiting {
            client,
            shards,
            errors: Vec::new(),
            deadline,
        },
    );
    queue_out(Outgoing::Batch {
        batch,
        requirements,
        to: None,
        token: Some(token),
    });
}

/// `RG_InnerRegisterAnswer`: one shard's answer to a batch this shard waits on.
fn answer_received(_ctx: &Context, sender: &str, _function: &str, payload: &[u8]) {
    let Ok((token, error)) = messages::decode_answer(payload) else {
        log("warning", &format!("a broken answer from shard {sender}"));
        return;
    };
    let mut table = waiting();
    let Some(entry) = table.get_mut(&token) else {
        return;
    };
    if !entry.shards.remove(sender) {
        return;
    }
    if let Some(error) = error {
        entry
            .errors
            .push(Reply::error(format!("-ERR shard-{sender}: {error}")));
    }
    if entry.shards.is_empty() {
        let done = table.remove(&token).expect("present");
        drop(table);
        done.answer();
    }
}

/// On the cron: batches waiting past PythonInstallReqMaxIdleTime are answered, each silent shard
/// named.
pub fn sweep() {
    let now = Instant::now();
    let expired: Vec<Waiting> = {
        let mut table = waiting();
        let tokens: Vec<u64> = table
            .iter()
            .filter(|(_, w)| w.deadline <= now)
            .map(|(t, _)| *t)
            .collect();
        tokens.iter().filter_map(|t| table.remove(t)).collect()
    };
    for mut entry in expired {
        for shard in std::mem::take(&mut entry.shards) {
            entry.errors.push(Reply::error(format!(
                "Execution max idle reached, no answer from shard {shard}"
            )));
        }
        entry.answer();
    }
}

/// Sends every registration to each of `peers` (shards that may not have them: they joined
/// the cluster). Applying a batch twice is harmless: it replaces its own registrations.
pub fn send_all_to(peers: &[String]) {
    if peers.is_empty() {
        return;
    }
    for batch in persist::all_batches() {
        let requirements = crate::sessions::live(&batch.session.id)
            .map(|s| s.requirements())
            .unwrap_or_default();
        queue_out(Outgoing::Batch {
            batch,
            requirements,
            to: Some(peers.to_vec()),
            token: None,
        });
    }
}

/// Sends a distributed run whose session needs `requirements` to every other shard, their
/// wheels first.
pub fn broadcast_run(payload: Vec<u8>, requirements: Vec<Arc<Requirement>>) {
    queue_out(Outgoing::Run {
        payload,
        requirements,
    });
}

/// Sends an RG.UNREGISTER this shard applied to every other shard.
pub fn broadcast_unregister(id: &str, abort_pending: bool) {
    if super::is_cluster() {
        let payload = Unregister {
            id: id.to_string(),
            abort_pending,
        };
        queue_out(Outgoing::Unregister(payload.encode()));
    }
}

/// The sending thread's work: wheels, then the batch, to each destination.
fn send(job: Outgoing) {
    let deliver = |to: &Option<Vec<String>>, function: &str, payload: Vec<u8>| match to {
        None => super::broadcast(function, &payload),
        Some(peers) => {
            for peer in peers {
                super::send_to(peer, function, payload.clone());
            }
        }
    };
    let send_all = |requirements: &[Arc<Requirement>], to: &Option<Vec<String>>| {
        for requirement in requirements.iter().filter(|r| r.is_downloaded()) {
            if let Err(e) = send_wheels(requirement, |function, payload| {
                deliver(to, function, payload)
            }) {
                log(
                    "warning",
                    &format!(
                        "requirement '{}' not sent to other shards: {e}",
                        requirement.name
                    ),
                );
            }
        }
    };
    match job {
        Outgoing::Batch {
            batch,
            requirements,
            to,
            token,
        } => {
            send_all(&requirements, &to);
            match token {
                None => deliver(&to, BATCH, batch.encode()),
                Some(token) => deliver(&to, ASK, messages::encode_ask(token, &batch.encode())),
            }
        }
        Outgoing::Unregister(payload) => deliver(&None, UNREGISTER, payload),
        Outgoing::Run {
            payload,
            requirements,
        } => {
            send_all(&requirements, &None);
            deliver(&None, executions::RUN_RECEIVED, payload);
        }
    }
}

/// Sends a requirement's wheels in pieces, then their names and sha256 digests.
fn send_wheels(
    requirement: &Requirement,
    mut deliver: impl FnMut(&str, Vec<u8>),
) -> Result<(), String> {
    let mut done = WheelsDone {
        requirement: requirement.name.clone(),
        wheels: Vec::new(),
    };
    for wheel in requirement.wheels() {
        // Read a piece at a time: a wheel may be larger than what memory should hold.
        let mut file = std::fs::File::open(requirement.base_path.join(&wheel))
            .map_err(|e| format!("{wheel}: {e}"))?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; PIECE];
        let mut offset = 0u64;
        loop {
            let n = reqs::read_full(&mut file, &mut buffer).map_err(|e| format!("{wheel}: {e}"))?;
            if n == 0 && offset > 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            let piece = WheelPiece {
                requirement: requirement.name.clone(),
                wheel: wheel.clone(),
                offset,
                bytes: &buffer[..n],
            };
            deliver(REQ_PUT, piece.encode());
            offset += n as u64;
            if n < PIECE {
                break;
            }
        }
        let digest: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        done.wheels.push((wheel, digest));
    }
    deliver(REQ_DONE, done.encode());
    Ok(())
}

/// The receiving thread's state: requirements that failed to arrive, by (sender, name), so the
/// batch that needs one is refused with the reason.
#[derive(Default)]
struct Receiving {
    failed: HashMap<(String, String), String>,
}

impl Receiving {
    fn handle(&mut self, message: Incoming) {
        let Incoming {
            sender,
            function,
            payload,
        } = message;
        let outcome = match function {
            REQ_PUT => self.put(&sender, &payload),
            REQ_DONE => self.done(&sender, &payload),
            BATCH => self.batch(&sender, &payload),
            ASK => self.ask(&sender, &payload),
            executions::RUN_RECEIVED => self.run(&sender, &payload),
            _ => {
                unregister(&payload);
                Ok(())
            }
        };
        if let Err(e) = outcome {
            log(
                "warning",
                &format!("a message from shard {sender} ({function}) was not applied: {e}"),
            );
        }
    }

    /// Where the pieces of `name`'s wheels from `sender` are collected: one place per sender,
    /// as two shards may send the same requirement at once.
    fn incoming_dir(sender: &str, name: &str) -> PathBuf {
        let key = format!("{sender}\0{name}");
        let digest = reqs_manager::Sha256Hex::of(key.as_bytes());
        reqs::requirements_dir()
            .join(".incoming-shards")
            .join(&digest.as_str()[..16])
    }

    fn put(&mut self, sender: &str, payload: &[u8]) -> Result<(), String> {
        let WheelPiece {
            requirement: name,
            wheel,
            offset,
            bytes,
        } = WheelPiece::decode(payload).map_err(|e| e.to_string())?;
        let key = (sender.to_string(), name.clone());
        if offset == 0 {
            self.failed.remove(&key);
        } else if self.failed.contains_key(&key) {
            return Ok(());
        }
        let dir = Self::incoming_dir(sender, &name);
        let written = reqs::write_piece(&dir, &wheel, offset, bytes);
        if let Err(e) = &written {
            let _ = std::fs::remove_dir_all(&dir);
            self.failed.insert(key, e.clone());
        }
        written
    }

    fn done(&mut self, sender: &str, payload: &[u8]) -> Result<(), String> {
        let WheelsDone {
            requirement: name,
            wheels,
        } = WheelsDone::decode(payload).map_err(|e| e.to_string())?;
        let key = (sender.to_string(), name.clone());
        let dir = Self::incoming_dir(sender, &name);
        if let Some(reason) = self.failed.get(&key) {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(format!("requirement '{name}' did not arrive: {reason}"));
        }
        let installed = reqs::install_received(&name, &dir, &wheels);
        let _ = std::fs::remove_dir_all(&dir);
        match installed {
            Ok(Some(requirement)) => {
                // This shard's replicas and AOF need the wheels before the batch that uses them.
                with_redis_lock(|ctx| reqs::propagate(ctx, &[requirement]));
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => {
                self.failed.insert(key, e.clone());
                Err(e)
            }
        }
    }

    /// Why the requirements `names` from `sender` are not here, if one did not arrive.
    fn missing(&self, sender: &str, names: &[String]) -> Result<(), String> {
        for name in names {
            if let Some(reason) = self.failed.get(&(sender.to_string(), name.clone())) {
                return Err(format!(
                    "Failed deserializing session, {} ({name}: {reason})",
                    reqs::INSTALL_FAILED
                ));
            }
        }
        Ok(())
    }

    /// A run whose requirements came before it: started now they are installed, or ended
    /// everywhere with the reason one is not.
    fn run(&mut self, sender: &str, payload: &[u8]) -> Result<(), String> {
        let run = executions::ReceivedRun::decode(payload).map_err(|e| e.to_string())?;
        match self.missing(sender, &run.requirements) {
            Ok(()) => executions::start_received(run, sender),
            Err(e) => executions::fail_unstarted(&run.id, sender, &e),
        }
        Ok(())
    }

    /// A batch whose sender waits: applied, then answered with why not if it was not.
    fn ask(&mut self, sender: &str, payload: &[u8]) -> Result<(), String> {
        let (token, batch) = messages::decode_ask(payload).map_err(|e| e.to_string())?;
        let applied = self.batch(sender, batch);
        let answer = messages::encode_answer(token, applied.as_ref().err().map(String::as_str));
        super::send_to(sender, ANSWER, answer);
        applied
    }

    fn batch(&mut self, sender: &str, payload: &[u8]) -> Result<(), String> {
        let batch = persist::decode_batch(payload)?;
        self.missing(sender, &batch.session.requirements)?;
        with_redis_lock(|ctx| {
            batch.apply(ctx)?;
            batch.replicate(ctx);
            Ok(())
        })
    }
}

fn unregister(payload: &[u8]) {
    let Unregister { id, abort_pending } = Unregister::decode(payload);
    with_redis_lock(|ctx| {
        if persist::unregister(&id, abort_pending) {
            persist::replicate_unregister(ctx, &id, abort_pending);
        }
    });
}

/// Hands a message to the receiving thread (the main thread only queues it).
pub fn received(_ctx: &Context, sender: &str, function: &str, payload: &[u8]) {
    let function = match function {
        BATCH => BATCH,
        ASK => ASK,
        UNREGISTER => UNREGISTER,
        REQ_PUT => REQ_PUT,
        executions::RUN_RECEIVED => executions::RUN_RECEIVED,
        _ => REQ_DONE,
    };
    let _ = INCOMING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send(Incoming {
            sender: sender.to_string(),
            function,
            payload: payload.to_vec(),
        });
}

/// Receives `function`'s messages, if it is one of these.
pub fn handler(function: &str) -> Option<super::Handler> {
    match function {
        ANSWER => Some(answer_received),
        BATCH | ASK | UNREGISTER | REQ_PUT | REQ_DONE => Some(received),
        _ => None,
    }
}
