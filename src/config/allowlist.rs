//! The `/probe` allowlist (`probe.allow`): which targets a scraper may
//! make certinel reach.
//!
//! `/probe` turns certinel into a client of whatever a request names, so
//! nothing is reached unless the operator allowed it: a target's host name
//! must match one of `hosts`, and every address it resolves to (or the
//! address it is) must lie in one of `networks`. Link-local addresses and
//! the cloud metadata services are refused even inside an allowed network
//! unless `allow_link_local` says otherwise, and addresses that are no
//! unicast destination (`0.0.0.0`, which Linux connects to localhost,
//! multicast, broadcast) are always refused. IPv4-mapped IPv6 addresses
//! (`::ffff:169.254.169.254`) are judged as the IPv4 address they are.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One `probe.allow.hosts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// `*`: any name.
    Any,
    /// `db.example.com`: that name.
    Exact(String),
    /// `*.example.com`: any name ending in `.example.com`, however many
    /// labels deeper (stored with its leading dot).
    Suffix(String),
}

/// One `probe.allow.networks` entry: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    base: IpAddr,
    prefix: u8,
}

/// Why a target may not be probed; the `reason` of
/// `certinel_probe_refused_total`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The host name matches no `probe.allow.hosts` pattern.
    #[error("host {0:?} matches no pattern of probe.allow.hosts")]
    Host(String),
    /// An address lies in no `probe.allow.networks` entry.
    #[error("{0} is in no network of probe.allow.networks")]
    Network(IpAddr),
    /// A link-local or cloud metadata address, without `allow_link_local`.
    #[error("{0} is a link-local or cloud metadata address (probe.allow_link_local is off)")]
    LinkLocal(IpAddr),
    /// Not a unicast destination: unspecified, multicast or broadcast.
    #[error("{0} is not a unicast address")]
    NotUnicast(IpAddr),
}

impl Refusal {
    /// Every reason, in exposition order.
    pub const REASONS: [&'static str; 4] = ["host", "network", "link_local", "not_unicast"];

    /// The label value.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Host(_) => "host",
            Refusal::Network(_) => "network",
            Refusal::LinkLocal(_) => "link_local",
            Refusal::NotUnicast(_) => "not_unicast",
        }
    }
}

/// `probe.allow` and `probe.allow_link_local`, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    hosts: Vec<HostPattern>,
    networks: Vec<Network>,
    allow_link_local: bool,
}

/// Cloud metadata services outside the link-local ranges: AWS's IPv6
/// endpoint, Alibaba Cloud's, and Azure's WireServer. (169.254.169.254,
/// which AWS, GCP, Azure and most others use, is link-local already.)
const METADATA: [IpAddr; 3] = [
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
    IpAddr::V4(Ipv4Addr::new(168, 63, 129, 16)),
];

impl Allowlist {
    /// Parses the entries; `Err` names the entry (by index) and the problem.
    pub(crate) fn new(
        hosts: &[String],
        networks: &[String],
        allow_link_local: bool,
    ) -> Result<Allowlist, (AllowKey, usize, String)> {
        let hosts = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| host_pattern(h).map_err(|e| (AllowKey::Hosts, i, e)))
            .collect::<Result<_, _>>()?;
        let networks = networks
            .iter()
            .enumerate()
            .map(|(i, n)| n.parse().map_err(|e| (AllowKey::Networks, i, e)))
            .collect::<Result<_, _>>()?;
        Ok(Allowlist {
            hosts,
            networks,
            allow_link_local,
        })
    }

    /// Whether no address can ever pass (no network is listed).
    pub fn allows_nothing(&self) -> bool {
        self.networks.is_empty()
    }

    /// Checks a target's host before it is resolved: a name must match a
    /// pattern; an IP literal is judged as an address.
    pub fn check_host(&self, host: &str) -> Result<(), Refusal> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return self.check_address(ip);
        }
        let name = normalise(host);
        let matches = |p: &HostPattern| match p {
            HostPattern::Any => true,
            HostPattern::Exact(exact) => *exact == name,
            HostPattern::Suffix(suffix) => name.len() > suffix.len() && name.ends_with(suffix),
        };
        if self.hosts.iter().any(matches) {
            Ok(())
        } else {
            Err(Refusal::Host(host.to_owned()))
        }
    }

    /// Checks one address a probe would connect to.
    pub fn check_address(&self, ip: IpAddr) -> Result<(), Refusal> {
        let ip = ip.to_canonical();
        if !is_unicast(ip) {
            return Err(Refusal::NotUnicast(ip));
        }
        if !self.allow_link_local && is_link_local_or_metadata(ip) {
            return Err(Refusal::LinkLocal(ip));
        }
        if self.networks.iter().any(|n| n.contains(ip)) {
            Ok(())
        } else {
            Err(Refusal::Network(ip))
        }
    }
}

