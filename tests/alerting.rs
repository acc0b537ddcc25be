//! End to end with the real programs: certinel scraped by a real Prometheus
//! that evaluates `alerts/certinel.rules.yml` and notifies a real
//! Alertmanager, which posts to a webhook this test serves; and every PromQL
//! query of every dashboard in `dashboards/` run against that Prometheus.
//!
//! Needs `prometheus`, `promtool` and `alertmanager` (Debian:
//! `apt-get install prometheus prometheus-alertmanager`); `$PROMETHEUS`,
//! `$PROMTOOL` and `$ALERTMANAGER` override the binaries looked up in `PATH`.
//! Everything listens on 127.0.0.1 on free ports, lives in a temporary
//! directory, and every child process is killed when the test ends, whether
//! it passes or fails.

use crate::common::*;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

// ---------------------------------------------------------------------------
// Tests.

/// The whole paging path: a file certificate 20 days from expiry reaches the
/// webhook through Prometheus and Alertmanager as `VarpulisCertExpiringSoon`,
/// with labels and annotations an operator can act on; an endpoint
/// certificate 40 days from expiry never does.
#[test]
fn expiring_file_certificate_pages_through_alertmanager() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();

    let ca = Ca::new("certinel e2e CA");
    let file_cert = ca.issue(&Leaf::server("expiring-file.e2e.test", 20));
    let endpoint_cert = ca.issue(&Leaf::server("endpoint-40d.e2e.test", 40));
    let cert_path = write(dir.path(), "certs/expiring.pem", &file_cert.cert_pem);
    let ca_path = write(dir.path(), "ca.pem", &ca.cert.cert_pem);
    let server = tls_server(&endpoint_cert, &ServerOptions::default());
    let target = format!("127.0.0.1:{}", server.addr.port());

    let certinel = Daemon::start(
        dir.path(),
        &format!(
            "global:\n  interval: {TICK}\n  timeout: 5s\n\
             files:\n  - name: e2e-files\n    paths: [{cert}]\n\
             endpoints:\n  - name: e2e-endpoints\n    targets: [\"{target}\"]\n    ca_file: {ca}\n",
            cert = yaml_str(&cert_path),
            ca = yaml_str(&ca_path),
        ),
    );
    certinel.wait_for(Duration::from_secs(20), |m| {
        m.has(
            "x509_cert_not_after",
            &[("subject_CN", "expiring-file.e2e.test")],
        ) && m.has(
            "x509_cert_not_after",
            &[("subject_CN", "endpoint-40d.e2e.test"), ("target", &target)],
        )
    });

    let hook = Webhook::start();
    let am = Alertmanager::start(&dir.path().join("alertmanager"), &hook.url());
    let (rules, shortened) = rules_with_short_for(dir.path());
    let prom = Prometheus::start(
        &dir.path().join("prometheus"),
        certinel.addr,
        &[rules],
        Some(am.addr),
    );
    assert_rules_loaded(&prom, shortened);

    // The first notification for the 20-day certificate.
    let deadline = Instant::now() + Duration::from_secs(45);
    let mut notifications: Vec<Value> = Vec::new();
    let first = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match hook.rx.recv_timeout(left) {
            Ok(body) => {
                let found = expiring_soon_alerts(&body)
                    .into_iter()
                    .find(|a| a["status"] == "firing")
                    .cloned();
                notifications.push(body);
                if let Some(alert) = found {
                    break alert;
                }
            }
            Err(_) => panic!(
                "no firing VarpulisCertExpiringSoon reached the webhook within 45 s.\n\
                 notifications: {notifications:#?}\nPrometheus alerts: {}\n\
                 Prometheus log:\n{}\nAlertmanager log:\n{}",
                prom.get_json("/api/v1/alerts"),
                prom.proc.log_tail(),
                am.proc.log_tail()
            ),
        }
    };
    let first_at = started.elapsed();

    let labels = &first["labels"];
    let label = |k: &str| labels[k].as_str().unwrap_or_default().to_owned();
    assert_eq!(label("severity"), "warning", "{first:#}");
    assert_eq!(label("filepath"), cert_path.to_str().unwrap(), "{first:#}");
    assert_eq!(label("filename"), "expiring.pem", "{first:#}");
    assert_eq!(label("subject_CN"), "expiring-file.e2e.test", "{first:#}");
    assert_eq!(label("source_kind"), "file", "{first:#}");
    assert_eq!(label("source_name"), "e2e-files", "{first:#}");
    assert_eq!(label("chain_index"), "0", "{first:#}");
    assert_eq!(label("job"), JOB, "{first:#}");
    assert_eq!(label("instance"), certinel.addr.to_string(), "{first:#}");

    // The annotations tell the truth: about 20 days (not "20s"), which
    // certificate, and what to do.
    let ann = |k: &str| {
        first["annotations"][k]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let summary = ann("summary");
    let description = ann("description");
    let runbook = ann("runbook");
    assert!(
        summary.starts_with("Certificate expiring-file.e2e.test expires in "),
        "summary: {summary}"
    );
    let days = number_between(&summary, "expires in ", " days");
    assert!((19.9..=20.0).contains(&days), "summary: {summary}");
    let days = number_between(&description, "has ", " days left");
    assert!((19.9..=20.0).contains(&days), "description: {description}");
    assert!(
        description.contains(&format!("in file {}", cert_path.display())),
        "description: {description}"
    );
    assert!(
        description.contains("issuer_CN=certinel e2e CA"),
        "description: {description}"
    );
    assert!(
        runbook.contains("Issue a new certificate") && runbook.contains("rolling restart"),
        "runbook: {runbook}"
    );
    assert!(
        runbook.contains(&format!(
            "openssl x509 -noout -enddate -subject -in {}",
            cert_path.display()
        )),
        "runbook: {runbook}"
    );

    // Prometheus has the 40-day certificate and evaluates the rule over it...
    let q = format!(
        "(x509_cert_not_after{{source_kind=\"endpoint\",target=\"{target}\",subject_CN=\"endpoint-40d.e2e.test\"}} - time()) / 86400"
    );
    let endpoint_days = prom.wait_query(&q, Duration::from_secs(10), |r| !r.is_empty());
    let v = sample_value(&endpoint_days[0]);
    assert!((39.9..=40.0).contains(&v), "{endpoint_days:?}");
    // ...for several more evaluation and group intervals: no notification
    // may ever name it.
    let quiet_until = Instant::now() + Duration::from_secs(6);
    while let Some(left) = quiet_until.checked_duration_since(Instant::now()) {
        if let Ok(body) = hook.rx.recv_timeout(left) {
            notifications.push(body);
        }
    }
    for n in &notifications {
        for a in expiring_soon_alerts(n) {
            assert_eq!(
                a["labels"]["source_kind"], "file",
                "VarpulisCertExpiringSoon for something other than the 20-day file:\n{a:#}"
            );
            assert_eq!(
                a["labels"]["subject_CN"], "expiring-file.e2e.test",
                "VarpulisCertExpiringSoon for the wrong certificate:\n{a:#}"
            );
        }
    }
    let active = prom
        .query(r#"ALERTS{alertname="VarpulisCertExpiringSoon"}"#)
        .unwrap();
    assert_eq!(active.len(), 1, "{active:#?}");
    assert_eq!(active[0]["metric"]["subject_CN"], "expiring-file.e2e.test");
    prom.assert_rules_healthy();

    eprintln!(
        "alerting e2e: first notification after {first_at:?}, done after {:?}",
        started.elapsed()
    );
}

/// Every `targets[].expr` of every dashboard is valid PromQL for a real
/// Prometheus and returns data where the setup guarantees some: a good file
/// certificate, certificates 5 and 20 days from expiry and one expired, a
/// garbage file, a good endpoint, a refused endpoint, and a source whose
/// first pass never completes.
#[test]
fn every_dashboard_query_runs_against_real_prometheus() {
    let started = Instant::now();
    let fx = Fixture::start(false);

    // Exact values of single-number panels, which `or vector(0)` would
    // otherwise keep from ever being empty, whatever their query matches.
    let expected_values: BTreeMap<&str, f64> = [
        ("Expired", 1.0),
        ("Expiring < 7 days", 1.0),
        ("Expiring < 30 days", 2.0),
        ("Failing handshakes", 1.0),
        ("Files in error", 1.0),
        ("Sources down", 1.0),
    ]
    .into_iter()
    .collect();
    // Panels whose queries may return nothing with this setup, and why.
    // Everything else must return data: the fixture produces every metric the
    // dashboards chart (a refused probe, a file error, a source that never
    // completes a pass...), and `rate()` has samples because the fixture
    // waits for several 1 s scrapes while `$__rate_interval` is 1m. An entry
    // whose panel does return data fails the test, so the list cannot rot.
    let allowed_empty: &[(&str, &str)] = &[(
        "Restart pending",
        "certinel_served_cert_stale needs an expect_file target; this setup has none",
    )];

    let vars: BTreeMap<&str, String> = [
        ("job", JOB.to_owned()),
        ("instance", fx.certinel.addr.to_string()),
        ("datasource", "prometheus".to_owned()),
        ("__rate_interval", "1m".to_owned()),
        ("__interval", "15s".to_owned()),
        ("__interval_ms", "15000".to_owned()),
        ("__range", "1m".to_owned()),
        ("__range_s", "60".to_owned()),
        ("__range_ms", "60000".to_owned()),
    ]
    .into_iter()
    .collect();

    let mut failures = Vec::new();
    let mut seen_titles = Vec::new();
    let mut checked = 0;
    let dashboards = dashboard_files();
    assert!(!dashboards.is_empty(), "no dashboards/*.json");
    for path in &dashboards {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(path).unwrap();
        let json: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not valid JSON: {e}"));

        // Template variables must find the certinel being scraped.
        for var in json["templating"]["list"].as_array().into_iter().flatten() {
            if var["type"] != "query" {
                continue;
            }
            let var_name = var["name"].as_str().unwrap_or("?");
            let query = var["query"]["query"].as_str().or(var["query"].as_str());
            let what = format!("{name}: variable {var_name}");
            match query.map(label_values_query) {
                Some(Ok(promql)) => match substitute(&promql, &vars) {
                    Ok(q) => match fx.prom.query(&q) {
                        Ok(r) if r.is_empty() => {
                            failures.push(format!("{what}: `{q}` finds no values"))
                        }
                        Ok(_) => checked += 1,
                        Err(e) => failures.push(format!("{what}: `{q}`: {e}")),
                    },
                    Err(e) => failures.push(format!("{what}: {e}")),
                },
                Some(Err(e)) => failures.push(format!("{what}: {e}")),
                None => failures.push(format!("{what}: no query")),
            }
        }

        let mut targets = Vec::new();
        collect_targets(&json, "(dashboard)", &mut targets);
        assert!(!targets.is_empty(), "{name}: no panel targets found");
        for t in targets {
            seen_titles.push(t.title.clone());
            let what = format!("{name}: panel {:?} query {}", t.title, t.ref_id);
            let q = match substitute(&t.expr, &vars) {
                Ok(q) => q,
                Err(e) => {
                    failures.push(format!("{what}: {e} in `{}`", t.expr));
                    continue;
                }
            };
            checked += 1;
            let may_be_empty = allowed_empty.iter().any(|(title, _)| *title == t.title);
            match fx.prom.query(&q) {
                Err(e) => failures.push(format!("{what}: invalid: {e}\n    {q}")),
                Ok(r) if r.is_empty() && !may_be_empty => {
                    failures.push(format!("{what}: returned nothing\n    {q}"))
                }
                Ok(r) if !r.is_empty() && may_be_empty => failures.push(format!(
                    "{what}: returns data now, remove {:?} from allowed_empty",
                    t.title
                )),
                Ok(r) => {
                    if let Some(want) = expected_values.get(t.title.as_str()) {
                        let got: Vec<f64> = r.iter().map(sample_value).collect();
                        if got != [*want] {
                            failures.push(format!(
                                "{what}: expected {want} with this setup, got {got:?}\n    {q}"
                            ));
                        }
                    }
                }
            }
            // `... or vector(0)` is never empty: the left-hand side alone must
            // still find data, or a typo in it would go unnoticed.
            if let Some(lhs) = strip_or_vector0(&q) {
                match fx.prom.query(lhs) {
                    Err(e) => failures.push(format!("{what}: invalid: {e}\n    {lhs}")),
                    Ok(r) if r.is_empty() && !may_be_empty => failures.push(format!(
                        "{what}: without `or vector(0)` it returns nothing\n    {lhs}"
                    )),
                    Ok(_) => {}
                }
            }
        }
    }
    for title in expected_values
        .keys()
        .chain(allowed_empty.iter().map(|(t, _)| t))
    {
        if !seen_titles.iter().any(|s| s == title) {
            failures.push(format!(
                "this test expects a panel titled {title:?}, which no dashboard has any more: update the test"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} dashboard problem(s):\n{}\n\nmetrics certinel exposed:\n{}",
        failures.len(),
        failures.join("\n"),
        fx.certinel.metrics().text
    );
    eprintln!(
        "dashboards: {checked} queries checked against Prometheus in {:?}",
        started.elapsed()
    );
}

/// The rule file, loaded by a real Prometheus over real certinel data (`for:`
/// shortened): each problem the fixture sets up raises its alert, with the
/// reason looked up by the annotation templates; nothing healthy alerts.
#[test]
fn every_problem_raises_its_alert_from_real_certinel_data() {
    let started = Instant::now();
    let fx = Fixture::start(true);

    let reason_of_garbage = {
        let r = fx
            .prom
            .query(&format!(
                "certinel_file_error_info{{filepath=\"{}\"}}",
                fx.garbage.display()
            ))
            .unwrap();
        assert_eq!(r.len(), 1, "{r:#?}");
        r[0]["metric"]["reason"].as_str().unwrap().to_owned()
    };
    let refused = fx.refused.to_string();

    // (alertname, label, value, text its summary must contain)
    let wanted: Vec<(&str, &str, String, String)> = vec![
        (
            "CertinelCertExpired",
            "subject_CN",
            "expired-file".into(),
            "expired 2.0 days ago".into(),
        ),
        (
            "CertinelCertExpiringCritical",
            "subject_CN",
            "critical-file".into(),
            "expires in 5.0 days".into(),
        ),
        (
            "VarpulisCertExpiringSoon",
            "subject_CN",
            "critical-file".into(),
            "expires in 5.0 days".into(),
        ),
        (
            "VarpulisCertExpiringSoon",
            "subject_CN",
            "warning-file".into(),
            "expires in 20.0 days".into(),
        ),
        (
            "VarpulisCertExpiringSoon",
            "subject_CN",
            "expired-file".into(),
            "expired 2.0 days ago".into(),
        ),
        (
            "CertinelTLSHandshakeFailing",
            "target",
            refused.clone(),
            "failing: refused".into(),
        ),
        (
            "CertinelCertFileUnreadable",
            "filepath",
            fx.garbage.display().to_string(),
            format!(": {reason_of_garbage}"),
        ),
        (
            "CertinelSourceDown",
            "source_name",
            "dash-stuck".into(),
            "has not completed a pass".into(),
        ),
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    let active = loop {
        let alerts = fx.prom.get_json("/api/v1/alerts");
        let firing: Vec<Value> = alerts["data"]["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|a| a["state"] == "firing")
            .collect();
        let all_there = wanted.iter().all(|(name, k, v, _)| {
            firing
                .iter()
                .any(|a| a["labels"]["alertname"] == *name && a["labels"][*k] == v.as_str())
        });
        if all_there {
            // One more evaluation so that anything else that would fire has.
            std::thread::sleep(Duration::from_secs(2));
            break fx.prom.get_json("/api/v1/alerts")["data"]["alerts"]
                .as_array()
                .cloned()
                .unwrap_or_default();
        }
        assert!(
            Instant::now() < deadline,
            "not every expected alert fired within 30 s; wanted {wanted:#?}\nfiring: {firing:#?}\nPrometheus log:\n{}",
            fx.prom.proc.log_tail()
        );
        std::thread::sleep(Duration::from_millis(500));
    };

    let mut failures = Vec::new();
    for (name, k, v, text) in &wanted {
        let found: Vec<&Value> = active
            .iter()
            .filter(|a| a["labels"]["alertname"] == *name && a["labels"][*k] == v.as_str())
            .collect();
        if found.len() != 1 {
            failures.push(format!("{name} for {k}={v}: {} alerts", found.len()));
            continue;
        }
        let summary = found[0]["annotations"]["summary"]
            .as_str()
            .unwrap_or_default();
        if !summary.contains(text.as_str()) {
            failures.push(format!(
                "{name} for {k}={v}: summary {summary:?} lacks {text:?}"
            ));
        }
        for (ann, value) in found[0]["annotations"].as_object().into_iter().flatten() {
            let value = value.as_str().unwrap_or_default();
            // Template errors, failed lookups, and labels that are empty
            // here (server_name of an IP target) printed anyway.
            let broken = [
                "<error",
                "unknown reason",
                " ,",
                "  ",
                "()",
                "-servername <",
            ];
            if let Some(b) = broken.iter().find(|b| value.contains(**b)) {
                failures.push(format!(
                    "{name} for {k}={v}: annotation {ann} has {b:?}: {value}"
                ));
            }
        }
    }
    // Nothing else: the good certificates, the good endpoint, certinel itself.
    for a in &active {
        let name = a["labels"]["alertname"].as_str().unwrap_or_default();
        let expected = wanted
            .iter()
            .any(|(n, k, v, _)| name == *n && a["labels"][*k] == v.as_str());
        if !expected {
            failures.push(format!("unexpected alert {}: {}", a["state"], a["labels"]));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    fx.prom.assert_rules_healthy();
    eprintln!("rules over real data: checked in {:?}", started.elapsed());
}

/// The shipped rule file passes `promtool check rules` and its unit tests
/// (scripts/check-alerts does the same, plus the drift and coverage checks).
#[test]
fn shipped_rules_pass_promtool() {
    let rules = repo().join("alerts/certinel.rules.yml");
    run_ok(
        Command::new(promtool())
            .arg("check")
            .arg("rules")
            .arg(&rules),
    );
    let mut tests: Vec<PathBuf> = std::fs::read_dir(repo().join("alerts/tests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    tests.sort();
    assert!(!tests.is_empty(), "no alerts/tests/*.yml");
    run_ok(
        Command::new(promtool())
            .args(["test", "rules"])
            .args(&tests)
            .current_dir(repo()),
    );
}

// ---------------------------------------------------------------------------
// The shared fixture: certinel with one of each kind of problem, scraped by
// Prometheus until it has several samples of everything.

struct Fixture {
    // Field order is drop order: Prometheus first, then certinel, then the
    // servers it probes, then the directory.
    prom: Prometheus,
    certinel: Daemon,
    _server: TestServer,
    /// Accepts connections (in the kernel backlog) and never answers, so the
    /// `dash-stuck` source never completes a pass.
    _stuck: TcpListener,
    refused: SocketAddr,
    garbage: PathBuf,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn start(with_rules: bool) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("certinel fixture CA");
        let expired = ca.issue(&Leaf {
            cn: "expired-file",
            sans: &["localhost"],
            not_before: now() - 60 * DAY,
            not_after: now() - 2 * DAY,
            client_auth_only: false,
        });
        write(
            dir.path(),
            "certs/good.pem",
            ca.issue(&Leaf::server("good-file", 365)).cert_pem,
        );
        write(
            dir.path(),
            "certs/warning.pem",
            ca.issue(&Leaf::server("warning-file", 20)).cert_pem,
        );
        write(
            dir.path(),
            "certs/critical.pem",
            ca.issue(&Leaf::server("critical-file", 5)).cert_pem,
        );
        write(dir.path(), "certs/expired.pem", expired.cert_pem);
        let garbage = write(
            dir.path(),
            "certs/garbage.pem",
            "this is not a certificate\n",
        );
        let ca_path = write(dir.path(), "ca.pem", &ca.cert.cert_pem);
        let server = tls_server(
            &ca.issue(&Leaf::server("good-endpoint", 90)),
            &ServerOptions::default(),
        );
        let good = format!("127.0.0.1:{}", server.addr.port());
        let refused = closed_port();
        let stuck = TcpListener::bind("127.0.0.1:0").unwrap();
        let certs_glob = dir.path().join("certs").join("*.pem");

        let certinel = Daemon::start(
            dir.path(),
            &format!(
                "global:\n  interval: {TICK}\n  timeout: 2s\n\
                 files:\n  - name: dash-files\n    paths: [{glob}]\n\
                 endpoints:\n  - name: dash-endpoints\n    targets: [\"{good}\", \"{refused}\"]\n    ca_file: {ca}\n\
                 \x20 - name: dash-stuck\n    targets: [\"{stuck}\"]\n    timeout: 120s\n",
                glob = yaml_str(&certs_glob),
                ca = yaml_str(&ca_path),
                stuck = stuck.local_addr().unwrap(),
            ),
        );
        let refused_s = refused.to_string();
        certinel.wait_for(Duration::from_secs(20), |m| {
            m.has("x509_cert_not_after", &[("subject_CN", "good-endpoint")])
                && m.find("x509_cert_not_after", &[("source_kind", "file")])
                    .len()
                    == 4
                && m.has("certinel_file_error_info", &[])
                && m.has(
                    "certinel_tls_handshake_error_info",
                    &[("target", &refused_s), ("reason", "refused")],
                )
        });

        let rules = if with_rules {
            vec![rules_with_short_for(dir.path()).0]
        } else {
            vec![]
        };
        let prom = Prometheus::start(&dir.path().join("prometheus"), certinel.addr, &rules, None);
        // Several scrapes, so that rate() over 1m has samples to work with.
        prom.wait_query(
            &format!("count_over_time(up{{job=\"{JOB}\"}}[1m]) >= 5"),
            Duration::from_secs(30),
            |r| !r.is_empty(),
        );
        Fixture {
            prom,
            certinel,
            _server: server,
            _stuck: stuck,
            refused,
            garbage,
            _dir: dir,
        }
    }
}

// ---------------------------------------------------------------------------
// Rules.

/// Copies the shipped rule file with every `for:` shortened to the
/// evaluation interval; returns the copy and how many `for:` it shortened.
fn rules_with_short_for(dir: &Path) -> (PathBuf, usize) {
    let original = std::fs::read_to_string(repo().join("alerts/certinel.rules.yml")).unwrap();
    let mut shortened = 0;
    let mut out = String::new();
    for line in original.lines() {
        let trimmed = line.trim_start();
        let is_for = trimmed
            .strip_prefix("for:")
            .is_some_and(|v| v.split_whitespace().count() == 1);
        if is_for {
            let indent = &line[..line.len() - trimmed.len()];
            out.push_str(&format!("{indent}for: {TICK}\n"));
            shortened += 1;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(shortened > 0, "no `for:` in alerts/certinel.rules.yml");
    (write(dir, "rules/certinel.rules.yml", out), shortened)
}

/// Alerts named VarpulisCertExpiringSoon in an Alertmanager webhook payload.
fn expiring_soon_alerts(payload: &Value) -> Vec<&Value> {
    payload["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["labels"]["alertname"] == "VarpulisCertExpiringSoon")
        .collect()
}

/// The number between `before` and `after` in `text`.
fn number_between(text: &str, before: &str, after: &str) -> f64 {
    text.split_once(before)
        .and_then(|(_, rest)| rest.split_once(after))
        .and_then(|(n, _)| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no number between {before:?} and {after:?} in {text:?}"))
}

/// The rule file is loaded as written: every alert of the shipped file,
/// `shortened` of them with the short `for:`.
fn assert_rules_loaded(prom: &Prometheus, shortened: usize) {
    let v = prom.get_json("/api/v1/rules");
    let rules: Vec<&Value> = v["data"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .collect();
    let shipped = std::fs::read_to_string(repo().join("alerts/certinel.rules.yml")).unwrap();
    let shipped_alerts = shipped
        .lines()
        .filter(|l| l.trim_start().starts_with("- alert:"))
        .count();
    assert_eq!(rules.len(), shipped_alerts, "{v:#}");
    let short = rules.iter().filter(|r| r["duration"] == 1).count();
    assert_eq!(short, shortened, "{v:#}");
    assert!(
        rules
            .iter()
            .any(|r| r["name"] == "VarpulisCertExpiringSoon"),
        "{v:#}"
    );
}

// ---------------------------------------------------------------------------
// Dashboards.

fn dashboard_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("dashboards"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

/// One PromQL query of a dashboard panel.
#[derive(Debug)]
struct Target {
    title: String,
    ref_id: String,
    expr: String,
}

/// Every `targets[].expr`, anywhere in the JSON (rows, collapsed rows'
/// `panels`, library panels inlined...), with the nearest enclosing title.
fn collect_targets(v: &Value, title: &str, out: &mut Vec<Target>) {
    match v {
        Value::Object(map) => {
            let title = map.get("title").and_then(Value::as_str).unwrap_or(title);
            if let Some(targets) = map.get("targets").and_then(Value::as_array) {
                for t in targets {
                    if let Some(expr) = t.get("expr").and_then(Value::as_str) {
                        out.push(Target {
                            title: title.to_owned(),
                            ref_id: t["refId"].as_str().unwrap_or("?").to_owned(),
                            expr: expr.to_owned(),
                        });
                    }
                }
            }
            for (k, child) in map {
                if k != "targets" {
                    collect_targets(child, title, out);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                collect_targets(item, title, out);
            }
        }
        _ => {}
    }
}

/// Replaces Grafana variables (`$name`, `${name}`, `${name:format}`,
/// `[[name]]`) with their values; an unknown variable is an error.
fn substitute(expr: &str, vars: &BTreeMap<&str, String>) -> Result<String, String> {
    let lookup = |name: &str| {
        vars.get(name)
            .cloned()
            .ok_or_else(|| format!("unknown template variable `{name}`"))
    };
    let mut out = String::new();
    let mut rest = expr;
    while let Some(i) = rest.find(['$', '[']) {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(inner) = rest.strip_prefix("${") {
            let end = inner.find('}').ok_or("unterminated ${")?;
            let name = inner[..end].split(':').next().unwrap_or_default();
            out.push_str(&lookup(name)?);
            rest = &inner[end + 1..];
        } else if let Some(inner) = rest.strip_prefix("[[") {
            let end = inner.find("]]").ok_or("unterminated [[")?;
            let name = inner[..end].split(':').next().unwrap_or_default();
            out.push_str(&lookup(name)?);
            rest = &inner[end + 2..];
        } else if rest.starts_with('$') {
            let ident_len = rest[1..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len() - 1);
            if ident_len == 0 {
                out.push('$');
            } else {
                out.push_str(&lookup(&rest[1..=ident_len])?);
            }
            rest = &rest[1 + ident_len..];
        } else {
            out.push('[');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A Grafana Prometheus variable query as PromQL that returns one series
/// per value: `label_values(sel, label)` → `group by (label) (sel)`.
fn label_values_query(q: &str) -> Result<String, String> {
    let q = q.trim();
    if let Some(args) = q
        .strip_prefix("label_values(")
        .and_then(|a| a.strip_suffix(')'))
    {
        return match args.rsplit_once(',') {
            Some((sel, label)) => Ok(format!("group by ({}) ({})", label.trim(), sel.trim())),
            None => Ok(format!("group by ({args}) ({{{args}!=\"\"}})")),
        };
    }
    if let Some(expr) = q
        .strip_prefix("query_result(")
        .and_then(|a| a.strip_suffix(')'))
    {
        return Ok(expr.to_owned());
    }
    Err(format!(
        "unsupported variable query `{q}` (teach this test about it)"
    ))
}

/// `X or vector(0)` → `X`.
fn strip_or_vector0(q: &str) -> Option<&str> {
    let t = q.trim_end();
    let t = t
        .strip_suffix(')')?
        .trim_end()
        .strip_suffix('0')?
        .trim_end();
    let t = t
        .strip_suffix('(')?
        .trim_end()
        .strip_suffix("vector")?
        .trim_end();
    Some(t.strip_suffix("or")?.trim_end())
}

// ---------------------------------------------------------------------------
// The webhook receiver Alertmanager posts to.

struct Webhook {
    addr: SocketAddr,
    /// Each POST body, parsed.
    rx: mpsc::Receiver<Value>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Webhook {
    fn start() -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                if let Some(body) = serve_post(stream) {
                    let parsed = serde_json::from_str(&body)
                        .unwrap_or_else(|e| Value::String(format!("not JSON ({e}): {body}")));
                    let _ = tx.send(parsed);
                }
            }
        });
        Webhook {
            addr,
            rx,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one HTTP request, answers 200 and closes; returns a POST's body.
fn serve_post(mut stream: TcpStream) -> Option<String> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    (request_line.starts_with("POST /hook ")).then(|| String::from_utf8_lossy(&body).into_owned())
}
