//! The small languages of a policy entry: an address, a CIDR network or a wildcard name
//! ([`AddrPattern`]), a port or port range ([`PortRange`]), and `*` wildcards ([`Glob`]). Pure
//! parsing and matching; errors are short reasons the parser puts a line number on.

use std::net::IpAddr;

/// A `*` wildcard pattern (`*` matches any run of characters, dots included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: String,
    ignore_case: bool,
}

impl Glob {
    /// A pattern; with `ignore_case` (host names) it matches regardless of ASCII case.
    pub fn new(pattern: &str, ignore_case: bool) -> Glob {
        let pattern = if ignore_case {
            pattern.to_ascii_lowercase()
        } else {
            pattern.to_string()
        };
        Glob {
            pattern,
            ignore_case,
        }
    }

    /// The pattern as written (lower-cased for names).
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether `text` matches the whole pattern.
    pub fn matches(&self, text: &str) -> bool {
        if self.ignore_case {
            glob_match(
                self.pattern.as_bytes(),
                text.to_ascii_lowercase().as_bytes(),
            )
        } else {
            glob_match(self.pattern.as_bytes(), text.as_bytes())
        }
    }
}

/// Iterative `*` matching with one backtrack point (linear in practice, never exponential).
fn glob_match(p: &[u8], t: &[u8]) -> bool {
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Where a flow may go: one address, a network, or a server name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddrPattern {
    /// Exactly this address.
    Host(IpAddr),
    /// Every address in `addr/prefix` (host bits of `addr` are zero).
    Net(IpAddr, u8),
    /// A name seen for the destination (`name=` from DNS, `sni=` from TLS), e.g.
    /// `*.exam.example.org`.
    Name(Glob),
}

impl AddrPattern {
    /// Parses `10.0.0.1`, `10.0.0.0/8`, `2001:db8::/32`, `exam.example.org`,
    /// `*.exam.example.org`. Anything that looks like an address but is not a valid one is an
    /// error rather than a name, so `10.0.0.300` is caught.
    pub fn parse(s: &str) -> Result<AddrPattern, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty destination".into());
        }
        if let Some((a, len)) = s.split_once('/') {
            let addr: IpAddr = a
                .parse()
                .map_err(|_| format!("bad network {s:?}: {a:?} is not an IP address"))?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix: u8 =
                len.parse().ok().filter(|p| *p <= max).ok_or_else(|| {
                    format!("bad network {s:?}: prefix length must be 0 to {max}")
                })?;
            if mask(addr, prefix) != addr {
                return Err(format!(
                    "bad network {s:?}: address has bits set beyond /{prefix} (did you mean {}/{prefix}?)",
                    mask(addr, prefix)
                ));
            }
            return Ok(AddrPattern::Net(addr, prefix));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(AddrPattern::Host(ip));
        }
        if s.contains(':') {
            return Err(format!("bad IPv6 address {s:?}"));
        }
        if s.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return Err(format!("bad IPv4 address {s:?}"));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '*')))
        {
            return Err(format!(
                "bad name {s:?}: {c:?} cannot appear in a host name (letters, digits, '-', '.', '_' and the wildcard '*')"
            ));
        }
        Ok(AddrPattern::Name(Glob::new(s, true)))
    }

    /// Whether the address `ip` matches (names never match an address).
    pub fn matches_addr(&self, ip: IpAddr) -> bool {
        match self {
            AddrPattern::Host(h) => canonical(*h) == canonical(ip),
            AddrPattern::Net(n, p) => {
                let ip = canonical(ip);
                ip.is_ipv4() == n.is_ipv4() && mask(ip, *p) == *n
            }
            AddrPattern::Name(_) => false,
        }
    }

    /// Whether the name `name` matches (addresses never match a name).
    pub fn matches_name(&self, name: &str) -> bool {
        match self {
            AddrPattern::Name(g) => g.matches(name.trim_end_matches('.')),
            _ => false,
        }
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) compare as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// `ip` with every bit beyond the first `prefix` cleared.
fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let m = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix.min(32)))
            };
            IpAddr::V4((u32::from(a) & m).into())
        }
        IpAddr::V6(a) => {
            let m = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix.min(128)))
            };
            IpAddr::V6((u128::from(a) & m).into())
        }
    }
}

/// An inclusive range of ports (a single port is `n..=n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// First port.
    pub lo: u16,
    /// Last port.
    pub hi: u16,
}

