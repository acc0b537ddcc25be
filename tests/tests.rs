//! Integration tests: one binary, one module per area. Everything runs on
//! loopback against real servers, real files and the real certinel binary.

// Test helpers are `pub` for sibling modules; the crate itself is private.
// A panic in a test or its helpers is a failed test, which is the point.
#![allow(
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

/// End to end with real Prometheus and Alertmanager: rules, alerts, dashboards.
mod alerting;
/// `certinel check` and the node_exporter textfile.
mod check;
/// Shared helpers, one home each: certificates, loopback servers, the
/// daemon, HTTP, exposition parsing, the Prometheus tools, bounded waits.
mod common;
/// The binary: flags and config errors, /metrics contract, HTTP endpoints,
/// scheduling around black holes, logs.
mod daemon;
/// Deployment artefacts: Dockerfile, Kubernetes manifests, systemd unit.
mod deploy;
/// Beyond the verdict, against `openssl s_server`: chain problems, the
/// verified path, stapled OCSP; STARTTLS failures against hand-written servers.
mod endpoint;
/// The file source on real files: formats, every bad input, paths and
/// globs, changes between passes.
mod files;
/// Hostile files and endpoints, as tables, each against one daemon.
mod hostile;
/// Signal integrity: no two series collide; restart-pending follows its file.
mod integrity;
/// certinel's own listener under abuse: idle floods under a low open-file
/// limit, clients that never read, shutdown with stalled connections.
mod listener;
/// `/probe`: the contract per target, the allowlist, its limits; scale-out
/// over replicas with real Prometheus.
mod probe;
/// Following rotation: file watching, config reload, restart-pending.
mod rotation;
/// Real servers (PostgreSQL, OpenLDAP, Exim, Dovecot, vsftpd, Prosody,
/// MariaDB), each started once per run, probed through their STARTTLS.
mod servers;
/// The status page in a real headless Chromium, and the JSON API beside it.
mod status;
/// Every handshake failure reason, produced by a real loopback server.
mod tls;
/// certinel's own HTTP server: TLS, client certificates, basic auth, rotation.
mod web;
