//! Python sessions: every RG.PYEXECUTE creates one; it owns the registrations its script (and
//! that script's callbacks) made. The live table holds the sessions that registered something,
//! by id; a session replaced by UPGRADE / REPLACE_WITH moves to the dead list while anything
//! still uses it (sessions-and-cluster.md Part A).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, Weak};

use pyo3::types::PyAnyMethods;

use rand::Rng;

/// The most registration ids a session's printable form lists.
pub const LISTED_REGISTRATIONS: usize = 20;

pub struct Session {
    pub id: String,
    pub description: Option<String>,
    registrations: Mutex<Vec<String>>,
    dead: AtomicBool,
    /// The session's cProfile profiler, created on first use (RG.PYPROFILE).
    profiler: Mutex<Option<pyo3::Py<pyo3::PyAny>>>,
    /// Its requirements (shared with the requirements table, spec requirements.md §5).
    requirements: Mutex<Vec<Arc<crate::reqs::Requirement>>>,
    /// Whether it had to install requirements when it was created.
    installation_needed: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Session {
    /// A session named `id`, or 40 random lowercase hex characters.
    pub fn new(id: Option<String>, description: Option<String>) -> Arc<Session> {
        let id = id.unwrap_or_else(|| {
            let mut rng = rand::rng();
            (0..40)
                .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
                .collect()
        });
        Arc::new(Session {
            id,
            description,
            registrations: Mutex::new(Vec::new()),
            dead: AtomicBool::new(false),
            profiler: Mutex::new(None),
            requirements: Mutex::new(Vec::new()),
            installation_needed: AtomicBool::new(false),
        })
    }

    pub fn requirements(&self) -> Vec<Arc<crate::reqs::Requirement>> {
        lock(&self.requirements).clone()
    }

    pub fn set_requirements(
        &self,
        reqs: Vec<Arc<crate::reqs::Requirement>>,
        installation_needed: bool,
    ) {
        *lock(&self.requirements) = reqs;
        self.installation_needed
            .store(installation_needed, Ordering::SeqCst);
    }

    pub fn installation_needed(&self) -> bool {
        self.installation_needed.load(Ordering::SeqCst)
    }

    /// The session's profiler, created with the prelude's `profilerCreate()` if it has none.
    pub fn profiler(&self, py: pyo3::Python<'_>) -> pyo3::PyResult<pyo3::Py<pyo3::PyAny>> {
        let mut slot = lock(&self.profiler);
        if let Some(p) = slot.as_ref() {
            return Ok(p.clone_ref(py));
        }
        let created = crate::python::prelude_function(py, "profilerCreate")?
            .call0()?
            .unbind();
        *slot = Some(created.clone_ref(py));
        Ok(created)
    }

    /// RG.PYPROFILE RESET: a fresh profiler.
    pub fn reset_profiler(&self) {
        lock(&self.profiler).take();
    }

    pub fn add_registration(&self, id: &str) {
        lock(&self.registrations).push(id.to_string());
    }

    pub fn remove_registration(&self, id: &str) {
        lock(&self.registrations).retain(|r| r != id);
    }

    /// Forgets every registration (the registrations table was emptied for a load).
    pub fn clear_registrations(&self) {
        lock(&self.registrations).clear();
    }

    pub fn registrations(&self) -> Vec<String> {
        lock(&self.registrations).clone()
    }

    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::SeqCst)
    }

    /// `linked` as RedisGears shows it: `primary` in the live table, `None` once dead.
    pub fn linked(&self) -> &'static str {
        if self.is_dead() {
            "None"
        } else {
            "primary"
        }
    }

    /// RG.PYDUMPSESSIONS' `refCount`: the holders of the session other than the live table
    /// (its registrations and running executions). `listed` is the caller's own clone, which
    /// does not count either.
    pub fn ref_count(listed: &Arc<Session>) -> usize {
        let in_table = live(&listed.id).is_some_and(|s| Arc::ptr_eq(&s, listed));
        // The clone `live` returned is dropped by now.
        Arc::strong_count(listed) - 1 - usize::from(in_table)
    }

    /// RedisGears' printable form (commands.md §4.1), single quotes and all; its `refCount`
    /// counts every holder, the live table included (the spec's example: 2 for a session with
    /// one registration).
    ///
    /// Every registration carries its session's form in RG.DUMPREGISTRATIONS and INFO, so a list
    /// of all its registrations would make those replies grow with the square of their number
    /// (100,000 registrations: hundreds of GB). Past [`LISTED_REGISTRATIONS`] the list ends with
    /// `'... <n> more'`.
    pub fn printable(self: &Arc<Session>) -> String {
        let (mut list, total) = {
            let registrations = lock(&self.registrations);
            let listed: Vec<String> = registrations
                .iter()
                .take(LISTED_REGISTRATIONS)
                .map(|r| format!("'{r}'"))
                .collect();
            (listed, registrations.len())
        };
        if total > LISTED_REGISTRATIONS {
            list.push(format!("'... {} more'", total - LISTED_REGISTRATIONS));
        }
        format!(
            "{{'sessionName':'{}', 'sessionDescription':'{}', 'refCount': {}, 'linkedTo': {}, 'dead': {}, 'isInstallationNeeded':{}, 'registrationsList':[{}], 'depsList':[{}]}}",
            self.id,
            self.description.as_deref().unwrap_or("null"),
            Arc::strong_count(self),
            self.linked(),
            self.is_dead(),
            u8::from(self.installation_needed()),
            list.join(","),
            self.requirements()
                .iter()
                .map(|r| r.printable())
                .collect::<Vec<_>>()
                .join(",")
        )
    }
}

#[derive(Default)]
struct Tables {
    live: BTreeMap<String, Arc<Session>>,
    /// Unlinked sessions, in the order they died, kept while something still uses them.
    dead: Vec<Weak<Session>>,
}

static TABLES: LazyLock<Mutex<Tables>> = LazyLock::new(Mutex::default);

pub fn live(id: &str) -> Option<Arc<Session>> {
    lock(&TABLES).live.get(id).cloned()
}

/// Every live session, ordered by id.
pub fn all_live() -> Vec<Arc<Session>> {
    lock(&TABLES).live.values().cloned().collect()
}

/// The dead sessions still in use, in the order they died.
pub fn all_dead() -> Vec<Arc<Session>> {
    let mut tables = lock(&TABLES);
    tables.dead.retain(|w| w.strong_count() > 0);
    tables.dead.iter().filter_map(Weak::upgrade).collect()
}

/// Puts `session` in the live table (replacing an entry with its id).
pub fn link(session: &Arc<Session>) {
    lock(&TABLES)
        .live
        .insert(session.id.clone(), session.clone());
}

/// Removes `session` from the live table if it is the one live under its id.
fn remove_live(tables: &mut Tables, session: &Arc<Session>) {
    if tables
        .live
        .get(&session.id)
        .is_some_and(|s| Arc::ptr_eq(s, session))
    {
        tables.live.remove(&session.id);
    }
}

/// Takes `session` out of the live table; while anything still holds it, it is listed dead.
pub fn unlink(session: &Arc<Session>) {
    let mut tables = lock(&TABLES);
    remove_live(&mut tables, session);
    session.dead.store(true, Ordering::SeqCst);
    tables.dead.push(Arc::downgrade(session));
}

/// Drops `session` from the live table once it owns no registration any more.
pub fn release_if_unused(session: &Arc<Session>) {
    if !session.registrations().is_empty() {
        return;
    }
    remove_live(&mut lock(&TABLES), session);
}
