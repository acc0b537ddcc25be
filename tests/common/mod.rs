//! Shared test helpers, one home per concept: certificates minted per test
//! with chosen validity (`pki`), files laid out on disk (`disk`), servers
//! on loopback for certinel to probe (`tls_server`), keystores and CRLs
//! made by openssl and keytool (`stores`), real programs run as an
//! unprivileged user (`process`), in-process probes (`probe`), the real certinel
//! binary (`daemon`), the one HTTP client (`http`), reading `/metrics`
//! (`exposition`), the real Prometheus tools (`prometheus`), a real
//! headless browser (`browser`), and bounded waiting (`wait`).
//!
//! Everything is re-exported here: tests `use crate::common::*`.

pub mod browser;
pub mod daemon;
pub mod disk;
pub mod exposition;
pub mod http;
pub mod pki;
pub mod probe;
pub mod process;
pub mod prometheus;
pub mod stores;
pub mod tls_server;
pub mod wait;

pub use browser::*;
pub use daemon::*;
pub use disk::*;
pub use exposition::*;
pub use http::*;
pub use pki::*;
pub use probe::*;
pub use process::*;
pub use prometheus::*;
pub use stores::*;
pub use tls_server::*;
pub use wait::*;
