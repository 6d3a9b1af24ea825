//! Limits too slow for CI (issue "Reliability: runaway code, limits and faults"), tried against a
//! real redis-server with the module; prints what happened, asserts nothing about time.
//! - `--script`: a 100 MB script (5,000,000 assignments and a comment) sent with RG.PYEXECUTE,
//!   while a second client sends PING every 50 ms: the reply's time and the slowest PING.
//! - `--wheel`: a requirement whose wheel is 1 GB (one stored 1 GB data file), served by a real
//!   index on 127.0.0.1: install time, the server's peak RSS, the slowest PING during the
//!   install, an import, and a DEBUG RELOAD (the wheel goes through the RDB).
//!
//! - `--registrations`: 100,000 registrations in one script: registering, a SET firing one of
//!   them, RG.DUMPREGISTRATIONS, DEBUG RELOAD.
//!
//! Without arguments all three run. Needs about 5 GB of free disk for the wheel.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::{cmd, pyexecute, Reply, Server};
use sha2::Digest;

#[path = "../static_index.rs"]
mod static_index;
use static_index::serve;

/// Sends PING every 50 ms until stopped; the slowest round trip.
fn pinger(server: &Server) -> (Arc<AtomicBool>, std::thread::JoinHandle<Duration>) {
    let stop = Arc::new(AtomicBool::new(false));
    let mut con = server.con();
    let flag = stop.clone();
    let handle = std::thread::spawn(move || {
        let mut slowest = Duration::ZERO;
        while !flag.load(Ordering::SeqCst) {
            let started = Instant::now();
            let _ = cmd(&mut con, &["PING"]);
            slowest = slowest.max(started.elapsed());
            std::thread::sleep(Duration::from_millis(50));
        }
        slowest
    });
    (stop, handle)
}

#[path = "../proc_status.rs"]
mod proc_status;

fn peak_rss_mb(pid: u32) -> u64 {
    proc_status::megabytes(pid, "VmHWM") as u64
}

fn long_script() -> String {
    let mut script: String = (0..5_000_000).map(|i| format!("v{i} = {i}\n")).collect();
    script.push_str("GB('ShardsIDReader').map(lambda x: v4999999 + 1).run()\n");
    let pad = 100_000_000usize.saturating_sub(script.len() + 2);
    script.push('#');
    script.push_str(&"x".repeat(pad));
    script.push('\n');
    script
}

fn script() {
    let server = Server::start();
    let script = long_script();
    let (stop, handle) = pinger(&server);
    let started = Instant::now();
    let reply = pyexecute(&mut server.con(), &script, &[]);
    let took = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    let slowest = handle.join().unwrap();
    println!(
        "limits script_100mb  bytes={}  reply_s={:.1}  slowest_ping_ms={:.0}  peak_rss_mb={}  reply={reply:?}",
        script.len(),
        took.as_secs_f64(),
        slowest.as_secs_f64() * 1000.0,
        peak_rss_mb(server.pid()),
    );
}

