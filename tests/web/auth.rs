//! Who gets in: TLS with the server CA, mutual TLS (required or optional),
//! basic auth on every route, with or without TLS; and `WebConfig::load`
//! naming the key of every mistake.

use super::*;

/// A client certificate from another CA (here: the server's) is refused.
async fn assert_stranger_refused(pki: &Pki, client: Client<'_>, addr: SocketAddr) {
    let stranger = pki.ca.issue(&client_leaf("stranger"));
    assert_refused(client.with_cert(&stranger).get(addr, "/metrics").await);
}

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
    assert_refused(plain_get(server.addr, "/metrics", None));
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
    assert_stranger_refused(&pki, client, server.addr).await;

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
    assert_stranger_refused(&pki, client, server.addr).await;
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
        plain_get(server.addr, "/metrics", None).unwrap().status,
        401
    );
    let ok = plain_get(server.addr, "/metrics", Some(("alice", "one")));
    assert_eq!(ok.unwrap().status, 200);

    // A new password in the web config file takes effect without a restart.
    write(pki.dir.path(), "web.yml", users("alice", "two"));
    tokio::time::sleep(ROTATION_WAIT).await;
    let old = plain_get(server.addr, "/metrics", Some(("alice", "one")));
    assert_eq!(old.unwrap().status, 401);
    let new = plain_get(server.addr, "/metrics", Some(("alice", "two")));
    assert_eq!(new.unwrap().status, 200);

    // A broken web config file keeps the last good one.
    write(pki.dir.path(), "web.yml", "basic_auth_users: [oops\n");
    tokio::time::sleep(ROTATION_WAIT).await;
    let kept = plain_get(server.addr, "/metrics", Some(("alice", "two")));
    assert_eq!(kept.unwrap().status, 200);
    server.stop().await;
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
