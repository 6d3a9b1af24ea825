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
}

/// The find-links directory and the index, behind one question: which files does a project have?
pub struct PackageIndex {
    index_url: Option<Url>,
    find_links: Option<PathBuf>,
    http: HttpClient,
    cache: Option<wheels_cache::WheelsCache>,
}

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
