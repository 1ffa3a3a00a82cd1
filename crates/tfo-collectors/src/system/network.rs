//! Network interface counters from /proc/net/dev.
//!
//! After two header lines (recognised by their `|`), each line is `<name>: ` followed by
//! 16 counters: receive bytes packets errs drop fifo frame compressed multicast, then
//! transmit bytes packets errs drop fifo colls carrier compressed. Interface names cannot
//! contain `:` or whitespace, so the name ends at the first colon; old kernels print no
//! space between the colon and the first counter. Every interface is reported, `lo`
//! included, like the OTel hostmetrics receiver.

use std::path::Path;

use crate::CollectReport;
use crate::parse::{LineErrors, excerpt, fields, lines, parse_u64};
use crate::table::{MetricDef, MetricKind, Val, ValueType};
use crate::wire::Out;

const fn net(
    name: &'static str,
    unit: &'static str,
    help: &'static str,
    source: &'static str,
) -> MetricDef {
    MetricDef {
        name,
        kind: MetricKind::Counter,
        value: ValueType::Int,
        unit,
        attributes: &["device", "direction"],
        help,
        source,
        prom: None,
    }
}

pub const NETWORK_IO: MetricDef = net(
    "system.network.io",
    "By",
    "Bytes received and transmitted per interface (direction receive, transmit).",
    "/proc/net/dev receive/transmit bytes",
);
pub const NETWORK_PACKETS: MetricDef = net(
    "system.network.packets",
    "{packet}",
    "Packets received and transmitted per interface.",
    "/proc/net/dev receive/transmit packets",
);
pub const NETWORK_ERRORS: MetricDef = net(
    "system.network.errors",
    "{error}",
    "Receive and transmit errors per interface.",
    "/proc/net/dev receive/transmit errs",
);
pub const NETWORK_DROPPED: MetricDef = net(
    "system.network.dropped",
    "{packet}",
    "Packets dropped on receive and transmit per interface.",
    "/proc/net/dev receive/transmit drop",
);

pub const METRICS: &[MetricDef] = &[NETWORK_IO, NETWORK_PACKETS, NETWORK_ERRORS, NETWORK_DROPPED];

const COUNTERS: usize = 16;

pub(crate) fn collect(input: &[u8], path: &Path, out: &mut Out<'_>, report: &mut CollectReport) {
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
        let mut f = fields(&line[colon + 1..]);
        for (slot, field) in c.iter_mut().zip(f.by_ref()) {
            let Some(v) = parse_u64(field) else { break };
            *slot = v;
            got += 1;
        }
        if got < COUNTERS {
            errs.add(no, || format!("expected 16 counters: {}", excerpt(line)));
            continue;
        }
        let dev = String::from_utf8_lossy(name);
        // (metric index, receive column, transmit column)
        for (m, rx, tx) in [(0, 0, 8), (1, 1, 9), (2, 2, 10), (3, 3, 11)] {
            b.add(
                m,
                &[("device", &dev), ("direction", "receive")],
                Val::U(c[rx]),
            );
            b.add(
                m,
                &[("device", &dev), ("direction", "transmit")],
                Val::U(c[tx]),
            );
        }
    }
    errs.finish(report);
    b.finish();
}
