//! TLS server farm for `bench/run`, on loopback only.
//!
//! Serves `--good` TLS endpoints on as many 127.0.0.1 ports (rustls, one
//! rcgen leaf per port, chain leaf + intermediate, root CA in `ca.pem`),
//! `--blackhole` listeners that accept and never answer, and reserves
//! `--refused` ports on which nothing listens. Writes the port lists into
//! `--dir` and counts what it sees; `GET /` on the stats port returns the
//! counters, so both exporters are measured by the same independent count
//! of completed handshakes. Stops by itself after `--max-seconds`.
//!
//! ```text
//! bench_tls_farm --dir /tmp/farm --good 1000 --blackhole 1000 --refused 1000
//! cat /tmp/farm/good.txt; curl http://127.0.0.1:$(cat /tmp/farm/stats.port)/
//! ```

// A command-line tool: its output is the point.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use certinel_bench::BoxError;

/// How long a black-hole connection is held at most.
const BLACKHOLE_HOLD: Duration = Duration::from_secs(600);
/// How long a good endpoint waits for a client to finish its handshake.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);
/// Descriptors beyond one per listener: the runtime, the stats port, and
/// the connections of a probing exporter (64 in flight, some closing).
const SPARE_FDS: usize = 512;

#[derive(Parser)]
#[command(about = "Loopback TLS server farm for bench/run")]
struct Args {
    /// Directory for ca.pem, good.txt, blackhole.txt, refused.txt, stats.port, ready.
    #[arg(long)]
    dir: PathBuf,
    /// TLS endpoints (one port each).
    #[arg(long, default_value_t = 1000)]
    good: usize,
    /// Listeners that accept and never answer.
    #[arg(long, default_value_t = 0)]
    blackhole: usize,
    /// Ports with nothing listening (connection refused).
    #[arg(long, default_value_t = 0)]
    refused: usize,
    /// Exit after this many seconds, whatever happens.
    #[arg(long, default_value_t = 3600)]
    max_seconds: u64,
}

#[derive(Default)]
struct Stats {
    handshakes_ok: AtomicU64,
    handshakes_failed: AtomicU64,
    blackhole_accepted: AtomicU64,
    blackhole_open: AtomicI64,
}

impl Stats {
    fn render(&self) -> String {
        format!(
            "handshakes_ok {}\nhandshakes_failed {}\nblackhole_accepted {}\nblackhole_open {}\n",
            self.handshakes_ok.load(Ordering::Relaxed),
            self.handshakes_failed.load(Ordering::Relaxed),
            self.blackhole_accepted.load(Ordering::Relaxed),
            self.blackhole_open.load(Ordering::Relaxed),
        )
    }
}

