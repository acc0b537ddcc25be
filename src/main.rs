//! The `certinel` binary: parse flags, load the config before anything is
//! bound or spawned, then hand over to [`certinel::run`] (the daemon) or
//! [`certinel::check`] (the one-shot check).

use std::process::ExitCode;

use clap::Parser;

use certinel::check::{self, Thresholds};
use certinel::cli::{normalize_listen_address, CheckArgs, Cli, Command, OutputFormat};
use certinel::config::Config;
use certinel::logging::{self, LogFormat, LogLevel};

/// sysexits.h EX_CONFIG: the daemon refused its configuration.
const EX_CONFIG: u8 = 78;

#[allow(clippy::print_stderr, clippy::print_stdout)] // the edge: no logger yet
fn main() -> ExitCode {
    certinel::memory::tune_allocator();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            let is_check = std::env::args().nth(1).as_deref() == Some("check");
            return ExitCode::from(match (e.use_stderr(), is_check) {
                (false, _) => 0, // --help, --version
                (true, true) => check::EXIT_UNKNOWN,
                (true, false) => 2,
            });
        }
    };
    if let Some(Command::Check(args)) = cli.command {
        return ExitCode::from(run_check(&args, cli.log_level, cli.log_format));
    }
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
    let web = match &cli.web_config_file {
        Some(path) => match certinel::http::WebConfig::load(path) {
            Ok(w) => Some(std::sync::Arc::new(w)),
            Err(e) => {
                eprintln!("certinel: invalid web config {}: {e}", path.display());
                return ExitCode::from(if cli.config_check { 1 } else { EX_CONFIG });
            }
        },
        None => None,
    };
    if cli.config_check {
        let probe = if config.probe.enabled {
            format!(
                ", /probe enabled with {} module(s)",
                config.probe.modules.len()
            )
        } else {
            String::new()
        };
        println!(
            "config {} is valid: {} file source(s), {} endpoint source(s) with {} target(s){probe}",
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
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    let address = normalize_listen_address(&cli.listen_address);
    let health_address = cli.health_address.as_deref().map(normalize_listen_address);
    let code = runtime.block_on(async move {
        let listener = match certinel::http::bind(&address).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(address, error = %e, "cannot listen");
                return ExitCode::FAILURE;
            }
        };
        let health = match health_address {
            Some(address) => match certinel::http::bind(&address).await {
                Ok(l) => Some(l),
                Err(e) => {
                    tracing::error!(address, error = %e, "cannot listen (health)");
                    return ExitCode::FAILURE;
                }
            },
            None => None,
        };
        let options = certinel::RunOptions {
            config_path: Some(cli.config_file.clone()),
            textfile: cli.textfile_output,
            web,
            health,
            max_connections: cli.max_connections,
            enable_lifecycle: cli.enable_lifecycle,
        };
        let shutdown = certinel::http::shutdown_signal();
        match certinel::run(config, listener, options, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "server failed");
                ExitCode::FAILURE
            }
        }
    });
    // The grace period is over: blocking work still running (a DNS lookup
    // that waits for its resolver's timeout) is abandoned, not waited for.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    code
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            None
        }
    }
}

#[allow(clippy::print_stderr, clippy::print_stdout)] // a CLI: its output is the product
fn run_check(args: &CheckArgs, level: Option<LogLevel>, format: Option<LogFormat>) -> u8 {
    let fail = |message: String| {
        eprintln!("certinel check: {message}");
        check::EXIT_UNKNOWN
    };
    if args.crit > args.warn {
        return fail("--crit must not be longer than --warn".to_owned());
    }
    if args.items.is_empty() && args.config_file.is_none() {
        return fail("nothing to check: give files, HOST:PORT targets or --config.file".to_owned());
    }
    let mut config = match &args.config_file {
        Some(path) => match Config::load(path) {
            Ok(c) => Some(c),
            Err(e) => return fail(format!("invalid config {}: {e}", path.display())),
        },
        None => None,
    };
    if !args.items.is_empty() {
        let adhoc = match check::adhoc_config(
            &args.items,
            &args.timeout,
            args.ca_file.as_deref(),
            args.server_name.as_deref(),
        ) {
            Ok(c) => c,
            Err(e) => return fail(e.to_string()),
        };
        config = match config {
            Some(base) => match check::merge(base, adhoc) {
                Ok(c) => Some(c),
                Err(e) => return fail(e.to_string()),
            },
            None => Some(adhoc),
        };
    }
    let Some(config) = config else {
        return check::EXIT_UNKNOWN;
    };
    // The table reports every failure; logs stay for real trouble.
    logging::init(
        level.unwrap_or(LogLevel::Error),
        format.unwrap_or(LogFormat::Logfmt),
    );
    let Some(runtime) = runtime() else {
        return check::EXIT_UNKNOWN;
    };
    let thresholds = Thresholds {
        warn: args.warn,
        crit: args.crit,
    };
    let snapshot = match runtime.block_on(check::run(&config, args.textfile_output.as_deref())) {
        Ok(snapshot) => snapshot,
        Err(e) => return fail(format!("{e}")),
    };
    let rows = check::rows(&snapshot, thresholds, std::time::SystemTime::now());
    match args.output {
        OutputFormat::Table if rows.is_empty() => println!("no certificates found"),
        OutputFormat::Table => print!("{}", check::table(&rows, check::use_colour())),
        OutputFormat::Json => match serde_json::to_string_pretty(&rows) {
            Ok(json) => println!("{json}"),
            Err(e) => return fail(format!("cannot encode JSON: {e}")),
        },
    }
    check::exit_code(&rows)
}
