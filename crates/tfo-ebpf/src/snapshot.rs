//! The read API: what the kernel programs have aggregated, as plain Rust values.
//!
//! Every counter is cumulative since the programs were loaded and summed over CPUs (the
//! kernel maps are per-CPU). Latencies are log2 histograms of nanoseconds. Nothing here
//! depends on aya, so this module builds without the `loader` feature.

/// Number of buckets in a [`Log2Hist`].
pub const LOG2_BUCKETS: usize = 64;

/// Slots the kernel programs keep per histogram (`HIST_SLOTS` in `bpf/tfo_common.h`): the
/// last one, index `KERNEL_HIST_SLOTS - 1`, counts every value from `2^(KERNEL_HIST_SLOTS-1)`
/// ns up, so it has no upper bound; the buckets of a [`Log2Hist`] above it are 0.
pub const KERNEL_HIST_SLOTS: usize = 40;

/// A histogram with power-of-two buckets: bucket `i` counts values `v` with
/// `2^i <= v < 2^(i+1)` nanoseconds; bucket 0 also counts 0. The kernel side keeps fewer
/// buckets for some histograms (see the program sources); its last bucket then holds
/// everything above, and the remaining buckets here are 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Log2Hist {
    pub buckets: [u64; LOG2_BUCKETS],
}

impl Default for Log2Hist {
    fn default() -> Self {
        Log2Hist {
            buckets: [0; LOG2_BUCKETS],
        }
    }
}

impl Log2Hist {
    /// Total number of values recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// Exclusive upper bound of bucket `i` in nanoseconds (`2^(i+1)`); `None` for the last
    /// bucket (unbounded).
    pub fn upper_bound(i: usize) -> Option<u64> {
        if i + 1 >= LOG2_BUCKETS {
            None
        } else {
            Some(1u64 << (i + 1))
        }
    }

    /// Adds another histogram bucket by bucket.
    pub fn merge(&mut self, other: &Log2Hist) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *a = a.wrapping_add(*b);
        }
    }

    /// Index of the highest non-empty bucket plus one (0 when empty): the histogram's
    /// bounds need not go further.
    pub fn used_len(&self) -> usize {
        self.buckets
            .iter()
            .rposition(|&c| c != 0)
            .map_or(0, |i| i + 1)
    }
}

/// Everything the programs have aggregated. Categories whose programs are not loaded stay
/// at their defaults (zero); [`Snapshot::programs`] says which ran.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// By syscall number (x86_64 numbering), only numbers seen at least once, ascending.
    pub syscalls: Vec<SyscallStat>,
    pub tcp: TcpStats,
    pub udp: UdpStats,
    pub fileio: FileIoStats,
    pub sched: SchedStats,
    pub memory: MemStats,
    /// One entry per program the loader knows, attached or not.
    pub programs: Vec<ProgramStatus>,
}

/// One syscall number's counters (hooks: `tp_btf/sys_enter` + `tp_btf/sys_exit`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyscallStat {
    /// The syscall number (x86_64 table).
    pub nr: u32,
    /// Its name, when the number is in [`syscall_name`]'s table.
    pub name: Option<&'static str>,
    /// Completed calls (a call is counted at exit; `exit`/`exit_group` never return and
    /// are not counted).
    pub count: u64,
    /// Calls that returned a negative value (-errno).
    pub errors: u64,
    /// Time from entry to exit.
    pub latency: Log2Hist,
}

/// TCP (hooks: `tp_btf/inet_sock_set_state`, `tp_btf/tcp_retransmit_skb`,
/// `tp_btf/sock_send_length`, `tp_btf/sock_recv_length`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TcpStats {
    /// Active opens: transitions CLOSE -> SYN_SENT (a `connect()`).
    pub connects_active: u64,
    /// Passive opens: transitions SYN_RECV -> ESTABLISHED (a connection accepted).
    pub connects_passive: u64,
    /// Active opens that failed: SYN_SENT -> CLOSE.
    pub connects_failed: u64,
    /// Bytes returned by successful send calls on TCP sockets (`sock_sendmsg`), which
    /// includes write()/sendfile()/io_uring sends on sockets.
    pub bytes_sent: u64,
    /// Bytes returned by successful receive calls on TCP sockets (`sock_recvmsg`; MSG_PEEK
    /// excluded).
    pub bytes_received: u64,
    /// Segments retransmitted.
    pub retransmits: u64,
    /// State transitions by (old, new), only pairs seen, ascending.
    pub transitions: Vec<TcpTransition>,
    /// Active connect latency: SYN_SENT -> ESTABLISHED.
    pub connect_latency: Log2Hist,
}

/// A count of TCP state transitions from `old` to `new` (kernel `TCP_*` numbers, see
/// [`tcp_state_name`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TcpTransition {
    pub old: u8,
    pub new: u8,
    pub count: u64,
}

