//! Offline deployment: RG.PYEXPORTREQ / RG.PYIMPORTREQ between servers (the second has no
//! index), gears-cli's bundles, and a server that installs from a wheelhouse alone.

#[path = "../../reqs-manager/tests/support/mod.rs"]
mod support;

use e2e::{call, cmd, pyexecute, Reply, Server};
use reqs_manager::bundle::RequirementBundle;
use support::{wheel, Format, RawWheel, TestIndex};

fn names(con: &mut redis::Connection) -> Vec<String> {
    let mut names: Vec<String> = cmd(con, &["RG.PYDUMPREQS"])
        .items()
        .iter()
        .map(|e| e.items()[3].as_str().to_string())
        .collect();
    names.sort();
    names
}

const IMPORTS: &str = "GB('ShardsIDReader').map(lambda x: __import__('app').VERSION + ' ' + __import__('tiny').VERSION).run()";

/// A server with an index that has `app` (needing `tiny`) installed.
fn source() -> (TestIndex, tempfile::TempDir, Server) {
    let index = TestIndex::start(Format::Json);
    index.add(&wheel("tiny", "0.2"));
    index.add(&wheel("app", "1.0").requires(&["tiny"]));
    let cache = tempfile::tempdir().unwrap();
    let server = Server::with_index(&index.url, cache.path());
    let mut con = server.con();
    assert_eq!(
        pyexecute(&mut con, IMPORTS, &["REQUIREMENTS", "app"]),
        Reply::results(&["1.0 0.2"], &[])
    );
    (index, cache, server)
}

/// A server with no index at all.
fn offline() -> (tempfile::TempDir, Server) {
    let cache = tempfile::tempdir().unwrap();
    let server = Server::with_module_args(&[
        "RequirementsIndexUrl",
        "",
        "WheelsCacheDir",
        cache.path().to_str().unwrap(),
    ]);
    (cache, server)
}

fn import(con: &mut redis::Connection, chunks: &[Vec<u8>]) -> Reply {
    let mut args: Vec<&[u8]> = vec![b"RG.PYIMPORTREQ"];
    args.extend(chunks.iter().map(Vec::as_slice));
    call(con, &args)
}

