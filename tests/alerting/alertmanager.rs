//! The whole paging path: certinel, Prometheus evaluating the shipped
//! rules, Alertmanager, and a webhook this module serves.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Instant;

use serde_json::Value;

use super::*;

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
            "global:\n  interval: {TICK}\n  timeout: {TICK}\n\
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
