//! Requirements of sessions (spec/requirements.md): the process-wide requirements table, the
//! preparation rules of RG.PYEXECUTE (reuse vs. install), the install job that runs on its own
//! thread with our reqs-manager, and RG.PYDUMPREQS.
//!
//! Packages are installed into one directory per shard, `<RequirementsDir>/site-packages`, first
//! on `sys.path`; each requirement also keeps its wheels (hard links to the host's wheels cache)
//! in its own `<RequirementsDir>/<req>_<10 hex>` directory, as the spec's `Path` shows.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, OnceLock};

use redis_module::raw;

use rand::Rng;
use reqs_manager::index::HttpOptions;
use reqs_manager::{IndexOptions, PackageIndex, Resolver, TargetPython};

use crate::config;
use crate::redis_calls::log;
use crate::reply::Reply;

/// The spec's texts (commands.md §2.2, requirements.md §10); ours go on after them with the reason.
pub const DIR_FAILED: &str =
    "Could not satisfy requirements, look at the log file for more information.";
pub const DOWNLOAD_FAILED: &str =
    "Could not satisfy requirements (look at redis log file for more information)";
pub const INSTALL_FAILED: &str =
    "Failed installing requirements on shard, please check shard logs for more details.";

/// One requirement string and what was done for it.
pub struct Requirement {
    /// The string exactly as given: its identity.
    pub name: String,
    pub base_path: PathBuf,
    /// Set once, when the wheels are in `base_path`; read without a lock (the RDB is written
    /// by a forked child, which must not meet a lock some thread held at fork time).
    wheels: OnceLock<Vec<String>>,
    downloaded: AtomicBool,
    installed: AtomicBool,
    in_table: AtomicBool,
}

