//! Protocol counters from /proc/net/netstat, /proc/net/snmp and /proc/net/snmp6
//! (node_exporter's `netstat` collector with its default field selection), in the network
//! namespace of pid 1 when running in a container.
//!
//! netstat and snmp come in line pairs, `Section: Name1 Name2 ...` then
//! `Section: value1 value2 ...`; snmp6 has one `Section6Name value` per line, the section
//! ending at the first `6`. node_exporter names each `node_netstat_<Section>_<Name>` and
//! types them `untyped`; each row of [`FIELDS`] is one (section, name). snmp6 is absent
//! when IPv6 is disabled, which is not an error.

use std::path::Path;
use std::sync::LazyLock;

use super::{Out, counter_i, gauge_i};
use crate::CollectReport;
use crate::parse::{KeyIndex, LineErrors, excerpt, fields, lines, parse_i64};
use crate::table::{MetricDef, PromKind, Val};

/// One (section, name) of the netstat files and its metric.
#[derive(Debug, Clone, Copy)]
pub struct NsField {
    pub section: &'static str,
    pub field: &'static str,
    pub def: MetricDef,
}

pub const FIELDS: &[NsField] = &[
    NsField {
        section: "Icmp",
        field: "InErrors",
        def: counter_i(
            "node.netstat.icmp.in_errors",
            "{error}",
            &[],
            "ICMP messages received with errors.",
            "/proc/net/snmp Icmp: InErrors",
        )
        .prom("node_netstat_Icmp_InErrors", PromKind::Untyped),
    },
    NsField {
        section: "Icmp",
        field: "InMsgs",
        def: counter_i(
            "node.netstat.icmp.in_msgs",
            "{message}",
            &[],
            "ICMP messages received.",
            "/proc/net/snmp Icmp: InMsgs",
        )
        .prom("node_netstat_Icmp_InMsgs", PromKind::Untyped),
    },
    NsField {
        section: "Icmp",
        field: "OutMsgs",
        def: counter_i(
            "node.netstat.icmp.out_msgs",
            "{message}",
            &[],
            "ICMP messages sent.",
            "/proc/net/snmp Icmp: OutMsgs",
        )
        .prom("node_netstat_Icmp_OutMsgs", PromKind::Untyped),
    },
    NsField {
        section: "Icmp6",
        field: "InErrors",
        def: counter_i(
            "node.netstat.icmp6.in_errors",
            "{error}",
            &[],
            "ICMPv6 messages received with errors.",
            "/proc/net/snmp6 Icmp6InErrors",
        )
        .prom("node_netstat_Icmp6_InErrors", PromKind::Untyped),
    },
    NsField {
        section: "Icmp6",
        field: "InMsgs",
        def: counter_i(
            "node.netstat.icmp6.in_msgs",
            "{message}",
            &[],
            "ICMPv6 messages received.",
            "/proc/net/snmp6 Icmp6InMsgs",
        )
        .prom("node_netstat_Icmp6_InMsgs", PromKind::Untyped),
    },
    NsField {
        section: "Icmp6",
        field: "OutMsgs",
        def: counter_i(
            "node.netstat.icmp6.out_msgs",
            "{message}",
            &[],
            "ICMPv6 messages sent.",
            "/proc/net/snmp6 Icmp6OutMsgs",
        )
        .prom("node_netstat_Icmp6_OutMsgs", PromKind::Untyped),
    },
    NsField {
        section: "Ip",
        field: "Forwarding",
        def: gauge_i(
            "node.netstat.ip.forwarding",
            "1",
            &[],
            "IPv4 forwarding: 1 if the host forwards packets, 2 if not.",
            "/proc/net/snmp Ip: Forwarding",
        )
        .prom("node_netstat_Ip_Forwarding", PromKind::Untyped),
    },
    NsField {
        section: "Ip6",
        field: "InOctets",
        def: counter_i(
            "node.netstat.ip6.in_octets",
            "By",
            &[],
            "IPv6 bytes received.",
            "/proc/net/snmp6 Ip6InOctets",
        )
        .prom("node_netstat_Ip6_InOctets", PromKind::Untyped),
    },
    NsField {
        section: "Ip6",
        field: "OutOctets",
        def: counter_i(
            "node.netstat.ip6.out_octets",
            "By",
            &[],
            "IPv6 bytes sent.",
            "/proc/net/snmp6 Ip6OutOctets",
        )
        .prom("node_netstat_Ip6_OutOctets", PromKind::Untyped),
    },
    NsField {
        section: "IpExt",
        field: "InOctets",
        def: counter_i(
            "node.netstat.ip_ext.in_octets",
            "By",
            &[],
            "IPv4 bytes received.",
            "/proc/net/netstat IpExt: InOctets",
        )
        .prom("node_netstat_IpExt_InOctets", PromKind::Untyped),
    },
    NsField {
        section: "IpExt",
        field: "OutOctets",
        def: counter_i(
            "node.netstat.ip_ext.out_octets",
            "By",
            &[],
            "IPv4 bytes sent.",
            "/proc/net/netstat IpExt: OutOctets",
        )
        .prom("node_netstat_IpExt_OutOctets", PromKind::Untyped),
    },
    NsField {
        section: "Tcp",
        field: "ActiveOpens",
        def: counter_i(
            "node.netstat.tcp.active_opens",
            "{connection}",
            &[],
            "TCP connections opened by this host (SYN-SENT).",
            "/proc/net/snmp Tcp: ActiveOpens",
        )
        .prom("node_netstat_Tcp_ActiveOpens", PromKind::Untyped),
    },
    NsField {
        section: "Tcp",
        field: "CurrEstab",
        def: gauge_i(
            "node.netstat.tcp.curr_estab",
            "{connection}",
            &[],
            "TCP connections in ESTABLISHED or CLOSE-WAIT now.",
            "/proc/net/snmp Tcp: CurrEstab",
        )
        .prom("node_netstat_Tcp_CurrEstab", PromKind::Untyped),
    },
    NsField {
        section: "Tcp",
        field: "InErrs",
        def: counter_i(
            "node.netstat.tcp.in_errs",
            "{segment}",
            &[],
            "TCP segments received with errors (bad checksum, ...).",
            "/proc/net/snmp Tcp: InErrs",
        )
        .prom("node_netstat_Tcp_InErrs", PromKind::Untyped),
    },
    NsField {
        section: "Tcp",
        field: "InSegs",
        def: counter_i(
            "node.netstat.tcp.in_segs",
            "{segment}",
            &[],
            "TCP segments received.",
            "/proc/net/snmp Tcp: InSegs",
        )
        .prom("node_netstat_Tcp_InSegs", PromKind::Untyped),
    },
    NsField {
        section: "Tcp",
        field: "OutRsts",
        def: counter_i(
            "node.netstat.tcp.out_rsts",
            "{segment}",
            &[],
            "TCP segments sent with RST.",
            "/proc/net/snmp Tcp: OutRsts",
        )
        .prom("node_netstat_Tcp_OutRsts", PromKind::Untyped),
    },
    NsField {
        section: "Tcp",
        field: "OutSegs",
        def: counter_i(
            "node.netstat.tcp.out_segs",
            "{segment}",
            &[],
            "TCP segments sent, excluding retransmissions.",
            "/proc/net/snmp Tcp: OutSegs",
        )
        .prom("node_netstat_Tcp_OutSegs", PromKind::Untyped),
    },
    NsField {
        section: "Tcp",
        field: "PassiveOpens",
        def: counter_i(
            "node.netstat.tcp.passive_opens",
            "{connection}",
            &[],
            "TCP connections accepted (SYN-RCVD).",
            "/proc/net/snmp Tcp: PassiveOpens",
        )
        .prom("node_netstat_Tcp_PassiveOpens", PromKind::Untyped),
    },
    NsField {
        section: "Tcp",
        field: "RetransSegs",
        def: counter_i(
            "node.netstat.tcp.retrans_segs",
            "{segment}",
            &[],
            "TCP segments retransmitted.",
            "/proc/net/snmp Tcp: RetransSegs",
        )
        .prom("node_netstat_Tcp_RetransSegs", PromKind::Untyped),
    },
    NsField {
        section: "TcpExt",
        field: "ListenDrops",
        def: counter_i(
            "node.netstat.tcp_ext.listen_drops",
            "{connection}",
            &[],
            "Incoming connections dropped at a listening socket.",
            "/proc/net/netstat TcpExt: ListenDrops",
        )
        .prom("node_netstat_TcpExt_ListenDrops", PromKind::Untyped),
    },
    NsField {
        section: "TcpExt",
        field: "ListenOverflows",
        def: counter_i(
            "node.netstat.tcp_ext.listen_overflows",
            "{connection}",
            &[],
            "Incoming connections dropped because a listen queue was full.",
            "/proc/net/netstat TcpExt: ListenOverflows",
        )
        .prom("node_netstat_TcpExt_ListenOverflows", PromKind::Untyped),
    },
    NsField {
        section: "TcpExt",
        field: "SyncookiesFailed",
        def: counter_i(
            "node.netstat.tcp_ext.syncookies_failed",
            "{cookie}",
            &[],
            "Invalid SYN cookies received.",
            "/proc/net/netstat TcpExt: SyncookiesFailed",
        )
        .prom("node_netstat_TcpExt_SyncookiesFailed", PromKind::Untyped),
    },
    NsField {
        section: "TcpExt",
        field: "SyncookiesRecv",
        def: counter_i(
            "node.netstat.tcp_ext.syncookies_recv",
            "{cookie}",
            &[],
            "SYN cookies received.",
            "/proc/net/netstat TcpExt: SyncookiesRecv",
        )
        .prom("node_netstat_TcpExt_SyncookiesRecv", PromKind::Untyped),
    },
    NsField {
        section: "TcpExt",
        field: "SyncookiesSent",
        def: counter_i(
            "node.netstat.tcp_ext.syncookies_sent",
            "{cookie}",
            &[],
            "SYN cookies sent.",
            "/proc/net/netstat TcpExt: SyncookiesSent",
        )
        .prom("node_netstat_TcpExt_SyncookiesSent", PromKind::Untyped),
    },
    NsField {
        section: "TcpExt",
        field: "TCPSynRetrans",
        def: counter_i(
            "node.netstat.tcp_ext.tcp_syn_retrans",
            "{segment}",
            &[],
            "SYN and SYN/ACK retransmissions.",
            "/proc/net/netstat TcpExt: TCPSynRetrans",
        )
        .prom("node_netstat_TcpExt_TCPSynRetrans", PromKind::Untyped),
    },
    NsField {
        section: "TcpExt",
        field: "TCPTimeouts",
        def: counter_i(
            "node.netstat.tcp_ext.tcp_timeouts",
            "{timeout}",
            &[],
            "TCP retransmission timeouts.",
            "/proc/net/netstat TcpExt: TCPTimeouts",
        )
        .prom("node_netstat_TcpExt_TCPTimeouts", PromKind::Untyped),
    },
    NsField {
        section: "Udp",
        field: "InDatagrams",
        def: counter_i(
            "node.netstat.udp.in_datagrams",
            "{datagram}",
            &[],
            "UDP datagrams delivered.",
            "/proc/net/snmp Udp: InDatagrams",
        )
        .prom("node_netstat_Udp_InDatagrams", PromKind::Untyped),
    },
    NsField {
        section: "Udp",
        field: "InErrors",
        def: counter_i(
            "node.netstat.udp.in_errors",
            "{error}",
            &[],
            "UDP messages received with errors.",
            "/proc/net/snmp Udp: InErrors",
        )
        .prom("node_netstat_Udp_InErrors", PromKind::Untyped),
    },
    NsField {
        section: "Udp",
        field: "NoPorts",
        def: counter_i(
            "node.netstat.udp.no_ports",
            "{datagram}",
            &[],
            "UDP datagrams received for a port nobody listens on.",
            "/proc/net/snmp Udp: NoPorts",
        )
        .prom("node_netstat_Udp_NoPorts", PromKind::Untyped),
    },
    NsField {
        section: "Udp",
        field: "OutDatagrams",
        def: counter_i(
            "node.netstat.udp.out_datagrams",
            "{datagram}",
            &[],
            "UDP datagrams sent.",
            "/proc/net/snmp Udp: OutDatagrams",
        )
        .prom("node_netstat_Udp_OutDatagrams", PromKind::Untyped),
    },
    NsField {
        section: "Udp",
        field: "RcvbufErrors",
        def: counter_i(
            "node.netstat.udp.rcvbuf_errors",
            "{datagram}",
            &[],
            "UDP datagrams dropped because the receive buffer was full.",
            "/proc/net/snmp Udp: RcvbufErrors",
        )
        .prom("node_netstat_Udp_RcvbufErrors", PromKind::Untyped),
    },
    NsField {
        section: "Udp",
        field: "SndbufErrors",
        def: counter_i(
            "node.netstat.udp.sndbuf_errors",
            "{datagram}",
            &[],
            "UDP datagrams dropped because the send buffer was full.",
            "/proc/net/snmp Udp: SndbufErrors",
        )
        .prom("node_netstat_Udp_SndbufErrors", PromKind::Untyped),
    },
    NsField {
        section: "Udp6",
        field: "InDatagrams",
        def: counter_i(
            "node.netstat.udp6.in_datagrams",
            "{datagram}",
            &[],
            "UDP over IPv6 datagrams delivered.",
            "/proc/net/snmp6 Udp6InDatagrams",
        )
        .prom("node_netstat_Udp6_InDatagrams", PromKind::Untyped),
    },
    NsField {
        section: "Udp6",
        field: "InErrors",
        def: counter_i(
            "node.netstat.udp6.in_errors",
            "{error}",
            &[],
            "UDP over IPv6 messages received with errors.",
            "/proc/net/snmp6 Udp6InErrors",
        )
        .prom("node_netstat_Udp6_InErrors", PromKind::Untyped),
    },
    NsField {
        section: "Udp6",
        field: "NoPorts",
        def: counter_i(
            "node.netstat.udp6.no_ports",
            "{datagram}",
            &[],
            "UDP over IPv6 datagrams received for a port nobody listens on.",
            "/proc/net/snmp6 Udp6NoPorts",
        )
        .prom("node_netstat_Udp6_NoPorts", PromKind::Untyped),
    },
    NsField {
        section: "Udp6",
        field: "OutDatagrams",
        def: counter_i(
            "node.netstat.udp6.out_datagrams",
            "{datagram}",
            &[],
            "UDP over IPv6 datagrams sent.",
            "/proc/net/snmp6 Udp6OutDatagrams",
        )
        .prom("node_netstat_Udp6_OutDatagrams", PromKind::Untyped),
    },
    NsField {
        section: "Udp6",
        field: "RcvbufErrors",
        def: counter_i(
            "node.netstat.udp6.rcvbuf_errors",
            "{datagram}",
            &[],
            "UDP over IPv6 datagrams dropped because the receive buffer was full.",
            "/proc/net/snmp6 Udp6RcvbufErrors",
        )
        .prom("node_netstat_Udp6_RcvbufErrors", PromKind::Untyped),
    },
    NsField {
        section: "Udp6",
        field: "SndbufErrors",
        def: counter_i(
            "node.netstat.udp6.sndbuf_errors",
            "{datagram}",
            &[],
            "UDP over IPv6 datagrams dropped because the send buffer was full.",
            "/proc/net/snmp6 Udp6SndbufErrors",
        )
        .prom("node_netstat_Udp6_SndbufErrors", PromKind::Untyped),
    },
    NsField {
        section: "UdpLite",
        field: "InErrors",
        def: counter_i(
            "node.netstat.udplite.in_errors",
            "{error}",
            &[],
            "UDP-Lite messages received with errors.",
            "/proc/net/snmp UdpLite: InErrors",
        )
        .prom("node_netstat_UdpLite_InErrors", PromKind::Untyped),
    },
    NsField {
        section: "UdpLite6",
        field: "InErrors",
        def: counter_i(
            "node.netstat.udplite6.in_errors",
            "{error}",
            &[],
            "UDP-Lite over IPv6 messages received with errors.",
            "/proc/net/snmp6 UdpLite6InErrors",
        )
        .prom("node_netstat_UdpLite6_InErrors", PromKind::Untyped),
    },
];

