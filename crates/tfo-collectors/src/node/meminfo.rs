//! Memory from /proc/meminfo (node_exporter's `meminfo` collector), one gauge per field.
//!
//! node_exporter exposes every field as `node_memory_<Field>_bytes` (`(` and `)` in the
//! field name become `_` and nothing, and fields without the `kB` unit, the huge page
//! counts, lose the `_bytes`). Here the fields a dashboard uses are each a row of
//! [`FIELDS`], so the OTLP name, the node_exporter name and the key read are one entry.
//! Fields a kernel does not print are simply absent.

use std::path::Path;
use std::sync::LazyLock;

use super::{Out, gauge_i};
use crate::CollectReport;
use crate::parse::{KeyIndex, LineErrors, excerpt, fields, lines, parse_u64};
use crate::table::{MetricDef, PromKind, Val};

/// One /proc/meminfo field and its metric.
#[derive(Debug, Clone, Copy)]
pub struct MemField {
    /// The key before the colon, e.g. `Active(anon)`.
    pub key: &'static str,
    pub def: MetricDef,
}

pub const FIELDS: &[MemField] = &[
    MemField {
        key: "MemTotal",
        def: gauge_i(
            "node.memory.total",
            "By",
            &[],
            "Total usable physical memory (RAM minus reserved and kernel code).",
            "/proc/meminfo MemTotal x 1024",
        )
        .prom("node_memory_MemTotal_bytes", PromKind::Gauge),
    },
    MemField {
        key: "MemFree",
        def: gauge_i(
            "node.memory.free",
            "By",
            &[],
            "Physical memory not used for anything.",
            "/proc/meminfo MemFree x 1024",
        )
        .prom("node_memory_MemFree_bytes", PromKind::Gauge),
    },
    MemField {
        key: "MemAvailable",
        def: gauge_i(
            "node.memory.available",
            "By",
            &[],
            "Estimate of memory available for new workloads without swapping (free plus reclaimable cache).",
            "/proc/meminfo MemAvailable x 1024",
        )
        .prom("node_memory_MemAvailable_bytes", PromKind::Gauge),
    },
    MemField {
        key: "Buffers",
        def: gauge_i(
            "node.memory.buffers",
            "By",
            &[],
            "Memory in block device buffers.",
            "/proc/meminfo Buffers x 1024",
        )
        .prom("node_memory_Buffers_bytes", PromKind::Gauge),
    },
    MemField {
        key: "Cached",
        def: gauge_i(
            "node.memory.cached",
            "By",
            &[],
            "Page cache, including tmpfs and shared memory, excluding swap cache.",
            "/proc/meminfo Cached x 1024",
        )
        .prom("node_memory_Cached_bytes", PromKind::Gauge),
    },
    MemField {
        key: "SwapCached",
        def: gauge_i(
            "node.memory.swap.cached",
            "By",
            &[],
            "Swapped-out memory that is also still in RAM.",
            "/proc/meminfo SwapCached x 1024",
        )
        .prom("node_memory_SwapCached_bytes", PromKind::Gauge),
    },
    MemField {
        key: "Active",
        def: gauge_i(
            "node.memory.active",
            "By",
            &[],
            "Memory used recently, not reclaimed unless needed.",
            "/proc/meminfo Active x 1024",
        )
        .prom("node_memory_Active_bytes", PromKind::Gauge),
    },
    MemField {
        key: "Inactive",
        def: gauge_i(
            "node.memory.inactive",
            "By",
            &[],
            "Memory used less recently, first to be reclaimed.",
            "/proc/meminfo Inactive x 1024",
        )
        .prom("node_memory_Inactive_bytes", PromKind::Gauge),
    },
    MemField {
        key: "Active(anon)",
        def: gauge_i(
            "node.memory.active_anon",
            "By",
            &[],
            "Active anonymous memory.",
            "/proc/meminfo Active(anon) x 1024",
        )
        .prom("node_memory_Active_anon_bytes", PromKind::Gauge),
    },
    MemField {
        key: "Inactive(anon)",
        def: gauge_i(
            "node.memory.inactive_anon",
            "By",
            &[],
            "Inactive anonymous memory.",
            "/proc/meminfo Inactive(anon) x 1024",
        )
        .prom("node_memory_Inactive_anon_bytes", PromKind::Gauge),
    },
    MemField {
        key: "Active(file)",
        def: gauge_i(
            "node.memory.active_file",
            "By",
            &[],
            "Active file-backed memory.",
            "/proc/meminfo Active(file) x 1024",
        )
        .prom("node_memory_Active_file_bytes", PromKind::Gauge),
    },
    MemField {
        key: "Inactive(file)",
        def: gauge_i(
            "node.memory.inactive_file",
            "By",
            &[],
            "Inactive file-backed memory.",
            "/proc/meminfo Inactive(file) x 1024",
        )
        .prom("node_memory_Inactive_file_bytes", PromKind::Gauge),
    },
    MemField {
        key: "Unevictable",
        def: gauge_i(
            "node.memory.unevictable",
            "By",
            &[],
            "Memory that cannot be reclaimed (mlocked, ramfs).",
            "/proc/meminfo Unevictable x 1024",
        )
        .prom("node_memory_Unevictable_bytes", PromKind::Gauge),
    },
    MemField {
        key: "Mlocked",
        def: gauge_i(
            "node.memory.mlocked",
            "By",
            &[],
            "Memory locked with mlock().",
            "/proc/meminfo Mlocked x 1024",
        )
        .prom("node_memory_Mlocked_bytes", PromKind::Gauge),
    },
    MemField {
        key: "SwapTotal",
        def: gauge_i(
            "node.memory.swap.total",
            "By",
            &[],
            "Total swap space.",
            "/proc/meminfo SwapTotal x 1024",
        )
        .prom("node_memory_SwapTotal_bytes", PromKind::Gauge),
    },
    MemField {
        key: "SwapFree",
        def: gauge_i(
            "node.memory.swap.free",
            "By",
            &[],
            "Unused swap space.",
            "/proc/meminfo SwapFree x 1024",
        )
        .prom("node_memory_SwapFree_bytes", PromKind::Gauge),
    },
    MemField {
        key: "Dirty",
        def: gauge_i(
            "node.memory.dirty",
            "By",
            &[],
            "Memory waiting to be written back to disk.",
            "/proc/meminfo Dirty x 1024",
        )
        .prom("node_memory_Dirty_bytes", PromKind::Gauge),
    },
    MemField {
        key: "Writeback",
        def: gauge_i(
            "node.memory.writeback",
            "By",
            &[],
            "Memory being written back to disk now.",
            "/proc/meminfo Writeback x 1024",
        )
        .prom("node_memory_Writeback_bytes", PromKind::Gauge),
    },
    MemField {
        key: "AnonPages",
        def: gauge_i(
            "node.memory.anon_pages",
            "By",
            &[],
            "Anonymous pages mapped into user page tables.",
            "/proc/meminfo AnonPages x 1024",
        )
        .prom("node_memory_AnonPages_bytes", PromKind::Gauge),
    },
    MemField {
        key: "Mapped",
        def: gauge_i(
            "node.memory.mapped",
            "By",
            &[],
            "Files mapped into memory (libraries, mmap).",
            "/proc/meminfo Mapped x 1024",
        )
        .prom("node_memory_Mapped_bytes", PromKind::Gauge),
    },
    MemField {
        key: "Shmem",
        def: gauge_i(
            "node.memory.shmem",
            "By",
            &[],
            "Shared memory and tmpfs.",
            "/proc/meminfo Shmem x 1024",
        )
        .prom("node_memory_Shmem_bytes", PromKind::Gauge),
    },
    MemField {
        key: "KReclaimable",
        def: gauge_i(
            "node.memory.kernel_reclaimable",
            "By",
            &[],
            "Kernel allocations the kernel will reclaim under pressure.",
            "/proc/meminfo KReclaimable x 1024",
        )
        .prom("node_memory_KReclaimable_bytes", PromKind::Gauge),
    },
    MemField {
        key: "Slab",
        def: gauge_i(
            "node.memory.slab",
            "By",
            &[],
            "Kernel slab allocations.",
            "/proc/meminfo Slab x 1024",
        )
        .prom("node_memory_Slab_bytes", PromKind::Gauge),
    },
    MemField {
        key: "SReclaimable",
        def: gauge_i(
            "node.memory.slab_reclaimable",
            "By",
            &[],
            "Reclaimable part of the slab (caches).",
            "/proc/meminfo SReclaimable x 1024",
        )
        .prom("node_memory_SReclaimable_bytes", PromKind::Gauge),
    },
    MemField {
        key: "SUnreclaim",
        def: gauge_i(
            "node.memory.slab_unreclaimable",
            "By",
            &[],
            "Unreclaimable part of the slab.",
            "/proc/meminfo SUnreclaim x 1024",
        )
        .prom("node_memory_SUnreclaim_bytes", PromKind::Gauge),
    },
    MemField {
        key: "KernelStack",
        def: gauge_i(
            "node.memory.kernel_stack",
            "By",
            &[],
            "Kernel stacks of all tasks.",
            "/proc/meminfo KernelStack x 1024",
        )
        .prom("node_memory_KernelStack_bytes", PromKind::Gauge),
    },
    MemField {
        key: "PageTables",
        def: gauge_i(
            "node.memory.page_tables",
            "By",
            &[],
            "Memory used by page tables.",
            "/proc/meminfo PageTables x 1024",
        )
        .prom("node_memory_PageTables_bytes", PromKind::Gauge),
    },
    MemField {
        key: "CommitLimit",
        def: gauge_i(
            "node.memory.commit_limit",
            "By",
            &[],
            "Total memory that can be committed under strict overcommit.",
            "/proc/meminfo CommitLimit x 1024",
        )
        .prom("node_memory_CommitLimit_bytes", PromKind::Gauge),
    },
    MemField {
        key: "Committed_AS",
        def: gauge_i(
            "node.memory.committed",
            "By",
            &[],
            "Memory committed to processes (would be needed if all were touched).",
            "/proc/meminfo Committed_AS x 1024",
        )
        .prom("node_memory_Committed_AS_bytes", PromKind::Gauge),
    },
    MemField {
        key: "VmallocTotal",
        def: gauge_i(
            "node.memory.vmalloc.total",
            "By",
            &[],
            "Size of the vmalloc address space.",
            "/proc/meminfo VmallocTotal x 1024",
        )
        .prom("node_memory_VmallocTotal_bytes", PromKind::Gauge),
    },
    MemField {
        key: "VmallocUsed",
        def: gauge_i(
            "node.memory.vmalloc.used",
            "By",
            &[],
            "vmalloc address space in use.",
            "/proc/meminfo VmallocUsed x 1024",
        )
        .prom("node_memory_VmallocUsed_bytes", PromKind::Gauge),
    },
    MemField {
        key: "Percpu",
        def: gauge_i(
            "node.memory.percpu",
            "By",
            &[],
            "Memory used by per-CPU allocations.",
            "/proc/meminfo Percpu x 1024",
        )
        .prom("node_memory_Percpu_bytes", PromKind::Gauge),
    },
    MemField {
        key: "HardwareCorrupted",
        def: gauge_i(
            "node.memory.hardware_corrupted",
            "By",
            &[],
            "Memory the kernel took out of use after hardware errors.",
            "/proc/meminfo HardwareCorrupted x 1024",
        )
        .prom("node_memory_HardwareCorrupted_bytes", PromKind::Gauge),
    },
    MemField {
        key: "AnonHugePages",
        def: gauge_i(
            "node.memory.anon_huge_pages",
            "By",
            &[],
            "Anonymous memory in transparent huge pages.",
            "/proc/meminfo AnonHugePages x 1024",
        )
        .prom("node_memory_AnonHugePages_bytes", PromKind::Gauge),
    },
    MemField {
        key: "ShmemHugePages",
        def: gauge_i(
            "node.memory.shmem_huge_pages",
            "By",
            &[],
            "Shared memory and tmpfs in huge pages.",
            "/proc/meminfo ShmemHugePages x 1024",
        )
        .prom("node_memory_ShmemHugePages_bytes", PromKind::Gauge),
    },
    MemField {
        key: "HugePages_Total",
        def: gauge_i(
            "node.memory.hugepages.total",
            "{page}",
            &[],
            "Size of the huge page pool, in pages.",
            "/proc/meminfo HugePages_Total",
        )
        .prom("node_memory_HugePages_Total", PromKind::Gauge),
    },
    MemField {
        key: "HugePages_Free",
        def: gauge_i(
            "node.memory.hugepages.free",
            "{page}",
            &[],
            "Huge pages not allocated.",
            "/proc/meminfo HugePages_Free",
        )
        .prom("node_memory_HugePages_Free", PromKind::Gauge),
    },
    MemField {
        key: "HugePages_Rsvd",
        def: gauge_i(
            "node.memory.hugepages.reserved",
            "{page}",
            &[],
            "Huge pages reserved but not yet allocated.",
            "/proc/meminfo HugePages_Rsvd",
        )
        .prom("node_memory_HugePages_Rsvd", PromKind::Gauge),
    },
    MemField {
        key: "HugePages_Surp",
        def: gauge_i(
            "node.memory.hugepages.surplus",
            "{page}",
            &[],
            "Huge pages above the configured pool size.",
            "/proc/meminfo HugePages_Surp",
        )
        .prom("node_memory_HugePages_Surp", PromKind::Gauge),
    },
    MemField {
        key: "Hugepagesize",
        def: gauge_i(
            "node.memory.hugepage_size",
            "By",
            &[],
            "Size of one default huge page.",
            "/proc/meminfo Hugepagesize x 1024",
        )
        .prom("node_memory_Hugepagesize_bytes", PromKind::Gauge),
    },
    MemField {
        key: "Hugetlb",
        def: gauge_i(
            "node.memory.hugetlb",
            "By",
            &[],
            "Memory in huge pages of all sizes.",
            "/proc/meminfo Hugetlb x 1024",
        )
        .prom("node_memory_Hugetlb_bytes", PromKind::Gauge),
    },
];

