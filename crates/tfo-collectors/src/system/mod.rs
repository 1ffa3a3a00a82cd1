//! `collectors.system`: host CPU, load, memory, filesystems, disks, network and uptime,
//! named after the OpenTelemetry semantic conventions (the OTel Collector hostmetrics
//! receiver's names).
//!
//! One sub-collector per file, each opening with its metric table (see [`metric_tables`]).
//! A cycle reads each /proc file once into one reused buffer, through a descriptor kept open
//! (as the node collector does: `pread` at offset 0, no path walk), reuses the mount table
//! while it does not change, and parses by hand. The files the node collector reads too are
//! shared: when both run on one thread, a cycle reads them once ([`crate::shared`]). Points
//! are written in the OTLP wire format through row buffers kept across cycles
//! ([`crate::wire::Batch`]): no allocation per point, one per output metric (and, for
//! network filesystems, the statvfs helper threads). `collect` decodes them.
//!
//! | toggle    | sub-collectors               | files                                         |
//! |-----------|------------------------------|-----------------------------------------------|
//! | (always)  | uptime                       | /proc/uptime                                  |
//! | `cpu`     | cpu, load                    | /proc/stat, /proc/loadavg                     |
//! | `memory`  | memory                       | /proc/meminfo                                 |
//! | `disk`    | disk, filesystem             | /proc/diskstats, /proc/{1,self}/mounts + statvfs |
//! | `network` | network                      | /proc/{1/,}net/dev                            |
//!
//! Counters start at boot time (`btime` in /proc/stat, read once and kept; if it is missing,
//! now − /proc/uptime). Every point of a cycle carries the same `time_unix_nano`.

pub mod cpu;
pub mod disk;
pub mod filesystem;
pub mod load;
pub mod memory;
pub mod network;
pub mod uptime;

#[cfg(test)]
mod fuzz;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::metrics::v1::Metric;

pub use filesystem::{FsStats, LibcStatFs, StatFs};

use crate::node::kept::FdBudget;
use crate::node::{MountTable, Source, read_into, read_mounts, read_pair};
use crate::parse::{LineErrors, parse_error};
use crate::table::MetricDef;
use crate::wire::{EncodedMetric, Out, Rows};
use crate::{CollectReport, Collector, Ctx, HostPaths};

/// Which parts of the system collector run. Uptime is always collected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SystemOptions {
    /// `system.cpu.time`, `system.cpu.utilization`, `system.cpu.load_average.*`.
    pub cpu: bool,
    /// `system.memory.*`, `system.paging.usage`.
    pub memory: bool,
    /// `system.disk.*`, `system.filesystem.*`.
    pub disk: bool,
    /// `system.network.*`.
    pub network: bool,
}

impl Default for SystemOptions {
    fn default() -> Self {
        SystemOptions {
            cpu: true,
            memory: true,
            disk: true,
            network: true,
        }
    }
}

/// Every metric the system collector can emit, by sub-collector: the source for docs.
pub fn metric_tables() -> Vec<(&'static str, &'static [MetricDef])> {
    vec![
        ("cpu", cpu::METRICS),
        ("load", load::METRICS),
        ("memory", memory::METRICS),
        ("filesystem", filesystem::METRICS),
        ("disk", disk::METRICS),
        ("network", network::METRICS),
        ("uptime", uptime::METRICS),
    ]
}

/// The files read, resolved once, each re-read through a descriptor kept open as the node
/// collector does (`node::kept`). The ones the node collector reads too are marked shared:
/// when both run on one thread, a cycle reads them once ([`crate::shared`]).
#[derive(Debug)]
struct Files {
    uptime: Source,
    stat: Source,
    loadavg: Source,
    meminfo: Source,
    diskstats: Source,
    /// Preferred first; the second is the fallback when the first cannot be opened.
    mounts: [Source; 2],
    net_dev: [Source; 2],
}

/// The `collectors.system` collector.
pub struct SystemCollector {
    paths: HostPaths,
    opts: SystemOptions,
    files: Files,
    buf: Vec<u8>,
    boot_ns: Option<u64>,
    cpu: cpu::CpuCollector,
    fs: filesystem::FsCollector,
    /// The mount table, reused while it does not change (see `node::read_mounts`).
    mount_table: MountTable,
    /// Bounds the descriptors kept open across cycles (see `node::kept`).
    fds: FdBudget,
    /// Point buffers by table row, kept across cycles (see [`crate::wire::Rows`]).
    rows: Rows,
}

impl std::fmt::Debug for SystemCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemCollector")
            .field("paths", &self.paths)
            .field("opts", &self.opts)
            .field("boot_ns", &self.boot_ns)
            .finish_non_exhaustive()
    }
}

