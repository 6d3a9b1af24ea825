//! Installs wheels into a shard's directory the way an installer does (the layout of
//! `pip install --target`): purelib and platlib at the root, `.data/scripts` in `bin/`,
//! `.data/headers` in `include/<name>/`, `.data/data` at the root; RECORD rewritten with the
//! installed paths and INSTALLER written.
//!
//! Safety first: every entry is checked (no `..`, no absolute path, no symlink, listed in RECORD)
//! before anything is written, every file is checked against its RECORD hash while it is
//! extracted, and the wheel is unpacked into a staging directory inside the target and renamed
//! into place only when complete, so a half-installed package is never importable.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read, Seek, Write};
use std::path::{Component, Path, PathBuf};

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::metadata::CoreMetadata;
use crate::wheel_name::WheelName;

/// Why a wheel was not installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{wheel}: refusing entry '{entry}': {reason}")]
    UnsafeEntry {
        wheel: String,
        entry: String,
        reason: &'static str,
    },
    #[error("{wheel}: {reason}")]
    BadWheel { wheel: String, reason: String },
    #[error("{wheel}: RECORD is not valid: {reason}")]
    BadRecord { wheel: String, reason: String },
    #[error("{wheel}: '{entry}' does not match its RECORD hash")]
    RecordMismatch { wheel: String, entry: String },
    #[error(transparent)]
    Fetch(#[from] crate::index::IndexError),
    #[error("installing {wheel}: {action} {path}: {source}")]
    Io {
        wheel: String,
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

/// What an install put in place.
#[derive(Clone, Debug)]
pub struct InstalledDist {
    pub name: String,
    pub version: String,
    /// Installed paths, relative to the target.
    pub files: Vec<String>,
}

/// Fetches every wheel of a resolution through the wheels cache (in parallel) and installs them
/// into `target` (in parallel), each from the cache's unpacked copy by hard links (see
/// [`install_cached`]). Stops at the first failure, naming the wheel.
pub fn install_resolution(
    index: &crate::index::PackageIndex,
    resolution: &crate::resolver::Resolution,
    target: &Path,
) -> Result<Vec<InstalledDist>, InstallError> {
    let cache = index.cache().cloned();
    let results = parallel(resolution.dists.iter().collect(), |dist| {
        let wheel = index.fetch_cached(&dist.file)?;
        match &cache {
            Some(cache) => install_cached(cache, wheel, &dist.file.filename, target),
            None => install_wheel(wheel.file, &dist.file.filename, target),
        }
    });
    results.into_iter().collect()
}

/// Installs several wheels into `target`, independent wheels in parallel (one thread per core).
/// Each result is that wheel's; a failed wheel leaves the others installed.
pub fn install_all<R: Read + Seek + Send>(
    wheels: Vec<(R, String)>,
    target: &Path,
) -> Vec<Result<InstalledDist, InstallError>> {
    parallel(wheels, |(reader, filename)| {
        install_wheel(reader, &filename, target)
    })
}

/// Runs `work` on every item with one worker per core; results keep the items' order.
fn parallel<T: Send, R: Send>(items: Vec<T>, work: impl Fn(T) -> R + Sync) -> Vec<R> {
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(items.len().max(1));
    let jobs = std::sync::Mutex::new(items.into_iter().enumerate().collect::<Vec<_>>());
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let next = jobs.lock().unwrap_or_else(|e| e.into_inner()).pop();
                let Some((index, item)) = next else { break };
                let result = work(item);
                results
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((index, result));
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|(index, _)| *index);
    results.into_iter().map(|(_, result)| result).collect()
}

/// Installs one wheel into `target` (created if missing), replacing any installed version of the
/// same project.
pub fn install_wheel(
    reader: impl Read + Seek,
    filename: &str,
    target: &Path,
) -> Result<InstalledDist, InstallError> {
    let staging = staging_dir(target, filename)?;
    let unpacked = unpack(reader, filename, staging.path())?;
    place(staging.path(), &unpacked, target, filename)?;
    Ok(unpacked)
}

/// Installs a cached wheel. The first install of a wheel on a host unpacks it (checked entry by
/// entry as [`install_wheel`] does) into the cache's `unpacked/<sha256>/`, read-only; every
/// install then hard-links those files into a staging directory of the target (copying when the
/// target is on another file system) and renames them into place. Directories are the target's
/// own, so `__pycache__` files never reach the cache. The unpacked copy is checked against its
/// RECORD before each use; a copy changed behind our back is unpacked again from the wheel.
pub fn install_cached(
    cache: &wheels_cache::WheelsCache,
    wheel: wheels_cache::CachedWheel,
    filename: &str,
    target: &Path,
) -> Result<InstalledDist, InstallError> {
    let io_err = |action, path: &Path| io_error(filename, action, path);
    let unpacked_dir = cache.unpacked_path(&wheel.sha256);
    let mut unpacked = read_unpacked(&unpacked_dir, filename);
    if unpacked.is_none() {
        let _lock = cache
            .lock(&format!("unpack-{}", wheel.sha256))
            .map_err(|err| InstallError::Fetch(err.into()))?;
        unpacked = read_unpacked(&unpacked_dir, filename);
        if unpacked.is_none() {
            let _ = fs::remove_dir_all(&unpacked_dir);
            let temp = tempfile::Builder::new()
                .prefix("unpack-")
                .tempdir_in(cache.tmp_dir())
                .map_err(io_err("creating a directory in", &cache.tmp_dir()))?;
            let fresh = unpack(wheel.file, filename, temp.path())?;
            make_read_only(temp.path()).map_err(io_err("protecting", temp.path()))?;
            if let Some(parent) = unpacked_dir.parent() {
                fs::create_dir_all(parent).map_err(io_err("creating", parent))?;
            }
            let kept = temp.keep();
            fs::rename(&kept, &unpacked_dir).map_err(io_err("renaming into", &unpacked_dir))?;
            unpacked = Some(fresh);
        }
    }
    let unpacked = unpacked.expect("unpacked above");
    let staging = staging_dir(target, filename)?;
    link_tree(&unpacked_dir, staging.path()).map_err(io_err("linking into", staging.path()))?;
    place(staging.path(), &unpacked, target, filename)?;
    Ok(unpacked)
}

fn io_error(
    wheel: &str,
    action: &'static str,
    path: &Path,
) -> impl FnOnce(io::Error) -> InstallError {
    let wheel = wheel.to_string();
    let path = path.to_path_buf();
    move |source| InstallError::Io {
        wheel,
        action,
        path,
        source,
    }
}

/// The name every staging directory starts with.
const STAGING_PREFIX: &str = ".gears-staging-";

/// A staging directory inside the target, so the final renames stay on one file system.
fn staging_dir(target: &Path, filename: &str) -> Result<tempfile::TempDir, InstallError> {
    fs::create_dir_all(target).map_err(io_error(filename, "creating", target))?;
    tempfile::Builder::new()
        .prefix(STAGING_PREFIX)
        .tempdir_in(target)
        .map_err(io_error(
            filename,
            "creating a staging directory in",
            target,
        ))
}

/// The description of an unpacked tree, if it is complete and every file still matches its
/// RECORD.
fn read_unpacked(dir: &Path, filename: &str) -> Option<InstalledDist> {
    let dist_info = fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|name| name.ends_with(".dist-info"))?;
    let record = fs::read(dir.join(&dist_info).join("RECORD")).ok()?;
    let rows = parse_record(&record, filename).ok()?;
    let mut files = Vec::with_capacity(rows.len());
    for (path, digest) in rows {
        if let Some(digest) = digest {
            let mut file = File::open(dir.join(&path)).ok()?;
            let mut sink = io::sink();
            let (actual, _) = copy_hashing_to(&mut file, &mut sink).ok()?;
            if actual != digest {
                return None;
            }
        }
        files.push(path);
    }
    files.sort();
    let stem = dist_info.trim_end_matches(".dist-info");
    let (name, version) = stem.rsplit_once('-')?;
    Some(InstalledDist {
        name: name.parse::<pep508_rs::PackageName>().ok()?.to_string(),
        version: version.to_string(),
        files,
    })
}

