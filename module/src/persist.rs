//! Sessions and registrations outlive the process and reach replicas (sessions-and-cluster.md
//! Part B): the batch a script's registrations are applied as, sent to replicas and the AOF as
//! `RG.INNERREGISTER <batch>` (and `RG.INNERUNREGISTER <id>`), the RDB aux section written
//! after the keyspace, and the clearing at the start of every load. The byte layouts are our
//! own, versioned, in the `formats` crate (decoded there, fuzzed there); this module acts on
//! them. A registration is carried in its saved form, made when it was registered, so saving
//! runs no Python (BGSAVE saves in a forked child).

use std::sync::Arc;

use formats::aux::{AuxRead, AuxWrite, RegistrationsSection, SavedRegistration};
pub use formats::batch::{Batch, SavedSession};
use pyo3::prelude::*;
use redis_module::{raw, Context};

use crate::registrations::{self, PendingRegistration};
use crate::sessions::{self, Session};
use crate::{ids, redis_calls};

fn saved_session(session: &Session) -> SavedSession {
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

/// The live session with `saved`'s id, or a new one holding the named requirements.
fn resolve_session(saved: &SavedSession, replacing: bool) -> Result<Arc<Session>, String> {
    if !replacing {
        if let Some(live) = sessions::live(&saved.id) {
            return Ok(live);
        }
    }
    let session = Session::new(Some(saved.id.clone()), saved.description.clone());
    let mut requirements = Vec::new();
    for name in &saved.requirements {
        let requirement = crate::reqs::by_name(name)
            .ok_or_else(|| format!("session missing requirement ({name})"))?;
        requirements.push(requirement);
    }
    session.set_requirements(requirements, false);
    Ok(session)
}

/// The batch of what one RG.PYEXECUTE changed.
pub fn batch(
    session: &Session,
    replaced: Option<&Arc<Session>>,
    unregister: &[String],
    pending: &[PendingRegistration],
) -> Batch {
    Batch {
        session: saved_session(session),
        unlink: replaced.map(|s| s.id.clone()),
        unregister: unregister.to_vec(),
        registrations: pending
            .iter()
            .map(|p| (p.id.clone(), p.saved.clone()))
            .collect(),
    }
}

/// The batch of one registration made from a step.
pub fn batch_of(session: &Session, pending: &PendingRegistration) -> Batch {
    batch(session, None, &[], std::slice::from_ref(pending))
}

/// Decodes an `RG.INNERREGISTER` payload (or another shard's).
pub fn decode_batch(bytes: &[u8]) -> Result<Batch, String> {
    Batch::decode(bytes).map_err(|e| e.to_string())
}

/// What the module does with a [`Batch`]: send it on, apply it.
pub trait BatchExt {
    /// Sends the batch to replicas and the AOF (DB 0), for [`BatchExt::apply`] there.
    fn replicate(&self, ctx: &Context);
    /// Applies a batch that came from a primary, the AOF or another shard: every registration
    /// is made again first, so one that fails leaves everything as it was.
    fn apply(&self, ctx: &Context) -> Result<(), String>;
}

impl BatchExt for Batch {
    fn replicate(&self, ctx: &Context) {
        let encoded = self.encode();
        replicate(ctx, "RG.INNERREGISTER", &[encoded.as_slice()]);
    }

    fn apply(&self, ctx: &Context) -> Result<(), String> {
        let replaced = self.unlink.as_deref().and_then(sessions::live);
        let session = resolve_session(&self.session, replaced.is_some())?;
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
            session: saved_session(&session),
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

/// Redis' RDB calls, as the aux section readers and writers see them.
pub struct RdbIo(pub *mut raw::RedisModuleIO);

impl AuxWrite for RdbIo {
    fn unsigned(&mut self, value: u64) {
        raw::save_unsigned(self.0, value);
    }

    fn bytes(&mut self, bytes: &[u8]) {
        raw::save_slice(self.0, bytes);
    }
}

impl AuxRead for RdbIo {
    fn unsigned(&mut self) -> Result<u64, formats::FormatError> {
        raw::load_unsigned(self.0).map_err(|_| formats::FormatError::Truncated("section"))
    }

    fn bytes(&mut self) -> Result<Vec<u8>, formats::FormatError> {
        Ok(raw::load_string_buffer(self.0)
            .map_err(|_| formats::FormatError::Truncated("section"))?
            .as_ref()
            .to_vec())
    }
}

/// The aux section after the keyspace: the live sessions that own registrations, then every
/// registration in registration order.
pub fn aux_save(rdb: *mut raw::RedisModuleIO) {
    let table = registrations::all();
    let owners = owners(&table);
    let section = RegistrationsSection {
        sessions: owners.iter().map(|s| saved_session(s)).collect(),
        registrations: table
            .iter()
            .map(|registration| SavedRegistration {
                owner: owners
                    .iter()
                    .position(|s| Arc::ptr_eq(s, &registration.session))
                    .unwrap_or(0),
                id: registration.id.clone(),
                form: registration.saved.clone(),
            })
            .collect(),
    };
    section.write(&mut RdbIo(rdb));
}

/// Reads [`aux_save`]'s section and registers everything again (their `onRegistered` run).
/// Registrations that shared a session share one again.
pub fn aux_load(rdb: *mut raw::RedisModuleIO) -> Result<(), String> {
    let section = RegistrationsSection::read(&mut RdbIo(rdb)).map_err(|e| e.to_string())?;
    let sessions: Vec<Arc<Session>> = section
        .sessions
        .iter()
        .map(|s| resolve_session(s, true))
        .collect::<Result<_, _>>()?;
    let forms: Vec<(String, Arc<[u8]>)> = section
        .registrations
        .iter()
        .map(|r| (r.id.clone(), r.form.clone()))
        .collect();
    // The load runs on the main thread, which holds the Redis lock; its IO context cannot call
    // commands, the module's detached one can.
    let pending = restore(&redis_calls::detached_context(), &forms)?;
    let mut by_owner: Vec<Vec<PendingRegistration>> = sessions.iter().map(|_| Vec::new()).collect();
    for (saved, registration) in section.registrations.iter().zip(pending) {
        if let Some(owned) = by_owner.get_mut(saved.owner) {
            owned.push(registration);
        }
    }
    for (session, pending) in sessions.iter().zip(by_owner) {
        registrations::apply_all(pending, session);
    }
    for session in &sessions {
        sessions::link(session);
    }
    Ok(())
}
