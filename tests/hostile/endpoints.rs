//! The hostile endpoint table: every case is one loopback server, one line
//! here with the reason certinel must give for it. One daemon probes them
//! all (plus a good endpoint and a good file), under a watchdog; it starts
//! with only the good sources, takes the hostile ones on by reload, and
//! drops them by reload again, so descriptors and memory can be compared
//! with a baseline no hostile probe was in flight for.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::der::RawCert;
use super::flight::{self, alert, record, server_hello};
use super::{open_fds, resting, rss_kib, Watchdog};
use crate::common::*;

/// Which endpoint source a case belongs to (STARTTLS is per source).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Src {
    Tls,
    Smtp,
    Imap,
    Postgres,
}

impl Src {
    const ALL: [Src; 4] = [Src::Tls, Src::Smtp, Src::Imap, Src::Postgres];

    fn name(self) -> &'static str {
        match self {
            Src::Tls => "hostile-tls",
            Src::Smtp => "hostile-smtp",
            Src::Imap => "hostile-imap",
            Src::Postgres => "hostile-postgres",
        }
    }

    fn starttls(self) -> &'static str {
        match self {
            Src::Tls => "",
            Src::Smtp => "    starttls: smtp\n",
            Src::Imap => "    starttls: imap\n",
            Src::Postgres => "    starttls: postgres\n",
        }
    }
}

/// One hostile endpoint and what certinel must say about it.
struct Case {
    name: &'static str,
    src: Src,
    /// `host:port` as configured.
    target: String,
    /// The reason, or `None` for a probe that must succeed.
    reason: Option<&'static str>,
    /// Certificates that must be exported for it, when that matters.
    chain: Option<usize>,
}

/// Everything the servers share: the stop flag that ends every held
/// connection, and listeners that must stay open but never accept.
struct Servers {
    stop: Arc<AtomicBool>,
    idle: Vec<TcpListener>,
    tls: Vec<TestServer>,
}

impl Drop for Servers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Sleeps in short steps until `stop` is set or `limit` has passed: the
/// bounded "hold the connection" of every hostile server.
fn hold(stop: &AtomicBool, limit: Duration) {
    let deadline = Instant::now() + limit;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads one TLS record (the ClientHello); false if none came.
fn read_record(s: &mut TcpStream) -> bool {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut header = [0u8; 5];
    if s.read_exact(&mut header).is_err() {
        return false;
    }
    let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).is_ok()
}

fn read_line(s: &mut TcpStream) -> String {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while s.read(&mut b).map(|n| n == 1).unwrap_or(false) && b[0] != b'\n' {
        line.push(b[0]);
    }
    String::from_utf8_lossy(&line).into_owned()
}

/// Closes with RST instead of FIN: SO_LINGER with a zero timeout.
#[allow(unsafe_code)]
fn reset(s: TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a pointer to a live `linger` of the size
    // passed.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            std::ptr::addr_of!(linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
    drop(s);
}

/// After its flight, what a scripted server does with the connection.
#[derive(Clone, Copy)]
enum Then {
    Close,
    Hold,
    Reset,
}

impl Servers {
    fn new() -> Servers {
        Servers {
            stop: Arc::new(AtomicBool::new(false)),
            idle: Vec::new(),
            tls: Vec::new(),
        }
    }

    /// A server that runs `script` on each connection, then does `then`.
    fn script(
        &self,
        then: Then,
        script: impl Fn(&mut TcpStream, &AtomicBool) + Send + Sync + 'static,
    ) -> SocketAddr {
        let stop = self.stop.clone();
        raw_server(move |mut s| {
            script(&mut s, &stop);
            match then {
                Then::Close => drop(s),
                Then::Hold => hold(&stop, Duration::from_secs(10)),
                Then::Reset => reset(s),
            }
        })
    }

    /// Reads the ClientHello, answers `reply`, then does `then`.
    fn answer(&self, reply: Vec<u8>, then: Then) -> SocketAddr {
        self.script(then, move |s, _| {
            if read_record(s) {
                let _ = s.write_all(&reply);
            }
        })
    }

