//! The `certinel` binary: parse flags, load the config before anything is
//! bound or spawned, then hand over to [`certinel::run`].

use std::process::ExitCode;

use clap::Parser;

use certinel::cli::{normalize_listen_address, Cli};
use certinel::config::Config;
use certinel::logging::{self, LogFormat, LogLevel};

/// sysexits.h EX_CONFIG: the daemon refused its configuration.
const EX_CONFIG: u8 = 78;

#[allow(clippy::print_stderr, clippy::print_stdout)] // the edge: no logger yet
fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(&cli.config_file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "certinel: invalid config {}: {e}",
                cli.config_file.display()
            );
            return ExitCode::from(if cli.config_check { 1 } else { EX_CONFIG });
        }
    };
    if cli.config_check {
        println!(
            "config {} is valid: {} file source(s), {} endpoint source(s) with {} target(s)",
            cli.config_file.display(),
            config.files.len(),
            config.endpoints.len(),
            config
                .endpoints
                .iter()
                .map(|e| e.targets.len())
                .sum::<usize>()
        );
        return ExitCode::SUCCESS;
    }
    logging::init(
        cli.log_level.or(config.log.level).unwrap_or(LogLevel::Info),
        cli.log_format
            .or(config.log.format)
            .unwrap_or(LogFormat::Logfmt),
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let address = normalize_listen_address(&cli.listen_address);
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(&address).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(address, error = %e, "cannot listen");
                return ExitCode::FAILURE;
            }
        };
        match certinel::run(config, listener, certinel::server::shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "server failed");
                ExitCode::FAILURE
            }
        }
    })
}
