//! The status page and the JSON API, on the real binary with one of each
//! kind of trouble: expired, expiring in days and in weeks, fine, a file
//! that is not a certificate, a path that does not exist, a refused
//! target, and a server that still serves the certificate its file has
//! since replaced (restart pending). Plus a subject that is markup.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::common::*;

/// The JSON API and the raw HTML: schema, filters, escaping, auth.
mod api;
/// The page in headless Chromium: order, colours, reasons, filters,
/// accessibility, a screenshot.
mod browser;

/// A subject that would run script if it were markup.
pub const HOSTILE_CN: &str =
    "<img src=x onerror=\"window.pwned=1\"><script>window.pwned=2</script>";

/// The subjects of the certificate rows, most urgent first (the three
/// failures without a certificate come before them).
pub const SUBJECTS_BY_URGENCY: [&str; 6] = [
    "gone.example",
    "urgent.example",
    "soon.example",
    "api.example",
    HOSTILE_CN,
    "fine.example",
];

/// certinel over the troubles above, ready (every source has completed a
/// pass). Holds what must outlive the test.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub daemon: Daemon,
    pub refused: SocketAddr,
    pub stale_target: String,
    _server: TestServer,
}

impl Fixture {
    pub fn start() -> Fixture {
        Fixture::start_with_args(&[])
    }

    pub fn start_with_args(args: &[&str]) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("status CA");
        write(dir.path(), "ca.crt", &ca.cert.cert_pem);
        let config = Fixture::lay_out(dir.path(), &ca);
        let refused = closed_port();
        let (server, stale_target) = Fixture::stale_server(dir.path(), &ca);
        let config = format!(
            "{config}endpoints:\n  - name: web\n    ca_file: ca.crt\n    targets:\n      \
             - {{ target: \"{stale_target}\", server_name: localhost, expect_file: deploy/tls.crt }}\n      \
             - \"{refused}\"\n"
        );
        let daemon = Daemon::start_with_args(dir.path(), &config, args);
        Fixture {
            dir,
            daemon,
            refused,
            stale_target,
            _server: server,
        }
    }

    /// The files, and the configuration's global and file parts.
    fn lay_out(dir: &Path, ca: &Ca) -> String {
        for (name, cn, days) in [
            ("expired", "gone.example", -2),
            ("urgent", "urgent.example", 3),
            ("soon", "soon.example", 20),
            ("fine", "fine.example", 200),
            ("hostile", HOSTILE_CN, 150),
        ] {
            write(
                dir,
                &format!("certs/{name}.crt"),
                &leaf(ca, cn, days).cert_pem,
            );
        }
        write(dir, "certs/garbage.crt", "not a certificate\n");
        "global:\n  interval: 1h\n  timeout: 5s\nfiles:\n  - name: disk\n    \
         paths: [\"certs/*.crt\", certs/missing/tls.crt]\n"
            .to_owned()
    }

    /// A server presenting an older certificate than its file now holds.
    fn stale_server(dir: &Path, ca: &Ca) -> (TestServer, String) {
        let (served, renewed) = renewal(ca, "api.example", 25, 90);
        write(dir, "deploy/tls.crt", &renewed.cert_pem);
        let server = tls_server(&served, &ServerOptions::default());
        let target = format!("127.0.0.1:{}", server.addr.port());
        (server, target)
    }

    /// Waits until every source has completed a pass.
    pub fn ready(self) -> Fixture {
        self.daemon.wait_ready(Duration::from_secs(20));
        self
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.daemon.addr)
    }

    /// `GET path` as JSON.
    pub fn json(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.daemon.get(path);
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
    }
}