/// UDP (hooks: `tp_btf/sock_send_length`, `tp_btf/sock_recv_length`). A "packet" is one
/// successful send or receive call carrying one datagram (sendmmsg/recvmmsg count each
/// message; UDP GSO sends count once).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UdpStats {
    pub packets_sent: u64,
    pub packets_received: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

/// File I/O operation classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum FileOp {
    /// read, pread64, readv, preadv, preadv2 on a regular file.
    Read,
    /// write, pwrite64, writev, pwritev, pwritev2 on a regular file.
    Write,
    /// fsync, fdatasync on a regular file.
    Fsync,
    /// open, openat, openat2, creat (any path; the result is not classified).
    Open,
}

impl FileOp {
    pub const ALL: [FileOp; 4] = [FileOp::Read, FileOp::Write, FileOp::Fsync, FileOp::Open];

    /// Lower-case name, suitable as an attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            FileOp::Read => "read",
            FileOp::Write => "write",
            FileOp::Fsync => "fsync",
            FileOp::Open => "open",
        }
    }
}

/// File I/O by operation (hooks: `tp_btf/sys_enter` + `tp_btf/sys_exit`; the fd is
/// classified at entry: only regular files count, so sockets, pipes and devices do not).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileIoStats {
    /// One entry per [`FileOp`] in [`FileOp::ALL`] order (present even when zero).
    pub ops: Vec<FileOpStat>,
}

impl FileIoStats {
    /// The entry for `op`, if the programs ran.
    pub fn op(&self, op: FileOp) -> Option<&FileOpStat> {
        self.ops.iter().find(|s| s.op == op)
    }
}

/// One file I/O operation's counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileOpStat {
    pub op: FileOp,
    /// Completed calls.
    pub count: u64,
    /// Calls that returned -errno.
    pub errors: u64,
    /// Bytes transferred (sum of positive return values of read/write calls; 0 for
    /// fsync/open).
    pub bytes: u64,
    pub latency: Log2Hist,
}

/// Scheduler (hooks: `tp_btf/sched_switch`, `tp_btf/sched_wakeup`,
/// `tp_btf/sched_wakeup_new`, `tp_btf/sched_migrate_task`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchedStats {
    /// Context switches (counted for the task switched out).
    pub context_switches: u64,
    /// Of those, switches where the task was still runnable (preempted).
    pub preemptions: u64,
    /// Wakeups of existing tasks.
    pub wakeups: u64,
    /// Wakeups of newly created tasks.
    pub wakeups_new: u64,
    /// Task migrations between CPUs.
    pub migrations: u64,
    /// Run-queue latency: from wakeup (or preemption) to running on a CPU.
    pub runq_latency: Log2Hist,
}

/// Memory (hooks: `tp_btf/page_fault_user`, `tp_btf/page_fault_kernel` (x86),
/// a `PERF_COUNT_SW_PAGE_FAULTS_MAJ` perf event for major faults, `tp_btf/mark_victim`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemStats {
    /// Page faults taken in user mode.
    pub page_faults_user: u64,
    /// Page faults taken in kernel mode (on user addresses, e.g. copy_to_user).
    pub page_faults_kernel: u64,
    /// Major faults (the page had to be read from storage).
    pub major_faults: u64,
    /// Processes chosen as OOM victims.
    pub oom_kills: u64,
}

/// Program categories, matching the collector's `collect_*` switches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Category {
    Syscalls,
    Network,
    FileIo,
    Scheduler,
    Memory,
    TcpEvents,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Syscalls => "syscalls",
            Category::Network => "network",
            Category::FileIo => "file_io",
            Category::Scheduler => "scheduler",
            Category::Memory => "memory",
            Category::TcpEvents => "tcp_events",
        }
    }
}

/// One kernel program: attached, or why not and how to fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramStatus {
    /// The program's name as `bpftool prog list` shows it (`tfo_*`).
    pub name: String,
    /// The category that needs it (the first, if several do).
    pub category: Category,
    /// The hook, e.g. `tp_btf/sys_enter`.
    pub hook: &'static str,
    pub attached: bool,
    /// Why it is not attached.
    pub error: Option<String>,
    /// What to do about it.
    pub fix: Option<String>,
    /// Times the program ran, when `kernel.bpf_stats_enabled` is 1.
    pub run_cnt: Option<u64>,
    /// Total time spent in it, when `kernel.bpf_stats_enabled` is 1.
    pub run_time_ns: Option<u64>,
}

/// Name of a kernel TCP state number (`TCP_ESTABLISHED` = 1 ... `TCP_NEW_SYN_RECV` = 12).
pub fn tcp_state_name(state: u8) -> &'static str {
    match state {
        1 => "ESTABLISHED",
        2 => "SYN_SENT",
        3 => "SYN_RECV",
        4 => "FIN_WAIT1",
        5 => "FIN_WAIT2",
        6 => "TIME_WAIT",
        7 => "CLOSE",
        8 => "CLOSE_WAIT",
        9 => "LAST_ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        12 => "NEW_SYN_RECV",
        13 => "BOUND_INACTIVE",
        _ => "UNKNOWN",
    }
}

