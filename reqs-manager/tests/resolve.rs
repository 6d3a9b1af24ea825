//! The resolver against a real HTTP index on 127.0.0.1 and a wheelhouse directory, with wheels
//! built by the tests.

mod support;

use std::time::Duration;

use reqs_manager::index::{FileLocation, HttpOptions};
use reqs_manager::{
    IndexOptions, PackageIndex, Requirement, Resolution, ResolveError, Resolver, Sha256Hex,
};
use support::{wheel, Format, TestIndex};

fn fast_http() -> HttpOptions {
    HttpOptions {
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_secs(2),
        retries: 3,
        backoff: Duration::from_millis(10),
        ..HttpOptions::default()
    }
}

fn index(url: Option<&str>, find_links: Option<&std::path::Path>) -> PackageIndex {
    PackageIndex::new(IndexOptions {
        index_url: url.map(str::to_string),
        find_links: find_links.map(|p| p.to_path_buf()),
        http: fast_http(),
        cache: None,
        build_python: None,
    })
    .unwrap()
}

fn resolve(index: &PackageIndex, reqs: &[&str]) -> Result<Resolution, ResolveError> {
    let reqs: Vec<Requirement> = reqs.iter().map(|r| r.parse().unwrap()).collect();
    Resolver::new(index, &support::target()).resolve(&reqs)
}

fn pins(resolution: &Resolution) -> Vec<String> {
    resolution
        .dists
        .iter()
        .map(|d| format!("{}=={}", d.name, d.version))
        .collect()
}

fn error(result: Result<Resolution, ResolveError>) -> String {
    match result {
        Ok(res) => panic!("expected an error, resolved {:?}", pins(&res)),
        Err(err) => err.to_string(),
    }
}

/// A small world: dependencies, extras, markers and a pre-release.
fn populate(index: &TestIndex) {
    index.add(
        &wheel("app", "1.0")
            .requires(&[
                "Lib_Core>=1",
                "legacy ; python_version < '3'",
                "fast-json ; extra == 'speed'",
            ])
            .extras(&["speed"]),
    );
    index.add(&wheel("lib-core", "1.0"));
    index.add(&wheel("lib-core", "2.0").requires(&["tiny==0.1.*"]));
    index.add(&wheel("lib-core", "3.0a1"));
    index.add(&wheel("tiny", "0.1.5"));
    index.add(&wheel("tiny", "0.2"));
    index.add(&wheel("fast-json", "4.2"));
    index.add(&wheel("legacy", "1.0"));
}

#[test]
fn resolves_dependencies_extras_and_markers_from_json_and_html_pages() {
    for format in [Format::Json, Format::Html] {
        let server = TestIndex::start(format);
        populate(&server);
        let index = index(Some(&server.url), None);

        let res = resolve(&index, &["App"]).unwrap();
        assert_eq!(pins(&res), ["app==1.0", "lib-core==2.0", "tiny==0.1.5"]);
        let app = &res.dists[0];
        assert_eq!(
            app.requires
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>(),
            ["lib-core"]
        );
        assert!(res.dists.iter().all(|d| d.file.sha256.is_some()));

        let res = resolve(&index, &["app[speed]"]).unwrap();
        assert_eq!(
            pins(&res),
            ["app==1.0", "fast-json==4.2", "lib-core==2.0", "tiny==0.1.5"]
        );

        // Two requirements on one project intersect; a requirement whose marker is false is left out.
        let res = resolve(
            &index,
            &["lib-core<2", "lib-core>=1", "legacy ; python_version < '3'"],
        )
        .unwrap();
        assert_eq!(pins(&res), ["lib-core==1.0"]);

        // A pre-release is taken only when asked for.
        let res = resolve(&index, &["lib-core>=3.0a1"]).unwrap();
        assert_eq!(pins(&res), ["lib-core==3.0a1"]);
    }
}

