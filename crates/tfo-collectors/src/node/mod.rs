//! `collectors.node_exporter`: the host metrics Prometheus node_exporter exposes, named
//! `node.<category>.<name>` in OTLP, each row of each table carrying node_exporter's own
//! metric name and labels so [`crate::prom::render_node_exporter`] can expose them for
//! existing dashboards.
//!
//! One sub-collector per file, each opening with its metric table (see [`metric_tables`]).
//! A cycle reads each file at most once into one reused buffer and parses it by hand.
//!
//! Cost per cycle, and what is kept between cycles to lower it (each bounded):
//! - every file and sysfs directory is re-read through a descriptor kept open
//!   (`pread` at offset 0, `getdents64` after a rewind: fresh content, no path walk),
//!   at most [`MAX_KEPT_FDS`] descriptors (or half the soft RLIMIT_NOFILE); sysfs ones
//!   not read in a cycle are closed at its end. Listings are fresh every cycle, so a new
//!   device, interface or sensor appears in the first cycle after it does, as with
//!   node_exporter. See the `kept` module for staleness handling.
//! - the mount table is reused while poll(2) on its descriptor reports no change.
//! - hwmon chip labels and sensor files are kept per device, for as long as the device
//!   is listed with the same inode.
//! - points are written in the OTLP wire format ([`crate::wire`]): each sub-collector's
//!   [`Batch`] appends them to a byte buffer per table row, shared by all tables and kept
//!   with its capacity (up to 64 KiB a row), and each metric is one buffer allocated at
//!   its exact size, handed to the encoder as it is. Attribute values are borrowed from
//!   what was read (or formatted on the stack): no allocation per point. `collect`
//!   decodes that into structs.
//!
//! Kernel features a host may lack (PSI, schedstat, conntrack, thermal zones, hwmon,
//! cpufreq, IPv6) are skipped silently when their files do not exist; every other failure
//! drops only the metrics of that file (or line) and is returned in the [`CollectReport`].
//!
//! | option               | default | sub-collectors          | files                                                  |
//! |----------------------|---------|-------------------------|--------------------------------------------------------|
//! | (always)             |         | stat                    | /proc/stat (boot time, forks, procs)                   |
//! | `cpu`                | on      | cpu, schedstat          | /proc/stat, /proc/schedstat                            |
//! | `cpu_frequency`      | off     | cpufreq                 | /sys/devices/system/cpu/cpuN/cpufreq/scaling_*_freq    |
//! | `cpu_throttles`      | off     | cpu_throttle            | /sys/devices/system/cpu/cpuN/{thermal_throttle,topology}/* |
//! | `memory`             | on      | meminfo                 | /proc/meminfo                                          |
//! | `disk_io`            | on      | diskstats               | /proc/diskstats                                        |
//! | `filesystem`         | on      | filesystem              | /proc/{1,self}/mounts + statvfs (bounded)              |
//! | `network`            | on      | netdev, netclass        | /proc/{1/,}net/dev, /sys/class/net/*/{operstate,mtu,speed} |
//! | `load_avg`           | on      | loadavg                 | /proc/loadavg                                          |
//! | `thermal`            | on      | thermal_zone            | /sys/class/thermal/{thermal_zone,cooling_device}*      |
//! | `pressure`           | on      | pressure                | /proc/pressure/{cpu,io,memory}                         |
//! | `vmstat`             | on      | vmstat                  | /proc/vmstat                                           |
//! | `sockstat`           | on      | sockstat                | /proc/{1/,}net/sockstat{,6}                            |
//! | `netstat`            | on      | netstat                 | /proc/{1/,}net/{netstat,snmp,snmp6}                    |
//! | `entropy`            | on      | entropy                 | /proc/sys/kernel/random/{entropy_avail,poolsize}       |
//! | `filefd`             | on      | filefd                  | /proc/sys/fs/file-nr                                   |
//! | `conntrack`          | on      | conntrack               | /proc/sys/net/netfilter/nf_conntrack_{count,max}, /proc/{1/,}net/stat/nf_conntrack |
//! | `hwmon`              | on      | hwmon                   | /sys/class/hwmon/hwmon*/{name,temp*,fan*,in*}          |
//! | `timex`              | on      | timex                   | adjtimex(2), read-only                                 |
//!
//! Filters ([`PatternFilter`], node_exporter's regular-expression syntax, unanchored like
//! its flags) select disk devices, mount points, filesystem types and network interfaces
//! (the interface filter also applies to netclass). A name is kept when it matches
//! `include` (if set) and does not match `exclude` (if set); an empty pattern means unset.
//!
//! Counters start at boot time (`btime` in /proc/stat, read once and kept). Every point of
//! a cycle carries the same `time_unix_nano`.