fn chunks_of(reply: &Reply) -> Vec<Vec<u8>> {
    reply.items()[1]
        .items()
        .iter()
        .map(|c| match c {
            Reply::Bulk(b) => b.clone(),
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn export_from_one_server_import_into_another_without_an_index() {
    let (_index, _cache, source) = source();
    let mut src = source.con();
    let exported = cmd(&mut src, &["RG.PYEXPORTREQ", "app"]);
    let metadata = &exported.items()[0];
    assert_eq!(metadata.items().len(), 18);
    assert_eq!(metadata.items()[3], Reply::bulk("app"));
    let chunks = chunks_of(&exported);
    let bundle = RequirementBundle::parse(&chunks.concat()).unwrap();
    assert_eq!(bundle.name, "app");
    assert!(bundle.in_table);
    let mut wheels: Vec<&str> = bundle.wheels.iter().map(|(n, _)| n.as_str()).collect();
    wheels.sort();
    assert_eq!(
        wheels,
        ["app-1.0-py3-none-any.whl", "tiny-0.2-py3-none-any.whl"]
    );

    let (_cache2, target) = offline();
    let mut dst = target.con();
    // Without the bundle the offline server cannot install it.
    let reply = pyexecute(&mut dst, IMPORTS, &["REQUIREMENTS", "app"]);
    assert!(
        matches!(&reply, Reply::Err(e) if e.contains("was not found in any source")),
        "{reply:?}"
    );
    assert_eq!(import(&mut dst, &chunks), Reply::bulk("OK"));
    assert_eq!(names(&mut dst), ["app"]);
    assert_eq!(
        pyexecute(&mut dst, IMPORTS, &["REQUIREMENTS", "app"]),
        Reply::results(&["1.0 0.2"], &[])
    );
    // Importing again re-installs over it.
    assert_eq!(import(&mut dst, &chunks), Reply::bulk("OK"));
    assert_eq!(names(&mut dst), ["app"]);

    assert_eq!(
        cmd(&mut src, &["RG.PYEXPORTREQ", "nope"]),
        Reply::err("requirement does not exists")
    );
    assert!(
        matches!(cmd(&mut src, &["RG.PYEXPORTREQ"]), Reply::Err(e) if e.contains("wrong number of arguments"))
    );
}

#[test]
fn bad_bundles_are_refused_with_a_clear_error_and_change_nothing() {
    let (_cache, server) = offline();
    let mut con = server.con();
    let good = RequirementBundle {
        name: "app".into(),
        compiled_os: "linux-bookworm-x64".into(),
        in_table: true,
        wheels: vec![(
            "app-1.0-py3-none-any.whl".into(),
            wheel("app", "1.0").build(),
        )],
    };
    let bytes = good.serialize();
    // Garbage, truncated, reordered.
    assert_eq!(
        import(&mut con, &[]),
        Reply::err("Bad serialization format on reading requirement version")
    );
    assert_eq!(
        import(&mut con, &[b"garbage".to_vec()]),
        Reply::err("Bad serialization format on reading requirement version")
    );
    assert_eq!(
        import(&mut con, &[bytes[..18].to_vec()]),
        Reply::err("Bad serialization format on reading requirement name")
    );
    assert_eq!(
        import(&mut con, &[bytes[..bytes.len() - 1].to_vec()]),
        Reply::err("Bad serialization format on reading wheel file data")
    );
    let (a, b) = bytes.split_at(40);
    let reply = import(&mut con, &[b.to_vec(), a.to_vec()]);
    assert!(
        matches!(&reply, Reply::Err(e) if e.starts_with("Bad serialization format") || e.starts_with("Requirement version")),
        "{reply:?}"
    );

    // Built for another platform: the tags are named.
    let mut foreign = good.clone();
    foreign.wheels = vec![(
        "native-1.0-cp312-cp312-win_amd64.whl".into(),
        b"PK".to_vec(),
    )];
    let reply = import(&mut con, &[foreign.serialize()]);
    assert!(
        matches!(&reply, Reply::Err(e) if e.starts_with("Failed install requirement on shard, check shard log for more info.") && e.contains("cp312-cp312-win_amd64")),
        "{reply:?}"
    );

    // A wheel whose files do not match its RECORD.
    let mut tampered = RawWheel::new("app", "1.0");
    tampered.record = Some(format!("app/__init__.py,sha256={},12\napp-1.0.dist-info/METADATA,,\napp-1.0.dist-info/WHEEL,,\napp-1.0.dist-info/RECORD,,\n", "A".repeat(43)));
    let mut bad = good.clone();
    bad.wheels = vec![(
        "app-1.0-py3-none-any.whl".into(),
        tampered.build("app-1.0.dist-info"),
    )];
    let reply = import(&mut con, &[bad.serialize()]);
    assert!(
        matches!(&reply, Reply::Err(e) if e.starts_with("Failed install requirement on shard") && e.contains("does not match its RECORD hash")),
        "{reply:?}"
    );

    assert_eq!(names(&mut con), Vec::<String>::new());
    assert_eq!(
        import(
            &mut con,
            &bytes.chunks(7).map(<[u8]>::to_vec).collect::<Vec<_>>()
        ),
        Reply::bulk("OK")
    );
    assert_eq!(names(&mut con), ["app"]);
}

#[test]
fn a_server_with_only_a_wheelhouse_installs_from_it() {
    let house = tempfile::tempdir().unwrap();
    for w in [
        wheel("tiny", "0.2"),
        wheel("app", "1.0").requires(&["tiny"]),
    ] {
        std::fs::write(house.path().join(w.filename()), w.build()).unwrap();
    }
    let cache = tempfile::tempdir().unwrap();
    let server = Server::with_module_args(&[
        "RequirementsIndexUrl",
        "",
        "RequirementsFindLinks",
        house.path().to_str().unwrap(),
        "WheelsCacheDir",
        cache.path().to_str().unwrap(),
    ]);
    let mut con = server.con();
    assert_eq!(
        pyexecute(&mut con, IMPORTS, &["REQUIREMENTS", "app"]),
        Reply::results(&["1.0 0.2"], &[])
    );
}

#[test]
fn gears_cli_round_trip() {
    let venv = tempfile::tempdir().unwrap();
    let ok = std::process::Command::new("python3")
        .args(["-m", "venv"])
        .arg(venv.path())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "python3 -m venv (ci/setup.sh installs python3-venv)");
    let pip = std::process::Command::new(venv.path().join("bin/pip"))
        .args(["install", "-q", "--disable-pip-version-check", "gears-cli"])
        .env_remove("PIP_FIND_LINKS")
        .output()
        .unwrap();
    if !pip.status.success() {
        println!(
            "skipped: gears-cli could not be installed from the package index: {}",
            String::from_utf8_lossy(&pip.stderr)
        );
        return;
    }
    let cli = venv.path().join("bin/gears-cli");
    let (_index, _cache, source) = source();
    let out = tempfile::tempdir().unwrap();
    let export = std::process::Command::new(&cli)
        .args([
            "export-requirements",
            "--host",
            "127.0.0.1",
            "--port",
            &source.port.to_string(),
            "--requirement",
            "app",
            "--save-directory",
        ])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(
        export.status.success(),
        "{}{}",
        String::from_utf8_lossy(&export.stdout),
        String::from_utf8_lossy(&export.stderr)
    );
    let bundles: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(bundles.len(), 1, "{bundles:?}");
    let name = bundles[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        name.starts_with("redisgears-requirement-v2-app-linux-"),
        "{name}"
    );

    let (_cache2, target) = offline();
    let import = std::process::Command::new(&cli)
        .args([
            "import-requirements",
            "--host",
            "127.0.0.1",
            "--port",
            &target.port.to_string(),
            "--requirements-path",
        ])
        .arg(out.path())
        .arg(&name)
        .output()
        .unwrap();
    assert!(
        import.status.success(),
        "{}{}",
        String::from_utf8_lossy(&import.stdout),
        String::from_utf8_lossy(&import.stderr)
    );
    let mut con = target.con();
    assert_eq!(names(&mut con), ["app"]);
    assert_eq!(
        pyexecute(&mut con, IMPORTS, &["REQUIREMENTS", "app"]),
        Reply::results(&["1.0 0.2"], &[])
    );
}

/// The `gears-reqs` tool, built by ci/test.sh beside the module.
fn gears_reqs() -> std::path::PathBuf {
    let path =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/gears-reqs");
    assert!(
        path.exists(),
        "{} is missing: cargo build --release -p reqs-manager --bins",
        path.display()
    );
    path
}

fn run_tool(args: &[&str]) -> String {
    let out = std::process::Command::new(gears_reqs())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "gears-reqs {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn gears_reqs_bundles_for_the_servers_interpreter_imports_and_lists() {
    let index = TestIndex::start(Format::Html);
    let tiny = index.add(&wheel("tiny", "0.2"));
    let app = index.add(&wheel("app", "1.0").requires(&["tiny"]));
    index.add(&wheel("native", "1.0").tag("cp312-cp312-manylinux_2_17_x86_64"));
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();

    // Bundles, imported into a server with no index, listed with their hashes.
    let written = run_tool(&[
        "bundle",
        "--out",
        dir,
        "--index-url",
        &index.url,
        "--python",
        "3.11.2",
        "app",
    ]);
    let bundle = written.trim().to_string();
    assert!(
        bundle.ends_with("redisgears-requirement-v2-app-linux-bookworm-x64.zip"),
        "{bundle}"
    );
    let (_cache, target) = offline();
    let url = format!("redis://127.0.0.1:{}/", target.port);
    assert_eq!(
        run_tool(&["import", "--url", &url, &bundle]).trim(),
        "app: OK"
    );
    let mut con = target.con();
    assert_eq!(
        pyexecute(&mut con, IMPORTS, &["REQUIREMENTS", "app"]),
        Reply::results(&["1.0 0.2"], &[])
    );
    let listed = run_tool(&["list", "--url", &url]);
    assert!(
        listed.contains(&format!(
            "app-1.0-py3-none-any.whl  sha256={}",
            reqs_manager::Sha256Hex::of(&app.bytes)
        )),
        "{listed}"
    );
    assert!(
        listed.contains(&format!(
            "tiny-0.2-py3-none-any.whl  sha256={}",
            reqs_manager::Sha256Hex::of(&tiny.bytes)
        )),
        "{listed}"
    );
    let refused = std::process::Command::new(gears_reqs())
        .args(["bundle", "--out", dir, "--index-url", &index.url, "app"])
        .output()
        .unwrap();
    assert!(
        !refused.status.success()
            && String::from_utf8_lossy(&refused.stderr).contains("not overwriting")
    );

    // Resolution is for the server's interpreter, not this host's.
    let house = tempfile::tempdir().unwrap();
    let house_dir = house.path().to_str().unwrap();
    let err = std::process::Command::new(gears_reqs())
        .args([
            "bundle",
            "--wheelhouse",
            "--out",
            house_dir,
            "--index-url",
            &index.url,
            "--python",
            "3.11",
            "native",
        ])
        .output()
        .unwrap();
    assert!(!err.status.success());
    assert!(
        String::from_utf8_lossy(&err.stderr).contains("is not for this interpreter"),
        "{}",
        String::from_utf8_lossy(&err.stderr)
    );
    let written = run_tool(&[
        "bundle",
        "--wheelhouse",
        "--out",
        house_dir,
        "--index-url",
        &index.url,
        "--python",
        "3.12.1",
        "native",
        "app",
    ]);
    let mut files: Vec<String> = written
        .lines()
        .map(|l| l.rsplit('/').next().unwrap().to_string())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "app-1.0-py3-none-any.whl",
            "native-1.0-cp312-cp312-manylinux_2_17_x86_64.whl",
            "tiny-0.2-py3-none-any.whl"
        ]
    );
}
