//! A real package index for the tests: wheels built here (zip archives with dist-info
//! metadata) served over HTTP on 127.0.0.1, as JSON (PEP 691) or HTML (PEP 503) pages, with
//! switches for the failures an index can have.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqs_manager::Sha256Hex;

/// A wheel to build.
#[derive(Clone)]
pub struct Wheel {
    pub name: &'static str,
    pub version: &'static str,
    pub tag: &'static str,
    pub requires: Vec<&'static str>,
    pub extras: Vec<&'static str>,
    pub requires_python: Option<&'static str>,
    /// Replaces the generated METADATA (for broken-metadata tests).
    pub metadata_override: Option<String>,
}

pub fn wheel(name: &'static str, version: &'static str) -> Wheel {
    Wheel {
        name,
        version,
        tag: "py3-none-any",
        requires: Vec::new(),
        extras: Vec::new(),
        requires_python: None,
        metadata_override: None,
    }
}

impl Wheel {
    pub fn requires(mut self, reqs: &[&'static str]) -> Self {
        self.requires = reqs.to_vec();
        self
    }
    pub fn extras(mut self, extras: &[&'static str]) -> Self {
        self.extras = extras.to_vec();
        self
    }
    pub fn tag(mut self, tag: &'static str) -> Self {
        self.tag = tag;
        self
    }
    pub fn requires_python(mut self, spec: &'static str) -> Self {
        self.requires_python = Some(spec);
        self
    }
    pub fn metadata(mut self, text: &str) -> Self {
        self.metadata_override = Some(text.to_string());
        self
    }

    fn dist_name(&self) -> String {
        self.name.replace('-', "_")
    }

    pub fn filename(&self) -> String {
        format!("{}-{}-{}.whl", self.dist_name(), self.version, self.tag)
    }

    pub fn metadata_text(&self) -> String {
        if let Some(text) = &self.metadata_override {
            return text.clone();
        }
        let mut text = format!(
            "Metadata-Version: 2.1\nName: {}\nVersion: {}\n",
            self.name, self.version
        );
        if let Some(rp) = self.requires_python {
            text.push_str(&format!("Requires-Python: {rp}\n"));
        }
        for extra in &self.extras {
            text.push_str(&format!("Provides-Extra: {extra}\n"));
        }
        for req in &self.requires {
            text.push_str(&format!("Requires-Dist: {req}\n"));
        }
        text
    }

    /// The wheel archive: a package module, METADATA, WHEEL and RECORD.
    pub fn build(&self) -> Vec<u8> {
        let mut buffer = std::io::Cursor::new(Vec::new());
        {
            let mut zip = zip::ZipWriter::new(&mut buffer);
            let options = zip::write::SimpleFileOptions::default();
            let dist_info = format!("{}-{}.dist-info", self.dist_name(), self.version);
            let module = format!("{}/__init__.py", self.dist_name());
            zip.start_file(module.as_str(), options).unwrap();
            zip.write_all(format!("VERSION = '{}'\n", self.version).as_bytes())
                .unwrap();
            zip.start_file(format!("{dist_info}/METADATA"), options)
                .unwrap();
            zip.write_all(self.metadata_text().as_bytes()).unwrap();
            zip.start_file(format!("{dist_info}/WHEEL"), options)
                .unwrap();
            zip.write_all(format!("Wheel-Version: 1.0\nGenerator: gears-rs-tests\nRoot-Is-Purelib: true\nTag: {}\n", self.tag).as_bytes()).unwrap();
            zip.start_file(format!("{dist_info}/RECORD"), options)
                .unwrap();
            zip.write_all(format!("{module},,\n{dist_info}/METADATA,,\n{dist_info}/WHEEL,,\n{dist_info}/RECORD,,\n").as_bytes()).unwrap();
            zip.finish().unwrap();
        }
        buffer.into_inner()
    }
}

/// A file as the index serves it.
#[derive(Clone)]
pub struct Served {
    pub filename: String,
    pub bytes: Vec<u8>,
    pub metadata: String,
    pub yanked: bool,
    pub requires_python: Option<String>,
    /// Offer the PEP 658 `.metadata` file.
    pub offer_metadata: bool,
    /// The sha256 the page announces (the real one unless a test lies).
    pub announced_sha256: Option<String>,
    /// The sha256 the page announces for the `.metadata` file, when a test lies about it.
    pub announced_metadata_sha256: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Html,
}

/// What the index does; tests change it while it runs.
pub struct Behaviour {
    pub format: Format,
    pub projects: HashMap<String, Vec<Served>>,
    /// Answer this many page requests with 500 before behaving.
    pub fail_next: u32,
    /// Answer every page request with 500.
    pub always_fail: bool,
    pub delay: Option<Duration>,
    /// Send this body (with the page content type) instead of the page.
    pub garbage: Option<String>,
    /// Redirect page requests to this base URL.
    pub redirect_to: Option<String>,
    pub cache_control: Option<String>,
    pub etag: bool,
    /// Every request: (path, If-None-Match header).
    pub log: Vec<(String, Option<String>)>,
    pub not_modified: u32,
    /// Send only the first half of every wheel, announcing its full length.
    pub truncate_files: bool,
}

/// The running index.
pub struct TestIndex {
    pub url: String,
    pub state: Arc<Mutex<Behaviour>>,
    server: Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestIndex {
    pub fn start(format: Format) -> Self {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let port = server.server_addr().to_ip().unwrap().port();
        let state = Arc::new(Mutex::new(Behaviour {
            format,
            projects: HashMap::new(),
            fail_next: 0,
            always_fail: false,
            delay: None,
            garbage: None,
            redirect_to: None,
            cache_control: None,
            etag: false,
            log: Vec::new(),
            not_modified: 0,
            truncate_files: false,
        }));
        let thread = {
            let server = server.clone();
            let state = state.clone();
            std::thread::spawn(move || {
                for request in server.incoming_requests() {
                    let state = state.clone();
                    std::thread::spawn(move || handle(request, &state));
                }
            })
        };
        TestIndex {
            url: format!("http://127.0.0.1:{port}/simple/"),
            state,
            server,
            thread: Some(thread),
        }
    }

    pub fn add(&self, wheel: &Wheel) -> Served {
        self.add_with(wheel, |_| {})
    }

    pub fn add_with(&self, wheel: &Wheel, change: impl FnOnce(&mut Served)) -> Served {
        let mut served = self.served(&wheel.filename(), wheel.build());
        served.metadata = wheel.metadata_text();
        change(&mut served);
        self.push(wheel.name, served)
    }

    /// Serves `bytes` as `filename` of `project` (a hand-made wheel or a source distribution),
    /// with its real sha256 announced unless `change` says otherwise.
    pub fn add_file_with(
        &self,
        project: &str,
        filename: &str,
        bytes: Vec<u8>,
        change: impl FnOnce(&mut Served),
    ) -> Served {
        let mut served = self.served(filename, bytes);
        change(&mut served);
        self.push(project, served)
    }

    pub fn add_file(&self, project: &str, filename: &str, bytes: Vec<u8>) -> Served {
        self.add_file_with(project, filename, bytes, |_| {})
    }

    fn served(&self, filename: &str, bytes: Vec<u8>) -> Served {
        Served {
            filename: filename.to_string(),
            announced_sha256: Some(Sha256Hex::of(&bytes).to_string()),
            bytes,
            metadata: String::new(),
            yanked: false,
            requires_python: None,
            offer_metadata: false,
            announced_metadata_sha256: None,
        }
    }

    fn push(&self, project: &str, served: Served) -> Served {
        self.state
            .lock()
            .unwrap()
            .projects
            .entry(normalise(project))
            .or_default()
            .push(served.clone());
        served
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut Behaviour) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    pub fn requests(&self) -> Vec<String> {
        self.with(|b| b.log.iter().map(|(path, _)| path.clone()).collect())
    }
}

impl Drop for TestIndex {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Whether pypi.org answers on 443 here: the tests that use the public index skip when not.
pub fn public_index_reachable() -> bool {
    std::net::ToSocketAddrs::to_socket_addrs("pypi.org:443")
        .ok()
        .and_then(|mut addrs| addrs.next())
        .is_some_and(|addr| {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3)).is_ok()
        })
}

/// The interpreter the tests resolve for: CPython 3.11.2 on x86_64 with glibc 2.36.
pub fn target() -> reqs_manager::TargetPython {
    reqs_manager::TargetPython::new(
        (3, 11, 2),
        "x86_64",
        reqs_manager::Libc::Glibc {
            major: 2,
            minor: 36,
        },
    )
}

pub fn normalise(name: &str) -> String {
    let mut out = String::new();
    for c in name.to_ascii_lowercase().chars() {
        let c = if matches!(c, '_' | '.') { '-' } else { c };
        if !(c == '-' && out.ends_with('-')) {
            out.push(c);
        }
    }
    out
}

fn header(name: &str, value: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).unwrap()
}

fn handle(request: tiny_http::Request, state: &Mutex<Behaviour>) {
    let path = request.url().to_string();
    let if_none_match = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("If-None-Match"))
        .map(|h| h.value.to_string());
    let (delay, response) = {
        let mut b = state.lock().unwrap();
        b.log.push((path.clone(), if_none_match.clone()));
        (b.delay, respond(&mut b, &path, if_none_match))
    };
    if let Some(delay) = delay {
        std::thread::sleep(delay);
    }
    let _ = request.respond(response);
}

