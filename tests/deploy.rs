//! Deployment artefacts, checked without a container engine or a cluster:
//! the Dockerfile is parsed into instructions and compared with the crate
//! (toolchain, binary, user, port, config path), every Kubernetes manifest
//! is parsed and its references followed (mounts, ports, probes, selectors,
//! secrets, the embedded config, run for real against a TLS server), and the
//! systemd unit is verified by `systemd-analyze` when present and parsed
//! always.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use clap::Parser;
use serde::Deserialize;
use serde_norway::Value;

use certinel::cli::{normalize_listen_address, Cli, DEFAULT_PORT};
use certinel::config::Config;

use crate::common::*;

fn read(rel: &str) -> String {
    let path = repo().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The binary's name, as `[[bin]]` declares it (cargo builds it there).
fn bin_name() -> String {
    Path::new(env!("CARGO_BIN_EXE_certinel"))
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// `major.minor` of a version string ("1.95.0" → (1, 95)).
fn major_minor(v: &str) -> (u32, u32) {
    let mut it = v.split('.').map(|p| p.parse::<u32>());
    match (it.next(), it.next()) {
        (Some(Ok(a)), Some(Ok(b))) => (a, b),
        _ => panic!("not a version: {v:?}"),
    }
}

/// Parses the certinel command line exactly as the binary would.
fn cli(args: &[String]) -> Cli {
    Cli::try_parse_from(std::iter::once("certinel".to_owned()).chain(args.iter().cloned()))
        .unwrap_or_else(|e| panic!("certinel rejects {args:?}: {e}"))
}

fn listen_port(cli: &Cli) -> u16 {
    let addr = normalize_listen_address(&cli.listen_address);
    addr.parse::<SocketAddr>()
        .unwrap_or_else(|e| panic!("listen address {addr}: {e}"))
        .port()
}

// ===========================================================================
// Dockerfile

#[derive(Debug, Clone)]
struct Instruction {
    keyword: String,
    args: String,
    line: usize,
}

/// Splits a Dockerfile into instructions: comments and parser directives
/// dropped, `\` continuations joined (comment and empty lines inside a
/// continuation skipped, as BuildKit does).
fn parse_dockerfile(text: &str) -> Vec<Instruction> {
    assert!(
        !text
            .lines()
            .any(|l| l.trim_start().starts_with("# escape=")),
        "the parser below assumes the default escape character"
    );
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_some()) {
            continue;
        }
        if trimmed.is_empty() {
            continue;
        }
        let (start, mut acc) = current.take().unwrap_or((i + 1, String::new()));
        let continues = trimmed.ends_with('\\');
        let body = trimmed.trim_end_matches('\\').trim_end();
        if !acc.is_empty() {
            acc.push(' ');
        }
        acc.push_str(body);
        if continues {
            current = Some((start, acc));
        } else {
            let (keyword, args) = acc.split_once(char::is_whitespace).unwrap_or((&acc, ""));
            out.push(Instruction {
                keyword: keyword.to_ascii_uppercase(),
                args: args.trim().to_owned(),
                line: start,
            });
        }
    }
    assert!(current.is_none(), "Dockerfile ends inside a continuation");
    out
}

#[derive(Debug)]
struct Stage {
    image: String,
    alias: Option<String>,
    body: Vec<Instruction>,
}

fn stages(instructions: &[Instruction]) -> Vec<Stage> {
    let mut out: Vec<Stage> = Vec::new();
    for ins in instructions {
        if ins.keyword == "FROM" {
            let words: Vec<&str> = ins
                .args
                .split_whitespace()
                .filter(|w| !w.starts_with("--"))
                .collect();
            assert!(
                !ins.args.contains('$'),
                "line {}: FROM with a variable; teach this test ARG substitution",
                ins.line
            );
            let alias = match words.as_slice() {
                [_] => None,
                [_, as_kw, name] if as_kw.eq_ignore_ascii_case("as") => Some((*name).to_owned()),
                _ => panic!("line {}: cannot read FROM {}", ins.line, ins.args),
            };
            out.push(Stage {
                image: words[0].to_owned(),
                alias,
                body: Vec::new(),
            });
        } else {
            let stage = out
                .last_mut()
                .unwrap_or_else(|| panic!("line {}: {} before FROM", ins.line, ins.keyword));
            stage.body.push(ins.clone());
        }
    }
    out
}

/// Exec form (`["a", "b"]`), the only form accepted for ENTRYPOINT/CMD.
fn exec_form(ins: &Instruction) -> Vec<String> {
    serde_json::from_str(&ins.args).unwrap_or_else(|e| {
        panic!(
            "line {}: {} must use the exec (JSON) form: {e}",
            ins.line, ins.keyword
        )
    })
}

/// A COPY: `--flag=value` options, sources, destination.
struct Copy {
    flags: BTreeMap<String, String>,
    sources: Vec<String>,
    dest: String,
}

fn copy_of(ins: &Instruction) -> Copy {
    let mut flags = BTreeMap::new();
    let mut paths = Vec::new();
    for w in ins.args.split_whitespace() {
        match w.strip_prefix("--") {
            Some(flag) => {
                let (k, v) = flag.split_once('=').unwrap_or((flag, ""));
                flags.insert(k.to_owned(), v.to_owned());
            }
            None => paths.push(w.to_owned()),
        }
    }
    assert!(
        paths.len() >= 2,
        "line {}: COPY needs a source and a destination",
        ins.line
    );
    let dest = paths.pop().unwrap();
    Copy {
        flags,
        sources: paths,
        dest,
    }
}

/// Where a COPY puts `source`: into the directory if `dest` ends with `/`.
fn copy_target(source: &str, dest: &str, workdir: &str) -> String {
    let dest = if dest.starts_with('/') {
        dest.to_owned()
    } else {
        format!("{}/{dest}", workdir.trim_end_matches('/'))
    };
    if dest.ends_with('/') {
        let name = Path::new(source).file_name().unwrap().to_string_lossy();
        format!("{dest}{name}")
    } else {
        dest
    }
}

/// `KEY=VALUE` pairs of LABEL/ENV, with double quotes.
fn key_values(args: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = args.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return out;
        }
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                value.push(c);
            }
        }
        out.insert(key, value);
    }
}

/// The Debian release a base image is built on: 11, 12, 13.
fn debian_release(image: &str) -> u32 {
    for (name, n) in [("bullseye", 11), ("bookworm", 12), ("trixie", 13)] {
        if image.contains(name) || image.contains(&format!("debian{n}")) {
            return n;
        }
    }
    panic!("cannot tell the Debian release of {image}");
}

struct Dockerfile {
    builder: Stage,
    runtime: Stage,
}