pub mod conntrack;
pub mod cpu;
pub mod cpufreq;
pub mod diskstats;
pub mod entropy;
pub mod filefd;
pub mod filesystem;
pub mod hwmon;
pub(crate) mod kept;
pub mod loadavg;
pub mod meminfo;
pub mod netclass;
pub mod netdev;
pub mod netstat;
pub mod pressure;
pub mod schedstat;
pub mod sockstat;
pub mod stat;
mod sysfs;
pub mod thermal;
pub mod timex;
pub mod vmstat;

#[cfg(test)]
mod fuzz;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::metrics::v1::Metric;
use regex::bytes::Regex;

use crate::mounts::{LibcStatFs, MountScanner, StatFs};
use crate::parse::{is_not_found, parse_error};
use crate::table::MetricDef;
use crate::wire::{EncodedMetric, Rows};
use crate::{CollectError, CollectReport, Collector, Ctx, HostPaths};
pub use kept::MAX_KEPT_FDS;
use kept::{FdBudget, Kept};

pub use timex::{Adjtimex, LibcAdjtimex, TimexState};

/// node_exporter's default `--collector.diskstats.device-exclude`: partitions and ram,
/// zram, loop and floppy devices.
pub const DEFAULT_DISK_DEVICES_EXCLUDE: &str =
    r"^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$";
/// node_exporter's default `--collector.filesystem.mount-points-exclude`.
pub const DEFAULT_MOUNT_POINTS_EXCLUDE: &str =
    r"^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)";
/// node_exporter's default `--collector.filesystem.fs-types-exclude`: pseudo filesystems.
pub const DEFAULT_FS_TYPES_EXCLUDE: &str = "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|erofs|sysfs|tracefs)$";

/// Include/exclude regular expressions over names (devices, mount points, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatternFilter {
    /// Keep only names matching this (unset or empty: keep all).
    pub include: Option<String>,
    /// Drop names matching this (unset or empty: drop none).
    pub exclude: Option<String>,
}

impl PatternFilter {
    /// A filter that only excludes.
    pub fn exclude(pattern: &str) -> PatternFilter {
        PatternFilter {
            include: None,
            exclude: Some(pattern.to_string()),
        }
    }

    fn compile(&self, what: &'static str) -> Result<NameFilter, NodeOptionsError> {
        let one =
            |p: &Option<String>, side: &'static str| -> Result<Option<Regex>, NodeOptionsError> {
                match p.as_deref() {
                    None | Some("") => Ok(None),
                    Some(p) => Regex::new(p).map(Some).map_err(|e| NodeOptionsError {
                        option: format!("{what}_{side}"),
                        reason: e.to_string(),
                    }),
                }
            };
        Ok(NameFilter {
            include: one(&self.include, "include")?,
            exclude: one(&self.exclude, "exclude")?,
        })
    }
}

/// An invalid filter pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("collectors.node_exporter.{option}: invalid regular expression: {reason}")]
pub struct NodeOptionsError {
    /// The option name, e.g. `mount_points_exclude`.
    pub option: String,
    pub reason: String,
}

/// A compiled [`PatternFilter`].
#[derive(Debug, Clone)]
pub(crate) struct NameFilter {
    include: Option<Regex>,
    exclude: Option<Regex>,
}

impl NameFilter {
    pub(crate) fn allows(&self, name: &[u8]) -> bool {
        self.include.as_ref().is_none_or(|r| r.is_match(name))
            && !self.exclude.as_ref().is_some_and(|r| r.is_match(name))
    }
}