#[test]
fn chooses_the_wheel_that_fits_the_interpreter_best() {
    let server = TestIndex::start(Format::Json);
    server.add(&wheel("native", "1.0").tag("py3-none-any"));
    server
        .add(&wheel("native", "1.0").tag("cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64"));
    server.add(&wheel("native", "1.0").tag("cp311-abi3-manylinux_2_28_x86_64"));
    server.add(&wheel("native", "1.0").tag("cp311-cp311-musllinux_1_1_x86_64"));
    // 2.0 exists only for other platforms and interpreters.
    server.add(&wheel("native", "2.0").tag("cp311-cp311-musllinux_1_2_x86_64"));
    server.add(&wheel("native", "2.0").tag("cp312-cp312-manylinux_2_17_x86_64"));
    server.add(&wheel("native", "2.0").tag("cp311-cp311-win_amd64"));
    let index = index(Some(&server.url), None);

    let res = resolve(&index, &["native"]).unwrap();
    assert_eq!(pins(&res), ["native==1.0"]);
    assert_eq!(
        res.dists[0].file.filename,
        "native-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    );

    let err = error(resolve(&index, &["native>=2"]));
    println!("{err}");
    assert!(err.contains("native"), "{err}");
    assert!(
        err.contains(
            "2.0: native-2.0-cp311-cp311-musllinux_1_2_x86_64.whl is not for this interpreter"
        ),
        "{err}"
    );
    assert!(err.contains("native has 1.0"), "{err}");
}

#[test]
fn unsatisfiable_constraints_say_which_requirement_which_constraint_and_which_versions() {
    let server = TestIndex::start(Format::Html);
    server.add(&wheel("web", "1.0").requires(&["orm>=2"]));
    server.add(&wheel("orm", "1.0"));
    server.add(&wheel("orm", "1.5"));
    server.add(&wheel("orm", "2.0"));
    let index = index(Some(&server.url), None);

    let err = error(resolve(&index, &["web==1.0", "orm<2"]));
    println!("{err}");
    assert!(
        err.starts_with("the requirements cannot be satisfied"),
        "{err}"
    );
    assert!(err.contains("web"), "{err}");
    assert!(err.contains("orm"), "{err}");
    assert!(err.contains(">=2"), "{err}");
    assert!(err.contains("orm has 1.0, 1.5, 2.0"), "{err}");

    let err = error(resolve(&index, &["orm>5"]));
    assert!(err.contains("orm has 1.0, 1.5, 2.0"), "{err}");
}

#[test]
fn unknown_packages_are_named() {
    let server = TestIndex::start(Format::Json);
    populate(&server);
    let index = index(Some(&server.url), None);
    let err = error(resolve(&index, &["no-such-thing"]));
    assert_eq!(
        err,
        format!(
            "package 'no-such-thing' was not found in the index {}",
            server.url
        )
    );

    server.add(&wheel("needs-ghost", "1.0").requires(&["ghost"]));
    let err = error(resolve(&index, &["needs-ghost"]));
    assert!(err.contains("package 'ghost' was not found"), "{err}");
}

#[test]
fn retries_server_errors_with_backoff_and_gives_up_with_the_status() {
    let server = TestIndex::start(Format::Json);
    populate(&server);
    server.with(|b| b.fail_next = 2);
    let index = index(Some(&server.url), None);
    let res = resolve(&index, &["tiny"]).unwrap();
    assert_eq!(pins(&res), ["tiny==0.2"]);
    assert_eq!(
        server
            .requests()
            .iter()
            .filter(|p| p.starts_with("/simple/tiny"))
            .count(),
        3
    );

    server.with(|b| b.always_fail = true);
    let err = error(resolve(&index, &["lib-core"]));
    assert!(
        err.contains("answered HTTP 500 after 4 attempt(s)"),
        "{err}"
    );
}

#[test]
fn a_slow_index_times_out_and_a_closed_port_is_unreachable() {
    let server = TestIndex::start(Format::Json);
    populate(&server);
    server.with(|b| b.delay = Some(Duration::from_millis(2500)));
    let mut options = fast_http();
    options.timeout = Duration::from_millis(300);
    options.retries = 1;
    let slow = PackageIndex::new(IndexOptions {
        index_url: Some(server.url.clone()),
        find_links: None,
        http: options,
        cache: None,
        build_python: None,
    })
    .unwrap();
    let err = error(resolve(&slow, &["tiny"]));
    assert!(
        err.contains("could not be reached after 2 attempt(s): timed out"),
        "{err}"
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let closed = index(Some(&format!("http://127.0.0.1:{port}/simple/")), None);
    let err = error(resolve(&closed, &["tiny"]));
    assert!(
        err.contains("could not be reached after 4 attempt(s)"),
        "{err}"
    );
}

/// A server on 127.0.0.1 that answers every request at once with its headers, then sends the
/// body one byte every 20 ms (for 3 s): `/simple/<project>/` lists one wheel when `page_fast`, whose file
/// then trickles; otherwise the page itself trickles.
fn trickling_index(page_fast: bool) -> String {
    use std::io::{BufRead, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                let mut first = String::new();
                let _ = reader.read_line(&mut first);
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let page = "<a href=\"../../files/tiny-0.2-py3-none-any.whl\">tiny-0.2-py3-none-any.whl</a>".repeat(20);
                let (content_type, body) = if first.contains("/files/") {
                    ("application/octet-stream", vec![b'x'; 100_000])
                } else {
                    ("text/html", page.into_bytes())
                };
                let mut out = stream;
                let _ = write!(
                    out,
                    "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                let _ = out.flush();
                let fast = page_fast && !first.contains("/files/");
                if fast {
                    let _ = out.write_all(&body);
                    return;
                }
                // Three seconds of it, then the connection closes: without the guard the client
                // reports a broken body instead.
                for byte in body.into_iter().take(150) {
                    if out.write_all(&[byte]).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            });
        }
    });
    format!("http://127.0.0.1:{port}/simple/")
}

