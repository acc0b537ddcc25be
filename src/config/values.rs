//! The value types of the configuration: durations, sizes, targets,
//! protocols and label attributes, each parsed from the text as written
//! and checked against its documented range.
//!
//! Every bound here exists because something downstream multiplies, adds
//! or allocates with the value: an interval of `300000000000y` overflows a
//! `Duration` product, a timeout of the same an `Instant`, a concurrency of
//! 3·10¹⁸ a semaphore. Out-of-range values are refused at load time, so a
//! running daemon never meets them.

use std::time::Duration;

use serde::Deserialize;

/// Shortest `interval`: one probe per target per second is already a load
/// test, not monitoring.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Longest `interval`: a certificate checked less than weekly is not
/// monitored.
pub const MAX_INTERVAL: Duration = Duration::from_secs(7 * 86_400);
/// Shortest `timeout`: below this even a loopback handshake can miss it.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(10);
/// Longest `timeout`.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Largest `global.concurrency`: every permit is a socket, twice over with
/// the slow lane.
pub const MAX_CONCURRENCY: u64 = 4096;
/// Smallest `max_file_size`: the smallest real certificate is larger.
pub const MIN_FILE_SIZE: u64 = 1024;
/// Largest `max_file_size`: a file is read whole into memory.
pub const MAX_FILE_SIZE: u64 = 64 * 1024 * 1024;

/// Parses a humantime duration (`30s`, `5m`, `1h30m`) within `min..=max`.
pub(crate) fn duration(text: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let parsed = humantime::parse_duration(text.trim()).map_err(|e| {
        format!("invalid duration {text:?}: {e} (use e.g. \"30s\", \"5m\", \"1h30m\")")
    })?;
    if parsed.is_zero() {
        return Err(format!(
            "invalid duration {text:?}: must be greater than zero"
        ));
    }
    if parsed < min || parsed > max {
        return Err(format!(
            "duration {text:?} is out of range: must be between {} and {}",
            humantime::format_duration(min),
            humantime::format_duration(max)
        ));
    }
    Ok(parsed)
}

/// A byte count as written: a number, or text with a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RawSize {
    /// `1048576`.
    Bytes(u64),
    /// `-1`: refused with a clear message rather than as a type error.
    Negative(i64),
    /// `1MiB`, `512 KiB`.
    Text(String),
}

impl<'de> Deserialize<'de> for RawSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = RawSize;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a size such as 1048576, \"512KiB\" or \"1MiB\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawSize, E> {
                Ok(RawSize::Bytes(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawSize, E> {
                Ok(u64::try_from(v).map_or(RawSize::Negative(v), RawSize::Bytes))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawSize, E> {
                Ok(RawSize::Text(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Checks a size within `min..=max`.
pub(crate) fn size(raw: &RawSize, min: u64, max: u64) -> Result<u64, String> {
    let bytes = match raw {
        RawSize::Bytes(n) => *n,
        RawSize::Negative(n) => return Err(format!("invalid size {n}: must not be negative")),
        RawSize::Text(text) => parse_size(text).ok_or_else(|| {
            format!("invalid size {text:?} (use bytes or a unit: B, KB, KiB, MB, MiB, GB, GiB)")
        })?,
    };
    if bytes < min || bytes > max {
        return Err(format!(
            "size {bytes} bytes is out of range: must be between {min} and {max} bytes"
        ));
    }
    Ok(bytes)
}

fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1000,
        "KiB" => 1024,
        "MB" => 1000 * 1000,
        "MiB" => 1024 * 1024,
        "GB" => 1000 * 1000 * 1000,
        "GiB" => 1024 * 1024 * 1024,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Checks `global.concurrency`.
pub(crate) fn concurrency(n: u64) -> Result<usize, String> {
    if n == 0 {
        return Err("must be at least 1".to_owned());
    }
    if n > MAX_CONCURRENCY {
        return Err(format!(
            "{n} is out of range: must be between 1 and {MAX_CONCURRENCY}"
        ));
    }
    usize::try_from(n).map_err(|_| format!("{n} is out of range"))
}

/// A `host:port` target, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostPort {
    /// As written, trimmed: the `target` label.
    pub(crate) target: String,
    /// Without IPv6 brackets.
    pub(crate) host: String,
    /// 1–65535.
    pub(crate) port: u16,
}

/// Parses `host:port` or `[v6]:port`.
pub(crate) fn host_port(raw: &str) -> Result<HostPort, String> {
    let target = raw.trim();
    let (host, port) = if let Some(rest) = target.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("invalid target {raw:?}: missing ']' after IPv6 address"))?;
        let port = after.strip_prefix(':').ok_or_else(|| {
            format!("invalid target {raw:?}: missing port (expected host:port, e.g. [::1]:443)")
        })?;
        (host, port)
    } else {
        let (host, port) = target.rsplit_once(':').ok_or_else(|| {
            format!(
                "invalid target {raw:?}: missing port (expected host:port, e.g. example.com:443)"
            )
        })?;
        if host.contains(':') {
            return Err(format!(
                "invalid target {raw:?}: put IPv6 addresses in brackets, e.g. [::1]:443"
            ));
        }
        (host, port)
    };
    if host.is_empty() {
        return Err(format!("invalid target {raw:?}: empty host"));
    }
    if host
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '/')
    {
        return Err(format!(
            "invalid target {raw:?}: a host name has no spaces, control characters or '/'"
        ));
    }
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("invalid target {raw:?}: port must be 1-65535"))?;
    Ok(HostPort {
        target: target.to_owned(),
        host: host.to_owned(),
        port,
    })
}

/// Protocols whose STARTTLS certinel speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Starttls {
    /// SMTP (`EHLO`, `STARTTLS`, 220), ports 25/587.
    Smtp,
    /// IMAP (`a1 STARTTLS`, `a1 OK`), port 143.
    Imap,
    /// POP3 (`STLS`, `+OK`), port 110.
    Pop3,
    /// FTP (`AUTH TLS`, 234), port 21.
    Ftp,
    /// PostgreSQL (SSLRequest, `S`), port 5432.
    Postgres,
    /// LDAP (the StartTLS extended operation, RFC 4511), port 389.
    Ldap,
    /// XMPP client-to-server (`<starttls/>`, `<proceed/>`, RFC 6120),
    /// port 5222.
    Xmpp,
    /// XMPP server-to-server, port 5269.
    #[serde(rename = "xmpp-server")]
    XmppServer,
    /// MySQL and MariaDB (the SSL request packet), port 3306.
    Mysql,
}