/// Hard-links every file of `from` into `to` (created), recreating the directories; copies
/// when linking is impossible (another file system).
fn link_tree(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let source = entry.path();
        let destination = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            link_tree(&source, &destination)?;
        } else if fs::hard_link(&source, &destination).is_err() {
            fs::copy(&source, &destination)?;
        }
    }
    Ok(())
}

/// Clears the write bits of every file under `dir`: cached files are shared by hard links.
fn make_read_only(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            make_read_only(&entry.path())?;
        } else {
            let mut permissions = entry.metadata()?.permissions();
            permissions.set_readonly(true);
            fs::set_permissions(entry.path(), permissions)?;
        }
    }
    Ok(())
}

/// Checks every entry of the wheel, then writes it, laid out for installation, into `dest`
/// (verifying each file against RECORD as it is written), with INSTALLER and the rewritten
/// RECORD.
fn unpack(
    reader: impl Read + Seek,
    filename: &str,
    dest: &Path,
) -> Result<InstalledDist, InstallError> {
    let wheel_name: WheelName =
        filename
            .parse()
            .map_err(
                |err: crate::wheel_name::WheelNameError| InstallError::BadWheel {
                    wheel: filename.to_string(),
                    reason: err.to_string(),
                },
            )?;
    let io_err = |action, path: &Path| io_error(filename, action, path);
    let bad = |reason: String| InstallError::BadWheel {
        wheel: filename.to_string(),
        reason,
    };
    let mut archive = zip::ZipArchive::new(reader)
        .map_err(|err| bad(format!("not a readable zip archive: {err}")))?;
    let plan = plan_entries(&mut archive, filename)?;

    // Metadata must parse and name this wheel.
    let metadata_bytes = read_entry(
        &mut archive,
        &format!("{}/METADATA", plan.dist_info),
        filename,
    )?;
    let metadata = CoreMetadata::parse(&metadata_bytes, &format!("{filename} METADATA"))
        .map_err(|err| bad(err.to_string()))?;
    if metadata.name != wheel_name.name {
        return Err(bad(format!(
            "its METADATA names {}, not {}",
            metadata.name, wheel_name.name
        )));
    }
    let wheel_info = read_entry(&mut archive, &format!("{}/WHEEL", plan.dist_info), filename)?;
    let wheel_info = String::from_utf8_lossy(&wheel_info);
    let wheel_version = wheel_info
        .lines()
        .find_map(|line| line.strip_prefix("Wheel-Version:"))
        .map(str::trim)
        .ok_or_else(|| bad("its WHEEL file has no Wheel-Version".into()))?;
    if !wheel_version.starts_with("1.") {
        return Err(bad(format!(
            "Wheel-Version {wheel_version} is not supported (1.x is)"
        )));
    }
    let record_bytes = read_entry(&mut archive, &plan.record, filename)?;
    let record = parse_record(&record_bytes, filename)?;

    let mut installed = Vec::new();
    for entry in &plan.files {
        if entry.archive_name == plan.record {
            continue;
        }
        let expected = record
            .get(&entry.archive_name)
            .ok_or_else(|| InstallError::BadRecord {
                wheel: filename.to_string(),
                reason: format!("'{}' is in the wheel but not in RECORD", entry.archive_name),
            })?;
        let destination = dest.join(&entry.installed);
        if let Some(parent) = destination.parent() {
            fs::create_dir_all(parent).map_err(io_err("creating", parent))?;
        }
        let mut zip_file = archive
            .by_index(entry.index)
            .map_err(|err| bad(format!("reading '{}': {err}", entry.archive_name)))?;
        let mut out = File::create(&destination).map_err(io_err("creating", &destination))?;
        let (digest, size) =
            copy_hashing_to(&mut zip_file, &mut out).map_err(io_err("writing", &destination))?;
        if let Some(expected) = expected {
            if *expected != digest {
                return Err(InstallError::RecordMismatch {
                    wheel: filename.to_string(),
                    entry: entry.archive_name.clone(),
                });
            }
        }
        if entry.executable {
            set_executable(&destination).map_err(io_err("setting permissions of", &destination))?;
        }
        installed.push((entry.installed.clone(), digest, size));
    }
    // INSTALLER and the rewritten RECORD, in the installed dist-info.
    let dist_info = dest.join(&plan.dist_info);
    let installer_path = dist_info.join("INSTALLER");
    fs::write(&installer_path, b"gears-rs\n").map_err(io_err("writing", &installer_path))?;
    installed.push((
        format!("{}/INSTALLER", plan.dist_info),
        record_digest(b"gears-rs\n"),
        9,
    ));
    let record_path = dist_info.join("RECORD");
    let mut record_text = String::new();
    for (path, digest, size) in &installed {
        record_text.push_str(&format!("{},sha256={digest},{size}\n", csv_field(path)));
    }
    record_text.push_str(&format!("{}/RECORD,,\n", csv_field(&plan.dist_info)));
    fs::write(&record_path, record_text).map_err(io_err("writing", &record_path))?;
    let mut files: Vec<String> = installed.into_iter().map(|(path, _, _)| path).collect();
    files.push(format!("{}/RECORD", plan.dist_info));
    files.sort();
    Ok(InstalledDist {
        name: metadata.name.to_string(),
        version: metadata.version.to_string(),
        files,
    })
}

