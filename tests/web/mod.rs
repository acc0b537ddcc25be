//! certinel's own listener (`--web.config.file`), by area. The server is
//! `certinel::http::serve` in-process on a loopback port; the clients are
//! real rustls clients, a real Prometheus, and the real binary.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;
use base64::Engine as _;
use certinel::http::{self as web, WebConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

/// TLS, mutual TLS, basic auth, and the web config's load errors.
mod auth;
/// A real Prometheus scraping over mTLS, and the binary with a health port.
mod end_to_end;
/// certinel's own certificate and credentials rotated without a restart;
/// bad clients, prompt shutdown, the health port.
mod rotation;

/// Longer than the web config's once-a-second `stat`.
const ROTATION_WAIT: Duration = Duration::from_millis(1500);

fn app() -> Router {
    Router::new().route(
        "/metrics",
        get(|| async {
            (
                [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
                "# TYPE web_test_metric gauge\nweb_test_metric 1\n",
            )
        }),
    )
}

// ---------------------------------------------------------------------------
// Fixtures.

/// A server CA and leaf, a client CA and a client certificate, on disk.
struct Pki {
    dir: tempfile::TempDir,
    ca: Ca,
    server: Minted,
    client_ca: Ca,
    client: Minted,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("certinel web test server CA");
        let server = ca.issue(&Leaf::server("certinel-one", 90));
        let client_ca = Ca::new("certinel web test client CA");
        let client = client_ca.issue(&client_leaf("prometheus"));
        write(dir.path(), "tls/server.crt", &server.cert_pem);
        write(dir.path(), "tls/server.key", &server.key_pem);
        write(dir.path(), "tls/client-ca.crt", &client_ca.cert.cert_pem);
        write(dir.path(), "ca.crt", &ca.cert.cert_pem);
        write(dir.path(), "client.crt", &client.cert_pem);
        write(dir.path(), "client.key", &client.key_pem);
        Pki {
            dir,
            ca,
            server,
            client_ca,
            client,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `web.yml` (relative paths: resolved against its directory).
    fn web_config(&self, yaml: &str) -> WebConfig {
        let path = write(self.dir.path(), "web.yml", yaml);
        WebConfig::load(&path).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
    }

    /// Overwrites the serving certificate and key in place.
    fn rotate_to(&self, leaf: &Minted) {
        std::fs::write(self.path("tls/server.crt"), &leaf.cert_pem).unwrap();
        std::fs::write(self.path("tls/server.key"), &leaf.key_pem).unwrap();
    }
}

fn client_leaf(cn: &str) -> Leaf<'_> {
    Leaf {
        cn,
        sans: &["prometheus.test"],
        not_before: now() - DAY,
        not_after: now() + 30 * DAY,
        client_auth_only: true,
    }
}

const TLS_ONLY: &str =
    "tls_server_config:\n  cert_file: tls/server.crt\n  key_file: tls/server.key\n";

fn mtls_config() -> String {
    format!(
        "{TLS_ONLY}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: tls/client-ca.crt\n"
    )
}

fn users(user: &str, password: &str) -> String {
    let hash = bcrypt::hash(password, 4).unwrap();
    format!("basic_auth_users:\n  {user}: '{hash}'\n")
}

/// `web::serve` on a loopback port, stopped (and awaited) by [`Server::stop`]
/// or, less politely, on drop.
struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Server {
    async fn start(web: Option<WebConfig>) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let task = tokio::spawn(web::serve(
            listener,
            app(),
            web.map(Arc::new),
            web::ConnectionLimit::default(),
            shutdown,
        ));
        Server {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Triggers shutdown; returns how long `serve` took to return.
    async fn stop(mut self) -> Duration {
        let started = Instant::now();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take().unwrap();
        tokio::time::timeout(Duration::from_secs(15), task)
            .await
            .expect("serve returns after shutdown")
            .unwrap()
            .unwrap();
        started.elapsed()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

// ---------------------------------------------------------------------------
// A real TLS client.

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
    /// The leaf the server presented.
    peer: Vec<u8>,
}

impl Reply {
    fn new(r: Response, peer: Vec<u8>) -> Reply {
        Reply {
            status: r.status,
            headers: r.headers,
            body: r.body,
            peer,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

#[derive(Clone, Copy)]
struct Client<'a> {
    ca: &'a Minted,
    cert: Option<&'a Minted>,
    auth: Option<(&'a str, &'a str)>,
}

impl<'a> Client<'a> {
    fn trusting(ca: &'a Minted) -> Client<'a> {
        Client {
            ca,
            cert: None,
            auth: None,
        }
    }

    fn with_cert(self, cert: &'a Minted) -> Client<'a> {
        Client {
            cert: Some(cert),
            ..self
        }
    }

    fn with_auth(self, user: &'a str, password: &'a str) -> Client<'a> {
        Client {
            auth: Some((user, password)),
            ..self
        }
    }

    fn config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for c in certs_of(&self.ca.cert_pem) {
            roots.add(c).unwrap();
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        Arc::new(match self.cert {
            Some(c) => builder
                .with_client_auth_cert(certs_of(&c.cert_pem), key_of(&c.key_pem))
                .unwrap(),
            None => builder.with_no_client_auth(),
        })
    }

    /// GET `path` over a fresh TLS connection; any failure is an `Err`.
    async fn get(&self, addr: SocketAddr, path: &str) -> Result<Reply, String> {
        let work = async {
            let tcp = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let connector = tokio_rustls::TlsConnector::from(self.config());
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let mut tls = connector
                .connect(name, tcp)
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            let peer = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.to_vec())
                .unwrap_or_default();
            tls.write_all(request(path, self.auth).as_bytes())
                .await
                .map_err(|e| format!("write: {e}"))?;
            let mut raw = Vec::new();
            tls.read_to_end(&mut raw)
                .await
                .map_err(|e| format!("read: {e}"))?;
            parse_reply(&raw, peer)
        };
        tokio::time::timeout(Duration::from_secs(10), work)
            .await
            .map_err(|_| "timed out".to_owned())?
    }
}

/// Calls `f` with the request headers for basic auth as `auth`, if any.
fn auth_headers<T>(auth: Option<(&str, &str)>, f: impl FnOnce(&[(&str, &str)]) -> T) -> T {
    let token = auth.map(|(user, password)| {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {token}")
    });
    let headers: Vec<(&str, &str)> = token
        .iter()
        .map(|t| ("Authorization", t.as_str()))
        .collect();
    f(&headers)
}

fn request(path: &str, auth: Option<(&str, &str)>) -> String {
    auth_headers(auth, |h| request_text("GET", path, "localhost", h))
}

fn parse_reply(raw: &[u8], peer: Vec<u8>) -> Result<Reply, String> {
    parse_response(raw).map(|r| Reply::new(r, peer))
}

/// Plain HTTP (no TLS) GET with optional basic auth, by the tests' HTTP
/// client (blocking: the server runs on the runtime's workers).
fn plain_get(addr: SocketAddr, path: &str, auth: Option<(&str, &str)>) -> Result<Reply, String> {
    auth_headers(auth, |h| try_exchange(addr, "GET", path, h)).map(|r| Reply::new(r, Vec::new()))
}

fn assert_refused(result: Result<Reply, String>) {
    if let Ok(reply) = result {
        panic!("expected the connection to be refused, got {reply:?}");
    }
}
