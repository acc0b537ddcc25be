//! Command-line flags, named as every Prometheus exporter names them.

use std::path::PathBuf;

use clap::Parser;

use crate::logging::{LogFormat, LogLevel};

/// The default listen port. The Prometheus default-port-allocations list
/// has no free port left in 9100–9999; 10044 is not listed there (see
/// README, "Port").
pub const DEFAULT_PORT: u16 = 10044;

/// Prometheus exporter for X.509 certificate expiry: certificates on disk
/// and as served by TLS endpoints.
#[derive(Debug, Parser)]
#[command(name = "certinel", version, about, long_about = None)]
pub struct Cli {
    /// Path to the YAML configuration file.
    #[arg(
        long = "config.file",
        value_name = "FILE",
        default_value = "certinel.yaml"
    )]
    pub config_file: PathBuf,

    /// Validate the configuration file, print a summary and exit (0 valid, 1 invalid).
    #[arg(long = "config.check")]
    pub config_check: bool,

    /// Address to listen on for HTTP requests; ":PORT" means all interfaces.
    #[arg(
        long = "web.listen-address",
        value_name = "ADDR",
        default_value = ":10044"
    )]
    pub listen_address: String,

    /// Log level; overrides `log.level` in the config file.
    #[arg(long = "log.level", value_name = "LEVEL", env = "CERTINEL_LOG_LEVEL")]
    pub log_level: Option<LogLevel>,

    /// Log format; overrides `log.format` in the config file.
    #[arg(
        long = "log.format",
        value_name = "FORMAT",
        env = "CERTINEL_LOG_FORMAT"
    )]
    pub log_format: Option<LogFormat>,
}

/// Turns `:PORT` (Go style, all interfaces) into something `bind` takes.
pub fn normalize_listen_address(addr: &str) -> String {
    match addr.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => addr.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_style_port_means_all_interfaces() {
        assert_eq!(normalize_listen_address(":10044"), "0.0.0.0:10044");
        assert_eq!(normalize_listen_address("127.0.0.1:9"), "127.0.0.1:9");
        assert_eq!(normalize_listen_address("[::1]:9"), "[::1]:9");
    }

    #[test]
    fn default_port_matches_default_address() {
        let cli = Cli::parse_from(["certinel"]);
        assert_eq!(cli.listen_address, format!(":{DEFAULT_PORT}"));
    }
}
