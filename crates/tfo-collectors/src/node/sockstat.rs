//! Socket counts from /proc/net/sockstat and sockstat6 (node_exporter's `sockstat`
//! collector), in the network namespace of pid 1 when running in a container.
//!
//! Lines are `PROTO: key value key value ...`. Each row of [`FIELDS`] is one
//! (protocol, key) pair and its node_exporter name `node_sockstat_<PROTO>_<key>`;
//! `mem_bytes` is derived from `mem` (pages) and the page size, as node_exporter does.

use std::path::Path;

use super::{Out, gauge_i};
use crate::CollectReport;
use crate::parse::{LineErrors, excerpt, fields, lines, parse_u64};
use crate::table::{MetricDef, PromKind, Val};

/// One (protocol, key) of sockstat and its metric.
#[derive(Debug, Clone, Copy)]
pub struct SockField {
    pub proto: &'static str,
    pub field: &'static str,
    pub def: MetricDef,
}

pub const FIELDS: &[SockField] = &[
    SockField {
        proto: "sockets",
        field: "used",
        def: gauge_i(
            "node.sockstat.sockets_used",
            "{socket}",
            &[],
            "Sockets in use (all protocols).",
            "/proc/net/sockstat sockets: used",
        )
        .prom("node_sockstat_sockets_used", PromKind::Gauge),
    },
    SockField {
        proto: "TCP",
        field: "inuse",
        def: gauge_i(
            "node.sockstat.tcp.inuse",
            "{socket}",
            &[],
            "TCP sockets in use.",
            "/proc/net/sockstat TCP: inuse",
        )
        .prom("node_sockstat_TCP_inuse", PromKind::Gauge),
    },
    SockField {
        proto: "TCP",
        field: "orphan",
        def: gauge_i(
            "node.sockstat.tcp.orphan",
            "{socket}",
            &[],
            "TCP sockets no longer attached to a process.",
            "/proc/net/sockstat TCP: orphan",
        )
        .prom("node_sockstat_TCP_orphan", PromKind::Gauge),
    },
    SockField {
        proto: "TCP",
        field: "tw",
        def: gauge_i(
            "node.sockstat.tcp.time_wait",
            "{socket}",
            &[],
            "TCP sockets in TIME_WAIT.",
            "/proc/net/sockstat TCP: tw",
        )
        .prom("node_sockstat_TCP_tw", PromKind::Gauge),
    },
    SockField {
        proto: "TCP",
        field: "alloc",
        def: gauge_i(
            "node.sockstat.tcp.alloc",
            "{socket}",
            &[],
            "TCP sockets allocated (including closing ones).",
            "/proc/net/sockstat TCP: alloc",
        )
        .prom("node_sockstat_TCP_alloc", PromKind::Gauge),
    },
    SockField {
        proto: "TCP",
        field: "mem",
        def: gauge_i(
            "node.sockstat.tcp.mem",
            "{page}",
            &[],
            "Pages used by TCP socket buffers.",
            "/proc/net/sockstat TCP: mem",
        )
        .prom("node_sockstat_TCP_mem", PromKind::Gauge),
    },
    SockField {
        proto: "TCP",
        field: "mem_bytes",
        def: gauge_i(
            "node.sockstat.tcp.mem_bytes",
            "By",
            &[],
            "Bytes used by TCP socket buffers.",
            "/proc/net/sockstat TCP: mem x page size",
        )
        .prom("node_sockstat_TCP_mem_bytes", PromKind::Gauge),
    },
    SockField {
        proto: "UDP",
        field: "inuse",
        def: gauge_i(
            "node.sockstat.udp.inuse",
            "{socket}",
            &[],
            "UDP sockets in use.",
            "/proc/net/sockstat UDP: inuse",
        )
        .prom("node_sockstat_UDP_inuse", PromKind::Gauge),
    },
    SockField {
        proto: "UDP",
        field: "mem",
        def: gauge_i(
            "node.sockstat.udp.mem",
            "{page}",
            &[],
            "Pages used by UDP socket buffers.",
            "/proc/net/sockstat UDP: mem",
        )
        .prom("node_sockstat_UDP_mem", PromKind::Gauge),
    },
    SockField {
        proto: "UDP",
        field: "mem_bytes",
        def: gauge_i(
            "node.sockstat.udp.mem_bytes",
            "By",
            &[],
            "Bytes used by UDP socket buffers.",
            "/proc/net/sockstat UDP: mem x page size",
        )
        .prom("node_sockstat_UDP_mem_bytes", PromKind::Gauge),
    },
    SockField {
        proto: "UDPLITE",
        field: "inuse",
        def: gauge_i(
            "node.sockstat.udplite.inuse",
            "{socket}",
            &[],
            "UDP-Lite sockets in use.",
            "/proc/net/sockstat UDPLITE: inuse",
        )
        .prom("node_sockstat_UDPLITE_inuse", PromKind::Gauge),
    },
    SockField {
        proto: "RAW",
        field: "inuse",
        def: gauge_i(
            "node.sockstat.raw.inuse",
            "{socket}",
            &[],
            "Raw sockets in use.",
            "/proc/net/sockstat RAW: inuse",
        )
        .prom("node_sockstat_RAW_inuse", PromKind::Gauge),
    },
    SockField {
        proto: "FRAG",
        field: "inuse",
        def: gauge_i(
            "node.sockstat.frag.inuse",
            "{queue}",
            &[],
            "IPv4 reassembly queues in use.",
            "/proc/net/sockstat FRAG: inuse",
        )
        .prom("node_sockstat_FRAG_inuse", PromKind::Gauge),
    },
    SockField {
        proto: "FRAG",
        field: "memory",
        def: gauge_i(
            "node.sockstat.frag.memory",
            "By",
            &[],
            "Bytes used by IPv4 reassembly.",
            "/proc/net/sockstat FRAG: memory",
        )
        .prom("node_sockstat_FRAG_memory", PromKind::Gauge),
    },
    SockField {
        proto: "TCP6",
        field: "inuse",
        def: gauge_i(
            "node.sockstat.tcp6.inuse",
            "{socket}",
            &[],
            "TCP sockets over IPv6 in use.",
            "/proc/net/sockstat6 TCP6: inuse",
        )
        .prom("node_sockstat_TCP6_inuse", PromKind::Gauge),
    },
    SockField {
        proto: "UDP6",
        field: "inuse",
        def: gauge_i(
            "node.sockstat.udp6.inuse",
            "{socket}",
            &[],
            "UDP sockets over IPv6 in use.",
            "/proc/net/sockstat6 UDP6: inuse",
        )
        .prom("node_sockstat_UDP6_inuse", PromKind::Gauge),
    },
    SockField {
        proto: "UDPLITE6",
        field: "inuse",
        def: gauge_i(
            "node.sockstat.udplite6.inuse",
            "{socket}",
            &[],
            "UDP-Lite sockets over IPv6 in use.",
            "/proc/net/sockstat6 UDPLITE6: inuse",
        )
        .prom("node_sockstat_UDPLITE6_inuse", PromKind::Gauge),
    },
    SockField {
        proto: "RAW6",
        field: "inuse",
        def: gauge_i(
            "node.sockstat.raw6.inuse",
            "{socket}",
            &[],
            "Raw IPv6 sockets in use.",
            "/proc/net/sockstat6 RAW6: inuse",
        )
        .prom("node_sockstat_RAW6_inuse", PromKind::Gauge),
    },
    SockField {
        proto: "FRAG6",
        field: "inuse",
        def: gauge_i(
            "node.sockstat.frag6.inuse",
            "{queue}",
            &[],
            "IPv6 reassembly queues in use.",
            "/proc/net/sockstat6 FRAG6: inuse",
        )
        .prom("node_sockstat_FRAG6_inuse", PromKind::Gauge),
    },
    SockField {
        proto: "FRAG6",
        field: "memory",
        def: gauge_i(
            "node.sockstat.frag6.memory",
            "By",
            &[],
            "Bytes used by IPv6 reassembly.",
            "/proc/net/sockstat6 FRAG6: memory",
        )
        .prom("node_sockstat_FRAG6_memory", PromKind::Gauge),
    },
];

