//! `collectors.process`: per-process metrics named after the OpenTelemetry semantic
//! conventions (`process.cpu.time`, `process.memory.usage`, ...), with the process's
//! identity as attributes on every point (`process.pid`, `process.parent_pid`,
//! `process.executable.name`, `process.owner`, opt-in `process.command_line`, and
//! `container.id` when the process runs in a container), so one export carries many
//! processes; plus a host summary of every process (counts by state, threads, forks).
//!
//! Cost is the constraint (hosts run thousands of processes, and the peers' scrapers
//! spike 3–7% of a core). One cycle:
//!
//! 1. lists the pid directories of /proc and reads each one's `stat` (the only file read
//!    for every process: it gives the summary and, for the selected, CPU, memory, faults,
//!    threads and start time; `statm` is not read, `stat` has the same rss and vsize);
//! 2. selects: kernel threads out unless `kernel_threads`, then the name, user and
//!    command-line filters, decided once per process (when first seen, or after an exec:
//!    a new command name) and kept with its identity attributes;
//! 3. ranks the selected by CPU used since the last cycle or by resident memory, keeps
//!    `top_n` (if set), then at most `max_processes` (the rest are counted as overflow);
//! 4. reads, for the processes kept only, `io` (`disk_io`, default on), `fd/`
//!    (`file_descriptors`, opt-in) and `status` (`context_switches`, opt-in).
//!
//! The default metric set is the OpenTelemetry Collector process scraper's:
//! `process.cpu.time`, `process.memory.usage`, `process.memory.virtual`,
//! `process.disk.io`. The other metrics from `stat` (`cpu_utilization`, `threads`,
//! `paging_faults`, `uptime`) are opt-in although `stat` is read anyway: each point costs
//! more to build, encode and export than its share of reading the file.
//!
//! With `source: auto` (the default) and the privilege to load it, the numbers of `stat`
//! and `io` come from the eBPF task iterator instead ([`tasks`], `bpf/tfo_task.bpf.c`):
//! one read walks every task of the host in the kernel, about 0.7 µs per process
//! against 4–5 µs for the two files, which were most of a cycle's CPU. The processes are
//! still those of the `/proc` listing (one the walk missed is read from its files), and
//! the values those of the files; when it cannot load, the first cycle says why (one
//! collection error) and the files are read.
//!
//! `stat`, `io` and `status` are read through descriptors kept open between cycles
//! ([`Held`]: it halves their cost), the other files are opened each time; all are
//! parsed by hand from one reused buffer. A process that exits between two reads is
//! skipped without error (counted as `vanished`); a file the agent may not read (another
//! user's `io` or `fd/` without CAP_SYS_PTRACE / CAP_DAC_READ_SEARCH, or hidepid) is
//! counted as `permission_denied` once for the process and not opened again until it
//! execs, and the process's other metrics are still sent. Counters start when the process
//! started.

pub mod fd;
pub mod identity;
pub mod io;
pub mod stat;
pub mod status;
pub mod summary;
mod tasks;

#[cfg(test)]
mod fuzz;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use opentelemetry_proto::tonic::metrics::v1::Metric;
use regex::Regex;

use crate::node::kept::{FdBudget, Permit, pread_spare};
use crate::parse::{excerpt, parse_error};
use crate::table::{MetricDef, Val};
use crate::wire::{EncodedMetric, Points, int_attr, str_attr};
use crate::{CollectError, CollectReport, Collector, Ctx, HostPaths};

pub use identity::DEFAULT_REDACT_PATTERNS;

/// Every metric the process collector can emit, by sub-collector: the source for docs.
pub fn metric_tables() -> Vec<(&'static str, &'static [MetricDef])> {
    vec![
        ("stat", stat::METRICS),
        ("io", io::METRICS),
        ("fd", fd::METRICS),
        ("status", status::METRICS),
        ("summary", summary::METRICS),
    ]
}

/// What `top_n` and `max_processes` rank processes by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TopBy {
    /// CPU time used since the previous cycle (on a process's first cycle: since it started).
    #[default]
    Cpu,
    /// Resident memory.
    Memory,
}

/// Where the per-process numbers of `stat` and `io` come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProcessSource {
    /// The eBPF task iterator (`bpf/tfo_task.bpf.c`: one read for every process) when it
    /// loads (CAP_BPF + CAP_PERFMON or root, kernel BTF, Linux 6.2+, the host's pid
    /// namespace, a real procfs), else the `/proc` files.
    #[default]
    Auto,
    /// The `/proc/<pid>/stat` and `io` files only.
    Procfs,
}

/// The collector's settings (`collectors.process`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessOptions {
    /// Executable names to report; empty: every process.
    pub processes: Vec<String>,
    /// Executable names never reported.
    pub exclude_processes: Vec<String>,
    /// Regexes; when set, only processes whose command line matches one are reported.
    pub include_command_lines: Vec<String>,
    /// Regexes; processes whose command line matches one are not reported.
    pub exclude_command_lines: Vec<String>,
    /// Owners (user names or numeric uids) to report; empty: every owner.
    pub users: Vec<String>,
    /// Owners never reported.
    pub exclude_users: Vec<String>,
    /// Report kernel threads too (they are always in the summary).
    pub kernel_threads: bool,
    /// Report only the `top_n` processes by `top_by` (0: no ranking).
    pub top_n: usize,
    pub top_by: TopBy,
    /// Most processes reported per cycle; the heaviest by `top_by` are kept.
    pub max_processes: usize,
    /// `process.disk.io` (reads `io`).
    pub disk_io: bool,
    /// `process.cpu.utilization` (from `stat`, read anyway: costs only its points).
    pub cpu_utilization: bool,
    /// `process.thread.count` (from `stat`).
    pub threads: bool,
    /// `process.paging.faults` (from `stat`).
    pub paging_faults: bool,
    /// `process.uptime` (from `stat`).
    pub uptime: bool,
    /// `process.unix.file_descriptor.count` (reads `fd/`).
    pub file_descriptors: bool,
    /// `process.context_switches` (reads `status`).
    pub context_switches: bool,
    /// The `process.command_line` attribute (reads `cmdline` once per process).
    pub command_line: bool,
    /// Regexes whose matches (first group, else whole match) are replaced in the command line.
    pub redact_patterns: Vec<String>,
    /// Where `stat` and `io`'s numbers come from.
    pub source: ProcessSource,
}

impl Default for ProcessOptions {
    fn default() -> Self {
        ProcessOptions {
            processes: Vec::new(),
            exclude_processes: Vec::new(),
            include_command_lines: Vec::new(),
            exclude_command_lines: Vec::new(),
            users: Vec::new(),
            exclude_users: Vec::new(),
            kernel_threads: false,
            top_n: 0,
            top_by: TopBy::Cpu,
            max_processes: 1000,
            disk_io: true,
            cpu_utilization: false,
            threads: false,
            paging_faults: false,
            uptime: false,
            file_descriptors: false,
            context_switches: false,
            command_line: false,
            redact_patterns: DEFAULT_REDACT_PATTERNS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            source: ProcessSource::Auto,
        }
    }
}

