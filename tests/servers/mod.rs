//! Real servers, each started once per test run with a certificate the
//! test mints, on a free loopback port, as an unprivileged user, from a
//! configuration in a temporary directory — never the machine's own
//! services — and probed through its real STARTTLS: PostgreSQL, OpenLDAP
//! (`slapd`), Exim, Dovecot (IMAP and POP3), vsftpd, Prosody (XMPP client
//! and server) and MariaDB. `scripts/test` installs them when missing.
//!
//! Every server serves the same chain, leaf and intermediate, under a
//! root the probe trusts; each test checks that certinel reached the
//! certificate through the protocol and read the chain as served.

mod mail;
mod others;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use certinel::sources::endpoint::AddressReport;

use crate::common::*;

/// The certificates every server serves, in one directory the servers'
/// user owns.
pub struct Shared {
    pub dir: PathBuf,
    pub inter: Minted,
    pub leaf: Minted,
    /// Keeps the directory for the whole run; removed after it.
    _keep: tempfile::TempDir,
}

/// The PKI, minted once per run.
pub fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let keep = tempfile::Builder::new()
            .prefix("certinel-servers")
            .tempdir()
            .unwrap();
        let dir = keep.path().to_owned();
        remove_after_exit(&dir);
        let root = Ca::new("certinel servers root");
        let inter = root.intermediate("certinel servers intermediate", 300);
        let leaf = inter.issue(&Leaf::server("localhost", 60));
        write(&dir, "root.crt", &root.cert.cert_pem);
        write(
            &dir,
            "chain.crt",
            format!("{}{}", leaf.cert_pem, inter.cert.cert_pem),
        );
        write(&dir, "leaf.crt", &leaf.cert_pem);
        write(&dir, "inter.crt", &inter.cert.cert_pem);
        write(&dir, "leaf.key", &leaf.key_pem);
        give_to_server_user(&dir);
        // Servers refuse keys others can read.
        std::fs::set_permissions(
            dir.join("leaf.key"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        Shared {
            dir,
            inter: inter.cert.clone(),
            leaf,
            _keep: keep,
        }
    })
}

/// A server running for the rest of the run.
pub struct Running {
    pub addr: SocketAddr,
    _process: Background,
}

/// Where the running servers are kept, by name, so each starts once.
fn running() -> &'static Mutex<Vec<(&'static str, &'static Running)>> {
    static RUNNING: OnceLock<Mutex<Vec<(&'static str, &'static Running)>>> = OnceLock::new();
    RUNNING.get_or_init(|| Mutex::new(Vec::new()))
}

/// The server `name`, started by `start` the first time it is asked for
/// (`start` gets its own directory, and returns the process and the
/// address it will listen on).
pub fn server(
    name: &'static str,
    start: impl FnOnce(&Path) -> (Background, SocketAddr),
) -> &'static Running {
    let mut all = running().lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, r)) = all.iter().find(|(n, _)| *n == name) {
        return r;
    }
    let dir = shared().dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    give_to_server_user(&dir);
    let (mut process, addr) = start(&dir);
    process.wait_for_port(addr, Duration::from_secs(60), &dir.join("log"));
    let r: &'static Running = Box::leak(Box::new(Running {
        addr,
        _process: process,
    }));
    all.push((name, r));
    r
}

/// Writes a configuration file the server user can read.
pub fn config(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = write(dir, name, text);
    give_to_server_user(&path);
    path
}

/// Probes `localhost:port` with `starttls` (trusting the root) and checks
/// that the served chain is the leaf and the intermediate, in order,
/// verified, with nothing wrong.
pub async fn probe_checked(addr: SocketAddr, starttls: &str) -> AddressReport {
    let s = shared();
    let source = endpoint(
        &s.dir,
        &format!(
            "targets: [\"localhost:{}\"]\nca_file: root.crt\nstarttls: {starttls}\ntimeout: 10s\n",
            addr.port()
        ),
    );
    let mut reports = probe_one(&source).await;
    assert_eq!(reason(&reports), None, "{starttls}: {reports:?}");
    let report = reports.remove(0);
    let served: Vec<&str> = report.chain.iter().map(|c| &*c.serial_number).collect();
    assert_eq!(
        served,
        [serial_decimal(&s.leaf.der), serial_decimal(&s.inter.der)],
        "{starttls}: the leaf and the intermediate, in order"
    );
    let chain = report.chain_report.as_ref().unwrap();
    assert!(chain.problems.is_empty(), "{starttls}: {chain:?}");
    let path = chain.verified.as_ref().unwrap();
    assert_eq!(path.not_after, s.leaf.not_after.min(s.inter.not_after));
    assert!(path.unused.is_empty(), "{starttls}: {path:?}");
    report
}
