//! Sessions and registrations outlive the process and reach replicas (sessions-and-cluster.md
//! Part B): the batch a script's registrations are applied as, sent to replicas and the AOF as
//! `RG.INNERREGISTER <batch>` (and `RG.INNERUNREGISTER <id>`), the RDB aux section written
//! after the keyspace, and the clearing at the start of every load. Our own versioned format
//! (DESIGN.md); a registration is carried in its saved form, made when it was registered, so
//! saving runs no Python (BGSAVE saves in a forked child).

use std::sync::Arc;

use pyo3::prelude::*;
use redis_module::{raw, Context};

use crate::registrations::{self, PendingRegistration};
use crate::sessions::{self, Session};
use crate::{ids, redis_calls};

/// The version of [`Batch::encode`]'s layout.
const BATCH_FORMAT: u8 = 1;

/// A session as it is saved: what makes it again elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedSession {
    pub id: String,
    pub description: Option<String>,
    /// Names in the requirements table, which is saved (and replicated) before.
    pub requirements: Vec<String>,
}

impl SavedSession {
    fn of(session: &Session) -> SavedSession {
        SavedSession {
            id: session.id.clone(),
            description: session.description.clone(),
            requirements: session
                .requirements()
                .iter()
                .map(|r| r.name.clone())
                .collect(),
        }
    }

    /// The live session with this id, or a new one holding the named requirements.
    fn resolve(&self, replacing: bool) -> Result<Arc<Session>, String> {
        if !replacing {
            if let Some(live) = sessions::live(&self.id) {
                return Ok(live);
            }
        }
        let session = Session::new(Some(self.id.clone()), self.description.clone());
        let mut requirements = Vec::new();
        for name in &self.requirements {
            let requirement = crate::reqs::by_name(name)
                .ok_or_else(|| format!("session missing requirement ({name})"))?;
            requirements.push(requirement);
        }
        session.set_requirements(requirements, false);
        Ok(session)
    }
}

/// Registrations applied together, with the session they belong to: what one RG.PYEXECUTE
/// (or one `register()` from a step) changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub session: SavedSession,
    /// The session this one replaces (UPGRADE / REPLACE_WITH), unlinked first.
    pub unlink: Option<String>,
    /// Registrations removed first (those of the replaced session).
    pub unregister: Vec<String>,
    /// (id, saved form) of each new registration, in call order.
    pub registrations: Vec<(String, Arc<[u8]>)>,
}

impl Batch {
    pub fn new(
        session: &Session,
        replaced: Option<&Arc<Session>>,
        unregister: &[String],
        pending: &[PendingRegistration],
    ) -> Batch {
        Batch {
            session: SavedSession::of(session),
            unlink: replaced.map(|s| s.id.clone()),
            unregister: unregister.to_vec(),
            registrations: pending
                .iter()
                .map(|p| (p.id.clone(), p.saved.clone()))
                .collect(),
        }
    }

