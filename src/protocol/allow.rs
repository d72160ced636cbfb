//! Which targets a request may choose, and which browser origins may open a session.
//! Plain Rust: the glue turns nginx addresses into `Peer`s and asks.

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;

/// One `websockify_allow` rule: a host part and a port range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    host: Host,
    ports: RangeInclusive<u16>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Host {
    Any,
    Net {
        addr: IpAddr,
        prefix: u8,
    },
    /// A host name, compared with the name the request chose (before resolving).
    Name(String),
    /// `unix:/path` exactly, or every socket below `unix:/dir/`.
    Unix(String),
    /// `upstream:NAME`: an `upstream {}` group a request may name.
    Group(String),
}

/// A target as the module is about to connect to it.
#[derive(Clone, Copy, Debug)]
pub enum Peer<'a> {
    Inet(SocketAddr),
    Unix(&'a [u8]),
}

impl Rule {
    /// Parses `host` (`all`, `ADDR`, `ADDR/PREFIX`, `unix:PATH`, `upstream:NAME`, `NAME`)
    /// and the optional `ports` (`N` or `N-M`; all ports when absent).
    pub fn parse(host: &str, ports: Option<&str>) -> Result<Rule, &'static str> {
        let ports = match ports {
            None => 1..=u16::MAX,
            Some(p) => parse_ports(p)?,
        };
        let host = if host == "all" {
            Host::Any
        } else if let Some(path) = host.strip_prefix("unix:") {
            if !path.starts_with('/') {
                return Err("a unix: rule needs an absolute path");
            }
            Host::Unix(path.to_owned())
        } else if let Some(group) = host.strip_prefix("upstream:") {
            if !valid_name(group) {
                return Err("invalid upstream name");
            }
            Host::Group(group.to_ascii_lowercase())
        } else if let Some((addr, prefix)) = host.split_once('/') {
            let addr: IpAddr = addr.parse().map_err(|_| "invalid network address")?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix: u8 = prefix.parse().map_err(|_| "invalid prefix length")?;
            if prefix > max {
                return Err("prefix length too long");
            }
            Host::Net {
                addr: canonical(addr),
                prefix: if addr.is_ipv4() || canonical(addr).is_ipv6() {
                    prefix
                } else {
                    prefix.saturating_sub(96)
                },
            }
        } else if let Ok(addr) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
            let addr = canonical(addr);
            Host::Net {
                addr,
                prefix: if addr.is_ipv4() { 32 } else { 128 },
            }
        } else if valid_name(host) {
            Host::Name(host.to_ascii_lowercase())
        } else {
            return Err("invalid host");
        };
        if matches!(host, Host::Unix(_) | Host::Group(_)) && ports != (1..=u16::MAX) {
            return Err("unix: and upstream: rules take no ports");
        }
        Ok(Rule { host, ports })
    }

    fn allows_peer(&self, peer: Peer) -> bool {
        match (&self.host, peer) {
            (Host::Any, Peer::Inet(sa)) => self.ports.contains(&sa.port()),
            (Host::Net { addr, prefix }, Peer::Inet(sa)) => {
                self.ports.contains(&sa.port()) && in_net(canonical(sa.ip()), *addr, *prefix)
            }
            (Host::Unix(rule), Peer::Unix(path)) => unix_allowed(rule.as_bytes(), path),
            _ => false,
        }
    }

    fn allows_name(&self, name: &[u8], port: u16) -> bool {
        matches!(&self.host, Host::Name(n) if n.as_bytes().eq_ignore_ascii_case(name))
            && self.ports.contains(&port)
    }
}

/// May a request name the `upstream {}` group `group`?
pub fn group_allowed(rules: &[Rule], group: &[u8]) -> bool {
    rules
        .iter()
        .any(|r| matches!(&r.host, Host::Group(g) if g.as_bytes().eq_ignore_ascii_case(group)))
}

/// Can any address that `name` resolves to be allowed? When not, the name is refused
/// without asking DNS, so clients cannot make the gateway look up names at will.
pub fn may_resolve(rules: &[Rule], name: &[u8], port: u16) -> bool {
    rules.iter().any(|r| match &r.host {
        Host::Any | Host::Net { .. } => r.ports.contains(&port),
        Host::Name(_) => r.allows_name(name, port),
        Host::Unix(_) | Host::Group(_) => false,
    })
}

/// May a request connect to `peer`, which it named `name` (a host name, when it gave one)?
pub fn allowed(rules: &[Rule], name: Option<&[u8]>, peer: Peer) -> bool {
    let port = match peer {
        Peer::Inet(sa) => sa.port(),
        Peer::Unix(_) => 0,
    };
    rules
        .iter()
        .any(|r| r.allows_peer(peer) || name.is_some_and(|n| r.allows_name(n, port)))
}

