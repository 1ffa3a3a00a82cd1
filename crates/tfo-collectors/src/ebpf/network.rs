//! TCP and UDP traffic: connections opened (from TCP state changes), bytes through socket
//! send/receive calls, retransmitted segments, connect latency, UDP datagrams.

use tfo_ebpf::snapshot::{TcpStats, UdpStats};

use super::{Emit, counter, latency};
use crate::table::MetricDef;

/// The table; destructured by the mapping, so a row cannot be forgotten.
const ROWS: [MetricDef; 7] = [
    counter(
        "ebpf.tcp.connections",
        "{connection}",
        &["direction"],
        "TCP connections opened: `active` by this host's connect() (CLOSE to SYN_SENT, \
         counted whether or not the connect succeeds), `passive` accepted from peers \
         (SYN_RECV to ESTABLISHED).",
        "tp_btf/inet_sock_set_state",
    ),
    counter(
        "ebpf.tcp.bytes_sent",
        "By",
        &[],
        "Bytes passed to the kernel by successful send calls on TCP sockets (send, write, \
         sendfile, io_uring sends): payload, not wire bytes.",
        "tp_btf/sock_send_length",
    ),
    counter(
        "ebpf.tcp.bytes_received",
        "By",
        &[],
        "Bytes returned by successful receive calls on TCP sockets (MSG_PEEK excluded): \
         payload, not wire bytes.",
        "tp_btf/sock_recv_length",
    ),
    counter(
        "ebpf.tcp.retransmits",
        "{segment}",
        &[],
        "TCP segments retransmitted.",
        "tp_btf/tcp_retransmit_skb",
    ),
    latency(
        "ebpf.tcp.connect_latency_ns",
        &[],
        "Time from connect() sending the SYN to the connection being established (SYN_SENT \
         to ESTABLISHED), for active opens that succeed. Power-of-two bucket bounds; the \
         sum is estimated from bucket midpoints.",
        "tp_btf/inet_sock_set_state",
    ),
    counter(
        "ebpf.udp.packets_sent",
        "{packet}",
        &[],
        "UDP datagrams sent by successful send calls (sendmmsg counts each message; a UDP \
         GSO send counts once).",
        "tp_btf/sock_send_length",
    ),
    counter(
        "ebpf.udp.packets_received",
        "{packet}",
        &[],
        "UDP datagrams returned by successful receive calls (recvmmsg counts each message).",
        "tp_btf/sock_recv_length",
    ),
];

pub const METRICS: &[MetricDef] = &ROWS;

/// Maps the network counters; every series is sent, zeros included.
pub(crate) fn map(tcp: &TcpStats, udp: &UdpStats, e: &mut Emit<'_>) {
    let [
        connections,
        bytes_sent,
        bytes_received,
        retransmits,
        connect_latency,
        packets_sent,
        packets_received,
    ] = &ROWS;
    e.counter(
        connections,
        [
            (["active"], tcp.connects_active),
            (["passive"], tcp.connects_passive),
        ],
    );
    e.one(bytes_sent, tcp.bytes_sent);
    e.one(bytes_received, tcp.bytes_received);
    e.one(retransmits, tcp.retransmits);
    e.one_histogram(connect_latency, &tcp.connect_latency);
    e.one(packets_sent, udp.packets_sent);
    e.one(packets_received, udp.packets_received);
}
