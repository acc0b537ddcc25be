//! Helpers for `bench/run`, so the script needs nothing beyond bash, curl
//! and wrk:
//!
//! - `gen-files`: the PEM tree of the file-scanning scenario (generated once);
//! - `gen-certs`: exactly N certificates, one per file, for the scale scenario;
//! - `drive`: drives blackbox_exporter the way Prometheus does
//!   (`/probe?module=…&target=…`), at a fixed rate or closed-loop, with a
//!   concurrency cap;
//! - `freshness`: samples certinel's `/metrics` and reports how old the
//!   newest probe of each good target gets, and when the first round ended;
//! - `first-round`: one scrape after `/-/ready`: when the first round ended;
//! - `serve-static`: the scrape floors (plain and gzip);
//! - `free-port`: a free loopback port;
//! - `report`: turns the raw samples into `bench/RESULTS.md` and the growth
//!   figure `bench/scale.svg`.
//!
//! Every network request goes to 127.0.0.1; every loop is bounded in count
//! and time.

// A command-line tool: its output is the point.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use certinel_bench::{BoxError, Ca};

#[derive(Parser)]
#[command(about = "Helpers for bench/run")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a free TCP port on 127.0.0.1.
    FreePort,
    /// Generate the PEM tree `tree/{single,chain,bundle}`: single
    /// certificates, leaf+intermediate chains and 4-certificate CA bundles
    /// (70/20/10 % of the files); a `scrape/` directory of symlinks to
    /// them holding exactly `--scrape-certs` certificates; an `empty/`
    /// directory.
    GenFiles {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 10_000)]
        files: usize,
        #[arg(long, default_value_t = 10_000)]
        scrape_certs: usize,
    },
    /// Generate exactly `--certs` leaf certificates, one per file, 1000
    /// files per directory (`tree/dNNN/cNNNNNN.pem`), and an `empty/`
    /// directory: the scale scenario's trees. Reused when `--dir` already
    /// holds them.
    GenCerts {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        certs: usize,
    },
    /// Rewrite `--count` of the `.pem` files under `--dir` (spread evenly
    /// over the sorted list) with their own bytes: new mtime, same content.
    /// In-process, so the whole batch lands within a few milliseconds.
    Rewrite {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        count: usize,
    },
    /// Drive blackbox_exporter's /probe like Prometheus does.
    Drive {
        /// blackbox_exporter's host:port (loopback).
        #[arg(long)]
        exporter: String,
        /// File of target ports, one per line (targets are 127.0.0.1:PORT).
        #[arg(long)]
        targets: PathBuf,
        #[arg(long, default_value = "tls_connect")]
        module: String,
        /// Requests per second; 0 = closed loop (as fast as `--concurrency` allows).
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
        /// Requests in flight at most.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Stop dispatching after this many seconds.
        #[arg(long)]
        seconds: f64,
        /// Stop dispatching after this many requests (0 = no limit).
        #[arg(long, default_value_t = 0)]
        count: u64,
        /// Sent as X-Prometheus-Scrape-Timeout-Seconds.
        #[arg(long, default_value_t = 5.0)]
        scrape_timeout: f64,
    },
    /// Sample certinel's /metrics and report the age of the last probe of
    /// each target listed in `--targets`.
    Freshness {
        /// certinel's host:port (loopback).
        #[arg(long)]
        exporter: String,
        /// File of ports whose 127.0.0.1:PORT targets to follow.
        #[arg(long)]
        targets: PathBuf,
        #[arg(long)]
        seconds: f64,
        #[arg(long, default_value_t = 1.0)]
        period: f64,
        /// Ages above this many seconds count as late.
        #[arg(long, default_value_t = f64::INFINITY)]
        late_after: f64,
        /// Unix seconds to report times from (certinel's spawn); default:
        /// this sampler's start.
        #[arg(long)]
        since: Option<f64>,
    },
    /// Scrape certinel once after its first round (`/-/ready`) and report
    /// how many of the `--targets` were probed, how many failed, and when
    /// the last of those probes ended, in seconds after `--since`.
    FirstRound {
        /// certinel's host:port (loopback).
        #[arg(long)]
        exporter: String,
        /// File of ports whose 127.0.0.1:PORT targets to count.
        #[arg(long)]
        targets: PathBuf,
        /// Unix seconds when certinel was spawned.
        #[arg(long)]
        since: f64,
    },
    /// Serve one fixed body to every GET on 127.0.0.1:`--port` with a
    /// precomputed HTTP/1.1 response: the floor for the scrape scenario
    /// (what moving the same bytes to the same load generator costs with
    /// no exporter logic at all). Runs until killed or `--seconds` pass.
    ServeStatic {
        /// The body to serve (an exposition saved from certinel).
        #[arg(long)]
        body: PathBuf,
        #[arg(long)]
        port: u16,
        #[arg(long, default_value_t = 600.0)]
        seconds: f64,
        /// The body is gzip-compressed: send `content-encoding: gzip`
        /// (the floor for scrapes that ask for gzip).
        #[arg(long)]
        gzip: bool,
    },
    /// Write RESULTS.md from the raw samples.
    Report {
        /// Lines `key<TAB>value`, one per sample (repeated keys = runs).
        #[arg(long)]
        results: PathBuf,
        /// Lines `key<TAB>value`: machine facts and parameters.
        #[arg(long)]
        meta: PathBuf,
        /// Markdown appended verbatim (profiling notes, before/after).
        #[arg(long)]
        notes: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        /// Where to write the scale scenario's growth figure (SVG), which
        /// the report embeds; not written when scenario 5 did not run.
        #[arg(long)]
        svg: Option<PathBuf>,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::FreePort => free_port(),
        Command::GenFiles {
            dir,
            files,
            scrape_certs,
        } => gen_files(&dir, files, scrape_certs),
        Command::GenCerts { dir, certs } => gen_certs(&dir, certs),
        Command::Rewrite { dir, count } => rewrite(&dir, count),
        Command::Drive {
            exporter,
            targets,
            module,
            rate,
            concurrency,
            seconds,
            count,
            scrape_timeout,
        } => current_thread().and_then(|rt| {
            rt.block_on(drive(DriveArgs {
                exporter,
                targets: read_ports(&targets)?,
                module,
                rate,
                concurrency: concurrency.max(1),
                seconds,
                count,
                scrape_timeout,
            }))
        }),
        Command::Freshness {
            exporter,
            targets,
            seconds,
            period,
            late_after,
            since,
        } => current_thread().and_then(|rt| {
            rt.block_on(freshness(
                &exporter,
                &read_ports(&targets)?,
                seconds,
                period,
                late_after,
                since,
            ))
        }),
        Command::FirstRound {
            exporter,
            targets,
            since,
        } => current_thread()
            .and_then(|rt| rt.block_on(first_round(&exporter, &read_ports(&targets)?, since))),
        Command::ServeStatic {
            body,
            port,
            seconds,
            gzip,
        } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(BoxError::from)
            .and_then(|rt| rt.block_on(serve_static(&body, port, seconds, gzip))),
        Command::Report {
            results,
            meta,
            notes,
            out,
            svg,
        } => report(&results, &meta, notes.as_deref(), &out, svg.as_deref()),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_tool: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn current_thread() -> Result<tokio::runtime::Runtime, BoxError> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

async fn serve_static(body: &Path, port: u16, seconds: f64, gzip: bool) -> Result<(), BoxError> {
    let body = std::fs::read(body)?;
    let encoding = if gzip {
        "content-encoding: gzip\r\n"
    } else {
        ""
    };
    let mut response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\n{encoding}content-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(&body);
    let response: std::sync::Arc<[u8]> = response.into();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let serve = async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let response = response.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut read = BufReader::new(read);
                let mut line = String::new();
                loop {
                    // Read one request head (up to the blank line), then answer.
                    let mut head_done = false;
                    while !head_done {
                        line.clear();
                        match read.read_line(&mut line).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => head_done = line == "\r\n" || line == "\n",
                        }
                    }
                    if write.write_all(&response).await.is_err() {
                        return;
                    }
                }
            });
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs_f64(seconds), serve).await;
    Ok(())
}