/// A regex in the options that does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("collectors.process.{option}: {reason}")]
pub struct ProcessOptionsError {
    pub option: &'static str,
    pub reason: String,
}

fn compile(option: &'static str, patterns: &[String]) -> Result<Vec<Regex>, ProcessOptionsError> {
    patterns
        .iter()
        .map(|p| {
            Regex::new(p).map_err(|e| ProcessOptionsError {
                option,
                reason: e.to_string(),
            })
        })
        .collect()
}

/// Longest command line kept, in bytes.
const MAX_COMMAND_LINE: usize = 4096;
/// The kernel keeps 15 bytes of a command name.
const COMM_LEN: usize = 15;

/// The selection, compiled.
#[derive(Debug)]
struct Select {
    names: Vec<Vec<u8>>,
    exclude_names: Vec<Vec<u8>>,
    include_cmd: Vec<Regex>,
    exclude_cmd: Vec<Regex>,
    users: Vec<String>,
    exclude_users: Vec<String>,
    redact: Vec<Regex>,
}

/// A name as the kernel stores it: at most 15 bytes.
fn comm_of(name: &str) -> Vec<u8> {
    name.as_bytes()[..name.len().min(COMM_LEN)].to_vec()
}

impl Select {
    fn needs_command_line(&self) -> bool {
        !self.include_cmd.is_empty() || !self.exclude_cmd.is_empty()
    }

    fn keeps(&self, comm: &[u8], owner: &str, uid: u32, cmdline: &str) -> bool {
        let comm = &comm[..comm.len().min(COMM_LEN)];
        if !self.names.is_empty() && !self.names.iter().any(|n| n == comm) {
            return false;
        }
        if self.exclude_names.iter().any(|n| n == comm) {
            return false;
        }
        let is_user = |u: &String| u == owner || u.parse::<u32>() == Ok(uid);
        if !self.users.is_empty() && !self.users.iter().any(is_user) {
            return false;
        }
        if self.exclude_users.iter().any(is_user) {
            return false;
        }
        if !self.include_cmd.is_empty() && !self.include_cmd.iter().any(|r| r.is_match(cmdline)) {
            return false;
        }
        !self.exclude_cmd.iter().any(|r| r.is_match(cmdline))
    }
}

/// What the collector keeps about a process between cycles.
#[derive(Debug)]
struct Entry {
    /// Start time (ticks after boot), command name and parent: a change in any is a new
    /// process (pid reuse) or an exec, and the identity is built again.
    start: u64,
    comm: Vec<u8>,
    ppid: i64,
    selected: bool,
    /// Identity attributes of every point, encoded once ([`crate::wire`]): a point
    /// copies these bytes (empty when not selected).
    attrs: Vec<u8>,
    /// `(utime, stime, time_ns)` of the previous cycle.
    prev: Option<(u64, u64, u64)>,
    /// From the task iterator ([`tasks`]): the adjusted (utime, stime) in ns and
    /// (read_bytes, write_bytes, minflt, majflt) last reported, the floors that keep
    /// them from going back.
    cpu_ns: Option<(u64, u64)>,
    floor: [u64; 4],
    /// The cycle that last saw the process.
    seen: u64,
    /// `stat`, `io` and `status` kept open between cycles (see [`Held`]).
    stat_fd: Option<Held>,
    io_fd: Option<Held>,
    status_fd: Option<Held>,
    /// Files of this process found permission-denied ([`DENIED_IO`], ...): not opened
    /// again, nor counted again, until the process execs (its credentials can change
    /// only then, short of a setuid call) or its pid names another process.
    denied: u8,
}

const DENIED_IO: u8 = 1;
const DENIED_FD: u8 = 2;
const DENIED_STATUS: u8 = 4;

/// A per-process file kept open between cycles and re-read with `pread(fd, .., 0)`:
/// procfs regenerates a seq_file at offset 0, and a read through a kept descriptor skips
/// the path walk, the permission check at open and the allocation and release of the
/// `struct file` and its seq_file buffer: measured here (1,000 sleepers), `stat` costs
/// 4.7 µs that way against 9.4 µs for open/read/close, `io` 2.7 µs against 8.5 µs,
/// `status` 11 µs against 17 µs.
///
/// A kept descriptor stays bound to its process, not to the pid: once the process is
/// reaped, reading it fails (ESRCH), and the path is opened afresh, which finds the
/// pid's new process, if any. Kept only on a real procfs (a fixture tree's files can be
/// replaced under a descriptor) and within [`MAX_KEPT_FDS`], or a quarter of the soft
/// RLIMIT_NOFILE when that is lower (the node collector may keep up to half). Each pins
/// its seq_file buffer, a page of kernel memory.
#[derive(Debug)]
struct Held {
    file: File,
    _permit: Permit,
}

/// Most descriptors the process collector keeps open between cycles: `stat`, `io` and
/// `status` of 1,000 processes and change (two per process with the default set).
pub const MAX_KEPT_FDS: usize = 4096;

/// Reads a whole per-process file from offset 0 into `buf` (at most about 1 MiB: no
/// per-process file is larger). A seq_file generates its content whole at the first
/// read, so a read shorter than the room offered is the end: one `pread` per file.
fn read_whole(f: &File, buf: &mut Vec<u8>) -> std::io::Result<()> {
    const ROOM: usize = 8 << 10;
    const MAX: usize = 1 << 20;
    buf.clear();
    let mut want = ROOM;
    loop {
        let off = buf.len() as u64;
        let n = pread_spare(f, buf, want, off).inspect_err(|_| buf.clear())?;
        if n < want || buf.len() >= MAX {
            return Ok(());
        }
        want = buf.len();
    }
}

/// Reads `path` through the descriptor kept in `held`, or opens it when none is kept or
/// the kept one fails (its process was reaped). Returns the freshly opened file, for the
/// caller to keep.
fn read_kept(
    held: &mut Option<Held>,
    path: &[u8],
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<File>> {
    if let Some(h) = held {
        if read_whole(&h.file, buf).is_ok() {
            return Ok(None);
        }
        *held = None;
    }
    let f = File::open(Path::new(OsStr::from_bytes(path)))?;
    read_whole(&f, buf)?;
    Ok(Some(f))
}

/// A selected process of this cycle.
#[derive(Debug, Clone, Copy)]
struct Cand {
    pid: u32,
    st: stat::Stat,
    /// What `top_by` ranks.
    rank: u64,
    /// `(utime, stime, time_ns)` of the previous cycle.
    prev: Option<(u64, u64, u64)>,
    /// `(read_bytes, write_bytes)` from the task iterator (else `io` is read).
    io: Option<(u64, u64)>,
}

/// Why a file could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fail {
    /// The process exited (ENOENT, ESRCH).
    Vanished,
    /// EACCES, EPERM.
    Denied,
    Other,
}

