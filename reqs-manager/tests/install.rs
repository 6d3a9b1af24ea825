//! The wheels cache and the installer: real wheels from a real index on 127.0.0.1, imported by the
//! real interpreter afterwards; malicious and broken archives refused before anything is written.

mod support;

use std::io::Cursor;
use std::path::Path;
use std::time::Duration;

use reqs_manager::index::HttpOptions;
use reqs_manager::install::{install_all, install_resolution, install_wheel};
use reqs_manager::{IndexOptions, PackageIndex, Requirement, Resolver, Sha256Hex};
use support::{wheel, Format, RawWheel, TestIndex};
use wheels_cache::WheelsCache;

fn cached_index(url: &str, cache: &Path) -> PackageIndex {
    PackageIndex::new(IndexOptions {
        index_url: Some(url.to_string()),
        find_links: None,
        http: HttpOptions {
            timeout: Duration::from_secs(2),
            retries: 1,
            backoff: Duration::from_millis(10),
            ..HttpOptions::default()
        },
        cache: Some(WheelsCache::open(cache).unwrap()),
        build_python: build_python(),
    })
    .unwrap()
}

fn resolve_and_install(
    index: &PackageIndex,
    reqs: &[&str],
    site: &Path,
) -> Result<Vec<String>, String> {
    let reqs: Vec<Requirement> = reqs.iter().map(|r| r.parse().unwrap()).collect();
    let resolution = Resolver::new(index, &support::target())
        .resolve(&reqs)
        .map_err(|e| e.to_string())?;
    let installed = install_resolution(index, &resolution, site).map_err(|e| e.to_string())?;
    Ok(installed
        .iter()
        .map(|d| format!("{}=={}", d.name, d.version))
        .collect())
}

