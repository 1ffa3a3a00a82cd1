//! Memory and swap from /proc/meminfo (`MemTotal:       24682416 kB`).
//!
//! `system.memory.usage` splits MemTotal into disjoint states that sum to MemTotal exactly:
//!
//! | state                | /proc/meminfo                                                  |
//! |----------------------|----------------------------------------------------------------|
//! | `free`               | MemFree                                                        |
//! | `buffered`           | Buffers                                                        |
//! | `cached`             | Cached (page cache incl. tmpfs/shmem, excl. swap cache)        |
//! | `slab_reclaimable`   | SReclaimable                                                   |
//! | `slab_unreclaimable` | SUnreclaim                                                     |
//! | `used`               | MemTotal − all of the above (anon, kernel stacks, page tables…)|
//!
//! This differs from the OTel hostmetrics receiver, whose `cached` already includes
//! SReclaimable (so its states over-count). Kernels without the slab lines (before 2.6.19)
//! get no slab states and `used` absorbs slab. If the parts ever exceed MemTotal (values
//! are read non-atomically), `used` saturates at 0.

use std::path::Path;

use crate::CollectReport;
use crate::parse::{LineErrors, excerpt, fields, lines, parse_error, parse_u64};
use crate::table::{MetricDef, MetricKind, Val, ValueType};
use crate::wire::Out;

pub const MEMORY_USAGE: MetricDef = MetricDef {
    name: "system.memory.usage",
    kind: MetricKind::UpDownCounter,
    value: ValueType::Int,
    unit: "By",
    attributes: &["state"],
    help: "Bytes of physical memory by state (used, free, buffered, cached, slab_reclaimable, slab_unreclaimable); the states sum to system.memory.limit.",
    source: "/proc/meminfo: MemFree, Buffers, Cached, SReclaimable, SUnreclaim; used = MemTotal minus those",
    prom: None,
};

pub const MEMORY_UTILIZATION: MetricDef = MetricDef {
    name: "system.memory.utilization",
    kind: MetricKind::Gauge,
    value: ValueType::Double,
    unit: "1",
    attributes: &["state"],
    help: "Fraction of physical memory in each state (system.memory.usage / MemTotal).",
    source: "/proc/meminfo",
    prom: None,
};

pub const MEMORY_LIMIT: MetricDef = MetricDef {
    name: "system.memory.limit",
    kind: MetricKind::UpDownCounter,
    value: ValueType::Int,
    unit: "By",
    attributes: &[],
    help: "Total usable physical memory.",
    source: "/proc/meminfo: MemTotal",
    prom: None,
};

pub const PAGING_USAGE: MetricDef = MetricDef {
    name: "system.paging.usage",
    kind: MetricKind::UpDownCounter,
    value: ValueType::Int,
    unit: "By",
    attributes: &["state"],
    help: "Bytes of swap space by state (used, free).",
    source: "/proc/meminfo: SwapFree; used = SwapTotal - SwapFree",
    prom: None,
};

pub const METRICS: &[MetricDef] = &[MEMORY_USAGE, MEMORY_UTILIZATION, MEMORY_LIMIT, PAGING_USAGE];

/// The /proc/meminfo fields this collector reads, in bytes.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct MemInfo {
    pub total: Option<u64>,
    pub free: Option<u64>,
    pub buffers: Option<u64>,
    pub cached: Option<u64>,
    pub sreclaimable: Option<u64>,
    pub sunreclaim: Option<u64>,
    pub swap_total: Option<u64>,
    pub swap_free: Option<u64>,
}

/// Parses the fields we use. Malformed lines for keys we do not read are ignored; a
/// malformed line for a key we read is an error (and leaves that key missing).
pub(crate) fn parse(input: &[u8], errs: &mut LineErrors<'_>) -> MemInfo {
    let mut m = MemInfo::default();
    for (no, line) in lines(input).enumerate() {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let key = &line[..colon];
        let slot = match key {
            b"MemTotal" => &mut m.total,
            b"MemFree" => &mut m.free,
            b"Buffers" => &mut m.buffers,
            b"Cached" => &mut m.cached,
            b"SReclaimable" => &mut m.sreclaimable,
            b"SUnreclaim" => &mut m.sunreclaim,
            b"SwapTotal" => &mut m.swap_total,
            b"SwapFree" => &mut m.swap_free,
            _ => continue,
        };
        let mut f = fields(&line[colon + 1..]);
        let value = f.next().and_then(parse_u64);
        let scaled = match (value, f.next(), f.next()) {
            (Some(v), Some(b"kB"), None) => v.checked_mul(1024),
            (Some(v), None, None) => Some(v),
            _ => None,
        };
        match scaled {
            Some(v) => *slot = Some(v),
            None => errs.add(no, || {
                format!("expected `<key>: <number> kB`, found {}", excerpt(line))
            }),
        }
    }
    m
}

pub(crate) fn collect(input: &[u8], path: &Path, out: &mut Out<'_>, report: &mut CollectReport) {
    let mut errs = LineErrors::new(path);
    let m = parse(input, &mut errs);
    errs.finish(report);
    // Rows of METRICS.
    let (usage, util, limit, paging) = (0, 1, 2, 3);
    let mut b = out.batch(METRICS);

    match (m.total, m.free, m.buffers, m.cached) {
        (Some(total), Some(free), Some(buffers), Some(cached)) => {
            let mut states: [(&str, Option<u64>); 6] = [
                ("used", None),
                ("free", Some(free)),
                ("buffered", Some(buffers)),
                ("cached", Some(cached)),
                ("slab_reclaimable", m.sreclaimable),
                ("slab_unreclaimable", m.sunreclaim),
            ];
            let parts = states[1..]
                .iter()
                .filter_map(|s| s.1)
                .fold(0u64, |a, b| a.saturating_add(b));
            states[0].1 = Some(total.saturating_sub(parts));

            for (state, v) in states {
                let Some(v) = v else { continue };
                b.add(usage, &[("state", state)], Val::U(v));
                if total > 0 {
                    let u = (v as f64 / total as f64).clamp(0.0, 1.0);
                    b.add(util, &[("state", state)], Val::F(u));
                }
            }
        }
        _ => report.errors.push(parse_error(
            path,
            "missing one of MemTotal, MemFree, Buffers, Cached: memory usage not reported",
        )),
    }

    if let Some(total) = m.total {
        b.add(limit, &[], Val::U(total));
    }

    match (m.swap_total, m.swap_free) {
        (Some(total), Some(free)) => {
            let used = total.saturating_sub(free);
            b.add(paging, &[("state", "used")], Val::U(used));
            b.add(paging, &[("state", "free")], Val::U(free));
        }
        _ => report.errors.push(parse_error(
            path,
            "missing SwapTotal or SwapFree: paging usage not reported",
        )),
    }
    b.finish();
}