fn dockerfile() -> Dockerfile {
    let mut all = stages(&parse_dockerfile(&read("Dockerfile")));
    assert!(all.len() >= 2, "multi-stage: {} FROM", all.len());
    let runtime = all.pop().unwrap();
    let from = runtime
        .body
        .iter()
        .filter(|i| i.keyword == "COPY")
        .find_map(|i| copy_of(i).flags.get("from").cloned())
        .expect("the runtime stage copies from a build stage");
    let builder = all
        .into_iter()
        .find(|s| s.alias.as_deref() == Some(from.as_str()))
        .unwrap_or_else(|| panic!("no stage named {from}"));
    Dockerfile { builder, runtime }
}

fn last<'a>(stage: &'a Stage, keyword: &str) -> &'a Instruction {
    stage
        .body
        .iter()
        .rev()
        .find(|i| i.keyword == keyword)
        .unwrap_or_else(|| panic!("no {keyword} in the stage FROM {}", stage.image))
}

/// The WORKDIR in effect at instruction `index` of `stage`.
fn workdir_at(stage: &Stage, index: usize) -> String {
    stage.body[..index]
        .iter()
        .rev()
        .find(|i| i.keyword == "WORKDIR")
        .map_or_else(|| "/".to_owned(), |i| i.args.clone())
}

#[test]
fn dockerfile_builds_with_our_toolchain_and_ships_the_binary() {
    let df = dockerfile();

    // The builder's Rust: at least rust-version, and the toolchain we test
    // with (major.minor).
    let tag = df
        .builder
        .image
        .strip_prefix("rust:")
        .unwrap_or_else(|| panic!("builder is not the Rust image: {}", df.builder.image));
    let image_rust = major_minor(tag.split('-').next().unwrap());
    let msrv = major_minor(env!("CARGO_PKG_RUST_VERSION"));
    assert!(
        image_rust >= msrv,
        "builder Rust {image_rust:?} < rust-version {msrv:?}"
    );
    if let Ok(out) = Command::new("rustc").arg("--version").output() {
        let version = String::from_utf8_lossy(&out.stdout);
        let ours = major_minor(version.split_whitespace().nth(1).unwrap_or_default());
        assert_eq!(image_rust, ours, "builder image vs `{}`", version.trim());
    }

    // glibc: the runtime must not be older than the builder.
    assert!(
        debian_release(&df.builder.image) <= debian_release(&df.runtime.image),
        "built on {} but run on {}: glibc mismatch",
        df.builder.image,
        df.runtime.image
    );

    // The release build, locked, after the sources are copied in.
    let body = &df.builder.body;
    let builds: Vec<usize> = (0..body.len())
        .filter(|&i| body[i].keyword == "RUN" && body[i].args.contains("cargo build"))
        .collect();
    let final_build = *builds.last().expect("a RUN with cargo build");
    let commands: Vec<Vec<&str>> = body[final_build]
        .args
        .split("&&")
        .map(|c| c.split_whitespace().collect())
        .collect();
    let cargo = commands
        .iter()
        .find(|c| c.starts_with(&["cargo", "build"]))
        .unwrap();
    for flag in ["--release", "--locked"] {
        assert!(cargo.contains(&flag), "{cargo:?} lacks {flag}");
    }
    let copies_src = body[..final_build].iter().any(|i| {
        i.keyword == "COPY"
            && copy_of(i)
                .sources
                .iter()
                .any(|s| s.trim_end_matches('/') == "src")
    });
    assert!(copies_src, "the final cargo build runs before COPY src");
    if builds.len() > 1 {
        // A dependency layer built stub crate roots: COPY keeps the context's
        // (older) mtimes, so without a touch cargo would keep the stub.
        let touched = commands.iter().any(|c| {
            c.first() == Some(&"touch") && c.contains(&"src/main.rs") && c.contains(&"src/lib.rs")
        });
        assert!(
            touched,
            "stub build layer but the final build does not touch src/main.rs and src/lib.rs"
        );
    }
    assert!(
        !body
            .iter()
            .any(|i| i.keyword == "ENV" && i.args.contains("CARGO_TARGET_DIR")),
        "CARGO_TARGET_DIR moves target/"
    );

    // The runtime copies exactly what `cargo build --release` produced.
    let (index, copy) = df
        .runtime
        .body
        .iter()
        .enumerate()
        .filter(|(_, i)| i.keyword == "COPY")
        .map(|(n, i)| (n, copy_of(i)))
        .find(|(_, c)| c.flags.contains_key("from"))
        .unwrap();
    let built = format!(
        "{}/target/release/{}",
        workdir_at(&df.builder, final_build).trim_end_matches('/'),
        bin_name()
    );
    assert_eq!(copy.sources, [built]);
    let installed = copy_target(
        &copy.sources[0],
        &copy.dest,
        &workdir_at(&df.runtime, index),
    );

    // ENTRYPOINT ["certinel"], found on the PATH the image sets.
    let entrypoint = exec_form(last(&df.runtime, "ENTRYPOINT"));
    assert_eq!(entrypoint, [bin_name()]);
    let env: BTreeMap<String, String> = df
        .runtime
        .body
        .iter()
        .filter(|i| i.keyword == "ENV")
        .flat_map(|i| key_values(&i.args))
        .collect();
    let path = env.get("PATH").expect("ENV PATH in the runtime stage");
    let bin_dir = Path::new(&installed).parent().unwrap();
    assert!(
        path.split(':').any(|d| Path::new(d) == bin_dir),
        "{installed} is not on PATH={path}"
    );
}