#[test]
fn a_body_that_trickles_is_given_up() {
    let index = |url: String| {
        PackageIndex::new(IndexOptions {
            index_url: Some(url),
            find_links: None,
            http: HttpOptions {
                stall_window: Duration::from_millis(300),
                stall_min_bytes: 1024,
                retries: 0,
                ..fast_http()
            },
            cache: None,
            build_python: None,
        })
        .unwrap()
    };
    // A page: each byte comes well within the read timeout, the page would take a minute.
    let err = error(resolve(&index(trickling_index(false)), &["tiny"]));
    assert!(err.contains("the body stalled"), "{err}");
    // A wheel (its metadata is read from it here).
    let err = error(resolve(&index(trickling_index(true)), &["tiny"]));
    assert!(err.contains("the body stalled"), "{err}");
}

#[test]
fn garbage_pages_are_refused_with_the_page_named() {
    let server = TestIndex::start(Format::Json);
    populate(&server);
    server.with(|b| b.garbage = Some("{\"meta\": [garbage".into()));
    let index = index(Some(&server.url), None);
    let err = error(resolve(&index, &["tiny"]));
    assert!(
        err.contains("/simple/tiny/ is not a valid JSON simple-API page"),
        "{err}"
    );

    // A page bigger than the client accepts is refused, not buffered.
    server.with(|b| {
        b.garbage = Some(format!(
            "{{\"meta\": {{\"api-version\": \"1.0\"}}, \"files\": [], \"pad\": \"{}\"}}",
            "x".repeat(4096)
        ))
    });
    let small = PackageIndex::new(IndexOptions {
        index_url: Some(server.url.clone()),
        find_links: None,
        http: HttpOptions {
            max_body_bytes: 1024,
            ..fast_http()
        },
        cache: None,
        build_python: None,
    })
    .unwrap();
    let err = error(resolve(&small, &["tiny"]));
    assert!(err.contains("sent a body larger than 1024 bytes"), "{err}");

    let html = TestIndex::start(Format::Html);
    html.with(|b| b.garbage = Some("<html><<<a hre<f>>>\u{0}</ht".into()));
    let index = self::index(Some(&html.url), None);
    let err = error(resolve(&index, &["tiny"]));
    assert!(err.contains("lists no files for 'tiny'"), "{err}");
}