/// Which parts of the node collector run, and the name filters. See the module docs for
/// what each toggle reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeOptions {
    pub cpu: bool,
    /// Per-CPU cpufreq files: off by default (three reads per CPU per cycle).
    pub cpu_frequency: bool,
    /// Per-CPU thermal throttle counters: off by default (four reads per CPU per cycle).
    pub cpu_throttles: bool,
    pub memory: bool,
    pub disk_io: bool,
    pub filesystem: bool,
    pub network: bool,
    pub load_avg: bool,
    pub thermal: bool,
    pub pressure: bool,
    pub vmstat: bool,
    pub sockstat: bool,
    pub netstat: bool,
    pub entropy: bool,
    pub filefd: bool,
    pub conntrack: bool,
    pub hwmon: bool,
    pub timex: bool,
    /// Block devices of `node.disk.*` (default: exclude [`DEFAULT_DISK_DEVICES_EXCLUDE`]).
    pub disk_devices: PatternFilter,
    /// Mount points of `node.filesystem.*` (default: exclude [`DEFAULT_MOUNT_POINTS_EXCLUDE`]).
    pub mount_points: PatternFilter,
    /// Filesystem types of `node.filesystem.*` (default: exclude [`DEFAULT_FS_TYPES_EXCLUDE`]).
    pub fs_types: PatternFilter,
    /// Interfaces of `node.network.*` (default: all).
    pub network_interfaces: PatternFilter,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            cpu: true,
            cpu_frequency: false,
            cpu_throttles: false,
            memory: true,
            disk_io: true,
            filesystem: true,
            network: true,
            load_avg: true,
            thermal: true,
            pressure: true,
            vmstat: true,
            sockstat: true,
            netstat: true,
            entropy: true,
            filefd: true,
            conntrack: true,
            hwmon: true,
            timex: true,
            disk_devices: PatternFilter::exclude(DEFAULT_DISK_DEVICES_EXCLUDE),
            mount_points: PatternFilter::exclude(DEFAULT_MOUNT_POINTS_EXCLUDE),
            fs_types: PatternFilter::exclude(DEFAULT_FS_TYPES_EXCLUDE),
            network_interfaces: PatternFilter::default(),
        }
    }
}

impl NodeOptions {
    /// Every toggle off: a starting point for enabling a few sub-collectors.
    pub fn none() -> NodeOptions {
        NodeOptions {
            cpu: false,
            cpu_frequency: false,
            cpu_throttles: false,
            memory: false,
            disk_io: false,
            filesystem: false,
            network: false,
            load_avg: false,
            thermal: false,
            pressure: false,
            vmstat: false,
            sockstat: false,
            netstat: false,
            entropy: false,
            filefd: false,
            conntrack: false,
            hwmon: false,
            timex: false,
            ..NodeOptions::default()
        }
    }

