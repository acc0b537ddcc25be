//! Rotation of certinel's own certificate without a restart (in place,
//! half-written, through a secret volume), and robustness: bad clients,
//! prompt shutdown, the health port.

use super::*;

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
    let pki = Pki::new();
    let volume = pki.path("secret");
    let publish = |stamp: &str, leaf: &Minted| {
        secret_volume(
            &volume,
            stamp,
            &[("tls.crt", &leaf.cert_pem), ("tls.key", &leaf.key_pem)],
        );
    };
    publish("..2026_01_01_00_00_00.1", &pki.server);
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
    let reply = plain_get(server.addr, "/metrics", None).unwrap();
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
    let reply = plain_get(addr, "/-/healthy", None).unwrap();
    assert_eq!((reply.status, reply.body.as_str()), (200, "Healthy\n"));
    assert_eq!(plain_get(addr, "/-/ready", None).unwrap().status, 200);
    assert_eq!(plain_get(addr, "/metrics", None).unwrap().status, 404);
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