/// Which list of `probe.allow` an entry error is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AllowKey {
    /// `probe.allow.hosts`.
    Hosts,
    /// `probe.allow.networks`.
    Networks,
}

impl AllowKey {
    /// The key path.
    pub(crate) fn key(self) -> &'static str {
        match self {
            AllowKey::Hosts => "probe.allow.hosts",
            AllowKey::Networks => "probe.allow.networks",
        }
    }
}

/// Lower case, without a trailing dot: how names compare.
fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn host_pattern(raw: &str) -> Result<HostPattern, String> {
    let text = normalise(raw.trim());
    if text == "*" {
        return Ok(HostPattern::Any);
    }
    if text.parse::<IpAddr>().is_ok() {
        return Err(format!(
            "{raw:?} is an address: list it under probe.allow.networks"
        ));
    }
    let (suffix, name) = match text.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, text.as_str()),
    };
    if !is_dns_name(name) {
        return Err(format!(
            "invalid host pattern {raw:?}: use a DNS name, \"*.\" followed by one, or \"*\""
        ));
    }
    Ok(if suffix {
        HostPattern::Suffix(format!(".{name}"))
    } else {
        HostPattern::Exact(name.to_owned())
    })
}

/// Labels of letters, digits, `-` and `_`, 1–63 bytes each, 253 in all.
pub(crate) fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

impl std::str::FromStr for Network {
    type Err = String;

    /// `10.0.0.0/8`, `fd00::/8`, or a bare address (a network of one).
    fn from_str(raw: &str) -> Result<Network, String> {
        let text = raw.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let base: IpAddr = addr.parse().map_err(|_| {
            format!("invalid network {raw:?}: use an address with a prefix length, e.g. 10.0.0.0/8")
        })?;
        if let IpAddr::V6(v6) = base {
            if v6.to_ipv4_mapped().is_some() {
                return Err(format!(
                    "invalid network {raw:?}: write IPv4 networks in IPv4 form"
                ));
            }
        }
        let max = if base.is_ipv4() { 32 } else { 128 };
        let prefix =
            match prefix {
                None => max,
                Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| {
                    format!("invalid network {raw:?}: prefix length must be 0-{max}")
                })?,
            };
        let network = Network { base, prefix };
        if network.masked(base) != base {
            return Err(format!(
                "invalid network {raw:?}: address bits set beyond the prefix (did you mean {}/{prefix}?)",
                network.masked(base)
            ));
        }
        Ok(network)
    }
}

impl Network {
    /// `ip` with the bits beyond this network's prefix cleared.
    fn masked(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v4) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        }
    }

    fn contains(&self, ip: IpAddr) -> bool {
        self.base.is_ipv4() == ip.is_ipv4() && self.masked(ip) == self.base
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

/// A destination a connection may go to: not unspecified (Linux connects
/// `0.0.0.0` to localhost), not in `0.0.0.0/8`, not multicast or broadcast.
fn is_unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !(v4.octets()[0] == 0 || v4.is_multicast() || v4.is_broadcast()),
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast()),
    }
}

