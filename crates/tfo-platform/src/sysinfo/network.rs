//! Network traffic from `/proc/net/dev`, TCP connection states from `/proc/net/tcp{,6}`,
//! interfaces from [`crate::netaddr`].

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::round2;
use crate::netaddr::{self, IfAddr};
use crate::read::{read_small, under};

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counters {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_drops: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_drops: u64,
}

impl Counters {
    fn add(&mut self, o: &Counters) {
        self.rx_bytes = self.rx_bytes.saturating_add(o.rx_bytes);
        self.rx_packets = self.rx_packets.saturating_add(o.rx_packets);
        self.rx_errors = self.rx_errors.saturating_add(o.rx_errors);
        self.rx_drops = self.rx_drops.saturating_add(o.rx_drops);
        self.tx_bytes = self.tx_bytes.saturating_add(o.tx_bytes);
        self.tx_packets = self.tx_packets.saturating_add(o.tx_packets);
        self.tx_errors = self.tx_errors.saturating_add(o.tx_errors);
        self.tx_drops = self.tx_drops.saturating_add(o.tx_drops);
    }
}

pub fn parse_net_dev(text: &str) -> BTreeMap<String, Counters> {
    text.lines()
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let v: Vec<u64> = rest
                .split_whitespace()
                .map(|x| x.parse().unwrap_or(0))
                .collect();
            if v.len() < 12 {
                return None;
            }
            Some((
                name.trim().to_string(),
                Counters {
                    rx_bytes: v[0],
                    rx_packets: v[1],
                    rx_errors: v[2],
                    rx_drops: v[3],
                    tx_bytes: v[8],
                    tx_packets: v[9],
                    tx_errors: v[10],
                    tx_drops: v[11],
                },
            ))
        })
        .collect()
}

const TCP_STATES: [&str; 13] = [
    "",
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT1",
    "FIN_WAIT2",
    "TIME_WAIT",
    "CLOSE",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "CLOSING",
    "NEW_SYN_RECV",
];

fn state_name(code: u8) -> Option<&'static str> {
    TCP_STATES
        .get(usize::from(code))
        .copied()
        .filter(|s| !s.is_empty())
}

/// Counts of TCP sockets by state name, IPv4 and IPv6 together. At most `max` sockets
/// are counted; the second value says whether there were more.
///
/// On a live procfs the kernel is asked over `NETLINK_SOCK_DIAG`, which returns binary
/// records: `/proc/net/tcp` formats a text line per socket and walks the whole
/// connection hash table, which costs milliseconds even on an idle host with a large
/// table. Files are read when `root/proc` is not procfs (fixture trees) or netlink is
/// unavailable (seccomp, old kernels).
pub fn tcp_states(root: &Path, max: usize) -> (BTreeMap<&'static str, u64>, bool) {
    if is_procfs(&under(root, "/proc"))
        && let Ok(r) = tcp_states_netlink(max)
    {
        return r;
    }
    tcp_states_files(root, max)
}

fn is_procfs(p: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str()))
    else {
        return false;
    };
    let mut st = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: `c` is NUL-terminated and `st` is writable statfs storage.
    let rc = unsafe { libc::statfs(c.as_ptr(), st.as_mut_ptr()) };
    // SAFETY: zero-initialised plain data, filled by the kernel on success.
    let f_type = unsafe { st.assume_init() }.f_type;
    // f_type's integer type differs between architectures and C libraries.
    #[allow(clippy::unnecessary_cast)]
    let is_proc = f_type as i64 == libc::PROC_SUPER_MAGIC as i64;
    rc == 0 && is_proc
}

pub fn tcp_states_files(root: &Path, max: usize) -> (BTreeMap<&'static str, u64>, bool) {
    let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut seen = 0usize;
    let mut truncated = false;
    for f in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(file) = File::open(under(root, f)) else {
            continue;
        };
        for line in BufReader::new(file).lines().skip(1) {
            let Ok(line) = line else { break };
            if seen >= max {
                truncated = true;
                break;
            }
            seen += 1;
            let name = line
                .split_whitespace()
                .nth(3)
                .and_then(|st| u8::from_str_radix(st, 16).ok())
                .and_then(state_name);
            if let Some(name) = name {
                *counts.entry(name).or_insert(0) += 1;
            }
        }
    }
    (counts, truncated)
}

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_HDRLEN: usize = 16;