fn fail(e: &std::io::Error) -> Fail {
    match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ESRCH) => Fail::Vanished,
        Some(libc::EACCES) | Some(libc::EPERM) => Fail::Denied,
        _ if e.kind() == std::io::ErrorKind::NotFound => Fail::Vanished,
        _ if e.kind() == std::io::ErrorKind::PermissionDenied => Fail::Denied,
        _ => Fail::Other,
    }
}

/// Opens a per-process file and reads it whole ([`read_whole`]), for the files not kept.
fn read_path(path: &[u8], buf: &mut Vec<u8>) -> std::io::Result<()> {
    buf.clear();
    let f = File::open(Path::new(OsStr::from_bytes(path)))?;
    read_whole(&f, buf)
}

/// Counts of one cycle's skipped files and unparseable ones, reported once per cycle.
#[derive(Debug, Default)]
struct Tally {
    vanished: u64,
    denied: u64,
    overflow: u64,
    /// Per file name: (count, first path and reason).
    bad: Vec<(&'static str, u64, String)>,
}

impl Tally {
    fn bad(&mut self, file: &'static str, path: &[u8], why: impl FnOnce() -> String) {
        match self.bad.iter_mut().find(|(f, _, _)| *f == file) {
            Some((_, n, _)) => *n += 1,
            None => self.bad.push((
                file,
                1,
                format!("{}: {}", String::from_utf8_lossy(path), why()),
            )),
        }
    }
}

/// Indexes of the per-cycle point vectors.
const N_METRICS: usize = 10;
const IO: usize = 7;
const FD: usize = 8;
const SWITCHES: usize = 9;

fn def(i: usize) -> &'static MetricDef {
    match i {
        IO => &io::METRICS[0],
        FD => &fd::METRICS[0],
        SWITCHES => &status::METRICS[0],
        _ => &stat::METRICS[i],
    }
}

/// The attributes that tell a metric's points of one process apart, encoded once.
#[derive(Debug)]
struct Extras {
    user: Vec<u8>,
    system: Vec<u8>,
    read: Vec<u8>,
    write: Vec<u8>,
    major: Vec<u8>,
    minor: Vec<u8>,
    voluntary: Vec<u8>,
    involuntary: Vec<u8>,
}

impl Extras {
    fn new() -> Extras {
        let enc = |k: &str, v: &str| {
            let mut b = Vec::new();
            str_attr(&mut b, k, v);
            b
        };
        Extras {
            user: enc("cpu.mode", "user"),
            system: enc("cpu.mode", "system"),
            read: enc("disk.io.direction", "read"),
            write: enc("disk.io.direction", "write"),
            major: enc("system.paging.fault.type", "major"),
            minor: enc("system.paging.fault.type", "minor"),
            voluntary: enc("process.context_switch.type", "voluntary"),
            involuntary: enc("process.context_switch.type", "involuntary"),
        }
    }
}

/// The `collectors.process` collector.
pub struct ProcessCollector {
    proc_dir: PathBuf,
    passwd: PathBuf,
    /// `<proc>/` as bytes; per-process paths are built after it in `path`.
    prefix: Vec<u8>,
    path: Vec<u8>,
    buf: Vec<u8>,
    opts: ProcessOptions,
    select: Select,
    procs: HashMap<u32, Entry>,
    users: identity::Users,
    hz: u64,
    page_size: u64,
    cpus: u64,
    /// The fd directory's size is its count (real procfs, Linux 6.2+).
    procfs: bool,
    boot_ns: Option<u64>,
    /// `(processes, time_ns)` of the previous cycle, for the fork rate.
    prev_forks: Option<(u64, u64)>,
    cycle: u64,
    pids: Vec<u32>,
    cands: Vec<Cand>,
    /// `io` does not exist on this kernel (no task I/O accounting): reported once.
    io_missing: bool,
    /// Bounds the descriptors kept in [`Entry::stat_fd`], [`Entry::io_fd`] and
    /// [`Entry::status_fd`].
    budget: FdBudget,
    /// This cycle's points, one buffer per metric (by the `N_METRICS` indexes), kept
    /// with their capacity from cycle to cycle.
    points: Vec<Points>,
    extras: Extras,
    /// The task iterator, when [`ProcessSource::Auto`] could load it.
    walker: Option<tasks::Walker>,
    /// The last walk's processes, kept with its capacity.
    walked: Vec<tfo_ebpf::tasks::TaskProcess>,
    /// Why the task iterator is not used, reported once (an error of the first cycle).
    fallback: Option<String>,
}

impl std::fmt::Debug for ProcessCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessCollector")
            .field("proc_dir", &self.proc_dir)
            .field("opts", &self.opts)
            .field("tracked", &self.procs.len())
            .finish_non_exhaustive()
    }
}

impl ProcessCollector {
    pub fn new(paths: HostPaths, opts: ProcessOptions) -> Result<Self, ProcessOptionsError> {
        let select = Select {
            names: opts.processes.iter().map(|n| comm_of(n)).collect(),
            exclude_names: opts.exclude_processes.iter().map(|n| comm_of(n)).collect(),
            include_cmd: compile("include_command_lines", &opts.include_command_lines)?,
            exclude_cmd: compile("exclude_command_lines", &opts.exclude_command_lines)?,
            users: opts.users.clone(),
            exclude_users: opts.exclude_users.clone(),
            redact: compile("redact_patterns", &opts.redact_patterns)?,
        };
        let mut prefix = paths.proc.as_os_str().as_bytes().to_vec();
        if prefix.last() != Some(&b'/') {
            prefix.push(b'/');
        }
        // SAFETY: sysconf has no preconditions; it only reads configuration values.
        let (page, cpus) = unsafe {
            (
                libc::sysconf(libc::_SC_PAGESIZE),
                libc::sysconf(libc::_SC_NPROCESSORS_ONLN),
            )
        };
        let procfs = fd::is_procfs(&paths.proc);
        let (walker, fallback) = match opts.source {
            ProcessSource::Procfs => (None, None),
            ProcessSource::Auto if !procfs => (None, None),
            ProcessSource::Auto => match tasks::Walker::open() {
                Ok(w) => {
                    tracing::info!(
                        "collectors.process: stat and io numbers from the eBPF task iterator \
                         (one read for every process)"
                    );
                    (Some(w), None)
                }
                Err(why) => (None, Some(why)),
            },
        };
        Ok(ProcessCollector {
            procfs,
            proc_dir: paths.proc.clone(),
            passwd: paths.rooted("/etc/passwd"),
            path: Vec::with_capacity(prefix.len() + 32),
            prefix,
            buf: Vec::with_capacity(8 << 10),
            opts,
            select,
            procs: HashMap::new(),
            users: identity::Users::default(),
            hz: crate::system::cpu::user_hz(),
            page_size: u64::try_from(page).ok().filter(|&p| p > 0).unwrap_or(4096),
            cpus: u64::try_from(cpus).ok().filter(|&c| c > 0).unwrap_or(1),
            boot_ns: None,
            prev_forks: None,
            cycle: 0,
            pids: Vec::new(),
            cands: Vec::new(),
            io_missing: false,
            budget: FdBudget::with_max(MAX_KEPT_FDS.min(soft_nofile() / 4)),
            points: (0..N_METRICS).map(|i| Points::new(def(i))).collect(),
            extras: Extras::new(),
            walker,
            walked: Vec::new(),
            fallback,
        })
    }