impl PortRange {
    /// Parses `443` or `8000-8100`.
    pub fn parse(s: &str) -> Result<PortRange, String> {
        let one = |t: &str| -> Result<u16, String> {
            t.trim().parse::<u16>().map_err(|_| {
                format!(
                    "bad port {:?}: ports are whole numbers 0 to 65535",
                    t.trim()
                )
            })
        };
        match s.split_once('-') {
            Some((a, b)) => {
                let (lo, hi) = (one(a)?, one(b)?);
                if lo > hi {
                    return Err(format!(
                        "bad port range {s:?}: the first port is above the last"
                    ));
                }
                Ok(PortRange { lo, hi })
            }
            None => one(s).map(|p| PortRange { lo: p, hi: p }),
        }
    }

    /// A port number from the file's integer form.
    pub fn from_int(n: i64) -> Result<PortRange, String> {
        u16::try_from(n)
            .map(|p| PortRange { lo: p, hi: p })
            .map_err(|_| format!("bad port {n}: ports are whole numbers 0 to 65535"))
    }

    /// Whether `port` is in the range.
    pub fn contains(&self, port: u16) -> bool {
        (self.lo..=self.hi).contains(&port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let g = Glob::new("*.exam.example.org", true);
        assert!(g.matches("www.exam.example.org"));
        assert!(g.matches("a.b.EXAM.example.org"));
        assert!(!g.matches("exam.example.org"));
        assert!(!g.matches("evil-exam.example.org.attacker.net"));
        assert!(!g.matches("wwwexam.example.org"));
        let p = Glob::new("exam-*", false);
        assert!(p.matches("exam-browser") && p.matches("exam-"));
        assert!(!p.matches("Exam-browser"));
        assert!(Glob::new("*", false).matches(""));
        assert!(Glob::new("a*b*c", false).matches("aXbYbZc"));
        assert!(!Glob::new("a*b*c", false).matches("aXbYbZ"));
    }

    #[test]
    fn addresses_networks_and_names() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let n = AddrPattern::parse("10.20.0.0/16").unwrap();
        assert!(n.matches_addr(ip("10.20.3.4")));
        assert!(!n.matches_addr(ip("10.21.0.1")));
        assert!(n.matches_addr(ip("::ffff:10.20.0.9")));
        let v6 = AddrPattern::parse("2001:db8::/32").unwrap();
        assert!(v6.matches_addr(ip("2001:db8:1::5")));
        assert!(!v6.matches_addr(ip("2001:db9::1")));
        assert!(!v6.matches_addr(ip("10.20.3.4")));
        assert!(
            AddrPattern::parse("0.0.0.0/0")
                .unwrap()
                .matches_addr(ip("8.8.8.8"))
        );
        let h = AddrPattern::parse("192.0.2.10").unwrap();
        assert!(h.matches_addr(ip("192.0.2.10")) && !h.matches_addr(ip("192.0.2.11")));
        assert!(!h.matches_name("192.0.2.10"));
        let name = AddrPattern::parse("Exam.Example.org").unwrap();
        assert!(name.matches_name("exam.example.org."));
        assert!(!name.matches_addr(ip("192.0.2.10")));
    }

    #[test]
    fn bad_entries_say_why() {
        for (s, why) in [
            ("10.0.0.0/33", "prefix length must be 0 to 32"),
            ("10.0.0.1/8", "did you mean 10.0.0.0/8"),
            ("10.0.0.300", "bad IPv4 address"),
            ("10.0.0.0/x", "prefix length"),
            ("fe80::zz", "bad IPv6 address"),
            ("nothost/8", "is not an IP address"),
            ("exam example", "cannot appear in a host name"),
            ("", "empty destination"),
        ] {
            let e = AddrPattern::parse(s).unwrap_err();
            assert!(e.contains(why), "{s}: {e}");
        }
    }

    #[test]
    fn ports() {
        assert_eq!(
            PortRange::parse("443").unwrap(),
            PortRange { lo: 443, hi: 443 }
        );
        let r = PortRange::parse("8000-8100").unwrap();
        assert!(r.contains(8000) && r.contains(8100) && !r.contains(8101));
        assert!(PortRange::parse("70000").is_err());
        assert!(
            PortRange::parse("9-1")
                .unwrap_err()
                .contains("above the last")
        );
        assert!(PortRange::parse("http").is_err());
        assert!(PortRange::from_int(-1).is_err());
        assert!(PortRange::from_int(65536).is_err());
    }
}