#[test]
fn dockerfile_runtime_matches_the_daemon() {
    let df = dockerfile();
    let runtime = &df.runtime;

    // Non-root, numerically (Kubernetes runAsNonRoot can only verify numbers).
    let user = &last(runtime, "USER").args;
    for id in user.split(':') {
        let id: u32 = id
            .parse()
            .unwrap_or_else(|_| panic!("USER {user} is not numeric"));
        assert_ne!(id, 0, "USER {user} is root");
    }
    assert_eq!(
        user.split(':').next(),
        Some("65532"),
        "the uid the manifests use"
    );

    let exposed: Vec<u16> = runtime
        .body
        .iter()
        .filter(|i| i.keyword == "EXPOSE")
        .flat_map(|i| {
            i.args
                .split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .map(|p| p.trim_end_matches("/tcp").parse().unwrap())
        .collect();
    assert_eq!(exposed, [DEFAULT_PORT]);

    // CMD: flags the binary accepts, naming the config file the image ships.
    let cmd = exec_form(last(runtime, "CMD"));
    let cli = cli(&cmd);
    assert_eq!(listen_port(&cli), DEFAULT_PORT);
    let config_path = cli.config_file.to_string_lossy().into_owned();
    let shipped = runtime
        .body
        .iter()
        .enumerate()
        .filter(|(_, i)| i.keyword == "COPY")
        .map(|(n, i)| (n, copy_of(i)))
        .filter(|(_, c)| !c.flags.contains_key("from"))
        .find_map(|(n, c)| {
            c.sources
                .iter()
                .find(|s| copy_target(s, &c.dest, &workdir_at(runtime, n)) == config_path)
                .cloned()
        })
        .unwrap_or_else(|| panic!("no COPY puts a file at {config_path}"));
    let out = config_check(&repo().join(&shipped));
    assert!(out.status.success(), "{shipped}: {}", out.stderr);

    // OCI labels agree with Cargo.toml.
    let labels: BTreeMap<String, String> = runtime
        .body
        .iter()
        .filter(|i| i.keyword == "LABEL")
        .flat_map(|i| key_values(&i.args))
        .collect();
    let oci = |k: &str| {
        labels
            .get(&format!("org.opencontainers.image.{k}"))
            .cloned()
    };
    assert_eq!(oci("title"), Some(bin_name()));
    assert_eq!(oci("version").as_deref(), Some(env!("CARGO_PKG_VERSION")));
    assert_eq!(oci("licenses").as_deref(), Some(env!("CARGO_PKG_LICENSE")));
    assert!(oci("description").is_some_and(|d| !d.is_empty()));
}

/// `.dockerignore` evaluated as Docker does: patterns in order, the last
/// one matching the path or one of its parents wins, `!` re-includes.
fn dockerignored(patterns: &[(bool, globset::GlobMatcher)], path: &str) -> bool {
    let mut prefixes = Vec::new();
    let mut acc = String::new();
    for part in path.split('/') {
        if !acc.is_empty() {
            acc.push('/');
        }
        acc.push_str(part);
        prefixes.push(acc.clone());
    }
    let mut excluded = false;
    for (negated, glob) in patterns {
        if prefixes.iter().any(|p| glob.is_match(p)) {
            excluded = !negated;
        }
    }
    excluded
}

fn dockerignore_patterns() -> Vec<(bool, globset::GlobMatcher)> {
    read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (negated, pat) = l.strip_prefix('!').map_or((false, l), |p| (true, p));
            let pat = pat.trim_start_matches('/').trim_end_matches('/');
            let glob = globset::GlobBuilder::new(pat)
                .literal_separator(true)
                .build()
                .unwrap_or_else(|e| panic!(".dockerignore {l}: {e}"))
                .compile_matcher();
            (negated, glob)
        })
        .collect()
}

