//! The content-addressed wheel store shared by the shards of one host (`WheelsCacheDir`).
//!
//! Layout under the root:
//! - `sha256/<2 hex>/<64 hex>`: the wheel bytes, read-only, named by their sha256;
//! - `by-name/<normalised name>/<file name>`: the sha256 of that file, so a wheel already fetched
//!   is found by name without asking the index for its hash again;
//! - `unpacked/<64 hex>/`: the installer's verified, read-only unpacked copy of a wheel, which
//!   installs hard-link from;
//! - `builds/<64 hex>`: for a source distribution (by its hash), the wheel built from it once;
//! - `tmp/`: downloads in progress (same file system, so the final rename is atomic);
//! - `locks/<key>.lock`: advisory file locks, so two shards filling the cache at once download a
//!   wheel once and never see a half-written file.
//!
//! Bytes are hashed while they are written (one streaming pass) and again on every read: a file
//! changed behind our back is detected, removed, and reported as missing so the caller fetches it
//! again.

use std::fs::{self, File};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("wheels cache: {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{what}: sha256 is {actual}, expected {expected}")]
    HashMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("'{0}' is not a sha256 (64 hex digits)")]
    BadHash(String),
    #[error("'{0}' is not a safe file name for the wheels cache")]
    BadName(String),
    /// The writer given to [`WheelsCache::insert_with`] failed (a download, typically).
    #[error("{0}")]
    Source(String),
}