/// What the real interpreter imports from `site`.
fn python_import(site: &Path, code: &str) -> String {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import sys; sys.path.insert(0, {:?}); {code}",
            site.display().to_string()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let p = e.path();
                out.push(p.strip_prefix(root).unwrap().display().to_string());
                if p.is_dir() {
                    walk(&p, root, out);
                }
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn populate(index: &TestIndex) {
    index.add(&wheel("app", "1.0").requires(&["lib-core>=1"]));
    index.add(&wheel("lib-core", "2.0").requires(&["tiny"]));
    index.add(&wheel("tiny", "0.2"));
}

#[test]
fn installs_a_resolution_that_python_imports_and_reinstalls_warm_from_the_cache() {
    let server = TestIndex::start(Format::Json);
    populate(&server);
    let cache = tempfile::tempdir().unwrap();
    let site = tempfile::tempdir().unwrap();
    let index = cached_index(&server.url, cache.path());
    let mut installed = resolve_and_install(&index, &["app"], site.path()).unwrap();
    installed.sort();
    assert_eq!(installed, ["app==1.0", "lib-core==2.0", "tiny==0.2"]);
    assert_eq!(
        python_import(
            site.path(),
            "import app, lib_core, tiny; print(app.VERSION, lib_core.VERSION, tiny.VERSION)"
        ),
        "1.0 2.0 0.2"
    );
    let record = std::fs::read_to_string(site.path().join("tiny-0.2.dist-info/RECORD")).unwrap();
    assert!(record.contains("tiny/__init__.py,sha256="), "{record}");
    assert!(
        record.contains("tiny-0.2.dist-info/INSTALLER,sha256="),
        "{record}"
    );
    assert_eq!(
        std::fs::read_to_string(site.path().join("tiny-0.2.dist-info/INSTALLER")).unwrap(),
        "gears-rs\n"
    );
    assert!(!listing(site.path())
        .iter()
        .any(|p| p.contains(".gears-staging")));

    // Warm: a new index client (no HTTP cache), a new shard directory: no wheel is downloaded.
    let downloads_before = server
        .requests()
        .iter()
        .filter(|p| p.starts_with("/files/"))
        .count();
    assert_eq!(downloads_before, 3);
    let warm_site = tempfile::tempdir().unwrap();
    let warm = cached_index(&server.url, cache.path());
    resolve_and_install(&warm, &["app"], warm_site.path()).unwrap();
    let downloads_after = server
        .requests()
        .iter()
        .filter(|p| p.starts_with("/files/"))
        .count();
    assert_eq!(downloads_after, 3);

    // Installed files are hard links to the cache's unpacked, read-only copy; the interpreter's
    // __pycache__ stays in the shard directory.
    use std::os::unix::fs::MetadataExt;
    let tiny_sha = Sha256Hex::of(&wheel("tiny", "0.2").build()).to_string();
    let unpacked = cache
        .path()
        .join("unpacked")
        .join(&tiny_sha)
        .join("tiny/__init__.py");
    let installed = warm_site.path().join("tiny/__init__.py");
    assert_eq!(
        std::fs::metadata(&unpacked).unwrap().ino(),
        std::fs::metadata(&installed).unwrap().ino()
    );
    assert!(std::fs::metadata(&installed)
        .unwrap()
        .permissions()
        .readonly());
    python_import(warm_site.path(), "import tiny");
    assert!(!listing(&cache.path().join("unpacked"))
        .iter()
        .any(|p| p.contains("__pycache__")));

    // An unpacked copy changed behind our back is unpacked again from the verified wheel.
    let mut permissions = std::fs::metadata(&unpacked).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    permissions.set_readonly(false);
    std::fs::set_permissions(&unpacked, permissions).unwrap();
    std::fs::write(&unpacked, b"VERSION = 'evil'\n").unwrap();
    let other_fs = tempfile::tempdir_in("/dev/shm").unwrap();
    resolve_and_install(
        &cached_index(&server.url, cache.path()),
        &["app"],
        other_fs.path(),
    )
    .unwrap();
    assert_eq!(
        python_import(other_fs.path(), "import tiny; print(tiny.VERSION)"),
        "0.2"
    );
    assert_eq!(
        server
            .requests()
            .iter()
            .filter(|p| p.starts_with("/files/"))
            .count(),
        3
    );

    // A cached file changed behind our back is noticed and fetched again.
    let blob = cache
        .path()
        .join("sha256")
        .join(&tiny_sha[..2])
        .join(&tiny_sha);
    let mut permissions = std::fs::metadata(&blob).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    permissions.set_readonly(false);
    std::fs::set_permissions(&blob, permissions).unwrap();
    std::fs::write(&blob, b"tampered").unwrap();
    let third_site = tempfile::tempdir().unwrap();
    resolve_and_install(
        &cached_index(&server.url, cache.path()),
        &["app"],
        third_site.path(),
    )
    .unwrap();
    assert!(server
        .requests()
        .contains(&"/files/tiny-0.2-py3-none-any.whl".to_string()));
    assert_eq!(
        server
            .requests()
            .iter()
            .filter(|p| p.starts_with("/files/"))
            .count(),
        4
    );
    assert_eq!(
        python_import(third_site.path(), "import tiny; print(tiny.VERSION)"),
        "0.2"
    );
}

#[test]
fn bad_downloads_never_reach_the_cache() {
    let server = TestIndex::start(Format::Html);
    server.add_with(&wheel("liar", "1.0"), |s| {
        s.announced_sha256 = Some("1".repeat(64))
    });
    server.add(&wheel("cut", "1.0"));
    let cache = tempfile::tempdir().unwrap();
    let site = tempfile::tempdir().unwrap();
    let index = cached_index(&server.url, cache.path());
    let err = resolve_and_install(&index, &["liar"], site.path()).unwrap_err();
    assert!(
        err.contains("liar-1.0-py3-none-any.whl: sha256 is"),
        "{err}"
    );

    server.with(|b| b.truncate_files = true);
    let err = resolve_and_install(&index, &["cut"], site.path()).unwrap_err();
    assert!(err.contains("cut-1.0-py3-none-any.whl"), "{err}");
    let blobs: Vec<String> = listing(&cache.path().join("sha256"))
        .into_iter()
        .filter(|p| p.len() > 3)
        .collect();
    assert!(blobs.is_empty(), "{blobs:?}");
    assert!(listing(&cache.path().join("tmp")).is_empty());
    assert!(listing(site.path()).is_empty());
}

#[test]
fn malicious_and_broken_wheels_are_refused_before_anything_is_written() {
    let dist_info = "evil-1.0.dist-info";
    let cases: Vec<(&str, RawWheel, &str)> = vec![
        (
            "parent dir",
            RawWheel::new("evil", "1.0").entry("../escaped.py", b"x", 0o644),
            "escapes the target directory",
        ),
        (
            "nested parent",
            RawWheel::new("evil", "1.0").entry("evil/../../escaped.py", b"x", 0o644),
            "escapes the target directory",
        ),
        (
            "absolute",
            RawWheel::new("evil", "1.0").entry("/tmp/escaped.py", b"x", 0o644),
            "absolute path",
        ),
        (
            "backslash",
            RawWheel::new("evil", "1.0").entry("..\\escaped.py", b"x", 0o644),
            "backslash",
        ),
        (
            "symlink",
            {
                let mut w = RawWheel::new("evil", "1.0");
                w.symlinks.push(("evil/link".into(), "/etc/passwd".into()));
                w
            },
            "symbolic link",
        ),
        (
            "unknown data scheme",
            RawWheel::new("evil", "1.0").entry("evil-1.0.data/elsewhere/x", b"x", 0o644),
            ".data scheme",
        ),
        (
            "not in RECORD",
            {
                let mut w = RawWheel::new("evil", "1.0").entry("evil/extra.py", b"x", 0o644);
                w.unlisted.push("evil/extra.py".into());
                w
            },
            "is in the wheel but not in RECORD",
        ),
        (
            "RECORD hash wrong",
            {
                let mut w = RawWheel::new("evil", "1.0");
                w.record = Some(format!("evil/__init__.py,sha256={},12\n{dist_info}/METADATA,,\n{dist_info}/WHEEL,,\n{dist_info}/RECORD,,\n", "A".repeat(43)));
                w
            },
            "does not match its RECORD hash",
        ),
        (
            "RECORD malformed",
            {
                let mut w = RawWheel::new("evil", "1.0");
                w.record = Some("evil/__init__.py,md5=abc\n\"unterminated,,\n".into());
                w
            },
            "RECORD is not valid",
        ),
        (
            "METADATA malformed",
            {
                let mut w = RawWheel::new("evil", "1.0");
                w.entries[1].1 = b"Name: evil\nVersion: not a version\n".to_vec();
                w
            },
            "bad Version",
        ),
    ];
    for (label, raw, expected) in cases {
        let site = tempfile::tempdir().unwrap();
        let outside = site.path().parent().unwrap().join("escaped.py");
        let bytes = raw.build(dist_info);
        let err = install_wheel(Cursor::new(bytes), "evil-1.0-py3-none-any.whl", site.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{label}: {err}");
        assert!(
            err.starts_with("evil-1.0-py3-none-any.whl"),
            "{label}: {err}"
        );
        assert!(
            listing(site.path()).is_empty(),
            "{label}: {:?}",
            listing(site.path())
        );
        assert!(!outside.exists(), "{label}");
    }
    let site = tempfile::tempdir().unwrap();
    let err = install_wheel(
        Cursor::new(b"not a zip".to_vec()),
        "evil-1.0-py3-none-any.whl",
        site.path(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("not a readable zip archive"),
        "{err}"
    );
}

#[test]
fn data_directories_upgrades_and_namespace_packages() {
    let site = tempfile::tempdir().unwrap();
    let v1 = RawWheel::new("tool", "1.0")
        .entry("tool/old_only.py", b"OLD = 1\n", 0o644)
        .entry(
            "tool-1.0.data/scripts/tool-run",
            b"#!/bin/sh\necho run\n",
            0o755,
        )
        .entry("tool-1.0.data/purelib/tool_extra.py", b"X = 1\n", 0o644)
        .entry("tool-1.0.data/headers/tool.h", b"int x;\n", 0o644)
        .entry("tool-1.0.data/data/share/tool.txt", b"data\n", 0o644);
    install_wheel(
        Cursor::new(v1.build("tool-1.0.dist-info")),
        "tool-1.0-py3-none-any.whl",
        site.path(),
    )
    .unwrap();
    let files = listing(site.path());
    for expected in [
        "bin/tool-run",
        "tool_extra.py",
        "include/tool/tool.h",
        "share/tool.txt",
        "tool/old_only.py",
        "tool-1.0.dist-info/RECORD",
    ] {
        assert!(
            files.contains(&expected.to_string()),
            "{expected}: {files:?}"
        );
    }
    use std::os::unix::fs::PermissionsExt;
    assert_ne!(
        std::fs::metadata(site.path().join("bin/tool-run"))
            .unwrap()
            .permissions()
            .mode()
            & 0o111,
        0
    );

    // Upgrade: 2.0 replaces 1.0; files only 1.0 had are gone, and so is its dist-info.
    let v2 = RawWheel::new("tool", "2.0");
    install_wheel(
        Cursor::new(v2.build("tool-2.0.dist-info")),
        "tool-2.0-py3-none-any.whl",
        site.path(),
    )
    .unwrap();
    let files = listing(site.path());
    assert!(
        !files.iter().any(|f| f.contains("old_only")
            || f.contains("tool-1.0.dist-info")
            || f == "tool_extra.py"),
        "{files:?}"
    );
    assert_eq!(
        python_import(site.path(), "import tool; print(tool.VERSION)"),
        "2.0"
    );

    // Two wheels sharing a namespace directory, installed in parallel, both importable.
    let a = RawWheel::new("ns_a", "1.0").entry("nspkg/a/__init__.py", b"A = 'a'\n", 0o644);
    let b = RawWheel::new("ns_b", "1.0").entry("nspkg/b/__init__.py", b"B = 'b'\n", 0o644);
    let many: Vec<(Cursor<Vec<u8>>, String)> = vec![
        (
            Cursor::new(a.build("ns_a-1.0.dist-info")),
            "ns_a-1.0-py3-none-any.whl".into(),
        ),
        (
            Cursor::new(b.build("ns_b-1.0.dist-info")),
            "ns_b-1.0-py3-none-any.whl".into(),
        ),
    ];
    for result in install_all(many, site.path()) {
        result.unwrap();
    }
    assert_eq!(
        python_import(
            site.path(),
            "from nspkg.a import A; from nspkg.b import B; print(A + B)"
        ),
        "ab"
    );
}

#[test]
fn a_full_disk_fails_cleanly() {
    let mount_point = tempfile::tempdir().unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(mount_point.path())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        println!("skipped: cannot mount a small tmpfs here (needs root)");
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _guard = Unmount(mount_point.path());
    let big: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let raw = RawWheel::new("huge", "1.0").entry("huge/blob.bin", &big, 0o644);
    let bytes = raw.build("huge-1.0.dist-info");
    let err = install_wheel(
        Cursor::new(bytes),
        "huge-1.0-py3-none-any.whl",
        mount_point.path(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("No space left on device"), "{err}");
    assert!(
        listing(mount_point.path()).is_empty(),
        "{:?}",
        listing(mount_point.path())
    );

    let cache = WheelsCache::open(mount_point.path().join("cache")).unwrap();
    let err = cache
        .insert_with(None, "huge.whl", |w| {
            w.write_all(&big).map_err(|e| e.to_string())
        })
        .unwrap_err();
    assert!(err.to_string().contains("No space left on device"), "{err}");
    assert!(listing(&mount_point.path().join("cache/tmp")).is_empty());
}

/// The interpreter wheels are built with: the module's (Debian's python3.11) when present.
fn build_python() -> Option<std::path::PathBuf> {
    ["/usr/bin/python3.11", "/usr/bin/python3"]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
}

/// A setuptools source distribution `name-version.tar.gz`, made with tar.
fn sdist(
    dir: &Path,
    name: &str,
    version: &str,
    body: &str,
    requires: &[&str],
) -> (String, Vec<u8>) {
    let root = dir.join(format!("{name}-{version}"));
    std::fs::create_dir_all(root.join(name)).unwrap();
    std::fs::write(root.join(name).join("__init__.py"), body).unwrap();
    std::fs::write(
        root.join("setup.py"),
        format!(
            "from setuptools import setup\nsetup(name={name:?}, version={version:?}, packages=[{name:?}], install_requires={requires:?})\n"
        ),
    )
    .unwrap();
    std::fs::write(
        root.join("PKG-INFO"),
        format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"),
    )
    .unwrap();
    let filename = format!("{name}-{version}.tar.gz");
    let status = std::process::Command::new("tar")
        .args(["czf", &filename, &format!("{name}-{version}")])
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(status.success());
    (
        filename.clone(),
        std::fs::read(dir.join(&filename)).unwrap(),
    )
}

#[test]
fn source_only_projects_are_built_once_and_cached() {
    let python = build_python().expect("an interpreter to build with");
    let setuptools_ok = std::process::Command::new(&python)
        .args(["-c", "import setuptools, wheel"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        setuptools_ok,
        "{} needs setuptools and wheel (ci/setup.sh installs them)",
        python.display()
    );
    let server = TestIndex::start(Format::Html);
    server.add(&wheel("tiny", "0.2"));
    let work = tempfile::tempdir().unwrap();
    let (filename, bytes) = sdist(
        work.path(),
        "srconly",
        "1.5",
        "VERSION = 'built'\n",
        &["tiny"],
    );
    server.add_file("srconly", &filename, bytes);
    let cache = tempfile::tempdir().unwrap();
    let site = tempfile::tempdir().unwrap();
    let mut installed = resolve_and_install(
        &cached_index(&server.url, cache.path()),
        &["srconly"],
        site.path(),
    )
    .unwrap();
    installed.sort();
    assert_eq!(installed, ["srconly==1.5", "tiny==0.2"]);
    assert_eq!(
        python_import(site.path(), "import srconly; print(srconly.VERSION)"),
        "built"
    );
    let builds = listing(&cache.path().join("builds"));
    assert_eq!(builds.len(), 1, "{builds:?}");

    // A second shard: the built wheel comes from the cache, nothing is downloaded or built.
    let downloads = server
        .requests()
        .iter()
        .filter(|p| p.starts_with("/files/"))
        .count();
    let recorded = std::fs::metadata(cache.path().join("builds").join(&builds[0]))
        .unwrap()
        .modified()
        .unwrap();
    let second = tempfile::tempdir().unwrap();
    resolve_and_install(
        &cached_index(&server.url, cache.path()),
        &["srconly"],
        second.path(),
    )
    .unwrap();
    assert_eq!(
        server
            .requests()
            .iter()
            .filter(|p| p.starts_with("/files/"))
            .count(),
        downloads
    );
    assert_eq!(
        std::fs::metadata(cache.path().join("builds").join(&builds[0]))
            .unwrap()
            .modified()
            .unwrap(),
        recorded
    );

    // A source distribution that does not build says so, with pip's last words.
    let (filename, bytes) = sdist(work.path(), "broken_src", "1.0", "", &[]);
    let _ = filename;
    let broken_dir = work.path().join("broken_src-1.0");
    std::fs::write(
        broken_dir.join("setup.py"),
        "raise SystemExit('this package cannot be built')\n",
    )
    .unwrap();
    let _ = bytes;
    let status = std::process::Command::new("tar")
        .args(["czf", "broken_src-1.0.tar.gz", "broken_src-1.0"])
        .current_dir(work.path())
        .status()
        .unwrap();
    assert!(status.success());
    let bytes = std::fs::read(work.path().join("broken_src-1.0.tar.gz")).unwrap();
    server.add_file("broken-src", "broken_src-1.0.tar.gz", bytes);
    let err = resolve_and_install(
        &cached_index(&server.url, cache.path()),
        &["broken-src"],
        site.path(),
    )
    .unwrap_err();
    assert!(
        err.starts_with("building a wheel from broken_src-1.0.tar.gz failed: pip exited with"),
        "{err}"
    );
    assert!(err.contains("this package cannot be built"), "{err}");
}

#[test]
fn shards_filling_one_cache_at_once_download_each_wheel_once() {
    let server = TestIndex::start(Format::Json);
    populate(&server);
    let cache = tempfile::tempdir().unwrap();
    let sites: Vec<tempfile::TempDir> = (0..6).map(|_| tempfile::tempdir().unwrap()).collect();
    std::thread::scope(|scope| {
        for site in &sites {
            let (url, cache) = (server.url.clone(), cache.path().to_path_buf());
            scope.spawn(move || {
                // Each "shard" has its own client and its own handle on the cache.
                resolve_and_install(&cached_index(&url, &cache), &["app"], site.path()).unwrap();
            });
        }
    });
    let mut downloads: Vec<String> = server
        .requests()
        .into_iter()
        .filter(|p| p.starts_with("/files/"))
        .collect();
    downloads.sort();
    assert_eq!(
        downloads,
        [
            "/files/app-1.0-py3-none-any.whl",
            "/files/lib_core-2.0-py3-none-any.whl",
            "/files/tiny-0.2-py3-none-any.whl"
        ]
    );
    for site in &sites {
        assert_eq!(
            python_import(
                site.path(),
                "import app, tiny; print(app.VERSION, tiny.VERSION)"
            ),
            "1.0 0.2"
        );
    }
    assert!(listing(&cache.path().join("tmp")).is_empty());
}

#[test]
fn staging_left_by_a_killed_install_is_removed_and_never_imported() {
    let target = tempfile::tempdir().unwrap();
    // What a kill -9 half-way through an install leaves: a staging directory with a package in it.
    let staging = target.path().join(".gears-staging-abc123");
    std::fs::create_dir_all(staging.join("halfpkg")).unwrap();
    std::fs::write(staging.join("halfpkg/__init__.py"), "VALUE = 1\n").unwrap();
    std::fs::create_dir_all(target.path().join("kept")).unwrap();
    let imported = std::process::Command::new("python3")
        .arg("-c")
        .arg("import halfpkg")
        .env("PYTHONPATH", target.path())
        .output()
        .unwrap();
    assert!(
        !imported.status.success(),
        "a staged package must not be importable"
    );
    assert_eq!(
        reqs_manager::install::remove_leftover_staging(target.path()).unwrap(),
        1
    );
    assert!(!staging.exists());
    assert!(target.path().join("kept").exists());
    assert_eq!(
        reqs_manager::install::remove_leftover_staging(&target.path().join("missing")).unwrap(),
        0
    );
}

#[test]
fn a_wheel_larger_than_the_download_limit_is_refused_and_not_cached() {
    let server = TestIndex::start(Format::Json);
    populate(&server);
    let cache = tempfile::tempdir().unwrap();
    let site = tempfile::tempdir().unwrap();
    // Pages are small enough; the wheel file is not.
    let index = PackageIndex::new(IndexOptions {
        index_url: Some(server.url.clone()),
        find_links: None,
        http: HttpOptions {
            timeout: Duration::from_secs(2),
            retries: 1,
            backoff: Duration::from_millis(10),
            max_download_bytes: 100,
            ..HttpOptions::default()
        },
        cache: Some(WheelsCache::open(cache.path()).unwrap()),
        build_python: build_python(),
    })
    .unwrap();
    let err = resolve_and_install(&index, &["tiny"], site.path()).unwrap_err();
    assert!(err.contains("sent a body larger than 100 bytes"), "{err}");
    assert!(
        listing(site.path()).is_empty(),
        "{:?}",
        listing(site.path())
    );
    // The limit is for files: the default one takes wheels of several GB.
    assert_eq!(HttpOptions::default().max_download_bytes, 8 << 30);
    let index = cached_index(&server.url, cache.path());
    assert_eq!(
        resolve_and_install(&index, &["tiny"], site.path()).unwrap(),
        ["tiny==0.2"]
    );
}
