//! Where distributions come from: a find-links wheelhouse directory, consulted first, and a
//! simple-API index (PEP 691 JSON, PEP 503 HTML fallback).

pub mod http;
pub mod simple;

use std::path::PathBuf;

use pep508_rs::PackageName;
use reqwest::Url;

use crate::metadata::{CoreMetadata, MetadataError};
use crate::requirement::Sha256Hex;
use crate::wheel_name::WheelName;
pub use http::{HttpClient, HttpError, HttpOptions};
pub use simple::{DistFile, FileLocation, MetadataOffer, PageError};

/// The index the module uses when none is configured.
pub const DEFAULT_INDEX_URL: &str = "https://pypi.org/simple/";

/// PEP 691 content negotiation: JSON preferred, HTML accepted.
const PAGE_ACCEPT: &str = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1";

/// Why the sources could not say what a project offers.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("package '{name}' was not found in {sources}")]
    NotFound { name: String, sources: String },
    #[error("the index page {url} lists no files for '{name}'")]
    NoFiles { name: String, url: String },
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error(transparent)]
    Page(#[from] PageError),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error("{file}: sha256 is {actual}, expected {expected}")]
    HashMismatch {
        file: String,
        expected: String,
        actual: String,
    },
    #[error("the find-links directory {dir} could not be read: {reason}")]
    FindLinks { dir: String, reason: String },
    #[error("{file} could not be read: {reason}")]
    ReadFile { file: String, reason: String },
    #[error("the index answered {url} with content type '{content_type}', which is not a simple-API page")]
    UnknownContentType { url: String, content_type: String },
    #[error(transparent)]
    Cache(#[from] wheels_cache::CacheError),
    #[error("building a wheel from {sdist} failed: {reason}")]
    Build { sdist: String, reason: String },
    #[error("invalid index URL '{url}': {reason}")]
    BadIndexUrl { url: String, reason: String },
}

/// Where to look for distributions.
#[derive(Clone, Debug, Default)]
pub struct IndexOptions {
    /// The simple-API root, e.g. `https://pypi.org/simple/`; `None` means find-links only.
    pub index_url: Option<String>,
    /// A local wheelhouse consulted before the index.
    pub find_links: Option<PathBuf>,
    pub http: HttpOptions,
    /// Where fetched wheels are kept; metadata is read from cached wheels without a download.
    pub cache: Option<wheels_cache::WheelsCache>,
    /// The interpreter whose pip builds wheels of projects that only publish a source
    /// distribution (`None`: such projects cannot be installed). Needs `cache`.
    pub build_python: Option<PathBuf>,
}

/// The find-links directory and the index, behind one question: which files does a project have?
pub struct PackageIndex {
    index_url: Option<Url>,
    find_links: Option<PathBuf>,
    http: HttpClient,
    cache: Option<wheels_cache::WheelsCache>,
    build_python: Option<PathBuf>,
}

/// How long a wheel build may take before it is stopped.
const BUILD_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(600);

impl PackageIndex {
    pub fn new(options: IndexOptions) -> Result<Self, IndexError> {
        let index_url = options
            .index_url
            .map(|raw| {
                let with_slash = if raw.ends_with('/') {
                    raw.clone()
                } else {
                    format!("{raw}/")
                };
                let url = Url::parse(&with_slash).map_err(|err| IndexError::BadIndexUrl {
                    url: raw.clone(),
                    reason: err.to_string(),
                })?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(IndexError::BadIndexUrl {
                        url: raw,
                        reason: "only http and https indexes are supported".into(),
                    });
                }
                Ok(url)
            })
            .transpose()?;
        Ok(PackageIndex {
            index_url,
            find_links: options.find_links,
            http: HttpClient::new(options.http)?,
            cache: options.cache,
            build_python: options.build_python,
        })
    }

    /// Whether source distributions can be built here.
    pub fn can_build(&self) -> bool {
        self.build_python.is_some() && self.cache.is_some()
    }

    /// The wheel built from a source distribution: built once per host with the interpreter's
    /// `pip wheel --no-deps --no-build-isolation` (the only use of pip), then cached like any
    /// wheel. Returns it as a file of the cache.
    pub fn build_wheel(&self, sdist: &DistFile) -> Result<DistFile, IndexError> {
        let build_error = |reason: String| IndexError::Build {
            sdist: sdist.filename.clone(),
            reason,
        };
        let (Some(python), Some(cache)) = (&self.build_python, &self.cache) else {
            return Err(build_error(
                "no interpreter to build with is configured".into(),
            ));
        };
        let source = self.fetch_cached(sdist)?;
        let as_file = |(filename, sha): (String, String)| -> Option<DistFile> {
            let hit = cache.get(&sha).ok()??;
            Some(DistFile {
                filename,
                location: FileLocation::Path(hit.path),
                sha256: Sha256Hex::parse(&sha),
                requires_python: None,
                yanked: false,
                metadata: MetadataOffer::No,
            })
        };
        if let Some(built) = cache.lookup_build(&source.sha256).and_then(as_file) {
            return Ok(built);
        }
        let _lock = cache.lock(&format!("build-{}", source.sha256))?;
        if let Some(built) = cache.lookup_build(&source.sha256).and_then(as_file) {
            return Ok(built);
        }
        let work = tempfile::Builder::new()
            .prefix("build-")
            .tempdir_in(cache.tmp_dir())
            .map_err(|err| build_error(format!("no work directory: {err}")))?;
        let sdist_path = work.path().join(&sdist.filename);
        std::fs::copy(&source.path, &sdist_path).map_err(|err| build_error(err.to_string()))?;
        let out_dir = work.path().join("out");
        let output = run_with_limit(
            std::process::Command::new(python)
                .args([
                    "-m",
                    "pip",
                    "wheel",
                    "--no-deps",
                    "--no-build-isolation",
                    "--no-index",
                    "--disable-pip-version-check",
                    "-q",
                    "-w",
                ])
                .arg(&out_dir)
                .arg(&sdist_path)
                .env_remove("PIP_FIND_LINKS")
                .env_remove("PIP_INDEX_URL")
                .current_dir(work.path()),
            BUILD_TIME_LIMIT,
        )
        .map_err(build_error)?;
        let built = std::fs::read_dir(&out_dir)
            .ok()
            .and_then(|entries| {
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .find(|name| name.ends_with(".whl"))
            })
            .ok_or_else(|| build_error(format!("pip produced no wheel: {output}")))?;
        let wheel_path = out_dir.join(&built);
        let stored = cache.insert_with(None, &built, |out| {
            std::fs::File::open(&wheel_path)
                .and_then(|mut f| std::io::copy(&mut f, out))
                .map(|_| ())
                .map_err(|err| err.to_string())
        })?;
        cache.record_build(&source.sha256, &built, &stored.sha256)?;
        Ok(DistFile {
            filename: built,
            location: FileLocation::Path(stored.path),
            sha256: Sha256Hex::parse(&stored.sha256),
            requires_python: None,
            yanked: false,
            metadata: MetadataOffer::No,
        })
    }

    /// The wheels cache, when one is configured.
    pub fn cache(&self) -> Option<&wheels_cache::WheelsCache> {
        self.cache.as_ref()
    }

    fn sources(&self) -> String {
        match (&self.find_links, &self.index_url) {
            (Some(dir), Some(url)) => format!(
                "the find-links directory {} or the index {url}",
                dir.display()
            ),
            (Some(dir), None) => format!("the find-links directory {}", dir.display()),
            (None, Some(url)) => format!("the index {url}"),
            (None, None) => {
                "any source (no index and no find-links directory is configured)".into()
            }
        }
    }

    /// Every file of `name`: the wheelhouse's first, then the index's. When the wheelhouse has
    /// files for the project, an index failure is not fatal: its error is returned beside them.
    pub fn files(
        &self,
        name: &PackageName,
    ) -> Result<(Vec<DistFile>, Option<IndexError>), IndexError> {
        let mut files = self.find_links_files(name)?;
        let mut index_error = None;
        if let Some(root) = &self.index_url {
            match self.index_files(root, name) {
                Ok((mut more, _)) if !more.is_empty() => files.append(&mut more),
                Ok((_, url)) if files.is_empty() => {
                    return Err(IndexError::NoFiles {
                        name: name.to_string(),
                        url: url.to_string(),
                    })
                }
                Ok(_) => {}
                Err(IndexError::Http(HttpError::NotFound { .. })) => {}
                Err(err) if !files.is_empty() => index_error = Some(err),
                Err(err) => return Err(err),
            }
        }
        if files.is_empty() {
            return Err(IndexError::NotFound {
                name: name.to_string(),
                sources: self.sources(),
            });
        }
        Ok((files, index_error))
    }

    fn find_links_files(&self, name: &PackageName) -> Result<Vec<DistFile>, IndexError> {
        let Some(dir) = &self.find_links else {
            return Ok(Vec::new());
        };
        let entries = std::fs::read_dir(dir).map_err(|err| IndexError::FindLinks {
            dir: dir.display().to_string(),
            reason: err.to_string(),
        })?;
        let mut files = Vec::new();
        for entry in entries.flatten() {
            let filename = entry.file_name().to_string_lossy().into_owned();
            let Ok(wheel) = filename.parse::<WheelName>() else {
                continue;
            };
            if &wheel.name == name {
                files.push(DistFile {
                    filename,
                    location: FileLocation::Path(entry.path()),
                    sha256: None,
                    requires_python: None,
                    yanked: false,
                    metadata: MetadataOffer::No,
                });
            }
        }
        files.sort_by(|a, b| a.filename.cmp(&b.filename));
        Ok(files)
    }

    /// The files of the project page, and the page's URL.
    fn index_files(
        &self,
        root: &Url,
        name: &PackageName,
    ) -> Result<(Vec<DistFile>, Url), IndexError> {
        let url = root
            .join(&format!("{name}/"))
            .map_err(|err| IndexError::BadIndexUrl {
                url: root.to_string(),
                reason: err.to_string(),
            })?;
        let response = self.http.get(&url, PAGE_ACCEPT, true)?;
        let content_type = response.content_type.to_ascii_lowercase();
        if content_type.starts_with("application/vnd.pypi.simple.v1+json") {
            Ok((
                simple::parse_json(&response.body, &response.url)?,
                response.url,
            ))
        } else if content_type.starts_with("application/vnd.pypi.simple.v1+html")
            || content_type.starts_with("text/html")
        {
            Ok((
                simple::parse_html(&response.body, &response.url)?,
                response.url,
            ))
        } else {
            Err(IndexError::UnknownContentType {
                url: response.url.to_string(),
                content_type: response.content_type,
            })
        }
    }

    /// A file's bytes, checked against the sha256 the index gave (if it gave one).
    pub fn fetch(&self, file: &DistFile) -> Result<(Vec<u8>, Sha256Hex), IndexError> {
        let bytes = match &file.location {
            FileLocation::Path(path) => {
                std::fs::read(path).map_err(|err| IndexError::ReadFile {
                    file: path.display().to_string(),
                    reason: err.to_string(),
                })?
            }
            FileLocation::Url(url) => self.http.get(url, "*/*", false)?.body,
        };
        let actual = Sha256Hex::of(&bytes);
        verify(&file.location.to_string(), file.sha256.as_ref(), &actual)?;
        Ok((bytes, actual))
    }

    /// The core metadata of a wheel: the PEP 658 file when the index offers one, else read from
    /// the wheel itself. Returns the wheel's sha256 when the wheel had to be read.
    pub fn metadata(
        &self,
        file: &DistFile,
    ) -> Result<(CoreMetadata, Option<Sha256Hex>), IndexError> {
        if let (MetadataOffer::Yes { sha256 }, FileLocation::Url(url)) =
            (&file.metadata, &file.location)
        {
            let mut metadata_url = url.clone();
            metadata_url.set_path(&format!("{}.metadata", url.path()));
            let response = self.http.get(&metadata_url, "*/*", true)?;
            verify(
                metadata_url.as_str(),
                sha256.as_ref(),
                &Sha256Hex::of(&response.body),
            )?;
            let name = format!("{}.metadata", file.filename);
            return Ok((CoreMetadata::parse(&response.body, &name)?, None));
        }
        if self.cache.is_some() {
            let wheel = self.fetch_cached(file)?;
            let metadata = CoreMetadata::from_wheel_reader(wheel.file, &file.filename)?;
            return Ok((metadata, Sha256Hex::parse(&wheel.sha256)));
        }
        let (bytes, sha256) = self.fetch(file)?;
        Ok((
            CoreMetadata::from_wheel(&bytes, &file.filename)?,
            Some(sha256),
        ))
    }

    /// The wheel from the cache, downloading it (hashed while it streams in, checked against the
    /// index's hash) when it is not there or no longer intact. Wheels of the find-links directory
    /// are copied in the same way, so they are hashed once and recorded.
    pub fn fetch_cached(&self, file: &DistFile) -> Result<wheels_cache::CachedWheel, IndexError> {
        let cache = self.cache.as_ref().ok_or_else(|| IndexError::ReadFile {
            file: file.filename.clone(),
            reason: "no wheels cache is configured".into(),
        })?;
        let project = file
            .filename
            .parse::<WheelName>()
            .map(|w| w.name.to_string())
            .unwrap_or_else(|_| file.filename.clone());
        let known = file
            .sha256
            .as_ref()
            .map(|s| s.to_string())
            .or_else(|| cache.lookup(&project, &file.filename));
        if let Some(sha) = &known {
            if let Some(hit) = cache.get(sha)? {
                return Ok(hit);
            }
        }
        // One download per wheel per host, whichever shard asks first.
        let lock_key = Sha256Hex::of(file.location.to_string().as_bytes()).to_string();
        let _lock = cache.lock(&lock_key)?;
        let known = known.or_else(|| cache.lookup(&project, &file.filename));
        if let Some(sha) = &known {
            if let Some(hit) = cache.get(sha)? {
                return Ok(hit);
            }
        }
        let what = file.location.to_string();
        let expected = file.sha256.as_ref().map(|s| s.as_str());
        let wheel = cache
            .insert_with(expected, &what, |out| match &file.location {
                FileLocation::Url(url) => self
                    .http
                    .download_to(url, out)
                    .map(|_| ())
                    .map_err(|err| err.to_string()),
                FileLocation::Path(path) => std::fs::File::open(path)
                    .and_then(|mut f| std::io::copy(&mut f, out))
                    .map(|_| ())
                    .map_err(|err| format!("{} could not be read: {err}", path.display())),
            })
            .map_err(|err| match err {
                wheels_cache::CacheError::HashMismatch {
                    what,
                    expected,
                    actual,
                } => IndexError::HashMismatch {
                    file: what,
                    expected,
                    actual,
                },
                other => IndexError::Cache(other),
            })?;
        cache.record(&project, &file.filename, &wheel.sha256)?;
        Ok(wheel)
    }
}

fn verify(what: &str, expected: Option<&Sha256Hex>, actual: &Sha256Hex) -> Result<(), IndexError> {
    match expected {
        Some(expected) if expected != actual => Err(IndexError::HashMismatch {
            file: what.to_string(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        }),
        _ => Ok(()),
    }
}

/// Runs a command, killing it after `limit`; returns the tail of its output, or why it failed.
fn run_with_limit(
    command: &mut std::process::Command,
    limit: std::time::Duration,
) -> Result<String, String> {
    use std::io::Read;
    let mut child = command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|err| format!("could not start the interpreter: {err}"))?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let started = std::time::Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "it took longer than {} s and was stopped",
                    limit.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(20)),
            Err(err) => return Err(err.to_string()),
        }
    };
    let text = format!(
        "{}{}",
        out_reader.join().unwrap_or_default(),
        err_reader.join().unwrap_or_default()
    );
    let tail: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = tail[tail.len().saturating_sub(12)..].join(" | ");
    if status.success() {
        Ok(tail)
    } else {
        Err(format!("pip exited with {status}: {tail}"))
    }
}
