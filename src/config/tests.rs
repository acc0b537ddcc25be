//! Loading and validation, end to end: YAML text in, configuration or
//! an error naming key and line out.

use super::*;
use std::path::Path;

fn parse(yaml: &str) -> Result<Config, ConfigError> {
    Config::from_yaml(yaml, Path::new("/tmp"))
}

fn err(yaml: &str) -> String {
    parse(yaml)
        .expect_err("config should be rejected")
        .to_string()
}

#[test]
fn defaults_apply_to_sources_without_overrides() {
    let c = parse("files:\n  - name: a\n    paths: [/etc/ssl/certs/*.pem]\n").unwrap();
    assert_eq!(c.global.interval, DEFAULT_INTERVAL);
    assert_eq!(c.global.timeout, DEFAULT_TIMEOUT);
    assert_eq!(c.global.concurrency, DEFAULT_CONCURRENCY);
    assert_eq!(c.files[0].interval, DEFAULT_INTERVAL);
    assert_eq!(c.files[0].max_file_size, DEFAULT_MAX_FILE_SIZE);
    assert!(c.metrics.expose_not_before);
    assert!(!c.metrics.expose_relative);
}

#[test]
fn per_target_server_name_wins_over_entry_and_host() {
    let c = parse(
            "endpoints:\n  - name: e\n    server_name: entry.example\n    targets:\n      - a.example:443\n      - { target: \"10.0.0.5:443\", server_name: api.example.com }\n      - \"[::1]:8443\"\n",
        )
        .unwrap();
    let t = &c.endpoints[0].targets;
    assert_eq!(t[0].server_name, "entry.example");
    assert_eq!(t[1].server_name, "api.example.com");
    assert_eq!((t[2].host.as_str(), t[2].port), ("::1", 8443));
}

#[test]
fn ip_targets_send_no_sni() {
    let c = parse("endpoints:\n  - name: e\n    targets: [\"127.0.0.1:443\"]\n").unwrap();
    assert_eq!(c.endpoints[0].targets[0].sni(), "");
    assert_eq!(c.endpoints[0].targets[0].server_name, "127.0.0.1");
}

#[test]
fn duplicate_targets_collapse() {
    let c = parse("endpoints:\n  - name: e\n    targets: [\"a:1\", \"a:1\", \"b:1\"]\n").unwrap();
    assert_eq!(c.endpoints[0].targets.len(), 2);
}

#[test]
fn unknown_key_names_key_and_line() {
    let e = err("global:\n  interval: 1m\n  intervall: 2m\n");
    assert!(e.contains("unknown field `intervall`"), "{e}");
    assert!(e.contains("line 3"), "{e}");
}

#[test]
fn bad_duration_names_key_and_line() {
    let e = err("files:\n  - name: a\n    paths: [/x]\n    interval: 5 minutes-ish\n");
    assert!(e.contains("files[0].interval"), "{e}");
    assert!(e.contains("invalid duration"), "{e}");
    assert!(e.contains("line 4"), "{e}");
}

#[test]
fn duplicate_names_across_kinds_are_rejected_with_line() {
    let e = err(
        "files:\n  - name: a\n    paths: [/x]\nendpoints:\n  - name: a\n    targets: [\"h:1\"]\n",
    );
    assert!(e.contains("duplicate source name \"a\""), "{e}");
    assert!(e.contains("endpoints[0].name"), "{e}");
    assert!(e.contains("line 5"), "{e}");
}

#[test]
fn missing_ca_file_names_key_and_line() {
    let e =
        err("endpoints:\n  - name: e\n    targets: [\"h:1\"]\n    ca_file: /nonexistent/ca.crt\n");
    assert!(e.contains("endpoints[0].ca_file"), "{e}");
    assert!(e.contains("/nonexistent/ca.crt"), "{e}");
    assert!(e.contains("line 4"), "{e}");
}

#[test]
fn target_without_port_is_rejected() {
    let e = err("endpoints:\n  - name: e\n    targets: [\"example.com\"]\n");
    assert!(e.contains("missing port"), "{e}");
    assert!(e.contains("endpoints[0].targets"), "{e}");
    assert!(e.contains("line 3"), "{e}");
}

#[test]
fn bad_glob_in_block_list_points_at_its_line() {
    let e = err("files:\n  - name: a\n    paths:\n      - /ok/*.pem\n      - \"/bad/[.pem\"\n");
    assert!(e.contains("invalid glob"), "{e}");
    assert!(e.contains("line 5"), "{e}");
}

#[test]
fn relative_paths_resolve_against_config_dir() {
    let c = Config::from_yaml(
        "files:\n  - name: a\n    paths: [certs/./tls.crt]\n",
        Path::new("/etc/certinel"),
    )
    .unwrap();
    assert_eq!(
        c.files[0].paths[0].to_string(),
        "/etc/certinel/certs/tls.crt"
    );
}

#[test]
fn empty_file_is_a_clear_error() {
    assert!(err("  \n").contains("empty"));
}

#[test]
fn zero_concurrency_is_rejected() {
    assert!(err("global:\n  concurrency: 0\n").contains("global.concurrency"));
}

#[test]
fn flow_style_errors_name_the_full_key_and_line() {
    let e = err("files: [{name: x, paths: [/a], interval: 5 parsecs}]\n");
    assert!(
        e.starts_with("files[0].interval: invalid duration \"5 parsecs\""),
        "{e}"
    );
    assert!(e.ends_with("at line 1"), "{e}");
    let e = err("endpoints:\n  - {name: e, targets: [\"a:1\", {target: \"::1:443\"}]}\n");
    assert!(
        e.starts_with("endpoints[0].targets[1].target: invalid target"),
        "{e}"
    );
    assert!(e.contains("brackets") && e.ends_with("at line 2"), "{e}");
}

