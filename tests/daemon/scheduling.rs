//! Resilience: scrapes stay fast and good targets keep their interval while
//! black holes (accept, never answer) take probes, the one concurrency
//! permit, or the first lane.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::*;

#[test]
fn scrapes_stay_fast_while_50_black_hole_probes_are_pending() {
    let (hole, accepted) = black_hole();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("bh-ca");
    let good = ca.issue(&Leaf::server("good-file", 30));
    let path = write(dir.path(), "good.pem", &good.cert_pem);
    let mut config = format!(
        "global:\n  interval: 1h\n  timeout: 10s\n  concurrency: 64\n\
         files:\n  - name: good-file\n    paths: [{}]\n\
         endpoints:\n  - name: black-holes\n    timeout: 10s\n    targets:\n",
        yaml_str(&path)
    );
    for i in 0..50 {
        config.push_str(&format!(
            "      - {{ target: \"{hole}\", server_name: \"bh-{i}.test\" }}\n"
        ));
    }
    let d = Daemon::start(dir.path(), &config);
    wait_count(&accepted, 50, Duration::from_secs(5));
    d.wait_for(Duration::from_secs(5), |m| {
        m.has("x509_cert_not_after", &[("source_name", "good-file")])
    });
    for i in 0..20 {
        let started = Instant::now();
        let m = d.metrics();
        let took = started.elapsed();
        assert!(
            took < Duration::from_millis(500),
            "scrape {i} took {took:?} while probes were pending"
        );
        assert!(m.has("x509_cert_not_after", &[("source_name", "good-file")]));
    }
    // The probes were still pending all along.
    assert_eq!(d.get("/-/ready").0, 503, "black holes answered?");
    assert_eq!(
        d.metrics()
            .find(
                "certinel_tls_handshake_error",
                &[("source_name", "black-holes")]
            )
            .len(),
        0
    );
}

#[test]
fn dead_targets_never_delay_a_good_endpoint() {
    let (hole, accepted) = black_hole();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("mixed-ca");
    let leaf = ca.issue(&Leaf::server("good-endpoint", 30));
    let server = tls_server(&leaf, &ServerOptions::default());
    write(dir.path(), "ca.pem", &ca.cert.cert_pem);
    let mut config = String::from(
        "global:\n  interval: 1h\n  timeout: 10s\n  concurrency: 64\n\
         endpoints:\n  - name: mixed\n    ca_file: ca.pem\n    timeout: 10s\n    targets:\n",
    );
    for i in 0..20 {
        config.push_str(&format!(
            "      - {{ target: \"{hole}\", server_name: \"dead-{i}.test\" }}\n"
        ));
    }
    // Listed last, so a sequential prober would reach it last.
    let good = format!("localhost:{}", server.addr.port());
    config.push_str(&format!("      - \"{good}\"\n"));
    let d = Daemon::start(dir.path(), &config);
    let m = d.wait_for(Duration::from_secs(3), |m| {
        m.has(
            "x509_cert_not_after",
            &[("target", good.as_str()), ("subject_CN", "good-endpoint")],
        )
    });
    assert_eq!(
        m.value(
            "certinel_tls_handshake_error",
            &[
                ("target", good.as_str()),
                ("address", &server.addr.to_string())
            ]
        ),
        0.0
    );
    wait_count(&accepted, 20, Duration::from_secs(5));
    assert_eq!(d.get("/-/ready").0, 503, "black holes still pending");
}

/// `count` endpoint targets on the one black hole at `hole`, told apart by
/// their server names, as items of a YAML `targets:` list.
fn black_hole_targets(hole: SocketAddr, count: usize) -> String {
    (0..count)
        .map(|i| format!("      - {{ target: \"{hole}\", server_name: \"slow-{i}.test\" }}\n"))
        .collect()
}

/// Waits until `count` targets of `source` have reported a `timeout`.
fn wait_timed_out(d: &Daemon, source: &str, count: usize, limit: Duration) {
    d.wait_for(limit, |m| {
        m.find(
            "certinel_tls_handshake_error_info",
            &[("source_name", source), ("reason", "timeout")],
        )
        .len()
            >= count
    });
}

