//! The real Prometheus tools, found one way and started one way:
//! `prometheus` and `prometheus-alertmanager` on a free loopback port in a
//! directory of their own (killed on drop, their output kept for failure
//! messages), and `promtool`.
//!
//! `$PROMETHEUS`, `$PROMTOOL` and `$ALERTMANAGER` override the programs
//! looked up in `PATH` (Debian: `apt-get install prometheus
//! prometheus-alertmanager`; `scripts/test` installs them).
//!
//! [`find_program`] and [`start_server`] serve every real program the
//! tests start on a port (the browser's driver too).

use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::disk::{repo, write, yaml_str};
use crate::common::http::{try_get, urlencode};
use crate::common::tls_server::closed_port;
use crate::common::wait::eventually;

/// Scrape and rule evaluation interval of [`Prometheus::start`]; the tests
/// give certinel the same pass interval.
pub const TICK: &str = "1s";
/// The job [`Prometheus::start`] scrapes certinel as.
pub const JOB: &str = "certinel";
/// How long a server may take to answer its readiness path.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A program from `$env`, or the first of `names` in `PATH`; the test
/// fails, saying how to install it, when there is none.
pub fn find_program(env: &str, names: &[&str]) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in names {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "{} not found in PATH (set ${env} to override). These tests run the real programs: \
         run scripts/test, which installs them with apt (prometheus, prometheus-alertmanager, \
         chromium, chromium-driver)",
        names.join(" or ")
    );
}

pub fn promtool() -> PathBuf {
    find_program("PROMTOOL", &["promtool"])
}

