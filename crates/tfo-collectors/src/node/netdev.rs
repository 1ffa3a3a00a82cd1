//! Interface counters from /proc/net/dev (node_exporter's `netdev` collector).
//!
//! After two header lines (recognised by their `|`), each line is `<name>:` followed by
//! 16 counters: receive bytes packets errs drop fifo frame compressed multicast, then
//! transmit bytes packets errs drop fifo colls carrier compressed; row `i` of [`METRICS`]
//! is column `i`. Interface names cannot contain `:` or whitespace, so the name ends at
//! the first colon; old kernels print no space between the colon and the first counter.
//! Interfaces are selected by the `network_interfaces` filter (by default all, `lo`
//! included, as upstream node_exporter).

use std::path::Path;

use super::{NameFilter, Out, counter_i};
use crate::CollectReport;
use crate::parse::{LineErrors, excerpt, fields, lines, parse_u64};
use crate::table::{MetricDef, PromKind, Val};

const ATTRS: &[&str] = &["interface"];
/// node_exporter calls the interface `device`.
pub(crate) const LABELS: &[&str] = &["device"];

pub const METRICS: &[MetricDef] = &[
    counter_i(
        "node.network.bytes_recv",
        "By",
        ATTRS,
        "Bytes received per interface.",
        "/proc/net/dev column 2 (receive bytes)",
    )
    .prom_labels(
        "node_network_receive_bytes_total",
        PromKind::Counter,
        LABELS,
    ),
    counter_i(
        "node.network.packets_recv",
        "{packet}",
        ATTRS,
        "Packets received per interface.",
        "/proc/net/dev column 3 (receive packets)",
    )
    .prom_labels(
        "node_network_receive_packets_total",
        PromKind::Counter,
        LABELS,
    ),
    counter_i(
        "node.network.errors_recv",
        "{error}",
        ATTRS,
        "Receive errors per interface.",
        "/proc/net/dev column 4 (receive errs)",
    )
    .prom_labels("node_network_receive_errs_total", PromKind::Counter, LABELS),
    counter_i(
        "node.network.drops_recv",
        "{packet}",
        ATTRS,
        "Received packets dropped per interface.",
        "/proc/net/dev column 5 (receive drop)",
    )
    .prom_labels("node_network_receive_drop_total", PromKind::Counter, LABELS),
    counter_i(
        "node.network.fifo_recv",
        "{error}",
        ATTRS,
        "Receive FIFO (ring buffer) overruns per interface.",
        "/proc/net/dev column 6 (receive fifo)",
    )
    .prom_labels("node_network_receive_fifo_total", PromKind::Counter, LABELS),
    counter_i(
        "node.network.frame_errors_recv",
        "{error}",
        ATTRS,
        "Received frames with length, CRC or alignment errors per interface.",
        "/proc/net/dev column 7 (receive frame)",
    )
    .prom_labels(
        "node_network_receive_frame_total",
        PromKind::Counter,
        LABELS,
    ),
    counter_i(
        "node.network.compressed_recv",
        "{packet}",
        ATTRS,
        "Compressed packets received per interface.",
        "/proc/net/dev column 8 (receive compressed)",
    )
    .prom_labels(
        "node_network_receive_compressed_total",
        PromKind::Counter,
        LABELS,
    ),
    counter_i(
        "node.network.multicast_recv",
        "{packet}",
        ATTRS,
        "Multicast packets received per interface.",
        "/proc/net/dev column 9 (receive multicast)",
    )
    .prom_labels(
        "node_network_receive_multicast_total",
        PromKind::Counter,
        LABELS,
    ),
    counter_i(
        "node.network.bytes_sent",
        "By",
        ATTRS,
        "Bytes transmitted per interface.",
        "/proc/net/dev column 10 (transmit bytes)",
    )
    .prom_labels(
        "node_network_transmit_bytes_total",
        PromKind::Counter,
        LABELS,
    ),
    counter_i(
        "node.network.packets_sent",
        "{packet}",
        ATTRS,
        "Packets transmitted per interface.",
        "/proc/net/dev column 11 (transmit packets)",
    )
    .prom_labels(
        "node_network_transmit_packets_total",
        PromKind::Counter,
        LABELS,
    ),
    counter_i(
        "node.network.errors_sent",
        "{error}",
        ATTRS,
        "Transmit errors per interface.",
        "/proc/net/dev column 12 (transmit errs)",
    )
    .prom_labels(
        "node_network_transmit_errs_total",
        PromKind::Counter,
        LABELS,
    ),
    counter_i(
        "node.network.drops_sent",
        "{packet}",
        ATTRS,
        "Packets dropped on transmit per interface.",
        "/proc/net/dev column 13 (transmit drop)",
    )
    .prom_labels(
        "node_network_transmit_drop_total",
        PromKind::Counter,
        LABELS,
    ),
    counter_i(
        "node.network.fifo_sent",
        "{error}",
        ATTRS,
        "Transmit FIFO errors per interface.",
        "/proc/net/dev column 14 (transmit fifo)",
    )
    .prom_labels(
        "node_network_transmit_fifo_total",
        PromKind::Counter,
        LABELS,
    ),
    counter_i(
        "node.network.collisions",
        "{collision}",
        ATTRS,
        "Collisions detected on transmit per interface.",
        "/proc/net/dev column 15 (transmit colls)",
    )
    .prom_labels(
        "node_network_transmit_colls_total",
        PromKind::Counter,
        LABELS,
    ),
    counter_i(
        "node.network.carrier_errors_sent",
        "{error}",
        ATTRS,
        "Transmit carrier errors per interface.",
        "/proc/net/dev column 16 (transmit carrier)",
    )
    .prom_labels(
        "node_network_transmit_carrier_total",
        PromKind::Counter,
        LABELS,
    ),
    counter_i(
        "node.network.compressed_sent",
        "{packet}",
        ATTRS,
        "Compressed packets transmitted per interface.",
        "/proc/net/dev column 17 (transmit compressed)",
    )
    .prom_labels(
        "node_network_transmit_compressed_total",
        PromKind::Counter,
        LABELS,
    ),
];

const COUNTERS: usize = 16;

pub(crate) fn collect(
    input: &[u8],
    path: &Path,
    filter: &NameFilter,
    out: &mut Out<'_>,
    report: &mut CollectReport,
) {
    let mut errs = LineErrors::new(path);
    let mut b = out.batch(METRICS);
    for (no, line) in lines(input).enumerate() {
        if line.contains(&b'|') || line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            errs.add(no, || format!("no `name:` prefix: {}", excerpt(line)));
            continue;
        };
        let mut name_fields = fields(&line[..colon]);
        let (Some(name), None) = (name_fields.next(), name_fields.next()) else {
            errs.add(no, || format!("bad interface name: {}", excerpt(line)));
            continue;
        };
        let mut c = [0u64; COUNTERS];
        let mut got = 0;
        for (slot, field) in c.iter_mut().zip(fields(&line[colon + 1..])) {
            let Some(v) = parse_u64(field) else { break };
            *slot = v;
            got += 1;
        }
        if got < COUNTERS {
            errs.add(no, || format!("expected 16 counters: {}", excerpt(line)));
            continue;
        }
        if !filter.allows(name) {
            continue;
        }
        let dev = String::from_utf8_lossy(name);
        for (row, &v) in c.iter().enumerate() {
            b.add(row, &[("interface", &dev)], Val::U(v));
        }
    }
    errs.finish(report);
    b.finish();
}
