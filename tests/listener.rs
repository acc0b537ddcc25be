//! certinel's own listener under abuse, with the real binary and real
//! sockets on loopback: a flood of idle connections under a low open-file
//! limit, clients that never read their response, SIGTERM with such
//! connections open, and the lifecycle switch for `POST /-/reload`.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{
    http_request, now, raw_server, tls_server, write, Ca, Daemon, Exposition, Launch, Leaf,
    ServerOptions,
};

// certinel's own constants, restated: the tests wait on them.
/// `listener::HEADER_READ_TIMEOUT`: a connection that sends no request
/// headers is closed then.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// `listener::WRITE_TIMEOUT`: a response the client takes nothing of is
/// abandoned then.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// `shutdown::SHUTDOWN_GRACE`.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// `exposition::KEEP_FOR`: a cached body nobody asked for again this long
/// is dropped from the cache.
const KEEP_FOR: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------
// Helpers.

/// certinel started under the given open-file limits.
fn limited(dir: &Path, config: &str, ulimit: &str) -> Daemon {
    Launch::new(&write(dir, "certinel.yaml", config))
        .ulimit(ulimit)
        .start()
}

/// The first log line containing `needle`.
fn logged(daemon: &Daemon, needle: &str) -> Option<String> {
    daemon.logs().into_iter().find(|l| l.contains(needle))
}

/// The value of `key=` in a logfmt line.
fn field(line: &str, key: &str) -> String {
    let prefix = format!("{key}=");
    line.split_whitespace()
        .find_map(|f| f.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {key} in {line}"))
        .to_owned()
}

/// `GET path` on a fresh connection, waiting up to `patience` for the
/// answer (a connection may first wait for a free slot). Returns the
/// status and the body.
fn get_within(addr: SocketAddr, path: &str, patience: Duration) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(patience)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("no answer to {path} within {patience:?}: {e}"));
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_owned())
}

/// Resident memory of `pid`, in bytes (VmRSS).
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib * 1024
}

/// The hard open-file limit this process runs under (and passes on).
fn hard_nofile_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    line.split_whitespace().nth(4).unwrap().parse().unwrap()
}

/// A file source with one PEM bundle of `copies` certificates (identical,
/// so cheap to parse, but each its own series): a `/metrics` body of about
/// a kilobyte per copy.
fn big_bundle_config(dir: &Path, copies: usize, extra: &str) -> String {
    let ca = Ca::new("listener test CA");
    let leaf = ca.issue(&Leaf::server("bulk", 90));
    write(dir, "certs/bundle.pem", leaf.cert_pem.repeat(copies));
    let path = dir.join("certs/bundle.pem");
    format!(
        "global:\n  interval: 1h\n  max_file_size: 64MiB\nfiles:\n  - name: bulk\n    paths: [\"{}\"]\n{extra}",
        path.display()
    )
}

/// Sends `GET /metrics` and reads only the status line, then nothing more.
fn slow_reader(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: certinel\r\n\r\n")
        .unwrap();
    let mut status = [0u8; 12];
    s.read_exact(&mut status).unwrap();
    assert_eq!(&status, b"HTTP/1.1 200");
    s
}

/// Reads what is left on `s` until the server closes it; `None` if it was
/// still sending after `patience` (the server never gave up on it).
fn bytes_until_closed(s: &mut TcpStream, patience: Duration) -> Option<usize> {
    s.set_read_timeout(Some(patience.min(Duration::from_millis(500))))
        .unwrap();
    let deadline = Instant::now() + patience;
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0;
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return Some(total),
            Ok(n) => total += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Some(total), // reset: closed as well
        }
    }
    None
}

// ---------------------------------------------------------------------------
// Idle connections and file descriptors.