/// Seconds since `target` (a single address) was last probed.
fn probe_age(m: &Exposition, target: &str) -> f64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    now - m.value(
        "certinel_tls_last_probe_timestamp_seconds",
        &[("target", target)],
    )
}

/// Scrapes for `window` and fails as soon as `target`'s last probe is
/// older than `max_age` seconds.
fn assert_probed_every(d: &Daemon, target: &str, max_age: f64, window: Duration) {
    let end = Instant::now() + window;
    while Instant::now() < end {
        let age = probe_age(&d.metrics(), target);
        assert!(
            age <= max_age,
            "{target} was last probed {age:.2}s ago (interval 1s, limit {max_age}s): \
             it waited behind targets that time out"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The configuration both lane tests share: one permit, a 1 s interval, and
/// 20 black-hole targets with a 200 ms timeout, which would take the permit
/// 4 s out of every second; `extra` adds more `endpoints` items.
fn one_permit_beside_black_holes(hole: SocketAddr, extra: &str) -> String {
    format!(
        "global:\n  interval: 1s\n  concurrency: 1\n\
         endpoints:\n{extra}  - name: black-holes\n    timeout: 200ms\n    targets:\n{}",
        black_hole_targets(hole, 20)
    )
}

#[test]
fn targets_that_answer_keep_their_interval_beside_targets_that_time_out() {
    let (hole, _) = black_hole();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("lane-ca");
    let leaf = ca.issue(&Leaf::server("live", 30));
    let server = tls_server(&leaf, &ServerOptions::default());
    write(dir.path(), "ca.pem", &ca.cert.cert_pem);
    let live = format!("127.0.0.1:{}", server.addr.port());
    let config = one_permit_beside_black_holes(
        hole,
        &format!(
            "  - name: live\n    ca_file: ca.pem\n    timeout: 1s\n    targets: [\"{live}\"]\n"
        ),
    );
    let d = Daemon::start(dir.path(), &config);
    // In the first round every target is in the main lane, so the live one
    // may wait; from the second on, the black holes are in the slow lane.
    wait_timed_out(&d, "black-holes", 20, Duration::from_secs(15));
    d.wait_for(Duration::from_secs(6), |m| probe_age(m, &live) < 1.5);
    assert_probed_every(&d, &live, 2.5, Duration::from_secs(5));
}

#[test]
fn a_target_that_answers_again_no_longer_waits_behind_targets_that_time_out() {
    let (hole, _) = black_hole();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("lane-ca");
    let leaf = ca.issue(&Leaf::server("flaky", 30));
    write(dir.path(), "ca.pem", &ca.cert.cert_pem);
    let answering = Arc::new(AtomicBool::new(false));
    let flag = answering.clone();
    let addr = raw_server(move |mut stream| {
        if flag.load(Ordering::SeqCst) {
            finish_tls(stream, &leaf);
            return;
        }
        let mut buf = [0u8; 4096];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
        }
    });
    let flaky = addr.to_string();
    let config = one_permit_beside_black_holes(
        hole,
        &format!(
            "  - name: flaky\n    ca_file: ca.pem\n    timeout: 1s\n    targets: [\"{flaky}\"]\n"
        ),
    );
    let d = Daemon::start(dir.path(), &config);
    wait_timed_out(&d, "flaky", 1, Duration::from_secs(15));
    wait_timed_out(&d, "black-holes", 20, Duration::from_secs(15));
    answering.store(true, Ordering::SeqCst);
    // Still in the slow lane for this one probe, behind the black holes.
    d.wait_for(Duration::from_secs(15), |m| {
        m.find(
            "certinel_tls_handshake_error",
            &[("target", flaky.as_str())],
        )
        .first()
        .is_some_and(|s| s.value == 0.0)
    });
    d.wait_for(Duration::from_secs(6), |m| probe_age(m, &flaky) < 1.5);
    assert_probed_every(&d, &flaky, 2.5, Duration::from_secs(5));
}

/// `holes` black-hole targets (5 s timeout) listed before one live target,
/// with a single permit: the configuration of the first-round tests.
fn live_target_after_black_holes(
    dir: &std::path::Path,
    hole: SocketAddr,
    holes: usize,
) -> (String, TestServer) {
    let ca = Ca::new("first-round-ca");
    let leaf = ca.issue(&Leaf::server("live", 30));
    let server = tls_server(&leaf, &ServerOptions::default());
    write(dir, "ca.pem", &ca.cert.cert_pem);
    let live = format!("127.0.0.1:{}", server.addr.port());
    let config = format!(
        "global:\n  interval: 1h\n  concurrency: 1\n\
         endpoints:\n  - name: black-holes\n    timeout: 5s\n    targets:\n{}\
         \x20 - name: live\n    ca_file: ca.pem\n    timeout: 5s\n    targets: [\"{live}\"]\n",
        black_hole_targets(hole, holes)
    );
    (config, server)
}

#[test]
fn first_round_reaches_a_live_target_without_waiting_out_black_holes() {
    // One permit and 15 black holes ahead of the live target in the queue:
    // waiting out their deadlines one after the other would take 75 s.
    let (hole, accepted) = black_hole();
    let dir = tempfile::tempdir().unwrap();
    let (config, server) = live_target_after_black_holes(dir.path(), hole, 15);
    let started = Instant::now();
    let d = Daemon::start(dir.path(), &config);
    let live = format!("127.0.0.1:{}", server.addr.port());
    d.wait_for(Duration::from_secs(4), |m| {
        m.has("x509_cert_not_after", &[("target", live.as_str())])
    });
    // The black holes are all still waiting on their deadlines: each got
    // its one connection (the server counts it on its own thread, so the
    // last may lag the live target's result by a moment) and none retried.
    assert!(started.elapsed() < Duration::from_secs(5));
    wait_count(&accepted, 15, Duration::from_secs(2));
    assert_eq!(accepted.load(Ordering::SeqCst), 15);
    assert!(d
        .metrics()
        .find(
            "certinel_tls_handshake_error_info",
            &[("reason", "timeout")]
        )
        .is_empty());
}

#[test]
fn parked_probes_are_bounded_so_sockets_stay_bounded() {
    // One permit gives 16 parked slots: with 40 black holes, 16 park and
    // one more holds the permit; the rest wait for their deadlines.
    let (hole, accepted) = black_hole();
    let dir = tempfile::tempdir().unwrap();
    let (config, _server) = live_target_after_black_holes(dir.path(), hole, 40);
    let d = Daemon::start(dir.path(), &config);
    wait_count(&accepted, 17, Duration::from_secs(3));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        17,
        "more sockets than permits and parking"
    );
    drop(d);
}

#[test]
fn only_first_probes_park_so_later_silences_hold_their_permit() {
    // Eight targets answer their first probe and then go silent. With one
    // permit per lane, their later probes wait for it (main lane, then
    // slow lane once they timed out): two at once, and a third while the
    // server thread has yet to see a closed one's end. Parking them would
    // put all eight in flight.
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("silent-later-ca");
    let leaf = ca.issue(&Leaf::server("silent-later", 30));
    write(dir.path(), "ca.pem", &ca.cert.cert_pem);
    let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (open, most_open) = (
        Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        Arc::new(std::sync::atomic::AtomicUsize::new(0)),
    );
    let (seen, now_open, max_open) = (connections.clone(), open.clone(), most_open.clone());
    let addr = raw_server(move |mut stream| {
        if seen.fetch_add(1, Ordering::SeqCst) < 8 {
            finish_tls(stream, &leaf);
            return;
        }
        let n = now_open.fetch_add(1, Ordering::SeqCst) + 1;
        max_open.fetch_max(n, Ordering::SeqCst);
        let mut buf = [0u8; 4096];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
        }
        now_open.fetch_sub(1, Ordering::SeqCst);
    });
    let targets: String = (0..8)
        .map(|i| format!("      - {{ target: \"{addr}\", server_name: \"later-{i}.test\" }}\n"))
        .collect();
    let config = format!(
        "global:\n  interval: 1s\n  concurrency: 1\n\
         endpoints:\n  - name: silent-later\n    ca_file: ca.pem\n    timeout: 1s\n    targets:\n{targets}"
    );
    let d = Daemon::start(dir.path(), &config);
    wait_count(&connections, 12, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(1500));
    let most = most_open.load(Ordering::SeqCst);
    assert!(
        most <= 3,
        "{most} silent probes at once: later probes parked beside the permits"
    );
    drop(d);
}
