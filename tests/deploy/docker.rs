//! The Dockerfile, parsed into instructions and compared with the crate
//! (toolchain, binary, user, port, config path); `.dockerignore` evaluated
//! as Docker does; the builder stage replayed for real against the build
//! context.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use certinel::cli::DEFAULT_PORT;

use super::*;

/// `major.minor` of a version string ("1.95.0" → (1, 95)).
fn major_minor(v: &str) -> (u32, u32) {
    let mut it = v.split('.').map(|p| p.parse::<u32>());
    match (it.next(), it.next()) {
        (Some(Ok(a)), Some(Ok(b))) => (a, b),
        _ => panic!("not a version: {v:?}"),
    }
}

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