const N: usize = FIELDS.len();

crate::table::metrics_from_rows!(FIELDS, def);

static INDEX: LazyLock<KeyIndex> = LazyLock::new(|| {
    KeyIndex::new(
        FIELDS
            .iter()
            .map(|f| (f.section.as_bytes(), f.field.as_bytes())),
    )
});

fn row_of(section: &[u8], field: &[u8]) -> Option<usize> {
    INDEX.get2(section, field)
}

/// The values of one cycle, filled from the three files.
#[derive(Debug)]
pub(crate) struct Values {
    v: [Option<i64>; N],
}

impl Default for Values {
    fn default() -> Self {
        Values { v: [None; N] }
    }
}

impl Values {
    /// Parses the `Section: names` / `Section: values` line pairs of netstat or snmp.
    pub(crate) fn parse_pairs(&mut self, input: &[u8], path: &Path, report: &mut CollectReport) {
        let mut errs = LineErrors::new(path);
        let mut header: Option<(usize, &[u8], &[u8])> = None;
        let mut pairs = 0;
        for (no, line) in lines(input).enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                errs.add(no, || format!("no `Section:` prefix: {}", excerpt(line)));
                continue;
            };
            let (section, rest) = (&line[..colon], &line[colon + 1..]);
            match header.take() {
                Some((_, h_section, names)) if h_section == section => {
                    pairs += 1;
                    let (mut n_names, mut n_values) = (0, 0);
                    let mut values = fields(rest);
                    for name in fields(names) {
                        n_names += 1;
                        let Some(value) = values.next() else { continue };
                        n_values += 1;
                        let Some(row) = row_of(section, name) else {
                            continue;
                        };
                        match parse_i64(value) {
                            Some(v) => self.v[row] = Some(v),
                            None => errs.add(no, || {
                                format!("{}: bad number {}", FIELDS[row].field, excerpt(value))
                            }),
                        }
                    }
                    n_values += values.count();
                    if n_names != n_values {
                        errs.add(no, || {
                            format!("{n_names} names but {n_values} values: {}", excerpt(line))
                        });
                    }
                }
                Some((h_no, _, _)) => {
                    errs.add(h_no, || "header line without its value line".to_string());
                    header = Some((no, section, rest));
                }
                None => header = Some((no, section, rest)),
            }
        }
        if let Some((h_no, _, _)) = header {
            errs.add(h_no, || "header line without its value line".to_string());
        }
        if pairs == 0 {
            errs.add(0, || {
                "no `Section: names` / `Section: values` line pair".to_string()
            });
        }
        errs.finish(report);
    }

    /// Parses snmp6's `Ip6InOctets 123` lines.
    pub(crate) fn parse_snmp6(&mut self, input: &[u8], path: &Path, report: &mut CollectReport) {
        let mut errs = LineErrors::new(path);
        for (no, line) in lines(input).enumerate() {
            let mut f = fields(line);
            let (Some(key), Some(value)) = (f.next(), f.next()) else {
                if !line.iter().all(u8::is_ascii_whitespace) {
                    errs.add(no, || format!("expected `name value`: {}", excerpt(line)));
                }
                continue;
            };
            let Some(six) = key.iter().position(|&b| b == b'6') else {
                continue;
            };
            let Some(row) = row_of(&key[..=six], &key[six + 1..]) else {
                continue;
            };
            match parse_i64(value) {
                Some(v) => self.v[row] = Some(v),
                None => errs.add(no, || format!("bad number: {}", excerpt(line))),
            }
        }
        errs.finish(report);
    }

    pub(crate) fn emit(&self, out: &mut Out<'_>) {
        let mut b = out.batch(METRICS);
        for (row, v) in self.v.iter().enumerate() {
            if let Some(v) = v {
                b.add(row, &[], Val::I(*v));
            }
        }
        b.finish();
    }
}