#[test]
fn redirects_are_followed_within_the_index_host_only() {
    let server = TestIndex::start(Format::Json);
    populate(&server);
    let index = index(Some(&server.url), None);
    // /simple/Lib.Core/ answers 301 to /simple/lib-core/ on the same host.
    let res = resolve(&index, &["tiny"]).unwrap();
    assert_eq!(pins(&res), ["tiny==0.2"]);

    let other = TestIndex::start(Format::Json);
    populate(&other);
    let elsewhere = other.url.replace("127.0.0.1", "localhost");
    server.with(|b| b.redirect_to = Some(elsewhere.clone()));
    let err = error(resolve(&index, &["lib-core"]));
    assert!(err.contains("redirected to another host"), "{err}");
    assert!(err.contains(&elsewhere), "{err}");
}

#[test]
fn pages_are_cached_as_their_headers_say() {
    let server = TestIndex::start(Format::Json);
    populate(&server);
    server.with(|b| {
        b.etag = true;
        b.cache_control = Some("max-age=0".into());
    });
    let index = index(Some(&server.url), None);
    resolve(&index, &["tiny"]).unwrap();
    resolve(&index, &["tiny"]).unwrap();
    let (page_requests, revalidated, not_modified) = server.with(|b| {
        let pages: Vec<_> = b.log.iter().filter(|(p, _)| p == "/simple/tiny/").collect();
        (
            pages.len(),
            pages.iter().filter(|(_, inm)| inm.is_some()).count(),
            b.not_modified,
        )
    });
    assert_eq!((page_requests, revalidated, not_modified), (2, 1, 1));

    server.with(|b| b.cache_control = Some("max-age=600".into()));
    resolve(&index, &["lib-core"]).unwrap();
    let before = server.requests().len();
    resolve(&index, &["lib-core"]).unwrap();
    let pages_after: Vec<String> = server.requests()[before..]
        .iter()
        .filter(|p| p.starts_with("/simple/"))
        .cloned()
        .collect();
    assert!(
        pages_after.iter().all(|p| p != "/simple/lib-core/"),
        "{pages_after:?}"
    );

    server.with(|b| b.cache_control = Some("no-store".into()));
    resolve(&index, &["fast-json"]).unwrap();
    resolve(&index, &["fast-json"]).unwrap();
    let unconditional = server.with(|b| {
        b.log
            .iter()
            .filter(|(p, inm)| p == "/simple/fast-json/" && inm.is_none())
            .count()
    });
    assert_eq!(unconditional, 2);
}

#[test]
fn pep658_metadata_spares_the_wheel_download_and_is_verified() {
    for format in [Format::Json, Format::Html] {
        let server = TestIndex::start(format);
        server.add_with(&wheel("meta", "1.0").requires(&["dep"]), |s| {
            s.offer_metadata = true
        });
        server.add(&wheel("dep", "1.0"));
        let index = index(Some(&server.url), None);
        let res = resolve(&index, &["meta"]).unwrap();
        assert_eq!(pins(&res), ["dep==1.0", "meta==1.0"]);
        let requests = server.requests();
        assert!(
            requests.contains(&"/files/meta-1.0-py3-none-any.whl.metadata".to_string()),
            "{requests:?}"
        );
        assert!(
            !requests.contains(&"/files/meta-1.0-py3-none-any.whl".to_string()),
            "{requests:?}"
        );
        assert!(
            requests.contains(&"/files/dep-1.0-py3-none-any.whl".to_string()),
            "{requests:?}"
        );

        // The .metadata file must match the hash the page gives for it.
        let liar = TestIndex::start(format);
        liar.add_with(&wheel("meta", "1.0").requires(&["evil"]), |s| {
            s.offer_metadata = true;
            s.announced_metadata_sha256 = Some(
                Sha256Hex::of(b"Metadata-Version: 2.1\nName: meta\nVersion: 1.0\n").to_string(),
            );
        });
        let index = self::index(Some(&liar.url), None);
        let err = error(resolve(&index, &["meta"]));
        assert!(
            err.contains("meta-1.0-py3-none-any.whl.metadata: sha256 is"),
            "{err}"
        );
    }
}

