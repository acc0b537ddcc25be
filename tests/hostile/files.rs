//! The hostile file table: every case is one file in `certs/`, one line
//! here with what certinel must say about it. One daemon watches them all
//! (plus a good file and a good endpoint), under a watchdog.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::der::{self, RawCert};
use super::{label_of, open_fds, resting, Watchdog};
use crate::common::*;

/// How a case's file is made.
enum Make {
    Bytes(Vec<u8>),
    Fifo,
    Socket,
    Dir,
    Symlink(PathBuf),
    /// A sparse file of this size: huge, yet costs no disk.
    Sparse(u64),
    /// Written, then made unreadable (mode 000).
    Unreadable(Vec<u8>),
}

/// A certificate that must be exported: its NotAfter and some labels.
struct CertWant {
    not_after: i64,
    labels: Vec<(&'static str, String)>,
}

/// What certinel must report for one file.
enum Want {
    /// This reason, no certificate.
    Error(&'static str),
    /// These certificates, in file order, and no error.
    Certs(Vec<CertWant>),
    /// These certificates and, beside them, this reason.
    CertsAnd(Vec<CertWant>, &'static str),
}

struct Case {
    name: Vec<u8>,
    make: Make,
    want: Want,
}

fn case(name: impl AsRef<[u8]>, make: Make, want: Want) -> Case {
    Case {
        name: name.as_ref().to_vec(),
        make,
        want,
    }
}

fn bytes(b: impl AsRef<[u8]>) -> Make {
    Make::Bytes(b.as_ref().to_vec())
}

fn err(reason: &'static str) -> Want {
    Want::Error(reason)
}

fn na(not_after: i64) -> CertWant {
    CertWant {
        not_after,
        labels: Vec::new(),
    }
}

fn na_with(not_after: i64, labels: &[(&'static str, &str)]) -> CertWant {
    CertWant {
        not_after,
        labels: labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
    }
}

/// Unix seconds of a UTC calendar time.
fn unix(y: i32, mo: u8, d: u8, h: u8, mi: u8, s: u8) -> i64 {
    let month = time::Month::try_from(mo).unwrap();
    time::Date::from_calendar_date(y, month, d)
        .unwrap()
        .with_hms(h, mi, s)
        .unwrap()
        .assume_utc()
        .unix_timestamp()
}

/// `depth` SEQUENCEs nested inside each other, definite lengths.
fn nested_definite(depth: usize) -> Vec<u8> {
    let mut inner = Vec::new();
    for _ in 0..depth {
        inner = der::tlv(0x30, &inner);
    }
    inner
}

/// The table. `certs` is the directory the files go into.
#[rustfmt::skip]
fn table(certs: &Path, ca: &Ca) -> Vec<Case> {
    let a = ca.issue(&Leaf::server("a.hostile", 30));
    let b = ca.issue(&Leaf::server("b.hostile", 60));
    let key = a.key_pem.clone();
    let csr = {
        let params = rcgen::CertificateParams::new(vec!["csr.hostile".to_owned()]).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        params.serialize_request(&key).unwrap().pem().unwrap()
    };
    let a_der = a.der.clone();
    let cut = &a.cert_pem[..a.cert_pem.len() / 2];
    let bad_block = "-----BEGIN CERTIFICATE-----\n!!!! not base64 !!!!\n-----END CERTIFICATE-----\n";
    let garbage_block = der::pem("CERTIFICATE", b"hello world, not a certificate");
    let nested = nested_definite(20_000);
    let raw_2040 = unix(2040, 1, 1, 0, 0, 0);
    let with_serial = |serial: &[u8]| {
        RawCert {
            serial: serial.to_vec(),
            ..RawCert::new("serial")
        }
        .pem()
    };
    let with_cn = |tag: u8, value: &[u8]| {
        RawCert {
            subject: der::cn_name(tag, value),
            ..RawCert::new("")
        }
        .pem()
    };
    let long_serial: Vec<u8> = (1..=40).collect();
    let bundle: String = (0..1000u32)
        .map(|i| {
            RawCert {
                serial: (i + 1).to_be_bytes().to_vec(),
                ..RawCert::new(&format!("bundle-{i}"))
            }
            .pem()
        })
        .collect();
    let trusted = {
        // OpenSSL's `-trustout` form: the certificate, then its trust
        // settings (here: trusted for serverAuth).
        let aux = der::seq(&[&der::seq(&[&[
            0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01,
        ]])]);
        der::pem("TRUSTED CERTIFICATE", &[a_der.clone(), aux].concat())
    };
    let utf16: Vec<u8> = [0xff, 0xfe]
        .into_iter()
        .chain(a.cert_pem.encode_utf16().flat_map(|u| u.to_le_bytes()))
        .collect();
    let mib = 1024 * 1024;

    let mut cases = vec![
        // Nothing that looks like a certificate.
        case("empty.crt", bytes(""), err("no_certificate_found")),
        case("whitespace.crt", bytes(" \n\t \r\n\n"), err("no_certificate_found")),
        case("nul.crt", bytes([0u8; 4096]), err("no_certificate_found")),
        case("random.crt", bytes([&[0x42u8][..], &noise(8191, 7)].concat()), err("no_certificate_found")),
        case("utf16-pem.crt", bytes(utf16), err("no_certificate_found")),
        case("key-only.crt", bytes(&key), err("no_certificate_found")),
        case("csr.crt", bytes(csr), err("no_certificate_found")),
        // CRLs are read: noise in a CRL block is a broken CRL.
        case("crl.crt", bytes(der::pem("X509 CRL", &noise(300, 3))), err("decode_failed")),
        // Keystores and kubeconfigs by content: their magic, then noise.
        case("noise-jks.crt", bytes([&[0xfe, 0xed, 0xfe, 0xed, 0, 0, 0, 2][..], &noise(300, 11)].concat()), err("decode_failed")),
        case("noise-p12.crt", bytes([&[0x30, 0x82, 0x01, 0x00, 0x02, 0x01, 0x03][..], &noise(300, 12)].concat()), err("decode_failed")),
        case("laughs.crt", bytes(yaml_laughs()), err("decode_failed")),
        case("pkcs7.crt", bytes(der::pem("PKCS7", &noise(300, 4))), err("no_certificate_found")),
        case("exactly-cap.crt", bytes(vec![b'A'; mib]), err("no_certificate_found")),
        // Broken armour.
        case("truncated.crt", bytes(cut), err("bad_pem")),
        case("begin-only.crt", bytes("-----BEGIN CERTIFICATE-----\n"), err("bad_pem")),
        case("end-mismatch.crt", bytes(a.cert_pem.replace("END CERTIFICATE", "END PRIVATE KEY")), err("bad_pem")),
        case("bad-base64.crt", bytes(bad_block), err("bad_pem")),
        case("nul-in-base64.crt", bytes(a.cert_pem.replacen('M', "M\0\0", 2)), err("bad_pem")),
        case("pem-headers.crt", bytes(a.cert_pem.replacen("-----\n", "-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\n", 1)), err("bad_pem")),
        case("many-begins.crt", bytes("-----BEGIN CERTIFICATE-----\n".repeat(20_000)), err("bad_pem")),
        case("long-line.crt", bytes(format!("-----BEGIN CERTIFICATE-----\n{}", "A".repeat(900_000))), err("bad_pem")),
        // Armour fine, content not a certificate.
        case("empty-block.crt", bytes("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"), err("decode_failed")),
        case("empty-blocks.crt", bytes("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n".repeat(5000)), err("decode_failed")),
        case("base64-garbage.crt", bytes(&garbage_block), err("decode_failed")),
        case("pem-trailing.crt", bytes(der::pem("CERTIFICATE", &[a_der.clone(), vec![0, 0]].concat())), err("decode_failed")),
        case("pem-nested.crt", bytes(der::pem("CERTIFICATE", &nested)), err("decode_failed")),
        // DER files.
        case("random-der.crt", bytes([&[0x30u8][..], &noise(8191, 9)].concat()), err("decode_failed")),
        case("der-trailing.crt", bytes([a_der.clone(), vec![0]].concat()), err("decode_failed")),
        case("der-truncated.crt", bytes(&a_der[..a_der.len() - 1]), err("decode_failed")),
        case("der-half.crt", bytes(&a_der[..a_der.len() / 2]), err("decode_failed")),
        case("der-not-cert.crt", bytes([0x30, 0x03, 0x02, 0x01, 0x05]), err("decode_failed")),
        case("der-nested.crt", bytes(&nested), err("decode_failed")),
        case("der-indefinite.crt", bytes([0x30u8, 0x80].repeat(100_000)), err("decode_failed")),
        case("der-huge-length.crt", bytes([&[0x30u8, 0x84, 0xff, 0xff, 0xff, 0xff][..], &[0u8; 64]].concat()), err("decode_failed")),
        case("der-huge-length-8.crt", bytes([&[0x30u8, 0x88][..], &[0xffu8; 8], &[0u8; 64]].concat()), err("decode_failed")),
        // Too big: never read.
        case("over-cap.crt", bytes(vec![b'A'; mib + 1]), err("too_large")),
        case("huge.crt", bytes(vec![b'A'; 2 * mib]), err("too_large")),
        case("sparse-16g.crt", Make::Sparse(16 << 30), err("too_large")),
        // Not files.
        case("fifo.crt", Make::Fifo, err("not_regular_file")),
        case("socket.crt", Make::Socket, err("not_regular_file")),
        case("dir.crt", Make::Dir, err("not_regular_file")),
        case("dir-link.crt", Make::Symlink(certs.join("dir.crt")), err("not_regular_file")),
        case("zero.crt", Make::Symlink("/dev/zero".into()), err("not_regular_file")),
        case("null.crt", Make::Symlink("/dev/null".into()), err("not_regular_file")),
        case("tty.crt", Make::Symlink("/dev/tty".into()), err("not_regular_file")),
        // /proc files say they are empty regular files, so they are read
        // (never /proc/kmsg here: reading it takes messages from syslog).
        // pagemap refuses reads that are not multiples of 8 bytes: EINVAL.
        case("proc-pagemap.crt", Make::Symlink("/proc/self/pagemap".into()), err("read_failed")),
        case("proc-environ.crt", Make::Symlink("/proc/self/environ".into()), err("no_certificate_found")),
        case("proc-mem.crt", Make::Symlink("/proc/self/mem".into()), err("read_failed")),
        case("dangling.crt", Make::Symlink(certs.join("absent")), err("not_found")),
        case("loop-a.crt", Make::Symlink(certs.join("loop-b.crt")), err("read_failed")),
        case("loop-b.crt", Make::Symlink(certs.join("loop-a.crt")), err("read_failed")),
        case("self-loop.crt", Make::Symlink(certs.join("self-loop.crt")), err("read_failed")),
        // Hostile names, bad content: the label is escaped.
        case(b"bad-\xff\x1b.crt", bytes("junk"), err("no_certificate_found")),
        case("q\"uote\\back\nslash.crt", bytes("junk"), err("no_certificate_found")),
        // Good and bad parts: the good certificates are never hidden.
        case("mixed.crt", bytes(format!("{}{bad_block}{}", a.cert_pem, b.cert_pem)), Want::CertsAnd(vec![na(a.not_after), na(b.not_after)], "bad_pem")),
        case("open-between.crt", bytes(format!("{}-----BEGIN CERTIFICATE-----\nMIIB\n{}", a.cert_pem, b.cert_pem)), Want::CertsAnd(vec![na(a.not_after), na(b.not_after)], "bad_pem")),
        case("garbage-between.crt", bytes(format!("{}{garbage_block}{}", a.cert_pem, b.cert_pem)), Want::CertsAnd(vec![na(a.not_after), na(b.not_after)], "decode_failed")),
        case("utf8-bom.crt", bytes(format!("\u{feff}{}", a.cert_pem)), Want::CertsAnd(vec![na(a.not_after)], "bad_pem")),
        case("good-then-cut.crt", bytes(format!("{}{cut}", b.cert_pem)), Want::CertsAnd(vec![na(b.not_after)], "bad_pem")),
        // Odd but valid encodings decode.
        case("crlf.crt", bytes(a.cert_pem.replace('\n', "\r\n")), Want::Certs(vec![na(a.not_after)])),
        case("bom-comment.crt", bytes(format!("\u{feff}# a.hostile\n{}", a.cert_pem)), Want::Certs(vec![na(a.not_after)])),
        case("indented.crt", bytes(a.cert_pem.lines().map(|l| format!("  \t{l}  \n")).collect::<String>()), Want::Certs(vec![na(a.not_after)])),
        case("x509-label.crt", bytes(a.cert_pem.replace("CERTIFICATE", "X509 CERTIFICATE")), Want::Certs(vec![na(a.not_after)])),
        case("cert-and-key.crt", bytes(format!("{key}{}", a.cert_pem)), Want::Certs(vec![na(a.not_after)])),
        case("trusted.crt", bytes(trusted), Want::Certs(vec![na(a.not_after)])),
        // Odd certificates are exported exactly as they are.
        case("ctl-cn.crt", bytes(with_cn(der::UTF8, b"evil\x1b[2J\r\0name")), Want::Certs(vec![na_with(raw_2040, &[("subject_CN", "evil\\x1b[2J\\x0d\\x00name")])])),
        case("injection-cn.crt", bytes(with_cn(der::UTF8, b"x\"} 1\nfake_metric{a=\"b\"} 1\n# ")), Want::Certs(vec![na_with(raw_2040, &[("subject_CN", "x\"} 1\\x0afake_metric{a=\"b\"} 1\\x0a# ")])])),
        case("t61-cn.crt", bytes(with_cn(der::T61, b"caf\xe9")), Want::Certs(vec![na_with(raw_2040, &[("subject_CN", "café")])])),
        case("bmp-cn.crt", bytes(with_cn(der::BMP, &[0x03, 0xa9, 0x22, 0x48])), Want::Certs(vec![na_with(raw_2040, &[("subject_CN", "Ω≈")])])),
        case("printable-ctl-cn.crt", bytes(with_cn(der::PRINTABLE, b"a\nb")), Want::Certs(vec![na_with(raw_2040, &[("subject_CN", "a\\x0ab")])])),
        case("bad-utf8-cn.crt", bytes(with_cn(der::UTF8, b"x\xff\xfey")), Want::Certs(vec![na_with(raw_2040, &[("subject_CN", "x\u{ff}\u{fe}y")])])),
        case("serial-empty.crt", bytes(with_serial(&[])), Want::Certs(vec![na_with(raw_2040, &[("serial_number", "0")])])),
        case("serial-negative.crt", bytes(with_serial(&[0xff, 0x01])), Want::Certs(vec![na_with(raw_2040, &[("serial_number", "65281")])])),
        case("serial-long.crt", bytes(with_serial(&long_serial)), Want::Certs(vec![na_with(raw_2040, &[("serial_number", &decimal_of_be_bytes(&long_serial))])])),
        case("year-9999.crt", bytes(RawCert { not_after: der::generalized("99991231235959Z"), ..RawCert::new("forever") }.pem()), Want::Certs(vec![na(253_402_300_799)])),
        case("year-1950.crt", bytes(RawCert { not_before: der::utc("500101000000Z"), not_after: der::utc("500102000000Z"), ..RawCert::new("ancient") }.pem()), Want::Certs(vec![na(unix(1950, 1, 2, 0, 0, 0))])),
        case("inverted.crt", bytes(RawCert { not_before: der::utc("300101000000Z"), not_after: der::utc("250101000000Z"), ..RawCert::new("inverted") }.pem()), Want::Certs(vec![na_with(unix(2025, 1, 1, 0, 0, 0), &[("subject_CN", "inverted")])])),
        case("bundle-1000.crt", bytes(bundle), Want::Certs((0..1000).map(|_| na(raw_2040)).collect())),
        // Hostile names, good content.
        case(b"name-\xff.crt", bytes(&a.cert_pem), Want::Certs(vec![na(a.not_after)])),
        case(b"name-\xfe.crt", bytes(&b.cert_pem), Want::Certs(vec![na(b.not_after)])),
        case("ctl\x1b[2J\n.crt", bytes(&b.cert_pem), Want::Certs(vec![na(b.not_after)])),
    ];
    if !permission_checks_bypassed(certs) {
        cases.push(case("unreadable.crt", Make::Unreadable(a.cert_pem.into_bytes()), err("permission_denied")));
    } else {
        eprintln!("running as root: the permission_denied case is skipped (tests/files.rs covers it through setpriv)");
    }
    cases
}

fn make(path: &Path, how: &Make, keep: &mut Vec<std::os::unix::net::UnixListener>) {
    match how {
        Make::Bytes(b) => std::fs::write(path, b).unwrap(),
        Make::Fifo => mkfifo(path),
        Make::Socket => keep.push(std::os::unix::net::UnixListener::bind(path).unwrap()),
        Make::Dir => std::fs::create_dir(path).unwrap(),
        Make::Symlink(target) => symlink(target, path).unwrap(),
        Make::Sparse(size) => std::fs::File::create(path).unwrap().set_len(*size).unwrap(),
        Make::Unreadable(b) => {
            std::fs::write(path, b).unwrap();
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o000)).unwrap();
        }
    }
}

const SOURCE: &str = "hostile-files";

fn path_of(certs: &Path, name: &[u8]) -> PathBuf {
    certs.join(OsStr::from_bytes(name))
}

/// Checks every case against one exposition; returns the problems.
fn check(m: &Exposition, certs: &Path, cases: &[Case]) -> Vec<String> {
    let mut problems = Vec::new();
    for c in cases {
        let path = label_of(path_of(certs, &c.name).as_os_str().as_bytes());
        let name = String::from_utf8_lossy(&c.name);
        let errors: Vec<&str> = m
            .find(
                "certinel_file_error_info",
                &[("source_name", SOURCE), ("filepath", &path)],
            )
            .iter()
            .map(|s| s.labels["reason"].as_str())
            .collect();
        let certs_seen = m.find(
            "x509_cert_not_after",
            &[("source_name", SOURCE), ("filepath", &path)],
        );
        let (want_certs, want_error): (&[CertWant], Option<&str>) = match &c.want {
            Want::Error(r) => (&[], Some(r)),
            Want::Certs(w) => (w, None),
            Want::CertsAnd(w, r) => (w, Some(r)),
        };
        let want_errors: Vec<&str> = want_error.into_iter().collect();
        if errors != want_errors {
            problems.push(format!(
                "{name:?}: reasons {errors:?}, want {want_errors:?}"
            ));
        }
        if certs_seen.len() != want_certs.len() {
            problems.push(format!(
                "{name:?}: {} certificates, want {}",
                certs_seen.len(),
                want_certs.len()
            ));
            continue;
        }
        for s in &certs_seen {
            let index: usize = s.labels["chain_index"].parse().unwrap();
            let want = &want_certs[index];
            if s.value != want.not_after as f64 {
                problems.push(format!(
                    "{name:?}[{index}]: not_after {}, want {}",
                    s.value, want.not_after
                ));
            }
            for (k, v) in &want.labels {
                if s.labels.get(*k) != Some(v) {
                    problems.push(format!(
                        "{name:?}[{index}]: {k}={:?}, want {v:?}",
                        s.labels.get(*k)
                    ));
                }
            }
        }
    }
    problems
}

fn expected_errors(cases: &[Case]) -> usize {
    cases
        .iter()
        .filter(|c| matches!(c.want, Want::Error(_) | Want::CertsAnd(..)))
        .count()
}

fn last_run(m: &Exposition, source: &str) -> f64 {
    m.value(
        "certinel_source_last_run_timestamp_seconds",
        &[("source_name", source)],
    )
}

#[test]
fn every_hostile_file_gets_its_exact_reason_and_harms_nothing_else() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    let ca = Ca::new("hostile files CA");
    write(dir.path(), "ca.crt", &ca.cert.cert_pem);
    let cases = table(&certs, &ca);
    let mut sockets = Vec::new();
    for c in &cases {
        make(&path_of(&certs, &c.name), &c.make, &mut sockets);
    }
    // Pairs of names whose labels collide: a literal backslash-x-f-f, and
    // the byte 0xff that certinel escapes to the same four characters.
    let twin_a = self_signed("twin-a", now() + 20 * DAY);
    let twin_b = self_signed("twin-b", now() + 21 * DAY);
    write(&certs, "twin-\\xff.crt", &twin_a.cert_pem);
    std::fs::write(path_of(&certs, b"twin-\xff.crt"), &twin_b.cert_pem).unwrap();
    write(&certs, "twin-bad-\\xff.crt", "junk");
    std::fs::write(path_of(&certs, b"twin-bad-\xff.crt"), "junk").unwrap();
    // The good file, a file swapped for a FIFO later, and one rewritten
    // continuously from the start.
    let good = ca.issue(&Leaf::server("good.file", 45));
    let good_path = write(&certs, "good.crt", &good.cert_pem);
    let swap = ca.issue(&Leaf::server("swap.file", 46));
    let swap_path = write(&certs, "swap.crt", &swap.cert_pem);
    let rewrite_a = ca.issue(&Leaf::server("rewrite-a", 47));
    let rewrite_b = ca.issue(&Leaf::server("rewrite-b", 48));
    let rewrite_path = write(&certs, "rewritten.crt", &rewrite_a.cert_pem);
    let stop = Arc::new(AtomicBool::new(false));
    let rewriter = {
        let (stop, path) = (stop.clone(), rewrite_path.clone());
        let (pa, pb) = (rewrite_a.cert_pem.clone(), rewrite_b.cert_pem.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut rounds = 0u64;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                // Truncate, then write in two halves: a pass may read any
                // prefix of either certificate.
                let text = if rounds % 2 == 0 { &pa } else { &pb };
                let mut f = std::fs::File::create(&path).unwrap();
                use std::io::Write as _;
                f.write_all(&text.as_bytes()[..text.len() / 2]).unwrap();
                std::thread::sleep(Duration::from_millis(1));
                f.write_all(&text.as_bytes()[text.len() / 2..]).unwrap();
                drop(f);
                rounds += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            std::fs::write(&path, &pa).unwrap();
            rounds
        })
    };

