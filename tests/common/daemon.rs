//! The real `certinel` binary: started on loopback and stopped by signal
//! ([`Daemon`], [`Launch`]), or run to completion ([`run_bounded`],
//! [`config_check`]). Every wait is bounded; a daemon is killed when its
//! handle drops, whether the test passed or not.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::disk::write;
use crate::common::exposition::Exposition;
use crate::common::http::{http_get, try_get};
use crate::common::wait::eventually;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_certinel");

/// How long certinel may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// `certinel`, without the variables it reads from the environment.
pub fn certinel_command() -> Command {
    hermetic(Command::new(BIN))
}

/// Unsets the variables certinel reads, so that the shell running the
/// tests cannot change what they see.
fn hermetic(mut cmd: Command) -> Command {
    cmd.env_remove("CERTINEL_LOG_LEVEL")
        .env_remove("CERTINEL_LOG_FORMAT")
        .stdin(Stdio::null());
    cmd
}

/// What a finished run printed.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` to completion, killing it (and failing) after `limit`.
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> Finished {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} still running after {limit:?}; stderr: {}",
                err.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Finished {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// `certinel --config.check --config.file <path>`.
pub fn config_check(path: &Path) -> Finished {
    run_bounded(
        certinel_command()
            .arg("--config.check")
            .arg("--config.file")
            .arg(path),
        Duration::from_secs(20),
    )
}

/// How to start certinel, for the tests [`Daemon::start`] does not cover.
pub struct Launch {
    config: PathBuf,
    args: Vec<OsString>,
    envs: Vec<(String, String)>,
    debug_logs: bool,
    listen: Option<SocketAddr>,
    unprivileged: bool,
    ulimit: Option<String>,
}

impl Launch {
    /// certinel on the config file at `config`, on a free loopback port,
    /// with `--log.level debug`.
    pub fn new(config: &Path) -> Launch {
        Launch {
            config: config.to_owned(),
            args: Vec::new(),
            envs: Vec::new(),
            debug_logs: true,
            listen: None,
            unprivileged: false,
            ulimit: None,
        }
    }

    /// Starts under `ulimit ARGS` (e.g. `-n 256`), through `sh`.
    pub fn ulimit(mut self, args: &str) -> Launch {
        self.ulimit = Some(args.to_owned());
        self
    }

    /// More flags.
    pub fn args(mut self, args: &[&str]) -> Launch {
        self.args.extend(args.iter().map(OsString::from));
        self
    }

    /// An environment variable (certinel's own are unset unless set here).
    pub fn env(mut self, key: &str, value: &str) -> Launch {
        self.envs.push((key.to_owned(), value.to_owned()));
        self
    }

    /// No `--log.level debug`: the binary's default or the environment
    /// decides.
    pub fn default_log_level(mut self) -> Launch {
        self.debug_logs = false;
        self
    }

    /// Listens on `addr` (free a moment ago) and is ready when `/-/healthy`
    /// answers: for log settings that hide the `listening` line the
    /// address is otherwise read from.
    pub fn listen_on(mut self, addr: SocketAddr) -> Launch {
        self.listen = Some(addr);
        self
    }

    /// Runs as nobody (uid and gid 65534) through `setpriv`, from a copy
    /// of the binary beside the config, so that permission checks apply
    /// even when the tests run as root.
    pub fn unprivileged(mut self) -> Launch {
        self.unprivileged = true;
        self
    }

    pub fn start(self) -> Daemon {
        let mut cmd = if self.unprivileged {
            // Copied where nobody can execute it, whatever the permissions
            // on the build tree.
            let bin = self.config.parent().unwrap().join("certinel");
            std::fs::copy(BIN, &bin).unwrap();
            std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
            let mut cmd = Command::new("setpriv");
            cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
                .arg(bin);
            hermetic(cmd)
        } else if let Some(ulimit) = &self.ulimit {
            let mut cmd = Command::new("sh");
            cmd.arg("-c")
                .arg(format!("ulimit {ulimit} && exec \"$0\" \"$@\""))
                .arg(BIN);
            hermetic(cmd)
        } else {
            certinel_command()
        };
        let listen = self
            .listen
            .map_or_else(|| "127.0.0.1:0".to_owned(), |a| a.to_string());
        cmd.arg("--config.file")
            .arg(&self.config)
            .args(["--web.listen-address", &listen]);
        if self.debug_logs {
            cmd.args(["--log.level", "debug"]);
        }
        cmd.args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k, v)));
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        let mut daemon = Daemon {
            addr: ([0, 0, 0, 0], 0).into(),
            child: Mutex::new(child),
            lines,
            reader: Some(reader),
        };
        daemon.addr = eventually(
            START_TIMEOUT,
            || {
                daemon.assert_running();
                match self.listen {
                    Some(addr) => try_get(addr, "/-/healthy")
                        .is_some_and(|(status, _)| status == 200)
                        .then_some(addr),
                    None => daemon
                        .logs()
                        .iter()
                        .filter(|l| l.contains("msg=listening"))
                        .find_map(|l| logged_address(l)),
                }
            },
            || {
                format!(
                    "certinel did not start; logs:\n{}",
                    daemon.logs().join("\n")
                )
            },
        );
        daemon
    }
}