/// Moves a complete staged install into `target`: code first, the dist-info last (it appears
/// once the code it describes is complete); then removes what the replaced version had and the
/// new one does not.
fn place(
    staging: &Path,
    unpacked: &InstalledDist,
    target: &Path,
    filename: &str,
) -> Result<(), InstallError> {
    let io_err = |action, path: &Path| io_error(filename, action, path);
    let name: pep508_rs::PackageName =
        unpacked.name.parse().map_err(|_| InstallError::BadWheel {
            wheel: filename.to_string(),
            reason: format!("'{}' is not a project name", unpacked.name),
        })?;
    let previous = find_installed(target, &name).map_err(io_err("reading", target))?;
    let new_files: HashSet<&String> = unpacked.files.iter().collect();
    let mut tops: Vec<String> = fs::read_dir(staging)
        .map_err(io_err("reading", staging))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    tops.sort_by_key(|top| (top.ends_with(".dist-info"), top.clone()));
    for top in &tops {
        let from = staging.join(top);
        let to = target.join(top);
        if let Some((_, old_files)) = &previous {
            if to.is_dir() && owned_entirely(&to, target, old_files) {
                // The old version's own directory: swap it out whole.
                let trash = staging.join(format!(".old-{top}"));
                fs::rename(&to, &trash).map_err(io_err("moving aside", &to))?;
            }
        }
        merge_move(&from, &to).map_err(io_err("moving into place", &to))?;
    }
    if let Some((old_dist_info, old_files)) = previous {
        for old in old_files.iter().filter(|f| !new_files.contains(f)) {
            let path = target.join(old);
            let _ = fs::remove_file(&path);
            remove_empty_parents(&path, target);
        }
        let new_dist_info = tops.iter().find(|t| t.ends_with(".dist-info"));
        if Some(&old_dist_info) != new_dist_info {
            let _ = fs::remove_dir_all(target.join(old_dist_info));
        }
    }
    Ok(())
}