fn free_port() -> Result<(), BoxError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    println!("{}", l.local_addr()?.port());
    Ok(())
}

fn read_ports(path: &Path) -> Result<Vec<String>, BoxError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let port: u16 = line
            .parse()
            .map_err(|_| format!("{}: bad port {line:?}", path.display()))?;
        out.push(format!("127.0.0.1:{port}"));
    }
    Ok(out)
}

fn loopback(addr: &str) -> Result<(), BoxError> {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    if host == "127.0.0.1" || host == "localhost" || host == "[::1]" || host.starts_with("127.") {
        Ok(())
    } else {
        Err(format!("{addr}: only loopback addresses may be targeted").into())
    }
}

// ---------------------------------------------------------------------------
// gen-files

fn gen_files(dir: &Path, files: usize, scrape_certs: usize) -> Result<(), BoxError> {
    let marker = dir.join("complete");
    let wanted = format!("files {files}\nscrape_certs {scrape_certs}\n");
    if std::fs::read_to_string(&marker).is_ok_and(|m| m.starts_with(&wanted)) {
        println!("{}", std::fs::read_to_string(&marker)?.trim_end());
        return Ok(());
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    for sub in [
        "tree/single",
        "tree/chain",
        "tree/bundle",
        "scrape",
        "empty",
    ] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    let started = Instant::now();
    let root = certinel_bench::root("certinel bench files root", 1)?;
    let inter = certinel_bench::intermediate(&root, "certinel bench files intermediate", 2)?;
    let pool: Vec<Ca> = (0..40)
        .map(|i| certinel_bench::root(&format!("certinel bench bundled CA {i}"), 100 + i))
        .collect::<Result<_, _>>()?;
    let n_chain = files / 5;
    let n_bundle = files / 10;
    let n_single = files - n_chain - n_bundle;
    let mut serial = 10_000u64;
    let mut leaf = |i: usize| -> Result<String, BoxError> {
        serial += 1;
        let cn = format!("svc-{i:05}.bench.test");
        let days = 30 + (i as i64 * 7) % 700;
        Ok(certinel_bench::leaf(&inter, &cn, &[&cn], serial, days)?.cert_pem)
    };
    let mut singles = Vec::new();
    for i in 0..n_single {
        let path = dir.join("tree/single").join(format!("s{i:05}.pem"));
        std::fs::write(&path, leaf(i)?)?;
        singles.push(path);
    }
    let mut chains = Vec::new();
    for i in 0..n_chain {
        let path = dir.join("tree/chain").join(format!("c{i:05}.pem"));
        std::fs::write(
            &path,
            format!("{}{}", leaf(n_single + i)?, inter.cert.cert_pem),
        )?;
        chains.push(path);
    }
    for i in 0..n_bundle {
        let mut text = String::new();
        for k in 0..4 {
            text.push_str(&pool[(i * 4 + k) % pool.len()].cert.cert_pem);
        }
        std::fs::write(dir.join("tree/bundle").join(format!("b{i:05}.pem")), text)?;
    }
    let certs = n_single + 2 * n_chain + 4 * n_bundle;
    // The scrape set: symlinks to single certificates, then to chains
    // (two certificates each), until exactly `scrape_certs` are held.
    let mut held = 0;
    let mut links = 0;
    for (target, weight) in singles
        .iter()
        .map(|p| (p, 1))
        .chain(chains.iter().map(|p| (p, 2)))
    {
        if held + weight > scrape_certs {
            continue;
        }
        links += 1;
        std::os::unix::fs::symlink(target, dir.join("scrape").join(format!("l{links:05}.pem")))?;
        held += weight;
        if held == scrape_certs {
            break;
        }
    }
    if held != scrape_certs {
        return Err(format!(
            "cannot make a scrape set of {scrape_certs} certificates from {files} files"
        )
        .into());
    }
    let manifest = format!(
        "{wanted}certs {certs}\nsingle {n_single}\nchain {n_chain}\nbundle {n_bundle}\nscrape_files {links}\n"
    );
    std::fs::write(&marker, &manifest)?;
    eprintln!(
        "bench_tool: generated {files} files ({certs} certificates) in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    println!("{}", manifest.trim_end());
    Ok(())
}

/// Files per directory in `gen-certs` trees.
const CERTS_PER_DIR: usize = 1000;

fn gen_certs(dir: &Path, certs: usize) -> Result<(), BoxError> {
    let marker = dir.join("complete");
    let wanted = format!("certs {certs}\n");
    if std::fs::read_to_string(&marker).is_ok_and(|m| m == wanted) {
        println!("{}", wanted.trim_end());
        return Ok(());
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir.join("empty"))?;
    let started = Instant::now();
    let root = certinel_bench::root("certinel bench scale root", 1)?;
    let inter = certinel_bench::intermediate(&root, "certinel bench scale intermediate", 2)?;
    for i in 0..certs {
        let sub = dir.join("tree").join(format!("d{:03}", i / CERTS_PER_DIR));
        if i % CERTS_PER_DIR == 0 {
            std::fs::create_dir_all(&sub)?;
        }
        let cn = format!("scale-{i:06}.bench.test");
        let days = 30 + (i as i64 * 7) % 700;
        let leaf = certinel_bench::leaf(&inter, &cn, &[&cn], 10_000 + i as u64, days)?;
        std::fs::write(sub.join(format!("c{i:06}.pem")), leaf.cert_pem)?;
    }
    std::fs::write(&marker, &wanted)?;
    eprintln!(
        "bench_tool: generated {certs} certificates in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    println!("{}", wanted.trim_end());
    Ok(())
}

fn pem_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), BoxError> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            pem_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "pem") {
            out.push(path);
        }
    }
    Ok(())
}