/// Name of an x86_64 syscall number, for the common ones.
pub fn syscall_name(nr: u32) -> Option<&'static str> {
    SYSCALL_NAMES
        .binary_search_by_key(&nr, |&(n, _)| n)
        .ok()
        .map(|i| SYSCALL_NAMES[i].1)
}

// x86_64 numbers (arch/x86/entry/syscalls/syscall_64.tbl), sorted.
const SYSCALL_NAMES: &[(u32, &str)] = &[
    (0, "read"),
    (1, "write"),
    (2, "open"),
    (3, "close"),
    (4, "stat"),
    (5, "fstat"),
    (6, "lstat"),
    (7, "poll"),
    (8, "lseek"),
    (9, "mmap"),
    (10, "mprotect"),
    (11, "munmap"),
    (12, "brk"),
    (13, "rt_sigaction"),
    (14, "rt_sigprocmask"),
    (15, "rt_sigreturn"),
    (16, "ioctl"),
    (17, "pread64"),
    (18, "pwrite64"),
    (19, "readv"),
    (20, "writev"),
    (21, "access"),
    (22, "pipe"),
    (23, "select"),
    (24, "sched_yield"),
    (25, "mremap"),
    (26, "msync"),
    (27, "mincore"),
    (28, "madvise"),
    (32, "dup"),
    (33, "dup2"),
    (35, "nanosleep"),
    (39, "getpid"),
    (40, "sendfile"),
    (41, "socket"),
    (42, "connect"),
    (43, "accept"),
    (44, "sendto"),
    (45, "recvfrom"),
    (46, "sendmsg"),
    (47, "recvmsg"),
    (48, "shutdown"),
    (49, "bind"),
    (50, "listen"),
    (51, "getsockname"),
    (52, "getpeername"),
    (53, "socketpair"),
    (54, "setsockopt"),
    (55, "getsockopt"),
    (56, "clone"),
    (57, "fork"),
    (58, "vfork"),
    (59, "execve"),
    (60, "exit"),
    (61, "wait4"),
    (62, "kill"),
    (63, "uname"),
    (72, "fcntl"),
    (73, "flock"),
    (74, "fsync"),
    (75, "fdatasync"),
    (76, "truncate"),
    (77, "ftruncate"),
    (78, "getdents"),
    (79, "getcwd"),
    (80, "chdir"),
    (82, "rename"),
    (83, "mkdir"),
    (84, "rmdir"),
    (85, "creat"),
    (86, "link"),
    (87, "unlink"),
    (89, "readlink"),
    (90, "chmod"),
    (92, "chown"),
    (95, "umask"),
    (96, "gettimeofday"),
    (97, "getrlimit"),
    (98, "getrusage"),
    (99, "sysinfo"),
    (102, "getuid"),
    (104, "getgid"),
    (107, "geteuid"),
    (108, "getegid"),
    (110, "getppid"),
    (158, "arch_prctl"),
    (186, "gettid"),
    (202, "futex"),
    (217, "getdents64"),
    (218, "set_tid_address"),
    (228, "clock_gettime"),
    (230, "clock_nanosleep"),
    (231, "exit_group"),
    (232, "epoll_wait"),
    (233, "epoll_ctl"),
    (257, "openat"),
    (262, "newfstatat"),
    (270, "pselect6"),
    (271, "ppoll"),
    (273, "set_robust_list"),
    (275, "splice"),
    (281, "epoll_pwait"),
    (288, "accept4"),
    (290, "eventfd2"),
    (291, "epoll_create1"),
    (292, "dup3"),
    (293, "pipe2"),
    (295, "preadv"),
    (296, "pwritev"),
    (299, "recvmmsg"),
    (302, "prlimit64"),
    (307, "sendmmsg"),
    (318, "getrandom"),
    (321, "bpf"),
    (322, "execveat"),
    (326, "copy_file_range"),
    (327, "preadv2"),
    (328, "pwritev2"),
    (332, "statx"),
    (334, "rseq"),
    (425, "io_uring_setup"),
    (426, "io_uring_enter"),
    (435, "clone3"),
    (436, "close_range"),
    (437, "openat2"),
    (441, "epoll_pwait2"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_table_is_sorted_and_found() {
        assert!(SYSCALL_NAMES.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(syscall_name(110), Some("getppid"));
        assert_eq!(syscall_name(1000), None);
    }

    #[test]
    fn hist_bounds_and_merge() {
        assert_eq!(Log2Hist::upper_bound(0), Some(2));
        assert_eq!(Log2Hist::upper_bound(62), Some(1 << 63));
        assert_eq!(Log2Hist::upper_bound(63), None);
        let mut a = Log2Hist::default();
        a.buckets[3] = 2;
        let mut b = Log2Hist::default();
        b.buckets[5] = 1;
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.used_len(), 6);
        assert_eq!(Log2Hist::default().used_len(), 0);
    }
}