    /// Checks that every filter pattern compiles.
    pub fn validate(&self) -> Result<(), NodeOptionsError> {
        Filters::compile(self).map(|_| ())
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Filters {
    pub disks: NameFilter,
    pub mount_points: NameFilter,
    pub fs_types: NameFilter,
    pub interfaces: NameFilter,
}

impl Filters {
    fn compile(o: &NodeOptions) -> Result<Filters, NodeOptionsError> {
        Ok(Filters {
            disks: o.disk_devices.compile("disk_devices")?,
            mount_points: o.mount_points.compile("mount_points")?,
            fs_types: o.fs_types.compile("fs_types")?,
            interfaces: o.network_interfaces.compile("network_interfaces")?,
        })
    }
}

/// Every metric the node collector can emit, by sub-collector: the source for docs and for
/// the Prometheus renderer's name map.
pub fn metric_tables() -> Vec<(&'static str, &'static [MetricDef])> {
    vec![
        ("cpu", cpu::METRICS),
        ("schedstat", schedstat::METRICS),
        ("cpufreq", cpufreq::FREQ_METRICS),
        ("cpu_throttle", cpufreq::THROTTLE_METRICS),
        ("stat", stat::METRICS),
        ("meminfo", meminfo::METRICS),
        ("diskstats", diskstats::METRICS),
        ("filesystem", filesystem::METRICS),
        ("netdev", netdev::METRICS),
        ("netclass", netclass::METRICS),
        ("loadavg", loadavg::METRICS),
        ("thermal_zone", thermal::METRICS),
        ("pressure", pressure::METRICS),
        ("vmstat", vmstat::METRICS),
        ("sockstat", sockstat::METRICS),
        ("netstat", netstat::METRICS),
        ("entropy", entropy::METRICS),
        ("filefd", filefd::METRICS),
        ("conntrack", conntrack::METRICS),
        ("hwmon", hwmon::METRICS),
        ("timex", timex::METRICS),
    ]
}

// Table row constructors, shared by every collector (table.rs).
pub(crate) use crate::table::{counter_f, counter_i, gauge_f, gauge_i};

pub(crate) use crate::wire::{Batch, Out};

/// A file read every cycle: its path, resolved once, and its kept descriptor.
#[derive(Debug)]
pub(crate) struct Source {
    pub(crate) path: PathBuf,
    file: Kept,
    /// Read once per cycle by the collectors of one thread ([`crate::shared`]).
    shared: bool,
}

impl Source {
    pub(crate) fn new(path: PathBuf) -> Source {
        Source {
            path,
            file: Kept::recheck_missing(),
            shared: false,
        }
    }

    /// A file other collectors read too (the system collector: /proc/stat, meminfo,
    /// diskstats, loadavg, net/dev).
    pub(crate) fn shared(mut self) -> Source {
        self.shared = true;
        self
    }

    /// A file of our own /proc and its pid-1 twin (`net/dev`, `1/net/dev`), preferred first:
    /// in a container with the host's / mounted elsewhere, our own /proc/self is the
    /// container's view, so pid 1's mount table and network namespace come first there.
    pub(crate) fn pair(paths: &HostPaths, own: &str, init: &str) -> [Source; 2] {
        let (own, init) = (Source::new(paths.proc(own)), Source::new(paths.proc(init)));
        if paths.root == Path::new("/") {
            [own, init]
        } else {
            [init, own]
        }
    }

    fn read(&mut self, buf: &mut Vec<u8>, fds: &FdBudget) -> Result<(), CollectError> {
        let Source { path, file, shared } = self;
        if *shared {
            crate::shared::read(path, buf, |b| file.read_all(path, b, fds))
        } else {
            file.read_all(path, buf, fds)
        }
    }
}

/// The files read. Pairs are (preferred, fallback) per network namespace.
#[derive(Debug)]
struct Files {
    stat: Source,
    schedstat: Source,
    meminfo: Source,
    diskstats: Source,
    loadavg: Source,
    vmstat: Source,
    pressure: [Source; 3],
    mounts: [Source; 2],
    net_dev: [Source; 2],
    netstat: [Source; 2],
    snmp: [Source; 2],
    snmp6: [Source; 2],
    sockstat: [Source; 2],
    sockstat6: [Source; 2],
    conntrack_stat: [Source; 2],
    entropy_avail: Source,
    poolsize: Source,
    file_nr: Source,
    conntrack_count: Source,
    conntrack_max: Source,
    sys_cpu: PathBuf,
    sys_net: PathBuf,
    sys_thermal: PathBuf,
    sys_hwmon: PathBuf,
}

impl Files {
    fn new(paths: &HostPaths) -> Files {
        let one = |rel: &str| Source::new(paths.proc(rel));
        let pair = |own: &str, init: &str| Source::pair(paths, own, init);
        let shared = |rel: &str| one(rel).shared();
        let [a, b] = pair("net/dev", "1/net/dev");
        Files {
            stat: shared("stat"),
            schedstat: one("schedstat"),
            meminfo: shared("meminfo"),
            diskstats: shared("diskstats"),
            loadavg: shared("loadavg"),
            vmstat: one("vmstat"),
            pressure: [
                one("pressure/cpu"),
                one("pressure/io"),
                one("pressure/memory"),
            ],
            mounts: pair("self/mounts", "1/mounts"),
            net_dev: [a.shared(), b.shared()],
            netstat: pair("net/netstat", "1/net/netstat"),
            snmp: pair("net/snmp", "1/net/snmp"),
            snmp6: pair("net/snmp6", "1/net/snmp6"),
            sockstat: pair("net/sockstat", "1/net/sockstat"),
            sockstat6: pair("net/sockstat6", "1/net/sockstat6"),
            conntrack_stat: pair("net/stat/nf_conntrack", "1/net/stat/nf_conntrack"),
            entropy_avail: one("sys/kernel/random/entropy_avail"),
            poolsize: one("sys/kernel/random/poolsize"),
            file_nr: one("sys/fs/file-nr"),
            conntrack_count: one("sys/net/netfilter/nf_conntrack_count"),
            conntrack_max: one("sys/net/netfilter/nf_conntrack_max"),
            sys_cpu: paths.sys("devices/system/cpu"),
            sys_net: paths.sys("class/net"),
            sys_thermal: paths.sys("class/thermal"),
            sys_hwmon: paths.sys("class/hwmon"),
        }
    }
}

/// Sorts a read result: a missing `optional` file (a kernel feature this host does not
/// have) is not an error; anything else is reported. Returns whether the read succeeded.
fn settle(r: Result<(), CollectError>, optional: bool, report: &mut CollectReport) -> bool {
    match r {
        Ok(()) => true,
        Err(e) if optional && is_not_found(&e) => false,
        Err(e) => {
            report.errors.push(e);
            false
        }
    }
}

/// Reads `src` into `buf` (see [`settle`]). Returns whether `buf` holds the file.
pub(crate) fn read_into(
    src: &mut Source,
    buf: &mut Vec<u8>,
    optional: bool,
    fds: &FdBudget,
    report: &mut CollectReport,
) -> bool {
    let r = src.read(buf, fds);
    settle(r, optional, report)
}

/// [`read_into`] for a one-value /proc/sys file, read with one small read.
pub(crate) fn read_value_into(
    src: &mut Source,
    buf: &mut Vec<u8>,
    optional: bool,
    fds: &FdBudget,
    report: &mut CollectReport,
) -> bool {
    let r = src
        .file
        .read_attr(&src.path, buf, fds)
        .map_err(|source| CollectError::Io {
            path: src.path.display().to_string(),
            source,
        });
    settle(r, optional, report)
}

/// [`read_into`] for a (preferred, fallback) pair: the first that can be read; on failure
/// the first's error. Returns the path read.
pub(crate) fn read_pair<'p>(
    srcs: &'p mut [Source; 2],
    buf: &mut Vec<u8>,
    optional: bool,
    fds: &FdBudget,
    report: &mut CollectReport,
) -> Option<&'p Path> {
    let i = read_pair_index(srcs, buf, optional, fds, report)?;
    Some(&srcs[i].path)
}

