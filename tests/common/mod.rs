//! Shared test helpers: certificates minted per test with chosen validity
//! (so fixtures never rot), TLS servers on 127.0.0.1:0, the real certinel
//! binary on loopback, and a small exposition parser to assert on samples.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

pub const DAY: i64 = 86_400;

/// Unix seconds now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn to_offset(unix: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(unix).unwrap()
}

/// A certificate with its key, PEM and DER.
#[derive(Clone)]
pub struct Minted {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
    pub not_after: i64,
    pub not_before: i64,
}

/// What to put in a leaf certificate.
pub struct Leaf<'a> {
    pub cn: &'a str,
    pub sans: &'a [&'a str],
    pub not_before: i64,
    pub not_after: i64,
    pub client_auth_only: bool,
}

impl<'a> Leaf<'a> {
    /// A server certificate for `localhost` and 127.0.0.1 valid ±`days`.
    pub fn server(cn: &'a str, days_left: i64) -> Leaf<'a> {
        Leaf {
            cn,
            sans: &["localhost", "127.0.0.1"],
            not_before: now() - DAY,
            not_after: now() + days_left * DAY,
            client_auth_only: false,
        }
    }
}

/// A test certificate authority.
pub struct Ca {
    pub cert: Minted,
    key: KeyPair,
    params: CertificateParams,
}

impl Ca {
    pub fn new(cn: &str) -> Ca {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "certinel tests");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let nb = now() - 10 * DAY;
        let na = now() + 3650 * DAY;
        params.not_before = to_offset(nb);
        params.not_after = to_offset(na);
        let key = KeyPair::generate().unwrap();
        let cert = params.clone().self_signed(&key).unwrap();
        Ca {
            cert: Minted {
                cert_pem: cert.pem(),
                key_pem: key.serialize_pem(),
                der: cert.der().to_vec(),
                not_after: na,
                not_before: nb,
            },
            key,
            params,
        }
    }

    /// Issues a leaf signed by this CA.
    pub fn issue(&self, leaf: &Leaf<'_>) -> Minted {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, leaf.cn);
        params.subject_alt_names = leaf
            .sans
            .iter()
            .map(|s| match s.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName((*s).try_into().unwrap()),
            })
            .collect();
        params.not_before = to_offset(leaf.not_before);
        params.not_after = to_offset(leaf.not_after);
        params.extended_key_usages = if leaf.client_auth_only {
            vec![ExtendedKeyUsagePurpose::ClientAuth]
        } else {
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ]
        };
        let key = KeyPair::generate().unwrap();
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        Minted {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
            not_after: leaf.not_after,
            not_before: leaf.not_before,
        }
    }
}

/// A self-signed certificate (no CA).
pub fn self_signed(cn: &str, not_after: i64) -> Minted {
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    let nb = now() - DAY;
    params.not_before = to_offset(nb);
    params.not_after = to_offset(not_after);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Minted {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        der: cert.der().to_vec(),
        not_after,
        not_before: nb,
    }
}

// ---------------------------------------------------------------------------
// TLS servers on loopback.

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

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
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
            .with_single_cert(chain, key_of(&leaf.key_pem))
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
pub fn raw_server(handle: impl Fn(std::net::TcpStream) + Send + Sync + 'static) -> SocketAddr {
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

/// A loopback port with nothing listening.
pub fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr
}

// ---------------------------------------------------------------------------
// The real binary.

pub fn write(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, contents).unwrap();
    path
}

/// certinel running on 127.0.0.1:<free port>, killed on drop.
pub struct Daemon {
    pub addr: SocketAddr,
    child: Child,
    pub logs: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Daemon {
    /// Writes `config` to `dir/certinel.yaml` and starts the binary on it.
    pub fn start(dir: &Path, config: &str) -> Daemon {
        Daemon::start_with_args(dir, config, &[])
    }

    pub fn start_with_args(dir: &Path, config: &str, extra: &[&str]) -> Daemon {
        let config_path = write(dir, "certinel.yaml", config);
        let mut child = Command::new(env!("CARGO_BIN_EXE_certinel"))
            .arg("--config.file")
            .arg(&config_path)
            .args([
                "--web.listen-address",
                "127.0.0.1:0",
                "--log.level",
                "debug",
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start certinel");
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("msg=listening") {
                    let _ = tx.send(line.clone());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let line = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!("certinel did not start; logs: {:?}", logs.lock().unwrap());
            }
        };
        let addr = line
            .split_whitespace()
            .find_map(|f| f.strip_prefix("address="))
            .and_then(|a| a.parse().ok())
            .expect("listening line has an address");
        Daemon { addr, child, logs }
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.addr, path)
    }

    pub fn metrics(&self) -> Exposition {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200, "{body}");
        Exposition::parse(&body)
    }

    /// Polls `/metrics` until `pred` holds (at most `timeout`).
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&Exposition) -> bool) -> Exposition {
        let deadline = Instant::now() + timeout;
        loop {
            let m = self.metrics();
            if pred(&m) {
                return m;
            }
            if Instant::now() > deadline {
                panic!(
                    "condition not met within {timeout:?}; last exposition:\n{}\nlogs:\n{}",
                    m.text,
                    self.logs.lock().unwrap().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `/-/ready` answers 200.
    pub fn wait_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.get("/-/ready").0 != 200 {
            assert!(Instant::now() < deadline, "not ready within {timeout:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (e.g. "HUP") to the daemon.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM and waits for the exit status (at most 10 s).
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "certinel ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Minimal HTTP/1.1 GET over a fresh connection.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http_request(addr, "GET", path)
}

/// Minimal HTTP/1.1 request without a body over a fresh connection.
pub fn http_request(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let (status, _, body) = http_exchange(addr, method, path, &[]);
    (status, body)
}

/// An HTTP/1.1 request with extra request headers; returns the status, the
/// response headers (lower-cased names) and the de-chunked body.
pub fn http_exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, std::collections::HashMap<String, String>, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: std::collections::HashMap<String, String> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let body = if headers
        .get("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, headers, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

// ---------------------------------------------------------------------------
// Exposition parsing.

/// One sample line.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed `/metrics` body.
#[derive(Debug, Clone)]
pub struct Exposition {
    pub text: String,
    pub samples: Vec<Sample>,
}

impl Exposition {
    pub fn parse(text: &str) -> Exposition {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(parse_sample)
            .collect();
        Exposition {
            text: text.to_owned(),
            samples,
        }
    }

    /// Samples of `name` whose labels include every pair in `labels`.
    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The single sample matching, or panic with the exposition.
    pub fn one(&self, name: &str, labels: &[(&str, &str)]) -> &Sample {
        let found = self.find(name, labels);
        assert_eq!(
            found.len(),
            1,
            "expected exactly one {name}{labels:?}, got {}:\n{}",
            found.len(),
            self.text
        );
        found[0]
    }

    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.one(name, labels).value
    }

    pub fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        !self.find(name, labels).is_empty()
    }
}

fn parse_sample(line: &str) -> Sample {
    let (name_labels, value) = line.rsplit_once(' ').unwrap();
    let (name, labels) = match name_labels.split_once('{') {
        Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}').unwrap())),
        None => (name_labels, BTreeMap::new()),
    };
    Sample {
        name: name.to_owned(),
        labels,
        value: value.parse().unwrap(),
    }
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        assert_eq!(chars.next(), Some('"'));
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => break,
                },
                '"' => break,
                c => value.push(c),
            }
        }
        out.insert(key.trim_start_matches(',').to_owned(), value);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    out
}
