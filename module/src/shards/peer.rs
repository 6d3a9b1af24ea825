//! One other shard, reached over its Redis port by a thread of its own: it connects (AUTH when
//! the topology has a password, the topology first when the peer said it has none), says
//! `RG.HELLO`, then sends the queued messages pipelined and matches the replies in order. A
//! dropped connection is made again a second later and what was not acknowledged goes again.
//! Nothing here runs on the Redis main thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use cluster::{Node, Outbox};
use redis::{ConnectionAddr, Value};

use crate::redis_calls::log;

/// How long to wait before connecting again, and the longest an idle thread sleeps.
const RETRY: Duration = Duration::from_secs(1);
/// A reply slower than this drops the connection (the messages go again; the receiver drops
/// the duplicates).
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// The most messages written before their replies are read.
const PIPELINE: usize = 512;

#[derive(Default)]
struct PeerState {
    outbox: Outbox,
    /// The peer's run id from its last `RG.HELLO`.
    run_id: Option<String>,
    /// The peer answered `ERRCLUSTER`: send it our topology first (RG.CLUSTERSET topologies).
    needs_topology: bool,
}

/// What a peer thread says about this shard, read again on every connection.
pub struct Identity {
    pub my_id: String,
    pub my_run_id: String,
    /// `RG.CLUSTERSETFROMSHARD` arguments (argv[0] excluded) for a peer without topology.
    pub cluster_set: Option<Vec<Vec<u8>>>,
}

pub struct Peer {
    pub node: Node,
    state: Mutex<PeerState>,
    wake: Condvar,
    stopped: AtomicBool,
}

impl Peer {
    fn lock(&self) -> MutexGuard<'_, PeerState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the peer's thread; `identity` is read on each connection.
    pub fn start(node: Node, identity: fn() -> Option<Identity>) -> Arc<Peer> {
        let peer = Arc::new(Peer {
            node,
            state: Mutex::new(PeerState::default()),
            wake: Condvar::new(),
            stopped: AtomicBool::new(false),
        });
        let running = peer.clone();
        let name = format!("gears-peer-{}", &peer.node.id[..8.min(peer.node.id.len())]);
        if let Err(e) = std::thread::Builder::new()
            .name(name)
            .spawn(move || running.run(identity))
        {
            log("warning", &format!("could not start a peer thread: {e}"));
        }
        peer
    }

    /// Queues a message for the peer.
    pub fn send(&self, function: &str, payload: Vec<u8>) {
        self.lock().outbox.push(function, payload);
        self.wake.notify_all();
    }

