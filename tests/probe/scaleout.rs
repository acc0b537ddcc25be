//! Scale-out, proven with the real Prometheus: two certinel replicas
//! configured from `deploy/scale-out/certinel.yaml`, scraped by a
//! Prometheus running `deploy/scale-out/prometheus.yml` (only addresses,
//! paths and intervals replaced) over 22 loopback TLS targets from
//! `file_sd_configs`, plus one target outside the allowlist. Every target
//! is probed by exactly one replica (their logs say which), every series
//! arrives, the shipped alert rules (`for:` shortened) fire for exactly
//! the right targets; then one replica stops, and its share — only its
//! share — goes down and pages.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::*;

/// Loopback TLS targets; two of them with problems the rules must name.
const TARGETS: usize = 22;
const CRITICAL: usize = 3;
const EXPIRED: usize = 7;
/// How long Prometheus may take to get somewhere.
const SETTLE: Duration = Duration::from_secs(40);

/// `text` with `from` replaced by `to`, which must occur: a change to the
/// shipped files that this test no longer exercises fails here.
fn replaced(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "{from:?} is gone from the shipped file"
    );
    text.replace(from, to)
}

/// A listener on 127.0.0.2 that counts the connections it is offered:
/// the allowlist must make sure there are none.
fn outside_listener() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.2:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(1000) {
            if stream.is_ok() {
                seen.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    (addr, count)
}

/// The firing alerts named `name`, as (label value of `key`, value).
fn firing(prom: &Prometheus, name: &str, key: &str) -> BTreeMap<String, f64> {
    let alerts = prom.get_json("/api/v1/alerts");
    alerts["data"]["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["state"] == "firing" && a["labels"]["alertname"] == name)
        .map(|a| {
            let value = a["value"].as_str().and_then(|v| v.parse().ok());
            (
                a["labels"][key].as_str().unwrap_or_default().to_owned(),
                value.unwrap_or(f64::NAN),
            )
        })
        .collect()
}

/// Waits until the alerts named `name` firing are exactly `want` (by `key`).
fn wait_firing(prom: &Prometheus, name: &str, key: &str, want: &BTreeSet<String>) {
    let deadline = Instant::now() + SETTLE;
    loop {
        let now: BTreeSet<String> = firing(prom, name, key).into_keys().collect();
        if now == *want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: firing for {now:?}, want {want:?}\n{}",
            prom.proc.log_tail()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// The instances Prometheus scrapes from `replica` in the probe job.
fn share(prom: &Prometheus, replica: &str) -> BTreeSet<String> {
    prom.query(&format!(
        "up{{job=\"certinel-probe\",replica=\"{replica}\"}}"
    ))
    .unwrap()
    .iter()
    .map(|s| s["metric"]["instance"].as_str().unwrap().to_owned())
    .collect()
}

/// The targets a replica's log says it was asked to probe.
fn probed_by(d: &Daemon) -> BTreeSet<String> {
    d.logs()
        .iter()
        .filter(|l| l.contains("msg=\"probe request\""))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|f| f.strip_prefix("target="))
                .map(str::to_owned)
        })
        .collect()
}

fn start_replicas(dir: &Path, ca_file: &Path) -> Vec<Daemon> {
    let shipped = std::fs::read_to_string(repo().join("deploy/scale-out/certinel.yaml")).unwrap();
    let config = replaced(
        &replaced(
            &shipped,
            "networks: [10.0.0.0/8, 192.0.2.0/24]",
            "networks: [127.0.0.1/32]",
        ),
        "/etc/certinel/ca.crt",
        &yaml_str(ca_file),
    );
    (0..2)
        .map(|i| Daemon::start(&dir.join(format!("replica-{i}")), &config))
        .collect()
}

fn prometheus_config(dir: &Path, replicas: &[Daemon], targets: &Path) -> String {
    let shipped = std::fs::read_to_string(repo().join("deploy/scale-out/prometheus.yml")).unwrap();
    let (rules, _) = rules_with_short_for(dir);
    let mut text = shipped;
    for (i, d) in replicas.iter().enumerate() {
        text = replaced(
            &text,
            &format!("certinel-{i}.example.internal:10044"),
            &d.addr.to_string(),
        );
    }
    for (from, to) in [
        ("scrape_interval: 1m", format!("scrape_interval: {TICK}")),
        ("scrape_timeout: 10s", format!("scrape_timeout: {TICK}")),
        (
            "evaluation_interval: 1m",
            format!("evaluation_interval: {TICK}"),
        ),
        (
            "files: [\"targets/*.yml\"]",
            format!("files: [{}]", yaml_str(targets)),
        ),
        (
            "  - certinel.rules.yml",
            format!("  - {}", yaml_str(&rules)),
        ),
    ] {
        text = replaced(&text, from, &to);
    }
    text
}

#[test]
fn prometheus_spreads_targets_over_replicas_and_pages_for_the_one_that_stops() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("scale-out CA");
    let ca_file = write(dir.path(), "ca.pem", &ca.cert.cert_pem);
    let servers: Vec<TestServer> = (0..TARGETS)
        .map(|i| {
            let leaf = match i {
                CRITICAL => ca.issue(&Leaf::server("critical", 5)),
                EXPIRED => leaf_expired(&ca),
                _ => ca.issue(&Leaf::server(&format!("svc-{i}"), 90)),
            };
            tls_server(&leaf, &ServerOptions::default())
        })
        .collect();
    let name = |i: usize| servers[i].addr.to_string();
    let (outside, reached) = outside_listener();
    let listed: Vec<String> = (0..TARGETS).map(|i| format!("\"{}\"", name(i))).collect();
    let targets = write(
        dir.path(),
        "targets/tls.yml",
        format!(
            "- targets: [{}]\n  labels:\n    module: internal\n- targets: [\"{outside}\"]\n",
            listed.join(", ")
        ),
    );
    let mut replicas = start_replicas(dir.path(), &ca_file);
    let prom = Prometheus::start_with_config(
        &dir.path().join("prometheus"),
        &prometheus_config(dir.path(), &replicas, &targets),
    );
    let addrs: Vec<String> = replicas.iter().map(|d| d.addr.to_string()).collect();

    // Every target has been scraped, and every allowed one answered.
    prom.wait_query(
        "count(up{job=\"certinel-probe\"} == 1) == 22 and count(up{job=\"certinel-probe\"}) == 23",
        SETTLE,
        |r| !r.is_empty(),
    );

    // Each replica got a share, and the shares split the targets.
    let shares: Vec<BTreeSet<String>> = addrs.iter().map(|a| share(&prom, a)).collect();
    assert!(shares.iter().all(|s| !s.is_empty()), "{shares:?}");
    assert!(shares[0].is_disjoint(&shares[1]), "{shares:?}");
    let all: BTreeSet<String> = shares[0].union(&shares[1]).cloned().collect();
    assert_eq!(all.len(), TARGETS + 1, "{all:?}");
    // Each probed exactly by the replica Prometheus sends it to: the
    // replicas' own logs.
    for (i, d) in replicas.iter().enumerate() {
        let probed = probed_by(d);
        let allowed: BTreeSet<String> = shares[i]
            .iter()
            .filter(|t| **t != outside.to_string())
            .cloned()
            .collect();
        assert!(
            probed.is_superset(&allowed),
            "replica {i}: {probed:?} vs {allowed:?}"
        );
        assert!(
            probed.is_disjoint(&shares[1 - i]),
            "replica {i} probed another's target"
        );
    }

    // Every series of every target is in Prometheus.
    for i in 0..TARGETS {
        let t = name(i);
        for metric in [
            format!("x509_cert_not_after{{instance=\"{t}\",source_kind=\"probe\",source_name=\"internal\",chain_index=\"0\"}}"),
            format!("certinel_tls_handshake_error{{instance=\"{t}\",address=\"{t}\"}}"),
            format!("probe_duration_seconds{{instance=\"{t}\"}}"),
        ] {
            let r = prom.query(&metric).unwrap();
            assert_eq!(r.len(), 1, "{metric}: {r:?}");
        }
        let success = sample_value(
            &prom
                .query(&format!("probe_success{{instance=\"{t}\"}}"))
                .unwrap()[0],
        );
        assert_eq!(success, if i == EXPIRED { 0.0 } else { 1.0 }, "{t}");
    }

    // The rules fire for the right targets, and for nothing else.
    let (critical, expired) = (name(CRITICAL), name(EXPIRED));
    let outside_s = outside.to_string();
    wait_firing(
        &prom,
        "CertinelCertExpiringCritical",
        "instance",
        &set(&[&critical]),
    );
    wait_firing(&prom, "CertinelCertExpired", "instance", &set(&[&expired]));
    wait_firing(
        &prom,
        "VarpulisCertExpiringSoon",
        "instance",
        &set(&[&critical, &expired]),
    );
    wait_firing(
        &prom,
        "CertinelTLSHandshakeFailing",
        "instance",
        &set(&[&expired]),
    );
    wait_firing(
        &prom,
        "CertinelProbeRefused",
        "instance",
        &set(&[&outside_s]),
    );
    assert!(firing(&prom, "CertinelProbeReplicaDown", "replica").is_empty());
    assert!(firing(&prom, "CertinelDown", "instance").is_empty());
    prom.assert_rules_healthy();
    assert_eq!(
        reached.load(Ordering::SeqCst),
        0,
        "a target outside probe.allow was reached"
    );

    // One replica stops: its share, and only its share, goes down, and
    // one alert pages for it (plus its own /metrics target).
    let stopped = addrs[1].clone();
    let exited = replicas.remove(1).terminate();
    assert!(exited.status.success(), "{:?}", exited.status);
    let down_share = shares[1].len();
    prom.wait_query(
        &format!("count(up{{job=\"certinel-probe\",replica=\"{stopped}\"}} == 0) == {down_share}"),
        SETTLE,
        |r| !r.is_empty(),
    );
    let pages = {
        let deadline = Instant::now() + SETTLE;
        loop {
            let pages = firing(&prom, "CertinelProbeReplicaDown", "replica");
            if !pages.is_empty() || Instant::now() > deadline {
                break pages;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    };
    assert_eq!(
        pages,
        BTreeMap::from([(stopped.clone(), down_share as f64)]),
        "{}",
        prom.proc.log_tail()
    );
    wait_firing(&prom, "CertinelDown", "instance", &set(&[&stopped]));
    // The other replica's share is still probed.
    for t in shares[0].iter().filter(|t| **t != outside_s) {
        let up = prom
            .query(&format!("up{{job=\"certinel-probe\",instance=\"{t}\"}}"))
            .unwrap();
        assert_eq!(sample_value(&up[0]), 1.0, "{t}");
    }
    let answered = prom
        .query("sum(certinel_probe_requests_total{outcome=~\"success|failure\"})")
        .unwrap();
    assert!(sample_value(&answered[0]) >= TARGETS as f64, "{answered:?}");
    drop(servers);
    eprintln!("scale-out end to end: {:?}", started.elapsed());
}

#[test]
fn the_shipped_scale_out_files_are_valid() {
    // The certinel config, with its CA file present.
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("shipped CA");
    let ca_file = write(dir.path(), "ca.crt", &ca.cert.cert_pem);
    let shipped = std::fs::read_to_string(repo().join("deploy/scale-out/certinel.yaml")).unwrap();
    let config = replaced(&shipped, "/etc/certinel/ca.crt", &yaml_str(&ca_file));
    let path = write(dir.path(), "certinel.yaml", config);
    let out = config_check(&path);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains("/probe enabled with 2 module(s)"),
        "{}",
        out.stdout
    );
    // promtool agrees with the Prometheus config, rules beside it.
    let prom_dir = dir.path().join("prom");
    std::fs::create_dir_all(prom_dir.join("targets")).unwrap();
    for f in ["prometheus.yml", "targets/tls.yml"] {
        std::fs::copy(repo().join("deploy/scale-out").join(f), prom_dir.join(f)).unwrap();
    }
    std::fs::copy(
        repo().join("alerts/certinel.rules.yml"),
        prom_dir.join("certinel.rules.yml"),
    )
    .unwrap();
    run_ok(
        std::process::Command::new(promtool())
            .args(["check", "config", "prometheus.yml"])
            .current_dir(&prom_dir),
    );
    // Every module a target file names exists in the certinel config.
    let targets: Value =
        serde_norway::from_str(&std::fs::read_to_string(prom_dir.join("targets/tls.yml")).unwrap())
            .unwrap();
    let config: Value = serde_norway::from_str(&shipped).unwrap();
    for group in targets.as_array().unwrap() {
        if let Some(module) = group["labels"]["module"].as_str() {
            assert!(
                config["modules"].get(module).is_some(),
                "no module {module}"
            );
        }
    }
}