    /// Overrides USER_HZ, the page size and the CPU count (fixture trees).
    pub fn with_host(mut self, user_hz: u64, page_size: u64, cpus: u64) -> Self {
        self.hz = user_hz.max(1);
        self.page_size = page_size.max(1);
        self.cpus = cpus.max(1);
        self
    }

    /// Processes whose identity and previous sample are kept.
    pub fn tracked(&self) -> usize {
        self.procs.len()
    }

    /// Whether `stat` and `io`'s numbers come from the eBPF task iterator; else why not
    /// (`None`: `/proc` by choice, `source: procfs`, or a tree that is not a procfs).
    pub fn task_iterator(&self) -> Result<(), Option<&str>> {
        match (&self.walker, &self.fallback) {
            (Some(_), _) => Ok(()),
            (None, why) => Err(why.as_deref()),
        }
    }

    /// Descriptors kept open between cycles (at most [`MAX_KEPT_FDS`]).
    pub fn kept_descriptors(&self) -> usize {
        self.budget.open()
    }

    /// `file`, kept if this is a real procfs and the budget allows.
    /// Reads `<proc>/<pid>/<file>` into `self.buf` through the process's kept descriptor
    /// (`slot` picks it from the entry) when it has one, else by path, keeping the newly
    /// opened file when the budget allows.
    fn read_tracked(
        &mut self,
        pid: u32,
        file: &str,
        slot: fn(&mut Entry) -> &mut Option<Held>,
    ) -> std::io::Result<()> {
        set_path(&mut self.path, &self.prefix, pid, file);
        let fresh = match self.procs.get_mut(&pid) {
            Some(e) => read_kept(slot(e), &self.path, &mut self.buf)?,
            None => {
                read_path(&self.path, &mut self.buf)?;
                None
            }
        };
        let kept = fresh.and_then(|f| self.keep(f));
        if let Some(e) = self.procs.get_mut(&pid)
            && kept.is_some()
        {
            *slot(e) = kept;
        }
        Ok(())
    }

    fn keep(&self, file: File) -> Option<Held> {
        if !self.procfs {
            return None;
        }
        let permit = self.budget.acquire()?;
        Some(Held {
            file,
            _permit: permit,
        })
    }

    /// `<proc>/<pid>/<file>` (file empty: the pid directory) into `self.path`.
    fn set_path(&mut self, pid: u32, file: &str) {
        set_path(&mut self.path, &self.prefix, pid, file);
    }

    /// One collection cycle with the given timestamp (ns since the epoch), every metric
    /// as a struct.
    pub fn collect_at(&mut self, now_ns: u64, out: &mut Vec<Metric>) -> CollectReport {
        let at = out.len();
        let mut encoded = Vec::new();
        let mut report = self.collect_encoded_at(now_ns, out, &mut encoded);
        let mut decoded = Vec::with_capacity(encoded.len());
        for e in &encoded {
            match e.decode() {
                Ok(m) => decoded.push(m),
                // Not expected (the collector wrote it): reported, not a panic.
                Err(err) => report.errors.push(CollectError::Parse {
                    path: "<process collector output>".into(),
                    reason: err.to_string(),
                }),
            }
        }
        // Per-process metrics first, then the summary, as before they were encoded.
        out.splice(at..at, decoded);
        report
    }