/// Removes the staging directories an install killed half-way left in `target` (never
/// importable: their names are not identifiers, and nothing in them was moved into place).
/// Returns how many were removed.
pub fn remove_leftover_staging(target: &Path) -> io::Result<usize> {
    let mut removed = 0;
    let entries = match fs::read_dir(target) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(STAGING_PREFIX)
        {
            fs::remove_dir_all(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// One archive entry and where it goes.
struct PlannedFile {
    index: usize,
    archive_name: String,
    installed: String,
    executable: bool,
}

struct Plan {
    dist_info: String,
    record: String,
    files: Vec<PlannedFile>,
}

/// Checks every entry before anything is written and maps it to its installed path.
fn plan_entries<R: Read + Seek>(
    archive: &mut zip::ZipArchive<R>,
    wheel: &str,
) -> Result<Plan, InstallError> {
    let unsafe_entry = |entry: &str, reason| InstallError::UnsafeEntry {
        wheel: wheel.to_string(),
        entry: entry.to_string(),
        reason,
    };
    let mut names = Vec::with_capacity(archive.len());
    for index in 0..archive.len() {
        let file = archive
            .by_index_raw(index)
            .map_err(|err| InstallError::BadWheel {
                wheel: wheel.to_string(),
                reason: format!("entry {index}: {err}"),
            })?;
        let name = String::from_utf8_lossy(file.name_raw()).into_owned();
        if name.contains('\0') {
            return Err(unsafe_entry(&name, "its name contains NUL"));
        }
        if name.contains('\\') {
            return Err(unsafe_entry(&name, "its name contains a backslash"));
        }
        if name.starts_with('/') || name.as_bytes().get(1) == Some(&b':') {
            return Err(unsafe_entry(&name, "it is an absolute path"));
        }
        if Path::new(&name).components().any(|c| {
            matches!(
                c,
                Component::ParentDir | Component::RootDir | Component::Prefix(_)
            )
        }) {
            return Err(unsafe_entry(&name, "it escapes the target directory"));
        }
        let is_symlink = file
            .unix_mode()
            .is_some_and(|mode| mode & 0o170000 == 0o120000);
        if is_symlink {
            return Err(unsafe_entry(&name, "it is a symbolic link"));
        }
        let executable = file.unix_mode().is_some_and(|mode| mode & 0o111 != 0);
        names.push((index, name, file.is_dir(), executable));
    }
    let dist_infos: HashSet<&str> = names
        .iter()
        .filter_map(|(_, name, _, _)| {
            name.split('/')
                .next()
                .filter(|top| top.ends_with(".dist-info"))
        })
        .collect();
    let dist_info = match dist_infos.into_iter().collect::<Vec<_>>().as_slice() {
        [one] => one.to_string(),
        [] => {
            return Err(InstallError::BadWheel {
                wheel: wheel.to_string(),
                reason: "it has no .dist-info directory".into(),
            })
        }
        _ => {
            return Err(InstallError::BadWheel {
                wheel: wheel.to_string(),
                reason: "it has more than one .dist-info directory".into(),
            })
        }
    };
    let data_dir = format!("{}.data", dist_info.trim_end_matches(".dist-info"));
    let project = dist_info
        .trim_end_matches(".dist-info")
        .split('-')
        .next()
        .unwrap_or("")
        .to_string();
    let mut files = Vec::new();
    for (index, name, is_dir, executable) in names {
        if is_dir {
            continue;
        }
        let installed =
            match name.strip_prefix(&format!("{data_dir}/")) {
                None => name.clone(),
                Some(rest) => {
                    let (scheme, path) = rest.split_once('/').ok_or_else(|| {
                        unsafe_entry(&name, "it is not inside a scheme directory of .data")
                    })?;
                    match scheme {
                        "purelib" | "platlib" | "data" => path.to_string(),
                        "scripts" => format!("bin/{path}"),
                        "headers" => format!("include/{project}/{path}"),
                        _ => return Err(unsafe_entry(
                            &name,
                            "its .data scheme is not purelib, platlib, scripts, headers or data",
                        )),
                    }
                }
            };
        if installed.is_empty() || installed.starts_with(".gears-staging-") {
            return Err(unsafe_entry(&name, "it has no installable path"));
        }
        files.push(PlannedFile {
            index,
            archive_name: name,
            installed,
            executable,
        });
    }
    Ok(Plan {
        record: format!("{dist_info}/RECORD"),
        dist_info,
        files,
    })
}

fn read_entry<R: Read + Seek>(
    archive: &mut zip::ZipArchive<R>,
    name: &str,
    wheel: &str,
) -> Result<Vec<u8>, InstallError> {
    let mut file = archive.by_name(name).map_err(|_| InstallError::BadWheel {
        wheel: wheel.to_string(),
        reason: format!("it has no {name}"),
    })?;
    let mut bytes = Vec::new();
    file.by_ref()
        .take(64 * 1024 * 1024)
        .read_to_end(&mut bytes)
        .map_err(|err| InstallError::BadWheel {
            wheel: wheel.to_string(),
            reason: format!("reading {name}: {err}"),
        })?;
    Ok(bytes)
}

/// RECORD rows: path → its `sha256=` digest (None for RECORD itself and signatures).
fn parse_record(
    bytes: &[u8],
    wheel: &str,
) -> Result<std::collections::HashMap<String, Option<String>>, InstallError> {
    let bad = |reason: String| InstallError::BadRecord {
        wheel: wheel.to_string(),
        reason,
    };
    let text = std::str::from_utf8(bytes).map_err(|_| bad("it is not UTF-8".into()))?;
    let mut rows = std::collections::HashMap::new();
    for (number, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let fields =
            split_csv(line).ok_or_else(|| bad(format!("line {} is not valid CSV", number + 1)))?;
        let [path, hash, _size] = fields.as_slice() else {
            return Err(bad(format!("line {} does not have 3 fields", number + 1)));
        };
        let digest = if hash.is_empty() {
            None
        } else {
            let digest = hash.strip_prefix("sha256=").ok_or_else(|| {
                bad(format!(
                    "line {}: hash '{hash}' is not sha256=<urlsafe base64>",
                    number + 1
                ))
            })?;
            if base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(digest)
                .map(|d| d.len())
                != Ok(32)
            {
                return Err(bad(format!(
                    "line {}: hash '{hash}' is not sha256=<urlsafe base64>",
                    number + 1
                )));
            }
            Some(digest.to_string())
        };
        rows.insert(path.clone(), digest);
    }
    Ok(rows)
}

/// Splits one CSV line (fields may be double-quoted, `""` escapes a quote).
fn split_csv(line: &str) -> Option<Vec<String>> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => fields.push(std::mem::take(&mut field)),
            (_, c) => field.push(c),
        }
    }
    if quoted {
        return None;
    }
    fields.push(field);
    Some(fields)
}

