//! The systemd unit: hardened, running our command line, with the exit
//! codes and signals the daemon has; verified by `systemd-analyze` when it
//! is installed, parsed always.

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::*;

/// `[Section]` → key → values (a key may repeat).
type Unit = BTreeMap<String, BTreeMap<String, Vec<String>>>;

fn parse_unit(text: &str) -> Unit {
    let mut unit = Unit::new();
    let mut section = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        assert!(
            !line.ends_with('\\'),
            "line {}: continuation lines not expected",
            n + 1
        );
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name.to_owned());
            unit.entry(name.to_owned()).or_default();
            continue;
        }
        let section = section
            .as_ref()
            .unwrap_or_else(|| panic!("line {}: outside a section", n + 1));
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("line {}: not key=value: {line}", n + 1));
        unit.get_mut(section)
            .unwrap()
            .entry(k.trim().to_owned())
            .or_default()
            .push(v.trim().to_owned());
    }
    unit
}

const UNIT: &str = "deploy/systemd/certinel.service";

fn service() -> BTreeMap<String, Vec<String>> {
    parse_unit(&read(UNIT))
        .remove("Service")
        .expect("[Service]")
}

fn one_value<'a>(service: &'a BTreeMap<String, Vec<String>>, key: &str) -> &'a str {
    let v = service
        .get(key)
        .unwrap_or_else(|| panic!("{UNIT}: {key}= missing"));
    v.last().unwrap()
}

#[test]
fn systemd_unit_is_hardened_and_runs_our_command_line() {
    let unit = parse_unit(&read(UNIT));
    assert!(unit.contains_key("Unit") && unit.contains_key("Install"));
    let s = service();

    let exec: Vec<String> = one_value(&s, "ExecStart")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_eq!(exec[0], format!("/usr/local/bin/{}", bin_name()));
    let cli = cli(&exec[1..]);
    assert_eq!(cli.config_file, Path::new("/etc/certinel/config.yaml"));

    for (key, want) in [
        ("DynamicUser", "yes"),
        ("Restart", "on-failure"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("ProtectClock", "yes"),
        ("ProtectHostname", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("RestrictNamespaces", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("RestrictRealtime", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("SystemCallArchitectures", "native"),
        ("UMask", "0077"),
    ] {
        assert_eq!(one_value(&s, key), want, "{key}");
    }
    assert_eq!(s["SystemCallFilter"][0], "@system-service");
    // certinel reads /proc/stat for process_start_time_seconds.
    assert!(!s.contains_key("ProcSubset"));
    assert!(!s.contains_key("ReadWritePaths"), "certinel writes nothing");
}

#[test]
fn systemd_unit_exit_codes_and_signals_match_the_daemon() {
    let s = service();

    // A refused config exits with the status the unit does not restart on.
    let tmp = tempfile::tempdir().unwrap();
    let bad = write(tmp.path(), "bad.yaml", "files: 3\n");
    let status = run_bounded(
        certinel_command()
            .arg("--config.file")
            .arg(&bad)
            .args(["--web.listen-address", "127.0.0.1:0"]),
        Duration::from_secs(20),
    )
    .status;
    assert_eq!(
        status.code().map(|c| c.to_string()).as_deref(),
        Some(one_value(&s, "RestartPreventExitStatus"))
    );

    // ExecReload sends SIGHUP only if the daemon survives one.
    let d = Daemon::start(
        tmp.path(),
        "files:\n  - name: none\n    paths: [\"/nonexistent/*.pem\"]\n",
    );
    d.signal("HUP");
    let deadline = Instant::now() + Duration::from_millis(1500);
    let mut survives = true;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&d.addr, Duration::from_millis(200)).is_err() {
            survives = false;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    match s.get("ExecReload") {
        None => assert!(
            !survives,
            "certinel now survives SIGHUP: add ExecReload=/bin/kill -HUP $MAINPID to {UNIT}"
        ),
        Some(v) => {
            assert!(
                survives,
                "ExecReload={v:?} would kill certinel: it does not handle SIGHUP"
            );
            assert_eq!(v.last().unwrap(), "/bin/kill -HUP $MAINPID");
        }
    }
}

#[test]
fn systemd_analyze_accepts_the_unit() {
    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze not installed: unit checked by parsing only");
        return;
    };
    assert!(version.status.success());
    // verify wants ExecStart to exist: point it at the binary under test.
    let tmp = tempfile::tempdir().unwrap();
    let text = read(UNIT).replace(
        &format!("/usr/local/bin/{}", bin_name()),
        env!("CARGO_BIN_EXE_certinel"),
    );
    let unit = write(tmp.path(), "certinel.service", text);
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let about_us: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("certinel.service"))
        .collect();
    assert!(
        out.status.success() && about_us.is_empty(),
        "systemd-analyze verify: {stderr}"
    );

    // Exposure score ("OK" is below 2.0, i.e. 20 on --threshold's scale).
    // --offline needs systemd 252; older versions skip this part.
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=20", "--no-pager"])
        .arg(&unit)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("unrecognized option") || stderr.contains("Unknown option") {
        eprintln!("systemd-analyze security --offline unsupported: {stderr}");
        return;
    }
    assert!(
        out.status.success(),
        "exposure above 2.0:\n{}{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
}
