//! Real programs the tests start — `openssl s_server`, OpenLDAP, Dovecot,
//! PostgreSQL… — on loopback, as an unprivileged user, and always stopped:
//! when their handle drops, and also when the test binary itself ends
//! without dropping it (a server kept in a `static` for the whole run, or
//! a binary killed mid-run), because each one runs under a small shell
//! watchdog that kills its process group once the test process is gone.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::wait::eventually;

/// A program running in its own process group under the watchdog.
pub struct Background {
    name: String,
    child: Child,
}

/// The uid and gid to run servers as: `nobody` when the tests run as root
/// (servers refuse root, or should not have it), else our own.
pub fn server_user() -> Option<(u32, u32)> {
    if std::fs::metadata("/proc/self").ok()?.uid() != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let line = passwd.lines().find(|l| l.starts_with("nobody:"))?;
    let fields: Vec<&str> = line.split(':').collect();
    Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?))
}

/// The servers' user and group names, and their ids, for configuration
/// files that want them (Dovecot, Exim).
pub fn server_user_names() -> (String, String, u32, u32) {
    let (uid, gid) = server_user().unwrap_or_else(|| {
        let meta = std::fs::metadata("/proc/self").unwrap();
        (meta.uid(), meta.gid())
    });
    let name = |args: &[&str]| {
        let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split(':').next().unwrap_or_default().trim().to_owned()
    };
    let user = name(&["id", "-nu", &uid.to_string()]);
    let group = name(&["getent", "group", &gid.to_string()]);
    (user, group, uid, gid)
}

/// Hands `path` (and everything under it) to the server user.
pub fn give_to_server_user(path: &Path) {
    let Some((uid, gid)) = server_user() else {
        return;
    };
    for entry in walkdir::WalkDir::new(path) {
        let entry = entry.unwrap();
        std::os::unix::fs::chown(entry.path(), Some(uid), Some(gid)).unwrap();
    }
}

impl Background {
    /// Starts `program args…` as the server user, its output in
    /// `log` (appended).
    pub fn start(name: &str, program: &str, args: &[&str], log: &Path) -> Background {
        assert!(
            which(program),
            "{program} is not installed: scripts/test installs the servers the tests run"
        );
        // The watchdog: start the program, then poll for the test process;
        // once it is gone, stop the whole group (the program and whatever
        // it forked).
        // The watchdog survives its own TERM (a handler, which exec
        // resets, so the program still gets the default action) to follow
        // it with KILL for anything that ignored it. dash's `kill` takes
        // no `--`: `-$$` is the group.
        let script = r#"trap : TERM; test_pid=$1; shift
"$@" &
while [ -d "/proc/$test_pid" ] && kill -0 $! 2>/dev/null; do sleep 0.5; done
kill -TERM -$$ 2>/dev/null; sleep 1; kill -KILL -$$ 2>/dev/null"#;
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(script)
            .arg("watchdog")
            .arg(std::process::id().to_string())
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .env("HOME", log.parent().unwrap())
            .current_dir(log.parent().unwrap())
            .process_group(0);
        if let Some((uid, gid)) = server_user() {
            command.uid(uid).gid(gid);
        }
        let child = command.spawn().unwrap();
        Background {
            name: name.to_owned(),
            child,
        }
    }

    /// Waits until `addr` accepts connections, failing with the log.
    pub fn wait_for_port(&mut self, addr: SocketAddr, limit: Duration, log: &Path) {
        eventually(
            limit,
            || {
                if let Ok(Some(status)) = self.child.try_wait() {
                    panic!(
                        "{} exited with {status}:\n{}",
                        self.name,
                        std::fs::read_to_string(log).unwrap_or_default()
                    );
                }
                TcpStream::connect_timeout(&addr, Duration::from_millis(200))
                    .ok()
                    .map(drop)
            },
            || {
                format!(
                    "{} not listening on {addr}:\n{}",
                    self.name,
                    std::fs::read_to_string(log).unwrap_or_default()
                )
            },
        )
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        // The group is the watchdog's: it and everything it started.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

/// Removes `dir` once the test process has ended and its servers have
/// been stopped: for directories kept in a `static`, never dropped.
pub fn remove_after_exit(dir: &Path) {
    // Backgrounded within the shell, which returns at once: the janitor
    // outlives us, a child of init rather than a zombie of ours.
    let script = r#"(while [ -d "/proc/$1" ]; do sleep 0.5; done; sleep 3; rm -rf -- "$2") &"#;
    Command::new("sh")
        .args(["-c", script, "janitor", &std::process::id().to_string()])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .status()
        .unwrap();
}

/// Whether `program` is on the PATH (or an existing path).
pub fn which(program: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).exists();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// A loopback port nothing listens on at the moment.
pub fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Runs `openssl args…` in `dir`, failing with its output.
pub fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed (scripts/test installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `openssl s_server` on a fresh loopback port, in `dir`, with `args`
/// (certificate, key, chain, staple…); stopped when dropped.
pub struct OpensslServer {
    pub addr: SocketAddr,
    _process: Background,
}

impl OpensslServer {
    pub fn start(dir: &Path, args: &[&str]) -> OpensslServer {
        let addr = free_port();
        let accept = addr.to_string();
        let log = dir.join(format!("s_server-{}.log", addr.port()));
        let mut all = vec!["s_server", "-accept", &accept, "-quiet"];
        all.extend_from_slice(args);
        give_to_server_user(dir);
        let mut process = Background::start("openssl s_server", "openssl", &all, &log);
        process.wait_for_port(addr, Duration::from_secs(10), &log);
        OpensslServer {
            addr,
            _process: process,
        }
    }
}
