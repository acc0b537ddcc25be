//! `/probe` against the real binary: the per-target contract through a
//! module, the allowlist on names and on every resolved address, requests
//! that are no `host:port`, the lane of its own, the scrape timeout,
//! reload and auth. Every target is on loopback; addresses the allowlist
//! refuses are refused before anything connects, which the listeners
//! behind them count.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::common::*;

/// Scale-out with the real Prometheus: hashmod sharding over two
/// replicas, the alert rules, a replica stopped.
mod scaleout;

const PROBE_CONFIG: &str = "probe:\n  enabled: true\n  allow:\n    hosts: [localhost]\n    networks: [127.0.0.1/32, \"::1/128\"]\n";

/// GET `/probe?query` with `headers`.
fn probe(d: &Daemon, query: &str, headers: &[(&str, &str)]) -> Response {
    try_exchange(d.addr, "GET", &format!("/probe?{query}"), headers)
        .unwrap_or_else(|e| panic!("/probe?{query}: {e}"))
}

fn target(addr: SocketAddr) -> String {
    format!("target={}", urlencode(&addr.to_string()))
}

/// A CA trusted by the module `internal`, and its file.
fn internal_ca(dir: &Path) -> (Ca, String) {
    let ca = Ca::new("probe CA");
    let file = write(dir, "ca.pem", &ca.cert.cert_pem);
    (ca, yaml_str(&file))
}