    let leaf = ca.issue(&Leaf::server("good.endpoint", 50));
    let server = tls_server(&leaf, &ServerOptions::default());
    let target = format!("localhost:{}", server.addr.port());
    let config = format!(
        "files:\n  - name: {SOURCE}\n    paths: [\"certs/*.crt\", \"certs/missing.crt\"]\n    interval: 1s\n\
         endpoints:\n  - name: good-endpoint\n    targets: [\"{target}\"]\n    ca_file: ca.crt\n    interval: 1s\n    timeout: 1s\n"
    );
    let daemon = Daemon::start(dir.path(), &config);
    let watchdog = Watchdog::start(daemon.addr);
    let missing = case("missing.crt", bytes(""), err("not_found"));
    // The cases, `missing.crt` and the two bad twins.
    let errors = expected_errors(&cases) + 3;
    let rewrite_label = rewrite_path.display().to_string();
    let settled = |m: &Exposition| {
        m.find("certinel_file_error_info", &[("source_name", SOURCE)])
            .iter()
            .filter(|s| s.labels["filepath"] != rewrite_label)
            .count()
            >= errors
            && m.has("x509_cert_not_after", &[("source_name", "good-endpoint")])
    };
    let m = daemon.wait_for(Duration::from_secs(30), settled);
    let check_all = |m: &Exposition, errors: usize| {
        let mut p = check(m, &certs, &cases);
        p.extend(check(m, &certs, std::slice::from_ref(&missing)));
        let seen: Vec<_> = m
            .find("certinel_file_error_info", &[("source_name", SOURCE)])
            .into_iter()
            .filter(|s| s.labels["filepath"] != rewrite_label)
            .collect();
        if seen.len() != errors {
            p.push(format!("{} files in error, want {errors}", seen.len()));
        }
        p
    };
    assert!(
        !m.has("fake_metric", &[]),
        "a label broke out of its quotes:\n{}",
        m.text
    );
    let problems = check_all(&m, errors);
    assert!(
        problems.is_empty(),
        "{} problems:\n{}\n\n{}",
        problems.len(),
        problems.join("\n"),
        m.text
    );