type Reply = tiny_http::Response<std::io::Cursor<Vec<u8>>>;

fn respond(b: &mut Behaviour, path: &str, if_none_match: Option<String>) -> Reply {
    let status = |code: u16, body: &str| {
        tiny_http::Response::from_data(body.as_bytes().to_vec()).with_status_code(code)
    };
    if let Some(project) = path
        .strip_prefix("/simple/")
        .map(|p| p.trim_end_matches('/'))
    {
        if let Some(target) = &b.redirect_to {
            return status(302, "").with_header(header("Location", &format!("{target}{project}/")));
        }
        if b.always_fail {
            return status(500, "internal error");
        }
        if b.fail_next > 0 {
            b.fail_next -= 1;
            return status(503, "try again");
        }
        let content_type = match b.format {
            Format::Json => "application/vnd.pypi.simple.v1+json",
            Format::Html => "text/html",
        };
        if let Some(garbage) = &b.garbage {
            return status(200, garbage).with_header(header("Content-Type", content_type));
        }
        if project != normalise(project) {
            return status(301, "").with_header(header(
                "Location",
                &format!("/simple/{}/", normalise(project)),
            ));
        }
        let Some(files) = b.projects.get(project) else {
            return status(404, "not found");
        };
        let body = match b.format {
            Format::Json => json_page(project, files),
            Format::Html => html_page(project, files),
        };
        let etag = format!("\"{}\"", Sha256Hex::of(body.as_bytes()));
        if b.etag && if_none_match.as_deref() == Some(etag.as_str()) {
            b.not_modified += 1;
            return status(304, "");
        }
        let mut response = status(200, &body).with_header(header("Content-Type", content_type));
        if b.etag {
            response = response.with_header(header("ETag", &etag));
        }
        if let Some(cc) = &b.cache_control {
            response = response.with_header(header("Cache-Control", cc));
        }
        return response;
    }
    if let Some(file) = path.strip_prefix("/files/") {
        let (file, want_metadata) = match file.strip_suffix(".metadata") {
            Some(wheel) => (wheel, true),
            None => (file, false),
        };
        for served in b.projects.values().flatten() {
            if served.filename == file {
                let data = if want_metadata {
                    served.metadata.as_bytes().to_vec()
                } else {
                    served.bytes.clone()
                };
                if b.truncate_files && !want_metadata {
                    let full = data.len();
                    let half = data[..full / 2].to_vec();
                    return tiny_http::Response::new(
                        200.into(),
                        Vec::new(),
                        std::io::Cursor::new(half),
                        Some(full),
                        None,
                    );
                }
                return tiny_http::Response::from_data(data);
            }
        }
    }
    status(404, "not found")
}

