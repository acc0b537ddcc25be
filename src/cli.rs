//! Command-line flags, named as every Prometheus exporter names them.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    /// Run a one-shot check instead of the daemon.
    #[command(subcommand)]
    pub command: Option<Command>,

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

    /// Web configuration file (exporter-toolkit format): TLS, client
    /// certificates and basic auth for the HTTP listener. See WEB-CONFIG.md.
    #[arg(long = "web.config.file", value_name = "FILE")]
    pub web_config_file: Option<PathBuf>,

    /// Also serve /-/healthy and /-/ready, in plain HTTP, on this address
    /// (for Kubernetes probes when the main port requires client certificates).
    #[arg(long = "web.health-address", value_name = "ADDR")]
    pub health_address: Option<String>,

    /// Maximum number of simultaneous connections across the listeners;
    /// more wait in the listen backlog. Lowered at start-up if the open-file
    /// limit cannot hold them beside the descriptors the sources need.
    #[arg(
        long = "web.max-connections",
        value_name = "N",
        default_value_t = crate::http::DEFAULT_MAX_CONNECTIONS,
        value_parser = parse_max_connections
    )]
    pub max_connections: usize,

    /// Enable reloading the configuration with POST /-/reload (unauthenticated
    /// unless --web.config.file sets basic auth). SIGHUP always reloads.
    #[arg(long = "web.enable-lifecycle")]
    pub enable_lifecycle: bool,

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

    /// Also write the metrics to FILE (Prometheus text format, for
    /// node_exporter's textfile collector), atomically, whenever results change.
    #[arg(long = "textfile.output", value_name = "FILE")]
    pub textfile_output: Option<PathBuf>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check every source once, print what expires soon, and exit 0 (all
    /// fine), 1 (below --warn), 2 (below --crit, expired or failing) or 3
    /// (usage or config error, or nothing to check).
    Check(CheckArgs),
}

/// `certinel check` flags.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Files, directories, globs, or host:port endpoints to check, in
    /// addition to the sources of --config.file.
    #[arg(value_name = "PATH|HOST:PORT")]
    pub items: Vec<String>,

    /// Check every source of this configuration file.
    #[arg(long = "config.file", value_name = "FILE")]
    pub config_file: Option<PathBuf>,

    /// Warn when a certificate has less than this left.
    #[arg(long, value_name = "DURATION", default_value = "30d", value_parser = parse_duration)]
    pub warn: Duration,

    /// Critical when a certificate has less than this left.
    #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = parse_duration)]
    pub crit: Duration,

    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub output: OutputFormat,

    /// Probe deadline for HOST:PORT arguments (checked like `global.timeout`).
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub timeout: String,

    /// CA file to verify HOST:PORT arguments against (default: system roots).
    #[arg(long = "ca-file", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,

    /// SNI and verification name for HOST:PORT arguments.
    #[arg(long = "server-name", value_name = "NAME")]
    pub server_name: Option<String>,

    /// Also write the metrics to FILE (node_exporter textfile), atomically.
    #[arg(long = "textfile.output", value_name = "FILE")]
    pub textfile_output: Option<PathBuf>,
}

/// `certinel check --output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// An aligned table, coloured on a terminal.
    Table,
    /// A JSON array of rows, for scripts.
    Json,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

fn parse_max_connections(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("invalid number {s:?}: {e}")),
    }
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
    fn check_parses_items_and_thresholds() {
        let cli = Cli::parse_from([
            "certinel",
            "check",
            "/etc/varpulis/tls/tls.crt",
            "example.com:443",
            "--warn",
            "30d",
            "--crit",
            "7d",
            "--output",
            "json",
        ]);
        let Some(Command::Check(args)) = cli.command else {
            panic!("not a check")
        };
        assert_eq!(args.items.len(), 2);
        assert_eq!(args.crit, Duration::from_secs(7 * 86_400));
        assert_eq!(args.output, OutputFormat::Json);
    }

    #[test]
    fn default_port_matches_default_address() {
        let cli = Cli::parse_from(["certinel"]);
        assert_eq!(cli.listen_address, format!(":{DEFAULT_PORT}"));
    }

    #[test]
    fn lifecycle_is_off_and_connections_capped_by_default() {
        let cli = Cli::parse_from(["certinel"]);
        assert!(!cli.enable_lifecycle);
        assert_eq!(cli.max_connections, 512);
        let cli = Cli::parse_from([
            "certinel",
            "--web.max-connections=64",
            "--web.enable-lifecycle",
        ]);
        assert!(cli.enable_lifecycle);
        assert_eq!(cli.max_connections, 64);
        assert!(Cli::try_parse_from(["certinel", "--web.max-connections=0"]).is_err());
    }
}