    /// Writes `chunk` over and over (after reading the ClientHello if
    /// `read_first`), for at most 10 s.
    fn endless(&self, read_first: bool, chunk: Vec<u8>) -> SocketAddr {
        self.script(Then::Close, move |s, stop| {
            if read_first && !read_record(s) {
                return;
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                if s.write_all(&chunk).is_err() {
                    return;
                }
            }
        })
    }

    /// Accepts nothing: connections complete in the kernel's backlog.
    fn never_accepts(&mut self) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        self.idle.push(l);
        addr
    }

    fn tls(&mut self, leaf: &Minted, opts: &ServerOptions) -> SocketAddr {
        let server = tls_server(leaf, opts);
        let addr = server.addr;
        self.tls.push(server);
        addr
    }
}

fn at(addr: SocketAddr) -> String {
    addr.to_string()
}

fn c(name: &'static str, src: Src, target: String, reason: &'static str) -> Case {
    Case {
        name,
        src,
        target,
        reason: Some(reason),
        chain: None,
    }
}

fn with_chain(mut case: Case, chain: usize) -> Case {
    case.chain = Some(chain);
    case
}

/// A common name that tries to break the terminal and the exposition.
const EVIL_CN: &str = "evil\u{1b}[2J\r\0\"} 1\nfake_metric 1";

/// PEMs of `n` hand-built certificates whose CN is `pad` bytes long.
fn filler_chain(n: usize, pad: usize) -> Vec<String> {
    (0..n)
        .map(|i| RawCert::new(&format!("{i:04}-{}", "x".repeat(pad))).pem())
        .collect()
}