fn json_page(project: &str, files: &[Served]) -> String {
    let files: Vec<serde_json::Value> = files
        .iter()
        .map(|f| {
            let mut hashes = serde_json::Map::new();
            if let Some(sha) = &f.announced_sha256 {
                hashes.insert("sha256".into(), sha.clone().into());
            }
            let metadata_sha = metadata_sha(f);
            serde_json::json!({
                "filename": f.filename,
                "url": format!("../../files/{}", f.filename),
                "hashes": hashes,
                "requires-python": f.requires_python,
                "yanked": f.yanked,
                "core-metadata": if f.offer_metadata { serde_json::json!({"sha256": metadata_sha}) } else { serde_json::json!(false) },
            })
        })
        .collect();
    serde_json::json!({"meta": {"api-version": "1.1"}, "name": project, "files": files}).to_string()
}

fn html_page(project: &str, files: &[Served]) -> String {
    let mut html = format!("<!DOCTYPE html>\n<html><head><title>Links for {project}</title></head><body><h1>Links for {project}</h1>\n");
    for f in files {
        let fragment = f
            .announced_sha256
            .as_ref()
            .map(|s| format!("#sha256={s}"))
            .unwrap_or_default();
        let mut attrs = String::new();
        if let Some(rp) = &f.requires_python {
            attrs.push_str(&format!(
                " data-requires-python=\"{}\"",
                rp.replace('>', "&gt;").replace('<', "&lt;")
            ));
        }
        if f.yanked {
            attrs.push_str(" data-yanked=\"\"");
        }
        if f.offer_metadata {
            attrs.push_str(&format!(
                " data-core-metadata=\"sha256={}\"",
                metadata_sha(f)
            ));
        }
        html.push_str(&format!(
            "<a href=\"/files/{}{fragment}\"{attrs}>{}</a><br/>\n",
            f.filename, f.filename
        ));
    }
    html.push_str("</body></html>\n");
    html
}