fn parse_ports(p: &str) -> Result<RangeInclusive<u16>, &'static str> {
    let port = |s: &str| match s.parse::<u16>() {
        Ok(0) | Err(_) => Err("invalid port"),
        Ok(n) => Ok(n),
    };
    let range = match p.split_once('-') {
        Some((lo, hi)) => port(lo)?..=port(hi)?,
        None => port(p)?..=port(p)?,
    };
    if range.is_empty() {
        return Err("empty port range");
    }
    Ok(range)
}

fn valid_name(host: &str) -> bool {
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
}

/// IPv4-mapped IPv6 addresses match IPv4 rules.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

fn in_net(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

fn unix_allowed(rule: &[u8], path: &[u8]) -> bool {
    // No way out of an allowed directory with "..".
    if path.split(|&b| b == b'/').any(|part| part == b"..") {
        return false;
    }
    if rule.ends_with(b"/") {
        path.starts_with(rule) && path.len() > rule.len()
    } else {
        path == rule
    }
}

/// One `websockify_allow_origin` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The Origin names the host the request was sent to (its `Host` header).
    Same,
    Exact(String),
}

impl Origin {
    pub fn parse(value: &str) -> Result<Origin, &'static str> {
        if value == "same" {
            return Ok(Origin::Same);
        }
        let rest = value
            .strip_prefix("https://")
            .or_else(|| value.strip_prefix("http://"))
            .ok_or("an origin is \"same\" or scheme://host[:port]")?;
        if rest.is_empty() || rest.contains('/') {
            return Err("an origin is \"same\" or scheme://host[:port]");
        }
        Ok(Origin::Exact(value.to_ascii_lowercase()))
    }
}

/// Cross-site WebSocket hijacking check. Browsers always send `Origin`; a client without
/// one is not a browser that a foreign page can drive, so it passes.
pub fn origin_allowed(rules: &[Origin], origin: Option<&[u8]>, host: Option<&[u8]>) -> bool {
    let Some(origin) = origin else { return true };
    rules.is_empty()
        || rules.iter().any(|rule| match rule {
            Origin::Exact(o) => o.as_bytes().eq_ignore_ascii_case(origin),
            Origin::Same => host.is_some_and(|h| origin_host(origin).eq_ignore_ascii_case(h)),
        })
}