/// [`read_pair`], returning which of the pair was read.
fn read_pair_index(
    srcs: &mut [Source; 2],
    buf: &mut Vec<u8>,
    optional: bool,
    fds: &FdBudget,
    report: &mut CollectReport,
) -> Option<usize> {
    let [a, b] = srcs;
    let r = match a.read(buf, fds) {
        Ok(()) => Ok(0),
        Err(first @ CollectError::Io { .. }) => match b.read(buf, fds) {
            Ok(()) => Ok(1),
            Err(_) => Err(first),
        },
        Err(e) => Err(e),
    };
    match r {
        Ok(i) => Some(i),
        Err(e) => {
            settle(Err(e), optional, report);
            None
        }
    }
}

/// The mount table as last read, with which of the pair it came from.
#[derive(Debug, Default)]
pub(crate) struct MountTable {
    pub(crate) content: Vec<u8>,
    from: Option<usize>,
}

/// The mount table: read as [`read_pair`] does, except that while the kept descriptor it
/// was read from reports no change of the mount namespace (poll(2), see
/// [`Kept::mounts_unchanged`]), the last content is used again without reading. The
/// table rarely changes and is among the larger files generated every cycle.
pub(crate) fn read_mounts<'p>(
    srcs: &'p mut [Source; 2],
    table: &mut MountTable,
    buf: &mut Vec<u8>,
    fds: &FdBudget,
    report: &mut CollectReport,
) -> Option<&'p Path> {
    // Only the preferred file's table is reused: after a fallback, the preferred one is
    // tried again every cycle (in a container, the host's table over our own).
    if table.from == Some(0) && srcs[0].file.mounts_unchanged() {
        return Some(&srcs[0].path);
    }
    table.from = None;
    let i = read_pair_index(srcs, buf, false, fds, report)?;
    table.from = Some(i);
    table.content.clear();
    table.content.extend_from_slice(buf);
    Some(&srcs[i].path)
}