fn io_error<'p>(action: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> CacheError + 'p {
    move |source| CacheError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// A verified wheel: an open handle positioned at the start, and its hash.
#[derive(Debug)]
pub struct CachedWheel {
    pub file: File,
    pub sha256: String,
    pub path: PathBuf,
}

/// An exclusive lock held until dropped.
pub struct CacheLock {
    file: File,
}

impl Drop for CacheLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// The store.
#[derive(Clone, Debug)]
pub struct WheelsCache {
    root: PathBuf,
}

impl WheelsCache {
    /// Opens (creating if needed) a store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, CacheError> {
        let root = root.into();
        for dir in ["sha256", "by-name", "tmp", "locks", "unpacked", "builds"] {
            let path = root.join(dir);
            fs::create_dir_all(&path).map_err(io_error("creating", &path))?;
        }
        Ok(WheelsCache { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the installer keeps the unpacked, verified files of the wheel with this hash.
    pub fn unpacked_path(&self, sha256: &str) -> PathBuf {
        self.root.join("unpacked").join(sha256)
    }

    /// A directory on the cache's file system for work in progress (renamed into place after).
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn blob_path(&self, sha256: &str) -> PathBuf {
        self.root.join("sha256").join(&sha256[..2]).join(sha256)
    }

    /// The wheel with this hash, verified; `None` when absent or when the stored bytes no longer
    /// match (the bad file is removed so the caller can fetch it again).
    pub fn get(&self, sha256: &str) -> Result<Option<CachedWheel>, CacheError> {
        let sha256 = checked_hash(sha256)?;
        let path = self.blob_path(&sha256);
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(io_error("opening", &path)(err)),
        };
        let actual = hash_reader(&mut file).map_err(io_error("reading", &path))?;
        if actual != sha256 {
            // Changed behind our back: drop it, the caller downloads it again.
            let _ = fs::remove_file(&path);
            return Ok(None);
        }
        file.rewind().map_err(io_error("reading", &path))?;
        Ok(Some(CachedWheel { file, sha256, path }))
    }

    /// Stores the bytes `write` produces, hashing them as they stream to a temporary file; the
    /// file gets its final name by an atomic rename only if the hash matches `expected` (when
    /// given). Returns the stored wheel.
    pub fn insert_with(
        &self,
        expected: Option<&str>,
        what: &str,
        write: impl FnOnce(&mut dyn Write) -> Result<(), String>,
    ) -> Result<CachedWheel, CacheError> {
        let expected = expected.map(checked_hash).transpose()?;
        let tmp_dir = self.root.join("tmp");
        let temp = tempfile::NamedTempFile::new_in(&tmp_dir)
            .map_err(io_error("creating a file in", &tmp_dir))?;
        let mut writer = HashingWriter {
            inner: io::BufWriter::new(temp),
            hasher: Sha256::new(),
        };
        write(&mut writer).map_err(CacheError::Source)?;
        let HashingWriter { inner, hasher } = writer;
        let temp = inner
            .into_inner()
            .map_err(|err| io_error("writing", &tmp_dir)(err.into_error()))?;
        let actual = hex(&hasher.finalize());
        if let Some(expected) = expected {
            if expected != actual {
                return Err(CacheError::HashMismatch {
                    what: what.to_string(),
                    expected,
                    actual,
                });
            }
        }
        temp.as_file()
            .sync_all()
            .map_err(io_error("syncing", temp.path()))?;
        let mut permissions = temp
            .as_file()
            .metadata()
            .map_err(io_error("reading", temp.path()))?
            .permissions();
        permissions.set_readonly(true);
        let _ = fs::set_permissions(temp.path(), permissions);
        let path = self.blob_path(&actual);
        let parent = path.parent().expect("blob paths have a parent");
        fs::create_dir_all(parent).map_err(io_error("creating", parent))?;
        temp.persist(&path)
            .map_err(|err| io_error("renaming into", &path)(err.error))?;
        match self.get(&actual)? {
            Some(wheel) => Ok(wheel),
            None => Err(CacheError::HashMismatch {
                what: path.display().to_string(),
                expected: actual.clone(),
                actual: "different bytes after the rename".into(),
            }),
        }
    }

    /// Records that `filename` of project `name` (normalised) has this hash.
    pub fn record(&self, name: &str, filename: &str, sha256: &str) -> Result<(), CacheError> {
        let sha256 = checked_hash(sha256)?;
        let dir = self.root.join("by-name").join(safe_component(name)?);
        fs::create_dir_all(&dir).map_err(io_error("creating", &dir))?;
        let path = dir.join(safe_component(filename)?);
        let mut temp =
            tempfile::NamedTempFile::new_in(&dir).map_err(io_error("creating a file in", &dir))?;
        temp.write_all(sha256.as_bytes())
            .map_err(io_error("writing", temp.path()))?;
        temp.persist(&path)
            .map_err(|err| io_error("renaming into", &path)(err.error))?;
        Ok(())
    }

    /// The hash recorded for `filename` of project `name`, if any.
    pub fn lookup(&self, name: &str, filename: &str) -> Option<String> {
        let path = self
            .root
            .join("by-name")
            .join(safe_component(name).ok()?)
            .join(safe_component(filename).ok()?);
        let text = fs::read_to_string(path).ok()?;
        checked_hash(text.trim()).ok()
    }

    /// Records that the source distribution with hash `sdist_sha256` built into the wheel
    /// `wheel_filename` with hash `wheel_sha256`.
    pub fn record_build(
        &self,
        sdist_sha256: &str,
        wheel_filename: &str,
        wheel_sha256: &str,
    ) -> Result<(), CacheError> {
        let sdist = checked_hash(sdist_sha256)?;
        let wheel = checked_hash(wheel_sha256)?;
        let filename = safe_component(wheel_filename)?;
        let dir = self.root.join("builds");
        let path = dir.join(&sdist);
        let mut temp =
            tempfile::NamedTempFile::new_in(&dir).map_err(io_error("creating a file in", &dir))?;
        temp.write_all(format!("{wheel} {filename}").as_bytes())
            .map_err(io_error("writing", temp.path()))?;
        temp.persist(&path)
            .map_err(|err| io_error("renaming into", &path)(err.error))?;
        Ok(())
    }

    /// The wheel (file name, hash) built from the source distribution with this hash, if any.
    pub fn lookup_build(&self, sdist_sha256: &str) -> Option<(String, String)> {
        let sdist = checked_hash(sdist_sha256).ok()?;
        let text = fs::read_to_string(self.root.join("builds").join(sdist)).ok()?;
        let (sha, filename) = text.trim().split_once(' ')?;
        Some((
            safe_component(filename).ok()?.to_string(),
            checked_hash(sha).ok()?,
        ))
    }

    /// Takes the host-wide lock named `key` (blocking until other holders, in this or another
    /// process, release it).
    pub fn lock(&self, key: &str) -> Result<CacheLock, CacheError> {
        let path = self
            .root
            .join("locks")
            .join(format!("{}.lock", safe_component(key)?));
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_error("opening", &path))?;
        file.lock().map_err(io_error("locking", &path))?;
        Ok(CacheLock { file })
    }
}

/// Validates and lowercases a sha256 hex digest.
fn checked_hash(sha256: &str) -> Result<String, CacheError> {
    if sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(sha256.to_ascii_lowercase())
    } else {
        Err(CacheError::BadHash(sha256.to_string()))
    }
}

/// A name used as one path component: no separators, no `.`/`..`, no NUL.
fn safe_component(name: &str) -> Result<&str, CacheError> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
        return Err(CacheError::BadName(name.to_string()));
    }
    Ok(name)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// sha256 of everything `reader` yields.
