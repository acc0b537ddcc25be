//! The HTTP endpoints (landing page, `/-/healthy`, `/-/ready`, `/metrics`
//! in both formats), and a real Prometheus scraping certinel.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::file_only_config;
use crate::common::*;

/// The `Accept` header Prometheus sends when scraping.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,\
application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// A GET with an optional `Accept` header that keeps the response headers
/// (lower-cased names).
fn get_full(
    addr: SocketAddr,
    path: &str,
    accept: Option<&str>,
) -> (u16, HashMap<String, String>, String) {
    let headers: Vec<(&str, &str)> = accept.map(|a| ("Accept", a)).into_iter().collect();
    http_exchange(addr, "GET", path, &headers)
}

#[test]
fn landing_page_links_metrics_health_and_ready() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &file_only_config(dir.path()));
    let (status, headers, body) = get_full(d.addr, "/", None);
    assert_eq!(status, 200);
    assert!(
        headers["content-type"].starts_with("text/html"),
        "{headers:?}"
    );
    for link in ["href=\"metrics\"", "href=\"-/healthy\"", "href=\"-/ready\""] {
        assert!(body.contains(link), "landing page lacks {link}:\n{body}");
    }
}

#[test]
fn healthy_answers_200() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &file_only_config(dir.path()));
    assert_eq!(d.get("/-/healthy").0, 200);
}

#[test]
fn unknown_path_is_404() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &file_only_config(dir.path()));
    assert_eq!(d.get("/no/such/page").0, 404);
    assert_eq!(d.get("/metricsx").0, 404);
}

#[test]
fn metrics_for_prometheus_are_openmetrics_text_ending_with_eof() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &file_only_config(dir.path()));
    d.wait_ready(Duration::from_secs(10));
    let (status, headers, body) = get_full(d.addr, "/metrics", Some(PROMETHEUS_ACCEPT));
    assert_eq!(status, 200);
    assert!(
        headers["content-type"].starts_with("application/openmetrics-text"),
        "{headers:?}"
    );
    assert!(body.ends_with("# EOF\n"), "{body}");
    assert_eq!(body.matches("# EOF").count(), 1);
}

#[test]
fn metrics_without_accept_header_answer_a_parsable_exposition() {
    // curl and older scrapers send no OpenMetrics Accept header; whichever
    // text format they get, it must parse and carry the series.
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &file_only_config(dir.path()));
    d.wait_ready(Duration::from_secs(10));
    let (status, headers, body) = get_full(d.addr, "/metrics", None);
    assert_eq!(status, 200);
    let ct = &headers["content-type"];
    assert!(
        ct.starts_with("application/openmetrics-text") || ct.starts_with("text/plain"),
        "{ct}"
    );
    let m = Exposition::parse(&body);
    assert!(
        m.has("x509_cert_not_after", &[("source_name", "http-files")]),
        "{body}"
    );
}

#[test]
fn ready_is_503_until_the_first_pass_then_200() {
    let (hole, accepted) = black_hole();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "global:\n  interval: 1h\nendpoints:\n  - name: slow\n    timeout: 3s\n    targets: [\"{hole}\"]\n"
    );
    let d = Daemon::start(dir.path(), &config);
    let started = Instant::now();
    let (status, body) = d.get("/-/ready");
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("slow"),
        "503 body names the pending source: {body}"
    );
    wait_count(&accepted, 1, Duration::from_secs(5));
    d.wait_ready(Duration::from_secs(10));
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "ready after {:?}, before the 3 s probe timeout",
        started.elapsed()
    );
    let m = d.metrics();
    assert_eq!(
        m.value(
            "certinel_tls_handshake_error_info",
            &[("source_name", "slow"), ("reason", "timeout")]
        ),
        1.0
    );
}

// ---------------------------------------------------------------------------
// A real Prometheus scraping certinel.

#[test]
fn real_prometheus_scrapes_certinel() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("prom-ca");
    let leaf = ca.issue(&Leaf::server("prom-leaf", 45));
    let path = write(dir.path(), "certs/prom.pem", &leaf.cert_pem);
    let config = format!(
        "global:\n  interval: 1h\nfiles:\n  - name: prom-files\n    paths: [{}]\n",
        yaml_str(&path)
    );
    let d = Daemon::start(dir.path(), &config);
    d.wait_ready(Duration::from_secs(10));

    // Prometheus asks for gzip and certinel answers with two gzip members
    // (snapshot part, clock part): `up` is 1 only if Prometheus read both,
    // as an OpenMetrics body without the `# EOF` of the second fails.
    let prom = Prometheus::start(&dir.path().join("prometheus"), d.addr, &[], None);
    let up = prom.query("up{job=\"certinel\"} == 1").unwrap();
    assert_eq!(up.len(), 1, "{up:?}");
    let not_after = prom.wait_query(
        "x509_cert_not_after{job=\"certinel\",source_name=\"prom-files\"}",
        Duration::from_secs(60),
        |r| !r.is_empty(),
    );
    assert_eq!(
        not_after.len(),
        1,
        "x509_cert_not_after not queryable: {not_after:?}"
    );
    let series = &not_after[0];
    assert_eq!(sample_value(series), leaf.not_after as f64, "{series}");
    assert_eq!(series["metric"]["subject_CN"], "prom-leaf", "{series}");
    assert_eq!(series["metric"]["filename"], "prom.pem", "{series}");
    assert_eq!(series["metric"]["chain_index"], "0", "{series}");
    // Prometheus parsed the whole exposition: nothing was dropped.
    let samples = prom
        .query("scrape_samples_scraped{job=\"certinel\"}")
        .unwrap();
    assert!(
        samples.first().map(sample_value).unwrap_or(0.0) > 10.0,
        "{samples:?}"
    );
}