/// The files of the build context under `source` (a file or directory,
/// relative to the repository), as `.dockerignore` lets them through.
fn context_files(patterns: &[(bool, globset::GlobMatcher)], source: &str) -> Vec<String> {
    let full = repo().join(source);
    assert!(
        full.exists(),
        "COPY {source}: no such file in the repository"
    );
    walkdir::WalkDir::new(&full)
        .sort_by_file_name()
        .into_iter()
        .map(|e| e.unwrap().into_path())
        .filter(|p| p.is_file())
        .map(|p| {
            p.strip_prefix(repo())
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|rel| !dockerignored(patterns, rel))
        .collect()
}

#[test]
fn dockerignore_lets_the_build_context_through_and_nothing_heavy() {
    let patterns = dockerignore_patterns();
    let df = dockerfile();
    let mut checked = 0;
    for stage in [&df.builder, &df.runtime] {
        for ins in stage.body.iter().filter(|i| i.keyword == "COPY") {
            let copy = copy_of(ins);
            if copy.flags.contains_key("from") {
                continue;
            }
            for source in &copy.sources {
                let source = source.trim_end_matches('/');
                let full = repo().join(source);
                assert!(
                    full.exists(),
                    "COPY {source}: no such file in the repository"
                );
                let files: Vec<PathBuf> = walkdir::WalkDir::new(&full)
                    .into_iter()
                    .map(|e| e.unwrap().into_path())
                    .filter(|p| p.is_file())
                    .collect();
                for f in files {
                    let rel = f
                        .strip_prefix(repo())
                        .unwrap()
                        .to_string_lossy()
                        .into_owned();
                    assert!(
                        !dockerignored(&patterns, &rel),
                        ".dockerignore drops {rel}, which the Dockerfile copies"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 5, "only {checked} context files checked");
    for heavy in [
        "target",
        "target/release/certinel",
        ".git",
        ".git/HEAD",
        "x.profraw",
    ] {
        assert!(
            dockerignored(&patterns, heavy),
            "{heavy} reaches the build context"
        );
    }
}

/// Stands in for `cargo` while the builder stage is replayed: `cargo build`
/// loads the manifest and resolves the lock file with the Dockerfile's own
/// flags, then stops before compiling anything (no such binary).
const CARGO_SHIM: &str = r#"#!/bin/sh
[ "$1" = build ] || { echo "replay: unexpected cargo $*" >&2; exit 1; }
echo "cargo $*" >> "$REPLAY_LOG"
out=$("$REAL_CARGO" "$@" --offline --bin __certinel_replay__ 2>&1)
case "$out" in *"no bin target named"*) exit 0 ;; esac
printf '%s\n' "$out" >&2
exit 1
"#;

/// Only these programs, and no absolute path or `..` among their operands
/// (echo's text aside, its redirection target included): the replay runs
/// on the host.
fn replayable(script: &str) -> bool {
    let allowed = ["mkdir", "echo", "touch", "rm", "cargo", "cp", "mv"];
    let local = |w: &str| {
        let w = w.trim_matches(['\'', '"']);
        !w.starts_with('/') && !w.split('/').any(|p| p == "..")
    };
    !script.contains([';', '|', '`', '$'])
        && script.split("&&").all(|cmd| {
            let words: Vec<&str> = cmd.split_whitespace().collect();
            match words.first() {
                Some(&"echo") => words
                    .windows(2)
                    .filter(|w| w[0] == ">" || w[0] == ">>")
                    .all(|w| local(w[1])),
                Some(w) if allowed.contains(w) => words.iter().all(|w| local(w)),
                _ => false,
            }
        })
}

#[test]
fn dockerfile_builder_stage_replays_against_the_build_context() {
    // Every builder instruction, for real, in a scratch root: COPY takes
    // only what .dockerignore lets through, RUN runs its shell commands
    // with cargo loading the manifest instead of compiling. Catches a
    // context missing a file cargo needs, a stale Cargo.lock (--locked),
    // and stubs left in place of the real sources.
    let df = dockerfile();
    let patterns = dockerignore_patterns();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootfs");
    let shim = write(&tmp.path().join("bin"), "cargo", CARGO_SHIM);
    std::fs::set_permissions(&shim, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let log = tmp.path().join("cargo.log");
    let path = format!(
        "{}:{}",
        shim.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let inside = |cwd: &Path, p: &str| -> PathBuf {
        if let Some(abs) = p.strip_prefix('/') {
            root.join(abs)
        } else {
            cwd.join(p)
        }
    };

    let mut cwd = root.clone();
    std::fs::create_dir_all(&cwd).unwrap();
    for ins in &df.builder.body {
        match ins.keyword.as_str() {
            "WORKDIR" => {
                cwd = inside(&cwd, &ins.args);
                std::fs::create_dir_all(&cwd).unwrap();
            }
            "COPY" => {
                let copy = copy_of(ins);
                assert!(
                    copy.flags.is_empty(),
                    "line {}: teach the replay {:?}",
                    ins.line,
                    copy.flags
                );
                let into_dir = copy.dest.ends_with('/') || copy.sources.len() > 1;
                let dest = inside(&cwd, &copy.dest);
                for source in &copy.sources {
                    let source = source.trim_end_matches('/');
                    let files = context_files(&patterns, source);
                    assert!(
                        !files.is_empty(),
                        "line {}: {source} is not in the build context",
                        ins.line
                    );
                    let is_dir = repo().join(source).is_dir();
                    for rel in files {
                        let target = if is_dir {
                            dest.join(Path::new(&rel).strip_prefix(source).unwrap())
                        } else if into_dir {
                            dest.join(Path::new(&rel).file_name().unwrap())
                        } else {
                            dest.clone()
                        };
                        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
                        std::fs::copy(repo().join(&rel), &target).unwrap();
                    }
                }
            }
            "RUN" => {
                assert!(
                    replayable(&ins.args),
                    "line {}: the replay will not run {:?}",
                    ins.line,
                    ins.args
                );
                let out = Command::new("sh")
                    .args(["-c", &ins.args])
                    .current_dir(&cwd)
                    .env("PATH", &path)
                    .env("REAL_CARGO", env!("CARGO"))
                    .env("REPLAY_LOG", &log)
                    .env_remove("CARGO_TARGET_DIR")
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "line {}: RUN {}\n{}",
                    ins.line,
                    ins.args,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            "ENV" | "ARG" | "LABEL" => {}
            other => panic!("line {}: teach the replay {other}", ins.line),
        }
    }

    let builds = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(builds.lines().count() >= 1, "no cargo build ran");
    // What the final build compiled: the real sources, not the stubs.
    for rel in context_files(&patterns, "src") {
        let built = std::fs::read(cwd.join(&rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert!(
            built == std::fs::read(repo().join(&rel)).unwrap(),
            "{rel} is not the real source"
        );
    }
}

// ===========================================================================
// Kubernetes

/// One parsed manifest document.
#[derive(Debug, Clone)]
struct Doc {
    file: String,
    value: Value,
}

impl Doc {
    fn kind(&self) -> &str {
        str_at(&self.value, &["kind"])
    }
    fn name(&self) -> &str {
        str_at(&self.value, &["metadata", "name"])
    }
}

fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    let mut cur = v;
    for key in path {
        cur = cur
            .get(*key)
            .unwrap_or_else(|| panic!("missing {} in {}", path.join("."), show(v)));
    }
    cur
}

fn opt<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, key| cur.get(*key))
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    at(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("{} is not a string in {}", path.join("."), show(v)))
}

fn seq<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    match opt(v, path) {
        None => &[],
        Some(s) => s
            .as_sequence()
            .unwrap_or_else(|| panic!("{} is not a list", path.join(".")))
            .as_slice(),
    }
}

fn show(v: &Value) -> String {
    let text = serde_norway::to_string(v).unwrap_or_default();
    text.chars().take(600).collect()
}

fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    let Some(v) = v else {
        return BTreeMap::new();
    };
    v.as_mapping()
        .unwrap_or_else(|| panic!("not a map: {}", show(v)))
        .iter()
        .map(|(k, v)| {
            let k = k.as_str().unwrap().to_owned();
            let v = v
                .as_str()
                .unwrap_or_else(|| panic!("{k}: quote it, Kubernetes wants a string"));
            (k, v.to_owned())
        })
        .collect()
}

/// Every document of every `*.yaml` under `deploy/kubernetes/<sub>`.
fn manifests(sub: &str) -> Vec<Doc> {
    let base = repo().join("deploy/kubernetes").join(sub);
    let mut docs = Vec::new();
    for entry in walkdir::WalkDir::new(&base).sort_by_file_name() {
        let path = entry.unwrap().into_path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let file = path
            .strip_prefix(repo())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        for (n, de) in serde_norway::Deserializer::from_str(&text).enumerate() {
            let value =
                Value::deserialize(de).unwrap_or_else(|e| panic!("{file} document {n}: {e}"));
            assert!(!value.is_null(), "{file}: empty document {n}");
            docs.push(Doc {
                file: file.clone(),
                value,
            });
        }
    }
    docs
}

fn only<'a>(docs: &'a [Doc], kind: &str) -> &'a Doc {
    let found: Vec<&Doc> = docs.iter().filter(|d| d.kind() == kind).collect();
    assert_eq!(found.len(), 1, "expected one {kind}");
    found[0]
}

fn named<'a>(docs: &'a [Doc], kind: &str, name: &str) -> &'a Doc {
    docs.iter()
        .find(|d| d.kind() == kind && d.name() == name)
        .unwrap_or_else(|| panic!("no {kind} named {name}"))
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[test]
fn every_manifest_parses_with_a_known_api_version_and_kind() {
    let known: BTreeMap<&str, &str> = [
        ("ConfigMap", "v1"),
        ("Service", "v1"),
        ("ServiceAccount", "v1"),
        ("Deployment", "apps/v1"),
        ("DaemonSet", "apps/v1"),
        ("Certificate", "cert-manager.io/v1"),
        ("ClusterIssuer", "cert-manager.io/v1"),
        ("PodMonitor", "monitoring.coreos.com/v1"),
    ]
    .into();
    let docs = manifests("");
    assert!(docs.len() >= 12, "only {} documents", docs.len());
    let mut seen = BTreeSet::new();
    for d in &docs {
        let kind = d.kind();
        let want = known
            .get(kind)
            .unwrap_or_else(|| panic!("{}: unexpected kind {kind}", d.file));
        assert_eq!(
            str_at(&d.value, &["apiVersion"]),
            *want,
            "{}: {kind}",
            d.file
        );
        assert!(is_dns_label(d.name()), "{}: name {:?}", d.file, d.name());
        // The examples are namespace-less (kubectl apply -n ...), except the
        // optional CA bootstrap, which must live with cert-manager.
        let ns = opt(&d.value, &["metadata", "namespace"]).and_then(Value::as_str);
        match ns {
            None => {}
            Some("cert-manager") if d.file.contains("/cert-manager/") => {}
            Some(ns) => panic!("{}: {kind}/{} pinned to namespace {ns}", d.file, d.name()),
        }
        let dir = Path::new(&d.file).parent().unwrap().to_owned();
        assert!(
            seen.insert((dir, kind.to_owned(), d.name().to_owned())),
            "{}: duplicate {kind}/{}",
            d.file,
            d.name()
        );
        for v in [&["metadata", "labels"][..], &["metadata", "annotations"]] {
            string_map(opt(&d.value, v));
        }
    }
}

/// The pod a workload runs, with what the checks need.
struct Pod<'a> {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    spec: &'a Value,
}

