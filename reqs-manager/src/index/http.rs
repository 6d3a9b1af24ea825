//! HTTP for the index: timeouts, retries with exponential backoff on failures that may pass
//! (connection errors, timeouts, 429 and 5xx), redirects followed only within the same origin,
//! and an in-memory cache that honours `Cache-Control`, `ETag` and `Last-Modified`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::header::{self, HeaderMap};
use reqwest::{StatusCode, Url};

/// How the client talks to the index.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    pub connect_timeout: Duration,
    /// Limit for a whole request, body included.
    pub timeout: Duration,
    /// Extra attempts after the first one fails in a way that may pass.
    pub retries: u32,
    /// Wait before the first retry; doubled for each later one.
    pub backoff: Duration,
    /// Largest page body accepted (pages are read into memory), so a hostile index cannot
    /// exhaust memory.
    pub max_body_bytes: u64,
    /// Largest file [`HttpClient::download_to`] accepts (streamed to disk): wheels of a few GB
    /// exist (GPU builds), a hostile index still cannot fill the disk.
    pub max_download_bytes: u64,
    /// A body that delivers fewer than [`HttpOptions::stall_min_bytes`] in this long is given
    /// up: each read has its own timeout, so a body trickling a byte at a time would otherwise
    /// hold an install for ever.
    pub stall_window: Duration,
    pub stall_min_bytes: u64,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(60),
            retries: 3,
            backoff: Duration::from_millis(500),
            max_body_bytes: 512 * 1024 * 1024,
            max_download_bytes: 8 * 1024 * 1024 * 1024,
            stall_window: Duration::from_secs(30),
            stall_min_bytes: 16 * 1024,
        }
    }
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{url} could not be reached after {attempts} attempt(s): {reason}")]
    Unreachable {
        url: String,
        attempts: u32,
        reason: String,
    },
    #[error("{url} answered HTTP {status} after {attempts} attempt(s)")]
    Status {
        url: String,
        status: u16,
        attempts: u32,
    },
    #[error("{url} was not found (HTTP 404)")]
    NotFound { url: String },
    #[error("{from} redirected to another host ({to}); refusing to follow it")]
    RedirectToOtherHost { from: String, to: String },
    #[error("{url} redirected more than {limit} times")]
    TooManyRedirects { url: String, limit: u32 },
    #[error("{url} sent a body larger than {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    #[error("could not set up the HTTP client: {0}")]
    Setup(String),
}

/// A successful response.
#[derive(Clone, Debug)]
pub struct Response {
    /// The URL after redirects: relative links resolve against it.
    pub url: Url,
    pub content_type: String,
    pub body: Vec<u8>,
}

struct CacheEntry {
    response: Response,
    etag: Option<String>,
    last_modified: Option<String>,
    fresh_until: Option<Instant>,
}

/// What a cache directive says about a response.
struct Freshness {
    store: bool,
    lifetime: Option<Duration>,
}

/// A blocking client; one per requirements manager, shared by its threads.
pub struct HttpClient {
    client: reqwest::blocking::Client,
    options: HttpOptions,
    cache: Mutex<HashMap<(String, String), CacheEntry>>,
}

const MAX_REDIRECTS: u32 = 10;

