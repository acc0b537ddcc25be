//! A real Prometheus scraping over mTLS with basic auth, and the real
//! binary with a client-certificate main port and a plain health port.

use super::*;

#[test]
fn real_prometheus_scrapes_over_mtls_with_basic_auth() {
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
            yaml_str(&pki.path("ca.crt"))
        );
        if with_cert {
            c.push_str(&format!(
                "      cert_file: {}\n      key_file: {}\n",
                yaml_str(&pki.path("client.crt")),
                yaml_str(&pki.path("client.key"))
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
    let prometheus = Prometheus::start_with_config(&pki.path("prometheus"), &config);
    let up = |r: &[serde_json::Value], job: &str| {
        r.iter()
            .find(|s| s["metric"]["job"] == job)
            .and_then(|s| s["value"][1].as_str().map(str::to_owned))
    };
    // up=1 over mTLS, up=0 for the job without a client certificate.
    prometheus.wait_query("up", Duration::from_secs(60), |r| {
        up(r, "certinel").as_deref() == Some("1") && up(r, "no-client-cert").as_deref() == Some("0")
    });
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
    let daemon = Daemon::start_with_args(
        pki.dir.path(),
        "files:\n  - name: own\n    paths: [tls/server.crt]\n",
        &[
            "--web.config.file",
            &web,
            "--web.health-address",
            "127.0.0.1:0",
        ],
    );
    let health = logged_address(&daemon.wait_for_log(Duration::from_secs(10), |l| {
        l.contains("msg=\"health listener\"") && logged_address(l).is_some()
    }))
    .unwrap();
    let ready = || try_get(health, "/-/ready");
    eventually(
        Duration::from_secs(10),
        || (ready() == Some((200, "Ready\n".to_owned()))).then_some(()),
        || format!("never ready: {:?}", ready()),
    );
    assert_eq!(
        try_get(health, "/-/healthy"),
        Some((200, "Healthy\n".to_owned()))
    );
    // The health port serves nothing else.
    assert_ne!(
        try_get(health, "/metrics").map(|(status, _)| status),
        Some(200)
    );
    // The main port speaks only TLS with a client certificate: plain HTTP
    // gets no answer, or none that is a 200.
    assert_ne!(
        try_get(daemon.addr, "/metrics").map(|(status, _)| status),
        Some(200)
    );
    // An invalid web config refuses to start, like an invalid config.
    write(
        pki.dir.path(),
        "bad-web.yml",
        "tls_server_config:\n  cert_file: nope.crt\n",
    );
    let out = run_bounded(
        certinel_command()
            .args([
                "--config.file",
                &pki.path("certinel.yaml").to_string_lossy(),
            ])
            .args([
                "--web.config.file",
                &pki.path("bad-web.yml").to_string_lossy(),
            ]),
        Duration::from_secs(20),
    );
    assert_eq!(out.status.code(), Some(78), "{}", out.stderr);
}