const N: usize = FIELDS.len();

crate::table::metrics_from_rows!(FIELDS, def);

static INDEX: LazyLock<KeyIndex> =
    LazyLock::new(|| KeyIndex::new(FIELDS.iter().map(|f| (&b""[..], f.key.as_bytes()))));

pub(crate) fn collect(input: &[u8], path: &Path, out: &mut Out<'_>, report: &mut CollectReport) {
    let mut errs = LineErrors::new(path);
    let mut b = out.batch(METRICS);
    let mut seen = [false; N];
    for (no, line) in lines(input).enumerate() {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let key = &line[..colon];
        let Some(row) = INDEX.get(key) else {
            continue;
        };
        if std::mem::replace(&mut seen[row], true) {
            errs.add(no, || format!("duplicate key {}", excerpt(key)));
            continue;
        }
        let mut f = fields(&line[colon + 1..]);
        let value = f.next().and_then(parse_u64);
        let scaled = match (value, f.next(), f.next()) {
            (Some(v), Some(b"kB"), None) => v.checked_mul(1024),
            (Some(v), None, None) => Some(v),
            _ => None,
        };
        match scaled {
            Some(v) => b.add(row, &[], Val::U(v)),
            None => errs.add(no, || {
                format!("expected `<key>: <number> kB`, found {}", excerpt(line))
            }),
        }
    }
    if !seen[0] {
        errs.add(0, || "no MemTotal line".to_string());
    }
    errs.finish(report);
    b.finish();
}
