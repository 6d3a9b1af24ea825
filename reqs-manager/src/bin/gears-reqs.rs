//! `gears-reqs`: requirements for servers that cannot reach a package index.
//!
//! ```text
//! gears-reqs bundle [--wheelhouse] --out DIR [--index-url URL] [--find-links DIR]
//!                   [--python 3.11.2] [--machine x86_64] [--glibc 2.36 | --musl 1.2]
//!                   [--os linux-bookworm-x64] REQUIREMENT...
//! gears-reqs import [--url redis://127.0.0.1:6379/] BUNDLE.zip...
//! gears-reqs list   [--url redis://127.0.0.1:6379/]
//! ```
//! `bundle` resolves for the server's interpreter (not this host's) and writes one gears-cli
//! bundle per requirement (`MetaData.json` + `Data.bin`, importable with `gears-cli
//! import-requirements` or `gears-reqs import`), or with `--wheelhouse` a plain directory of
//! wheels for the server's `RequirementsFindLinks`. `list` shows each installed requirement's
//! wheels with their sha256.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use reqs_manager::bundle::RequirementBundle;
use reqs_manager::index::{HttpOptions, DEFAULT_INDEX_URL};
use reqs_manager::{
    IndexOptions, Libc, PackageIndex, Requirement, Resolver, Sha256Hex, TargetPython,
};