/// Runs `cmd` and fails with its output unless it succeeds.
pub fn run_ok(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `promtool check metrics` on an exposition.
pub fn promtool_check_metrics(text: &str) {
    let mut child = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- input\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A child process with its output in a log file; killed on drop.
pub struct Proc {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &'static str, cmd: &mut Command, log: PathBuf) -> Proc {
        let out = File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name} ({cmd:?}): {e}"));
        Proc { name, child, log }
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The last lines of the process's output, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a server that listens on the port it is given and answers
/// `ready_path` when ready; retries with a new port if another process took
/// the one picked between probing and binding.
pub fn start_server(
    name: &'static str,
    dir: &Path,
    ready_path: &str,
    mut command: impl FnMut(SocketAddr) -> Command,
) -> (Proc, SocketAddr) {
    std::fs::create_dir_all(dir).unwrap();
    for attempt in 0.. {
        let addr = closed_port();
        let mut proc = Proc::spawn(name, &mut command(addr), dir.join(format!("{name}.log")));
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = proc.exited() {
                let log = proc.log_tail();
                if attempt < 3 && log.contains("address already in use") {
                    break;
                }
                panic!("{} exited at start-up ({status}):\n{log}", proc.name);
            }
            if try_get(addr, ready_path).is_some_and(|(status, _)| status == 200) {
                return (proc, addr);
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready on {addr} within {READY_TIMEOUT:?}:\n{}",
                proc.name,
                proc.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    unreachable!()
}

pub struct Alertmanager {
    pub proc: Proc,
    pub addr: SocketAddr,
}

impl Alertmanager {
    /// Alertmanager in `dir`, sending every alert to `webhook` at once.
    pub fn start(dir: &Path, webhook: &str) -> Alertmanager {
        let config = write(
            dir,
            "alertmanager.yml",
            format!(
                "route:\n  receiver: hook\n  group_by: [alertname, instance, filepath, target]\n  \
                 group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n\
                 receivers:\n  - name: hook\n    webhook_configs:\n      - url: \"{webhook}\"\n        send_resolved: true\n"
            ),
        );
        let storage = dir.join("data");
        let program = find_program("ALERTMANAGER", &["prometheus-alertmanager", "alertmanager"]);
        let (proc, addr) = start_server("alertmanager", dir, "/-/ready", |addr| {
            let mut cmd = Command::new(&program);
            cmd.arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.path={}", storage.display()))
                .arg(format!("--web.listen-address={addr}"))
                .arg("--cluster.listen-address=")
                .arg("--log.level=debug");
            cmd
        });
        Alertmanager { proc, addr }
    }
}

pub struct Prometheus {
    pub proc: Proc,
    pub addr: SocketAddr,
}

impl Prometheus {
    /// Prometheus scraping `certinel` as [`JOB`] every [`TICK`], evaluating
    /// `rules` and notifying `alertmanager`; returns once it has scraped
    /// certinel successfully.
    pub fn start(
        dir: &Path,
        certinel: SocketAddr,
        rules: &[PathBuf],
        alertmanager: Option<SocketAddr>,
    ) -> Prometheus {
        let mut config = format!(
            "global:\n  scrape_interval: {TICK}\n  scrape_timeout: {TICK}\n  evaluation_interval: {TICK}\n"
        );
        if !rules.is_empty() {
            config.push_str("rule_files:\n");
            for r in rules {
                config.push_str(&format!("  - {}\n", yaml_str(r)));
            }
        }
        if let Some(am) = alertmanager {
            config.push_str(&format!(
                "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [\"{am}\"]\n"
            ));
        }
        config.push_str(&format!(
            "scrape_configs:\n  - job_name: {JOB}\n    static_configs:\n      - targets: [\"{certinel}\"]\n"
        ));
        let prom = Prometheus::start_with_config(dir, &config);
        prom.wait_query(
            &format!("up{{job=\"{JOB}\"}} == 1"),
            Duration::from_secs(20),
            |r| !r.is_empty(),
        );
        prom
    }

    /// Prometheus with `config` as its `prometheus.yml`, once ready.
    pub fn start_with_config(dir: &Path, config: &str) -> Prometheus {
        let config = write(dir, "prometheus.yml", config);
        let storage = dir.join("data");
        let program = find_program("PROMETHEUS", &["prometheus"]);
        let (proc, addr) = start_server("prometheus", dir, "/-/ready", |addr| {
            let mut cmd = Command::new(&program);
            cmd.arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.tsdb.path={}", storage.display()))
                .arg(format!("--web.listen-address={addr}"));
            cmd
        });
        Prometheus { proc, addr }
    }

    pub fn get_json(&self, path: &str) -> Value {
        let (status, body) = try_get(self.addr, path)
            .unwrap_or_else(|| panic!("GET {path}: no answer\n{}", self.proc.log_tail()));
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("GET {path}: {status}, not JSON ({e}): {body}"))
    }

    /// An instant query: the result vector, or the error Prometheus gave.
    pub fn query(&self, promql: &str) -> Result<Vec<Value>, String> {
        let v = self.get_json(&format!("/api/v1/query?query={}", urlencode(promql)));
        if v["status"] != "success" {
            return Err(format!("{}: {}", v["errorType"], v["error"]));
        }
        match &v["data"]["result"] {
            Value::Array(items) if v["data"]["resultType"] != "scalar" => Ok(items.clone()),
            // A scalar or string result: one value.
            other => Ok(vec![serde_json::json!({ "value": other })]),
        }
    }

    /// Repeats `promql` until its result satisfies `pred` (at most `timeout`).
    pub fn wait_query(
        &self,
        promql: &str,
        timeout: Duration,
        pred: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let run = || {
            self.query(promql)
                .unwrap_or_else(|e| panic!("{promql}: {e}"))
        };
        eventually(
            timeout,
            || Some(run()).filter(|r| pred(r)),
            || {
                format!(
                    "Prometheus: `{promql}` not as expected: {:?}\n{}",
                    run(),
                    self.proc.log_tail()
                )
            },
        )
    }

    /// Every rule evaluates without error.
    pub fn assert_rules_healthy(&self) {
        let v = self.get_json("/api/v1/rules");
        for g in v["data"]["groups"].as_array().into_iter().flatten() {
            for r in g["rules"].as_array().into_iter().flatten() {
                assert_ne!(
                    r["health"], "err",
                    "rule {} fails: {}",
                    r["name"], r["lastError"]
                );
            }
        }
    }
}

/// The value of one sample of a query result.
pub fn sample_value(sample: &Value) -> f64 {
    sample["value"][1]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Copies the shipped rule file with every `for:` shortened to the
/// evaluation interval; returns the copy and how many `for:` it shortened.
pub fn rules_with_short_for(dir: &Path) -> (PathBuf, usize) {
    let original = std::fs::read_to_string(repo().join("alerts/certinel.rules.yml")).unwrap();
    let mut shortened = 0;
    let mut out = String::new();
    for line in original.lines() {
        let trimmed = line.trim_start();
        let is_for = trimmed
            .strip_prefix("for:")
            .is_some_and(|v| v.split_whitespace().count() == 1);
        if is_for {
            let indent = &line[..line.len() - trimmed.len()];
            out.push_str(&format!("{indent}for: {TICK}\n"));
            shortened += 1;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(shortened > 0, "no `for:` in alerts/certinel.rules.yml");
    (write(dir, "rules/certinel.rules.yml", out), shortened)
}