#[test]
fn every_range_is_enforced_with_key_and_line() {
    for (yaml, key) in [
        (
            "global:\n  concurrency: 3000000000000000000\n",
            "global.concurrency",
        ),
        ("global:\n  interval: 300000000000y\n", "global.interval"),
        ("global:\n  interval: 1ns\n", "global.interval"),
        ("global:\n  timeout: 300000000000y\n", "global.timeout"),
        ("global:\n  max_file_size: 1TiB\n", "global.max_file_size"),
        ("global:\n  max_file_size: -1\n", "global.max_file_size"),
        (
            "files:\n  - name: f\n    paths: [/x]\n    interval: 300000000000y\n",
            "files[0].interval",
        ),
        (
            "endpoints:\n  - name: e\n    targets: [\"h:1\"]\n    interval: 2s\n    timeout: 5s\n",
            "endpoints[0].timeout",
        ),
    ] {
        let e = err(yaml);
        assert!(e.starts_with(&format!("{key}: ")), "{yaml:?}: {e}");
        assert!(e.contains(" at line "), "{yaml:?}: {e}");
    }
}

#[test]
fn a_timeout_inherited_from_global_is_blamed_on_the_key_that_set_it() {
    let e = err("global:\n  interval: 5s\nendpoints:\n  - name: e\n    targets: [\"h:1\"]\n");
    assert!(
        e.starts_with("global.timeout: the default timeout 10s is longer than the interval 5s"),
        "{e}"
    );
    // File sources have no timeout: a short global interval is fine.
    assert!(parse("global:\n  interval: 1s\nfiles:\n  - name: f\n    paths: [/x]\n").is_ok());
}

#[test]
fn absurd_nesting_is_refused_before_parsing() {
    let e = err(&"[".repeat(50_000));
    assert!(e.contains("nested more than"), "{e}");
}

#[test]
fn a_server_name_tls_cannot_use_is_refused() {
    let e =
        err("endpoints:\n  - name: e\n    server_name: \"bad name!\"\n    targets: [\"h:1\"]\n");
    assert!(
        e.starts_with("endpoints[0].server_name: \"bad name!\" is not a valid TLS server name"),
        "{e}"
    );
}

#[test]
fn a_config_path_that_is_a_fifo_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("certinel.yaml");
    crate::filesystem::tests::mkfifo(&fifo);
    let e = Config::load(&fifo).unwrap_err().to_string();
    assert!(e.contains("not a regular file (FIFO)"), "{e}");
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Values a key might be given, sensible and not.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("5m".to_owned()),
            Just("1ns".to_owned()),
            Just("300000000000y".to_owned()),
            Just("-1".to_owned()),
            Just("3000000000000000000".to_owned()),
            Just("[]".to_owned()),
            Just("{}".to_owned()),
            Just("\"\"".to_owned()),
            Just("\"[::1]:443\"".to_owned()),
            Just("\"::1:443\"".to_owned()),
            Just("[\"a:1\", {target: \"b:2\", server_name: x}]".to_owned()),
            Just("[/etc/ssl/*.pem, \"/bad/[\"]".to_owned()),
            "[ -~]{0,20}",
            any::<u64>().prop_map(|n| n.to_string()),
        ]
    }

    fn key() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "interval",
            "timeout",
            "concurrency",
            "max_file_size",
            "name",
            "paths",
            "targets",
            "server_name",
            "ca_file",
            "starttls",
            "expect_file",
            "exclude",
            "bogus",
        ])
    }

    type Pairs = Vec<(&'static str, String)>;

    /// A configuration shaped like the real thing, with random keys and
    /// values, in block or flow style.
    fn config() -> impl Strategy<Value = String> {
        let entry = || proptest::collection::vec((key(), value()), 0..6);
        (
            proptest::collection::vec((key(), value()), 0..4),
            proptest::collection::vec(entry(), 0..3),
            proptest::collection::vec(entry(), 0..3),
            any::<bool>(),
        )
            .prop_map(
                |(global, files, endpoints, flow): (Pairs, Vec<Pairs>, Vec<Pairs>, bool)| {
                    let map = |pairs: &[(&'static str, String)]| {
                        if flow {
                            let inner: Vec<String> =
                                pairs.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                            format!("{{{}}}", inner.join(", "))
                        } else {
                            pairs
                                .iter()
                                .map(|(k, v)| format!("\n    {k}: {v}"))
                                .collect()
                        }
                    };
                    let list = |entries: &[Pairs]| {
                        entries
                            .iter()
                            .map(|e| format!("\n  - {}", map(e).trim_start()))
                            .collect::<String>()
                    };
                    format!(
                        "global: {}\nfiles:{}\nendpoints:{}\n",
                        map(&global),
                        list(&files),
                        list(&endpoints)
                    )
                },
            )
    }

    proptest! {
        #[test]
        fn arbitrary_text_is_a_config_or_an_error(text in "\\PC{0,400}") {
            let _ = Config::from_yaml(&text, Path::new("/tmp"));
        }

        #[test]
        fn config_shaped_text_is_a_config_or_an_error_naming_a_key(text in config()) {
            match Config::from_yaml(&text, Path::new("/tmp")) {
                Ok(c) => {
                    prop_assert!(c.global.concurrency >= 1);
                    for e in &c.endpoints {
                        prop_assert!(e.timeout <= e.interval);
                    }
                }
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }
    }
}
