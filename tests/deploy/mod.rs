//! Deployment artefacts, checked without a container engine or a cluster,
//! by artefact. What they share: reading repository files, and the command
//! line parsed exactly as the binary parses it.

use std::net::SocketAddr;
use std::path::Path;

use clap::Parser;

use certinel::cli::{normalize_listen_address, Cli};

use crate::common::*;

/// The Dockerfile parsed into instructions and compared with the crate
/// (toolchain, binary, user, port, config path); `.dockerignore`; the
/// builder stage replayed against the build context.
mod docker;
/// Every manifest parsed and its references followed (mounts, ports,
/// probes, selectors, secrets); the embedded configs run for real.
mod kubernetes;
/// The /probe StatefulSet and its scrape jobs: references, and the
/// Kubernetes relabelling run by the real Prometheus.
mod probe;
/// Every Kubernetes manifest against the real Kubernetes schemas
/// (`kubernetes-validate`, offline).
mod schemas;
/// The unit: hardening, command line, exit codes and signals, and
/// `systemd-analyze` when present.
mod systemd;

fn read(rel: &str) -> String {
    let path = repo().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The binary's name, as `[[bin]]` declares it (cargo builds it there).
fn bin_name() -> String {
    Path::new(env!("CARGO_BIN_EXE_certinel"))
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// Parses the certinel command line exactly as the binary would.
fn cli(args: &[String]) -> Cli {
    Cli::try_parse_from(std::iter::once("certinel".to_owned()).chain(args.iter().cloned()))
        .unwrap_or_else(|e| panic!("certinel rejects {args:?}: {e}"))
}

fn listen_port(cli: &Cli) -> u16 {
    let addr = normalize_listen_address(&cli.listen_address);
    addr.parse::<SocketAddr>()
        .unwrap_or_else(|e| panic!("listen address {addr}: {e}"))
        .port()
}