/// The `collectors.node_exporter` collector.
pub struct NodeCollector {
    paths: HostPaths,
    opts: NodeOptions,
    filters: Filters,
    files: Files,
    buf: Vec<u8>,
    /// Scratch for sysfs paths and small per-file reads in directory walks.
    sys: sysfs::SysScratch,
    chips: hwmon::Chips,
    mount_table: MountTable,
    boot_ns: Option<u64>,
    cpu: cpu::CpuCollector,
    mounts: MountScanner,
    timex: Arc<dyn Adjtimex>,
    page_size: u64,
    /// Bounds the descriptors kept open across cycles (see [`kept`]).
    fds: FdBudget,
    /// Point buffers by table row, kept across cycles (see [`crate::wire::Rows`]).
    rows: Rows,
    /// Metrics appended last cycle: the output is grown to fit once, not by doubling.
    last_len: usize,
}

impl std::fmt::Debug for NodeCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCollector")
            .field("paths", &self.paths)
            .field("opts", &self.opts)
            .field("boot_ns", &self.boot_ns)
            .finish_non_exhaustive()
    }
}

impl NodeCollector {
    /// A collector reading the host at `paths`; fails only on an invalid filter pattern.
    pub fn new(paths: HostPaths, opts: NodeOptions) -> Result<Self, NodeOptionsError> {
        let filters = Filters::compile(&opts)?;
        let fds = FdBudget::for_process();
        Ok(NodeCollector {
            files: Files::new(&paths),
            paths,
            opts,
            filters,
            buf: Vec::with_capacity(64 << 10),
            sys: sysfs::SysScratch::new(fds.clone()),
            chips: hwmon::Chips::default(),
            mount_table: MountTable::default(),
            boot_ns: None,
            cpu: cpu::CpuCollector::new(crate::system::cpu::user_hz()),
            mounts: MountScanner::new(Arc::new(LibcStatFs)),
            timex: Arc::new(LibcAdjtimex),
            page_size: page_size(),
            fds,
            rows: Rows::default(),
            last_len: 0,
        })
    }

    /// Replaces statvfs (tests answer for fixture mount points with it).
    pub fn with_statfs(mut self, statfs: Arc<dyn StatFs>) -> Self {
        self.mounts.set_statfs(statfs);
        self
    }

    /// Replaces adjtimex(2) (tests make the timex metrics deterministic with it).
    pub fn with_adjtimex(mut self, timex: Arc<dyn Adjtimex>) -> Self {
        self.timex = timex;
        self
    }

    /// How long a network/FUSE filesystem's statvfs is waited for (default 1s).
    pub fn with_remote_statfs_timeout(mut self, timeout: Duration) -> Self {
        self.mounts.remote_timeout = timeout;
        self
    }

    /// Overrides USER_HZ (ticks per second in /proc/stat), normally sysconf(_SC_CLK_TCK).
    pub fn with_user_hz(mut self, hz: u64) -> Self {
        self.cpu = cpu::CpuCollector::new(hz);
        self
    }

    /// Overrides the page size (sockstat `mem` is in pages), normally sysconf(_SC_PAGESIZE).
    pub fn with_page_size(mut self, bytes: u64) -> Self {
        self.page_size = bytes;
        self
    }

    /// Descriptors kept open across cycles (at most [`MAX_KEPT_FDS`], see the `kept`
    /// module): the fixed /proc files and the sysfs attributes read last cycle.
    pub fn kept_descriptors(&self) -> usize {
        self.fds.open()
    }

    /// Mount points whose statvfs helper thread is still blocked.
    pub fn stuck_mounts(&self) -> usize {
        self.mounts.stuck_count()
    }

    /// One collection cycle with the given timestamp (ns since the epoch), every metric
    /// as a struct: the wire form decoded.
    pub fn collect_at(&mut self, now_ns: u64, out: &mut Vec<Metric>) -> CollectReport {
        crate::wire::collect_decoded(out, "node_exporter", |e| self.collect_encoded_at(now_ns, e))
    }