fn main() -> std::process::ExitCode {
    match run(Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_tls_farm: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), BoxError> {
    check_nofile(args.good + args.blackhole + SPARE_FDS)?;
    std::fs::create_dir_all(&args.dir)?;
    let _ = std::fs::remove_file(args.dir.join("ready"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(args))
}

/// Fails with a clear message when the soft `RLIMIT_NOFILE` is below
/// `needed`, rather than dying halfway through binding 10 000 ports.
/// Raising it would take `setrlimit` (unsafe code, forbidden here):
/// `bench/run` raises its own soft limit to the hard one before it starts
/// the farm. Without `/proc`, the bind errors say it instead.
fn check_nofile(needed: usize) -> Result<(), BoxError> {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else {
        return Ok(());
    };
    let Some(line) = limits.lines().find(|l| l.starts_with("Max open files")) else {
        return Ok(());
    };
    let mut fields = line["Max open files".len()..].split_whitespace();
    let soft = fields.next().unwrap_or("unlimited");
    let hard = fields.next().unwrap_or("unlimited");
    match soft.parse::<usize>() {
        Ok(soft) if soft < needed => Err(format!(
            "needs about {needed} file descriptors (one per listener + {SPARE_FDS}), \
             but the soft limit is {soft} (hard {hard}): raise it first (`ulimit -n`, and the \
             hard limit too if it is below {needed}), or ask for fewer ports"
        )
        .into()),
        _ => Ok(()),
    }
}

fn bind_loopback() -> Result<std::net::TcpListener, BoxError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    l.set_nonblocking(true)?;
    Ok(l)
}

fn write_ports(path: &Path, ports: &[u16]) -> Result<(), BoxError> {
    let mut text = String::new();
    for p in ports {
        text.push_str(&format!("{p}\n"));
    }
    std::fs::write(path, text)?;
    Ok(())
}

async fn serve(args: Args) -> Result<(), BoxError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let root = certinel_bench::root("certinel bench root", 1)?;
    let inter = certinel_bench::intermediate(&root, "certinel bench intermediate", 2)?;
    let inter_der = CertificateDer::from_pem_slice(inter.cert.cert_pem.as_bytes())?;
    let stats = Arc::new(Stats::default());

    let mut good_ports = Vec::with_capacity(args.good);
    for i in 0..args.good {
        let cn = format!("farm-{i}.bench.test");
        let leaf = certinel_bench::leaf(
            &inter,
            &cn,
            &["127.0.0.1", "localhost", &cn],
            1000 + i as u64,
            90,
        )?;
        let chain = vec![
            CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes())?,
            inter_der.clone(),
        ];
        let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes())?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        // Neither exporter resumes sessions; tickets would be wasted work.
        config.send_tls13_tickets = 0;
        let listener = bind_loopback()?;
        good_ports.push(listener.local_addr()?.port());
        let listener = TcpListener::from_std(listener)?;
        tokio::spawn(accept_tls(
            listener,
            tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            stats.clone(),
        ));
    }

    let mut blackhole_ports = Vec::with_capacity(args.blackhole);
    for _ in 0..args.blackhole {
        let listener = bind_loopback()?;
        blackhole_ports.push(listener.local_addr()?.port());
        tokio::spawn(accept_blackhole(
            TcpListener::from_std(listener)?,
            stats.clone(),
        ));
    }

    // Bind and close at once: the port is free, so connecting is refused.
    let mut refused_ports = Vec::with_capacity(args.refused);
    for _ in 0..args.refused {
        refused_ports.push(bind_loopback()?.local_addr()?.port());
    }

    let stats_listener = TcpListener::bind("127.0.0.1:0").await?;
    let stats_port = stats_listener.local_addr()?.port();
    tokio::spawn(serve_stats(stats_listener, stats.clone()));

    std::fs::write(args.dir.join("ca.pem"), &root.cert.cert_pem)?;
    write_ports(&args.dir.join("good.txt"), &good_ports)?;
    write_ports(&args.dir.join("blackhole.txt"), &blackhole_ports)?;
    write_ports(&args.dir.join("refused.txt"), &refused_ports)?;
    std::fs::write(args.dir.join("stats.port"), format!("{stats_port}\n"))?;
    std::fs::write(args.dir.join("ready"), "ready\n")?;
    eprintln!(
        "bench_tls_farm: {} TLS, {} black-hole, {} refused ports; stats on 127.0.0.1:{stats_port}; exiting after {}s",
        good_ports.len(),
        blackhole_ports.len(),
        refused_ports.len(),
        args.max_seconds
    );
    tokio::time::sleep(Duration::from_secs(args.max_seconds)).await;
    Ok(())
}

async fn accept_tls(listener: TcpListener, acceptor: tokio_rustls::TlsAcceptor, stats: Arc<Stats>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors, most likely: back off rather than spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let stats = stats.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_DEADLINE, acceptor.accept(stream)).await {
                Ok(Ok(mut tls)) => {
                    stats.handshakes_ok.fetch_add(1, Ordering::Relaxed);
                    let _ = tokio::time::timeout(Duration::from_secs(1), tls.shutdown()).await;
                }
                _ => {
                    stats.handshakes_failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
}

async fn accept_blackhole(listener: TcpListener, stats: Arc<Stats>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        stats.blackhole_accepted.fetch_add(1, Ordering::Relaxed);
        stats.blackhole_open.fetch_add(1, Ordering::Relaxed);
        let stats = stats.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(BLACKHOLE_HOLD, swallow(stream)).await;
            stats.blackhole_open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// Reads and discards until the peer goes away; never writes a byte.
async fn swallow(mut stream: TcpStream) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            return;
        }
    }
}

async fn serve_stats(listener: TcpListener, stats: Arc<Stats>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let stats = stats.clone();
        tokio::spawn(async move {
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            // The request line and headers; bounded in size and time.
            let read = async {
                while req.len() < 16 * 1024 && !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(2), read).await;
            let body = stats.render();
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}
