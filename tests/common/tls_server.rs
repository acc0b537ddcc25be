//! Servers on loopback for certinel to probe: TLS servers with a chosen
//! certificate, raw TCP servers that speak whatever a test needs, black
//! holes that accept and never answer, and ports nothing listens on.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::pki::Minted;
use crate::common::wait::eventually;

pub fn certs_of(pem: &str) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

pub fn key_of(pem: &str) -> rustls::pki_types::PrivateKeyDer<'static> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::PrivateKeyDer::from_pem_slice(pem.as_bytes()).unwrap()
}

/// The crypto provider certinel uses, for the tests' own TLS ends.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Options for [`tls_server`].
#[derive(Default)]
pub struct ServerOptions {
    /// Extra chain certificates sent after the leaf.
    pub chain: Vec<String>,
    /// Require client certificates signed by this CA.
    pub client_ca: Option<String>,
    /// Only this version (`Some(12)` or `Some(13)`).
    pub only_version: Option<u8>,
    /// An OCSP response to staple, as is (empty: none).
    pub ocsp: Vec<u8>,
}

pub fn server_config(leaf: &Minted, opts: &ServerOptions) -> Arc<rustls::ServerConfig> {
    let versions: &[&'static rustls::SupportedProtocolVersion] = match opts.only_version {
        Some(12) => &[&rustls::version::TLS12],
        Some(13) => &[&rustls::version::TLS13],
        _ => rustls::DEFAULT_VERSIONS,
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap();
    let builder = match &opts.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs_of(ca) {
                roots.add(c).unwrap();
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut chain = certs_of(&leaf.cert_pem);
    for c in &opts.chain {
        chain.extend(certs_of(c));
    }
    Arc::new(
        builder
            .with_single_cert_with_ocsp(chain, key_of(&leaf.key_pem), opts.ocsp.clone())
            .unwrap(),
    )
}

/// A TLS server on 127.0.0.1:0 that completes handshakes, says hello and
/// closes. Runs on its own thread with its own runtime, so it serves
/// blocking tests and async tests alike. Stops when the handle drops.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves `config` on `addr` (use "127.0.0.1:0" for a fresh port).
pub fn tls_server_on(addr: &str, config: Arc<rustls::ServerConfig>) -> TestServer {
    let listener = std::net::TcpListener::bind(addr).unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            loop {
                tokio::select! {
                    _ = &mut stop_rx => return,
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let acceptor = acceptor.clone();
                        tokio::spawn(async move {
                            use tokio::io::{AsyncReadExt, AsyncWriteExt};
                            if let Ok(Ok(mut tls)) = tokio::time::timeout(
                                Duration::from_secs(10),
                                acceptor.accept(stream),
                            )
                            .await
                            {
                                let _ = tls.write_all(b"hello\n").await;
                                let mut buf = [0u8; 64];
                                let _ = tokio::time::timeout(
                                    Duration::from_secs(5),
                                    tls.read(&mut buf),
                                )
                                .await;
                            }
                        });
                    }
                }
            }
        });
    });
    TestServer {
        addr,
        stop: Some(stop_tx),
        thread: Some(thread),
    }
}

/// A TLS server serving `leaf` on a fresh loopback port.
pub fn tls_server(leaf: &Minted, opts: &ServerOptions) -> TestServer {
    tls_server_on("127.0.0.1:0", server_config(leaf, opts))
}

/// A raw TCP server on 127.0.0.1:0: each connection is handed to `handle`
/// on its own thread.
pub fn raw_server(handle: impl Fn(TcpStream) + Send + Sync + 'static) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = Arc::new(handle);
    std::thread::spawn(move || {
        for stream in listener.incoming().take(1000) {
            let Ok(stream) = stream else { continue };
            let handle = handle.clone();
            std::thread::spawn(move || handle(stream));
        }
    });
    addr
}

/// Runs a blocking rustls server handshake serving `leaf` on `stream`
/// (fresh, or already upgraded by a STARTTLS exchange).
pub fn finish_tls(mut stream: TcpStream, leaf: &Minted) {
    let config = server_config(leaf, &ServerOptions::default());
    let mut conn = rustls::ServerConnection::new(config).unwrap();
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    while conn.is_handshaking() {
        if conn.complete_io(&mut stream).is_err() {
            return;
        }
    }
    let _ = conn.complete_io(&mut stream);
}

/// A TCP server on loopback that accepts, reads whatever it is sent and
/// never answers: a TLS probe against it can only time out. Returns the
/// address and the number of connections accepted so far.
pub fn black_hole() -> (SocketAddr, Arc<AtomicUsize>) {
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let addr = raw_server(move |mut stream| {
        count.fetch_add(1, Ordering::SeqCst);
        let mut buf = [0u8; 4096];
        // Returns when certinel gives up and closes the connection.
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
        }
    });
    (addr, accepted)
}

/// Waits until `counter` reaches `n` (the probes are in flight).
pub fn wait_count(counter: &AtomicUsize, n: usize, limit: Duration) {
    eventually(
        limit,
        || (counter.load(Ordering::SeqCst) >= n).then_some(()),
        || format!("only {} of {n} connections", counter.load(Ordering::SeqCst)),
    )
}

/// A loopback port with nothing listening (until someone takes it: start
/// what needs it at once, or retry).
pub fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr
}