#[test]
fn a_probe_answers_the_contract_for_its_target_through_its_module() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, ca_file) = internal_ca(dir.path());
    let leaf = ca.issue(&Leaf::server("probed", 40));
    let good = tls_server(&leaf, &ServerOptions::default());
    let expired = tls_server(&leaf_expired(&ca), &ServerOptions::default());
    let d = Daemon::start(
        dir.path(),
        &format!("{PROBE_CONFIG}modules:\n  internal:\n    ca_file: {ca_file}\n    expect_file: {ca_file}\n"),
    );

    let r = probe(&d, &format!("{}&module=internal", target(good.addr)), &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    promtool_check_metrics(&r.body);
    let m = Exposition::parse(&r.body);
    assert!(m.duplicate_series().is_empty(), "{}", r.body);
    let t = good.addr.to_string();
    let cert = m.one(
        "x509_cert_not_after",
        &[("target", &t), ("chain_index", "0")],
    );
    assert_eq!(cert.value, leaf.not_after as f64);
    for (k, v) in [
        ("source_kind", "probe"),
        ("source_name", "internal"),
        ("address", t.as_str()),
        ("subject_CN", "probed"),
        ("filepath", ""),
    ] {
        assert_eq!(cert.labels[k], v, "{k}: {}", r.body);
    }
    assert_eq!(
        m.value("certinel_tls_handshake_error", &[("target", &t)]),
        0.0
    );
    assert!(m.has("certinel_tls_info", &[("target", &t)]));
    // expect_file holds the CA, not the served leaf: a verdict is made.
    assert!(m.has("certinel_served_cert_stale", &[("target", &t)]));
    assert_eq!(m.value("probe_success", &[]), 1.0);
    assert!(m.value("probe_duration_seconds", &[]) > 0.0);
    // Nothing of the exporter itself: that is /metrics' business.
    assert!(!m.has("certinel_build_info", &[]) && !m.has("x509_source_up", &[]));

    // OpenMetrics for Prometheus.
    let accept = [("Accept", "application/openmetrics-text;version=1.0.0")];
    let om = probe(
        &d,
        &format!("{}&module=internal", target(good.addr)),
        &accept,
    );
    assert!(om.body.ends_with("# EOF\n"), "{}", om.body);

    // A failing probe still exports the chain it saw, and says why.
    let x = expired.addr.to_string();
    let r = probe(
        &d,
        &format!("{}&module=internal", target(expired.addr)),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let m = Exposition::parse(&r.body);
    assert_eq!(m.value("probe_success", &[]), 0.0);
    assert!(m.has(
        "x509_cert_not_after",
        &[("target", &x), ("chain_index", "0")]
    ));
    assert_eq!(
        m.one("certinel_tls_handshake_error_info", &[("target", &x)])
            .labels["reason"],
        "expired"
    );
    // The default module trusts the system roots, not this CA; the name
    // and the server_name override are the request's.
    let r = probe(
        &d,
        &format!(
            "target=localhost%3A{}&server_name=other.example",
            good.addr.port()
        ),
        &[],
    );
    let m = Exposition::parse(&r.body);
    let info = m.one("certinel_tls_handshake_error_info", &[]);
    assert_eq!(info.labels["source_name"], "default");
    assert_eq!(info.labels["server_name"], "other.example");
    assert!(m.has("x509_cert_not_after", &[("subject_CN", "probed")]));

    // The requests, counted on /metrics by outcome.
    let metrics = d.wait_for(Duration::from_secs(5), |m| {
        m.value("certinel_probe_requests_total", &[("outcome", "failure")]) == 2.0
    });
    assert_eq!(
        metrics.value("certinel_probe_requests_total", &[("outcome", "success")]),
        2.0
    );
}

fn leaf_expired(ca: &Ca) -> Minted {
    ca.issue(&Leaf {
        cn: "expired",
        sans: &["localhost", "127.0.0.1"],
        not_before: now() - 30 * DAY,
        not_after: now() - DAY,
        client_auth_only: false,
    })
}

#[test]
fn the_allowlist_holds_for_names_and_for_every_address_they_resolve_to() {
    let dir = tempfile::tempdir().unwrap();
    let (hole, accepted) = black_hole();
    let port = hole.port();
    // Only ::1 may be reached, and the name localhost; 127.0.0.1 may not.
    let d = Daemon::start(
        dir.path(),
        "global:\n  timeout: 2s\nprobe:\n  enabled: true\n  allow:\n    hosts: [localhost, \"*.invalid\"]\n    networks: [\"::1/128\"]\n",
    );
    let refused = |query: &str, reason: &str| {
        let r = probe(&d, query, &[]);
        assert_eq!(r.status, 403, "{query}: {}", r.body);
        assert!(r.body.contains(reason), "{query}: {}", r.body);
    };
    // A name that is allowed, resolving to an address that is not.
    refused(
        &format!("target=localhost%3A{port}"),
        "127.0.0.1 is in no network",
    );
    // The address itself, and the same address in IPv6 clothing.
    refused(
        &format!("target=127.0.0.1%3A{port}"),
        "127.0.0.1 is in no network",
    );
    refused(
        &format!("target=%5B%3A%3Affff%3A127.0.0.1%5D%3A{port}"),
        "127.0.0.1 is in no network",
    );
    // A name no pattern allows is not even resolved.
    refused(
        "target=example.com%3A443",
        "host \"example.com\" matches no pattern",
    );
    // Link-local and metadata addresses, and 0.0.0.0 (localhost on Linux).
    refused(
        "target=169.254.169.254%3A80",
        "link-local or cloud metadata",
    );
    refused(
        "target=%5Bfd00%3Aec2%3A%3A254%5D%3A80",
        "link-local or cloud metadata",
    );
    refused(&format!("target=0.0.0.0%3A{port}"), "not a unicast address");
    // A name that does not resolve is a probe result, not a refusal.
    let r = probe(&d, "target=nothing.invalid%3A443", &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("reason=\"dns\""), "{}", r.body);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "a refused target was reached"
    );
    let m = d.wait_for(Duration::from_secs(5), |m| {
        m.value("certinel_probe_refused_total", &[("reason", "network")]) == 3.0
    });
    assert_eq!(
        m.value("certinel_probe_refused_total", &[("reason", "host")]),
        1.0
    );
    assert_eq!(
        m.value("certinel_probe_refused_total", &[("reason", "link_local")]),
        2.0
    );
    assert_eq!(
        m.value("certinel_probe_refused_total", &[("reason", "not_unicast")]),
        1.0
    );
    assert_eq!(
        m.value(
            "certinel_probe_requests_total",
            &[("outcome", "not_allowed")]
        ),
        7.0
    );
}

#[test]
fn anything_but_host_port_is_a_400_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), PROBE_CONFIG);
    for (query, reason) in [
        ("", "missing target"),
        ("target=localhost", "missing port"),
        ("target=http%3A%2F%2Flocalhost%3A443%2F", "not a URL"),
        ("target=localhost%3A0", "port must be 1-65535"),
        ("target=localhost%3A443%2Fadmin", "port must be 1-65535"),
        (
            "target=user%40localhost%3A443",
            "must be a DNS name or an IP address",
        ),
        (
            "target=%5Bfe80%3A%3A1%25eth0%5D%3A443",
            "must be a DNS name or an IP address",
        ),
        ("target=%3A%3A1%3A443", "put IPv6 addresses in brackets"),
        (
            "target=localhost%3A443&target=localhost%3A444",
            "more than once",
        ),
        (
            "target=localhost%3A443&ca_file=%2Fetc%2Fshadow",
            "unknown parameter \"ca_file\"",
        ),
        (
            "target=localhost%3A443&module=nope",
            "unknown module \"nope\"",
        ),
        ("target=localhost%3A443&server_name=a%20b", "not a DNS name"),
    ] {
        let r = probe(&d, query, &[]);
        assert_eq!(r.status, 400, "{query}: {}", r.body);
        assert!(r.body.contains(reason), "{query}: {}", r.body);
    }
    let r = probe(
        &d,
        "target=localhost%3A443",
        &[("X-Prometheus-Scrape-Timeout-Seconds", "soon")],
    );
    assert_eq!(r.status, 400, "{}", r.body);
}

