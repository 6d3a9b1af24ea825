//! Python sessions as registrations see them: the id, the description and the registrations a
//! session owns, printed as RedisGears prints them (`PD` of RG.DUMPREGISTRATIONS).
//!
//! The live and dead session tables, UPGRADE and REPLACE_WITH are the sessions issue's work.

use std::sync::{Arc, Mutex};

use rand::Rng;

pub struct Session {
    pub id: String,
    pub description: Option<String>,
    registrations: Mutex<Vec<String>>,
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
        })
    }

    pub fn add_registration(&self, id: &str) {
        self.lock().push(id.to_string());
    }

    pub fn remove_registration(&self, id: &str) {
        self.lock().retain(|r| r != id);
    }

    pub fn registrations(&self) -> Vec<String> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.registrations.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// RedisGears' printable form (commands.md §4.1), single quotes and all.
    pub fn printable(&self) -> String {
        let registrations = self.registrations();
        let list: Vec<String> = registrations.iter().map(|r| format!("'{r}'")).collect();
        format!(
            "{{'sessionName':'{}', 'sessionDescription':'{}', 'refCount': {}, 'linkedTo': primary, 'dead': false, 'isInstallationNeeded':0, 'registrationsList':[{}], 'depsList':[]}}",
            self.id,
            self.description.as_deref().unwrap_or("null"),
            registrations.len() + 1,
            list.join(",")
        )
    }
}