    /// One collection cycle with the given timestamp: the per-process metrics in the wire
    /// format to `encoded`, the host summary to `out`.
    pub fn collect_encoded_at(
        &mut self,
        now_ns: u64,
        out: &mut Vec<Metric>,
        encoded: &mut Vec<EncodedMetric>,
    ) -> CollectReport {
        let mut report = CollectReport::default();
        let mut tally = Tally::default();
        self.cycle += 1;
        self.users.new_cycle();

        // /proc/stat: the boot time (once) and the fork counter.
        let stat_path = self.proc_dir.join("stat");
        let mut forks = None;
        match crate::parse::read_file(&stat_path, &mut self.buf) {
            Ok(()) => {
                let (btime, processes) = summary::parse_proc_stat(&self.buf);
                if self.boot_ns.is_none() {
                    self.boot_ns = btime.and_then(|b| b.checked_mul(1_000_000_000));
                }
                forks = processes;
                if btime.is_none() || processes.is_none() {
                    report
                        .errors
                        .push(parse_error(&stat_path, "no btime or processes line"));
                }
            }
            Err(e) => report.errors.push(e),
        }
        let boot_ns = self.boot_ns.unwrap_or(0);

        if self.cycle == 1
            && let Some(why) = &self.fallback
        {
            report.errors.push(CollectError::Parse {
                path: "<eBPF task iterator>".into(),
                reason: format!(
                    "not used, reading /proc/<pid>/stat and io instead (set \
                     collectors.process.source: procfs to not try): {why}"
                ),
            });
        }
        // One walk of every task, before the listing: a process started in between is
        // read from its files.
        let mut walked = std::mem::take(&mut self.walked);
        match self.walker.as_mut().map(|w| w.walk(&mut walked)) {
            Some(Ok(())) | None => {}
            Some(Err(why)) => {
                walked.clear();
                self.walker = None;
                report.errors.push(CollectError::Parse {
                    path: "<eBPF task iterator>".into(),
                    reason: format!("{why}; reading /proc/<pid>/stat and io from now on"),
                });
                // task_iterator() says why (None would mean "by choice").
                self.fallback = Some(why);
            }
        }

        self.pids.clear();
        match std::fs::read_dir(&self.proc_dir) {
            Ok(rd) => {
                for e in rd.flatten() {
                    if let Some(pid) = crate::parse::parse_u64(e.file_name().as_bytes())
                        .and_then(|p| u32::try_from(p).ok())
                    {
                        self.pids.push(pid);
                    }
                }
            }
            Err(source) => {
                report.errors.push(CollectError::Io {
                    path: self.proc_dir.display().to_string(),
                    source,
                });
                return report;
            }
        }
        self.pids.sort_unstable();

        let mut sum = summary::Summary::default();
        self.cands.clear();
        let pids = std::mem::take(&mut self.pids);
        let mut next_walked = 0;
        for &pid in &pids {
            // Both lists are by pid: the walk's entry for this pid, if it saw it.
            while next_walked < walked.len() && walked[next_walked].pid < pid {
                next_walked += 1;
            }
            let task = walked.get(next_walked).filter(|t| t.pid == pid);
            let mut fresh = None;
            let mut from_walk = None;
            let mut comm: &[u8] = b"";
            let st = if let Some(t) = task {
                comm = t.comm();
                let (prev_cpu, floor) = match self.procs.get(&pid) {
                    Some(e) if e.start == tasks::start_ticks(t, self.hz) => (e.cpu_ns, e.floor),
                    _ => (None, [0; 4]),
                };
                let w = tasks::Walked::new(t, prev_cpu, floor, self.hz, self.page_size);
                from_walk = Some(w);
                w.stat
            } else {
                self.set_path(pid, "stat");
                let mut unkept = None;
                let held = match self.procs.get_mut(&pid) {
                    Some(e) => &mut e.stat_fd,
                    None => &mut unkept,
                };
                fresh = match read_kept(held, &self.path, &mut self.buf) {
                    Ok(f) => f,
                    Err(e) => {
                        match fail(&e) {
                            Fail::Vanished => tally.vanished += 1,
                            Fail::Denied => tally.denied += 1,
                            Fail::Other => tally.bad("stat", &self.path, || e.to_string()),
                        }
                        continue;
                    }
                };
                let Some(st) = stat::parse(&self.buf, &mut comm) else {
                    let line = excerpt(&self.buf);
                    tally.bad("stat", &self.path, || format!("malformed line {line}"));
                    continue;
                };
                st
            };
            sum.add(st.state, st.threads);
            if st.kernel_thread && !self.opts.kernel_threads {
                continue;
            }
            // The common case, a process already known: no allocation.
            let cycle = self.cycle;
            let known = self.procs.get_mut(&pid).is_some_and(|e| {
                let same = e.start == st.starttime && e.comm == comm && e.ppid == st.ppid;
                if same {
                    e.seen = cycle;
                }
                same
            });
            if !known {
                let comm = comm.to_vec();
                // Read through a kept descriptor: the same process (it exec'd or was
                // reparented), whose descriptor stays good.
                let carried = self.procs.get_mut(&pid).and_then(|e| e.stat_fd.take());
                match self.identify(pid, &st, comm) {
                    Some(mut e) => {
                        e.stat_fd = carried;
                        self.procs.insert(pid, e);
                    }
                    None => {
                        tally.vanished += 1;
                        self.procs.remove(&pid);
                        continue;
                    }
                }
            }
            // A pid the walk missed is read from its file once; its descriptor is kept
            // only when the files are the source (the walk serves it from the next cycle).
            let kept = fresh
                .filter(|_| self.walker.is_none())
                .and_then(|f| self.keep(f));
            let Some(e) = self.procs.get_mut(&pid) else {
                continue;
            };
            if kept.is_some() {
                e.stat_fd = kept;
            }
            if !e.selected {
                continue;
            }
            let used = st.utime.saturating_add(st.stime);
            let rank = match self.opts.top_by {
                TopBy::Cpu => match e.prev {
                    Some((u, s, _)) => used.saturating_sub(u.saturating_add(s)),
                    None => used,
                },
                TopBy::Memory => st.rss,
            };
            let prev = e.prev.replace((st.utime, st.stime, now_ns));
            let mut io = None;
            if let Some(w) = from_walk {
                e.cpu_ns = Some(w.cpu_ns);
                e.floor = [w.io.0, w.io.1, st.minflt, st.majflt];
                let walk_io = self.walker.as_ref().is_some_and(|w| w.io);
                io = (self.opts.disk_io && walk_io).then_some(w.io);
            }
            self.cands.push(Cand {
                pid,
                st,
                rank,
                prev,
                io,
            });
        }
        walked.clear();
        self.walked = walked;
        self.pids = pids;
        let cycle = self.cycle;
        self.procs.retain(|_, e| e.seen == cycle);

        // Heaviest first, pid as the tie-break so the choice is stable.
        let heavier = |a: &Cand, b: &Cand| b.rank.cmp(&a.rank).then(a.pid.cmp(&b.pid));
        if self.opts.top_n > 0 && self.cands.len() > self.opts.top_n {
            self.cands.select_nth_unstable_by(self.opts.top_n, heavier);
            self.cands.truncate(self.opts.top_n);
        }
        let max = self.opts.max_processes.max(1);
        if self.cands.len() > max {
            tally.overflow = (self.cands.len() - max) as u64;
            self.cands.select_nth_unstable_by(max, heavier);
            self.cands.truncate(max);
        }
        self.cands.sort_unstable_by_key(|c| c.pid);

        let cands = std::mem::take(&mut self.cands);
        for c in &cands {
            self.emit_process(c, now_ns, boot_ns, &mut tally, &mut report);
        }
        self.cands = cands;
        encoded.extend(self.points.iter_mut().filter_map(Points::finish));

        let rate = match (forks, self.prev_forks) {
            (Some(now), Some((before, t))) if now_ns > t && now >= before => {
                Some((now - before) as f64 / ((now_ns - t) as f64 / 1e9))
            }
            _ => None,
        };
        self.prev_forks = forks.map(|f| (f, now_ns));
        let host = Ctx { now_ns, boot_ns };
        sum.emit(forks, rate, &host, out);

        for (reason, n) in [
            ("vanished", tally.vanished),
            ("permission_denied", tally.denied),
            ("overflow", tally.overflow),
        ] {
            if n > 0 {
                report.skipped.push((reason, n));
            }
        }
        for (file, n, first) in tally.bad {
            report.errors.push(CollectError::Parse {
                path: format!("<proc>/<pid>/{file}"),
                reason: format!("{n} process(es) skipped, first: {first}"),
            });
        }
        report
    }

