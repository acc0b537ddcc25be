//! `process_*` metrics, as every Prometheus exporter has them.
//!
//! Read from `/proc/self` at scrape time, as the Go client does: these are
//! in-memory kernel files that never block. On other systems nothing is
//! exported.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

/// Collects `process_*` from `/proc/self`.
#[derive(Debug)]
pub(super) struct ProcessCollector;

/// What `/proc/self` says about us.
#[derive(Debug, Default, PartialEq)]
struct Sample {
    cpu_seconds: f64,
    resident_bytes: u64,
    virtual_bytes: u64,
    start_time_seconds: f64,
    open_fds: u64,
    max_fds: Option<u64>,
}

impl Collector for ProcessCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let Some(s) = sample() else { return Ok(()) };
        let m = enc.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(s.cpu_seconds).encode(m)?;
        let gauges: [(&str, &str, f64); 4] = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                s.resident_bytes as f64,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                s.virtual_bytes as f64,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                s.start_time_seconds,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                s.open_fds as f64,
            ),
        ];
        for (name, help, value) in gauges {
            let m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(value).encode(m)?;
        }
        if let Some(max) = s.max_fds {
            let m = enc.encode_descriptor(
                "process_max_fds",
                "Maximum number of open file descriptors.",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(max as f64).encode(m)?;
        }
        Ok(())
    }
}

#[cfg(target_os = "linux")]
fn sample() -> Option<Sample> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let boot_time = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| parse_btime(&s))?;
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    let max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| parse_max_fds(&s));
    // SAFETY-free: sysconf is exposed safely by libc's wrapper? No — it is
    // an extern fn, so we use the constants Linux guarantees instead.
    let ticks = clock_ticks();
    let page = page_size();
    let mut s = parse_stat(&stat, ticks, page, boot_time)?;
    s.open_fds = open_fds;
    s.max_fds = max_fds;
    Some(s)
}

#[cfg(not(target_os = "linux"))]
fn sample() -> Option<Sample> {
    None
}

/// USER_HZ is 100 on every Linux architecture Rust targets; the kernel
/// reports /proc times in it regardless of the internal tick rate.
fn clock_ticks() -> f64 {
    100.0
}

/// Page size from the auxiliary vector would need unsafe; RSS in
/// /proc/self/statm and /proc/self/stat is in pages of this size on the
/// platforms certinel ships for (x86_64, aarch64 with 4 KiB pages).
fn page_size() -> u64 {
    4096
}

/// Parses `/proc/self/stat`. The command name (field 2) may contain spaces
/// and parentheses, so fields are counted after its closing `)`.
fn parse_stat(stat: &str, ticks: f64, page: u64, boot_time: f64) -> Option<Sample> {
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ")": field 3 is index 0, so field N is index N-3.
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    let starttime: f64 = f.get(19)?.parse().ok()?;
    let vsize: u64 = f.get(20)?.parse().ok()?;
    let rss: u64 = f.get(21)?.parse().ok()?;
    Some(Sample {
        cpu_seconds: (utime + stime) / ticks,
        resident_bytes: rss * page,
        virtual_bytes: vsize,
        start_time_seconds: boot_time + starttime / ticks,
        open_fds: 0,
        max_fds: None,
    })
}

fn parse_btime(proc_stat: &str) -> Option<f64> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

fn parse_max_fds(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.strip_prefix("Max open files")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_in_command_name_parses() {
        let stat = "1234 (cert inel) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 500 10485760 300 18446744073709551615";
        let s = parse_stat(stat, 100.0, 4096, 1_700_000_000.0).unwrap();
        assert_eq!(s.cpu_seconds, 3.0);
        assert_eq!(s.resident_bytes, 300 * 4096);
        assert_eq!(s.virtual_bytes, 10_485_760);
        assert_eq!(s.start_time_seconds, 1_700_000_005.0);
    }

    #[test]
    fn limits_and_btime_parse() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n";
        assert_eq!(parse_max_fds(limits), Some(1024));
        assert_eq!(
            parse_btime("cpu 1 2\nbtime 1700000000\n"),
            Some(1_700_000_000.0)
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn live_sample_is_plausible() {
        let s = sample().unwrap();
        assert!(s.resident_bytes > 0);
        assert!(s.open_fds > 0);
    }
}
