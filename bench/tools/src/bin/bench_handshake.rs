//! The floor of a TLS probe's CPU: bare rustls client handshakes, and
//! nothing else, for `bench/run`.
//!
//! Connects to the farm's ports (127.0.0.1 only) at a fixed rate with at
//! most `--concurrency` handshakes in flight, as certinel's scheduler
//! does, with the same client as certinel's probes (rustls, ring, TLS 1.3
//! and 1.2, no session resumption) on a two-worker tokio runtime. The
//! server's handshake signature is checked (the part of a probe that no
//! cache can skip: it signs a fresh transcript); the chain's signatures
//! are not, as a probe that has seen the chain before finds them already
//! checked. No certificate parsing, no chain diagnostics, no snapshot, no
//! metrics: `bench/run` measures this process's CPU per completed
//! handshake the way it measures the exporters', so certinel's figure
//! over this one is what certinel adds to the handshake itself.
//!
//! ```text
//! bench_handshake --ca farm/ca.pem --ports farm/good.txt --rate 200 --seconds 20
//! ```

// A command-line tool: its output is the point.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::TlsConnector;

use certinel_bench::BoxError;

/// A handshake that takes longer than this counts as failed.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(5);

#[derive(Parser)]
#[command(about = "Bare rustls client handshakes against the bench farm")]
struct Args {
    /// The farm's root CA (PEM).
    #[arg(long)]
    ca: PathBuf,
    /// The farm's good.txt: one port per line, on 127.0.0.1.
    #[arg(long)]
    ports: PathBuf,
    /// Handshakes started per second.
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// How long to run.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Most handshakes in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("bench_handshake: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_handshake: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), BoxError> {
    let ports: Vec<u16> = std::fs::read_to_string(&args.ports)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.trim().parse())
        .collect::<Result<_, _>>()?;
    if ports.is_empty() {
        return Err(format!("{}: no ports", args.ports.display()).into());
    }
    // The farm's CA must at least read: a wrong path fails here.
    if CertificateDer::pem_file_iter(&args.ca)?.count() == 0 {
        return Err(format!("{}: no certificate", args.ca.display()).into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(SignatureOnly(provider.signature_verification_algorithms));
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    // As certinel's probes: every handshake is a full one.
    config.resumption = Resumption::disabled();
    let connector = TlsConnector::from(Arc::new(config));
    let permits = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut tick = tokio::time::interval(Duration::from_secs(1) / args.rate.max(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let end = tokio::time::Instant::now() + Duration::from_secs(args.seconds);
    let mut next = 0usize;
    while tokio::time::Instant::now() < end {
        tick.tick().await;
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let port = ports[next % ports.len()];
        next = next.wrapping_add(1);
        let (connector, ok, failed) = (connector.clone(), ok.clone(), failed.clone());
        tokio::spawn(async move {
            let done = tokio::time::timeout(HANDSHAKE_DEADLINE, handshake(&connector, port)).await;
            let counter = if matches!(done, Ok(Ok(()))) {
                ok
            } else {
                failed
            };
            counter.fetch_add(1, Ordering::Relaxed);
            drop(permit);
        });
    }
    // Let the last ones finish (bounded by their deadline).
    let _ = tokio::time::timeout(
        HANDSHAKE_DEADLINE,
        permits.acquire_many(u32::try_from(args.concurrency.max(1)).unwrap_or(u32::MAX)),
    )
    .await;
    println!(
        "handshakes_ok={} handshakes_failed={}",
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
    Ok(())
}

async fn handshake(connector: &TlsConnector, port: u16) -> Result<(), BoxError> {
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let stream = TcpStream::connect(SocketAddr::new(ip, port)).await?;
    stream.set_nodelay(true)?;
    let tls = connector
        .connect(ServerName::IpAddress(ip.into()), stream)
        .await?;
    drop(tls);
    Ok(())
}

/// Checks the handshake signature against the served leaf, and nothing of
/// the chain (see the module documentation).
#[derive(Debug)]
struct SignatureOnly(rustls::crypto::WebPkiSupportedAlgorithms);

impl rustls::client::danger::ServerCertVerifier for SignatureOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_schemes()
    }
}