    /// The batch of one registration made from a step.
    pub fn of(
        session: &Session,
        replaced: Option<&Arc<Session>>,
        unregister: &[String],
        pending: &PendingRegistration,
    ) -> Batch {
        Batch::new(session, replaced, unregister, std::slice::from_ref(pending))
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![BATCH_FORMAT];
        let mut put = |bytes: &[u8]| {
            out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            out.extend_from_slice(bytes);
        };
        put(self.session.id.as_bytes());
        put(self.session.description.as_deref().unwrap_or("").as_bytes());
        put(&[self.session.description.is_some() as u8]);
        put(&(self.session.requirements.len() as u64).to_le_bytes());
        for name in &self.session.requirements {
            put(name.as_bytes());
        }
        put(self.unlink.as_deref().unwrap_or("").as_bytes());
        put(&[self.unlink.is_some() as u8]);
        put(&(self.unregister.len() as u64).to_le_bytes());
        for id in &self.unregister {
            put(id.as_bytes());
        }
        put(&(self.registrations.len() as u64).to_le_bytes());
        for (id, saved) in &self.registrations {
            put(id.as_bytes());
            put(saved);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Batch, String> {
        let Some((&format, mut rest)) = bytes.split_first() else {
            return Err("empty batch".into());
        };
        if format != BATCH_FORMAT {
            return Err(format!(
                "batch format {format}, this build reads {BATCH_FORMAT}"
            ));
        }
        let mut take = || -> Result<&[u8], String> {
            let (len, tail) = rest.split_first_chunk::<8>().ok_or("truncated batch")?;
            let len = usize::try_from(u64::from_le_bytes(*len)).map_err(|_| "truncated batch")?;
            if tail.len() < len {
                return Err("truncated batch".into());
            }
            let (item, tail) = tail.split_at(len);
            rest = tail;
            Ok(item)
        };
        fn text(bytes: &[u8]) -> Result<String, String> {
            String::from_utf8(bytes.to_vec()).map_err(|_| "a name is not UTF-8".to_string())
        }
        fn count(bytes: &[u8]) -> Result<usize, String> {
            let raw: [u8; 8] = bytes.try_into().map_err(|_| "bad count")?;
            usize::try_from(u64::from_le_bytes(raw)).map_err(|_| "bad count".to_string())
        }
        let id = text(take()?)?;
        let description = text(take()?)?;
        let description = (take()? == [1]).then_some(description);
        let mut requirements = Vec::new();
        for _ in 0..count(take()?)? {
            requirements.push(text(take()?)?);
        }
        let unlink = text(take()?)?;
        let unlink = (take()? == [1]).then_some(unlink);
        let mut unregister = Vec::new();
        for _ in 0..count(take()?)? {
            unregister.push(text(take()?)?);
        }
        let mut registrations = Vec::new();
        for _ in 0..count(take()?)? {
            let id = text(take()?)?;
            registrations.push((id, Arc::from(take()?)));
        }
        Ok(Batch {
            session: SavedSession {
                id,
                description,
                requirements,
            },
            unlink,
            unregister,
            registrations,
        })
    }

    /// Sends the batch to replicas and the AOF (DB 0), for [`Batch::apply`] there.
    pub fn replicate(&self, ctx: &Context) {
        let encoded = self.encode();
        replicate(ctx, "RG.INNERREGISTER", &[encoded.as_slice()]);
    }

    /// Applies a batch that came from a primary or the AOF: every registration is made again
    /// first, so one that fails leaves everything as it was.
    pub fn apply(&self, ctx: &Context) -> Result<(), String> {
        let replaced = self.unlink.as_deref().and_then(sessions::live);
        let session = self.session.resolve(replaced.is_some())?;
        // A registration this shard already has, as saved, stays as it is (with its statistics
        // and queue): the AOF holds it twice after a rewrite, and a shard that joins a cluster
        // hears of it from every other shard.
        let fresh: Vec<(String, Arc<[u8]>)> = self
            .registrations
            .iter()
            .filter(|(id, saved)| registrations::get(id).is_none_or(|r| r.saved != *saved))
            .cloned()
            .collect();
        // One applied again in another form replaces itself.
        for (id, _) in &fresh {
            unregister(id, false);
        }
        // Validated as its session (a trigger held by the session it upgrades is not taken).
        let pending = crate::python::context::with_session(&session, || restore(ctx, &fresh))?;
        if let Some(old) = replaced {
            crate::reqs::release_session(&old.requirements());
            sessions::unlink(&old);
        }
        for id in &self.unregister {
            unregister(id, false);
        }
        registrations::apply_all(pending, &session);
        sessions::link(&session);
        Ok(())
    }
}

/// Makes registrations again from their saved forms, their ids taken past by the counter. The
/// main thread runs it, holding the Redis lock through `ctx` (validation may call commands).
fn restore(
    ctx: &Context,
    saved: &[(String, Arc<[u8]>)],
) -> Result<Vec<PendingRegistration>, String> {
    crate::python::context::with_locked_context(ctx, || {
        Python::attach(|py| {
            saved
                .iter()
                .map(|(id, form)| {
                    ids::plan_id_seen(id);
                    crate::python::native::restore_registration(py, form, id).map_err(|e| {
                        format!(
                            "Failed deserializing registration {id}, {}",
                            crate::python::errors::format_error(py, &e)
                        )
                    })
                })
                .collect()
        })
    })
}

fn replicate(ctx: &Context, command: &str, args: &[&[u8]]) {
    ctx.replicate(command, args);
}

/// The sessions owning `table`'s registrations, each once, in the order they first appear.
fn owners(table: &[Arc<registrations::Registration>]) -> Vec<Arc<Session>> {
    let mut owners: Vec<Arc<Session>> = Vec::new();
    for registration in table {
        if !owners.iter().any(|s| Arc::ptr_eq(s, &registration.session)) {
            owners.push(registration.session.clone());
        }
    }
    owners
}

/// Every registration, one batch per session.
pub fn all_batches() -> Vec<Batch> {
    let table = registrations::all();
    owners(&table)
        .into_iter()
        .map(|session| Batch {
            session: SavedSession::of(&session),
            unlink: None,
            unregister: Vec::new(),
            registrations: table
                .iter()
                .filter(|r| Arc::ptr_eq(&r.session, &session))
                .map(|r| (r.id.clone(), r.saved.clone()))
                .collect(),
        })
        .collect()
}

/// Sends every registration to the AOF (and replicas) again, one batch per session.
pub fn replicate_all(ctx: &Context) {
    for batch in all_batches() {
        batch.replicate(ctx);
    }
}

/// Removes a registration (and its session's hold on it); false if there was none.
pub fn unregister(id: &str, abort_pending: bool) -> bool {
    let Some(registration) = registrations::remove(id) else {
        return false;
    };
    registration.session.remove_registration(&registration.id);
    // A session whose last registration went is not live any more.
    sessions::release_if_unused(&registration.session);
    if abort_pending {
        registration.abort_pending();
    }
    true
}

/// Tells replicas and the AOF about an RG.UNREGISTER.
pub fn replicate_unregister(ctx: &Context, id: &str, abort_pending: bool) {
    if abort_pending {
        replicate(ctx, "RG.INNERUNREGISTER", &[id.as_bytes(), b"abortpending"]);
    } else {
        replicate(ctx, "RG.INNERUNREGISTER", &[id.as_bytes()]);
    }
}

/// The start of an RDB, AOF or full-sync load: every registration, live session and execution
/// goes; the load brings back what it holds.
pub fn clear_for_load() {
    for registration in registrations::clear() {
        registration.abort_pending();
    }
    for session in sessions::all_live() {
        sessions::unlink(&session);
    }
    crate::executions::remove_all();
}

/// The aux section after the keyspace: the live sessions that own registrations, then every
/// registration in registration order.
pub fn aux_save(rdb: *mut raw::RedisModuleIO) {
    let table = registrations::all();
    let owners = owners(&table);
    raw::save_unsigned(rdb, owners.len() as u64);
    for (index, session) in owners.iter().enumerate() {
        let saved = SavedSession::of(session);
        raw::save_unsigned(rdb, index as u64);
        raw::save_slice(rdb, saved.id.as_bytes());
        raw::save_unsigned(rdb, saved.description.is_some() as u64);
        raw::save_slice(rdb, saved.description.unwrap_or_default().as_bytes());
        raw::save_unsigned(rdb, saved.requirements.len() as u64);
        for name in saved.requirements {
            raw::save_slice(rdb, name.as_bytes());
        }
    }
    raw::save_unsigned(rdb, table.len() as u64);
    for registration in table.iter() {
        let owner = owners
            .iter()
            .position(|s| Arc::ptr_eq(s, &registration.session))
            .unwrap_or(0);
        raw::save_unsigned(rdb, owner as u64);
        raw::save_slice(rdb, registration.id.as_bytes());
        raw::save_slice(rdb, &registration.saved);
    }
}

/// Reads [`aux_save`]'s section and registers everything again (their `onRegistered` run).
/// Registrations that shared a session share one again.
pub fn aux_load(rdb: *mut raw::RedisModuleIO) -> Result<(), String> {
    let truncated = |e: redis_module::error::Error| format!("truncated section: {e}");
    let bytes = |rdb| -> Result<Vec<u8>, String> {
        Ok(raw::load_string_buffer(rdb)
            .map_err(truncated)?
            .as_ref()
            .to_vec())
    };
    let text = |rdb| -> Result<String, String> {
        String::from_utf8(bytes(rdb)?).map_err(|_| "a name is not UTF-8".to_string())
    };
    let mut saved_sessions = Vec::new();
    for _ in 0..raw::load_unsigned(rdb).map_err(truncated)? {
        let _index = raw::load_unsigned(rdb).map_err(truncated)?;
        let id = text(rdb)?;
        let has_description = raw::load_unsigned(rdb).map_err(truncated)? == 1;
        let description = text(rdb)?;
        let mut requirements = Vec::new();
        for _ in 0..raw::load_unsigned(rdb).map_err(truncated)? {
            requirements.push(text(rdb)?);
        }
        saved_sessions.push(SavedSession {
            id,
            description: has_description.then_some(description),
            requirements,
        });
    }
    let mut saved = Vec::new();
    for _ in 0..raw::load_unsigned(rdb).map_err(truncated)? {
        let owner = raw::load_unsigned(rdb).map_err(truncated)? as usize;
        let id = text(rdb)?;
        let form: Arc<[u8]> = Arc::from(bytes(rdb)?);
        saved.push((owner, id, form));
    }
    let sessions: Vec<Arc<Session>> = saved_sessions
        .iter()
        .map(|s| s.resolve(true))
        .collect::<Result<_, _>>()?;
    let forms: Vec<(String, Arc<[u8]>)> = saved
        .iter()
        .map(|(_, id, f)| (id.clone(), f.clone()))
        .collect();
    // The load runs on the main thread, which holds the Redis lock; its IO context cannot call
    // commands, the module's detached one can.
    let pending = restore(&redis_calls::detached_context(), &forms)?;
    let mut by_owner: Vec<Vec<PendingRegistration>> = sessions.iter().map(|_| Vec::new()).collect();
    for ((owner, id, _), registration) in saved.iter().zip(pending) {
        by_owner
            .get_mut(*owner)
            .ok_or_else(|| format!("registration {id} has no session"))?
            .push(registration);
    }
    for (session, pending) in sessions.iter().zip(by_owner) {
        registrations::apply_all(pending, session);
    }
    for session in &sessions {
        sessions::link(session);
    }
    Ok(())
}
