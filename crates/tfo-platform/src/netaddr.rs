//! Network interfaces: names, MAC addresses and link state from `/sys/class/net`, IP
//! addresses from `getifaddrs(3)` (the agent's network namespace). No netlink crate: the
//! two sources cover what registration and the heartbeat need.

use std::collections::BTreeMap;
use std::ffi::CStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use serde::Serialize;

use crate::read::{read_trim, read_u64, under};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IfAddr {
    pub ip: String,
    pub prefix_len: u8,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Interface {
    pub name: String,
    pub mac: Option<String>,
    pub mtu: Option<u64>,
    pub up: bool,
    pub speed_mbps: Option<u64>,
    pub loopback: bool,
    pub addresses: Vec<IfAddr>,
}

/// Interfaces under `root/sys/class/net`, merged with the addresses `getifaddrs` reports
/// for the same names, sorted by name, at most `max`. Interfaces only `getifaddrs` knows
/// (a `/sys` from another namespace) are included too.
pub fn interfaces(root: &Path, max: usize) -> Vec<Interface> {
    let mut addrs = ip_addresses();
    let mut names: Vec<String> = std::fs::read_dir(under(root, "/sys/class/net"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    for n in addrs.keys() {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    names.sort();
    names.truncate(max);
    names
        .into_iter()
        .map(|name| {
            let dir = under(root, "/sys/class/net").join(&name);
            let mac = read_trim(&dir.join("address"))
                .map(|m| m.to_ascii_lowercase())
                .filter(|m| is_mac(m) && m != "00:00:00:00:00:00");
            let operstate = read_trim(&dir.join("operstate"));
            let flags = read_trim(&dir.join("flags"))
                .and_then(|f| u64::from_str_radix(f.trim_start_matches("0x"), 16).ok());
            // IFF_UP is bit 0; operstate "unknown" is normal for loopback and tun devices.
            let up = match operstate.as_deref() {
                Some("up") => true,
                Some("down") | Some("lowerlayerdown") | Some("notpresent") => false,
                _ => flags.is_some_and(|f| f & 1 == 1),
            };
            let loopback = name == "lo"
                || read_u64(&dir.join("type")) == Some(772) // ARPHRD_LOOPBACK
                || flags.is_some_and(|f| f & 0x8 != 0); // IFF_LOOPBACK
            // `speed` is -1 or unreadable (EINVAL) for virtual and down links.
            let speed_mbps = read_trim(&dir.join("speed"))
                .and_then(|s| s.parse::<i64>().ok())
                .filter(|s| *s > 0)
                .map(|s| s as u64);
            Interface {
                mac,
                mtu: read_u64(&dir.join("mtu")),
                up,
                speed_mbps,
                loopback,
                addresses: addrs.remove(&name).unwrap_or_default(),
                name,
            }
        })
        .collect()
}

fn is_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// IPv4 and IPv6 addresses by interface name. IPv6 link-local addresses are left out:
/// they are only meaningful with a scope and say nothing about the host to the platform.
pub fn ip_addresses() -> BTreeMap<String, Vec<IfAddr>> {
    let mut out: BTreeMap<String, Vec<IfAddr>> = BTreeMap::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we own until freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return out;
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list returned by getifaddrs, not yet freed.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { CStr::from_ptr(ifa.ifa_name) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: ifa_addr is non-null and points to a sockaddr whose family tells its
        // real type; the netmask has the same family when present.
        let (ip, prefix) = unsafe {
            match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let sa = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    let ip = IpAddr::V4(Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr)));
                    let prefix = if ifa.ifa_netmask.is_null() {
                        32
                    } else {
                        let m = &*(ifa.ifa_netmask as *const libc::sockaddr_in);
                        u32::from_be(m.sin_addr.s_addr).count_ones() as u8
                    };
                    (ip, prefix)
                }
                libc::AF_INET6 => {
                    let sa = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    let ip = IpAddr::V6(Ipv6Addr::from(sa.sin6_addr.s6_addr));
                    let prefix = if ifa.ifa_netmask.is_null() {
                        128
                    } else {
                        let m = &*(ifa.ifa_netmask as *const libc::sockaddr_in6);
                        m.sin6_addr
                            .s6_addr
                            .iter()
                            .map(|b| b.count_ones() as u8)
                            .sum()
                    };
                    (ip, prefix)
                }
                _ => continue,
            }
        };
        if matches!(ip, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80) {
            continue;
        }
        out.entry(name).or_default().push(IfAddr {
            ip: ip.to_string(),
            prefix_len: prefix,
        });
    }
    // SAFETY: `head` came from a successful getifaddrs and is freed exactly once.
    unsafe { libc::freeifaddrs(head) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_127_0_0_1() {
        let a = ip_addresses();
        let lo = a.get("lo").expect("loopback interface");
        assert!(
            lo.iter().any(|x| x.ip == "127.0.0.1" && x.prefix_len == 8),
            "{lo:?}"
        );
    }

    #[test]
    fn mac_syntax() {
        assert!(is_mac("02:42:ac:11:00:02"));
        assert!(!is_mac("02:42:ac:11:00"));
        assert!(!is_mac("zz:42:ac:11:00:02"));
    }
}