fn metadata_sha(f: &Served) -> String {
    f.announced_metadata_sha256
        .clone()
        .unwrap_or_else(|| Sha256Hex::of(f.metadata.as_bytes()).to_string())
}

/// A wheel assembled entry by entry, RECORD generated from the entries (unless given), for the
/// malicious and broken archives.
pub struct RawWheel {
    pub entries: Vec<(String, Vec<u8>, u32)>,
    pub symlinks: Vec<(String, String)>,
    pub record: Option<String>,
    pub unlisted: Vec<String>,
}

impl RawWheel {
    /// A valid `name-version` wheel with one module.
    pub fn new(name: &str, version: &str) -> Self {
        let dist_info = format!("{name}-{version}.dist-info");
        RawWheel {
            entries: vec![
                (
                    format!("{name}/__init__.py"),
                    format!("VERSION = '{version}'\n").into_bytes(),
                    0o644,
                ),
                (
                    format!("{dist_info}/METADATA"),
                    format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
                        .into_bytes(),
                    0o644,
                ),
                (
                    format!("{dist_info}/WHEEL"),
                    b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n".to_vec(),
                    0o644,
                ),
            ],
            symlinks: Vec::new(),
            record: None,
            unlisted: Vec::new(),
        }
    }

    pub fn entry(mut self, name: &str, bytes: &[u8], mode: u32) -> Self {
        self.entries.push((name.to_string(), bytes.to_vec(), mode));
        self
    }

    pub fn build(&self, dist_info: &str) -> Vec<u8> {
        use base64::Engine;
        use sha2::Digest;
        let mut buffer = std::io::Cursor::new(Vec::new());
        {
            let mut zip = zip::ZipWriter::new(&mut buffer);
            let mut record = String::new();
            for (name, bytes, mode) in &self.entries {
                let options = zip::write::SimpleFileOptions::default().unix_permissions(*mode);
                zip.start_file(name.as_str(), options).unwrap();
                zip.write_all(bytes).unwrap();
                if !self.unlisted.contains(name) {
                    let digest = base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .encode(sha2::Sha256::digest(bytes));
                    record.push_str(&format!("{name},sha256={digest},{}\n", bytes.len()));
                }
            }
            for (name, target) in &self.symlinks {
                zip.add_symlink(
                    name.as_str(),
                    target.as_str(),
                    zip::write::SimpleFileOptions::default(),
                )
                .unwrap();
                record.push_str(&format!("{name},,\n"));
            }
            record.push_str(&format!("{dist_info}/RECORD,,\n"));
            let record = self.record.clone().unwrap_or(record);
            zip.start_file(
                format!("{dist_info}/RECORD"),
                zip::write::SimpleFileOptions::default(),
            )
            .unwrap();
            zip.write_all(record.as_bytes()).unwrap();
            zip.finish().unwrap();
        }
        buffer.into_inner()
    }
}
