//! Hostile inputs, as tables: every file a user or an attacker can put in
//! a watched directory (`files`) and every server that can sit on a probed
//! port (`endpoints`), each one line with the exact reason it must get.
//! Each table runs against ONE real certinel binary, beside a good file and
//! a good endpoint that must stay exported and fresh, while a watchdog
//! scrapes `/metrics` throughout (every scrape under 2 s, no two series
//! with the same name and labels) and `/proc` shows descriptors and memory
//! coming back to their baseline.

mod der;
mod endpoints;
mod files;
mod flight;

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::Exposition;

/// The longest any scrape may take, however hostile the inputs.
pub const SCRAPE_BUDGET: Duration = Duration::from_secs(2);

/// One GET /metrics with its own deadlines; an error instead of a panic,
/// so the watchdog can report it.
pub fn scrape(addr: SocketAddr) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("write: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8(raw).map_err(|e| format!("not UTF-8: {e}"))?;
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no header end")?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("status: {head}"));
    }
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Ok(dechunk(body));
    }
    Ok(body.to_owned())
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n + 2 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

/// Series (name + every label) that occur more than once in an exposition.
pub fn duplicate_series(m: &Exposition) -> Vec<String> {
    let mut seen: HashMap<(&str, &BTreeMap<String, String>), usize> = HashMap::new();
    for s in &m.samples {
        *seen.entry((s.name.as_str(), &s.labels)).or_default() += 1;
    }
    let mut twins: Vec<String> = seen
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|((name, labels), n)| format!("{n}× {name}{labels:?}"))
        .collect();
    twins.sort();
    twins
}

/// What the watchdog saw.
#[derive(Debug, Default)]
pub struct WatchReport {
    pub scrapes: usize,
    pub slowest: Duration,
    pub failures: Vec<String>,
    pub duplicates: Vec<String>,
}

impl WatchReport {
    /// Every scrape answered, within budget, without twin series.
    pub fn assert_clean(&self) {
        assert!(self.scrapes >= 5, "too few scrapes: {self:?}");
        assert!(self.failures.is_empty(), "failed scrapes: {self:?}");
        assert!(self.duplicates.is_empty(), "twin series: {self:?}");
        assert!(self.slowest < SCRAPE_BUDGET, "slow scrape: {self:?}");
    }
}

/// Scrapes `/metrics` every 100 ms on its own thread until finished.
pub struct Watchdog {
    stop: Arc<AtomicBool>,
    report: Arc<Mutex<WatchReport>>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    pub fn start(addr: SocketAddr) -> Watchdog {
        let stop = Arc::new(AtomicBool::new(false));
        let report = Arc::new(Mutex::new(WatchReport::default()));
        let (flag, out) = (stop.clone(), report.clone());
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                let started = Instant::now();
                let result = scrape(addr);
                let took = started.elapsed();
                let mut r = out.lock().unwrap();
                r.scrapes += 1;
                r.slowest = r.slowest.max(took);
                match result {
                    Ok(body) => {
                        let twins = duplicate_series(&Exposition::parse(&body));
                        if !twins.is_empty() && r.duplicates.is_empty() {
                            r.duplicates = twins;
                        }
                    }
                    Err(e) => r.failures.push(e),
                }
                drop(r);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Watchdog {
            stop,
            report,
            thread: Some(thread),
        }
    }

    pub fn finish(mut self) -> WatchReport {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        std::mem::take(&mut *self.report.lock().unwrap())
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Open descriptors of `pid`.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Resident memory of `pid`, KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// The quietest moment of a window: the fewest descriptors and the least
/// resident memory seen, sampling every 25 ms. Probes in flight hold
/// sockets; between rounds there are none, so the minimum over a window
/// longer than one interval is the resting level.
#[derive(Debug, Clone, Copy)]
pub struct Resting {
    pub fds: usize,
    pub rss_kib: u64,
}

pub fn resting(pid: u32, window: Duration) -> Resting {
    let deadline = Instant::now() + window;
    let mut out = Resting {
        fds: usize::MAX,
        rss_kib: u64::MAX,
    };
    while Instant::now() < deadline {
        out.fds = out.fds.min(open_fds(pid));
        out.rss_kib = out.rss_kib.min(rss_kib(pid));
        std::thread::sleep(Duration::from_millis(25));
    }
    out
}

/// A file path as certinel writes it into a label: control characters,
/// the backslash and bytes that are not UTF-8 as `\xNN`, everything else
/// as it is.
pub fn label_of(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() || c == '\\' {
                out.push_str(&format!("\\x{:02x}", u32::from(c)));
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}