/// The `address=` field of a logfmt line.
pub fn logged_address(line: &str) -> Option<SocketAddr> {
    line.split_whitespace()
        .find_map(|f| f.strip_prefix("address=")?.parse().ok())
}

/// certinel running on loopback, killed on drop.
pub struct Daemon {
    pub addr: SocketAddr,
    child: Mutex<Child>,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
}

/// A daemon stopped by SIGTERM: its exit status and every line it logged.
pub struct Exited {
    pub status: ExitStatus,
    pub logs: Vec<String>,
}

impl Daemon {
    /// Writes `config` to `dir/certinel.yaml` and starts the binary on it.
    pub fn start(dir: &Path, config: &str) -> Daemon {
        Daemon::start_with_args(dir, config, &[])
    }

    pub fn start_with_args(dir: &Path, config: &str, extra: &[&str]) -> Daemon {
        let config = write(dir, "certinel.yaml", config);
        Launch::new(&config).args(extra).start()
    }

    /// Starts certinel behind basic auth for `user` with `password` (a
    /// `--web.config.file` written beside the config); returns it with the
    /// `Authorization` header value that gets in.
    pub fn start_with_basic_auth(
        dir: &Path,
        config: &str,
        user: &str,
        password: &str,
    ) -> (Daemon, String) {
        use base64::Engine as _;
        let hash = bcrypt::hash(password, 4).unwrap();
        let web = write(
            dir,
            "web.yml",
            format!("basic_auth_users:\n  {user}: '{hash}'\n"),
        );
        let daemon =
            Daemon::start_with_args(dir, config, &["--web.config.file", &web.to_string_lossy()]);
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        (daemon, format!("Basic {token}"))
    }

    /// The stderr lines so far.
    pub fn logs(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits until a log line satisfies `pred` (at most `timeout`).
    pub fn wait_for_log(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        eventually(
            timeout,
            || self.logs().into_iter().find(|l| pred(l)),
            || format!("no such log line:\n{}", self.logs().join("\n")),
        )
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.addr, path)
    }

    pub fn metrics(&self) -> Exposition {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200, "{body}");
        Exposition::parse(&body)
    }

    /// Polls `/metrics` until `pred` holds (at most `timeout`).
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&Exposition) -> bool) -> Exposition {
        eventually(
            timeout,
            || Some(self.metrics()).filter(|m| pred(m)),
            || {
                format!(
                    "condition not met; exposition:\n{}\nlogs:\n{}",
                    self.metrics().text,
                    self.logs().join("\n")
                )
            },
        )
    }

    /// Waits until `/-/ready` answers 200.
    pub fn wait_ready(&self, timeout: Duration) {
        eventually(
            timeout,
            || {
                self.assert_running();
                (self.get("/-/ready").0 == 200).then_some(())
            },
            || format!("not ready; logs:\n{}", self.logs().join("\n")),
        )
    }

    fn assert_running(&self) {
        if let Some(status) = self.exit_status() {
            panic!(
                "certinel exited with {status}; logs:\n{}",
                self.logs().join("\n")
            );
        }
    }

    fn exit_status(&self) -> Option<ExitStatus> {
        self.child.lock().unwrap().try_wait().unwrap()
    }

    pub fn pid(&self) -> u32 {
        self.child.lock().unwrap().id()
    }

    /// Sends a signal (e.g. "HUP") to the daemon.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Whether the process is still running.
    pub fn is_running(&self) -> bool {
        self.exit_status().is_none()
    }

    /// Sends SIGTERM and waits for the exit (at most 10 s) and for the last
    /// of its logs.
    pub fn terminate(mut self) -> Exited {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = eventually(
            Duration::from_secs(10),
            || self.exit_status(),
            || "certinel ignored SIGTERM".to_owned(),
        );
        // The reader ends at the end of stderr, which the exit closed.
        if let Some(reader) = self.reader.take() {
            while !reader.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Exited {
            status,
            logs: self.logs(),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(child) = self.child.get_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