/// `https://host:port` -> `host:port`.
fn origin_host(origin: &[u8]) -> &[u8] {
    origin
        .windows(3)
        .position(|w| w == b"://")
        .and_then(|i| origin.get(i + 3..))
        .unwrap_or(origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inet(s: &str) -> Peer<'static> {
        Peer::Inet(s.parse().expect("socket address"))
    }

    fn rules(list: &[(&str, Option<&str>)]) -> Vec<Rule> {
        list.iter()
            .map(|(h, p)| Rule::parse(h, *p).expect("rule"))
            .collect()
    }

    #[test]
    fn ipv4_networks_and_port_edges() {
        let r = rules(&[
            ("10.1.0.0/16", Some("5900-5999")),
            ("192.168.1.7", Some("5901")),
        ]);
        assert!(allowed(&r, None, inet("10.1.200.3:5900")));
        assert!(allowed(&r, None, inet("10.1.200.3:5999")));
        assert!(!allowed(&r, None, inet("10.1.200.3:5899")));
        assert!(!allowed(&r, None, inet("10.1.200.3:6000")));
        assert!(!allowed(&r, None, inet("10.2.0.1:5900")));
        assert!(allowed(&r, None, inet("192.168.1.7:5901")));
        assert!(!allowed(&r, None, inet("192.168.1.7:5902")));
        assert!(!allowed(&r, None, inet("192.168.1.8:5901")));
    }

    #[test]
    fn ipv6_and_mapped() {
        let r = rules(&[
            ("::1", None),
            ("fd00::/8", Some("5901")),
            ("127.0.0.0/8", Some("1-2")),
        ]);
        assert!(allowed(&r, None, inet("[::1]:7")));
        assert!(allowed(&r, None, inet("[fd12::5]:5901")));
        assert!(!allowed(&r, None, inet("[fe80::5]:5901")));
        assert!(allowed(&r, None, inet("[::ffff:127.0.0.9]:2")));
        assert!(!allowed(&r, None, inet("[::2]:7")));
    }

    /// A network written in IPv4-mapped form is the IPv4 network it maps: the prefix
    /// loses the 96 bits of the mapping prefix along with the address.
    #[test]
    fn mapped_network_is_canonical_ipv4() {
        let mapped = Rule::parse("::ffff:10.0.0.0/104", None).expect("rule");
        assert_eq!(mapped, Rule::parse("10.0.0.0/8", None).expect("rule"));
        let r = [mapped];
        assert!(allowed(&r, None, inet("10.1.2.3:5900")));
        assert!(allowed(&r, None, inet("[::ffff:10.1.2.3]:5900")));
        assert!(!allowed(&r, None, inet("192.168.1.1:5900")));
        assert!(!allowed(&r, None, inet("[::ffff:192.168.1.1]:5900")));
        assert!(!allowed(&r, None, inet("11.0.0.1:5900")));
        let r = rules(&[("::ffff:192.168.1.0/120", Some("5900"))]);
        assert!(allowed(&r, None, inet("192.168.1.77:5900")));
        assert!(!allowed(&r, None, inet("192.168.2.1:5900")));
    }

    #[test]
    fn unix_paths() {
        let r = rules(&[("unix:/run/vnc/", None), ("unix:/tmp/one.sock", None)]);
        assert!(allowed(&r, None, Peer::Unix(b"/run/vnc/a.sock")));
        assert!(!allowed(&r, None, Peer::Unix(b"/run/vnc/")));
        assert!(!allowed(&r, None, Peer::Unix(b"/run/vnc/../docker.sock")));
        assert!(!allowed(&r, None, Peer::Unix(b"/run/vncx.sock")));
        assert!(allowed(&r, None, Peer::Unix(b"/tmp/one.sock")));
        assert!(!allowed(&r, None, Peer::Unix(b"/tmp/one.sock2")));
        assert!(!allowed(&r, None, inet("127.0.0.1:5900")));
    }

    #[test]
    fn names_match_before_resolving() {
        let r = rules(&[("VNC1.example.test", Some("5900"))]);
        let peer = inet("10.9.9.9:5900");
        assert!(allowed(&r, Some(b"vnc1.example.test"), peer));
        assert!(!allowed(&r, Some(b"vnc2.example.test"), peer));
        assert!(!allowed(&r, None, peer));
        assert!(!allowed(
            &r,
            Some(b"vnc1.example.test"),
            inet("10.9.9.9:5901")
        ));
    }

    #[test]
    fn groups_and_resolving() {
        let r = rules(&[("upstream:VNC_pool", None), ("vnc1.test", Some("5900"))]);
        assert!(group_allowed(&r, b"vnc_pool"));
        assert!(!group_allowed(&r, b"internal_api"));
        assert!(!group_allowed(&[], b"vnc_pool"));
        assert!(may_resolve(&r, b"VNC1.test", 5900));
        assert!(!may_resolve(&r, b"vnc1.test", 5901));
        assert!(!may_resolve(&r, b"other.test", 5900));
        let nets = rules(&[("10.0.0.0/8", Some("5900-5999"))]);
        assert!(may_resolve(&nets, b"anything.test", 5900));
        assert!(!may_resolve(&nets, b"anything.test", 22));
        assert!(Rule::parse("upstream:pool", Some("5900")).is_err());
        assert!(!allowed(&r, None, inet("127.0.0.1:5900")));
    }

    #[test]
    fn all_and_empty() {
        assert!(!allowed(&[], None, inet("127.0.0.1:5900")));
        let r = rules(&[("all", Some("5900-5901"))]);
        assert!(allowed(&r, None, inet("8.8.8.8:5901")));
        assert!(!allowed(&r, None, inet("8.8.8.8:22")));
        assert!(!allowed(&r, None, Peer::Unix(b"/x")));
    }

    #[test]
    fn bad_rules() {
        for (h, p) in [
            ("10.0.0.0/33", None),
            ("10.0.0.0/x", None),
            ("1.2.3.4", Some("0")),
            ("1.2.3.4", Some("6000-5900")),
            ("1.2.3.4", Some("70000")),
            ("unix:relative", None),
            ("unix:/a", Some("5900")),
            ("bad host!", None),
            ("", None),
        ] {
            assert!(Rule::parse(h, p).is_err(), "{h} {p:?}");
        }
    }

    #[test]
    fn origins() {
        let list = [
            Origin::parse("https://vnc.example.com").expect("origin"),
            Origin::parse("same").expect("same"),
        ];
        assert!(origin_allowed(
            &list,
            Some(b"https://VNC.example.com"),
            None
        ));
        assert!(origin_allowed(
            &list,
            Some(b"http://gw:8080"),
            Some(b"gw:8080")
        ));
        assert!(!origin_allowed(&list, Some(b"http://gw:8080"), Some(b"gw")));
        assert!(!origin_allowed(
            &list,
            Some(b"https://evil.example"),
            Some(b"gw")
        ));
        assert!(origin_allowed(&list, None, Some(b"gw")));
        assert!(origin_allowed(&[], Some(b"https://evil.example"), None));
        assert!(Origin::parse("vnc.example.com").is_err());
        assert!(Origin::parse("https://a/b").is_err());
    }
}