    // The twins: a name that spells an escape (`twin-\xff.crt`) and the
    // byte it spells are two filepaths, each with its own certificate or
    // error, and none needs a discriminator.
    for (name, want) in [
        (&b"twin-\\xff.crt"[..], twin_a.not_after),
        (&b"twin-\xff.crt"[..], twin_b.not_after),
    ] {
        let label = label_of(path_of(&certs, name).as_os_str().as_bytes());
        assert_eq!(
            m.value("x509_cert_not_after", &[("filepath", &label)]),
            want as f64,
            "{}",
            m.text
        );
    }
    for name in [&b"twin-bad-\\xff.crt"[..], &b"twin-bad-\xff.crt"[..]] {
        let label = label_of(path_of(&certs, name).as_os_str().as_bytes());
        let bad = m.one("certinel_file_error_info", &[("filepath", &label)]);
        assert!(!bad.labels.contains_key("discriminator"), "{bad:?}");
    }

    // The good ones, and everything fresh a few passes later.
    let good_labels = [
        ("source_name", SOURCE),
        ("filepath", good_path.to_str().unwrap()),
    ];
    assert_eq!(
        m.value("x509_cert_not_after", &good_labels),
        good.not_after as f64
    );
    let probe_labels = [
        ("source_name", "good-endpoint"),
        ("target", target.as_str()),
    ];
    let probed = m.value("certinel_tls_last_probe_timestamp_seconds", &probe_labels);
    let passed = last_run(&m, SOURCE);
    let fds_first = open_fds(daemon.pid());
    let m = daemon.wait_for(Duration::from_secs(10), |m| {
        m.value("certinel_tls_last_probe_timestamp_seconds", &probe_labels) >= probed + 2.0
            && last_run(m, SOURCE) >= passed + 2.0
    });
    let problems = check_all(&m, errors);
    assert!(
        problems.is_empty(),
        "after more passes:\n{}",
        problems.join("\n")
    );
    assert_eq!(m.value("certinel_tls_handshake_error", &probe_labels), 0.0);
    assert_eq!(m.value("x509_source_up", &[("source_name", SOURCE)]), 1.0);

