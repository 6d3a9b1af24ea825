//! KeysReader `commands=`: a client command whose keyspace events fire registrations, with the
//! client linked to those executions — it gets its reply once they all finished, and any of them
//! may replace that reply with `override_reply` (readers.md §2.4, runtime.md §7.2).

use std::sync::{Arc, Mutex, MutexGuard};

use crate::reply::Reply;

type Waiter = Box<dyn FnOnce(Option<Reply>) + Send>;

#[derive(Default)]
struct LinkState {
    /// Linked executions not finished yet.
    pending: usize,
    overridden: Option<Reply>,
    /// Called with the override (if any) once no execution is pending.
    waiter: Option<Waiter>,
}

/// One run of a hooked command, shared by the executions it fired.
pub struct CommandLink {
    /// The client's command, name first.
    pub argv: Vec<Vec<u8>>,
    /// The client could not be blocked (MULTI, Lua): its reply went out at once, so nothing
    /// may override it.
    detached: bool,
    state: Mutex<LinkState>,
}

impl CommandLink {
    pub fn new(argv: Vec<Vec<u8>>, detached: bool) -> Arc<CommandLink> {
        Arc::new(CommandLink {
            argv,
            detached,
            state: Mutex::new(LinkState::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, LinkState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_detached(&self) -> bool {
        self.detached
    }

    /// An execution linked to the command started.
    pub fn attach(&self) {
        self.lock().pending += 1;
    }

    /// A linked execution ended; the last one answers the waiting client.
    pub fn finished(&self) {
        let answer = {
            let mut state = self.lock();
            state.pending = state.pending.saturating_sub(1);
            if state.pending > 0 {
                return;
            }
            state.waiter.take().map(|w| (w, state.overridden.take()))
        };
        if let Some((waiter, overridden)) = answer {
            waiter(overridden);
        }
    }

    pub fn pending(&self) -> usize {
        self.lock().pending
    }

    /// The override set so far (taken).
    pub fn take_override(&self) -> Option<Reply> {
        self.lock().overridden.take()
    }

    /// Runs `waiter` with the override once no linked execution is pending (now if none is).
    pub fn when_all_done(&self, waiter: impl FnOnce(Option<Reply>) + Send + 'static) {
        let now = {
            let mut state = self.lock();
            if state.pending > 0 {
                state.waiter = Some(Box::new(waiter));
                return;
            }
            state.overridden.take()
        };
        waiter(now);
    }

    /// `override_reply`: only the first one counts.
    pub fn override_with(&self, reply: Reply) -> Result<(), &'static str> {
        if self.detached {
            return Err("Can not get command ctx");
        }
        let mut state = self.lock();
        if state.overridden.is_some() {
            return Err("Can only override reply once");
        }
        state.overridden = Some(reply);
        Ok(())
    }
}