#[test]
fn broken_metadata_and_broken_wheels_are_named() {
    let server = TestIndex::start(Format::Json);
    server.add(
        &wheel("broken", "1.0").metadata(
            "Metadata-Version: 2.1\nName: broken\nVersion: 1.0\nRequires-Dist: ok >>>= 1\n",
        ),
    );
    server.add(
        &wheel("liar", "1.0").metadata("Metadata-Version: 2.1\nName: someone-else\nVersion: 1.0\n"),
    );
    server.add_with(&wheel("notazip", "1.0"), |s| {
        s.bytes = b"this is not a zip archive".to_vec();
        s.announced_sha256 = Some(Sha256Hex::of(&s.bytes).to_string());
    });
    let index = index(Some(&server.url), None);
    let err = error(resolve(&index, &["broken"]));
    assert!(
        err.contains(
            "metadata of broken-1.0-py3-none-any.whl is not valid: bad Requires-Dist 'ok >>>= 1'"
        ),
        "{err}"
    );
    let err = error(resolve(&index, &["liar"]));
    assert!(
        err.contains("liar-1.0-py3-none-any.whl says it is someone-else 1.0"),
        "{err}"
    );
    let err = error(resolve(&index, &["notazip"]));
    assert!(
        err.contains("notazip-1.0-py3-none-any.whl is not a readable wheel"),
        "{err}"
    );
}

#[test]
fn a_wheel_whose_bytes_do_not_match_the_index_hash_is_refused() {
    let server = TestIndex::start(Format::Html);
    server.add_with(&wheel("tampered", "1.0"), |s| {
        s.announced_sha256 = Some("0".repeat(64))
    });
    let index = index(Some(&server.url), None);
    let err = error(resolve(&index, &["tampered"]));
    assert!(
        err.contains("tampered-1.0-py3-none-any.whl: sha256 is"),
        "{err}"
    );
    assert!(
        err.contains(&format!("expected {}", "0".repeat(64))),
        "{err}"
    );
}

#[test]
fn the_find_links_directory_comes_first_and_its_wheels_are_hashed() {
    let server = TestIndex::start(Format::Json);
    populate(&server);
    let house = tempfile::tempdir().unwrap();
    let local = wheel("tiny", "0.2");
    let bytes = local.build();
    std::fs::write(house.path().join(local.filename()), &bytes).unwrap();
    std::fs::write(house.path().join("README.txt"), "not a wheel").unwrap();
    let with_local = wheel("local-only", "9.0").requires(&["tiny"]);
    std::fs::write(house.path().join(with_local.filename()), with_local.build()).unwrap();

    // The same version on both sides: the wheelhouse file wins; local-only exists nowhere else.
    let both = index(Some(&server.url), Some(house.path()));
    let res = resolve(&both, &["local-only"]).unwrap();
    assert_eq!(pins(&res), ["local-only==9.0", "tiny==0.2"]);
    let tiny = &res.dists[1];
    assert_eq!(
        tiny.file.location,
        FileLocation::Path(house.path().join(local.filename()))
    );
    assert_eq!(tiny.file.sha256.as_ref(), Some(&Sha256Hex::of(&bytes)));

    // Offline: no index at all, or an index that is down.
    let offline = index(None, Some(house.path()));
    assert_eq!(
        pins(&resolve(&offline, &["local-only"]).unwrap()),
        ["local-only==9.0", "tiny==0.2"]
    );
    server.with(|b| b.always_fail = true);
    let res = resolve(&both, &["local-only"]).unwrap();
    assert_eq!(pins(&res), ["local-only==9.0", "tiny==0.2"]);
    assert!(
        res.warnings
            .iter()
            .any(|w| w.contains("using the find-links directory only")),
        "{:?}",
        res.warnings
    );
    let err = error(resolve(&offline, &["app"]));
    assert!(
        err.contains("package 'app' was not found in the find-links directory"),
        "{err}"
    );
}

