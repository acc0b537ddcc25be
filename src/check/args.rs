//! `certinel check` arguments → a configuration: each argument that names
//! an existing path or looks like one is a file pattern, `host:port` is an
//! endpoint target. They are built as a raw configuration and go through
//! the same validation as a configuration file.

use std::path::{Path, PathBuf};

use crate::config::raw::{RawConfig, RawEndpointSource, RawFileSource, RawGlobal, RawTarget};
use crate::config::{Config, ConfigError};

/// Builds a config from `certinel check` arguments. `timeout` is the
/// `--timeout` text, checked like `global.timeout`.
pub fn adhoc_config(
    args: &[String],
    timeout: &str,
    ca_file: Option<&Path>,
    server_name: Option<&str>,
) -> Result<Config, ConfigError> {
    let (paths, targets): (Vec<&String>, Vec<&String>) = args.iter().partition(|a| is_file_arg(a));
    let text = |p: &Path| p.to_string_lossy().into_owned();
    let raw = RawConfig {
        global: RawGlobal {
            timeout: Some(timeout.to_owned()),
            ..RawGlobal::default()
        },
        files: (!paths.is_empty()).then(|| {
            vec![RawFileSource {
                name: "files".to_owned(),
                paths: paths.into_iter().cloned().collect(),
                ..RawFileSource::default()
            }]
        }),
        endpoints: (!targets.is_empty()).then(|| {
            vec![RawEndpointSource {
                name: "endpoints".to_owned(),
                targets: targets.into_iter().map(RawTarget::short).collect(),
                ca_file: ca_file.map(text),
                server_name: server_name.map(str::to_owned),
                ..RawEndpointSource::default()
            }]
        }),
        ..RawConfig::default()
    };
    Config::from_raw(raw, &PathBuf::from(".")).map_err(|e| match e {
        ConfigError::Invalid { key, line, message } => ConfigError::Invalid {
            key: argument_name(&key),
            line,
            message,
        },
        other => other,
    })
}

/// The flag or argument a configuration key came from.
fn argument_name(key: &str) -> String {
    match key {
        "global.timeout" => "--timeout",
        k if k.ends_with(".ca_file") => "--ca-file",
        k if k.ends_with(".server_name") => "--server-name",
        _ => "arguments",
    }
    .to_owned()
}

fn is_file_arg(a: &str) -> bool {
    if Path::new(a).exists() {
        return true;
    }
    // `host:port` (or `[v6]:port`) with a numeric port and no path
    // separator is a target; anything else is a path or glob.
    let target = !a.contains('/')
        && matches!(a.rsplit_once(':'), Some((_, port)) if port.parse::<u16>().is_ok());
    !target
}

/// Adds the sources of `extra` to `base`, refusing name clashes.
pub fn merge(mut base: Config, extra: Config) -> Result<Config, ConfigError> {
    let names: Vec<&str> = base
        .files
        .iter()
        .map(|f| f.name.as_str())
        .chain(base.endpoints.iter().map(|e| e.name.as_str()))
        .collect();
    for name in extra
        .files
        .iter()
        .map(|f| &f.name)
        .chain(extra.endpoints.iter().map(|e| &e.name))
    {
        if names.contains(&name.as_str()) {
            return Err(ConfigError::Invalid {
                key: "arguments".to_owned(),
                line: None,
                message: format!(
                    "the config file already has a source named {name:?}, which certinel check uses for its arguments"
                ),
            });
        }
    }
    base.files.extend(extra.files);
    base.endpoints.extend(extra.endpoints);
    Ok(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_told_apart() {
        assert!(is_file_arg("/etc/ssl/certs/x.pem"));
        assert!(is_file_arg("certs/*.pem"));
        assert!(is_file_arg("tls.crt"));
        assert!(!is_file_arg("example.com:443"));
        assert!(!is_file_arg("[::1]:8443"));
    }

    #[test]
    fn bad_arguments_name_the_flag() {
        let ok = ["example.com:443".to_owned()];
        let e = adhoc_config(&ok, "300000000000y", None, None)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--timeout: "), "{e}");
        let cfg = adhoc_config(&ok, "3s", None, Some("api.example.com")).unwrap();
        assert_eq!(cfg.endpoints[0].timeout, std::time::Duration::from_secs(3));
        assert_eq!(cfg.endpoints[0].targets[0].server_name, "api.example.com");
    }
}