/// The table. Needs the CA whose file is `ca.crt` in the config's dir.
#[rustfmt::skip]
fn table(s: &mut Servers, ca: &Ca) -> Vec<Case> {
    use Src::*;
    let leaf = |cn: &str| ca.issue(&Leaf::server(cn, 30));
    let expired = ca.issue(&Leaf { not_before: now() - 30 * DAY, not_after: now() - DAY, ..Leaf::server("expired", 0) });
    let future = ca.issue(&Leaf { not_before: now() + DAY, not_after: now() + 30 * DAY, ..Leaf::server("future", 0) });
    let wrong_name = ca.issue(&Leaf { sans: &["elsewhere.example"], ..Leaf::server("elsewhere", 30) });
    let client_only = ca.issue(&Leaf { client_auth_only: true, ..Leaf::server("client-only", 30) });
    let stranger = Ca::new("a stranger's CA").issue(&Leaf::server("stranger", 30));
    let selfie = self_signed("selfie", now() + 30 * DAY);
    let evil = ca.issue(&Leaf::server(EVIL_CN, 30));
    let mtls = ServerOptions { client_ca: Some(ca.cert.cert_pem.clone()), ..Default::default() };
    let small_chain = ServerOptions { chain: filler_chain(200, 0), ..Default::default() };
    let large_chain = ServerOptions { chain: filler_chain(200, 300), ..Default::default() };
    let sh = server_hello(0x03);
    let garbage_cert = [sh.clone(), flight::certificate_records(&[b"certainly not DER"]), flight::key_exchange_and_done()].concat();
    let no_cert = [sh.clone(), flight::certificate_records(&[]), flight::key_exchange_and_done()].concat();
    // A Certificate message announcing 100 000 bytes: over rustls' 64 KiB.
    let oversized = [sh.clone(), record(0x16, 0x03, &[&[0x0b, 0x01, 0x86, 0xa0][..], &[0u8; 1000]].concat())].concat();
    let slow = s.script(Then::Close, |s, stop| {
        if read_record(s) {
            for b in server_hello(0x03) {
                if stop.load(Ordering::Relaxed) || s.write_all(&[b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    });
    let dns = format!("{}.invalid:443", "a".repeat(70));

    vec![
        // Not TLS at all.
        c("http", Tls, at(s.script(Then::Close, |s, _| { let _ = s.read(&mut [0u8; 1024]); let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"); })), "not_tls"),
        c("ssh-banner", Tls, at(s.script(Then::Hold, |s, _| { let _ = s.write_all(b"SSH-2.0-OpenSSH_9.6p1 Debian\r\n"); })), "not_tls"),
        c("endless-zeros", Tls, at(s.endless(true, vec![0u8; 4096])), "not_tls"),
        c("endless-text-unread", Tls, at(s.endless(false, b"AAAAAAAA".repeat(512))), "not_tls"),
        // TLS records, then nonsense: a TLS server breaking the protocol.
        c("server-hello-then-garbage", Tls, at(s.answer([sh.clone(), b"GARBAGE GARBAGE GARBAGE".to_vec()].concat(), Then::Hold)), "handshake_failure"),
        c("application-data-first", Tls, at(s.answer(record(0x17, 0x03, b"early"), Then::Hold)), "handshake_failure"),
        c("empty-handshake-records", Tls, at(s.endless(true, record(0x16, 0x03, &[]))), "handshake_failure"),
        c("endless-ccs", Tls, at(s.endless(true, record(0x14, 0x03, &[0x01]))), "handshake_failure"),
        c("client-hello-echoed", Tls, at(s.script(Then::Hold, |s, _| { let mut buf = [0u8; 4096]; let _ = s.set_read_timeout(Some(Duration::from_secs(5))); while let Ok(n @ 1..) = s.read(&mut buf) { if s.write_all(&buf[..n]).is_err() { break; } } })), "not_tls"),
        // Transport.
        c("refused", Tls, at(closed_port()), "refused"),
        c("dns", Tls, dns, "dns"),
        c("close-at-once", Tls, at(s.script(Then::Close, |_, _| {})), "reset"),
        c("rst-at-once", Tls, at(s.script(Then::Reset, |_, _| {})), "reset"),
        c("rst-after-hello", Tls, at(s.script(Then::Reset, |s, _| { read_record(s); })), "reset"),
        c("server-hello-then-close", Tls, at(s.answer(sh.clone(), Then::Close)), "reset"),
        c("silent", Tls, at(s.script(Then::Hold, |_, _| {})), "timeout"),
        c("never-accepts", Tls, at(s.never_accepts()), "timeout"),
        c("slowloris", Tls, at(slow), "timeout"),
        // TLS, refused by the peer.
        c("alert-handshake-failure", Tls, at(s.answer(alert(0x03, 40), Then::Hold)), "handshake_failure"),
        c("alert-internal-error", Tls, at(s.answer(alert(0x03, 80), Then::Hold)), "handshake_failure"),
        c("alert-protocol-version", Tls, at(s.answer(alert(0x01, 70), Then::Hold)), "protocol_version"),
        c("tls10-server-hello", Tls, at(s.answer(server_hello(0x01), Then::Hold)), "protocol_version"),
        c("ssl3-server-hello", Tls, at(s.answer(server_hello(0x00), Then::Hold)), "protocol_version"),
        c("client-cert-required", Tls, at(s.tls(&leaf("mtls"), &mtls)), "client_cert_required"),
        // The certificate.
        with_chain(c("garbage-der-certificate", Tls, at(s.answer(garbage_cert, Then::Hold)), "bad_certificate"), 0),
        c("no-certificate", Tls, at(s.answer(no_cert, Then::Hold)), "bad_certificate"),
        c("oversized-certificate-message", Tls, at(s.answer(oversized, Then::Hold)), "bad_certificate"),
        with_chain(c("chain-200-over-64k", Tls, at(s.tls(&leaf("large-chain"), &large_chain)), "bad_certificate"), 0),
        with_chain(c("client-auth-only-leaf", Tls, at(s.tls(&client_only, &ServerOptions::default())), "bad_certificate"), 1),
        with_chain(c("expired", Tls, at(s.tls(&expired, &ServerOptions::default())), "expired"), 1),
        with_chain(c("not-yet-valid", Tls, at(s.tls(&future, &ServerOptions::default())), "not_yet_valid"), 1),
        with_chain(c("self-signed", Tls, at(s.tls(&selfie, &ServerOptions::default())), "unknown_ca"), 1),
        // The stranger's root is neither served nor trusted: as far as a
        // client can tell, an intermediate is missing.
        with_chain(c("other-ca", Tls, at(s.tls(&stranger, &ServerOptions::default())), "missing_intermediate"), 1),
        with_chain(c("hostname-mismatch", Tls, at(s.tls(&wrong_name, &ServerOptions::default())), "hostname_mismatch"), 1),
        // Odd but valid: exported in full, no error.
        with_chain(Case { reason: None, ..c("chain-200-under-64k", Tls, at(s.tls(&leaf("small-chain"), &small_chain)), "") }, 201),
        with_chain(Case { reason: None, ..c("control-characters-in-cn", Tls, at(s.tls(&evil, &ServerOptions::default())), "") }, 1),
        // STARTTLS gone wrong.
        c("smtp-refused", Smtp, at(s.script(Then::Close, |s, _| { let _ = s.write_all(b"220 mx ESMTP\r\n"); read_line(s); let _ = s.write_all(b"250 mx\r\n"); read_line(s); let _ = s.write_all(b"454 4.7.0 TLS not available\r\n"); })), "starttls"),
        c("smtp-endless-lines", Smtp, at(s.endless(false, b"220-still greeting you\r\n".to_vec())), "starttls"),
        c("smtp-10mb-line", Smtp, at(s.script(Then::Hold, |s, _| { let _ = s.write_all(b"220 "); let _ = s.write_all(&vec![b'x'; 10 << 20]); })), "starttls"),
        c("smtp-greet-then-close", Smtp, at(s.script(Then::Close, |s, _| { let _ = s.write_all(b"220 mx ESMTP\r\n"); })), "starttls"),
        c("smtp-binary-greeting", Smtp, at(s.script(Then::Hold, |s, _| { let _ = s.write_all(&[0xff, 0xfe, 0x00, b'\n']); })), "starttls"),
        c("smtp-silent", Smtp, at(s.script(Then::Hold, |_, _| {})), "timeout"),
        c("smtp-port-speaks-tls", Smtp, at(s.tls(&leaf("implicit-tls"), &ServerOptions::default())), "timeout"),
        c("imap-refused", Imap, at(s.script(Then::Close, |s, _| { let _ = s.write_all(b"* OK IMAP4rev1\r\n"); read_line(s); let _ = s.write_all(b"a1 NO STARTTLS disabled\r\n"); })), "starttls"),
        c("imap-endless-untagged", Imap, at(s.script(Then::Close, |s, stop| { let _ = s.write_all(b"* OK IMAP4rev1\r\n"); read_line(s); while !stop.load(Ordering::Relaxed) && s.write_all(b"* OK still here\r\n").is_ok() {} })), "starttls"),
        c("postgres-no-ssl", Postgres, at(s.script(Then::Close, |s, _| { let _ = s.read(&mut [0u8; 8]); let _ = s.write_all(b"N"); })), "starttls"),
        c("postgres-error", Postgres, at(s.script(Then::Close, |s, _| { let _ = s.read(&mut [0u8; 8]); let _ = s.write_all(b"EFATAL: unsupported frontend protocol\0"); })), "starttls"),
    ]
}

/// The configuration: the good sources always, the hostile ones if given.
fn config(good_target: &str, cases: &[Case]) -> String {
    let mut out = format!(
        "files:\n  - name: good-file\n    paths: [\"good.crt\"]\n    interval: 1s\n\
         endpoints:\n  - name: good-endpoint\n    targets: [\"{good_target}\"]\n    ca_file: ca.crt\n    interval: 1s\n    timeout: 1s\n"
    );
    for src in Src::ALL {
        let targets: Vec<String> = cases
            .iter()
            .filter(|c| c.src == src)
            .map(|c| format!("{:?}", c.target))
            .collect();
        if targets.is_empty() {
            continue;
        }
        out.push_str(&format!(
            "  - name: {}\n    targets: [{}]\n    ca_file: ca.crt\n    interval: 2s\n    timeout: 1s\n{}",
            src.name(),
            targets.join(", "),
            src.starttls()
        ));
    }
    out
}

/// Rewrites the configuration and reloads; waits until it took effect.
fn reload(daemon: &Daemon, dir: &Path, config: &str, hostile: bool) {
    write(dir, "certinel.yaml", config);
    daemon.signal("HUP");
    daemon.wait_for(Duration::from_secs(10), |m| {
        m.has("x509_source_up", &[("source_name", Src::Tls.name())]) == hostile
    });
}

/// The problems of one exposition, case by case.
fn check(m: &Exposition, cases: &[Case]) -> Vec<String> {
    let mut problems = Vec::new();
    for c in cases {
        let at = [("source_name", c.src.name()), ("target", c.target.as_str())];
        let reasons: Vec<&str> = m
            .find("certinel_tls_handshake_error_info", &at)
            .iter()
            .map(|s| s.labels["reason"].as_str())
            .collect();
        let want: Vec<&str> = c.reason.into_iter().collect();
        if reasons != want {
            problems.push(format!("{}: reasons {reasons:?}, want {want:?}", c.name));
        }
        let failing: Vec<f64> = m
            .find("certinel_tls_handshake_error", &at)
            .iter()
            .map(|s| s.value)
            .collect();
        let want_failing = if c.reason.is_some() { 1.0 } else { 0.0 };
        if failing != [want_failing] {
            problems.push(format!("{}: handshake_error {failing:?}", c.name));
        }
        if let Some(n) = c.chain {
            let seen = m.find("x509_cert_not_after", &at).len();
            if seen != n {
                problems.push(format!(
                    "{}: {seen} certificates exported, want {n}",
                    c.name
                ));
            }
        }
    }
    problems
}

/// The daemon's log lines about failing probes, for failure messages.
fn failure_logs(daemon: &Daemon) -> String {
    let lines: Vec<String> = daemon
        .logs()
        .into_iter()
        .filter(|l| l.contains("detail="))
        .collect();
    lines.join("\n")
}

fn probed_at(m: &Exposition, target: &str) -> f64 {
    m.value(
        "certinel_tls_last_probe_timestamp_seconds",
        &[("source_name", "good-endpoint"), ("target", target)],
    )
}

fn last_run(m: &Exposition, source: &str) -> f64 {
    m.value(
        "certinel_source_last_run_timestamp_seconds",
        &[("source_name", source)],
    )
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn every_hostile_endpoint_gets_its_exact_reason_and_harms_nothing_else() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("hostile endpoints CA");
    write(dir.path(), "ca.crt", &ca.cert.cert_pem);
    let good_file = ca.issue(&Leaf::server("good.file", 40));
    write(dir.path(), "good.crt", &good_file.cert_pem);
    let good = ca.issue(&Leaf::server("good.endpoint", 41));
    let good_server = tls_server(&good, &ServerOptions::default());
    let good_target = format!("localhost:{}", good_server.addr.port());
    let mut servers = Servers::new();
    let cases = table(&mut servers, &ca);

    // Baseline: only the good sources, after their first good scrape.
    let daemon = Daemon::start(dir.path(), &config(&good_target, &[]));
    let pid = daemon.pid();
    let watchdog = Watchdog::start(daemon.addr);
    daemon.wait_for(Duration::from_secs(10), |m| {
        m.has("x509_cert_not_after", &[("source_name", "good-endpoint")])
            && m.has("x509_cert_not_after", &[("source_name", "good-file")])
    });
    let baseline = resting(pid, Duration::from_millis(1500));

    // The hostile sources join. Every case gets its reason.
    reload(&daemon, dir.path(), &config(&good_target, &cases), true);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut problems;
    loop {
        let m = daemon.metrics();
        problems = check(&m, &cases);
        if problems.is_empty() || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}\n\nlogs:\n{}",
        problems.len(),
        problems.join("\n"),
        failure_logs(&daemon)
    );

    let m = daemon.metrics();
    assert!(
        !m.has("fake_metric", &[]),
        "a label broke out of its quotes:\n{}",
        m.text
    );
    assert!(
        m.has(
            "x509_cert_not_after",
            &[(
                "subject_CN",
                "evil\\x1b[2J\\x0d\\x00\"} 1\\x0afake_metric 1"
            )]
        ),
        "{}",
        m.text
    );

    // Several rounds more: the reasons hold, the good ones stay fresh, and
    // descriptors stay bounded while hostile probes are in flight.
    let rounds_from = Instant::now();
    let (mut oldest_probe, mut oldest_pass, mut peak_fds, mut peak_rss) = (0f64, 0f64, 0, 0);
    while rounds_from.elapsed() < Duration::from_secs(10) {
        let m = daemon.metrics();
        let problems = check(&m, &cases);
        assert!(
            problems.is_empty(),
            "after {:?}:\n{}",
            rounds_from.elapsed(),
            problems.join("\n")
        );
        oldest_probe = oldest_probe.max(unix_now() - probed_at(&m, &good_target));
        oldest_pass = oldest_pass.max(unix_now() - last_run(&m, "good-file"));
        peak_fds = peak_fds.max(open_fds(pid));
        peak_rss = peak_rss.max(rss_kib(pid));
        std::thread::sleep(Duration::from_millis(250));
    }
    let m = daemon.metrics();
    assert_eq!(
        m.value(
            "certinel_tls_handshake_error",
            &[("source_name", "good-endpoint")]
        ),
        0.0
    );
    let hostile_probes: f64 = m
        .find("x509_source_errors_total", &[("source_kind", "endpoint")])
        .iter()
        .map(|s| s.value)
        .sum();

    // The hostile sources leave; what they held must be handed back.
    reload(&daemon, dir.path(), &config(&good_target, &[]), false);
    std::thread::sleep(Duration::from_millis(1500));
    let after = resting(pid, Duration::from_millis(1500));
    let report = watchdog.finish();
    assert!(daemon.is_running());
    report.assert_clean();
    eprintln!(
        "hostile endpoints: {} cases, {hostile_probes} failed probes, {} scrapes (slowest {:?}), \
         good endpoint at most {oldest_probe:.2} s old, good file {oldest_pass:.2} s, \
         fds {} → peak {peak_fds} → {}, rss {} → peak {peak_rss} → {} KiB, {:?}",
        cases.len(),
        report.scrapes,
        report.slowest,
        baseline.fds,
        after.fds,
        baseline.rss_kib,
        after.rss_kib,
        started.elapsed()
    );
    // Interval 1 s ± 10 % and a probe of a few ms: anything near 3 s means
    // the good ones waited behind the hostile ones.
    assert!(
        oldest_probe < 2.5,
        "good endpoint went stale: {oldest_probe:.2} s"
    );
    assert!(
        oldest_pass < 2.5,
        "good file went stale: {oldest_pass:.2} s"
    );
    assert!(
        peak_fds <= baseline.fds + 2 * cases.len() + 16,
        "descriptors: baseline {}, peak {peak_fds}",
        baseline.fds
    );
    assert!(
        after.fds <= baseline.fds + 2,
        "descriptors not handed back: baseline {}, after {}",
        baseline.fds,
        after.fds
    );
    assert!(
        after.rss_kib <= baseline.rss_kib + 8 * 1024,
        "memory not handed back: baseline {} KiB, after {} KiB",
        baseline.rss_kib,
        after.rss_kib
    );
    drop(servers);
}