fn pod_of(workload: &Doc) -> Pod<'_> {
    let template = at(&workload.value, &["spec", "template"]);
    let labels = string_map(opt(template, &["metadata", "labels"]));
    let selector = string_map(opt(&workload.value, &["spec", "selector", "matchLabels"]));
    assert!(!selector.is_empty(), "{}: empty selector", workload.name());
    assert!(
        selector.iter().all(|(k, v)| labels.get(k) == Some(v)),
        "{}: selector {selector:?} does not match the template labels {labels:?}",
        workload.name()
    );
    Pod {
        labels,
        annotations: string_map(opt(template, &["metadata", "annotations"])),
        spec: at(template, &["spec"]),
    }
}

fn container<'a>(pod: &Pod<'a>, name: &str) -> &'a Value {
    seq(pod.spec, &["containers"])
        .iter()
        .find(|c| str_at(c, &["name"]) == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

fn args(container: &Value) -> Vec<String> {
    seq(container, &["args"])
        .iter()
        .map(|a| a.as_str().expect("args are strings").to_owned())
        .collect()
}

/// Resolves a probe or PodMonitor port (name or number) on a container.
fn port_number(container: &Value, port: &Value) -> u16 {
    let ports = seq(container, &["ports"]);
    let found = ports.iter().find(|p| match port {
        Value::String(name) => p.get("name").and_then(Value::as_str) == Some(name),
        Value::Number(n) => p.get("containerPort").and_then(Value::as_u64) == n.as_u64(),
        _ => false,
    });
    let found = found.unwrap_or_else(|| panic!("port {port:?} is not declared by the container"));
    at(found, &["containerPort"]).as_u64().unwrap() as u16
}

/// A volume mount with the volume it mounts.
struct Mount<'a> {
    path: String,
    read_only: bool,
    volume: &'a Value,
}

fn mounts<'a>(pod: &Pod<'a>, container: &'a Value) -> Vec<Mount<'a>> {
    seq(container, &["volumeMounts"])
        .iter()
        .map(|m| {
            let name = str_at(m, &["name"]);
            let volume = seq(pod.spec, &["volumes"])
                .iter()
                .find(|v| str_at(v, &["name"]) == name)
                .unwrap_or_else(|| panic!("volumeMount {name}: no such volume"));
            assert!(
                m.get("subPath").is_none(),
                "{name}: subPath mounts never see Secret/ConfigMap updates"
            );
            Mount {
                path: str_at(m, &["mountPath"]).to_owned(),
                read_only: m.get("readOnly").and_then(Value::as_bool) == Some(true),
                volume,
            }
        })
        .collect()
}

/// The part of a configured path before its first glob component.
fn static_prefix(path: &str) -> PathBuf {
    Path::new(path)
        .components()
        .take_while(|c| {
            !c.as_os_str()
                .to_string_lossy()
                .contains(['*', '?', '[', '{'])
        })
        .collect()
}

fn under(path: &Path, dir: &str) -> bool {
    path.starts_with(dir) && path.components().all(|c| c != Component::ParentDir)
}

/// Every path the config reads: file source paths and endpoint TLS files.
fn config_paths(config: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for f in seq(config, &["files"]) {
        for p in seq(f, &["paths"]) {
            out.push(p.as_str().unwrap().to_owned());
        }
    }
    for e in seq(config, &["endpoints"]) {
        for key in ["ca_file", "client_cert", "client_key"] {
            if let Some(p) = e.get(key).and_then(Value::as_str) {
                out.push(p.to_owned());
            }
        }
    }
    out
}

/// What every certinel container must satisfy, whatever pod it is in.
/// Returns the embedded config.
fn check_certinel_container(docs: &[Doc], pod: &Pod<'_>) -> Value {
    let c = container(pod, "certinel");
    let cli = cli(&args(c));
    let port = listen_port(&cli);
    assert_eq!(port, DEFAULT_PORT);

    // The named port, probes, scrape annotations and PodMonitor agree.
    let metrics = Value::String("metrics".to_owned());
    assert_eq!(
        port_number(c, &metrics),
        port,
        "port `metrics` vs listen address"
    );
    for (probe, path) in [
        ("livenessProbe", "/-/healthy"),
        ("readinessProbe", "/-/ready"),
    ] {
        let get = at(c, &[probe, "httpGet"]);
        assert_eq!(str_at(get, &["path"]), path, "{probe}");
        assert_eq!(port_number(c, at(get, &["port"])), port, "{probe} port");
    }
    assert_eq!(
        pod.annotations
            .get("prometheus.io/scrape")
            .map(String::as_str),
        Some("true")
    );
    assert_eq!(
        pod.annotations.get("prometheus.io/port"),
        Some(&port.to_string())
    );
    assert_eq!(
        pod.annotations
            .get("prometheus.io/path")
            .map(String::as_str),
        Some("/metrics")
    );
    let monitor = only(docs, "PodMonitor");
    let selector = string_map(opt(&monitor.value, &["spec", "selector", "matchLabels"]));
    assert!(!selector.is_empty());
    assert!(
        selector.iter().all(|(k, v)| pod.labels.get(k) == Some(v)),
        "PodMonitor selector {selector:?} vs pod labels {:?}",
        pod.labels
    );
    let endpoints = seq(&monitor.value, &["spec", "podMetricsEndpoints"]);
    assert!(!endpoints.is_empty());
    for e in endpoints {
        assert_eq!(port_number(c, at(e, &["port"])), port, "PodMonitor port");
        assert_eq!(str_at(e, &["path"]), "/metrics");
    }

    // Hardening.
    let sc = at(c, &["securityContext"]);
    assert_eq!(at(sc, &["runAsNonRoot"]).as_bool(), Some(true));
    assert_eq!(
        at(sc, &["runAsUser"]).as_u64(),
        Some(65532),
        "the Dockerfile's USER"
    );
    assert_eq!(at(sc, &["readOnlyRootFilesystem"]).as_bool(), Some(true));
    assert_eq!(at(sc, &["allowPrivilegeEscalation"]).as_bool(), Some(false));
    assert!(seq(sc, &["capabilities", "drop"])
        .iter()
        .any(|d| d.as_str() == Some("ALL")));
    assert_eq!(str_at(sc, &["seccompProfile", "type"]), "RuntimeDefault");

    // Requests sized, memory bounded.
    let mib = |q: &str| -> u64 {
        q.strip_suffix("Mi")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("memory {q}: write it in Mi"))
    };
    let req = mib(str_at(c, &["resources", "requests", "memory"]));
    let lim = mib(str_at(c, &["resources", "limits", "memory"]));
    assert!(str_at(c, &["resources", "requests", "cpu"]).ends_with('m'));
    assert!(
        (8..=lim).contains(&req),
        "memory request {req}Mi, limit {lim}Mi"
    );

    // Every mount read-only; the config file comes from a ConfigMap key.
    let mounts = mounts(pod, c);
    assert!(
        mounts.iter().all(|m| m.read_only),
        "certinel mounts must be read-only"
    );
    let config_dir = cli
        .config_file
        .parent()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let key = cli
        .config_file
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let mount = mounts
        .iter()
        .find(|m| m.path == config_dir)
        .unwrap_or_else(|| panic!("nothing mounted at {config_dir}"));
    let cm_name = str_at(mount.volume, &["configMap", "name"]);
    let cm = named(docs, "ConfigMap", cm_name);
    let text = str_at(&cm.value, &["data", &key]);
    let config: Value = serde_norway::from_str(text).unwrap_or_else(|e| panic!("{cm_name}: {e}"));

    // Every configured path lies in a read-only mount (not the config's own).
    for p in config_paths(&config) {
        let prefix = static_prefix(&p);
        assert!(
            mounts
                .iter()
                .any(|m| m.path != config_dir && under(&prefix, &m.path)),
            "{p} is in no volume mounted into the certinel container"
        );
    }
    config
}