/// 169.254.0.0/16, fe80::/10, and the metadata services of [`METADATA`].
fn is_link_local_or_metadata(ip: IpAddr) -> bool {
    METADATA.contains(&ip)
        || match ip {
            IpAddr::V4(v4) => v4.is_link_local(),
            IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(hosts: &[&str], networks: &[&str], link_local: bool) -> Allowlist {
        let own = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        Allowlist::new(&own(hosts), &own(networks), link_local).unwrap()
    }

    fn reason(a: &Allowlist, ip: &str) -> Option<&'static str> {
        a.check_address(ip.parse().unwrap())
            .err()
            .map(|r| r.reason())
    }

    #[test]
    fn host_patterns_match_exact_names_and_suffixes_case_insensitively() {
        let a = list(&["db.example.com", "*.svc.cluster.local"], &[], false);
        for ok in [
            "db.example.com",
            "DB.Example.com.",
            "web.ns.svc.cluster.local",
        ] {
            assert_eq!(a.check_host(ok), Ok(()), "{ok}");
        }
        for no in [
            "svc.cluster.local",
            "evilsvc.cluster.local",
            "db.example.com.evil",
            "x.db.example.com",
        ] {
            assert_eq!(a.check_host(no), Err(Refusal::Host(no.to_owned())), "{no}");
        }
        assert_eq!(
            list(&["*"], &[], false).check_host("anything.at.all"),
            Ok(())
        );
    }

    #[test]
    fn ip_literal_hosts_are_judged_as_addresses() {
        let a = list(&["*"], &["10.0.0.0/8"], false);
        assert_eq!(a.check_host("10.1.2.3"), Ok(()));
        assert_eq!(
            a.check_host("192.168.0.1"),
            Err(Refusal::Network("192.168.0.1".parse().unwrap()))
        );
    }

    #[test]
    fn addresses_must_lie_in_a_network() {
        let a = list(&[], &["127.0.0.1/32", "10.0.0.0/8", "fd00::/8"], false);
        assert_eq!(reason(&a, "127.0.0.1"), None);
        assert_eq!(reason(&a, "10.255.0.1"), None);
        assert_eq!(reason(&a, "fd12::1"), None);
        assert_eq!(reason(&a, "127.0.0.2"), Some("network"));
        assert_eq!(reason(&a, "11.0.0.1"), Some("network"));
        assert_eq!(reason(&a, "::1"), Some("network"));
        // A mapped address is the IPv4 address it maps.
        assert_eq!(reason(&a, "::ffff:10.0.0.1"), None);
        assert_eq!(reason(&a, "::ffff:127.0.0.2"), Some("network"));
    }

    #[test]
    fn link_local_and_metadata_need_their_own_switch_even_inside_an_allowed_network() {
        let everything = ["0.0.0.0/0", "::/0"];
        let a = list(&[], &everything, false);
        for ip in [
            "169.254.169.254",
            "::ffff:169.254.169.254",
            "fe80::1",
            "fd00:ec2::254",
            "100.100.100.200",
            "168.63.129.16",
        ] {
            assert_eq!(reason(&a, ip), Some("link_local"), "{ip}");
        }
        let b = list(&[], &everything, true);
        assert_eq!(reason(&b, "169.254.169.254"), None);
        assert_eq!(reason(&b, "fe80::1"), None);
    }

    #[test]
    fn non_unicast_addresses_are_always_refused() {
        let a = list(&[], &["0.0.0.0/0", "::/0"], true);
        for ip in [
            "0.0.0.0",
            "0.1.2.3",
            "::",
            "224.0.0.1",
            "255.255.255.255",
            "ff02::1",
        ] {
            assert_eq!(reason(&a, ip), Some("not_unicast"), "{ip}");
        }
    }

    #[test]
    fn networks_parse_strictly() {
        let n = |s: &str| s.parse::<Network>();
        assert_eq!(n("10.0.0.0/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(n("127.0.0.1").unwrap().to_string(), "127.0.0.1/32");
        assert_eq!(n("::1").unwrap().to_string(), "::1/128");
        assert_eq!(n("0.0.0.0/0").unwrap().to_string(), "0.0.0.0/0");
        assert!(n("10.0.0.1/8")
            .unwrap_err()
            .contains("did you mean 10.0.0.0/8"));
        assert!(n("10.0.0.0/33").unwrap_err().contains("0-32"));
        assert!(n("example.com/8").unwrap_err().contains("invalid network"));
        assert!(n("::ffff:10.0.0.0/104").unwrap_err().contains("IPv4 form"));
    }

    #[test]
    fn host_patterns_parse_strictly() {
        let bad = |s: &str| host_pattern(s).unwrap_err();
        assert!(bad("foo*.example.com").contains("invalid host pattern"));
        assert!(bad("*.*.example.com").contains("invalid host pattern"));
        assert!(bad("a b").contains("invalid host pattern"));
        assert!(bad("10.0.0.1").contains("probe.allow.networks"));
        assert_eq!(
            host_pattern("*.Example.COM.").unwrap(),
            HostPattern::Suffix(".example.com".to_owned())
        );
    }
}