fn rewrite(dir: &Path, count: usize) -> Result<(), BoxError> {
    let mut files = Vec::new();
    pem_files(dir, &mut files)?;
    files.sort();
    if files.is_empty() || count == 0 {
        return Err(format!("nothing to rewrite under {}", dir.display()).into());
    }
    let step = (files.len() / count).max(1);
    let chosen: Vec<&PathBuf> = files.iter().step_by(step).take(count).collect();
    let contents = chosen
        .iter()
        .map(std::fs::read)
        .collect::<Result<Vec<_>, _>>()?;
    let started = Instant::now();
    for (path, bytes) in chosen.iter().zip(&contents) {
        std::fs::write(path, bytes)?;
    }
    println!(
        "rewrote={} seconds={:.4}",
        chosen.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// A small HTTP/1.1 client: keep-alive, Content-Length or chunked bodies.

struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    async fn open(addr: &str) -> Result<Conn, BoxError> {
        loopback(addr)?;
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            reader: BufReader::new(stream),
        })
    }

    /// One GET; returns status, body and whether the connection may be reused.
    async fn get(
        &mut self,
        host: &str,
        path: &str,
        headers: &str,
    ) -> Result<(u16, Vec<u8>, bool), BoxError> {
        let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{headers}\r\n");
        self.reader.get_mut().write_all(request.as_bytes()).await?;
        let mut line = String::new();
        self.reader.read_line(&mut line).await?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {line:?}"))?;
        let mut length: Option<usize> = None;
        let mut chunked = false;
        let mut keep_alive = true;
        for _ in 0..100 {
            line.clear();
            if self.reader.read_line(&mut line).await? == 0 {
                return Err("connection closed in headers".into());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let Some((name, value)) = l.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.parse().ok(),
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "connection" => keep_alive = !value.eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.reader.read_line(&mut line).await?;
                let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                    .map_err(|_| format!("bad chunk size {line:?}"))?;
                if size == 0 {
                    line.clear();
                    self.reader.read_line(&mut line).await?;
                    break;
                }
                let start = body.len();
                body.resize(start + size, 0);
                self.reader.read_exact(&mut body[start..]).await?;
                let mut crlf = [0u8; 2];
                self.reader.read_exact(&mut crlf).await?;
            }
        } else if let Some(n) = length {
            body.resize(n, 0);
            self.reader.read_exact(&mut body).await?;
        } else {
            self.reader.read_to_end(&mut body).await?;
            keep_alive = false;
        }
        Ok((status, body, keep_alive))
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

// ---------------------------------------------------------------------------
// drive

struct DriveArgs {
    exporter: String,
    targets: Vec<String>,
    module: String,
    rate: f64,
    concurrency: usize,
    seconds: f64,
    count: u64,
    scrape_timeout: f64,
}

#[derive(Default)]
struct DriveStats {
    ok: u64,
    failed: u64,
    errors: u64,
    latencies_ms: Vec<f64>,
    first_failure: Option<String>,
}

async fn drive(args: DriveArgs) -> Result<(), BoxError> {
    loopback(&args.exporter)?;
    if args.targets.is_empty() {
        return Err("no targets".into());
    }
    let args = Arc::new(args);
    let permits = Arc::new(Semaphore::new(args.concurrency));
    let pool: Arc<Mutex<Vec<Conn>>> = Arc::new(Mutex::new(Vec::new()));
    let stats: Arc<Mutex<DriveStats>> = Arc::default();
    let started = tokio::time::Instant::now();
    let stop_at = started + Duration::from_secs_f64(args.seconds);
    let mut tasks = tokio::task::JoinSet::new();
    let mut sent: u64 = 0;
    loop {
        if args.count > 0 && sent >= args.count {
            break;
        }
        if args.rate > 0.0 {
            let due = started + Duration::from_secs_f64(sent as f64 / args.rate);
            if due >= stop_at {
                break;
            }
            tokio::time::sleep_until(due).await;
        }
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p?,
            _ = tokio::time::sleep_until(stop_at) => break,
        };
        if tokio::time::Instant::now() >= stop_at {
            break;
        }
        let target = args.targets[(sent % args.targets.len() as u64) as usize].clone();
        sent += 1;
        let (args, pool, stats) = (args.clone(), pool.clone(), stats.clone());
        tasks.spawn(async move {
            let t0 = Instant::now();
            let outcome = probe_once(&args, &pool, &target).await;
            let ms = t0.elapsed().as_secs_f64() * 1000.0;
            drop(permit);
            let mut s = stats.lock().unwrap_or_else(|p| p.into_inner());
            s.latencies_ms.push(ms);
            match outcome {
                Ok(true) => s.ok += 1,
                Ok(false) => {
                    s.failed += 1;
                    s.first_failure
                        .get_or_insert(format!("{target}: probe_success 0"));
                }
                Err(e) => {
                    s.errors += 1;
                    s.first_failure.get_or_insert(format!("{target}: {e}"));
                }
            }
        });
        // Reap finished tasks so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    let dispatch_s = started.elapsed().as_secs_f64();
    // In-flight requests finish within the scrape timeout; bound the wait.
    let drain = async { while tasks.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(Duration::from_secs_f64(args.scrape_timeout + 5.0), drain).await;
    let elapsed = started.elapsed().as_secs_f64();
    let mut s = stats.lock().unwrap_or_else(|p| p.into_inner());
    s.latencies_ms.sort_by(f64::total_cmp);
    println!(
        "sent={sent} ok={} failed={} errors={} dispatch_seconds={dispatch_s:.3} seconds={elapsed:.3} rate={:.1} p50_ms={:.2} p99_ms={:.2}",
        s.ok,
        s.failed,
        s.errors,
        (s.ok + s.failed) as f64 / elapsed,
        percentile(&s.latencies_ms, 50.0),
        percentile(&s.latencies_ms, 99.0),
    );
    if let Some(f) = &s.first_failure {
        eprintln!("bench_tool drive: first failure: {f}");
    }
    Ok(())
}

async fn probe_once(
    args: &DriveArgs,
    pool: &Mutex<Vec<Conn>>,
    target: &str,
) -> Result<bool, BoxError> {
    let conn = pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
    let mut conn = match conn {
        Some(c) => c,
        None => Conn::open(&args.exporter).await?,
    };
    let path = format!("/probe?module={}&target={target}", args.module);
    let headers = format!(
        "User-Agent: Prometheus/bench\r\nAccept: text/plain;version=0.0.4\r\nX-Prometheus-Scrape-Timeout-Seconds: {}\r\n",
        args.scrape_timeout
    );
    let request = conn.get(&args.exporter, &path, &headers);
    let (status, body, keep) =
        tokio::time::timeout(Duration::from_secs_f64(args.scrape_timeout + 5.0), request)
            .await
            .map_err(|_| "no response from the exporter")??;
    if keep {
        pool.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
    }
    if status != 200 {
        return Err(format!("HTTP {status}").into());
    }
    Ok(body.windows(15).any(|w| w == b"probe_success 1"))
}

// ---------------------------------------------------------------------------
// freshness

const LAST_PROBE: &str = "certinel_tls_last_probe_timestamp_seconds{";
const HANDSHAKE_DURATION: &str = "certinel_tls_handshake_duration_seconds{";

fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("{name}=\"");
    let start = labels.find(&key)? + key.len();
    let len = labels[start..].find('"')?;
    Some(&labels[start..start + len])
}

/// The last probe of one target, as one exposition shows it.
struct LastProbe {
    /// When it started (`certinel_tls_last_probe_timestamp_seconds`).
    started: f64,
    /// When it ended: start + `certinel_tls_handshake_duration_seconds`.
    done: f64,
    /// Whether `certinel_tls_handshake_error` says it failed.
    failed: bool,
}

/// The last probe of each `wanted` target in an exposition.
fn last_probes(text: &str, wanted: &HashSet<&str>) -> HashMap<String, LastProbe> {
    let series = |line: &str, prefix: &str| -> Option<(String, String, f64)> {
        let (labels, value) = line.strip_prefix(prefix)?.rsplit_once("} ")?;
        let target = label(labels, "target")?;
        if !wanted.contains(target) {
            return None;
        }
        let value = value.split_whitespace().next()?.parse().ok()?;
        Some((target.to_owned(), labels.to_owned(), value))
    };
    // Durations by their full label set, which the timestamp shares.
    let mut durations: HashMap<String, f64> = HashMap::new();
    let mut failing: HashSet<String> = HashSet::new();
    for line in text.lines() {
        if let Some((_, labels, v)) = series(line, HANDSHAKE_DURATION) {
            durations.insert(labels, v);
        } else if let Some((target, _, v)) = series(line, "certinel_tls_handshake_error{") {
            if v != 0.0 {
                failing.insert(target);
            }
        }
    }
    let mut out = HashMap::new();
    for line in text.lines() {
        if let Some((target, labels, started)) = series(line, LAST_PROBE) {
            let done = started + durations.get(&labels).copied().unwrap_or(0.0);
            let failed = failing.contains(&target);
            out.entry(target).or_insert(LastProbe {
                started,
                done,
                failed,
            });
        }
    }
    out
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

async fn freshness(
    exporter: &str,
    targets: &[String],
    seconds: f64,
    period: f64,
    late_after: f64,
    since: Option<f64>,
) -> Result<(), BoxError> {
    loopback(exporter)?;
    let wanted: HashSet<&str> = targets.iter().map(String::as_str).collect();
    let started = Instant::now();
    // Times are reported from `since` (certinel's spawn) when given, else
    // from this sampler's start.
    let origin = since.unwrap_or_else(unix_now);
    let stop = Duration::from_secs_f64(seconds);
    let mut max_age: f64 = 0.0;
    let mut samples = 0u64;
    let mut late = 0u64;
    let mut ages = Vec::new();
    let mut all_seen_at: Option<f64> = None;
    // The end of the first probe seen of each target: a sample every
    // `period` sees every probe when `period` < interval.
    let mut first_done: HashMap<String, f64> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(period));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut conn: Option<Conn> = None;
    while started.elapsed() < stop {
        tick.tick().await;
        let mut c = match conn.take() {
            Some(c) => c,
            None => Conn::open(exporter).await?,
        };
        let got = tokio::time::timeout(Duration::from_secs(10), c.get(exporter, "/metrics", ""))
            .await
            .map_err(|_| "certinel did not answer /metrics within 10s")??;
        let (status, body, keep) = got;
        if keep {
            conn = Some(c);
        }
        if status != 200 {
            return Err(format!("/metrics: HTTP {status}").into());
        }
        let now = unix_now();
        let text = String::from_utf8_lossy(&body);
        for (target, probe) in last_probes(&text, &wanted) {
            let age = now - probe.started;
            ages.push(age);
            max_age = max_age.max(age);
            if age > late_after {
                late += 1;
            }
            first_done.entry(target).or_insert(probe.done);
        }
        samples += 1;
        if all_seen_at.is_none() && first_done.len() == wanted.len() {
            all_seen_at = Some(now - origin);
        }
    }
    ages.sort_by(f64::total_cmp);
    let first_round = if first_done.len() == wanted.len() {
        first_done.values().fold(f64::NAN, |a, &b| a.max(b)) - origin
    } else {
        f64::NAN
    };
    println!(
        "samples={samples} targets={} seen={} all_seen_after={:.1} first_round={first_round:.3} max_age={max_age:.3} p99_age={:.3} late={late}",
        wanted.len(),
        first_done.len(),
        all_seen_at.unwrap_or(f64::NAN),
        percentile(&ages, 99.0),
    );
    Ok(())
}

/// One scrape after certinel's first round: how many targets were probed,
/// how many failed, and when the last of those probes ended, from `since`.
async fn first_round(exporter: &str, targets: &[String], since: f64) -> Result<(), BoxError> {
    loopback(exporter)?;
    let wanted: HashSet<&str> = targets.iter().map(String::as_str).collect();
    let mut conn = Conn::open(exporter).await?;
    let (status, body, _) =
        tokio::time::timeout(Duration::from_secs(60), conn.get(exporter, "/metrics", ""))
            .await
            .map_err(|_| "certinel did not answer /metrics within 60s")??;
    if status != 200 {
        return Err(format!("/metrics: HTTP {status}").into());
    }
    let text = String::from_utf8_lossy(&body);
    let probes = last_probes(&text, &wanted);
    let last_done = probes.values().fold(f64::NAN, |a, p| a.max(p.done));
    let certs = text
        .lines()
        .filter(|l| l.starts_with("x509_cert_not_after{") && l.contains("target=\""))
        .count();
    println!(
        "targets={} probed={} failed={} certs={certs} first_round={:.3} bytes={}",
        wanted.len(),
        probes.len(),
        probes.values().filter(|p| p.failed).count(),
        last_done - since,
        body.len(),
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// report

fn read_tsv(path: &Path) -> Result<Vec<(String, String)>, BoxError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect())
}

/// min / median / max of one figure over the runs.
#[derive(Clone, Copy)]
struct Spread {
    min: f64,
    median: f64,
    max: f64,
    n: usize,
}

fn spread(values: &[f64]) -> Option<Spread> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Spread {
        min: v[0],
        median,
        max: v[n - 1],
        n,
    })
}