#[test]
fn sidecar_manifests_reference_each_other() {
    let docs = manifests("sidecar");
    let deployment = only(&docs, "Deployment");
    let pod = pod_of(deployment);
    let config = check_certinel_container(&docs, &pod);
    let certinel = container(&pod, "certinel");
    let app = container(&pod, "varpulis");

    // The Certificate: ECDSA P-256, 30 days, renewed at 15, from a
    // ClusterIssuer the bootstrap defines.
    let cert = only(&docs, "Certificate");
    let spec = at(&cert.value, &["spec"]);
    assert_eq!(str_at(spec, &["privateKey", "algorithm"]), "ECDSA");
    assert_eq!(at(spec, &["privateKey", "size"]).as_u64(), Some(256));
    let hours = |k: &str| humantime::parse_duration(str_at(spec, &[k])).unwrap();
    assert_eq!(hours("duration"), Duration::from_secs(720 * 3600));
    assert_eq!(hours("renewBefore"), Duration::from_secs(360 * 3600));
    assert_eq!(str_at(spec, &["issuerRef", "kind"]), "ClusterIssuer");
    let issuers = manifests("cert-manager");
    named(
        &issuers,
        "ClusterIssuer",
        str_at(spec, &["issuerRef", "name"]),
    );
    let secret = str_at(spec, &["secretName"]);
    let dns_names: Vec<&str> = seq(spec, &["dnsNames"])
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();

    // certinel sees the Certificate's Secret, certificates only, at the
    // directory of every file it is configured to read.
    let cert_mounts: Vec<Mount<'_>> = mounts(&pod, certinel)
        .into_iter()
        .filter(|m| m.volume.get("secret").is_some())
        .collect();
    assert_eq!(cert_mounts.len(), 1, "one Secret mounted into certinel");
    let tls = &cert_mounts[0];
    assert_eq!(str_at(tls.volume, &["secret", "secretName"]), secret);
    let paths = config_paths(&config);
    assert!(paths.len() >= 3, "{paths:?}");
    for p in &paths {
        assert_eq!(Path::new(p).parent().unwrap(), Path::new(&tls.path), "{p}");
    }
    let items: Vec<&str> = seq(tls.volume, &["secret", "items"])
        .iter()
        .map(|i| str_at(i, &["path"]))
        .collect();
    if !items.is_empty() {
        assert!(!items.contains(&"tls.key"), "certinel needs no private key");
        for p in &paths {
            let name = Path::new(p).file_name().unwrap().to_str().unwrap();
            assert!(items.contains(&name), "{p} is not projected: {items:?}");
        }
    }

    // Varpulis serves that Secret: its --tls-cert is a file certinel watches.
    let app_args = args(app);
    let flag = |name: &str| -> String {
        let eq = format!("{name}=");
        app_args
            .iter()
            .enumerate()
            .find_map(|(i, a)| {
                a.strip_prefix(&eq)
                    .map(str::to_owned)
                    .or_else(|| (a == name).then(|| app_args[i + 1].clone()))
            })
            .unwrap_or_else(|| panic!("varpulis has no {name}: {app_args:?}"))
    };
    let app_mount = mounts(&pod, app)
        .into_iter()
        .find(|m| opt(m.volume, &["secret", "secretName"]).and_then(Value::as_str) == Some(secret))
        .expect("varpulis mounts the Certificate's Secret");
    assert!(app_mount.read_only);
    assert!(
        opt(app_mount.volume, &["secret", "items"]).is_none(),
        "varpulis needs the key"
    );
    for f in ["--tls-cert", "--tls-key"] {
        assert_eq!(
            Path::new(&flag(f)).parent().unwrap(),
            Path::new(&app_mount.path),
            "{f}"
        );
    }
    let served = flag("--tls-cert");
    let watched = Path::new(&served).strip_prefix(&app_mount.path).unwrap();
    assert!(
        paths
            .iter()
            .any(|p| Path::new(p).strip_prefix(&tls.path).ok() == Some(watched)),
        "certinel does not watch {served}"
    );

    // The endpoint probe targets the app in the same pod, by a name on the
    // certificate.
    let endpoints = seq(&config, &["endpoints"]);
    assert_eq!(endpoints.len(), 1);
    let server_name = str_at(&endpoints[0], &["server_name"]);
    assert!(
        dns_names.contains(&server_name),
        "{server_name} not in {dns_names:?}"
    );
    for t in seq(&endpoints[0], &["targets"]) {
        let (host, port) = t.as_str().unwrap().rsplit_once(':').unwrap();
        assert!(
            ["localhost", "127.0.0.1", "[::1]"].contains(&host),
            "{host}: not this pod"
        );
        let port = Value::Number(port.parse::<u16>().unwrap().into());
        port_number(app, &port);
    }

    // The Service fronts the same pods on the app's port.
    let service = only(&docs, "Service");
    let selector = string_map(opt(&service.value, &["spec", "selector"]));
    assert!(!selector.is_empty() && selector.iter().all(|(k, v)| pod.labels.get(k) == Some(v)));
    for p in seq(&service.value, &["spec", "ports"]) {
        port_number(app, at(p, &["targetPort"]));
    }
}