    // A good file swapped for a FIFO between passes; the rewriting stops.
    std::fs::remove_file(&swap_path).unwrap();
    mkfifo(&swap_path);
    stop.store(true, Ordering::Relaxed);
    let rounds = rewriter.join().unwrap();
    let swap_label = swap_path.display().to_string();
    let m = daemon.wait_for(Duration::from_secs(10), |m| {
        m.has(
            "certinel_file_error_info",
            &[("filepath", &swap_label), ("reason", "not_regular_file")],
        ) && m
            .find("x509_cert_not_after", &[("filepath", &rewrite_label)])
            .first()
            .is_some_and(|s| s.value == rewrite_a.not_after as f64)
            && !m.has("certinel_file_error_info", &[("filepath", &rewrite_label)])
    });
    assert!(!m.has("x509_cert_not_after", &[("filepath", &swap_label)]));
    let problems = check_all(&m, errors + 1);
    assert!(
        problems.is_empty(),
        "after the swap:\n{}",
        problems.join("\n")
    );

    let rest = resting(daemon.pid(), Duration::from_millis(1500));
    assert!(
        rest.fds <= fds_first + 4,
        "descriptors: {} after the first pass, {} now",
        fds_first,
        rest.fds
    );
    let report = watchdog.finish();
    assert!(daemon.is_running());
    report.assert_clean();
    eprintln!(
        "hostile files: {} cases, {rounds} rewrites, {} scrapes (slowest {:?}), fds {fds_first} → {}, rss {} KiB, {:?}",
        cases.len() + 1,
        report.scrapes,
        report.slowest,
        rest.fds,
        rest.rss_kib,
        started.elapsed()
    );
}

/// `a\xff.crt` (backslash, x, f, f) and `a<0xff>.crt` must get different
/// `filepath`s: with equal certificates in them, equal labels would
/// collapse into one series (the guard's discriminator is the
/// certificate's hash).
#[test]
fn path_labels_tell_a_backslash_from_an_escaped_byte() {
    let dir = tempfile::tempdir().unwrap();
    let cert = self_signed("same", now() + 20 * DAY);
    write(dir.path(), "a\\xff.crt", &cert.cert_pem);
    std::fs::write(path_of(dir.path(), b"a\xff.crt"), &cert.cert_pem).unwrap();
    let daemon = Daemon::start(
        dir.path(),
        "files:\n  - name: twins\n    paths: [\"*.crt\"]\n    interval: 1s\n",
    );
    let m = daemon.wait_for(Duration::from_secs(10), |m| {
        m.has("x509_cert_not_after", &[("source_name", "twins")])
    });
    let paths: std::collections::BTreeSet<&str> = m
        .find("x509_cert_not_after", &[("source_name", "twins")])
        .iter()
        .map(|s| s.labels["filepath"].as_str())
        .collect();
    assert_eq!(paths.len(), 2, "{}", m.text);
}

/// A kubeconfig-looking YAML whose aliases would expand to a billion
/// nodes: refused by the parser's repetition limit, quickly.
fn yaml_laughs() -> String {
    let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x]\n");
    for (prev, name) in "abcdefgh".chars().zip("bcdefghi".chars()) {
        let refs = vec![format!("*{prev}"); 9].join(", ");
        text.push_str(&format!("{name}: &{name} [{refs}]\n"));
    }
    text.push_str("clusters: [{name: c, cluster: {certificate-authority-data: *i}}]\n");
    text
}