impl SystemCollector {
    pub fn new(paths: HostPaths, opts: SystemOptions) -> Self {
        let one = |rel: &str| Source::new(paths.proc(rel));
        let shared = |rel: &str| one(rel).shared();
        let [a, b] = Source::pair(&paths, "net/dev", "1/net/dev");
        let files = Files {
            uptime: one("uptime"),
            stat: shared("stat"),
            loadavg: shared("loadavg"),
            meminfo: shared("meminfo"),
            diskstats: shared("diskstats"),
            mounts: Source::pair(&paths, "self/mounts", "1/mounts"),
            net_dev: [a.shared(), b.shared()],
        };
        SystemCollector {
            paths,
            opts,
            files,
            buf: Vec::with_capacity(64 << 10),
            boot_ns: None,
            cpu: cpu::CpuCollector::new(cpu::user_hz()),
            fs: filesystem::FsCollector::new(Arc::new(LibcStatFs)),
            mount_table: MountTable::default(),
            fds: FdBudget::for_process(),
            rows: Rows::default(),
        }
    }

    /// Replaces statvfs (tests answer for fixture mount points with it).
    pub fn with_statfs(mut self, statfs: Arc<dyn StatFs>) -> Self {
        self.fs.set_statfs(statfs);
        self
    }

    /// How long a network/FUSE filesystem's statvfs is waited for (default 1s).
    pub fn with_remote_statfs_timeout(mut self, timeout: Duration) -> Self {
        self.fs.set_remote_timeout(timeout);
        self
    }

    /// Overrides USER_HZ (ticks per second in /proc/stat), normally sysconf(_SC_CLK_TCK).
    pub fn with_user_hz(mut self, hz: u64) -> Self {
        self.cpu = cpu::CpuCollector::new(hz);
        self
    }

    /// Mount points whose statvfs helper thread is still blocked.
    pub fn stuck_mounts(&self) -> usize {
        self.fs.stuck_count()
    }

    /// One collection cycle with the given timestamp (ns since the epoch), every metric
    /// as a struct: the wire form decoded.
    pub fn collect_at(&mut self, now_ns: u64, out: &mut Vec<Metric>) -> CollectReport {
        crate::wire::collect_decoded(out, "system", |e| self.collect_encoded_at(now_ns, e))
    }

    /// One collection cycle with the given timestamp, every metric in the wire format.
    pub fn collect_encoded_at(
        &mut self,
        now_ns: u64,
        encoded: &mut Vec<EncodedMetric>,
    ) -> CollectReport {
        let mut report = CollectReport::default();

        let f = &mut self.files;
        let (buf, fds, r) = (&mut self.buf, &self.fds, &mut report);
        let uptime_s = read_into(&mut f.uptime, buf, false, fds, r)
            .then(|| uptime::parse(buf, &f.uptime.path, r))
            .flatten();

        let mut have_cpu = false;
        if (self.opts.cpu || self.boot_ns.is_none()) && read_into(&mut f.stat, buf, false, fds, r) {
            let mut errs = LineErrors::new(&f.stat.path);
            let btime = self.cpu.parse(buf, &mut errs);
            errs.finish(r);
            match btime {
                Some(b) if self.boot_ns.is_none() => self.boot_ns = b.checked_mul(1_000_000_000),
                Some(_) => {}
                None if self.boot_ns.is_none() => r.errors.push(parse_error(
                    &f.stat.path,
                    "no btime line: boot time taken from uptime",
                )),
                None => {}
            }
            have_cpu = true;
        }
        if self.boot_ns.is_none()
            && let Some(up) = uptime_s
        {
            self.boot_ns = Some(now_ns.saturating_sub((up * 1e9) as u64));
        }
        let ctx = Ctx {
            now_ns,
            boot_ns: self.boot_ns.unwrap_or(0),
        };
        let out = &mut Out::new(&mut self.rows, encoded, ctx);
        if let Some(up) = uptime_s {
            uptime::emit(up, out);
        }

        if self.opts.cpu {
            if have_cpu {
                self.cpu.emit(out);
            }
            if read_into(&mut f.loadavg, buf, false, fds, r) {
                load::collect(buf, &f.loadavg.path, out, r);
            }
        }

        if self.opts.memory && read_into(&mut f.meminfo, buf, false, fds, r) {
            memory::collect(buf, &f.meminfo.path, out, r);
        }

        if self.opts.disk {
            if read_into(&mut f.diskstats, buf, false, fds, r) {
                disk::collect(buf, &f.diskstats.path, out, r);
            }
            if let Some(path) = read_mounts(&mut f.mounts, &mut self.mount_table, buf, fds, r) {
                let table = &self.mount_table.content;
                self.fs.collect(table, path, &self.paths, out, r);
            }
        }

        if self.opts.network
            && let Some(path) = read_pair(&mut f.net_dev, buf, false, fds, r)
        {
            network::collect(buf, path, out, r);
        }

        report
    }
}

impl Collector for SystemCollector {
    fn name(&self) -> &'static str {
        "system"
    }

    fn collect(&mut self, out: &mut Vec<Metric>) -> CollectReport {
        let now_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        self.collect_at(now_ns, out)
    }

    fn collect_encoded(
        &mut self,
        _out: &mut Vec<Metric>,
        encoded: &mut Vec<EncodedMetric>,
    ) -> CollectReport {
        self.collect_encoded_at(crate::unix_now_ns(), encoded)
    }
}