fn csv_field(path: &str) -> String {
    if path.contains([',', '"']) {
        format!("\"{}\"", path.replace('"', "\"\""))
    } else {
        path.to_string()
    }
}

fn record_digest(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(bytes))
}

fn copy_hashing_to(reader: &mut impl Read, writer: &mut impl Write) -> io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = reader.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        writer.write_all(&buffer[..n])?;
        size += n as u64;
    }
    Ok((
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hasher.finalize()),
        size,
    ))
}

#[cfg(unix)]
fn set_executable(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut permissions = fs::metadata(path)?.permissions();
    permissions.set_mode(permissions.mode() | 0o755);
    fs::set_permissions(path, permissions)
}

#[cfg(not(unix))]
fn set_executable(_path: &Path) -> io::Result<()> {
    Ok(())
}

/// The installed dist-info of project `name` in `target`, with the files its RECORD lists.
fn find_installed(
    target: &Path,
    name: &pep508_rs::PackageName,
) -> io::Result<Option<(String, HashSet<String>)>> {
    for entry in fs::read_dir(target)? {
        let entry = entry?;
        let dir = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = dir.strip_suffix(".dist-info") else {
            continue;
        };
        let project = stem.rsplit_once('-').map_or(stem, |(project, _)| project);
        if project.parse::<pep508_rs::PackageName>().ok().as_ref() != Some(name) {
            continue;
        }
        let record = fs::read(entry.path().join("RECORD")).unwrap_or_default();
        let files = String::from_utf8_lossy(&record)
            .lines()
            .filter_map(split_csv)
            .filter_map(|fields| fields.into_iter().next())
            .filter(|path| {
                Path::new(path)
                    .components()
                    .all(|c| matches!(c, Component::Normal(_)))
            })
            .collect();
        return Ok(Some((dir, files)));
    }
    Ok(None)
}

/// Whether every file under `dir` is listed in `files` (paths relative to `target`).
fn owned_entirely(dir: &Path, target: &Path, files: &HashSet<String>) -> bool {
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().all(|entry| {
        let path = entry.path();
        if path.is_dir() {
            return path.file_name().is_some_and(|n| n == "__pycache__")
                || owned_entirely(&path, target, files);
        }
        path.strip_prefix(target)
            .ok()
            .and_then(|p| p.to_str())
            .is_some_and(|p| files.contains(p))
    })
}

/// Renames `from` to `to`; when `to` is an existing directory, moves `from`'s children into it
/// (namespace packages shared by several wheels).
fn merge_move(from: &Path, to: &Path) -> io::Result<()> {
    match fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(err) => {
            if !(from.is_dir() && to.is_dir()) {
                return Err(err);
            }
            for entry in fs::read_dir(from)? {
                let entry = entry?;
                merge_move(&entry.path(), &to.join(entry.file_name()))?;
            }
            fs::remove_dir(from)
        }
    }
}

fn remove_empty_parents(path: &Path, target: &Path) {
    let mut current = path.parent();
    while let Some(dir) = current {
        if dir == target || fs::remove_dir(dir).is_err() {
            break;
        }
        current = dir.parent();
    }
}