#[test]
fn hash_pinned_requirements_accept_only_their_hashes() {
    let server = TestIndex::start(Format::Json);
    let served = server.add(&wheel("pinned", "1.0"));
    server.add(&wheel("pinned", "2.0"));
    let right = Sha256Hex::of(&served.bytes);
    let index = index(Some(&server.url), None);

    let res = resolve(&index, &[&format!("pinned --hash=sha256:{right}")]).unwrap();
    assert_eq!(pins(&res), ["pinned==1.0"], "only 1.0 has a pinned hash");
    assert_eq!(res.dists[0].file.sha256.as_ref(), Some(&right));

    let wrong = "f".repeat(64);
    let err = error(resolve(
        &index,
        &[&format!("pinned==1.0 --hash=sha256:{wrong}")],
    ));
    assert!(
        err.contains("sha256 ") && err.contains("is not pinned"),
        "{err}"
    );

    // Without a hash on the page, the wheel is downloaded and hashed.
    let bare = TestIndex::start(Format::Html);
    bare.add_with(&wheel("pinned", "1.0"), |s| s.announced_sha256 = None);
    let index = self::index(Some(&bare.url), None);
    let err = error(resolve(
        &index,
        &[&format!("pinned==1.0 --hash=sha256:{wrong}")],
    ));
    assert!(
        err.contains("no file of pinned 1.0 has a sha256 among the pinned hashes"),
        "{err}"
    );
    let res = resolve(&index, &[&format!("pinned==1.0 --hash=sha256:{right}")]).unwrap();
    assert_eq!(res.dists[0].file.sha256.as_ref(), Some(&right));
}

#[test]
fn requires_python_and_yanked_files_are_left_out() {
    let server = TestIndex::start(Format::Html);
    server.add(&wheel("modern", "1.0"));
    server.add_with(&wheel("modern", "2.0"), |s| {
        s.requires_python = Some(">=3.12".into())
    });
    server.add(&wheel("modern", "3.0").requires_python(">=3.13"));
    server.add_with(&wheel("modern", "4.0"), |s| s.yanked = true);
    let index = index(Some(&server.url), None);
    let res = resolve(&index, &["modern"]).unwrap();
    assert_eq!(pins(&res), ["modern==1.0"]);

    server.add_file_with(
        "modern",
        "modern-5.0.tar.gz",
        b"not built here".to_vec(),
        |s| s.announced_sha256 = None,
    );
    let err = error(resolve(&index, &["modern>=2"]));
    assert!(
        err.contains("5.0: only the source distribution modern-5.0.tar.gz (building is off)"),
        "{err}"
    );
    assert!(err.contains("2.0: requires Python >=3.12"), "{err}");
    assert!(err.contains("4.0: yanked"), "{err}");
    assert!(err.contains("requires Python >=3.13"), "{err}");
}

#[test]
fn the_public_index_when_reachable() {
    if !support::public_index_reachable() {
        println!("skipped: pypi.org:443 is not reachable from this machine");
        return;
    }
    let index = PackageIndex::new(IndexOptions {
        index_url: Some(reqs_manager::index::DEFAULT_INDEX_URL.into()),
        find_links: None,
        http: HttpOptions {
            timeout: Duration::from_secs(30),
            ..HttpOptions::default()
        },
        cache: None,
        build_python: None,
    })
    .unwrap();
    match resolve(&index, &["six==1.16.0"]) {
        Ok(res) => {
            assert_eq!(pins(&res), ["six==1.16.0"]);
            assert_eq!(
                res.dists[0].file.filename,
                "six-1.16.0-py2.py3-none-any.whl"
            );
            assert!(res.dists[0].file.sha256.is_some());
        }
        Err(ResolveError::Index(err)) => {
            println!("skipped: the public index did not answer: {err}")
        }
        Err(err) => panic!("{err}"),
    }
}