/// Under `ulimit -n 256`, more idle connections than the process has
/// descriptors: probes and file reads keep working (the cap leaves them
/// their reserve), and /metrics answers on a connection opened after the
/// flood as soon as the header timeout frees the slots.
#[test]
fn an_idle_connection_flood_leaves_probes_files_and_metrics_working() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ca = Ca::new("flood CA");
    write(dir, "ca.crt", &ca.cert.cert_pem);
    let server = tls_server(
        &ca.issue(&Leaf::server("flood-target", 30)),
        &ServerOptions::default(),
    );
    let target = format!("127.0.0.1:{}", server.addr.port());
    write(
        dir,
        "certs/own.pem",
        ca.issue(&Leaf::server("before", 30)).cert_pem,
    );
    let config = format!(
        "global:\n  interval: 1s\n  timeout: 1s\n  concurrency: 4\n\
         files:\n  - name: own\n    paths: [\"{}/certs/*.pem\"]\n\
         endpoints:\n  - name: target\n    ca_file: ca.crt\n    targets: [\"{target}\"]\n",
        dir.display()
    );
    let daemon = limited(dir, &config, "-n 256");
    // 256 descriptors, 2 × 4 + 64 kept for the sources.
    let listening = logged(&daemon, "msg=listening").unwrap();
    assert_eq!(field(&listening, "max_connections"), "184", "{listening}");
    assert!(logged(&daemon, "lowered --web.max-connections").is_some());
    let deadline = Instant::now() + Duration::from_secs(10);
    while get_within(daemon.addr, "/-/ready", Duration::from_secs(10)).0 != 200 {
        assert!(Instant::now() < deadline, "not ready");
        std::thread::sleep(Duration::from_millis(50));
    }

    let flood_started = now();
    let flood: Vec<TcpStream> = (0..300)
        .filter_map(|_| TcpStream::connect_timeout(&daemon.addr, Duration::from_secs(2)).ok())
        .collect();
    assert_eq!(
        flood.len(),
        300,
        "connections over the cap wait in the backlog"
    );
    // While every slot is taken: a rotated file is read, probes go on.
    std::thread::sleep(Duration::from_secs(1));
    write(
        dir,
        "certs/own.pem",
        ca.issue(&Leaf::server("after", 30)).cert_pem,
    );
    std::thread::sleep(Duration::from_secs(3));

    let (status, body) = get_within(
        daemon.addr,
        "/metrics",
        HEADER_READ_TIMEOUT + Duration::from_secs(15),
    );
    assert_eq!(status, 200, "{body}");
    let m = Exposition::parse(&body);
    assert!(
        m.has(
            "x509_cert_not_after",
            &[("source_kind", "file"), ("subject_CN", "after")]
        ),
        "the rotated file was not read:\n{body}"
    );
    assert!(!m.has("certinel_file_error_info", &[]), "{body}");
    assert!(
        m.find("x509_source_errors_total", &[])
            .iter()
            .all(|s| s.value == 0.0),
        "a source failed during the flood:\n{body}"
    );
    assert_eq!(
        m.value("certinel_tls_handshake_error", &[("target", &target)]),
        0.0
    );
    let last_probe = m.value(
        "certinel_tls_last_probe_timestamp_seconds",
        &[("target", &target)],
    );
    assert!(
        last_probe >= (flood_started + 20) as f64,
        "probes stopped during the flood: last at {last_probe}, flood at {flood_started}"
    );
    // The first 184 were closed by the header timeout, before their first byte.
    let closed = flood
        .into_iter()
        .filter_map(|mut s| bytes_until_closed(&mut s, Duration::from_millis(50)))
        .count();
    assert!(closed >= 184, "only {closed} idle connections were closed");
}

#[test]
fn the_soft_open_file_limit_is_raised_to_the_hard_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let daemon = limited(
        tmp.path(),
        "files:\n  - name: none\n    paths: [\"/nonexistent/*.pem\"]\n",
        "-Sn 256",
    );
    let (status, body) = get_within(daemon.addr, "/metrics", Duration::from_secs(10));
    assert_eq!(status, 200);
    let max_fds = Exposition::parse(&body).value("process_max_fds", &[]);
    assert_eq!(max_fds, hard_nofile_limit() as f64);
    let listening = logged(&daemon, "msg=listening").unwrap();
    assert_eq!(field(&listening, "max_connections"), "512", "{listening}");
}

// ---------------------------------------------------------------------------
// Clients that never read.

/// Readers that ask for a body of ~20 MB and never read, arriving further
/// apart than the render cache keeps a body: together they hold one body
/// (before: one each), a normal scrape still works meanwhile, and each is
/// cut off once its writes have made no progress for the write timeout.
#[test]
fn slow_readers_share_one_body_and_are_cut_off() {
    let tmp = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(tmp.path(), &big_bundle_config(tmp.path(), 20_000, ""));
    daemon.wait_ready(Duration::from_secs(30));
    let (status, body) = get_within(daemon.addr, "/metrics", Duration::from_secs(30));
    assert_eq!(status, 200);
    let size = body.len() as u64;
    assert!(size > 15_000_000, "body of {size} bytes");
    // That render is dropped from the cache and its memory returned.
    std::thread::sleep(KEEP_FOR + Duration::from_secs(1));
    let before = rss(daemon.pid());

    let mut readers = Vec::new();
    let mut peak = before;
    for _ in 0..5 {
        readers.push(slow_reader(daemon.addr));
        std::thread::sleep(KEEP_FOR + Duration::from_millis(500));
        peak = peak.max(rss(daemon.pid()));
    }
    let (status, normal) = get_within(daemon.addr, "/metrics", Duration::from_secs(30));
    assert_eq!(status, 200);
    let complete = Exposition::parse(&normal)
        .find("x509_cert_not_after", &[])
        .len();
    assert_eq!(
        complete, 20_000,
        "a normal scrape meanwhile got a partial body"
    );
    peak = peak.max(rss(daemon.pid()));
    let growth = peak.saturating_sub(before);
    eprintln!(
        "slow readers: body {size} B, RSS {before} B before, peak +{growth} B ({:.2} bodies)",
        growth as f64 / size as f64
    );
    // One body in each format (OpenMetrics as rendered, text as sent),
    // shared by every reader: not one per reader.
    assert!(
        growth < 3 * size,
        "5 slow readers grew RSS by {growth} B for a body of {size} B"
    );

    // The last one stalled 2.5 s ago: all are past the write timeout soon.
    std::thread::sleep(WRITE_TIMEOUT);
    for (i, reader) in readers.iter_mut().enumerate() {
        let rest = bytes_until_closed(reader, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("slow reader {i} still open after the write timeout"));
        assert!((rest as u64) < size, "slow reader {i} got the whole body");
    }
    std::thread::sleep(Duration::from_secs(1));
    let after = rss(daemon.pid());
    assert!(
        after < before + size / 2,
        "RSS {after} B after the readers were cut off, {before} B before"
    );
}