impl Starttls {
    /// The name used in the config and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Starttls::Smtp => "smtp",
            Starttls::Imap => "imap",
            Starttls::Pop3 => "pop3",
            Starttls::Ftp => "ftp",
            Starttls::Postgres => "postgres",
            Starttls::Ldap => "ldap",
            Starttls::Xmpp => "xmpp",
            Starttls::XmppServer => "xmpp-server",
            Starttls::Mysql => "mysql",
        }
    }
}

/// Optional distinguished-name attributes (the default label set stays
/// small to bound cardinality).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub enum NameAttribute {
    /// countryName.
    C,
    /// stateOrProvinceName.
    ST,
    /// localityName.
    L,
}

impl NameAttribute {
    /// The suffix used in label names (`subject_C`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            NameAttribute::C => "C",
            NameAttribute::ST => "ST",
            NameAttribute::L => "L",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_accept_units() {
        assert_eq!(parse_size("1MiB"), Some(1024 * 1024));
        assert_eq!(parse_size("512 KiB"), Some(512 * 1024));
        assert_eq!(parse_size("2MB"), Some(2_000_000));
        assert_eq!(parse_size("12"), Some(12));
        assert_eq!(parse_size("1 parsec"), None);
        assert_eq!(parse_size("99999999999999999999GiB"), None);
    }

    #[test]
    fn durations_outside_their_range_are_refused() {
        let d = |s| duration(s, MIN_INTERVAL, MAX_INTERVAL);
        assert_eq!(d("5m"), Ok(Duration::from_secs(300)));
        assert!(d("1ns").unwrap_err().contains("out of range"));
        assert!(d("300000000000y").unwrap_err().contains("out of range"));
        assert!(d("0s").unwrap_err().contains("greater than zero"));
        assert!(d("5 parsecs").unwrap_err().contains("invalid duration"));
    }

    #[test]
    fn concurrency_is_bounded() {
        assert_eq!(concurrency(64), Ok(64));
        assert!(concurrency(0).is_err());
        assert!(concurrency(3_000_000_000_000_000_000).is_err());
    }

    #[test]
    fn targets_split_into_host_and_port() {
        let t = host_port(" [::1]:8443 ").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.target.as_str()),
            ("::1", 8443, "[::1]:8443")
        );
        assert!(host_port("::1:443").unwrap_err().contains("brackets"));
        assert!(host_port("example.com")
            .unwrap_err()
            .contains("missing port"));
        assert!(host_port("a:0").unwrap_err().contains("1-65535"));
        assert!(host_port(":443").unwrap_err().contains("empty host"));
        assert!(host_port("a b:443").unwrap_err().contains("no spaces"));
    }
}