    /// One collection cycle with the given timestamp, every metric in the wire format.
    pub fn collect_encoded_at(
        &mut self,
        now_ns: u64,
        encoded: &mut Vec<EncodedMetric>,
    ) -> CollectReport {
        let mut report = CollectReport::default();
        let start_len = encoded.len();
        encoded.reserve(self.last_len);
        let f = &mut self.files;
        let buf = &mut self.buf;
        let o = &self.opts;
        let fds = &self.fds;
        let r = &mut report;

        // /proc/stat is read every cycle: boot time, forks and procs are always reported.
        let mut stat_lines = None;
        if read_into(&mut f.stat, buf, false, fds, r) {
            let parsed = self.cpu.parse(buf, &f.stat.path, r);
            if self.boot_ns.is_none() {
                match parsed.btime {
                    Some(b) => self.boot_ns = b.checked_mul(1_000_000_000),
                    None => r.errors.push(parse_error(
                        &f.stat.path,
                        "no btime line: counters carry no start time",
                    )),
                }
            }
            stat_lines = Some(parsed);
        }
        let ctx = Ctx {
            now_ns,
            boot_ns: self.boot_ns.unwrap_or(0),
        };
        let out = &mut Out::new(&mut self.rows, encoded, ctx);
        if let Some(s) = &stat_lines {
            stat::emit(s, out);
            if o.cpu {
                self.cpu.emit(s, out);
            }
        }

        if o.cpu && read_into(&mut f.schedstat, buf, true, fds, r) {
            schedstat::collect(buf, &f.schedstat.path, out, r);
        }
        if o.cpu_frequency || o.cpu_throttles {
            cpufreq::collect(
                &f.sys_cpu,
                o.cpu_frequency,
                o.cpu_throttles,
                &mut self.sys,
                out,
                r,
            );
        }
        if o.load_avg && read_into(&mut f.loadavg, buf, false, fds, r) {
            loadavg::collect(buf, &f.loadavg.path, out, r);
        }
        if o.memory && read_into(&mut f.meminfo, buf, false, fds, r) {
            meminfo::collect(buf, &f.meminfo.path, out, r);
        }
        if o.vmstat && read_into(&mut f.vmstat, buf, false, fds, r) {
            vmstat::collect(buf, &f.vmstat.path, out, r);
        }
        if o.disk_io && read_into(&mut f.diskstats, buf, false, fds, r) {
            let p = &f.diskstats.path;
            diskstats::collect(buf, p, &self.filters.disks, out, r);
        }
        if o.filesystem
            && let Some(p) = read_mounts(&mut f.mounts, &mut self.mount_table, buf, fds, r)
        {
            filesystem::collect(
                &mut self.mounts,
                &self.mount_table.content,
                p,
                &self.paths,
                &self.filters,
                out,
                r,
            );
        }
        if o.network {
            if let Some(p) = read_pair(&mut f.net_dev, buf, false, fds, r) {
                netdev::collect(buf, p, &self.filters.interfaces, out, r);
            }
            netclass::collect(&f.sys_net, &self.filters.interfaces, &mut self.sys, out, r);
        }
        if o.netstat {
            let mut ns = netstat::Values::default();
            if let Some(p) = read_pair(&mut f.netstat, buf, false, fds, r) {
                ns.parse_pairs(buf, p, r);
            }
            if let Some(p) = read_pair(&mut f.snmp, buf, false, fds, r) {
                ns.parse_pairs(buf, p, r);
            }
            if let Some(p) = read_pair(&mut f.snmp6, buf, true, fds, r) {
                ns.parse_snmp6(buf, p, r);
            }
            ns.emit(out);
        }
        if o.sockstat {
            let mut ss = sockstat::Values::default();
            if let Some(p) = read_pair(&mut f.sockstat, buf, false, fds, r) {
                ss.parse(buf, p, r);
            }
            if let Some(p) = read_pair(&mut f.sockstat6, buf, true, fds, r) {
                ss.parse(buf, p, r);
            }
            ss.emit(self.page_size, out);
        }
        if o.pressure {
            for (i, src) in f.pressure.iter_mut().enumerate() {
                if read_into(src, buf, true, fds, r) {
                    pressure::collect(i, buf, &src.path, out, r);
                }
            }
        }
        if o.thermal {
            thermal::collect(&f.sys_thermal, &mut self.sys, out, r);
        }
        if o.hwmon {
            hwmon::collect(&f.sys_hwmon, &mut self.chips, &mut self.sys, out, r);
        }
        if o.entropy {
            let srcs = [&mut f.entropy_avail, &mut f.poolsize];
            entropy::collect(srcs, buf, fds, out, r);
        }
        if o.filefd && read_value_into(&mut f.file_nr, buf, false, fds, r) {
            filefd::collect(buf, &f.file_nr.path, out, r);
        }
        if o.conntrack {
            conntrack::collect(
                &mut f.conntrack_count,
                &mut f.conntrack_max,
                &mut f.conntrack_stat,
                buf,
                fds,
                out,
                r,
            );
        }
        if o.timex {
            timex::collect(self.timex.as_ref(), out, r);
        }
        self.sys.end_cycle();
        self.last_len = encoded.len() - start_len;
        report
    }
}