    /// Reads what identifies a new process and decides whether it is reported. `None`:
    /// it exited meanwhile.
    fn identify(&mut self, pid: u32, st: &stat::Stat, comm: Vec<u8>) -> Option<Entry> {
        self.set_path(pid, "");
        // The pid directory belongs to the process's effective uid (root for a process
        // that is not dumpable, e.g. after a setuid exec).
        let uid = match std::fs::metadata(Path::new(OsStr::from_bytes(&self.path))) {
            Ok(m) => m.uid(),
            Err(_) => return None,
        };
        let owner = self.users.name(uid, &self.passwd, &mut self.buf);
        let mut cmdline = String::new();
        if self.opts.command_line || self.select.needs_command_line() {
            self.set_path(pid, "cmdline");
            match read_path(&self.path, &mut self.buf) {
                Ok(()) => cmdline = identity::command_line(&self.buf, MAX_COMMAND_LINE),
                Err(e) if fail(&e) == Fail::Vanished => return None,
                // Another user's cmdline is world-readable; anything else leaves it empty.
                Err(_) => {}
            }
        }
        let mut e = Entry {
            start: st.starttime,
            ppid: st.ppid,
            selected: self.select.keeps(&comm, &owner, uid, &cmdline),
            comm,
            attrs: Vec::new(),
            prev: None,
            cpu_ns: None,
            floor: [0; 4],
            seen: self.cycle,
            stat_fd: None,
            io_fd: None,
            status_fd: None,
            denied: 0,
        };
        if !e.selected {
            return Some(e);
        }
        let mut attrs = Vec::new();
        int_attr(&mut attrs, "process.pid", i64::from(pid));
        int_attr(&mut attrs, "process.parent_pid", st.ppid);
        str_attr(
            &mut attrs,
            "process.executable.name",
            &crate::parse::lossy(&e.comm),
        );
        str_attr(&mut attrs, "process.owner", &owner);
        if self.opts.command_line {
            let redacted = identity::redact(&cmdline, &self.select.redact);
            str_attr(&mut attrs, "process.command_line", &redacted);
        }
        self.set_path(pid, "cgroup");
        if read_path(&self.path, &mut self.buf).is_ok()
            && let Some(id) = identity::container_id(&self.buf)
        {
            str_attr(&mut attrs, "container.id", &id);
        }
        attrs.shrink_to_fit();
        e.attrs = attrs;
        Some(e)
    }

    /// Reads the optional files of one kept process and appends its points.
    fn emit_process(
        &mut self,
        c: &Cand,
        now_ns: u64,
        boot_ns: u64,
        tally: &mut Tally,
        report: &mut CollectReport,
    ) {
        let pid = c.pid;
        // Optional files first: a process that exits meanwhile is skipped whole.
        let mut io_v = c.io;
        if io_v.is_none()
            && self.opts.disk_io
            && !self.io_missing
            && self.denied(pid) & DENIED_IO == 0
        {
            match self.read_tracked(pid, "io", |e| &mut e.io_fd) {
                Ok(()) => match io::parse(&self.buf) {
                    Some(v) => io_v = Some(v),
                    None => {
                        let line = excerpt(&self.buf);
                        tally.bad("io", &self.path, || format!("malformed {line}"));
                    }
                },
                Err(e) => match fail(&e) {
                    // Gone with its directory, or between two reads: skipped.
                    Fail::Vanished if !self.alive(pid) || self.has_own_io() => {
                        tally.vanished += 1;
                        return;
                    }
                    Fail::Vanished => {
                        self.io_missing = true;
                        report.errors.push(parse_error(
                            Path::new(OsStr::from_bytes(&self.path)),
                            "missing while the process exists: this kernel has no task I/O \
                             accounting; process.disk.io is not collected",
                        ));
                    }
                    Fail::Denied => self.deny(pid, DENIED_IO, tally),
                    Fail::Other => tally.bad("io", &self.path, || e.to_string()),
                },
            }
        }
        let mut fds = None;
        if self.opts.file_descriptors && self.denied(pid) & DENIED_FD == 0 {
            self.set_path(pid, "fd");
            match fd::count(Path::new(OsStr::from_bytes(&self.path)), self.procfs) {
                Ok(n) => fds = Some(n),
                Err(e) => match fail(&e) {
                    Fail::Vanished => {
                        tally.vanished += 1;
                        return;
                    }
                    Fail::Denied => self.deny(pid, DENIED_FD, tally),
                    Fail::Other => tally.bad("fd", &self.path, || e.to_string()),
                },
            }
        }
        let mut switches = None;
        if self.opts.context_switches && self.denied(pid) & DENIED_STATUS == 0 {
            match self.read_tracked(pid, "status", |e| &mut e.status_fd) {
                Ok(()) => match status::parse(&self.buf) {
                    Some(v) => switches = Some(v),
                    None => tally.bad("status", &self.path, || {
                        "no voluntary_ctxt_switches / nonvoluntary_ctxt_switches lines".into()
                    }),
                },
                Err(e) => match fail(&e) {
                    Fail::Vanished => {
                        tally.vanished += 1;
                        return;
                    }
                    Fail::Denied => self.deny(pid, DENIED_STATUS, tally),
                    Fail::Other => tally.bad("status", &self.path, || e.to_string()),
                },
            }
        }
        let Some(e) = self.procs.get(&pid) else {
            return;
        };
        let st = &c.st;
        let hz = self.hz as f64;
        let start_ns = boot_ns.saturating_add(
            u64::try_from(u128::from(st.starttime) * 1_000_000_000 / u128::from(self.hz))
                .unwrap_or(u64::MAX),
        );
        // Counters start when the process did.
        let ctx = Ctx {
            now_ns,
            boot_ns: start_ns,
        };
        let x = &self.extras;
        let pts = &mut self.points;
        let mut add = |i: usize, extra: &[u8], v: Val| {
            pts[i].point(&[&e.attrs, extra], v, &ctx);
        };
        add(stat::CPU_TIME, &x.user, Val::F(st.utime as f64 / hz));
        add(stat::CPU_TIME, &x.system, Val::F(st.stime as f64 / hz));
        if let Some((u, s, t)) = c.prev
            && self.opts.cpu_utilization
            && now_ns > t
            && st.utime >= u
            && st.stime >= s
        {
            let capacity = (now_ns - t) as f64 / 1e9 * hz * self.cpus as f64;
            for (mode, d) in [(&x.user, st.utime - u), (&x.system, st.stime - s)] {
                add(
                    stat::CPU_UTILIZATION,
                    mode,
                    Val::F((d as f64 / capacity).clamp(0.0, 1.0)),
                );
            }
        }
        add(
            stat::MEMORY_USAGE,
            &[],
            Val::U(st.rss.saturating_mul(self.page_size)),
        );
        add(stat::MEMORY_VIRTUAL, &[], Val::U(st.vsize));
        if self.opts.threads {
            add(stat::THREADS, &[], Val::U(st.threads));
        }
        if self.opts.paging_faults {
            add(stat::FAULTS, &x.major, Val::U(st.majflt));
            add(stat::FAULTS, &x.minor, Val::U(st.minflt));
        }
        if self.opts.uptime {
            add(
                stat::UPTIME,
                &[],
                Val::F(now_ns.saturating_sub(start_ns) as f64 / 1e9),
            );
        }
        if let Some((r, w)) = io_v {
            add(IO, &x.read, Val::U(r));
            add(IO, &x.write, Val::U(w));
        }
        if let Some(n) = fds {
            add(FD, &[], Val::U(n));
        }
        if let Some((v, i)) = switches {
            add(SWITCHES, &x.voluntary, Val::U(v));
            add(SWITCHES, &x.involuntary, Val::U(i));
        }
    }