    /// Ends the thread (the peer left the topology); queued messages are dropped.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.wake.notify_all();
    }

    pub fn run_id(&self) -> Option<String> {
        self.lock().run_id.clone()
    }

    pub fn pending_messages(&self) -> usize {
        self.lock().outbox.len()
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Sleeps `duration` unless stopped meanwhile.
    fn pause(&self, duration: Duration) {
        let state = self.lock();
        if !self.is_stopped() {
            let _ = self.wake.wait_timeout(state, duration);
        }
    }

    fn run(self: Arc<Self>, identity: fn() -> Option<Identity>) {
        while !self.is_stopped() {
            let Some(me) = identity() else {
                self.pause(RETRY);
                continue;
            };
            match self.connect(&me) {
                Ok(mut con) => self.serve(&mut con, &me),
                Err(e) => log(
                    "verbose",
                    &format!(
                        "could not reach shard {} at {}:{}: {e}",
                        self.node.id, self.node.host, self.node.port
                    ),
                ),
            }
            self.pause(RETRY);
        }
    }

    /// Connects and shakes hands; Err with the reason when the peer cannot be used yet.
    fn connect(&self, me: &Identity) -> Result<redis::Connection, String> {
        let address = ConnectionAddr::Tcp(self.node.host.clone(), self.node.port);
        let client = redis::Client::open(address).map_err(|e| e.to_string())?;
        let mut con = client
            .get_connection_with_timeout(RETRY)
            .map_err(|e| e.to_string())?;
        con.set_read_timeout(Some(REPLY_TIMEOUT))
            .map_err(|e| e.to_string())?;
        con.set_write_timeout(Some(REPLY_TIMEOUT))
            .map_err(|e| e.to_string())?;
        let auth = self
            .node
            .password
            .clone()
            .map(|p| (None, p))
            .or_else(crate::shards::cluster_auth);
        if let Some((user, password)) = auth {
            let mut cmd = redis::cmd("AUTH");
            if let Some(user) = user {
                cmd.arg(user);
            }
            cmd.arg(password);
            request(&mut con, &cmd)?;
        }
        let needs_topology = self.lock().needs_topology;
        if let (true, Some(args)) = (needs_topology, &me.cluster_set) {
            let mut cmd = redis::cmd("RG.CLUSTERSETFROMSHARD");
            for (i, arg) in args.iter().enumerate() {
                // argv[6] of the command is the receiving shard's own id.
                if i == 5 {
                    cmd.arg(self.node.id.as_bytes());
                } else {
                    cmd.arg(arg.as_slice());
                }
            }
            request(&mut con, &cmd)?;
        }
        match request(&mut con, &redis::cmd("RG.HELLO"))? {
            Answer::Bulk(run_id) => {
                let run_id = String::from_utf8_lossy(&run_id).into_owned();
                let retries = crate::config::read().send_msg_retries.max(0) as u32;
                let mut state = self.lock();
                state.needs_topology = false;
                state.run_id = Some(run_id);
                for dropped in state.outbox.reconnected(retries) {
                    log(
                        "warning",
                        &format!(
                            "Gave up of message because failed to send it for more than {retries} time (message {} to {})",
                            dropped.id, self.node.id
                        ),
                    );
                }
                Ok(con)
            }
            Answer::Error(e) if e.starts_with("ERRCLUSTER") => {
                self.lock().needs_topology = true;
                Err("the shard has no topology yet".into())
            }
            Answer::Other(reply) | Answer::Error(reply) => {
                Err(format!("unexpected RG.HELLO reply {reply}"))
            }
            Answer::Status => Err("unexpected RG.HELLO reply OK".into()),
        }
    }

    /// Sends queued messages until the connection fails or the peer is stopped.
    fn serve(&self, con: &mut redis::Connection, me: &Identity) {
        loop {
            let batch = {
                let mut state = self.lock();
                loop {
                    if self.is_stopped() {
                        return;
                    }
                    if state.outbox.has_unsent() {
                        break state.outbox.take_unsent(PIPELINE);
                    }
                    let (woken, waited) = self
                        .wake
                        .wait_timeout(state, RETRY)
                        .unwrap_or_else(|e| e.into_inner());
                    state = woken;
                    if waited.timed_out() && !state.outbox.has_unsent() {
                        break Vec::new();
                    }
                }
            };
            if batch.is_empty() {
                // Idle for a second: a heartbeat. It finds a dead connection before a message
                // does, and the peer's run id when its topology changed.
                if !self.heartbeat(con) {
                    return;
                }
                continue;
            }
            let mut packed = Vec::new();
            for message in &batch {
                packed.extend(
                    redis::cmd("RG.INNERMSGCOMMAND")
                        .arg(&me.my_id)
                        .arg(&me.my_run_id)
                        .arg(&message.function)
                        .arg(message.payload.as_slice())
                        .arg(message.id)
                        .get_packed_command(),
                );
            }
            if con.send_packed_command(&packed).is_err() {
                return;
            }
            for _ in &batch {
                match classify(con.recv_response()) {
                    Ok(Answer::Status) => {
                        self.lock().outbox.acknowledge();
                    }
                    Ok(Answer::Error(e)) if e.starts_with("ERRCLUSTER") => {
                        self.lock().needs_topology = true;
                        return;
                    }
                    Ok(Answer::Error(reply) | Answer::Other(reply)) => {
                        log(
                            "warning",
                            &format!(
                                "shard {} refused a message ({reply}); check proto-max-bulk-len",
                                self.node.id
                            ),
                        );
                        return;
                    }
                    Ok(Answer::Bulk(_)) => {
                        log(
                            "warning",
                            &format!(
                                "shard {} answered a message with a bulk string",
                                self.node.id
                            ),
                        );
                        return;
                    }
                    Err(_) => return,
                }
            }
        }
    }
}

impl Peer {
    /// `RG.HELLO` on an idle connection; false when the connection is no longer usable.
    fn heartbeat(&self, con: &mut redis::Connection) -> bool {
        match request(con, &redis::cmd("RG.HELLO")) {
            Ok(Answer::Bulk(run_id)) => {
                self.lock().run_id = Some(String::from_utf8_lossy(&run_id).into_owned());
                true
            }
            Ok(Answer::Error(e)) if e.starts_with("ERRCLUSTER") => {
                self.lock().needs_topology = true;
                false
            }
            _ => false,
        }
    }
}

/// A reply as the handshake and the acknowledgements read it.
enum Answer {
    Bulk(Vec<u8>),
    Status,
    /// An error reply, its code first.
    Error(String),
    Other(String),
}

/// Sorts a reply; a transport failure is an Err.
fn classify(reply: redis::RedisResult<Value>) -> Result<Answer, String> {
    match reply {
        Ok(Value::BulkString(b)) => Ok(Answer::Bulk(b)),
        Ok(Value::Okay | Value::SimpleString(_)) => Ok(Answer::Status),
        Ok(Value::ServerError(e)) => Ok(Answer::Error(format!(
            "{} {}",
            e.code(),
            e.details().unwrap_or_default()
        ))),
        Ok(other) => Ok(Answer::Other(format!("{other:?}"))),
        Err(e) => match e.code() {
            Some(code) => Ok(Answer::Error(format!(
                "{code} {}",
                e.detail().unwrap_or_default()
            ))),
            None => Err(e.to_string()),
        },
    }
}

/// Sends one command and reads its reply.
fn request(con: &mut redis::Connection, cmd: &redis::Cmd) -> Result<Answer, String> {
    con.send_packed_command(&cmd.get_packed_command())
        .map_err(|e| e.to_string())?;
    classify(con.recv_response())
}