impl HttpClient {
    pub fn new(options: HttpOptions) -> Result<Self, HttpError> {
        let client = reqwest::blocking::Client::builder()
            .connect_timeout(options.connect_timeout)
            .timeout(options.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("gears-rs/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| HttpError::Setup(err.to_string()))?;
        Ok(HttpClient {
            client,
            options,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// GET with `Accept: accept`; `cacheable` responses are kept for later calls.
    pub fn get(&self, url: &Url, accept: &str, cacheable: bool) -> Result<Response, HttpError> {
        let key = (url.to_string(), accept.to_string());
        let mut conditional = HeaderMap::new();
        if cacheable {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(entry) = cache.get(&key) {
                if entry.fresh_until.is_some_and(|t| Instant::now() < t) {
                    return Ok(entry.response.clone());
                }
                if let Some(etag) = entry.etag.as_deref().and_then(|v| v.parse().ok()) {
                    conditional.insert(header::IF_NONE_MATCH, etag);
                }
                if let Some(date) = entry.last_modified.as_deref().and_then(|v| v.parse().ok()) {
                    conditional.insert(header::IF_MODIFIED_SINCE, date);
                }
            }
        }
        let (final_url, response) = self.send_following_redirects(url, accept, &conditional)?;
        let headers = response.headers().clone();
        let freshness = freshness(&headers);
        if response.status() == StatusCode::NOT_MODIFIED {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(entry) = cache.get_mut(&key) {
                entry.fresh_until = freshness.lifetime.map(|d| Instant::now() + d);
                return Ok(entry.response.clone());
            }
            return Err(HttpError::Status {
                url: url.to_string(),
                status: 304,
                attempts: 1,
            });
        }
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = self.read_body(response, &final_url)?;
        let result = Response {
            url: final_url,
            content_type,
            body,
        };
        if cacheable && freshness.store {
            let text = |name| {
                headers
                    .get(name)
                    .and_then(|v: &header::HeaderValue| v.to_str().ok())
                    .map(str::to_string)
            };
            let entry = CacheEntry {
                response: result.clone(),
                etag: text(header::ETAG),
                last_modified: text(header::LAST_MODIFIED),
                fresh_until: freshness.lifetime.map(|d| Instant::now() + d),
            };
            self.cache
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key, entry);
        }
        Ok(result)
    }

    /// Streams the body of `url` into `out` (no caching): how wheels reach the wheels cache.
    pub fn download_to(&self, url: &Url, out: &mut dyn std::io::Write) -> Result<u64, HttpError> {
        let (final_url, mut response) =
            self.send_following_redirects(url, "*/*", &HeaderMap::new())?;
        let limit = self.options.max_download_bytes;
        if response.content_length().is_some_and(|len| len > limit) {
            return Err(HttpError::TooLarge {
                url: final_url.to_string(),
                limit,
            });
        }
        let mut limited = std::io::Read::take(self.stall_guard(&mut response), limit + 1);
        let copied = std::io::copy(&mut limited, out).map_err(|err| HttpError::Unreachable {
            url: final_url.to_string(),
            attempts: 1,
            reason: format!("the download broke off: {err}"),
        })?;
        if copied > limit {
            return Err(HttpError::TooLarge {
                url: final_url.to_string(),
                limit,
            });
        }
        Ok(copied)
    }

    fn read_body(
        &self,
        response: reqwest::blocking::Response,
        url: &Url,
    ) -> Result<Vec<u8>, HttpError> {
        use std::io::Read;
        let limit = self.options.max_body_bytes;
        if response.content_length().is_some_and(|len| len > limit) {
            return Err(HttpError::TooLarge {
                url: url.to_string(),
                limit,
            });
        }
        let mut body = Vec::new();
        self.stall_guard(response)
            .take(limit + 1)
            .read_to_end(&mut body)
            .map_err(|err| HttpError::Unreachable {
                url: url.to_string(),
                attempts: 1,
                reason: format!("reading the body failed: {err}"),
            })?;
        if body.len() as u64 > limit {
            return Err(HttpError::TooLarge {
                url: url.to_string(),
                limit,
            });
        }
        Ok(body)
    }

    fn stall_guard<R: std::io::Read>(&self, inner: R) -> StallGuard<R> {
        StallGuard {
            inner,
            window: self.options.stall_window,
            min_bytes: self.options.stall_min_bytes,
            window_start: Instant::now(),
            in_window: 0,
        }
    }

    /// Sends with retries, following same-origin redirects; returns the final URL and response
    /// (2xx or 304).
    fn send_following_redirects(
        &self,
        url: &Url,
        accept: &str,
        conditional: &HeaderMap,
    ) -> Result<(Url, reqwest::blocking::Response), HttpError> {
        let mut current = url.clone();
        for _ in 0..=MAX_REDIRECTS {
            let response = self.send_with_retries(&current, accept, conditional)?;
            if !response.status().is_redirection() || response.status() == StatusCode::NOT_MODIFIED
            {
                return Ok((current, response));
            }
            let location = response
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| HttpError::Status {
                    url: current.to_string(),
                    status: response.status().as_u16(),
                    attempts: 1,
                })?;
            let next = current
                .join(location)
                .map_err(|_| HttpError::RedirectToOtherHost {
                    from: current.to_string(),
                    to: location.to_string(),
                })?;
            if next.origin() != current.origin() {
                return Err(HttpError::RedirectToOtherHost {
                    from: current.to_string(),
                    to: next.to_string(),
                });
            }
            current = next;
        }
        Err(HttpError::TooManyRedirects {
            url: url.to_string(),
            limit: MAX_REDIRECTS,
        })
    }

    fn send_with_retries(
        &self,
        url: &Url,
        accept: &str,
        conditional: &HeaderMap,
    ) -> Result<reqwest::blocking::Response, HttpError> {
        let attempts = self.options.retries + 1;
        let mut last_error = None;
        for attempt in 0..attempts {
            if attempt > 0 {
                std::thread::sleep(self.options.backoff * 2u32.saturating_pow(attempt - 1));
            }
            let sent = self
                .client
                .get(url.clone())
                .header(header::ACCEPT, accept)
                .headers(conditional.clone())
                .send();
            match sent {
                Ok(response) => {
                    let status = response.status();
                    if status.is_success() || status.is_redirection() {
                        return Ok(response);
                    }
                    if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
                        return Err(HttpError::NotFound {
                            url: url.to_string(),
                        });
                    }
                    let error = HttpError::Status {
                        url: url.to_string(),
                        status: status.as_u16(),
                        attempts: attempt + 1,
                    };
                    if !(status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS) {
                        return Err(error);
                    }
                    last_error = Some(error);
                }
                Err(err) => {
                    last_error = Some(HttpError::Unreachable {
                        url: url.to_string(),
                        attempts: attempt + 1,
                        reason: describe(&err),
                    });
                }
            }
        }
        Err(last_error.expect("at least one attempt"))
    }
}

/// The innermost cause of a reqwest error, which says what actually went wrong.
fn describe(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        return "timed out".to_string();
    }
    let mut source: &dyn std::error::Error = err;
    while let Some(inner) = source.source() {
        source = inner;
    }
    source.to_string()
}

/// Reads `Cache-Control`: `no-store` keeps nothing, `no-cache` keeps but always revalidates,
/// `max-age=N` is fresh for N seconds; without a directive the response is kept and revalidated.
fn freshness(headers: &HeaderMap) -> Freshness {
    let mut result = Freshness {
        store: true,
        lifetime: None,
    };
    for value in headers.get_all(header::CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',').map(str::trim) {
            let lower = directive.to_ascii_lowercase();
            if lower == "no-store" {
                result.store = false;
            } else if lower == "no-cache" {
                result.lifetime = Some(Duration::ZERO);
            } else if let Some(seconds) = lower.strip_prefix("max-age=") {
                if result.lifetime != Some(Duration::ZERO) {
                    result.lifetime = seconds
                        .trim_matches('"')
                        .parse()
                        .ok()
                        .map(Duration::from_secs);
                }
            }
        }
    }
    result
}

/// Reads through `inner`, failing once a whole window passed with fewer than `min_bytes` read in
/// it.
struct StallGuard<R> {
    inner: R,
    window: Duration,
    min_bytes: u64,
    window_start: Instant,
    in_window: u64,
}

impl<R: std::io::Read> std::io::Read for StallGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.in_window += n as u64;
        let now = Instant::now();
        if now.duration_since(self.window_start) >= self.window {
            if self.in_window < self.min_bytes && n > 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "the body stalled: {} bytes in {:?}, under the {} expected",
                        self.in_window, self.window, self.min_bytes
                    ),
                ));
            }
            self.window_start = now;
            self.in_window = 0;
        }
        Ok(n)
    }
}
