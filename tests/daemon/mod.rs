//! The real `certinel` binary on loopback, by area. Every wait is bounded;
//! every server is on 127.0.0.1.

use std::path::Path;

use crate::common::*;

/// Flags, config validation and exit codes, `--config.check`, SIGTERM.
mod cli;
/// The metric contract of `/metrics`, label by label and family by family.
mod contract;
/// The HTTP endpoints, and a real Prometheus scraping them.
mod http;
/// Log formats and levels, by flag and by environment.
mod logging;
/// Black holes, lanes and concurrency: scrapes and good targets never wait
/// on dead ones.
mod scheduling;

/// One file source over one valid leaf, passes an hour apart: a config
/// ready after its first pass, with nothing to wait for.
fn file_only_config(dir: &Path) -> String {
    let ca = Ca::new("http-ca");
    let leaf = ca.issue(&Leaf::server("http-leaf", 30));
    let path = write(dir, "certs/leaf.pem", &leaf.cert_pem);
    format!(
        "global:\n  interval: 1h\nfiles:\n  - name: http-files\n    paths: [{}]\n",
        yaml_str(&path)
    )
}