/// One `inet_diag_req_v2` dump per address family, counting `idiag_state` of each reply.
fn tcp_states_netlink(max: usize) -> std::io::Result<(BTreeMap<&'static str, u64>, bool)> {
    use std::io::Error;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    // SAFETY: plain socket(2); the descriptor is owned (and closed) by OwnedFd.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    };
    if fd < 0 {
        return Err(Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // A dump never stalls in practice; the timeout makes that a guarantee.
    let tv = libc::timeval {
        tv_sec: 1,
        tv_usec: 0,
    };
    // SAFETY: valid socket, pointer and length of a timeval.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut seen = 0usize;
    let mut buf = vec![0u8; 32 * 1024];
    for (seq, family) in [(1u32, libc::AF_INET as u8), (2, libc::AF_INET6 as u8)] {
        // nlmsghdr, then inet_diag_req_v2: family, protocol, ext, pad, states (all), and
        // a zeroed inet_diag_sockid (48 bytes).
        let mut req = Vec::with_capacity(NLMSG_HDRLEN + 56);
        req.extend_from_slice(&((NLMSG_HDRLEN + 56) as u32).to_ne_bytes());
        req.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        req.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16).to_ne_bytes());
        req.extend_from_slice(&seq.to_ne_bytes());
        req.extend_from_slice(&0u32.to_ne_bytes());
        req.extend_from_slice(&[family, libc::IPPROTO_TCP as u8, 0, 0]);
        req.extend_from_slice(&u32::MAX.to_ne_bytes());
        req.extend_from_slice(&[0u8; 48]);
        // SAFETY: valid socket; `req` is readable for its length.
        let n = unsafe { libc::send(fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
        if n < 0 {
            return Err(Error::last_os_error());
        }
        'recv: loop {
            // SAFETY: valid socket; `buf` is writable for its length.
            let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(Error::last_os_error());
            }
            let data = &buf[..n as usize];
            if data.is_empty() {
                break;
            }
            let mut off = 0usize;
            while off + NLMSG_HDRLEN <= data.len() {
                let h = &data[off..];
                let len = u32::from_ne_bytes([h[0], h[1], h[2], h[3]]) as usize;
                let typ = u16::from_ne_bytes([h[4], h[5]]);
                if len < NLMSG_HDRLEN || off + len > data.len() {
                    return Err(Error::other("malformed netlink message"));
                }
                match i32::from(typ) {
                    libc::NLMSG_DONE => break 'recv,
                    libc::NLMSG_ERROR => {
                        let errno = h
                            .get(16..20)
                            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                            .unwrap_or(0);
                        return Err(Error::from_raw_os_error(-errno));
                    }
                    _ if typ == SOCK_DIAG_BY_FAMILY && len > NLMSG_HDRLEN + 1 => {
                        if seen >= max {
                            return Ok((counts, true));
                        }
                        seen += 1;
                        // inet_diag_msg starts with idiag_family, idiag_state.
                        if let Some(name) = state_name(h[NLMSG_HDRLEN + 1]) {
                            *counts.entry(name).or_insert(0) += 1;
                        }
                    }
                    _ => {}
                }
                off += (len + 3) & !3;
            }
        }
    }
    Ok((counts, false))
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetInterface {
    pub name: String,
    pub mac_address: Option<String>,
    pub mtu: Option<u64>,
    pub is_up: bool,
    pub speed_mbps: Option<u64>,
    pub addresses: Vec<IfAddr>,
    pub bytes_sent: Option<u64>,
    pub bytes_recv: Option<u64>,
    pub packets_sent: Option<u64>,
    pub packets_recv: Option<u64>,
    pub errors_in: Option<u64>,
    pub errors_out: Option<u64>,
    pub drops_in: Option<u64>,
    pub drops_out: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInfo {
    /// Since boot, all interfaces but loopback.
    pub network_bytes_sent: Option<u64>,
    pub network_bytes_recv: Option<u64>,
    pub network_packets_sent: Option<u64>,
    pub network_packets_recv: Option<u64>,
    pub network_errors_in: Option<u64>,
    pub network_errors_out: Option<u64>,
    pub network_drops_in: Option<u64>,
    pub network_drops_out: Option<u64>,
    /// Bytes per second over the interval since the previous collection.
    pub network_bytes_sent_per_sec: Option<f64>,
    pub network_bytes_recv_per_sec: Option<f64>,
    pub tcp_connections_established: Option<u64>,
    pub tcp_connections_time_wait: Option<u64>,
    pub tcp_connections_close_wait: Option<u64>,
    pub tcp_connections_listen: Option<u64>,
    /// Every TCP state with its count.
    pub tcp_states: BTreeMap<&'static str, u64>,
    /// True when the socket table was larger than the configured bound and counted in part.
    pub tcp_states_truncated: bool,
    pub network_interfaces: Vec<NetInterface>,
}

/// Non-loopback totals, for the rate computation of the next collection.
pub fn totals(root: &Path) -> Option<Counters> {
    let dev = parse_net_dev(&read_small(&under(root, "/proc/net/dev"))?);
    let mut t = Counters::default();
    for (name, c) in &dev {
        if name != "lo" {
            t.add(c);
        }
    }
    Some(t)
}

pub fn build(
    root: &Path,
    max_interfaces: usize,
    max_sockets: usize,
    prev: Option<(&Counters, Duration)>,
) -> (NetworkInfo, Option<Counters>) {
    let dev = read_small(&under(root, "/proc/net/dev")).map(|t| parse_net_dev(&t));
    let mut total: Option<Counters> = None;
    if let Some(d) = &dev {
        let mut t = Counters::default();
        for (name, c) in d {
            if name != "lo" {
                t.add(c);
            }
        }
        total = Some(t);
    }
    let rate = |f: fn(&Counters) -> u64| -> Option<f64> {
        let (p, dt) = prev?;
        let c = total.as_ref()?;
        let secs = dt.as_secs_f64();
        let d = f(c).checked_sub(f(p))?;
        (secs > 0.0).then(|| round2(d as f64 / secs))
    };
    let (states, truncated) = tcp_states(root, max_sockets);
    let have_tcp = under(root, "/proc/net/tcp").exists();
    let st = |k: &str| have_tcp.then(|| states.get(k).copied().unwrap_or(0));
    let ifaces = netaddr::interfaces(root, max_interfaces)
        .into_iter()
        .map(|i| {
            let c = dev.as_ref().and_then(|d| d.get(&i.name));
            NetInterface {
                mac_address: i.mac,
                mtu: i.mtu,
                is_up: i.up,
                speed_mbps: i.speed_mbps,
                addresses: i.addresses,
                bytes_sent: c.map(|c| c.tx_bytes),
                bytes_recv: c.map(|c| c.rx_bytes),
                packets_sent: c.map(|c| c.tx_packets),
                packets_recv: c.map(|c| c.rx_packets),
                errors_in: c.map(|c| c.rx_errors),
                errors_out: c.map(|c| c.tx_errors),
                drops_in: c.map(|c| c.rx_drops),
                drops_out: c.map(|c| c.tx_drops),
                name: i.name,
            }
        })
        .collect();
    let info = NetworkInfo {
        network_bytes_sent: total.map(|t| t.tx_bytes),
        network_bytes_recv: total.map(|t| t.rx_bytes),
        network_packets_sent: total.map(|t| t.tx_packets),
        network_packets_recv: total.map(|t| t.rx_packets),
        network_errors_in: total.map(|t| t.rx_errors),
        network_errors_out: total.map(|t| t.tx_errors),
        network_drops_in: total.map(|t| t.rx_drops),
        network_drops_out: total.map(|t| t.tx_drops),
        network_bytes_sent_per_sec: rate(|c| c.tx_bytes),
        network_bytes_recv_per_sec: rate(|c| c.rx_bytes),
        tcp_connections_established: st("ESTABLISHED"),
        tcp_connections_time_wait: st("TIME_WAIT"),
        tcp_connections_close_wait: st("CLOSE_WAIT"),
        tcp_connections_listen: st("LISTEN"),
        tcp_states: states,
        tcp_states_truncated: truncated,
        network_interfaces: ifaces,
    };
    (info, total)
}