#[test]
fn daemonset_manifests_reference_each_other() {
    let docs = manifests("daemonset");
    let daemonset = only(&docs, "DaemonSet");
    let pod = pod_of(daemonset);
    let config = check_certinel_container(&docs, &pod);
    let c = container(&pod, "certinel");

    let account = str_at(pod.spec, &["serviceAccountName"]);
    let sa = named(&docs, "ServiceAccount", account);
    assert_eq!(
        at(&sa.value, &["automountServiceAccountToken"]).as_bool(),
        Some(false)
    );
    assert_eq!(
        at(pod.spec, &["automountServiceAccountToken"]).as_bool(),
        Some(false)
    );

    let tolerated: Vec<&str> = seq(pod.spec, &["tolerations"])
        .iter()
        .map(|t| str_at(t, &["key"]))
        .collect();
    assert!(tolerated.contains(&"node-role.kubernetes.io/control-plane"));

    // Node files are mounted read-only at their own path, so `filepath`
    // labels name the file on the node; every configured path is in one.
    let host_mounts: Vec<Mount<'_>> = mounts(&pod, c)
        .into_iter()
        .filter(|m| m.volume.get("hostPath").is_some())
        .collect();
    assert!(!host_mounts.is_empty());
    for m in &host_mounts {
        assert_eq!(str_at(m.volume, &["hostPath", "path"]), m.path);
    }
    for p in config_paths(&config) {
        let prefix = static_prefix(&p);
        assert!(
            host_mounts.iter().any(|m| under(&prefix, &m.path)),
            "{p}: no hostPath"
        );
    }
}

/// The embedded config text of the certinel container in `sub`.
fn embedded_config(sub: &str, kind: &str) -> String {
    let docs = manifests(sub);
    let pod = pod_of(only(&docs, kind));
    let cli = cli(&args(container(&pod, "certinel")));
    let key = cli
        .config_file
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let dir = cli
        .config_file
        .parent()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let c = container(&pod, "certinel");
    let mount = mounts(&pod, c).into_iter().find(|m| m.path == dir).unwrap();
    let cm = named(
        &docs,
        "ConfigMap",
        str_at(mount.volume, &["configMap", "name"]),
    );
    str_at(&cm.value, &["data", &key]).to_owned()
}

/// Rewrites every string in `v` starting with `from` to start with `to`.
fn rebase(v: &mut Value, from: &str, to: &str) {
    match v {
        Value::String(s) if s.starts_with(from) => *s = format!("{to}{}", &s[from.len()..]),
        Value::Sequence(items) => items.iter_mut().for_each(|i| rebase(i, from, to)),
        Value::Mapping(m) => m.iter_mut().for_each(|(_, i)| rebase(i, from, to)),
        _ => {}
    }
}

#[test]
fn sidecar_config_watches_and_probes_a_cert_manager_secret() {
    let text = embedded_config("sidecar", "Deployment");
    let docs = manifests("sidecar");
    let spec = at(&only(&docs, "Certificate").value, &["spec"]);
    let dns_names: Vec<&str> = seq(spec, &["dnsNames"])
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let pod = pod_of(only(&docs, "Deployment"));
    let secret_dir = mounts(&pod, container(&pod, "certinel"))
        .into_iter()
        .find(|m| m.volume.get("secret").is_some())
        .unwrap()
        .path;

    // What cert-manager would issue: a CA and an ECDSA P-256 leaf for the
    // Certificate's names, laid out as the mounted Secret.
    let ca = Ca::new("Varpulis Internal CA");
    let leaf = ca.issue(&Leaf {
        cn: "varpulis",
        sans: &dns_names,
        not_before: now() - DAY,
        not_after: now() + 30 * DAY,
        client_auth_only: false,
    });
    let tmp = tempfile::tempdir().unwrap();
    let tls_dir = tmp.path().join("tls");
    std::fs::create_dir(&tls_dir).unwrap();
    secret_volume(
        &tls_dir,
        "..2026_01_01_00_00_00.000000001",
        &[("tls.crt", &leaf.cert_pem), ("ca.crt", &ca.cert.cert_pem)],
    );
    let server = tls_server(
        &leaf,
        &ServerOptions {
            chain: vec![ca.cert.cert_pem.clone()],
            ..Default::default()
        },
    );

    // The ConfigMap's config, only moved: paths into the temp dir, the
    // app's port to the test server.
    let mut config: Value = serde_norway::from_str(&text).unwrap();
    rebase(
        &mut config,
        &format!("{secret_dir}/"),
        &format!("{}/", tls_dir.display()),
    );
    let targets = config["endpoints"][0]["targets"].as_sequence_mut().unwrap();
    let target = format!("localhost:{}", server.addr.port());
    for t in targets.iter_mut() {
        assert!(t.as_str().unwrap().starts_with("localhost:"));
        *t = Value::String(target.clone());
    }
    let yaml = serde_norway::to_string(&config).unwrap();
    Config::from_yaml(&yaml, tmp.path()).unwrap_or_else(|e| panic!("{e}\n{yaml}"));

    let d = Daemon::start(tmp.path(), &yaml);
    let address = server.addr.to_string();
    let m = d.wait_for(Duration::from_secs(20), |m| {
        m.find("certinel_tls_handshake_error", &[("address", &address)])
            .first()
            .is_some_and(|s| s.value == 0.0)
            && m.find("x509_source_up", &[]).len() == 2
    });
    for s in m.find("x509_source_up", &[]) {
        assert_eq!(s.value, 1.0, "{s:?}");
    }
    // Both files seen through the symlinks, under the configured paths.
    let crt = tls_dir.join("tls.crt").display().to_string();
    let file = m.one("x509_cert_not_after", &[("filepath", crt.as_str())]);
    assert_eq!(file.value, leaf.not_after as f64);
    let ca_path = tls_dir.join("ca.crt").display().to_string();
    assert!(m.has("x509_cert_not_after", &[("filepath", ca_path.as_str())]));
    // The endpoint serves the same certificate the Secret holds.
    let served = m.one(
        "x509_cert_not_after",
        &[
            ("target", target.as_str()),
            ("address", &address),
            ("chain_index", "0"),
        ],
    );
    assert_eq!(served.labels["serial_number"], file.labels["serial_number"]);
    assert_eq!(
        served.labels["server_name"],
        str_at(&config["endpoints"][0], &["server_name"])
    );
    d.wait_ready(Duration::from_secs(5));
}