impl Drop for Requirement {
    fn drop(&mut self) {
        // The spec's safety check: never remove a path made only of '/'.
        let text = self.base_path.to_string_lossy();
        if !text.is_empty() && !text.chars().all(|c| c == '/') {
            let _ = std::fs::remove_dir_all(&self.base_path);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Requirement {
    pub fn wheels(&self) -> Vec<String> {
        self.wheels.get().cloned().unwrap_or_default()
    }

    pub fn is_downloaded(&self) -> bool {
        self.downloaded.load(Ordering::SeqCst)
    }

    pub fn is_installed(&self) -> bool {
        self.installed.load(Ordering::SeqCst)
    }

    /// The `depsList` item of a session's printable form.
    pub fn printable(&self) -> String {
        let wheels: Vec<String> = self.wheels().iter().map(|w| format!("'{w}'")).collect();
        format!(
            "{{'name':'{}', 'basePath':'{}', 'wheels':[{}]}}",
            self.name,
            self.base_path.display(),
            wheels.join(",")
        )
    }

    /// The 18-element entry of RG.PYDUMPREQS; `own_clones` references held by the caller are
    /// not counted.
    pub fn dump(self: &Arc<Self>, own_clones: usize) -> Reply {
        let yes_no = |b: bool| Reply::bulk(if b { "yes" } else { "no" });
        let wheels = if self.is_downloaded() {
            Reply::Array(self.wheels().into_iter().map(Reply::bulk).collect())
        } else {
            Reply::bulk("Requirement was not yet downloaded so wheels are not available")
        };
        Reply::Array(vec![
            Reply::bulk("GearReqVersion"),
            Reply::Integer(2),
            Reply::bulk("Name"),
            Reply::bulk(self.name.as_str()),
            Reply::bulk("IsDownloaded"),
            yes_no(self.is_downloaded()),
            Reply::bulk("IsInstalled"),
            yes_no(self.installed.load(Ordering::SeqCst)),
            Reply::bulk("CompiledOs"),
            Reply::bulk(compiled_os()),
            Reply::bulk("Wheels"),
            wheels,
            Reply::bulk("Path"),
            Reply::bulk(self.base_path.display().to_string()),
            Reply::bulk("RefCount"),
            Reply::Integer((Arc::strong_count(self) - own_clones) as i64),
            Reply::bulk("IsInReqDictionary"),
            yes_no(self.in_table.load(Ordering::SeqCst)),
        ])
    }
}

/// `<os>-<codename>-<arch>` of this build, as RedisGears reports its own (e.g. linux-bookworm-x64).
fn compiled_os() -> String {
    static COMPILED_OS: OnceLock<String> = OnceLock::new();
    COMPILED_OS.get_or_init(read_compiled_os).clone()
}

fn read_compiled_os() -> String {
    let codename = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                l.strip_prefix("VERSION_CODENAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "unknown".into());
    let arch = match std::env::consts::ARCH {
        "x86_64" => "x64",
        "aarch64" => "arm64v8",
        other => other,
    };
    format!("{}-{codename}-{arch}", std::env::consts::OS)
}

static TABLE: LazyLock<Mutex<BTreeMap<String, Arc<Requirement>>>> = LazyLock::new(Mutex::default);

/// RG.PYDUMPREQS.
/// The requirement named `name` in the table.
pub fn by_name(name: &str) -> Option<Arc<Requirement>> {
    lock(&TABLE).get(name).cloned()
}

pub fn dump_all() -> Reply {
    let all: Vec<Arc<Requirement>> = lock(&TABLE).values().cloned().collect();
    Reply::Array(all.iter().map(|r| r.dump(1)).collect())
}

/// INFO's `python_requirements` section: per requirement, the RG.PYDUMPREQS fields.
pub fn info_fields() -> Vec<(String, Vec<(&'static str, String)>)> {
    let all: Vec<Arc<Requirement>> = lock(&TABLE).values().cloned().collect();
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_string();
    all.iter()
        .map(|r| {
            let wheels: Vec<String> = r.wheels().iter().map(|w| format!("'{w}'")).collect();
            (
                r.name.clone(),
                vec![
                    ("IsDownloaded", yes_no(r.is_downloaded())),
                    ("IsInstalled", yes_no(r.installed.load(Ordering::SeqCst))),
                    ("CompiledOs", compiled_os()),
                    ("Wheels", format!("[{}]", wheels.join("|"))),
                    ("Path", r.base_path.display().to_string()),
                    ("RefCount", (Arc::strong_count(r) - 1).to_string()),
                    (
                        "IsInReqDictionary",
                        yes_no(r.in_table.load(Ordering::SeqCst)),
                    ),
                ],
            )
        })
        .collect()
}

/// Puts `req` in the table, replacing (and releasing) an entry with the same string.
fn insert_in_table(req: &Arc<Requirement>) {
    req.in_table.store(true, Ordering::SeqCst);
    let previous = lock(&TABLE).insert(req.name.clone(), req.clone());
    if let Some(previous) = previous.filter(|p| !Arc::ptr_eq(p, req)) {
        previous.in_table.store(false, Ordering::SeqCst);
    }
}

/// The spec's §2.4: after a script that registered or ran something, its session's new
/// requirements enter the table.
pub fn publish(reqs: &[Arc<Requirement>]) {
    for req in reqs {
        if !req.in_table.load(Ordering::SeqCst) {
            insert_in_table(req);
        }
    }
}

/// The spec's §5: when a session is unlinked, each of its requirements held only by it and the
/// table leaves the table.
pub fn release_session(reqs: &[Arc<Requirement>]) {
    let mut table = lock(&TABLE);
    for req in reqs {
        // Held by: the session's list, the table, and `reqs` here (the caller's copy).
        let in_table = table.get(&req.name).is_some_and(|t| Arc::ptr_eq(t, req));
        if in_table && Arc::strong_count(req) <= 3 {
            table.remove(&req.name);
            req.in_table.store(false, Ordering::SeqCst);
        }
    }
}

/// What RG.PYEXECUTE does about its requirements.
pub enum Preparation {
    /// Every requirement is in the table: the session shares those objects.
    Reuse(Vec<Arc<Requirement>>),
    /// New objects to download and install before the script runs.
    Install(Vec<Arc<Requirement>>),
}

/// The spec's §2.1, on the main thread: reuse when every string is in the table and no
/// reinstall is forced, else a new object (and directory) per string. Malformed strings are
/// refused here, before anything is created.
pub fn prepare(names: &[String], force: bool) -> Result<Preparation, String> {
    for name in names {
        if let Err(err) = name.parse::<reqs_manager::Requirement>() {
            return Err(format!("{DOWNLOAD_FAILED}: {err}"));
        }
    }
    if !force {
        let table = lock(&TABLE);
        let found: Vec<Arc<Requirement>> =
            names.iter().filter_map(|n| table.get(n).cloned()).collect();
        if found.len() == names.len() {
            return Ok(Preparation::Reuse(found));
        }
    }
    let root = requirements_dir();
    let mut created = Vec::with_capacity(names.len());
    for name in names {
        let suffix: String = {
            let mut rng = rand::rng();
            (0..10)
                .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
                .collect()
        };
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "=<>!~.-_[],".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let base_path = root.join(format!("{safe}_{suffix}"));
        if let Err(err) = std::fs::create_dir_all(&base_path) {
            log(
                "warning",
                &format!("could not create {}: {err}", base_path.display()),
            );
            return Err(format!("{DIR_FAILED} ({}: {err})", base_path.display()));
        }
        created.push(Arc::new(Requirement {
            name: name.clone(),
            base_path,
            wheels: OnceLock::new(),
            downloaded: AtomicBool::new(false),
            installed: AtomicBool::new(false),
            in_table: AtomicBool::new(false),
        }));
    }
    Ok(Preparation::Install(created))
}

/// `RequirementsDir`, absolute.
pub fn requirements_dir() -> PathBuf {
    PathBuf::from(config::read().text("RequirementsDir"))
}

/// Where packages are installed: first on `sys.path`.
pub fn site_dir() -> PathBuf {
    requirements_dir().join("site-packages")
}

/// The embedded interpreter's version and the pip used for source-only projects, set when the
/// interpreter starts.
static INTERPRETER: OnceLock<((u16, u16, u16), Option<PathBuf>)> = OnceLock::new();

pub fn set_interpreter(version: (u16, u16, u16)) {
    let name = format!("python{}.{}", version.0, version.1);
    let python = ["/usr/bin", "/usr/local/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(&name))
        .find(|p| p.exists());
    let _ = INTERPRETER.set((version, python));
}

/// Why an install failed: the spec's text, then the reason.
pub struct InstallFailure(pub String);

/// Resolves every requirement together, installs the result into the shard's site directory
/// and gives each requirement its wheels (itself and what it depends on). Runs on the install
/// thread, never on the main thread.
pub fn install(reqs: &[Arc<Requirement>]) -> Result<(), InstallFailure> {
    if reqs.is_empty() {
        return Ok(());
    }
    let (index_url, find_links, cache_dir) = {
        let config = config::read();
        (
            config.text("RequirementsIndexUrl"),
            config.text("RequirementsFindLinks"),
            config.text("WheelsCacheDir"),
        )
    };
    let download_failed = |reason: String| {
        log(
            "warning",
            &format!("installing requirements failed: {reason}"),
        );
        InstallFailure(format!("{DOWNLOAD_FAILED}: {}", one_line(&reason)))
    };
    let build_python = INTERPRETER.get().and_then(|(_, python)| python.clone());
    let cache =
        wheels_cache::WheelsCache::open(&cache_dir).map_err(|e| download_failed(e.to_string()))?;
    let index = PackageIndex::new(IndexOptions {
        index_url: (!index_url.is_empty()).then_some(index_url),
        find_links: (!find_links.is_empty()).then(|| PathBuf::from(find_links)),
        http: HttpOptions::default(),
        cache: Some(cache.clone()),
        build_python,
    })
    .map_err(|e| download_failed(e.to_string()))?;
    let parsed: Vec<reqs_manager::Requirement> = reqs
        .iter()
        .map(|r| r.name.parse())
        .collect::<Result<_, _>>()
        .map_err(|e: reqs_manager::RequirementError| download_failed(e.to_string()))?;
    let target = target();
    let resolution = Resolver::new(&index, &target)
        .resolve(&parsed)
        .map_err(|e| download_failed(e.to_string()))?;
    for warning in &resolution.warnings {
        log("warning", warning);
    }
    let site = site_dir();
    reqs_manager::install::install_resolution(&index, &resolution, &site).map_err(|e| {
        log("warning", &format!("installing requirements failed: {e}"));
        InstallFailure(format!("{INSTALL_FAILED} {}", one_line(&e.to_string())))
    })?;
    // Each requirement's own wheels: the closure of its project in the resolution.
    let by_name: HashMap<String, &reqs_manager::ResolvedDist> = resolution
        .dists
        .iter()
        .map(|d| (d.name.to_string(), d))
        .collect();
    for (req, parsed) in reqs.iter().zip(&parsed) {
        let mut seen = HashSet::new();
        let mut stack = vec![parsed.name().to_string()];
        let mut wheels = Vec::new();
        while let Some(name) = stack.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            let Some(dist) = by_name.get(&name) else {
                continue;
            };
            let cached = index
                .fetch_cached(&dist.file)
                .map_err(|e| download_failed(e.to_string()))?;
            let destination = req.base_path.join(&dist.file.filename);
            if std::fs::hard_link(&cached.path, &destination).is_err() {
                std::fs::copy(&cached.path, &destination)
                    .map_err(|e| download_failed(format!("{}: {e}", destination.display())))?;
            }
            wheels.push(dist.file.filename.clone());
            stack.extend(dist.requires.iter().map(|n| n.to_string()));
        }
        let _ = req.wheels.set(wheels);
        req.downloaded.store(true, Ordering::SeqCst);
        req.installed.store(true, Ordering::SeqCst);
    }
    Ok(())
}

/// Logs a warning naming the sessions whose requirements had another version of a project the
/// install of `installed` replaced (only one version per project is active on a shard). Runs
/// with the Redis lock held, like every user of the table.
pub fn warn_about_other_versions(installed: &[Arc<Requirement>]) {
    let table: Vec<Arc<Requirement>> = lock(&TABLE).values().cloned().collect();
    let parse = |w: &str| w.parse::<reqs_manager::wheel_name::WheelName>().ok();
    for dist in installed
        .iter()
        .flat_map(|r| r.wheels())
        .filter_map(|w| parse(&w))
    {
        for req in table
            .iter()
            .filter(|t| !installed.iter().any(|i| Arc::ptr_eq(i, t)))
        {
            let other = req.wheels().into_iter().find(|w| {
                parse(w).is_some_and(|wn| wn.name == dist.name && wn.version != dist.version)
            });
            if let Some(other) = other {
                let users: Vec<String> = crate::sessions::all_live()
                    .into_iter()
                    .filter(|s| s.requirements().iter().any(|r| Arc::ptr_eq(r, req)))
                    .map(|s| s.id.clone())
                    .collect();
                log(
                    "warning",
                    &format!(
                        "installing {} {} replaces {other} of requirement '{}' used by session(s) {}",
                        dist.name,
                        dist.version,
                        req.name,
                        users.join(", ")
                    ),
                );
            }
        }
    }
}

/// Error replies are one line.
fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

/// After a failed or abandoned install, reinstalls the table's requirements that share a project
/// with `failed` (the spec's §5 restores the table entry of the same string; restoring every
/// table entry whose package was overwritten also keeps other sessions on their versions).
pub fn restore_table_versions(failed: &[Arc<Requirement>]) {
    let project = |wheel: &str| {
        wheel
            .parse::<reqs_manager::wheel_name::WheelName>()
            .ok()
            .map(|w| w.name)
    };
    let touched: HashSet<_> = failed
        .iter()
        .flat_map(|r| r.wheels())
        .filter_map(|w| project(&w))
        .collect();
    let names: HashSet<&str> = failed.iter().map(|r| r.name.as_str()).collect();
    let table: Vec<Arc<Requirement>> = lock(&TABLE)
        .values()
        .filter(|t| !failed.iter().any(|f| Arc::ptr_eq(f, t)))
        .filter(|t| {
            names.contains(t.name.as_str())
                || t.wheels()
                    .iter()
                    .filter_map(|w| project(w))
                    .any(|p| touched.contains(&p))
        })
        .cloned()
        .collect();
    let site = site_dir();
    for req in table {
        let wheels: Vec<(std::fs::File, String)> = req
            .wheels()
            .into_iter()
            .filter_map(|w| {
                std::fs::File::open(req.base_path.join(&w))
                    .ok()
                    .map(|f| (f, w))
            })
            .collect();
        for result in reqs_manager::install::install_all(wheels, &site) {
            if let Err(err) = result {
                log(
                    "warning",
                    &format!("restoring requirement '{}' failed: {err}", req.name),
                );
            }
        }
    }
}

/// The RDB aux section (ours, encoding version 1, saved before the keyspace): for each table
/// entry its string and its wheels' names and bytes, so a restart or a replica's full sync
/// reinstalls them offline. Pure Rust: it runs in the forked child for BGSAVE.
pub fn aux_save(rdb: *mut raw::RedisModuleIO) {
    let table: Vec<Arc<Requirement>> = lock(&TABLE).values().cloned().collect();
    // Those whose wheels are all there; each wheel is then read as it is saved, so memory holds
    // one wheel at a time however many there are.
    let mut saved = Vec::new();
    for req in table.iter().filter(|r| r.is_downloaded()) {
        if req.wheels().iter().all(|w| req.base_path.join(w).is_file()) {
            saved.push(req);
        } else {
            log(
                "warning",
                &format!(
                    "Failed serializing requirement {} (a wheel file is missing)",
                    req.name
                ),
            );
        }
    }
    let mut out = crate::persist::RdbIo(rdb);
    formats::aux::write_requirements_count(&mut out, saved.len());
    for req in saved {
        // Checked above; a file gone since is saved empty and fails its install at load.
        formats::aux::write_requirement(&mut out, &req.name, &req.wheels(), |wheel| {
            std::fs::read(req.base_path.join(wheel)).unwrap_or_default()
        });
    }
}

/// Reads [`aux_save`]'s section: the table is replaced by the saved requirements, whose wheels
/// are written to new directories and installed (offline) before the load goes on.
pub fn aux_load(rdb: *mut raw::RedisModuleIO) -> Result<(), String> {
    let loaded = formats::aux::read_requirements(&mut crate::persist::RdbIo(rdb))
        .map_err(|e| e.to_string())?;
    let mut table = BTreeMap::new();
    for formats::aux::SavedRequirement { name, wheels } in loaded {
        let req = install_placed(&name, wheels, |_, bytes, path| {
            std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
        })?;
        req.in_table.store(true, Ordering::SeqCst);
        table.insert(name, req);
    }
    let installed_any = !table.is_empty();
    *lock(&TABLE) = table;
    if installed_any {
        crate::python::reset_module_cache();
    }
    Ok(())
}

/// Largest piece of a wheel in one replicated command: far below `proto-max-bulk-len`, however
/// large the wheel.
const CHUNK: usize = 8 * 1024 * 1024;

/// Sends newly installed requirements to replicas and the AOF, wheel bytes in pieces
/// (`RG.INNERREQPUT`), then `RG.INNERREQDONE` which installs them there.
pub fn propagate(ctx: &redis_module::Context, reqs: &[Arc<Requirement>]) {
    if nobody_listens(ctx) {
        // Reading the wheels would hold the main thread for nothing (a second per GB).
        return;
    }
    for req in reqs.iter().filter(|r| r.is_downloaded()) {
        let wheels = req.wheels();
        for wheel in &wheels {
            // A piece at a time: a wheel may be larger than what memory should hold.
            let sent = (|| -> std::io::Result<()> {
                let mut file = std::fs::File::open(req.base_path.join(wheel))?;
                let mut buffer = vec![0u8; CHUNK];
                let mut offset = 0u64;
                loop {
                    let filled = read_full(&mut file, &mut buffer)?;
                    if filled == 0 && offset > 0 {
                        return Ok(());
                    }
                    let offset_text = offset.to_string();
                    let args: [&[u8]; 4] = [
                        req.name.as_bytes(),
                        wheel.as_bytes(),
                        offset_text.as_bytes(),
                        &buffer[..filled],
                    ];
                    ctx.replicate("RG.INNERREQPUT", &args[..]);
                    offset += filled as u64;
                    if filled < CHUNK {
                        return Ok(());
                    }
                }
            })();
            if let Err(e) = sent {
                log(
                    "warning",
                    &format!(
                        "requirement '{}': {wheel} could not be read ({e}), not replicated",
                        req.name
                    ),
                );
                return;
            }
        }
        let mut args: Vec<&[u8]> = vec![req.name.as_bytes()];
        args.extend(wheels.iter().map(|w| w.as_bytes()));
        ctx.replicate("RG.INNERREQDONE", &args[..]);
    }
}

/// Nothing would receive a replicated command: no AOF, no replica and no replication backlog (a
/// replica that attaches later gets the wheels in its full sync's RDB).
fn nobody_listens(ctx: &redis_module::Context) -> bool {
    use redis_module::{ContextFlags, RedisValue};
    if ctx.get_flags().contains(ContextFlags::AOF) {
        return false;
    }
    let info = match ctx.call("INFO", &["replication"]) {
        Ok(RedisValue::SimpleString(s) | RedisValue::BulkString(s)) => s,
        Ok(RedisValue::BulkRedisString(s)) => s.to_string_lossy(),
        Ok(RedisValue::StringBuffer(b)) => String::from_utf8_lossy(&b).into_owned(),
        Ok(RedisValue::VerbatimString((_, b))) => String::from_utf8_lossy(&b).into_owned(),
        _ => return false,
    };
    info.contains("connected_slaves:0") && info.contains("repl_backlog_active:0")
}

/// Fills `buffer` from `file` as far as it goes; how many bytes were read (fewer than its length
/// only at the end of the file).
pub fn read_full(file: &mut std::fs::File, buffer: &mut [u8]) -> std::io::Result<usize> {
    use std::io::Read;
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// Where a replica collects the pieces of a requirement's wheels.
fn incoming_dir(name: &str) -> PathBuf {
    let digest = reqs_manager::Sha256Hex::of(name.as_bytes());
    requirements_dir()
        .join(".incoming")
        .join(&digest.as_str()[..16])
}

/// Refuses a wheel file name that could leave its directory or is not a wheel.
pub fn check_wheel_name(wheel: &str) -> Result<(), String> {
    formats::check_wheel_name(wheel).map_err(|e| e.to_string())
}

/// `RG.INNERREQPUT <req> <wheel> <offset> <bytes>`: one piece of a wheel, in order.
pub fn inner_put(name: &str, wheel: &str, offset: u64, bytes: &[u8]) -> Result<(), String> {
    check_wheel_name(wheel)?;
    write_piece(&incoming_dir(name), wheel, offset, bytes)
}

/// Writes the piece of `wheel` at `offset` into `dir`: the first piece starts the file, each
/// next one must continue it exactly.
pub fn write_piece(dir: &Path, wheel: &str, offset: u64, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let path = dir.join(wheel);
    let current = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let mut file = if offset == 0 {
        std::fs::File::create(&path)
    } else if offset == current {
        std::fs::OpenOptions::new().append(true).open(&path)
    } else {
        return Err(format!(
            "{wheel}: piece at offset {offset}, but {current} bytes arrived"
        ));
    }
    .map_err(|e| format!("{wheel}: {e}"))?;
    file.write_all(bytes).map_err(|e| format!("{wheel}: {e}"))
}

/// `RG.INNERREQDONE <req> <wheel> ...`: the requirement's wheels arrived; it is installed
/// (offline) and enters the table, replacing an entry with the same string.
pub fn inner_done(name: &str, wheels: &[String]) -> Result<(), String> {
    let incoming = incoming_dir(name);
    let req = install_placed(
        name,
        wheels.iter().map(|w| (w.clone(), ())).collect(),
        |wheel, (), path| {
            std::fs::rename(incoming.join(wheel), path).map_err(|e| format!("{wheel}: {e}"))
        },
    )?;
    let _ = std::fs::remove_dir_all(&incoming);
    insert_in_table(&req);
    crate::python::reset_module_cache();
    Ok(())
}

/// Wheels of requirement `name` received from another shard into `dir`: each is checked against
/// the sha256 it was sent with, then installed (offline) and the requirement enters the table,
/// unless the table already holds `name` installed from the same wheels (None then).
pub fn install_received(
    name: &str,
    dir: &Path,
    wheels: &[(String, String)],
) -> Result<Option<Arc<Requirement>>, String> {
    for (wheel, expected) in wheels {
        check_wheel_name(wheel)?;
        let mut file = std::fs::File::open(dir.join(wheel)).map_err(|e| format!("{wheel}: {e}"))?;
        let got = wheels_cache::hash_reader(&mut file).map_err(|e| format!("{wheel}: {e}"))?;
        if got != *expected {
            return Err(format!(
                "requirement '{name}': {wheel} arrived with sha256 {got}, sent with {expected}"
            ));
        }
    }
    let names: Vec<String> = wheels.iter().map(|(w, _)| w.clone()).collect();
    if let Some(existing) = by_name(name) {
        if existing.is_installed() && existing.wheels() == names {
            return Ok(None);
        }
    }
    let req = install_placed(
        name,
        names.into_iter().map(|w| (w, ())).collect(),
        |wheel, (), path| {
            std::fs::rename(dir.join(wheel), path).map_err(|e| format!("{wheel}: {e}"))
        },
    )?;
    insert_in_table(&req);
    crate::python::reset_module_cache();
    Ok(Some(req))
}

/// A new requirement `name` whose wheels `place` puts into its directory, installed offline into
/// the shard: what an RDB load, a replicated requirement and RG.PYIMPORTREQ all do.
fn install_placed<W>(
    name: &str,
    wheels: Vec<(String, W)>,
    mut place: impl FnMut(&str, W, &Path) -> Result<(), String>,
) -> Result<Arc<Requirement>, String> {
    let Preparation::Install(mut created) =
        prepare(&[name.to_string()], true).map_err(|e| format!("{IMPORT_FAILED} ({e})"))?
    else {
        unreachable!("a forced preparation always creates");
    };
    let req = created.remove(0);
    let mut names = Vec::with_capacity(wheels.len());
    let mut files = Vec::with_capacity(wheels.len());
    for (wheel, source) in wheels {
        check_wheel_name(&wheel).map_err(|e| format!("{IMPORT_FAILED} ({e})"))?;
        let path = req.base_path.join(&wheel);
        place(&wheel, source, &path)?;
        let file = std::fs::File::open(&path).map_err(|e| format!("{wheel}: {e}"))?;
        files.push((file, wheel.clone()));
        names.push(wheel);
    }
    for result in reqs_manager::install::install_all(files, &site_dir()) {
        result.map_err(|e| {
            log(
                "warning",
                &format!("installing requirement '{name}' failed: {e}"),
            );
            format!("{IMPORT_FAILED} ({})", one_line(&e.to_string()))
        })?;
    }
    let _ = req.wheels.set(names);
    req.downloaded.store(true, Ordering::SeqCst);
    req.installed.store(true, Ordering::SeqCst);
    Ok(req)
}

/// RG.PYEXPORTREQ: the table entry's 18-element metadata and its serialized form in chunks.
pub fn export(name: &str) -> Result<(Reply, Vec<Vec<u8>>), String> {
    let req = lock(&TABLE)
        .get(name)
        .cloned()
        .ok_or_else(|| "requirement does not exists".to_string())?;
    if !req.is_downloaded() {
        return Err("Requirement was not installed yet".into());
    }
    let mut wheels = Vec::new();
    for wheel in req.wheels() {
        let path = req.base_path.join(&wheel);
        let bytes =
            std::fs::read(&path).map_err(|_| format!("Could not open file {}", path.display()))?;
        wheels.push((wheel, bytes));
    }
    let bundle = reqs_manager::bundle::RequirementBundle {
        name: req.name.clone(),
        compiled_os: compiled_os(),
        in_table: true,
        wheels,
    };
    Ok((req.dump(1), bundle.chunks()))
}

/// The interpreter requirements are resolved and checked for: the embedded one on this host.
fn target() -> TargetPython {
    let ((major, minor, micro), _) = INTERPRETER.get().cloned().unwrap_or(((3, 11, 0), None));
    TargetPython::host((major, minor, micro))
}

/// RG.PYIMPORTREQ's checks before anything is written: every file is a wheel this shard's
/// interpreter can use (a bundle built for another platform is named as such).
pub fn check_bundle(bundle: &reqs_manager::bundle::RequirementBundle) -> Result<(), String> {
    let target = target();
    let tags = target.tag_priorities();
    for (wheel, _) in &bundle.wheels {
        let name: reqs_manager::wheel_name::WheelName =
            wheel
                .parse()
                .map_err(|e: reqs_manager::wheel_name::WheelNameError| {
                    format!("{IMPORT_FAILED} ({e})")
                })?;
        if tags.best_rank(name.tags()).is_none() {
            let declared: Vec<String> = name
                .tags()
                .map(|(p, a, pl)| format!("{p}-{a}-{pl}"))
                .collect();
            let platforms = target.platform_tags();
            return Err(format!(
                "{IMPORT_FAILED} ({wheel} is built for {}, which this server's Python {}.{} on {} cannot use; it accepts cp{}{} or abi3 or pure wheels for {} ... {})",
                declared.join(", "),
                target.version.0,
                target.version.1,
                target.machine,
                target.version.0,
                target.version.1,
                platforms.first().map(String::as_str).unwrap_or("any"),
                platforms.last().map(String::as_str).unwrap_or("any"),
            ));
        }
    }
    Ok(())
}

/// The spec's text for an install that failed on a shard.
pub const IMPORT_FAILED: &str =
    "Failed install requirement on shard, check shard log for more info.";

/// Installs an imported requirement (on the install thread): its wheels go to a new directory
/// and are installed offline. The caller puts it in the table under the Redis lock.
pub fn import(bundle: reqs_manager::bundle::RequirementBundle) -> Result<Arc<Requirement>, String> {
    install_placed(&bundle.name, bundle.wheels, |_, bytes, path| {
        std::fs::write(path, bytes).map_err(|_| "Failed writing data to file".to_string())
    })
}

/// After an import: the requirement enters the table (replacing an entry with its string) when
/// the bundle says so, replicas get it, and the next imports load the new files.
pub fn finish_import(ctx: &redis_module::Context, req: &Arc<Requirement>, in_table: bool) {
    if in_table {
        insert_in_table(req);
    }
    propagate(ctx, std::slice::from_ref(req));
    crate::python::reset_module_cache();
}
