//! Network interfaces as the server and client need them: broadcast addresses for
//! announcements, and the names of interfaces to capture on. One `getifaddrs(3)` walk.

use std::collections::BTreeSet;
use std::ffi::CStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One address entry of one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfAddr {
    /// Interface name, e.g. `eth0`.
    pub name: String,
    /// Interface is administratively up.
    pub up: bool,
    /// Interface is a loopback interface.
    pub loopback: bool,
    /// The IPv4 broadcast address, if this entry is IPv4 on a broadcast-capable interface.
    pub broadcast: Option<Ipv4Addr>,
    /// The entry's own IPv4 or IPv6 address (none for link-layer entries).
    pub addr: Option<IpAddr>,
}

/// Lists every address entry of every interface.
pub fn list() -> std::io::Result<Vec<IfAddr>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list returned by getifaddrs, valid until freeifaddrs.
        let ifa = unsafe { &*cur };
        let name = if ifa.ifa_name.is_null() {
            String::new()
        } else {
            // SAFETY: ifa_name is a NUL-terminated string owned by the list.
            unsafe { CStr::from_ptr(ifa.ifa_name) }
                .to_string_lossy()
                .into_owned()
        };
        let flags = ifa.ifa_flags;
        let up = flags & libc::IFF_UP as u32 != 0;
        let loopback = flags & libc::IFF_LOOPBACK as u32 != 0;
        let mut broadcast = None;
        // SAFETY: ifa_addr, when non-null, points to a sockaddr whose family tells its type.
        let is_v4 =
            !ifa.ifa_addr.is_null() && unsafe { (*ifa.ifa_addr).sa_family } as i32 == libc::AF_INET;
        if is_v4 && flags & libc::IFF_BROADCAST as u32 != 0 {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            let b = ifa.ifa_ifu;
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            let b = ifa.ifa_dstaddr;
            // SAFETY: for AF_INET entries with IFF_BROADCAST, this field is a sockaddr_in or null.
            if !b.is_null() && unsafe { (*b).sa_family } as i32 == libc::AF_INET {
                let sin = unsafe { &*(b as *const libc::sockaddr_in) };
                broadcast = Some(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)));
            }
        }
        // SAFETY: ifa_addr is null or points to a sockaddr of the family it names.
        let addr = unsafe { sockaddr_ip(ifa.ifa_addr) };
        out.push(IfAddr {
            name,
            up,
            loopback,
            broadcast,
            addr,
        });
        cur = ifa.ifa_next;
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// The IP address in a `sockaddr` of family AF_INET or AF_INET6, if it is one.
///
/// # Safety
/// `sa` must be null or point to a valid sockaddr whose `sa_family` tells its real type.
unsafe fn sockaddr_ip(sa: *const libc::sockaddr) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: the caller promises a valid sockaddr; the family selects the cast.
    unsafe {
        match (*sa).sa_family as i32 {
            libc::AF_INET => {
                let sin = &*(sa as *const libc::sockaddr_in);
                Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                    sin.sin_addr.s_addr,
                ))))
            }
            libc::AF_INET6 => {
                let sin6 = &*(sa as *const libc::sockaddr_in6);
                Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
            }
            _ => None,
        }
    }
}

/// Every address this machine answers to or receives on: its interfaces' own addresses and
/// their IPv4 broadcast addresses (used to tell which side of a flow is local).
pub fn local_addresses(ifs: &[IfAddr]) -> Vec<IpAddr> {
    let set: BTreeSet<IpAddr> = ifs
        .iter()
        .flat_map(|i| i.addr.into_iter().chain(i.broadcast.map(IpAddr::V4)))
        .collect();
    set.into_iter().collect()
}

/// Broadcast addresses of every up IPv4 interface (the server's default announcement targets).
pub fn broadcast_addresses(ifs: &[IfAddr]) -> Vec<Ipv4Addr> {
    let set: BTreeSet<Ipv4Addr> = ifs
        .iter()
        .filter(|i| i.up)
        .filter_map(|i| i.broadcast)
        .collect();
    set.into_iter().collect()
}

/// Names of every up, non-loopback interface (the client's default capture interfaces).
pub fn capture_interfaces(ifs: &[IfAddr]) -> Vec<String> {
    let set: BTreeSet<String> = ifs
        .iter()
        .filter(|i| i.up && !i.loopback && !i.name.is_empty())
        .map(|i| i.name.clone())
        .collect();
    set.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ifa(name: &str, up: bool, lo: bool, b: Option<[u8; 4]>) -> IfAddr {
        IfAddr {
            name: name.into(),
            up,
            loopback: lo,
            broadcast: b.map(Ipv4Addr::from),
            addr: None,
        }
    }

    #[test]
    fn selection_rules() {
        let ifs = vec![
            ifa("lo", true, true, None),
            ifa("eth0", true, false, Some([10, 0, 0, 255])),
            ifa("eth0", true, false, None),
            ifa("eth1", false, false, Some([10, 1, 0, 255])),
            ifa("wlan0", true, false, Some([192, 168, 1, 255])),
        ];
        assert_eq!(
            broadcast_addresses(&ifs),
            vec![
                Ipv4Addr::new(10, 0, 0, 255),
                Ipv4Addr::new(192, 168, 1, 255)
            ]
        );
        assert_eq!(
            capture_interfaces(&ifs),
            vec!["eth0".to_string(), "wlan0".to_string()]
        );
    }

    #[test]
    fn real_list_has_loopback() {
        let ifs = list().unwrap();
        assert!(ifs.iter().any(|i| i.loopback));
        let local = local_addresses(&ifs);
        assert!(
            local.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)),
            "{local:?}"
        );
    }

    #[test]
    fn local_addresses_include_broadcasts() {
        let mut a = ifa("eth0", true, false, Some([10, 0, 0, 255]));
        a.addr = Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5)));
        let b = ifa("eth0", true, false, None);
        let got = local_addresses(&[a, b]);
        assert_eq!(
            got,
            vec![
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5)),
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 255))
            ]
        );
    }
}