const USAGE: &str = "usage:
  gears-reqs bundle [--wheelhouse] --out DIR [--index-url URL] [--find-links DIR]
                    [--python X.Y.Z] [--machine ARCH] [--glibc X.Y | --musl X.Y] [--os OS] REQUIREMENT...
  gears-reqs import [--url redis://HOST:PORT/] BUNDLE.zip...
  gears-reqs list   [--url redis://HOST:PORT/]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("bundle") => bundle(&args[1..]),
        Some("import") => import(&args[1..]),
        Some("list") => list(&args[1..]),
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gears-reqs: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--name value` options and the remaining words.
struct Args {
    options: Vec<(String, String)>,
    flags: Vec<String>,
    words: Vec<String>,
}

fn parse(args: &[String], with_value: &[&str], flags: &[&str]) -> Result<Args, String> {
    let mut parsed = Args {
        options: Vec::new(),
        flags: Vec::new(),
        words: Vec::new(),
    };
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if with_value.contains(&arg.as_str()) {
            let value = args
                .get(i + 1)
                .ok_or_else(|| format!("{arg} needs a value"))?;
            parsed.options.push((arg.clone(), value.clone()));
            i += 2;
        } else if flags.contains(&arg.as_str()) {
            parsed.flags.push(arg.clone());
            i += 1;
        } else if arg.starts_with("--") {
            return Err(format!("unknown option {arg}\n{USAGE}"));
        } else {
            parsed.words.push(arg.clone());
            i += 1;
        }
    }
    Ok(parsed)
}

impl Args {
    fn get(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn version_pair(text: &str, what: &str) -> Result<(u16, u16), String> {
    let mut parts = text.split('.').map(|p| p.parse::<u16>());
    match (parts.next(), parts.next()) {
        (Some(Ok(a)), Some(Ok(b))) => Ok((a, b)),
        _ => Err(format!("{what} must look like X.Y, not '{text}'")),
    }
}

fn bundle(args: &[String]) -> Result<(), String> {
    let args = parse(
        args,
        &[
            "--out",
            "--index-url",
            "--find-links",
            "--python",
            "--machine",
            "--glibc",
            "--musl",
            "--os",
        ],
        &["--wheelhouse"],
    )?;
    let out = PathBuf::from(args.get("--out").ok_or("--out DIR is required")?);
    if args.words.is_empty() {
        return Err("no requirement given".into());
    }
    let python = args.get("--python").unwrap_or("3.11.2");
    let numbers: Vec<u16> = python
        .split('.')
        .map(|p| p.parse().map_err(|_| format!("bad --python '{python}'")))
        .collect::<Result<_, _>>()?;
    let version = match numbers.as_slice() {
        [a, b] => (*a, *b, 0),
        [a, b, c] => (*a, *b, *c),
        _ => {
            return Err(format!(
                "--python must look like 3.11 or 3.11.2, not '{python}'"
            ))
        }
    };
    let libc = match (args.get("--glibc"), args.get("--musl")) {
        (Some(_), Some(_)) => return Err("--glibc and --musl exclude each other".into()),
        (_, Some(m)) => {
            let (major, minor) = version_pair(m, "--musl")?;
            Libc::Musl { major, minor }
        }
        (Some(g), None) => {
            let (major, minor) = version_pair(g, "--glibc")?;
            Libc::Glibc { major, minor }
        }
        (None, None) => Libc::Glibc {
            major: 2,
            minor: 36,
        },
    };
    let target = TargetPython::new(version, args.get("--machine").unwrap_or("x86_64"), libc);
    let cache_dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let index = PackageIndex::new(IndexOptions {
        index_url: Some(
            args.get("--index-url")
                .unwrap_or(DEFAULT_INDEX_URL)
                .to_string(),
        )
        .filter(|u| !u.is_empty()),
        find_links: args.get("--find-links").map(PathBuf::from),
        http: HttpOptions::default(),
        cache: Some(wheels_cache::WheelsCache::open(cache_dir.path()).map_err(|e| e.to_string())?),
        build_python: None,
    })
    .map_err(|e| e.to_string())?;
    let requirements: Vec<Requirement> = args
        .words
        .iter()
        .map(|r| {
            r.parse()
                .map_err(|e: reqs_manager::RequirementError| e.to_string())
        })
        .collect::<Result<_, _>>()?;
    let resolution = Resolver::new(&index, &target)
        .resolve(&requirements)
        .map_err(|e| e.to_string())?;
    for warning in &resolution.warnings {
        eprintln!("warning: {warning}");
    }
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let read = |dist: &reqs_manager::ResolvedDist| -> Result<Vec<u8>, String> {
        let mut wheel = index.fetch_cached(&dist.file).map_err(|e| e.to_string())?;
        let mut bytes = Vec::new();
        wheel
            .file
            .read_to_end(&mut bytes)
            .map_err(|e| e.to_string())?;
        Ok(bytes)
    };
    if args.flags.iter().any(|f| f == "--wheelhouse") {
        for dist in &resolution.dists {
            let path = out.join(&dist.file.filename);
            std::fs::write(&path, read(dist)?).map_err(|e| format!("{}: {e}", path.display()))?;
            println!("{}", path.display());
        }
        return Ok(());
    }
    let os = args.get("--os").map(str::to_string).unwrap_or_else(|| {
        format!(
            "linux-bookworm-{}",
            if target.machine == "x86_64" {
                "x64"
            } else {
                "arm64v8"
            }
        )
    });
    for requirement in &requirements {
        // The requirement and everything it needs, from the one consistent resolution.
        let mut stack = vec![requirement.name().clone()];
        let mut seen = std::collections::HashSet::new();
        let mut wheels = Vec::new();
        while let Some(name) = stack.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            if let Some(dist) = resolution.dists.iter().find(|d| d.name == name) {
                wheels.push((dist.file.filename.clone(), read(dist)?));
                stack.extend(dist.requires.iter().cloned());
            }
        }
        let bundle = RequirementBundle {
            name: requirement.raw.clone(),
            compiled_os: os.clone(),
            in_table: true,
            wheels,
        };
        let base = requirement
            .raw
            .rsplit('/')
            .next()
            .unwrap_or(&requirement.raw);
        let path = out.join(format!("redisgears-requirement-v2-{base}-{os}.zip"));
        write_bundle_zip(&path, &bundle)?;
        println!("{}", path.display());
    }
    Ok(())
}

/// gears-cli's bundle: a zip with `MetaData.json` and `Data.bin` (the serialized requirement).
fn write_bundle_zip(path: &std::path::Path, bundle: &RequirementBundle) -> Result<(), String> {
    if path.exists() {
        return Err(format!("{} exists, not overwriting it", path.display()));
    }
    let wheels: Vec<String> = bundle
        .wheels
        .iter()
        .map(|(n, _)| format!("        {:?}", n))
        .collect();
    let metadata = format!(
        "{{\n    \"CompiledOs\": {:?},\n    \"GearReqVersion\": 2,\n    \"IsDownloaded\": \"yes\",\n    \"IsInReqDictionary\": \"yes\",\n    \"IsInstalled\": \"yes\",\n    \"Name\": {:?},\n    \"Wheels\": [\n{}\n    ]\n}}",
        bundle.compiled_os,
        bundle.name,
        wheels.join(",\n")
    );
    let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default();
    let write =
        |zip: &mut zip::ZipWriter<std::fs::File>, name: &str, bytes: &[u8]| -> Result<(), String> {
            zip.start_file(name, options).map_err(|e| e.to_string())?;
            zip.write_all(bytes).map_err(|e| e.to_string())
        };
    write(&mut zip, "MetaData.json", metadata.as_bytes())?;
    write(&mut zip, "Data.bin", &bundle.serialize())?;
    zip.finish().map_err(|e| e.to_string())?;
    Ok(())
}

fn connect(args: &Args) -> Result<redis::Connection, String> {
    let url = args.get("--url").unwrap_or("redis://127.0.0.1:6379/");
    redis::Client::open(url)
        .and_then(|c| c.get_connection())
        .map_err(|e| format!("could not connect to {url}: {e}"))
}

fn import(args: &[String]) -> Result<(), String> {
    let args = parse(args, &["--url"], &[])?;
    if args.words.is_empty() {
        return Err("no bundle given".into());
    }
    let mut con = connect(&args)?;
    for path in &args.words {
        let file = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
        let mut zip =
            zip::ZipArchive::new(file).map_err(|e| format!("{path} is not a bundle zip: {e}"))?;
        let mut data = Vec::new();
        zip.by_name("Data.bin")
            .map_err(|_| format!("{path} has no Data.bin"))?
            .read_to_end(&mut data)
            .map_err(|e| format!("{path}: {e}"))?;
        let bundle = RequirementBundle::parse(&data).map_err(|e| format!("{path}: {e}"))?;
        let mut command = redis::cmd("RG.PYIMPORTREQ");
        for chunk in data.chunks(reqs_manager::bundle::CHUNK_SIZE) {
            command.arg(chunk);
        }
        let reply: String = command
            .query(&mut con)
            .map_err(|e| format!("{path}: {e}"))?;
        println!("{}: {reply}", bundle.name);
    }
    Ok(())
}

fn list(args: &[String]) -> Result<(), String> {
    let args = parse(args, &["--url"], &[])?;
    let mut con = connect(&args)?;
    let entries: Vec<redis::Value> = redis::cmd("RG.PYDUMPREQS")
        .query(&mut con)
        .map_err(|e| e.to_string())?;
    for entry in entries {
        let redis::Value::Array(fields) = entry else {
            continue;
        };
        let name = match fields.get(3) {
            Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            _ => continue,
        };
        let exported: redis::Value = redis::cmd("RG.PYEXPORTREQ")
            .arg(&name)
            .query(&mut con)
            .map_err(|e| format!("{name}: {e}"))?;
        let redis::Value::Array(parts) = exported else {
            continue;
        };
        let Some(redis::Value::Array(chunks)) = parts.get(1) else {
            continue;
        };
        let data: Vec<u8> = chunks
            .iter()
            .filter_map(|c| match c {
                redis::Value::BulkString(b) => Some(b.as_slice()),
                _ => None,
            })
            .flatten()
            .copied()
            .collect();
        let bundle = RequirementBundle::parse(&data).map_err(|e| format!("{name}: {e}"))?;
        println!("{name}");
        for (wheel, bytes) in &bundle.wheels {
            println!("    {wheel}  sha256={}", Sha256Hex::of(bytes));
        }
    }
    Ok(())
}