pub fn hash_reader(reader: &mut impl Read) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let n = reader.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(bytes: &[u8]) -> String {
        hex(&Sha256::digest(bytes))
    }

    #[test]
    fn stores_by_hash_and_verifies_on_read() {
        let dir = tempfile::tempdir().unwrap();
        let cache = WheelsCache::open(dir.path()).unwrap();
        let bytes = b"wheel bytes".to_vec();
        let stored = cache
            .insert_with(Some(&sha(&bytes).to_uppercase()), "w", |w| {
                w.write_all(&bytes).map_err(|e| e.to_string())
            })
            .unwrap();
        assert_eq!(stored.sha256, sha(&bytes));
        let mut read = Vec::new();
        cache
            .get(&sha(&bytes))
            .unwrap()
            .unwrap()
            .file
            .read_to_end(&mut read)
            .unwrap();
        assert_eq!(read, bytes);
        assert!(cache.get(&sha(b"other")).unwrap().is_none());
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn a_mismatching_or_failed_download_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let cache = WheelsCache::open(dir.path()).unwrap();
        let err = cache
            .insert_with(Some(&"0".repeat(64)), "foo.whl", |w| {
                w.write_all(b"x").map_err(|e| e.to_string())
            })
            .unwrap_err();
        assert!(err.to_string().starts_with("foo.whl: sha256 is"), "{err}");
        let err = cache
            .insert_with(None, "foo.whl", |w| {
                w.write_all(b"trunc").unwrap();
                Err("connection closed after 5 bytes".into())
            })
            .unwrap_err();
        assert_eq!(err.to_string(), "connection closed after 5 bytes");
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        assert!(cache.get(&sha(b"x")).unwrap().is_none());
        assert!(cache.get(&sha(b"trunc")).unwrap().is_none());
    }

    #[test]
    fn a_file_changed_behind_our_back_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let cache = WheelsCache::open(dir.path()).unwrap();
        let stored = cache
            .insert_with(None, "w", |w| {
                w.write_all(b"good").map_err(|e| e.to_string())
            })
            .unwrap();
        let mut permissions = fs::metadata(&stored.path).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        permissions.set_readonly(false);
        fs::set_permissions(&stored.path, permissions).unwrap();
        fs::write(&stored.path, b"evil").unwrap();
        assert!(cache.get(&stored.sha256).unwrap().is_none());
        assert!(!stored.path.exists());
    }

    #[test]
    fn records_names_and_refuses_unsafe_ones() {
        let dir = tempfile::tempdir().unwrap();
        let cache = WheelsCache::open(dir.path()).unwrap();
        let hash = sha(b"w");
        cache
            .record("foo-bar", "foo_bar-1.0-py3-none-any.whl", &hash)
            .unwrap();
        assert_eq!(
            cache.lookup("foo-bar", "foo_bar-1.0-py3-none-any.whl"),
            Some(hash.clone())
        );
        assert_eq!(
            cache.lookup("foo-bar", "foo_bar-2.0-py3-none-any.whl"),
            None
        );
        for bad in ["..", "a/b", "", "x\0"] {
            assert!(cache.record(bad, "f.whl", &hash).is_err());
            assert!(cache.record("ok", bad, &hash).is_err());
        }
        assert!(cache.record("ok", "f.whl", "nothex").is_err());
        assert!(cache.get("../../etc/passwd").is_err());
    }

    #[test]
    fn concurrent_fills_of_one_entry_store_one_good_file() {
        let dir = tempfile::tempdir().unwrap();
        let cache = WheelsCache::open(dir.path()).unwrap();
        let bytes: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
        let hash = sha(&bytes);
        let downloads = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    let cache = WheelsCache::open(dir.path()).unwrap();
                    let _lock = cache.lock(&hash).unwrap();
                    if cache.get(&hash).unwrap().is_none() {
                        downloads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        cache
                            .insert_with(Some(&hash), "big", |w| {
                                for chunk in bytes.chunks(4096) {
                                    w.write_all(chunk).map_err(|e| e.to_string())?;
                                }
                                Ok(())
                            })
                            .unwrap();
                    }
                });
            }
        });
        assert_eq!(downloads.load(std::sync::atomic::Ordering::SeqCst), 1);
        let mut read = Vec::new();
        cache
            .get(&hash)
            .unwrap()
            .unwrap()
            .file
            .read_to_end(&mut read)
            .unwrap();
        assert_eq!(read, bytes);
    }
}