// ---------------------------------------------------------------------------
// Shutdown.

/// SIGTERM with an idle connection, a half-sent request, a reader that
/// stopped reading, a half-closed connection and a probe in flight: the
/// listener closes at once and the process exits 0 within the grace period.
#[test]
fn sigterm_drains_stalled_connections_within_the_grace_period() {
    let tmp = tempfile::tempdir().unwrap();
    // Accepts, then never says a word: the probe waits out its timeout.
    let hole = raw_server(|stream| {
        std::thread::sleep(Duration::from_secs(40));
        drop(stream);
    });
    let endpoint =
        format!("endpoints:\n  - name: hole\n    timeout: 30s\n    targets: [\"{hole}\"]\n");
    let daemon = Daemon::start(tmp.path(), &big_bundle_config(tmp.path(), 8_000, &endpoint));
    let deadline = Instant::now() + Duration::from_secs(20);
    while daemon
        .metrics()
        .find("x509_cert_not_after", &[("source_name", "bulk")])
        .is_empty()
    {
        assert!(Instant::now() < deadline, "bundle never read");
        std::thread::sleep(Duration::from_millis(100));
    }

    let idle = TcpStream::connect(daemon.addr).unwrap();
    let mut partial = TcpStream::connect(daemon.addr).unwrap();
    partial
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: cer")
        .unwrap();
    let stalled = slow_reader(daemon.addr);
    let mut half_closed = TcpStream::connect(daemon.addr).unwrap();
    half_closed
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: certinel\r\n\r\n")
        .unwrap();
    half_closed.shutdown(Shutdown::Write).unwrap();
    std::thread::sleep(Duration::from_millis(500));

    let signalled = Instant::now();
    daemon.signal("TERM");
    std::thread::sleep(Duration::from_millis(300));
    let refused = TcpStream::connect_timeout(&daemon.addr, Duration::from_secs(1));
    assert!(
        refused.is_err(),
        "still accepting connections after SIGTERM"
    );
    let status = daemon.terminate().status;
    let took = signalled.elapsed();
    eprintln!("SIGTERM with stalled connections: exited after {took:?}");
    assert!(status.success(), "{status:?}");
    assert!(
        took < SHUTDOWN_GRACE + Duration::from_secs(1),
        "exit took {took:?}"
    );
    drop((idle, partial, stalled, half_closed));
}

// ---------------------------------------------------------------------------
// The lifecycle API.

#[test]
fn reload_over_http_needs_the_lifecycle_flag_and_sighup_always_works() {
    let tmp = tempfile::tempdir().unwrap();
    let config = "files:\n  - name: none\n    paths: [\"/nonexistent/*.pem\"]\n";
    let daemon = Daemon::start(tmp.path(), config);
    let (status, body) = http_request(daemon.addr, "POST", "/-/reload");
    assert_eq!(status, 403, "{body}");
    assert!(
        body.starts_with("Lifecycle API is not enabled.")
            && body.contains("--web.enable-lifecycle"),
        "{body}"
    );
    daemon.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while logged(&daemon, "msg=\"configuration reloaded\"").is_none() {
        assert!(Instant::now() < deadline, "SIGHUP did not reload");
        std::thread::sleep(Duration::from_millis(50));
    }

    let tmp = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_with_args(tmp.path(), config, &["--web.enable-lifecycle"]);
    let (status, body) = http_request(daemon.addr, "POST", "/-/reload");
    assert_eq!(status, 200, "{body}");
}