const N: usize = FIELDS.len();

crate::table::metrics_from_rows!(FIELDS, def);

/// The values of one cycle, filled from both files.
#[derive(Debug, Default)]
pub(crate) struct Values {
    v: [Option<u64>; N],
}

impl Values {
    pub(crate) fn parse(&mut self, input: &[u8], path: &Path, report: &mut CollectReport) {
        let mut errs = LineErrors::new(path);
        let mut recognised = false;
        for (no, line) in lines(input).enumerate() {
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                if !line.iter().all(u8::is_ascii_whitespace) {
                    errs.add(no, || format!("no `PROTO:` prefix: {}", excerpt(line)));
                }
                continue;
            };
            let proto = &line[..colon];
            let mut f = fields(&line[colon + 1..]);
            while let Some(key) = f.next() {
                let Some(value) = f.next() else {
                    errs.add(no, || format!("key without value: {}", excerpt(line)));
                    break;
                };
                let Some(row) = FIELDS
                    .iter()
                    .position(|s| s.proto.as_bytes() == proto && s.field.as_bytes() == key)
                else {
                    continue;
                };
                match parse_u64(value) {
                    Some(v) => {
                        self.v[row] = Some(v);
                        recognised = true;
                    }
                    None => errs.add(no, || format!("bad number: {}", excerpt(line))),
                }
            }
        }
        if !recognised {
            errs.add(0, || "no known protocol line".to_string());
        }
        errs.finish(report);
    }

    pub(crate) fn emit(mut self, page_size: u64, out: &mut Out<'_>) {
        for (row, f) in FIELDS.iter().enumerate() {
            if f.field == "mem_bytes" {
                let mem = FIELDS
                    .iter()
                    .position(|s| s.proto == f.proto && s.field == "mem");
                self.v[row] = mem
                    .and_then(|m| self.v[m])
                    .map(|p| p.saturating_mul(page_size));
            }
        }
        let mut b = out.batch(METRICS);
        for (row, v) in self.v.iter().enumerate() {
            if let Some(v) = v {
                b.add(row, &[], Val::U(*v));
            }
        }
        b.finish();
    }
}