impl Collector for NodeCollector {
    fn name(&self) -> &'static str {
        "node_exporter"
    }

    fn collect(&mut self, out: &mut Vec<Metric>) -> CollectReport {
        self.collect_at(crate::unix_now_ns(), out)
    }

    fn collect_encoded(
        &mut self,
        _out: &mut Vec<Metric>,
        encoded: &mut Vec<EncodedMetric>,
    ) -> CollectReport {
        self.collect_encoded_at(crate::unix_now_ns(), encoded)
    }
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions; it only reads a configuration value.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(v).ok().filter(|&p| p > 0).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mounts::{EXCLUDED_FS_TYPES, is_excluded_mountpoint};
    use crate::system::disk::is_excluded_device;

    /// The default patterns must agree with the system collector's hand-written matchers.
    #[test]
    fn default_patterns_match_the_system_collector() {
        let f = Filters::compile(&NodeOptions::default()).expect("defaults compile");
        for d in [
            "ram0",
            "zram1",
            "loop7",
            "fd0",
            "sda1",
            "sda",
            "vdb3",
            "xvda1",
            "xvda",
            "hdc",
            "nvme0n1",
            "nvme0n1p2",
            "dm-0",
            "md127",
            "sr0",
            "mmcblk0p1",
            "sdaa1",
            "loop",
            "nvme0p1",
            "",
        ] {
            assert_eq!(
                f.disks.allows(d.as_bytes()),
                !is_excluded_device(d.as_bytes()),
                "{d}"
            );
        }
        for mp in [
            "/",
            "/dev",
            "/dev/shm",
            "/device",
            "/proc",
            "/procfs",
            "/sys/fs/cgroup",
            "/system",
            "/run",
            "/run/credentials",
            "/run/credentials/x.service",
            "/var/lib/docker",
            "/var/lib/docker/overlay2/a",
            "/var/lib/containers/storage/x",
            "/home",
        ] {
            assert_eq!(
                f.mount_points.allows(mp.as_bytes()),
                !is_excluded_mountpoint(mp.as_bytes()),
                "{mp}"
            );
        }
        for t in EXCLUDED_FS_TYPES {
            assert!(!f.fs_types.allows(t.as_bytes()), "{t}");
        }
        for t in [
            "ext4",
            "xfs",
            "tmpfs",
            "nfs4",
            "fuse.sshfs",
            "cgroupfs",
            "vfat",
        ] {
            assert!(f.fs_types.allows(t.as_bytes()), "{t}");
        }
        assert!(f.interfaces.allows(b"lo") && f.interfaces.allows(b"eth0"));
    }

    #[test]
    fn filters_include_and_exclude() {
        let f = PatternFilter {
            include: Some("^(eth|en)".into()),
            exclude: Some("^eth1$".into()),
        }
        .compile("network_interfaces")
        .expect("compiles");
        assert!(f.allows(b"eth0") && f.allows(b"enp3s0"));
        assert!(!f.allows(b"eth1") && !f.allows(b"lo"));
        let empty = PatternFilter {
            include: Some(String::new()),
            exclude: Some(String::new()),
        }
        .compile("x")
        .expect("compiles");
        assert!(empty.allows(b"anything"), "empty patterns mean unset");
        let bad = NodeOptions {
            mount_points: PatternFilter::exclude("^(/dev"),
            ..NodeOptions::default()
        };
        let e = bad.validate().expect_err("unbalanced parenthesis");
        assert_eq!(e.option, "mount_points_exclude");
        assert!(
            e.to_string()
                .starts_with("collectors.node_exporter.mount_points_exclude")
        );
        assert!(NodeCollector::new(HostPaths::default(), bad).is_err());
    }
}
