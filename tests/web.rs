//! certinel's own listener (`--web.config.file`): TLS, mutual TLS, basic
//! auth, certificate rotation without restart, and the health port. The
//! server is `certinel::http::serve` in-process on a loopback port; the
//! clients are real rustls clients and a real Prometheus.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;
use base64::Engine as _;
use certinel::http::{self as web, WebConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{certs_of, key_of, write, Ca, Leaf, Minted, DAY};

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
        not_before: crate::common::now() - DAY,
        not_after: crate::common::now() + 30 * DAY,
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
    head: String,
    body: String,
    /// The leaf the server presented.
    peer: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
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
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
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

fn request(path: &str, auth: Option<(&str, &str)>) -> String {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if let Some((user, password)) = auth {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        req.push_str(&format!("Authorization: Basic {token}\r\n"));
    }
    req.push_str("\r\n");
    req
}

fn parse_reply(raw: &[u8], peer: Vec<u8>) -> Result<Reply, String> {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP response: {text:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status: {head:?}"))?;
    Ok(Reply {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
        peer,
    })
}

/// Plain HTTP (no TLS) GET with optional basic auth.
async fn plain_get(
    addr: SocketAddr,
    path: &str,
    auth: Option<(&str, &str)>,
) -> Result<Reply, String> {
    let work = async {
        let mut tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        tcp.write_all(request(path, auth).as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        tcp.read_to_end(&mut raw).await.map_err(|e| e.to_string())?;
        parse_reply(&raw, Vec::new())
    };
    tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .map_err(|_| "timed out".to_owned())?
}

fn assert_refused(result: Result<Reply, String>) {
    if let Ok(reply) = result {
        panic!("expected the connection to be refused, got {reply:?}");
    }
}

// ---------------------------------------------------------------------------
// TLS, mTLS, basic auth.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_metrics_to_a_client_trusting_the_ca() {
    let pki = Pki::new();
    let server = Server::start(Some(pki.web_config(TLS_ONLY))).await;

    let reply = Client::trusting(&pki.ca.cert)
        .get(server.addr, "/metrics")
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply.body.contains("web_test_metric 1"), "{reply:?}");
    assert_eq!(reply.peer, pki.server.der);

    // Plain HTTP to the TLS port gets no HTTP answer.
    assert_refused(plain_get(server.addr, "/metrics", None).await);
    // A client that trusts another CA does not complete the handshake.
    let other = Ca::new("some other CA");
    assert_refused(
        Client::trusting(&other.cert)
            .get(server.addr, "/metrics")
            .await,
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_refuses_clients_without_a_certificate_from_the_client_ca() {
    let pki = Pki::new();
    let server = Server::start(Some(pki.web_config(&mtls_config()))).await;
    let client = Client::trusting(&pki.ca.cert);

    assert_refused(client.get(server.addr, "/metrics").await);
    // A certificate from another CA (here: the server's) is refused too.
    let stranger = pki.ca.issue(&client_leaf("stranger"));
    assert_refused(
        client
            .with_cert(&stranger)
            .get(server.addr, "/metrics")
            .await,
    );

    let reply = client
        .with_cert(&pki.client)
        .get(server.addr, "/metrics")
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply.body.contains("web_test_metric 1"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_client_cert_if_given_lets_anonymous_clients_in_but_checks_given_certs() {
    let pki = Pki::new();
    let yaml = format!(
        "{TLS_ONLY}  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: tls/client-ca.crt\n"
    );
    let server = Server::start(Some(pki.web_config(&yaml))).await;
    let client = Client::trusting(&pki.ca.cert);
    assert_eq!(
        client.get(server.addr, "/metrics").await.unwrap().status,
        200
    );
    let with_cert = client.with_cert(&pki.client);
    assert_eq!(
        with_cert.get(server.addr, "/metrics").await.unwrap().status,
        200
    );
    let stranger = pki.ca.issue(&client_leaf("stranger"));
    assert_refused(
        client
            .with_cert(&stranger)
            .get(server.addr, "/metrics")
            .await,
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_guards_every_route() {
    let pki = Pki::new();
    let yaml = format!(
        "{TLS_ONLY}{}http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n",
        users("prometheus", "s3cret")
    );
    let server = Server::start(Some(pki.web_config(&yaml))).await;
    let client = Client::trusting(&pki.ca.cert);

    for (client, path) in [
        (client, "/metrics"),
        (client, "/nonexistent"),
        (client.with_auth("prometheus", "wrong"), "/metrics"),
        (client.with_auth("nobody", "s3cret"), "/metrics"),
        (client.with_auth("prometheus", ""), "/metrics"),
    ] {
        let reply = client.get(server.addr, path).await.unwrap();
        assert_eq!(reply.status, 401, "{path}: {reply:?}");
        assert_eq!(
            reply.header("www-authenticate"),
            Some(r#"Basic realm="certinel""#),
            "{reply:?}"
        );
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
        assert!(!reply.body.contains("web_test_metric"));
    }

    // Twice: the second comes from the cache of verified credentials.
    for _ in 0..2 {
        let reply = client
            .with_auth("prometheus", "s3cret")
            .get(server.addr, "/metrics")
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{reply:?}");
        assert!(reply.body.contains("web_test_metric 1"));
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_works_without_tls_and_follows_the_web_config_file() {
    let pki = Pki::new();
    let server = Server::start(Some(pki.web_config(&users("alice", "one")))).await;
    assert_eq!(
        plain_get(server.addr, "/metrics", None)
            .await
            .unwrap()
            .status,
        401
    );
    let ok = plain_get(server.addr, "/metrics", Some(("alice", "one"))).await;
    assert_eq!(ok.unwrap().status, 200);

    // A new password in the web config file takes effect without a restart.
    write(pki.dir.path(), "web.yml", users("alice", "two"));
    tokio::time::sleep(ROTATION_WAIT).await;
    let old = plain_get(server.addr, "/metrics", Some(("alice", "one"))).await;
    assert_eq!(old.unwrap().status, 401);
    let new = plain_get(server.addr, "/metrics", Some(("alice", "two"))).await;
    assert_eq!(new.unwrap().status, 200);

    // A broken web config file keeps the last good one.
    write(pki.dir.path(), "web.yml", "basic_auth_users: [oops\n");
    tokio::time::sleep(ROTATION_WAIT).await;
    let kept = plain_get(server.addr, "/metrics", Some(("alice", "two"))).await;
    assert_eq!(kept.unwrap().status, 200);
    server.stop().await;
}

// ---------------------------------------------------------------------------
// Rotation of certinel's own certificate.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_connections_get_the_rotated_certificate_without_a_restart() {
    let pki = Pki::new();
    let server = Server::start(Some(pki.web_config(TLS_ONLY))).await;
    let client = Client::trusting(&pki.ca.cert);
    assert_eq!(
        client.get(server.addr, "/metrics").await.unwrap().peer,
        pki.server.der
    );

    let renewed = pki.ca.issue(&Leaf::server("certinel-two", 180));
    pki.rotate_to(&renewed);
    tokio::time::sleep(ROTATION_WAIT).await;
    let reply = client.get(server.addr, "/metrics").await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.peer, renewed.der, "still serving the old certificate");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_written_certificate_keeps_the_previous_one_until_fixed() {
    let pki = Pki::new();
    let server = Server::start(Some(pki.web_config(&mtls_config()))).await;
    let client = Client::trusting(&pki.ca.cert).with_cert(&pki.client);

    let renewed = pki.ca.issue(&Leaf::server("certinel-two", 180));
    let half = &renewed.cert_pem[..renewed.cert_pem.len() / 2];
    std::fs::write(pki.path("tls/server.crt"), half).unwrap();
    tokio::time::sleep(ROTATION_WAIT).await;
    let reply = client.get(server.addr, "/metrics").await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.peer, pki.server.der, "lost the working certificate");

    // The new certificate without its key yet: still the old pair.
    std::fs::write(pki.path("tls/server.crt"), &renewed.cert_pem).unwrap();
    tokio::time::sleep(ROTATION_WAIT).await;
    let reply = client.get(server.addr, "/metrics").await.unwrap();
    assert_eq!(
        reply.peer, pki.server.der,
        "served a certificate without its key"
    );

    // A garbage client CA keeps the previous one as well.
    std::fs::write(pki.path("tls/client-ca.crt"), "garbage").unwrap();
    std::fs::write(pki.path("tls/server.key"), &renewed.key_pem).unwrap();
    tokio::time::sleep(ROTATION_WAIT).await;
    let reply = client.get(server.addr, "/metrics").await.unwrap();
    assert_eq!(reply.peer, pki.server.der);

    // Fixed: the new pair.
    std::fs::write(pki.path("tls/client-ca.crt"), &pki.client_ca.cert.cert_pem).unwrap();
    tokio::time::sleep(ROTATION_WAIT).await;
    let reply = client.get(server.addr, "/metrics").await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.peer, renewed.der);
    server.stop().await;
}

/// The sequence kubelet uses for secret volumes: files are symlinks through
/// `..data`, itself a symlink swapped atomically to a new timestamped dir.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubernetes_secret_volume_swap_is_followed() {
    use std::os::unix::fs::symlink;
    let pki = Pki::new();
    let volume = pki.path("secret");
    let publish = |dir: &str, leaf: &Minted| {
        write(&volume, &format!("{dir}/tls.crt"), &leaf.cert_pem);
        write(&volume, &format!("{dir}/tls.key"), &leaf.key_pem);
        let tmp = volume.join("..data_tmp");
        symlink(dir, &tmp).unwrap();
        std::fs::rename(&tmp, volume.join("..data")).unwrap();
    };
    publish("..2026_01_01_00_00_00.1", &pki.server);
    symlink("..data/tls.crt", volume.join("tls.crt")).unwrap();
    symlink("..data/tls.key", volume.join("tls.key")).unwrap();
    let yaml = "tls_server_config:\n  cert_file: secret/tls.crt\n  key_file: secret/tls.key\n";
    let server = Server::start(Some(pki.web_config(yaml))).await;
    let client = Client::trusting(&pki.ca.cert);
    assert_eq!(
        client.get(server.addr, "/metrics").await.unwrap().peer,
        pki.server.der
    );

    let renewed = pki.ca.issue(&Leaf::server("certinel-two", 180));
    publish("..2026_02_01_00_00_00.2", &renewed);
    tokio::time::sleep(ROTATION_WAIT).await;
    assert_eq!(
        client.get(server.addr, "/metrics").await.unwrap().peer,
        renewed.der
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------
// Robustness, shutdown, the health port.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_clients_do_not_hurt_others_and_shutdown_is_prompt() {
    let pki = Pki::new();
    let server = Server::start(Some(pki.web_config(TLS_ONLY))).await;

    // A client that connects and says nothing, one that sends garbage, and
    // one that keeps an idle keep-alive connection open.
    let silent = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut garbage = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    garbage
        .write_all(b"\x16\x03\x01\xff\xffnot tls at all")
        .await
        .unwrap();
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let client = Client::trusting(&pki.ca.cert);
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut idle = tokio_rustls::TlsConnector::from(client.config())
        .connect(name, tcp)
        .await
        .unwrap();
    idle.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    let reply = client.get(server.addr, "/metrics").await.unwrap();
    assert_eq!(reply.status, 200);

    let took = server.stop().await;
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    drop((silent, garbage, idle));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_without_a_web_config_and_the_health_port() {
    let server = Server::start(None).await;
    let reply = plain_get(server.addr, "/metrics", None).await.unwrap();
    assert_eq!(reply.status, 200);
    assert!(reply.body.contains("web_test_metric 1"));
    server.stop().await;

    let health = Router::new()
        .route("/-/healthy", get(|| async { "Healthy\n" }))
        .route("/-/ready", get(|| async { "Ready\n" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(web::serve_health(
        listener,
        health,
        web::ConnectionLimit::default(),
        async move {
            let _ = stopped.await;
        },
    ));
    let reply = plain_get(addr, "/-/healthy", None).await.unwrap();
    assert_eq!((reply.status, reply.body.as_str()), (200, "Healthy\n"));
    assert_eq!(plain_get(addr, "/-/ready", None).await.unwrap().status, 200);
    assert_eq!(plain_get(addr, "/metrics", None).await.unwrap().status, 404);
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

// ---------------------------------------------------------------------------
// WebConfig::load errors: each names its key.

#[test]
fn load_errors_name_the_key() {
    let pki = Pki::new();
    let load = |yaml: &str| {
        let path = write(pki.dir.path(), "web.yml", yaml);
        WebConfig::load(&path).unwrap_err().to_string()
    };
    let cases: Vec<(String, &str)> = vec![
        (format!("{TLS_ONLY}  colour: blue\n"), "colour"),
        (
            "tls_server_config:\n  cert_file: tls/missing.crt\n  key_file: tls/server.key\n"
                .to_owned(),
            "tls_server_config.cert_file: cannot read",
        ),
        (
            "tls_server_config:\n  cert_file: tls/server.crt\n  key_file: tls/missing.key\n"
                .to_owned(),
            "tls_server_config.key_file: cannot read",
        ),
        (
            format!("{TLS_ONLY}  client_auth_type: RequireAndVerify\n"),
            "tls_server_config.client_auth_type: unknown value \"RequireAndVerify\"",
        ),
        (
            format!("{TLS_ONLY}  client_auth_type: RequireAndVerifyClientCert\n"),
            "tls_server_config.client_ca_file: missing",
        ),
        (
            format!("{TLS_ONLY}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: tls/nope.crt\n"),
            "tls_server_config.client_ca_file: cannot read",
        ),
        (
            "tls_server_config:\n  cert_file: tls/server.crt\n  key_file: client.key\n".to_owned(),
            "tls_server_config.key_file:",
        ),
        (
            "tls_server_config:\n  cert_file: tls/server.key\n  key_file: tls/server.key\n"
                .to_owned(),
            "tls_server_config.cert_file:",
        ),
        (
            "basic_auth_users:\n  alice: $2y$10$tooshort\n".to_owned(),
            "basic_auth_users.alice: not a bcrypt hash",
        ),
        ("basic_auth_users:\n  alice: 1\n".to_owned(), "basic_auth_users"),
        ("rate_limit:\n  burst: 1\n".to_owned(), "rate_limit: not supported"),
    ];
    for (yaml, expected) in cases {
        let e = load(&yaml);
        assert!(
            e.contains(expected),
            "expected {expected:?} in {e:?} for\n{yaml}"
        );
    }
    // The key mismatch says so, and a missing file names the resolved path.
    let e = load("tls_server_config:\n  cert_file: tls/server.crt\n  key_file: client.key\n");
    assert!(e.contains("is not the key of the certificate"), "{e}");
    let e = load("tls_server_config:\n  cert_file: tls/missing.crt\n  key_file: tls/server.key\n");
    assert!(
        e.contains(&pki.path("tls/missing.crt").display().to_string()),
        "{e}"
    );
}

// ---------------------------------------------------------------------------
// A real Prometheus scrapes over mTLS with basic auth.

fn find_prometheus() -> PathBuf {
    if let Some(p) = std::env::var_os("PROMETHEUS") {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("prometheus"))
        .find(|p| p.is_file())
        .expect("prometheus not found in PATH (set $PROMETHEUS): apt-get install prometheus")
}

/// A child process killed on drop.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn try_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
}

/// `up` per job, from the query API.
fn up_by_job(prometheus: SocketAddr) -> Vec<(String, String)> {
    let Some(body) = try_get(prometheus, "/api/v1/query?query=up") else {
        return Vec::new();
    };
    // Chunked or not, the JSON object is the part between the outer braces.
    let Some(json) = body
        .find('{')
        .zip(body.rfind('}'))
        .map(|(a, b)| &body[a..=b])
    else {
        return Vec::new();
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else {
        return Vec::new();
    };
    v["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            Some((
                r["metric"]["job"].as_str()?.to_owned(),
                r["value"][1].as_str()?.to_owned(),
            ))
        })
        .collect()
}

fn yaml_path(p: &Path) -> String {
    format!("{:?}", p.display().to_string())
}

#[test]
fn real_prometheus_scrapes_over_mtls_with_basic_auth() {
    let prometheus_bin = find_prometheus();
    let pki = Pki::new();
    let web = pki.web_config(&format!(
        "{}{}",
        mtls_config(),
        users("prometheus", "s3cret")
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime.block_on(Server::start(Some(web)));

    let tls_config = |with_cert: bool| {
        let mut c = format!(
            "    tls_config:\n      ca_file: {}\n      server_name: localhost\n",
            yaml_path(&pki.path("ca.crt"))
        );
        if with_cert {
            c.push_str(&format!(
                "      cert_file: {}\n      key_file: {}\n",
                yaml_path(&pki.path("client.crt")),
                yaml_path(&pki.path("client.key"))
            ));
        }
        c
    };
    let job = |name: &str, with_cert: bool| {
        format!(
            "  - job_name: {name}\n    scheme: https\n{}    basic_auth:\n      username: prometheus\n      password: s3cret\n    static_configs:\n      - targets: [\"{}\"]\n",
            tls_config(with_cert),
            server.addr
        )
    };
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n{}{}",
        job("certinel", true),
        job("no-client-cert", false)
    );
    let config_path = write(pki.dir.path(), "prometheus.yml", config);
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let log = pki.path("prometheus.log");
    let child = Command::new(prometheus_bin)
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            pki.path("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start prometheus");
    let prometheus = Proc { child, log };

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = up_by_job(addr);
        let get = |job: &str| up.iter().find(|(j, _)| j == job).map(|(_, v)| v.as_str());
        if get("certinel") == Some("1") && get("no-client-cert") == Some("0") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus did not see up=1 (mTLS) and up=0 (no client cert) within 60 s: {up:?}\n{}",
            prometheus.log_tail()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    drop(prometheus);
    runtime.block_on(server.stop());
}

/// The binary wired end to end: `--web.config.file` demanding client
/// certificates on the main port, and `--web.health-address` answering
/// Kubernetes probes in plain HTTP.
#[test]
fn daemon_with_mtls_main_port_answers_probes_on_the_health_port() {
    let pki = Pki::new();
    write(pki.dir.path(), "web.yml", mtls_config());
    let web = pki.path("web.yml").to_string_lossy().into_owned();
    let daemon = crate::common::Daemon::start_with_args(
        pki.dir.path(),
        "files:\n  - name: own\n    paths: [tls/server.crt]\n",
        &[
            "--web.config.file",
            &web,
            "--web.health-address",
            "127.0.0.1:0",
        ],
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let health: SocketAddr = loop {
        let found = daemon.logs.lock().unwrap().iter().find_map(|l| {
            l.contains("msg=\"health listener\"")
                .then(|| {
                    l.split_whitespace()
                        .find_map(|f| f.strip_prefix("address="))
                })
                .flatten()
                .and_then(|a| a.parse().ok())
        });
        if let Some(a) = found {
            break a;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no health listener logged"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    loop {
        let r = try_get(health, "/-/ready");
        if r.as_deref() == Some("Ready\n") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never ready: {r:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(try_get(health, "/-/healthy").as_deref(), Some("Healthy\n"));
    // The health port serves nothing else (try_get yields only 200s).
    assert_eq!(try_get(health, "/metrics"), None);
    // The main port speaks only TLS with a client certificate: plain HTTP
    // gets no answer.
    assert_eq!(try_get(daemon.addr, "/metrics"), None);
    // An invalid web config refuses to start, like an invalid config.
    write(
        pki.dir.path(),
        "bad-web.yml",
        "tls_server_config:\n  cert_file: nope.crt\n",
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_certinel"))
        .args([
            "--config.file",
            &pki.path("certinel.yaml").to_string_lossy(),
        ])
        .args([
            "--web.config.file",
            &pki.path("bad-web.yml").to_string_lossy(),
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(78),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