#[test]
fn a_full_probe_lane_answers_503_while_configured_targets_keep_theirs() {
    let dir = tempfile::tempdir().unwrap();
    let (hole, accepted) = black_hole();
    let ca = Ca::new("lane CA");
    let good = tls_server(
        &ca.issue(&Leaf::server("configured", 40)),
        &ServerOptions::default(),
    );
    let config = format!(
        "global:\n  interval: 1s\n  timeout: 500ms\n  concurrency: 1\n\
         endpoints:\n  - name: configured\n    targets: [\"{}\"]\n\
         probe:\n  enabled: true\n  max_concurrent: 1\n  allow:\n    networks: [127.0.0.1/32]\n\
         modules:\n  slow:\n    timeout: 6s\n",
        good.addr
    );
    let d = Daemon::start(dir.path(), &config);
    let addr = d.addr;
    let query = format!("{}&module=slow", target(hole));
    let slow =
        std::thread::spawn(move || try_exchange(addr, "GET", &format!("/probe?{query}"), &[]));
    wait_count(&accepted, 1, Duration::from_secs(5));
    let r = probe(&d, &target(good.addr), &[]);
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.headers.get("retry-after").map(String::as_str), Some("1"));
    // Meanwhile the configured target is probed on schedule.
    let t = good.addr.to_string();
    let last = |m: &Exposition| {
        m.value(
            "certinel_tls_last_probe_timestamp_seconds",
            &[("target", &t)],
        )
    };
    let before = last(&d.wait_for(Duration::from_secs(5), |m| {
        m.has(
            "certinel_tls_last_probe_timestamp_seconds",
            &[("target", &t)],
        )
    }));
    d.wait_for(Duration::from_secs(5), |m| last(m) > before);
    assert!(
        !slow.is_finished(),
        "the slow probe should still hold the lane"
    );
    let slow = slow.join().unwrap().unwrap();
    assert_eq!(slow.status, 200);
    assert!(slow.body.contains("reason=\"timeout\""), "{}", slow.body);
    assert_eq!(probe(&d, &target(good.addr), &[]).status, 200);
}

#[test]
fn the_scrape_timeout_bounds_the_probe_and_the_module_bounds_the_scrape_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (hole, _) = black_hole();
    let d = Daemon::start(
        dir.path(),
        &format!(
            "{PROBE_CONFIG}modules:\n  long:\n    timeout: 20s\n  short:\n    timeout: 300ms\n"
        ),
    );
    let timed = |module: &str, header: &str| {
        let started = Instant::now();
        let r = probe(
            &d,
            &format!("{}&module={module}", target(hole)),
            &[("X-Prometheus-Scrape-Timeout-Seconds", header)],
        );
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.body.contains("reason=\"timeout\""), "{}", r.body);
        started.elapsed()
    };
    // 1.5 s scrape timeout, less the 0.5 s margin.
    let took = timed("long", "1.5");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // The module's own timeout is shorter than the scrape's.
    let took = timed("short", "10");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[test]
fn probe_is_off_until_configured_and_follows_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("reload CA");
    let good = tls_server(
        &ca.issue(&Leaf::server("reloaded", 40)),
        &ServerOptions::default(),
    );
    let d = Daemon::start(
        dir.path(),
        "files:\n  - name: f\n    paths: [/nonexistent/x.pem]\n",
    );
    let r = probe(&d, &target(good.addr), &[]);
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(r.body.contains("probe.enabled"), "{}", r.body);
    write(dir.path(), "certinel.yaml", PROBE_CONFIG);
    d.signal("HUP");
    d.wait_for_log(Duration::from_secs(10), |l| {
        l.contains("configuration reloaded")
    });
    assert_eq!(probe(&d, &target(good.addr), &[]).status, 200);
}

#[test]
fn probe_sits_behind_basic_auth() {
    let dir = tempfile::tempdir().unwrap();
    let (d, creds) = Daemon::start_with_basic_auth(dir.path(), PROBE_CONFIG, "prom", "s3cret");
    let query = "target=127.0.0.1%3A1";
    assert_eq!(probe(&d, query, &[]).status, 401);
    let r = probe(&d, query, &[("Authorization", &creds)]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("reason=\"refused\""), "{}", r.body);
}