#[test]
fn daemonset_config_reads_node_certificates_but_not_keys() {
    let text = embedded_config("daemonset", "DaemonSet");
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("node");
    let ca = Ca::new("kubernetes");
    let leaf = ca.issue(&Leaf::server("kube-apiserver", 300));
    let files = [
        ("etc/kubernetes/pki/ca.crt", &ca.cert.cert_pem),
        ("etc/kubernetes/pki/ca.key", &ca.cert.key_pem),
        ("etc/kubernetes/pki/apiserver.crt", &leaf.cert_pem),
        ("etc/kubernetes/pki/etcd/ca.crt", &ca.cert.cert_pem),
        ("var/lib/kubelet/pki/kubelet.crt", &leaf.cert_pem),
        ("var/lib/kubelet/pki/kubelet.key", &leaf.key_pem),
    ];
    for (rel, content) in files {
        write(&root, rel, content);
    }
    let mut config: Value = serde_norway::from_str(&text).unwrap();
    rebase(&mut config, "/", &format!("{}/", root.display()));
    let yaml = serde_norway::to_string(&config).unwrap();
    let d = Daemon::start(tmp.path(), &yaml);
    d.wait_ready(Duration::from_secs(20));
    let m = d.metrics();
    let mut seen: Vec<String> = m
        .find("x509_cert_not_after", &[("source_kind", "file")])
        .iter()
        .map(|s| {
            s.labels["filepath"]
                .strip_prefix(&root.display().to_string())
                .unwrap()
                .to_owned()
        })
        .collect();
    seen.sort();
    let mut want: Vec<String> = files
        .iter()
        .filter(|(rel, _)| rel.ends_with(".crt"))
        .map(|(rel, _)| format!("/{rel}"))
        .collect();
    want.sort();
    assert_eq!(seen, want);
    assert!(!m.has("certinel_file_error_info", &[]), "{}", m.text);
}

// ===========================================================================
// systemd

/// `[Section]` → key → values (a key may repeat).
type Unit = BTreeMap<String, BTreeMap<String, Vec<String>>>;

fn parse_unit(text: &str) -> Unit {
    let mut unit = Unit::new();
    let mut section = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        assert!(
            !line.ends_with('\\'),
            "line {}: continuation lines not expected",
            n + 1
        );
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name.to_owned());
            unit.entry(name.to_owned()).or_default();
            continue;
        }
        let section = section
            .as_ref()
            .unwrap_or_else(|| panic!("line {}: outside a section", n + 1));
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("line {}: not key=value: {line}", n + 1));
        unit.get_mut(section)
            .unwrap()
            .entry(k.trim().to_owned())
            .or_default()
            .push(v.trim().to_owned());
    }
    unit
}

const UNIT: &str = "deploy/systemd/certinel.service";

fn service() -> BTreeMap<String, Vec<String>> {
    parse_unit(&read(UNIT))
        .remove("Service")
        .expect("[Service]")
}

fn one_value<'a>(service: &'a BTreeMap<String, Vec<String>>, key: &str) -> &'a str {
    let v = service
        .get(key)
        .unwrap_or_else(|| panic!("{UNIT}: {key}= missing"));
    v.last().unwrap()
}

#[test]
fn systemd_unit_is_hardened_and_runs_our_command_line() {
    let unit = parse_unit(&read(UNIT));
    assert!(unit.contains_key("Unit") && unit.contains_key("Install"));
    let s = service();

    let exec: Vec<String> = one_value(&s, "ExecStart")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_eq!(exec[0], format!("/usr/local/bin/{}", bin_name()));
    let cli = cli(&exec[1..]);
    assert_eq!(cli.config_file, Path::new("/etc/certinel/config.yaml"));

    for (key, want) in [
        ("DynamicUser", "yes"),
        ("Restart", "on-failure"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("ProtectClock", "yes"),
        ("ProtectHostname", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("RestrictNamespaces", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("RestrictRealtime", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("SystemCallArchitectures", "native"),
        ("UMask", "0077"),
    ] {
        assert_eq!(one_value(&s, key), want, "{key}");
    }
    assert_eq!(s["SystemCallFilter"][0], "@system-service");
    // certinel reads /proc/stat for process_start_time_seconds.
    assert!(!s.contains_key("ProcSubset"));
    assert!(!s.contains_key("ReadWritePaths"), "certinel writes nothing");
}

#[test]
fn systemd_unit_exit_codes_and_signals_match_the_daemon() {
    let s = service();

    // A refused config exits with the status the unit does not restart on.
    let tmp = tempfile::tempdir().unwrap();
    let bad = write(tmp.path(), "bad.yaml", "files: 3\n");
    let status = run_bounded(
        certinel_command()
            .arg("--config.file")
            .arg(&bad)
            .args(["--web.listen-address", "127.0.0.1:0"]),
        Duration::from_secs(20),
    )
    .status;
    assert_eq!(
        status.code().map(|c| c.to_string()).as_deref(),
        Some(one_value(&s, "RestartPreventExitStatus"))
    );

    // ExecReload sends SIGHUP only if the daemon survives one.
    let d = Daemon::start(
        tmp.path(),
        "files:\n  - name: none\n    paths: [\"/nonexistent/*.pem\"]\n",
    );
    d.signal("HUP");
    let deadline = Instant::now() + Duration::from_millis(1500);
    let mut survives = true;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&d.addr, Duration::from_millis(200)).is_err() {
            survives = false;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    match s.get("ExecReload") {
        None => assert!(
            !survives,
            "certinel now survives SIGHUP: add ExecReload=/bin/kill -HUP $MAINPID to {UNIT}"
        ),
        Some(v) => {
            assert!(
                survives,
                "ExecReload={v:?} would kill certinel: it does not handle SIGHUP"
            );
            assert_eq!(v.last().unwrap(), "/bin/kill -HUP $MAINPID");
        }
    }
}

#[test]
fn systemd_analyze_accepts_the_unit() {
    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze not installed: unit checked by parsing only");
        return;
    };
    assert!(version.status.success());
    // verify wants ExecStart to exist: point it at the binary under test.
    let tmp = tempfile::tempdir().unwrap();
    let text = read(UNIT).replace(
        &format!("/usr/local/bin/{}", bin_name()),
        env!("CARGO_BIN_EXE_certinel"),
    );
    let unit = write(tmp.path(), "certinel.service", text);
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let about_us: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("certinel.service"))
        .collect();
    assert!(
        out.status.success() && about_us.is_empty(),
        "systemd-analyze verify: {stderr}"
    );

    // Exposure score ("OK" is below 2.0, i.e. 20 on --threshold's scale).
    // --offline needs systemd 252; older versions skip this part.
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=20", "--no-pager"])
        .arg(&unit)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("unrecognized option") || stderr.contains("Unknown option") {
        eprintln!("systemd-analyze security --offline unsupported: {stderr}");
        return;
    }
    assert!(
        out.status.success(),
        "exposure above 2.0:\n{}{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
}
