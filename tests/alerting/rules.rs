//! The shipped rule file: promtool's checks and unit tests, and every
//! problem raising its alert, and nothing else, over real certinel data.

use std::process::Command;
use std::time::Instant;

use serde_json::Value;

use super::*;

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
    let chained = format!("127.0.0.1:{}", fx.chained.addr.port());

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
            "CertinelTLSChainProblem",
            "target",
            chained,
            "serves a flawed chain: out_of_order (#0)".into(),
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
        (
            "CertinelCRLStale",
            "filepath",
            fx.stale_crl.display().to_string(),
            "is stale since".into(),
        ),
        (
            "CertinelKeystorePasswordFailing",
            "filepath",
            fx.keystore.display().to_string(),
            "does not open: bad_passphrase".into(),
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
