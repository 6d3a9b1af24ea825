//! Requirements install benchmark: a fixed set of wheels served by a real HTTP index on
//! 127.0.0.1 (a static PEP 503 tree behind `python3 -m http.server`), installed
//! - cold by gears-rs (empty wheels cache: resolve, download, verify, install),
//! - cold by `pip install --target` from the same index (no pip cache),
//! - warm by gears-rs (the wheels cached, a fresh shard directory and index client).
//!
//! Bars (issue "reqs-manager, part 2"): cold <= 0.5x pip; warm < 50 ms.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqs_manager::index::HttpOptions;
use reqs_manager::install::install_resolution;
use reqs_manager::{IndexOptions, PackageIndex, Requirement, Resolver, TargetPython};
use sha2::Digest;

#[path = "../static_index.rs"]
mod static_index;
use static_index::serve;

const PACKAGES: usize = 20;
const MODULES_PER_PACKAGE: usize = 40;

/// `pkg00` depends on `pkg01 .. pkg04`, each of those on the next four, and so on: 20 projects,
/// 40 modules of about 4 KiB each, three versions of each project on the index.
fn build_index(root: &Path) {
    let files = root.join("files");
    std::fs::create_dir_all(&files).unwrap();
    for i in 0..PACKAGES {
        let name = format!("pkg{i:02}");
        let mut links = String::new();
        for version in ["1.0", "1.1", "2.0"] {
            let deps: Vec<String> = (i * 4 + 1..=i * 4 + 4)
                .filter(|d| *d < PACKAGES)
                .map(|d| format!("pkg{d:02}>=1.0"))
                .collect();
            let (filename, bytes) = build_wheel(&name, version, &deps);
            std::fs::write(files.join(&filename), &bytes).unwrap();
            let sha = hex(&sha2::Sha256::digest(&bytes));
            links.push_str(&format!(
                "<a href=\"../../files/{filename}#sha256={sha}\">{filename}</a><br/>\n"
            ));
        }
        let page = root.join("simple").join(&name);
        std::fs::create_dir_all(&page).unwrap();
        std::fs::write(
            page.join("index.html"),
            format!("<!DOCTYPE html><html><body>\n{links}</body></html>\n"),
        )
        .unwrap();
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn build_wheel(name: &str, version: &str, deps: &[String]) -> (String, Vec<u8>) {
    use base64_free::record_hash;
    let filename = format!("{name}-{version}-py3-none-any.whl");
    let dist_info = format!("{name}-{version}.dist-info");
    let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
    entries.push((
        format!("{name}/__init__.py"),
        format!("VERSION = '{version}'\n").into_bytes(),
    ));
    for m in 0..MODULES_PER_PACKAGE {
        let body: String = (0..100)
            .map(|l| format!("VALUE_{l} = {}  # {name} {m}\n", l * m))
            .collect();
        entries.push((format!("{name}/mod{m:02}.py"), body.into_bytes()));
    }
    let mut metadata = format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n");
    for dep in deps {
        metadata.push_str(&format!("Requires-Dist: {dep}\n"));
    }
    entries.push((format!("{dist_info}/METADATA"), metadata.into_bytes()));
    entries.push((
        format!("{dist_info}/WHEEL"),
        b"Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
            .to_vec(),
    ));
    let mut record = String::new();
    let mut buffer = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buffer);
        let options = zip::write::SimpleFileOptions::default();
        for (path, bytes) in &entries {
            zip.start_file(path.as_str(), options).unwrap();
            zip.write_all(bytes).unwrap();
            record.push_str(&format!(
                "{path},sha256={},{}\n",
                record_hash(bytes),
                bytes.len()
            ));
        }
        record.push_str(&format!("{dist_info}/RECORD,,\n"));
        zip.start_file(format!("{dist_info}/RECORD"), options)
            .unwrap();
        zip.write_all(record.as_bytes()).unwrap();
        zip.finish().unwrap();
    }
    (filename, buffer.into_inner())
}

/// RECORD's urlsafe base64 (no padding) of a sha256, without another dependency.
mod base64_free {
    use sha2::Digest;
    pub fn record_hash(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let digest = sha2::Sha256::digest(bytes);
        let mut out = String::new();
        for chunk in digest.chunks(3) {
            let n =
                chunk.iter().fold(0u32, |acc, b| (acc << 8) | *b as u32) << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
}

fn ours(url: &str, cache: &Path, site: &Path) -> usize {
    let index = PackageIndex::new(IndexOptions {
        index_url: Some(url.to_string()),
        find_links: None,
        http: HttpOptions::default(),
        cache: Some(wheels_cache::WheelsCache::open(cache).unwrap()),
        build_python: None,
    })
    .unwrap();
    let target = TargetPython::host((3, 11, 2));
    let reqs: Vec<Requirement> = vec!["pkg00".parse().unwrap()];
    let started = Instant::now();
    let resolution = Resolver::new(&index, &target).resolve(&reqs).unwrap();
    let resolved = started.elapsed();
    let count = install_resolution(&index, &resolution, site).unwrap().len();
    if std::env::var_os("REQS_BENCH_PHASES").is_some() {
        eprintln!(
            "resolve {} install {}",
            ms(resolved),
            ms(started.elapsed() - resolved)
        );
    }
    count
}

fn pip(url: &str, site: &Path) {
    let mut command = Command::new("python3");
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("PIP_")) {
        command.env_remove(key);
    }
    let status = command
        .args([
            "-m",
            "pip",
            "install",
            "-q",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--index-url",
            url,
            "--target",
        ])
        .arg(site)
        .arg("pkg00")
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "pip install failed");
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1}ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let repetitions = if std::env::args().any(|a| a == "--quick") {
        3
    } else {
        5
    };
    let root = tempfile::tempdir().unwrap();
    build_index(root.path());
    let (_server, url) = serve(root.path());
    let work = tempfile::tempdir().unwrap();
    println!("# requirements install: {PACKAGES} projects x 3 versions, {MODULES_PER_PACKAGE} modules each, local HTML index, {repetitions} runs a side, median");

    let (mut cold, mut pip_cold, mut warm) = (Vec::new(), Vec::new(), Vec::new());
    // Each side starts with the previous side's writes flushed, so neither pays for the other's
    // writeback.
    let settle = || {
        let _ = Command::new("sync").status();
    };
    for run in 0..repetitions {
        let cache = work.path().join(format!("cache-{run}"));
        settle();
        let started = Instant::now();
        let count = ours(&url, &cache, &work.path().join(format!("ours-cold-{run}")));
        cold.push(started.elapsed());
        assert_eq!(count, PACKAGES);

        settle();
        let started = Instant::now();
        pip(&url, &work.path().join(format!("pip-{run}")));
        pip_cold.push(started.elapsed());

        settle();
        let started = Instant::now();
        ours(&url, &cache, &work.path().join(format!("ours-warm-{run}")));
        warm.push(started.elapsed());
    }
    let (cold, pip_cold, warm) = (median(cold), median(pip_cold), median(warm));
    println!(
        "reqs_install_cold  ours={}  floor(pip install --target)={}  ratio={:.2}  (bar <= 0.50)",
        ms(cold),
        ms(pip_cold),
        cold.as_secs_f64() / pip_cold.as_secs_f64()
    );
    println!("reqs_install_warm  ours={}  (bar < 50ms)", ms(warm));
}