fn fmt_num(x: f64) -> String {
    let a = x.abs();
    if a >= 1000.0 {
        format!("{x:.0}")
    } else if a >= 100.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

struct Report {
    data: BTreeMap<String, Vec<f64>>,
    out: String,
    verdicts: Vec<(String, String, String, bool)>,
}

impl Report {
    fn get(&self, key: &str) -> Option<Spread> {
        self.data.get(key).and_then(|v| spread(v))
    }

    fn cell(&self, key: &str, scale: f64) -> String {
        match self.get(key) {
            Some(s) if s.n == 1 => fmt_num(s.median * scale),
            Some(s) => format!(
                "{} / **{}** / {}",
                fmt_num(s.min * scale),
                fmt_num(s.median * scale),
                fmt_num(s.max * scale)
            ),
            None => "n/a".to_owned(),
        }
    }

    fn ratio(&self, a: &str, b: &str) -> Option<f64> {
        Some(self.get(a)?.median / self.get(b)?.median)
    }

    /// A table row: figure, certinel, blackbox, ratio.
    fn row(&mut self, name: &str, key: &str, unit_scale: f64, peer: bool) {
        let c = format!("{key}.certinel");
        let b = format!("{key}.blackbox");
        let ratio = if peer {
            self.ratio(&c, &b)
                .map_or("n/a".to_owned(), |r| format!("{r:.2}"))
        } else {
            String::new()
        };
        let peer_cell = if peer {
            self.cell(&b, unit_scale)
        } else {
            "n/a".to_owned()
        };
        let line = format!(
            "| {name} | {} | {peer_cell} | {ratio} |\n",
            self.cell(&c, unit_scale)
        );
        self.out.push_str(&line);
    }

    fn info(&mut self, what: &str, measured: String) {
        self.verdicts
            .push((what.to_owned(), measured, "info".to_owned(), true));
    }

    fn verdict(&mut self, target: &str, measured: String, pass: Option<bool>) {
        let pass_s = match pass {
            Some(true) => "PASS",
            Some(false) => "FAIL",
            None => "NOT MEASURED",
        };
        self.verdicts.push((
            target.to_owned(),
            measured,
            pass_s.to_owned(),
            pass.unwrap_or(false),
        ));
    }
}

fn report(
    results: &Path,
    meta: &Path,
    notes: Option<&Path>,
    out: &Path,
    svg: Option<&Path>,
) -> Result<(), BoxError> {
    let mut data: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (k, v) in read_tsv(results)? {
        if let Ok(x) = v.parse::<f64>() {
            data.entry(k).or_default().push(x);
        }
    }
    let meta: HashMap<String, String> = read_tsv(meta)?.into_iter().collect();
    let m = |key: &str| meta.get(key).map_or("?", String::as_str).to_owned();
    let mut r = Report {
        data,
        out: String::new(),
        verdicts: Vec::new(),
    };
    const MIB: f64 = 1.0 / 1024.0; // KiB → MiB

    let mode = m("mode");
    let _ = writeln!(r.out, "# certinel benchmark results\n");
    let _ = writeln!(
        r.out,
        "Written by `bench/run{}` on {}. Do not edit by hand: re-run the benchmark.\n",
        if mode == "smoke" { " --smoke" } else { "" },
        m("date")
    );
    if mode == "smoke" {
        r.out.push_str("> **Smoke mode**: tiny N, one run each. These numbers only prove the pipeline works; targets are evaluated at full size only.\n\n");
    }
    r.out
        .push_str("## Machine and versions\n\n| | |\n|---|---|\n");
    for (k, label) in [
        ("cpu", "CPU"),
        ("cores", "cores (online)"),
        ("memory", "memory"),
        ("kernel", "kernel"),
        ("os", "OS"),
        ("certinel", "certinel"),
        ("rustc", "rustc"),
        ("blackbox", "blackbox_exporter"),
        ("wrk", "wrk"),
        ("runs", "runs per figure"),
    ] {
        let line = format!("| {label} | {} |\n", m(k));
        r.out.push_str(&line);
    }
    r.out.push_str(
        "\nEvery figure is **min / median / max** over the runs (one value when there was one run). \
         Ratios are certinel : blackbox_exporter, of the medians. Pass/fail uses the median, except \
         for \"never\" targets (freshness), which use the worst run. CPU is utime+stime from \
         `/proc/<pid>/stat` of the exporter process only; RSS is `VmRSS`, peak is `VmHWM` from \
         `/proc/<pid>/status`. Everything runs on this one machine over loopback: the TLS farm, the \
         exporters, the load generators.\n\n",
    );

    // 1. Handshake probing.
    let n_ep = m("endpoints");
    let _ = writeln!(r.out, "## 1. Handshake probing: {n_ep} TLS endpoints\n");
    let _ = writeln!(
        r.out,
        "`examples/bench_tls_farm.rs` serves {n_ep} rustls endpoints on as many 127.0.0.1 ports \
         (ECDSA P-256 leaf per port + intermediate; both exporters verify against the root in \
         `ca_file`, no session resumption). certinel probes them with `interval: {}`, \
         `timeout: {}`, `concurrency: {}`; blackbox_exporter (module `tcp`, `tls: true`, the same \
         `ca_file`) is driven by `bench_tool drive` with `/probe?module=tls_connect&target=…` \
         requests at the same rate with at most the same number in flight. **Probes are counted \
         by the farm** (completed server-side handshakes), the same counter for both exporters.\n\
         \n\
         - *fixed rate*: {} probes/s for {} s after one warm-up round; CPU per 1000 probes = \
           ΔCPU / Δhandshakes × 1000; steady RSS = median of 1 Hz `VmRSS` samples in that window.\n\
         - *saturation*: certinel with `interval: {}` (demand ≫ capacity), blackbox closed-loop \
           with {} requests in flight; probes/s = Δhandshakes / {} s.\n\
         - *idle*: certinel after its first round of all endpoints with `interval: 1h` (nothing \
           in flight), 4 s after one `/metrics` scrape (certinel drops the cached body 2 s after its \
           render when no scrape needs it), and with an empty configuration; \
           blackbox_exporter after serving one round, and freshly started.\n",
        m("rate_interval"),
        m("timeout"),
        m("concurrency"),
        m("rate"),
        m("rate_seconds"),
        m("sat_interval"),
        m("concurrency"),
        m("sat_seconds"),
    );
    r.out
        .push_str("| figure | certinel | blackbox_exporter | ratio |\n|---|---|---|---|\n");
    r.row(
        "CPU seconds per 1000 probes (fixed rate)",
        "s1.cpu_per_1k",
        1.0,
        true,
    );
    r.row(
        "… bare rustls client handshakes, the floor (`bench_handshake`, fixed rate)",
        "s1.floor_cpu_per_1k",
        1.0,
        false,
    );
    r.row("probes/s achieved (fixed rate)", "s1.rate", 1.0, true);
    r.row(
        "steady RSS, MiB (fixed rate)",
        "s1.steady_rss_kib",
        MIB,
        true,
    );
    r.row("peak RSS, MiB (fixed rate)", "s1.peak_rss_kib", MIB, true);
    r.row("probes/s at saturation", "s1.sat_rate", 1.0, true);
    r.row(
        "CPU seconds per 1000 probes (saturation)",
        "s1.sat_cpu_per_1k",
        1.0,
        true,
    );
    r.row(
        "peak RSS, MiB (saturation)",
        "s1.sat_peak_rss_kib",
        MIB,
        true,
    );
    r.row(
        "idle RSS after one round, MiB",
        "s1.idle_rss_kib",
        MIB,
        true,
    );
    r.row(
        "idle RSS, empty config / fresh start, MiB",
        "s1.idle_empty_rss_kib",
        MIB,
        true,
    );
    r.row(
        "probe latency p50, ms (blackbox: /probe round trip)",
        "s1.probe_p50_ms",
        1.0,
        true,
    );
    r.row(
        "probe latency p99, ms (blackbox: /probe round trip)",
        "s1.probe_p99_ms",
        1.0,
        true,
    );
    r.out.push('\n');

    // 2. Files.
    let _ = writeln!(
        r.out,
        "## 2. File scanning: {} files, {} certificates\n",
        m("files"),
        m("file_certs")
    );
    let _ = writeln!(
        r.out,
        "`bench_tool gen-files` writes the tree once (cached under `{}`): 70 % single \
         certificates, 20 % leaf + intermediate chains, 10 % bundles of 4 CA certificates, all \
         ECDSA P-256. One file source, `paths: [\"…/**/*.pem\"]`, `interval: {}`. Timings are \
         `certinel_source_duration_seconds` of the pass (a fresh process for each run; \"cold\" \
         is certinel's cache, the OS page cache is warm). 1 % changed = {} files rewritten with \
         the same bytes (new mtime, so they are read and parsed again). Memory per certificate = \
         (RSS after the second pass over the tree − RSS after the second pass over an empty \
         directory) / certificates, measured before any scrape. blackbox_exporter has no file \
         source: n/a.\n",
        m("files_dir"),
        m("files_interval"),
        m("files_changed"),
    );
    r.out
        .push_str("| figure | certinel | blackbox_exporter | ratio |\n|---|---|---|---|\n");
    r.row("cold scan, ms", "s2.cold_s", 1000.0, false);
    r.row(
        "rescan, nothing changed, ms",
        "s2.unchanged_s",
        1000.0,
        false,
    );
    r.row("rescan, 1 % changed, ms", "s2.changed_s", 1000.0, false);
    r.row("RSS with the tree, MiB", "s2.rss_kib", MIB, false);
    r.row(
        "RSS with an empty directory, MiB",
        "s2.rss_empty_kib",
        MIB,
        false,
    );
    r.row(
        "memory per tracked certificate, bytes",
        "s2.bytes_per_cert",
        1.0,
        false,
    );
    r.row(
        "passes certinel started by itself, nothing changed, in 0.8 interval",
        "s2.spurious_passes",
        1.0,
        false,
    );
    r.row(
        "CPU seconds, start to the 1 %-changed pass",
        "s2.cpu_s",
        1.0,
        false,
    );
    r.out.push('\n');

    // 3. Scrape.
    let _ = writeln!(
        r.out,
        "## 3. Scrape: `/metrics` at {} certificates\n",
        m("scrape_certs")
    );
    let _ = writeln!(
        r.out,
        "certinel watches the `scrape/` set of the tree (exactly {} certificates, default metric \
         set) with `interval: 1h`, so nothing but scrapes runs. Load: `{}` with Prometheus' \
         headers: `Accept` (OpenMetrics) and, in the gzip columns, `Accept-Encoding: gzip` (which \
         Prometheus always sends). CPU per scrape = ΔCPU of certinel / requests completed. Bytes \
         on the wire are the response body (the exposition, or its gzip stream); the gzip body is \
         checked to decompress to the same exposition. blackbox_exporter has no aggregate \
         exposition (Prometheus scrapes one `/probe` per target): not measured.\n",
        m("scrape_certs"),
        m("wrk_cmd"),
    );
    r.out.push_str(
        "| figure | certinel, plain | certinel, gzip | floor, plain | floor, gzip |\n|---|---|---|---|---|\n",
    );
    // The floor's column: measured, not measured, or the same bytes.
    let rows: [(&str, &str, &str, f64, Option<&str>); 5] = [
        ("latency p50, ms", "p50_ms", "gz_p50_ms", 1.0, None),
        ("latency p99, ms", "p99_ms", "gz_p99_ms", 1.0, None),
        ("scrapes/s", "rps", "gz_rps", 1.0, None),
        (
            "CPU ms per scrape",
            "cpu_ms_per_scrape",
            "gz_cpu_ms_per_scrape",
            1.0,
            Some("n/a"),
        ),
        (
            "bytes on the wire per scrape, MiB",
            "size_bytes",
            "gz_size_bytes",
            1.0 / 1048576.0,
            Some("same"),
        ),
    ];
    for (name, plain, gz, scale, floor) in rows {
        let floor_cell = |key: &str| match floor {
            Some(text) => text.to_owned(),
            None => r.cell(&format!("s3.{key}.floor"), scale),
        };
        let line = format!(
            "| {name} | {} | {} | {} | {} |\n",
            r.cell(&format!("s3.{plain}.certinel"), scale),
            r.cell(&format!("s3.{gz}.certinel"), scale),
            floor_cell(plain),
            floor_cell(gz),
        );
        r.out.push_str(&line);
    }
    let line = format!(
        "| first gzip scrape after a render (compresses it), ms |  | {} |  |  |\n",
        r.cell("s3.gz_first_ms.certinel", 1.0)
    );
    r.out.push_str(&line);
    let line = format!(
        "| series in the exposition | {} |  |  |  |\n",
        r.cell("s3.series.certinel", 1.0)
    );
    r.out.push_str(&line);
    let line = format!(
        "| RSS after the load, MiB | {} |  |  |  |\n",
        r.cell("s3.rss_kib.certinel", MIB)
    );
    r.out.push_str(&line);
    r.out.push_str(
        "\n*Floor*: `bench_tool serve-static` answers every request with the same bytes \
         (certinel's exposition, or its gzip body, saved before the load) from one precomputed \
         HTTP response, no exporter logic at all, under the same `wrk` load, alternating with \
         certinel's runs. It is what moving that many bytes to that load generator costs on this \
         machine.\n",
    );
    r.out.push('\n');

    // 4. Stall.
    let _ = writeln!(
        r.out,
        "## 4. Stall resistance: {} good targets + {} black holes\n",
        m("stall_good"),
        m("stall_bad")
    );
    let _ = writeln!(
        r.out,
        "One endpoint source, `interval: {}`, `timeout: {}`, `concurrency: {}`; the {} good \
         targets are interleaved among the others. Three variants, each a fresh farm and \
         certinel: **good only**; **+ refused**: {} ports that refuse connections (same series \
         as the black holes, fast failure: the control for exposition size); **+ black holes**: \
         {} listeners that accept and never answer. Freshness: `bench_tool freshness` reads \
         `/metrics` every second for {} s and takes, over all samples and good targets, the \
         largest `now − certinel_tls_last_probe_timestamp_seconds`. First round: from the \
         instant the script spawns certinel to the end (timestamp + \
         `certinel_tls_handshake_duration_seconds`) of the last good target's first probe. Scrape p99: `{}` in the \
         middle of that window.\n",
        m("stall_interval"),
        m("stall_timeout"),
        m("concurrency"),
        m("stall_good"),
        m("stall_bad"),
        m("stall_bad"),
        m("stall_seconds"),
        m("wrk_cmd"),
    );
    r.out
        .push_str("| figure | good only | + refused | + black holes |\n|---|---|---|---|\n");
    for (name, key, scale) in [
        ("max age of a good target's last probe, s", "max_age", 1.0),
        ("p99 age of a good target's last probe, s", "p99_age", 1.0),
        (
            "first complete round of the good targets: s from certinel's spawn to the end of the last one's first probe",
            "first_round",
            1.0,
        ),
        (
            "first sample (1 Hz) showing every good target probed, s from certinel's spawn",
            "all_seen",
            1.0,
        ),
        ("scrape latency p50, ms", "p50_ms", 1.0),
        ("scrape latency p99, ms", "p99_ms", 1.0),
        ("exposition size, KiB", "size_bytes", 1.0 / 1024.0),
    ] {
        let line = format!(
            "| {name} | {} | {} | {} |\n",
            r.cell(&format!("s4.good.{key}.certinel"), scale),
            r.cell(&format!("s4.refused.{key}.certinel"), scale),
            r.cell(&format!("s4.blackhole.{key}.certinel"), scale),
        );
        r.out.push_str(&line);
    }
    r.out.push('\n');

    // 5. Scale.
    let file_sizes = sizes(&m("scale_file_sizes"));
    let ep_sizes = sizes(&m("scale_ep_sizes"));
    let scale_ran = r.data.keys().any(|k| k.starts_with("s5."));
    if scale_ran {
        scale_section(&mut r, &meta, &file_sizes, &ep_sizes, out, svg)?;
    }

    // Targets of issue #16, then those of issue #6 it does not replace.
    let half =
        |r: &Report, key: &str| r.ratio(&format!("{key}.certinel"), &format!("{key}.blackbox"));
    let scrape_certs = m("scrape_certs");
    let v = r.get("s3.gz_p99_ms.certinel").map(|s| s.median);
    let floor = r.get("s3.gz_p99_ms.floor").map(|s| s.median);
    r.verdict(
        &format!(
            "gzip /metrics at {scrape_certs} certificates, 8 concurrent scrapers with Prometheus' headers: p99 ≤ 15 ms"
        ),
        v.map_or("n/a".into(), |x| match floor {
            Some(f) => format!("{x:.2} ms (floor {f:.2} ms)"),
            None => format!("{x:.2} ms"),
        }),
        v.map(|x| x <= 15.0),
    );
    let v = r.get("s3.gz_cpu_ms_per_scrape.certinel").map(|s| s.median);
    r.verdict(
        &format!("gzip /metrics at {scrape_certs} certificates: CPU per scrape ≤ 1 ms"),
        v.map_or("n/a".into(), |x| format!("{x:.3} ms")),
        v.map(|x| x <= 1.0),
    );
    let wire = match (
        r.get("s3.size_bytes.certinel"),
        r.get("s3.gz_size_bytes.certinel"),
    ) {
        (Some(p), Some(g)) => format!(
            "{:.2} MiB plain, {:.2} MiB gzip ({:.1} × smaller)",
            p.median / 1048576.0,
            g.median / 1048576.0,
            p.median / g.median
        ),
        _ => "n/a".into(),
    };
    r.info(
        &format!("bytes on the wire per scrape at {scrape_certs} certificates"),
        wire,
    );
    let v = half(&r, "s1.cpu_per_1k");
    // The floor: what bare rustls handshakes cost, against the same peer.
    let floor = r.ratio("s1.floor_cpu_per_1k.certinel", "s1.cpu_per_1k.blackbox");
    let floor_note = floor.map_or(String::new(), |f| {
        format!(" (bare rustls handshakes, the floor: {f:.2} ×)")
    });
    r.verdict(
        "CPU per handshake probe ≤ 0.15 × blackbox_exporter's (fixed rate)",
        v.map_or("n/a".into(), |x| format!("{x:.2} ×{floor_note}")),
        v.map(|x| x <= 0.15),
    );
    // Worst run: "regardless of dead ones" is a promise about every start.
    let v = r.get("s4.blackhole.first_round.certinel").map(|s| s.max);
    let good = r.get("s4.good.first_round.certinel").map(|s| s.max);
    r.verdict(
        &format!(
            "first complete round of {} good targets beside {} black holes < 2 s from certinel's start",
            m("stall_good"),
            m("stall_bad")
        ),
        v.map_or("n/a".into(), |x| match good {
            Some(g) => format!("worst {x:.2} s (good targets only: {g:.2} s)"),
            None => format!("worst {x:.2} s"),
        }),
        v.map(|x| x < 2.0),
    );
    let biggest = file_sizes.last().copied().unwrap_or(0);
    let v = r
        .get(&format!("s5.f.bytes_per_cert.{biggest}.certinel"))
        .map(|s| s.median);
    r.verdict(
        &format!(
            "memory per certificate < 1 KiB at {} certificates (scenario 5)",
            thousands(biggest)
        ),
        v.map_or("n/a".into(), |x| format!("{x:.0} bytes")),
        v.map(|x| x < 1024.0),
    );
    let issue16 = std::mem::take(&mut r.verdicts);

    let v = half(&r, "s1.steady_rss_kib");
    r.verdict(
        "steady RSS ≤ 0.5 × blackbox_exporter's",
        v.map_or("n/a".into(), |x| format!("{x:.2} ×")),
        v.map(|x| x <= 0.5),
    );
    for (key, what) in [
        (
            "s1.idle_rss_kib.certinel",
            "idle RSS < 10 MiB (1000 endpoints tracked, between rounds, after a scrape)",
        ),
        (
            "s1.idle_empty_rss_kib.certinel",
            "idle RSS < 10 MiB (empty configuration)",
        ),
    ] {
        let v = r.get(key).map(|s| s.median / 1024.0);
        r.verdict(
            what,
            v.map_or("n/a".into(), |x| format!("{x:.2} MiB")),
            v.map(|x| x < 10.0),
        );
    }
    let v = r.get("s2.cold_s.certinel").map(|s| s.median);
    r.verdict(
        "10 000 files: cold scan < 1 s",
        v.map_or("n/a".into(), |x| format!("{:.0} ms", x * 1000.0)),
        v.map(|x| x < 1.0),
    );
    let v = r.get("s2.unchanged_s.certinel").map(|s| s.median);
    r.verdict(
        "10 000 files: unchanged rescan < 100 ms",
        v.map_or("n/a".into(), |x| format!("{:.1} ms", x * 1000.0)),
        v.map(|x| x < 0.1),
    );
    let v = r.get("s2.bytes_per_cert.certinel").map(|s| s.median);
    r.verdict(
        "memory per tracked certificate < 2 KiB",
        v.map_or("n/a".into(), |x| format!("{x:.0} bytes")),
        v.map(|x| x < 2048.0),
    );
    let v = r.get("s3.p99_ms.certinel").map(|s| s.median);
    let floor = r.get("s3.p99_ms.floor").map(|s| s.median);
    r.verdict(
        "/metrics at 10 000 certificates: p99 < 50 ms with 8 concurrent scrapers",
        v.map_or("n/a".into(), |x| match floor {
            Some(f) => format!("{x:.1} ms (floor {f:.1} ms)"),
            None => format!("{x:.1} ms"),
        }),
        v.map(|x| x < 50.0),
    );
    let change = |r: &Report, base: &str| match (
        r.get("s4.blackhole.p99_ms.certinel"),
        r.get(&format!("s4.{base}.p99_ms.certinel")),
    ) {
        (Some(a), Some(b)) => Some(a.median / b.median - 1.0),
        _ => None,
    };
    let v = change(&r, "refused");
    // The control has the same series but not the same bytes (durations
    // and reasons differ), and a scrape's time follows its size: compare
    // latency per byte, and show both.
    let bytes = match (
        r.get("s4.blackhole.size_bytes.certinel"),
        r.get("s4.refused.size_bytes.certinel"),
    ) {
        (Some(a), Some(b)) if b.median > 0.0 => Some(a.median / b.median),
        _ => None,
    };
    let per_byte = v.zip(bytes).map(|(x, b)| (1.0 + x) / b - 1.0);
    r.verdict(
        "stall: black holes raise scrape p99 per byte served by < 10 % (vs as many refused targets: same series, no stall)",
        match (v, bytes, per_byte) {
            (Some(x), Some(b), Some(p)) => format!(
                "{:+.1} % per byte ({:+.1} % raw; the exposition is {:+.1} % larger)",
                p * 100.0,
                x * 100.0,
                (b - 1.0) * 100.0
            ),
            _ => "n/a".into(),
        },
        // Only a slowdown is a stall; black holes publish less often than
        // refused targets, so scrapes may well get faster.
        per_byte.map(|x| x < 0.10),
    );
    let v = change(&r, "good");
    let sizes = match (
        r.get("s4.blackhole.size_bytes.certinel"),
        r.get("s4.good.size_bytes.certinel"),
    ) {
        (Some(a), Some(b)) => format!("; the exposition is {:.1} × larger", a.median / b.median),
        _ => String::new(),
    };
    r.info(
        "stall: scrape p99 vs good targets only (informative: the failing targets add series)",
        v.map_or("n/a".into(), |x| format!("{:+.1} %{sizes}", x * 100.0)),
    );
    let limit: f64 = m("stall_late_after").parse().unwrap_or(f64::NAN);
    let v = r.get("s4.blackhole.max_age.certinel").map(|s| s.max);
    r.verdict(
        &format!(
            "stall: black holes never delay a good target past its interval (max age ≤ {limit:.1} s = interval + 10 % jitter + 1 s sampling)"
        ),
        v.map_or("n/a".into(), |x| format!("worst {x:.1} s")),
        v.map(|x| x <= limit),
    );

    let issue6 = std::mem::take(&mut r.verdicts);
    let mut head = String::new();
    for (title, verdicts) in [
        ("## Targets (issue #16)", &issue16),
        ("## Targets (issue #6)", &issue6),
    ] {
        let _ = writeln!(
            head,
            "{title}\n\n| target | measured | verdict |\n|---|---|---|"
        );
        for (t, m, p, _) in verdicts {
            if p == "info" {
                let _ = writeln!(head, "| {t} | {m} | info |");
            } else {
                let _ = writeln!(head, "| {t} | {m} | **{p}** |");
            }
        }
        head.push('\n');
    }
    head.push_str(
        "Issue #16 replaced issue #6's \"CPU per probe ≤ 0.5 × blackbox_exporter's\" with the \
         0.15 × above.\n",
    );
    if mode == "smoke" {
        head.push_str("\n(smoke mode: verdicts are informative only)\n");
    }
    head.push('\n');
    // Targets right after the machine facts.
    let split = r.out.find("## 1.").unwrap_or(r.out.len());
    r.out.insert_str(split, &head);

    if let Some(notes) = notes {
        if let Ok(text) = std::fs::read_to_string(notes) {
            r.out.push_str(&text);
            if !text.ends_with('\n') {
                r.out.push('\n');
            }
        }
    }
    r.out.push_str("\n## Raw samples\n\n```\n");
    for (k, v) in &r.data {
        let values: Vec<String> = v.iter().map(|x| fmt_num(*x)).collect();
        let _ = writeln!(r.out, "{k}: {}", values.join(" "));
    }
    r.out.push_str("```\n");
    std::fs::write(out, &r.out)?;
    eprintln!("bench_tool: wrote {}", out.display());
    Ok(())
}

// ---------------------------------------------------------------------------
// report: scenario 5

/// The sizes a `scale_*_sizes` meta value lists.
fn sizes(list: &str) -> Vec<u64> {
    list.split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// `100000` → `100 000`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// One figure of the growth tables: its key (`s5.f.cold_s`), its label,
/// the factor from the recorded unit, and whether the SVG shows it.
type Figure = (&'static str, &'static str, f64, bool);

const FILE_FIGURES: [Figure; 13] = [
    ("s5.f.cold_s", "cold scan, ms", 1000.0, true),
    (
        "s5.f.unchanged_s",
        "rescan, nothing changed, ms",
        1000.0,
        true,
    ),
    (
        "s5.f.rss_kib",
        "RSS after the second pass, before any scrape, MiB",
        1.0 / 1024.0,
        true,
    ),
    (
        "s5.f.bytes_per_cert",
        "memory per certificate, bytes",
        1.0,
        true,
    ),
    ("s5.f.p50_ms", "/metrics p50, plain, ms", 1.0, false),
    ("s5.f.p99_ms", "/metrics p99, plain, ms", 1.0, true),
    ("s5.f.gz_p50_ms", "/metrics p50, gzip, ms", 1.0, false),
    ("s5.f.gz_p99_ms", "/metrics p99, gzip, ms", 1.0, true),
    (
        "s5.f.cpu_ms_per_scrape",
        "CPU per scrape, plain, ms",
        1.0,
        false,
    ),
    (
        "s5.f.gz_cpu_ms_per_scrape",
        "CPU per scrape, gzip, ms",
        1.0,
        true,
    ),
    (
        "s5.f.size_bytes",
        "exposition on the wire, plain, MiB",
        1.0 / 1048576.0,
        true,
    ),
    (
        "s5.f.gz_size_bytes",
        "exposition on the wire, gzip, MiB",
        1.0 / 1048576.0,
        false,
    ),
    (
        "s5.f.rss_after_kib",
        "RSS after the scrapes, MiB",
        1.0 / 1024.0,
        false,
    ),
];

const ENDPOINT_FIGURES: [Figure; 5] = [
    (
        "s5.e.round_s",
        "first round: spawn to the end of the last probe, s",
        1.0,
        true,
    ),
    (
        "s5.e.cpu_ms_per_probe",
        "CPU per probe in the first round, ms",
        1.0,
        true,
    ),
    (
        "s5.e.rss_kib",
        "RSS after the round, before any scrape, MiB",
        1.0 / 1024.0,
        true,
    ),
    ("s5.e.bytes_per_ep", "memory per endpoint, bytes", 1.0, true),
    (
        "s5.e.size_bytes",
        "exposition after the round, KiB",
        1.0 / 1024.0,
        false,
    ),
];

/// A growth table: a column per size, then how the figure grew from the
/// smallest size to the largest (`×R`, and the exponent `k` of `n^k`).
fn growth_table(r: &mut Report, what: &str, sizes: &[u64], figures: &[Figure]) {
    let mut t = format!(
        "| figure | {} | growth |\n|---|",
        sizes
            .iter()
            .map(|n| format!("{} {what}", thousands(*n)))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    t.push_str(&"---|".repeat(sizes.len() + 1));
    t.push('\n');
    for &(key, label, scale, _) in figures {
        let cells: Vec<String> = sizes
            .iter()
            .map(|n| r.cell(&format!("{key}.{n}.certinel"), scale))
            .collect();
        let first = sizes
            .first()
            .and_then(|n| r.get(&format!("{key}.{n}.certinel")));
        let last = sizes
            .last()
            .and_then(|n| r.get(&format!("{key}.{n}.certinel")));
        let growth = match (first, last, sizes.first(), sizes.last()) {
            (Some(a), Some(b), Some(&n0), Some(&n1))
                if a.median > 0.0 && b.median > 0.0 && n1 > n0 =>
            {
                let ratio = b.median / a.median;
                let k = ratio.ln() / (n1 as f64 / n0 as f64).ln();
                format!("×{} (∝ n^{k:.2})", fmt_num(ratio))
            }
            _ => "n/a".to_owned(),
        };
        let _ = writeln!(t, "| {label} | {} | {growth} |", cells.join(" | "));
    }
    r.out.push_str(&t);
}

fn panel(
    r: &Report,
    title: &str,
    x_label: &str,
    sizes: &[u64],
    figures: &[Figure],
) -> certinel_bench::svg::Panel {
    certinel_bench::svg::Panel {
        title: title.to_owned(),
        x_label: x_label.to_owned(),
        sizes: sizes.iter().map(|&n| n as f64).collect(),
        series: figures
            .iter()
            .filter(|f| f.3)
            .map(|&(key, label, _, _)| certinel_bench::svg::Series {
                name: label.to_owned(),
                values: sizes
                    .iter()
                    .map(|n| r.get(&format!("{key}.{n}.certinel")).map(|s| s.median))
                    .collect(),
            })
            .collect(),
    }
}

fn scale_section(
    r: &mut Report,
    meta: &HashMap<String, String>,
    file_sizes: &[u64],
    ep_sizes: &[u64],
    out: &Path,
    svg: Option<&Path>,
) -> Result<(), BoxError> {
    let m = |key: &str| meta.get(key).map_or("?", String::as_str).to_owned();
    let list = |sizes: &[u64]| {
        sizes
            .iter()
            .map(|n| thousands(*n))
            .collect::<Vec<_>>()
            .join(" → ")
    };
    let _ = writeln!(
        r.out,
        "## 5. Scale: {} certificates in files, {} endpoints\n",
        list(file_sizes),
        list(ep_sizes)
    );
    let _ =
        writeln!(
        r.out,
        "**Files.** `bench_tool gen-certs` writes exactly N certificates, **one ECDSA P-256 leaf \
         per file**, 1000 files per directory (cached under `bench/.cache/certs-N`). One certinel \
         per size and run, one file source `paths: [\"…/tree/**/*.pem\"]`, `interval` = N / 5000 \
         s (at least {}): cold scan and unchanged rescan are the first two passes (logged \
         `certinel_source_duration_seconds`); RSS is read after the second pass, before any \
         scrape, and memory per certificate = (RSS − RSS over an empty directory, {} MiB) / N, \
         as in scenario 2. Then `/metrics` under `{}` with Prometheus' `Accept` header, without \
         and with `Accept-Encoding: gzip`; bytes are the response body.\n\n\
         **Endpoints.** One farm of {} TLS ports; for each size a fresh certinel probes the \
         first N of them with `interval: 1h`, `timeout: 5s`, `concurrency: {}`, so nothing runs \
         but the first round. First round = from the instant the script spawns certinel to the \
         end (timestamp + duration) of the last endpoint's first probe, read from one scrape \
         once `/-/ready` says every target was probed (every endpoint checked to have a \
         timestamp, no handshake error, and an `x509_cert_not_after` series). RSS is read at \
         `/-/ready`, before that scrape; memory per endpoint = (RSS − RSS with an empty \
         configuration, {} MiB) / N; CPU per probe = (CPU at `/-/ready` − an empty \
         configuration's CPU at its `/-/ready`) / N, with `/proc`'s 10 ms tick as resolution.\n",
        m("files_interval"),
        r.get("s5.f.rss_empty_kib.certinel").map_or("n/a".into(), |s| fmt_num(s.median / 1024.0)),
        m("scale_wrk_cmd"),
        ep_sizes.last().map_or("?".into(), |n| thousands(*n)),
        m("concurrency"),
        r.get("s5.e.rss_empty_kib.certinel").map_or("n/a".into(), |s| fmt_num(s.median / 1024.0)),
    );
    r.out.push_str("### Growth: files\n\n");
    growth_table(r, "certs", file_sizes, &FILE_FIGURES);
    r.out.push_str("\n### Growth: endpoints\n\n");
    growth_table(r, "endpoints", ep_sizes, &ENDPOINT_FIGURES);
    r.out.push_str(
        "\n*growth*: the median at the largest size over the median at the smallest; \
         `∝ n^k` is the same as an exponent (k = 1: grows in proportion to the size, k = 0: \
         does not grow).\n\n",
    );
    if let Some(svg) = svg {
        let figure = certinel_bench::svg::growth_chart(
            "certinel: growth with the workload, relative to the smallest size",
            &[
                panel(r, "files", "certificates", file_sizes, &FILE_FIGURES),
                panel(r, "endpoints", "endpoints", ep_sizes, &ENDPOINT_FIGURES),
            ],
        );
        std::fs::write(svg, figure)?;
        // Embedded by name when it sits beside the report, as bench/run puts it.
        let link = if svg.parent() == out.parent() {
            svg.file_name().map_or_else(
                || svg.display().to_string(),
                |f| f.to_string_lossy().into_owned(),
            )
        } else {
            svg.display().to_string()
        };
        let _ = writeln!(r.out, "![Growth of certinel's figures with the number of certificates and endpoints]({link})\n");
        eprintln!("bench_tool: wrote {}", svg.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_probes_end_at_timestamp_plus_duration() {
        let text = "\
certinel_tls_last_probe_timestamp_seconds{source_name=\"farm\",target=\"127.0.0.1:1\",address=\"127.0.0.1:1\"} 100.5
certinel_tls_handshake_duration_seconds{source_name=\"farm\",target=\"127.0.0.1:1\",address=\"127.0.0.1:1\"} 0.25
certinel_tls_last_probe_timestamp_seconds{source_name=\"farm\",target=\"127.0.0.1:2\",address=\"127.0.0.1:2\"} 101
certinel_tls_handshake_error{source_name=\"farm\",target=\"127.0.0.1:2\",address=\"127.0.0.1:2\",reason=\"timeout\"} 1
certinel_tls_last_probe_timestamp_seconds{source_name=\"farm\",target=\"127.0.0.1:3\",address=\"127.0.0.1:3\"} 102
";
        let wanted: HashSet<&str> = ["127.0.0.1:1", "127.0.0.1:2"].into_iter().collect();
        let probes = last_probes(text, &wanted);
        assert_eq!(probes.len(), 2);
        let one = &probes["127.0.0.1:1"];
        assert_eq!((one.started, one.done, one.failed), (100.5, 100.75, false));
        let two = &probes["127.0.0.1:2"];
        assert_eq!((two.started, two.done, two.failed), (101.0, 101.0, true));
    }

    #[test]
    fn sizes_and_thousands() {
        assert_eq!(sizes("1000 10000 100000"), vec![1000, 10_000, 100_000]);
        assert_eq!(thousands(100_000), "100 000");
        assert_eq!(thousands(999), "999");
    }
}