/// RECORD's urlsafe base64 (no padding) of a sha256 digest.
fn record_hash(digest: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in digest.chunks(3) {
        let n = chunk.iter().fold(0u32, |acc, b| (acc << 8) | *b as u32) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Writes `big-1.0-py3-none-any.whl` into `dir`: `big/__init__.py` and a stored `big/data.bin`
/// of `size` bytes; returns its file name.
fn write_big_wheel(dir: &Path, size: usize) -> String {
    let filename = "big-1.0-py3-none-any.whl".to_string();
    let file = std::fs::File::create(dir.join(&filename)).unwrap();
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
    let stored = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(true);
    let mut record = String::new();
    let add = |zip: &mut zip::ZipWriter<_>, record: &mut String, path: &str, bytes: &[u8]| {
        zip.start_file(path, stored).unwrap();
        zip.write_all(bytes).unwrap();
        let digest = sha2::Sha256::digest(bytes);
        record.push_str(&format!(
            "{path},sha256={},{}\n",
            record_hash(&digest),
            bytes.len()
        ));
    };
    add(
        &mut zip,
        &mut record,
        "big/__init__.py",
        b"import os\nSIZE = os.path.getsize(os.path.join(os.path.dirname(__file__), 'data.bin'))\n",
    );
    // The data file in 1 MB pieces, hashed as it goes.
    zip.start_file("big/data.bin", stored).unwrap();
    let mut hasher = sha2::Sha256::new();
    let piece: Vec<u8> = (0..1024 * 1024).map(|i| (i * 31 % 251) as u8).collect();
    let mut written = 0;
    while written < size {
        let n = piece.len().min(size - written);
        zip.write_all(&piece[..n]).unwrap();
        hasher.update(&piece[..n]);
        written += n;
    }
    record.push_str(&format!(
        "big/data.bin,sha256={},{size}\n",
        record_hash(&hasher.finalize())
    ));
    let dist_info = "big-1.0.dist-info";
    add(
        &mut zip,
        &mut record,
        &format!("{dist_info}/METADATA"),
        b"Metadata-Version: 2.1\nName: big\nVersion: 1.0\n",
    );
    add(
        &mut zip,
        &mut record,
        &format!("{dist_info}/WHEEL"),
        b"Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    );
    record.push_str(&format!("{dist_info}/RECORD,,\n"));
    zip.start_file(format!("{dist_info}/RECORD"), stored)
        .unwrap();
    zip.write_all(record.as_bytes()).unwrap();
    zip.finish().unwrap().flush().unwrap();
    filename
}

fn wheel() {
    let root = tempfile::tempdir().unwrap();
    let files = root.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    let started = Instant::now();
    let filename = write_big_wheel(&files, 1 << 30);
    let bytes = std::fs::metadata(files.join(&filename)).unwrap().len();
    let sha = {
        let mut file = std::fs::File::open(files.join(&filename)).unwrap();
        wheels_cache::hash_reader(&mut file).unwrap()
    };
    let page = root.path().join("simple/big");
    std::fs::create_dir_all(&page).unwrap();
    std::fs::write(
        page.join("index.html"),
        format!("<a href=\"../../files/{filename}#sha256={sha}\">{filename}</a>\n"),
    )
    .unwrap();
    println!(
        "limits wheel_1gb  built bytes={bytes} in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let (_http, url) = serve(root.path());
    let cache = tempfile::tempdir().unwrap();
    let server = Server::with_index(&url, cache.path());
    let (stop, handle) = pinger(&server);
    let started = Instant::now();
    let reply = pyexecute(
        &mut server.con(),
        "GB('ShardsIDReader').map(lambda x: __import__('big').SIZE).run()",
        &["REQUIREMENTS", "big"],
    );
    let took = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    let slowest = handle.join().unwrap();
    println!(
        "limits wheel_1gb  install_s={:.1}  slowest_ping_ms={:.0}  peak_rss_mb={}  reply={reply:?}",
        took.as_secs_f64(),
        slowest.as_secs_f64() * 1000.0,
        peak_rss_mb(server.pid()),
    );
    // The wheel goes through the RDB (SAVE, then a reload that reinstalls it offline).
    let mut con = server.con();
    let (stop, handle) = pinger(&server);
    let started = Instant::now();
    let reloaded = cmd(&mut con, &["DEBUG", "RELOAD"]);
    let took = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    let _ = handle.join();
    let again = pyexecute(
        &mut con,
        "GB('ShardsIDReader').map(lambda x: __import__('big').SIZE).run()",
        &[],
    );
    println!(
        "limits wheel_1gb  debug_reload_s={:.1}  reply={reloaded:?}  peak_rss_mb={}  import_after={again:?}",
        took.as_secs_f64(),
        peak_rss_mb(server.pid()),
    );
    assert_eq!(reloaded, Reply::ok());
}

/// 100,000 `sync` registrations in one script: registering, a SET that fires one of them,
/// RG.DUMPREGISTRATIONS, DEBUG RELOAD, then a SET again.
fn registrations() {
    let server = Server::start();
    let mut con = server.con();
    let timed = |what: &str, f: &mut dyn FnMut() -> Reply| {
        let started = Instant::now();
        let reply = f();
        let shown = match &reply {
            Reply::Arr(items) => format!("{} entries", items.len()),
            other => format!("{other:?}"),
        };
        println!(
            "limits registrations_100k  {what}_ms={:.0}  reply={shown}",
            started.elapsed().as_secs_f64() * 1000.0
        );
    };
    let script = "for i in range(100000):\n    GB().foreach(lambda r: execute('INCR', 'hits')).register(prefix='p%d' % i, mode='sync')";
    timed("register", &mut || {
        pyexecute(&mut con, script, &["ID", "many"])
    });
    timed("set_firing_one", &mut || {
        cmd(&mut con, &["SET", "p99999", "v"])
    });
    timed("dumpregistrations", &mut || {
        cmd(&mut con, &["RG.DUMPREGISTRATIONS"])
    });
    timed("debug_reload", &mut || cmd(&mut con, &["DEBUG", "RELOAD"]));
    timed("set_after_reload", &mut || {
        cmd(&mut con, &["SET", "p0", "v"])
    });
    println!(
        "limits registrations_100k  hits={:?}  peak_rss_mb={}",
        cmd(&mut con, &["GET", "hits"]),
        peak_rss_mb(server.pid())
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let all = !args
        .iter()
        .any(|a| a == "--script" || a == "--wheel" || a == "--registrations");
    if all || args.iter().any(|a| a == "--registrations") {
        registrations();
    }
    if all || args.iter().any(|a| a == "--script") {
        script();
    }
    if all || args.iter().any(|a| a == "--wheel") {
        wheel();
    }
}