    /// The files of `pid` found permission-denied ([`Entry::denied`]).
    fn denied(&self, pid: u32) -> u8 {
        self.procs.get(&pid).map_or(0, |e| e.denied)
    }

    /// Counts a denied file once per process, and remembers it so it is not opened again.
    fn deny(&mut self, pid: u32, file: u8, tally: &mut Tally) {
        tally.denied += 1;
        if let Some(e) = self.procs.get_mut(&pid) {
            e.denied |= file;
        }
    }

    /// Whether `<proc>/self/io` exists: the kernel has task I/O accounting.
    fn has_own_io(&self) -> bool {
        self.proc_dir.join("self/io").exists()
    }

    /// Whether the pid directory still exists.
    fn alive(&mut self, pid: u32) -> bool {
        self.set_path(pid, "");
        Path::new(OsStr::from_bytes(&self.path)).exists()
    }
}

fn set_path(path: &mut Vec<u8>, prefix: &[u8], pid: u32, file: &str) {
    use std::io::Write;
    path.clear();
    path.extend_from_slice(prefix);
    let _ = write!(path, "{pid}");
    if !file.is_empty() {
        path.push(b'/');
        path.extend_from_slice(file.as_bytes());
    }
}

/// The soft RLIMIT_NOFILE (0 if unknown).
fn soft_nofile() -> usize {
    // SAFETY: rlimit is plain data; getrlimit only writes it.
    let mut rl: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: a valid resource id and a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } == 0 {
        usize::try_from(rl.rlim_cur).unwrap_or(usize::MAX)
    } else {
        0
    }
}

impl Collector for ProcessCollector {
    fn name(&self) -> &'static str {
        "process"
    }

    fn collect(&mut self, out: &mut Vec<Metric>) -> CollectReport {
        self.collect_at(crate::unix_now_ns(), out)
    }

    fn collect_encoded(
        &mut self,
        out: &mut Vec<Metric>,
        encoded: &mut Vec<EncodedMetric>,
    ) -> CollectReport {
        self.collect_encoded_at(crate::unix_now_ns(), out, encoded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-process /proc tree under a fresh temporary directory.
    fn tree(tag: &str) -> PathBuf {
        let root =
            std::env::temp_dir().join(format!("tfo-process-unit-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("proc/42")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("proc/stat"), b"btime 1700000000\nprocesses 9\n").unwrap();
        std::fs::write(root.join("etc/passwd"), b"root:x:0:0::/:/bin/sh\n").unwrap();
        stat(&root, "app");
        std::fs::write(root.join("proc/42/io"), b"read_bytes: 1\nwrite_bytes: 2\n").unwrap();
        root
    }

    fn stat(root: &Path, comm: &str) {
        let line = format!("42 ({comm}) S 1 1 1 0 -1 0 0 0 0 0 5 5 0 0 20 0 1 0 100 4096 1\n");
        std::fs::write(root.join("proc/42/stat"), line).unwrap();
    }

    fn io_points(c: &mut ProcessCollector, errors: usize) -> usize {
        let mut out = Vec::new();
        let r = c.collect_at(1, &mut out);
        assert_eq!(r.errors.len(), errors, "{:?}", r.errors);
        out.iter()
            .filter(|m| m.name == "process.disk.io")
            .map(|m| match &m.data {
                Some(opentelemetry_proto::tonic::metrics::v1::metric::Data::Sum(s)) => {
                    s.data_points.len()
                }
                _ => 0,
            })
            .sum()
    }

    #[test]
    fn a_denied_file_is_not_opened_again_until_the_process_execs() {
        let root = tree("denied");
        let mut c =
            ProcessCollector::new(HostPaths::from_root(&root), ProcessOptions::default()).unwrap();
        assert_eq!(io_points(&mut c, 0), 2);
        // As if reading `io` had answered EACCES: counted once, then left alone, so
        // garbage in it is never seen.
        let mut tally = Tally::default();
        c.deny(42, DENIED_IO, &mut tally);
        assert_eq!(tally.denied, 1);
        std::fs::write(root.join("proc/42/io"), b"garbage").unwrap();
        assert_eq!(io_points(&mut c, 0), 0);
        assert_eq!(io_points(&mut c, 0), 0);
        // After an exec (a new command name) the file is tried again.
        stat(&root, "other");
        assert_eq!(io_points(&mut c, 1), 0);
        // Not on a real procfs: nothing is kept open.
        assert_eq!(c.kept_descriptors(), 0);
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// The identity kept between cycles (encoded attributes) belongs to one process: a
    /// reparented process gets its new parent, and a pid reused by a new process (same
    /// name, another start time and owner) does not inherit the old one's identity.
    #[test]
    fn kept_identity_follows_reparenting_and_pid_reuse() {
        use opentelemetry_proto::tonic::common::v1::any_value::Value;
        use opentelemetry_proto::tonic::metrics::v1::metric::Data;
        let root = tree("identity");
        let write = |ppid: u32, start: u32| {
            let line =
                format!("42 (app) S {ppid} 1 1 0 -1 0 0 0 0 0 5 5 0 0 20 0 1 0 {start} 4096 1\n");
            std::fs::write(root.join("proc/42/stat"), line).unwrap();
        };
        let mut c =
            ProcessCollector::new(HostPaths::from_root(&root), ProcessOptions::default()).unwrap();
        let identity = |c: &mut ProcessCollector| {
            let mut out = Vec::new();
            c.collect_at(1, &mut out);
            let Some(Data::Sum(s)) = &out
                .iter()
                .find(|m| m.name == "process.cpu.time")
                .unwrap()
                .data
            else {
                panic!("not a sum");
            };
            assert_eq!(s.data_points.len(), 2);
            let get = |k: &str| {
                s.data_points[0]
                    .attributes
                    .iter()
                    .find(|kv| kv.key == k)
                    .and_then(|kv| kv.value.clone()?.value)
            };
            (get("process.parent_pid"), get("process.owner"))
        };
        let s = |v: &str| Some(Value::StringValue(v.into()));
        // The fixture's files belong to whoever runs the test; changing their owner
        // needs root, so the owner half runs only as root (as CI runs it).
        // SAFETY: geteuid has no preconditions.
        let as_root = unsafe { libc::geteuid() } == 0;
        let pid_only =
            |(p, o): (Option<Value>, Option<Value>)| if as_root { (p, o) } else { (p, None) };
        let root_owner = if as_root { s("root") } else { None };
        assert_eq!(
            pid_only(identity(&mut c)),
            (Some(Value::IntValue(1)), root_owner.clone())
        );
        write(7, 100);
        assert_eq!(
            pid_only(identity(&mut c)),
            (Some(Value::IntValue(7)), root_owner)
        );
        if as_root {
            // A new process on the same pid, owned by uid 4321 (not in passwd).
            write(7, 900);
            std::os::unix::fs::chown(root.join("proc/42"), Some(4321), None).unwrap();
            assert_eq!(identity(&mut c), (Some(Value::IntValue(7)), s("4321")));
        } else {
            eprintln!("not root: the owner of a reused pid is not checked (chown needs root)");
        }
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// On this host's /proc: `stat`, `io` and `status` of a process are read through
    /// kept descriptors, with the values a fresh read gives, and dropped with the
    /// process, without an error. (Other tests start processes meanwhile, so only this
    /// child's descriptors are looked at.)
    #[test]
    fn live_descriptors_are_kept_and_dropped_with_their_process() {
        let mut kid = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let pid = kid.id();
        let opts = ProcessOptions {
            max_processes: 100_000,
            context_switches: true,
            // The files, not the task iterator.
            source: ProcessSource::Procfs,
            ..ProcessOptions::default()
        };
        let mut c = ProcessCollector::new(HostPaths::default(), opts).unwrap();
        let cycle = |c: &mut ProcessCollector| {
            let mut out = Vec::new();
            let r = c.collect(&mut out);
            assert!(r.errors.is_empty(), "{:?}", r.errors);
            out
        };
        cycle(&mut c);
        let e = &c.procs[&pid];
        assert!(e.stat_fd.is_some() && e.io_fd.is_some() && e.status_fd.is_some());
        let out = cycle(&mut c);
        let vsize: i64 = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap()
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .nth(20)
            .unwrap()
            .parse()
            .unwrap();
        let mine = |p: &&opentelemetry_proto::tonic::metrics::v1::NumberDataPoint| {
            p.attributes.iter().any(|kv| {
                kv.key == "process.pid"
                    && kv.value.as_ref().and_then(|v| v.value.as_ref())
                        == Some(
                            &opentelemetry_proto::tonic::common::v1::any_value::Value::IntValue(
                                i64::from(pid),
                            ),
                        )
            })
        };
        let virt = out
            .iter()
            .find(|m| m.name == "process.memory.virtual")
            .and_then(|m| match &m.data {
                Some(opentelemetry_proto::tonic::metrics::v1::metric::Data::Sum(s)) => {
                    s.data_points.iter().find(mine).cloned()
                }
                _ => None,
            })
            .expect("the child's point");
        assert_eq!(
            virt.value,
            Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(vsize))
        );
        assert!(c.procs[&pid].stat_fd.is_some());
        kid.kill().unwrap();
        kid.wait().unwrap();
        cycle(&mut c);
        assert!(!c.procs.contains_key(&pid));
    }

    /// The child's points: (metric, the attribute that tells its points apart) → value.
    fn values_of(out: &[Metric], pid: u32) -> std::collections::BTreeMap<(String, String), f64> {
        use opentelemetry_proto::tonic::common::v1::any_value::Value;
        use opentelemetry_proto::tonic::metrics::v1::metric::Data;
        use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as V;
        let mut m = std::collections::BTreeMap::new();
        for metric in out {
            let pts = match &metric.data {
                Some(Data::Sum(s)) => &s.data_points,
                Some(Data::Gauge(g)) => &g.data_points,
                _ => continue,
            };
            for p in pts {
                let mut mine = false;
                let mut extra = String::new();
                for kv in &p.attributes {
                    match (
                        kv.key.as_str(),
                        kv.value.as_ref().and_then(|v| v.value.as_ref()),
                    ) {
                        ("process.pid", Some(Value::IntValue(v))) => mine = *v == i64::from(pid),
                        (
                            "cpu.mode" | "disk.io.direction" | "system.paging.fault.type",
                            Some(Value::StringValue(v)),
                        ) => extra = v.clone(),
                        _ => {}
                    }
                }
                if mine {
                    let v = match p.value {
                        Some(V::AsInt(i)) => i as f64,
                        Some(V::AsDouble(d)) => d,
                        None => f64::NAN,
                    };
                    m.insert((metric.name.clone(), extra), v);
                }
            }
        }
        m
    }

    /// As root with kernel BTF (CI), `source: auto` reads `stat` and `io`'s numbers
    /// through the eBPF task iterator, and a process's points carry the values the
    /// files give: a child that wrote 1 MiB with fsync, used some CPU and sleeps,
    /// collected by both sources at the same instant.
    #[test]
    fn the_task_iterator_gives_what_the_files_give() {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let btf = Path::new("/sys/kernel/btf/vmlinux").exists();
        let opts = |source| ProcessOptions {
            max_processes: 100_000,
            threads: true,
            paging_faults: true,
            source,
            ..ProcessOptions::default()
        };
        let mut bpf =
            ProcessCollector::new(HostPaths::default(), opts(ProcessSource::Auto)).unwrap();
        if !(root && btf) {
            eprintln!(
                "\n*** SKIPPED: the task iterator needs root (or CAP_BPF + CAP_PERFMON) and \
                 kernel BTF; scripts/test runs this test as root. Fallback: {:?} ***\n",
                bpf.task_iterator()
            );
            assert!(bpf.task_iterator().is_err());
            return;
        }
        assert_eq!(bpf.task_iterator(), Ok(()), "as root with BTF it must load");
        let mut files =
            ProcessCollector::new(HostPaths::default(), opts(ProcessSource::Procfs)).unwrap();
        assert!(files.task_iterator().is_err());
        let dir = std::env::temp_dir().join(format!("tfo-process-walk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut kid = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "dd if=/dev/zero of={}/f bs=64k count=16 conv=fsync 2>/dev/null; \
                 i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; exec sleep 60",
                dir.display()
            ))
            .spawn()
            .unwrap();
        let pid = kid.id();
        // Until it sleeps (its command name becomes "sleep").
        for _ in 0..500 {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if stat.contains("(sleep) S") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..2 {
            a.clear();
            b.clear();
            let ra = bpf.collect_at(1_700_000_000_000_000_000, &mut a);
            let rb = files.collect_at(1_700_000_000_000_000_000, &mut b);
            assert!(ra.errors.is_empty(), "{:?}", ra.errors);
            assert!(rb.errors.is_empty(), "{:?}", rb.errors);
        }
        let (va, vb) = (values_of(&a, pid), values_of(&b, pid));
        assert_eq!(va.len(), 9, "{va:?}");
        assert_eq!(va, vb);
        assert!(va[&("process.disk.io".into(), "write".into())] >= f64::from(1 << 20));
        assert!(va[&("process.memory.usage".into(), String::new())] > 0.0);
        // The walk keeps no descriptor open: stat and io come from it.
        assert!(bpf.procs[&pid].stat_fd.is_none() && bpf.procs[&pid].io_fd.is_none());
        assert!(files.procs[&pid].stat_fd.is_some());
        kid.kill().unwrap();
        kid.wait().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
