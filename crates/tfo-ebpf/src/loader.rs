//! Loads the embedded `tfo_*` objects, attaches each program independently and reads the
//! maps into a [`Snapshot`].
//!
//! A program that cannot run is reported as a [`ProgramStatus`] with the reason and the
//! fix; the others keep running. Everything is released when the [`Loader`] is dropped
//! (aya closes the links, programs and maps; pins under `pin_path` are removed).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use aya::maps::{HashMap as BpfHashMap, MapData, PerCpuArray};
use aya::programs::perf_event::{PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent};
use aya::programs::{BtfTracePoint, PerfEvent, ProgramInfo};
use aya::{Btf, Ebpf, EbpfLoader, Endianness};

use crate::snapshot::*;

/// What to load. Mirrors `collectors.ebpf` (`collect_*`, `exclude_processes`, `btf_path`,
/// `pin_path`).
#[derive(Clone, Debug)]
pub struct Options {
    pub syscalls: bool,
    pub network: bool,
    pub file_io: bool,
    pub scheduler: bool,
    pub memory: bool,
    pub tcp_events: bool,
    /// Entry-to-exit latency of syscalls and file I/O: attaches `tp_btf/sys_enter` and reads
    /// the clock twice per syscall. Without it only `tp_btf/sys_exit` runs (counts, errors
    /// and bytes), at about half the per-syscall cost.
    pub syscall_latency: bool,
    /// Process names (comm, first 15 bytes) whose events are dropped in the kernel.
    /// `tfo-agent` is always added.
    pub exclude_processes: Vec<String>,
    /// Also drop the events of this process (all threads, by tgid). Default true: the
    /// agent's own threads (tokio workers) do not carry the `tfo-agent` comm.
    pub exclude_self: bool,
    /// BTF of the running kernel when `/sys/kernel/btf/vmlinux` is absent.
    pub btf_path: Option<PathBuf>,
    /// A directory on bpffs to pin programs and maps under while the loader lives (for
    /// `bpftool … pinned`); the pins are removed on drop.
    pub pin_path: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            syscalls: true,
            network: true,
            file_io: true,
            scheduler: true,
            memory: true,
            tcp_events: true,
            syscall_latency: true,
            exclude_processes: Vec::new(),
            exclude_self: true,
            btf_path: None,
            pin_path: None,
        }
    }
}

/// The agent's own comm, always excluded.
pub const AGENT_COMM: &str = "tfo-agent";

/// Default location of the kernel's BTF.
pub const SYS_BTF: &str = "/sys/kernel/btf/vmlinux";

// Objects built by scripts/build-bpf from bpf/tfo_*.bpf.c.
static OBJ_SYSCALLS: &[u8] = aya::include_bytes_aligned!("../../../bpf/tfo_syscalls.bpf.o");
static OBJ_SCHED: &[u8] = aya::include_bytes_aligned!("../../../bpf/tfo_sched.bpf.o");
static OBJ_NET: &[u8] = aya::include_bytes_aligned!("../../../bpf/tfo_net.bpf.o");
static OBJ_MEM: &[u8] = aya::include_bytes_aligned!("../../../bpf/tfo_mem.bpf.o");

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Obj {
    Syscalls,
    Sched,
    Net,
    Mem,
}

impl Obj {
    const ALL: [Obj; 4] = [Obj::Syscalls, Obj::Sched, Obj::Net, Obj::Mem];

    fn bytes(self) -> &'static [u8] {
        match self {
            Obj::Syscalls => OBJ_SYSCALLS,
            Obj::Sched => OBJ_SCHED,
            Obj::Net => OBJ_NET,
            Obj::Mem => OBJ_MEM,
        }
    }

    fn file(self) -> &'static str {
        match self {
            Obj::Syscalls => "tfo_syscalls.bpf.o",
            Obj::Sched => "tfo_sched.bpf.o",
            Obj::Net => "tfo_net.bpf.o",
            Obj::Mem => "tfo_mem.bpf.o",
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Hook {
    /// `tp_btf/<name>`
    TpBtf(&'static str),
    /// perf software event PERF_COUNT_SW_PAGE_FAULTS_MAJ, one per online CPU.
    PerfMajorFaults,
}

struct Spec {
    name: &'static str,
    obj: Obj,
    hook: Hook,
    hook_name: &'static str,
    /// Kernel where the hook appeared, for the fix when it is missing.
    since: &'static str,
}

const SPECS: &[Spec] = &[
    Spec {
        name: "tfo_sys_enter",
        obj: Obj::Syscalls,
        hook: Hook::TpBtf("sys_enter"),
        hook_name: "tp_btf/sys_enter",
        since: "5.5",
    },
    Spec {
        name: "tfo_sys_exit",
        obj: Obj::Syscalls,
        hook: Hook::TpBtf("sys_exit"),
        hook_name: "tp_btf/sys_exit",
        since: "5.5",
    },
    Spec {
        name: "tfo_sched_sw",
        obj: Obj::Sched,
        hook: Hook::TpBtf("sched_switch"),
        hook_name: "tp_btf/sched_switch",
        since: "5.5",
    },
    Spec {
        name: "tfo_wakeup",
        obj: Obj::Sched,
        hook: Hook::TpBtf("sched_wakeup"),
        hook_name: "tp_btf/sched_wakeup",
        since: "5.5",
    },
    Spec {
        name: "tfo_wakeup_new",
        obj: Obj::Sched,
        hook: Hook::TpBtf("sched_wakeup_new"),
        hook_name: "tp_btf/sched_wakeup_new",
        since: "5.5",
    },
    Spec {
        name: "tfo_migrate",
        obj: Obj::Sched,
        hook: Hook::TpBtf("sched_migrate_task"),
        hook_name: "tp_btf/sched_migrate_task",
        since: "5.5",
    },
    Spec {
        name: "tfo_sock_send",
        obj: Obj::Net,
        hook: Hook::TpBtf("sock_send_length"),
        hook_name: "tp_btf/sock_send_length",
        since: "6.4",
    },
    Spec {
        name: "tfo_sock_recv",
        obj: Obj::Net,
        hook: Hook::TpBtf("sock_recv_length"),
        hook_name: "tp_btf/sock_recv_length",
        since: "6.4",
    },
    Spec {
        name: "tfo_tcp_state",
        obj: Obj::Net,
        hook: Hook::TpBtf("inet_sock_set_state"),
        hook_name: "tp_btf/inet_sock_set_state",
        since: "5.5",
    },
    Spec {
        name: "tfo_tcp_retx",
        obj: Obj::Net,
        hook: Hook::TpBtf("tcp_retransmit_skb"),
        hook_name: "tp_btf/tcp_retransmit_skb",
        since: "6.13 (the err argument)",
    },
    Spec {
        name: "tfo_pf_user",
        obj: Obj::Mem,
        hook: Hook::TpBtf("page_fault_user"),
        hook_name: "tp_btf/page_fault_user",
        since: "5.5 (x86 only)",
    },
    Spec {
        name: "tfo_pf_kernel",
        obj: Obj::Mem,
        hook: Hook::TpBtf("page_fault_kernel"),
        hook_name: "tp_btf/page_fault_kernel",
        since: "5.5 (x86 only)",
    },
    Spec {
        name: "tfo_major_fault",
        obj: Obj::Mem,
        hook: Hook::PerfMajorFaults,
        hook_name: "perf_event/PERF_COUNT_SW_PAGE_FAULTS_MAJ",
        since: "4.9",
    },
    Spec {
        name: "tfo_oom",
        obj: Obj::Mem,
        hook: Hook::TpBtf("mark_victim"),
        hook_name: "tp_btf/mark_victim",
        since: "5.5",
    },
];

/// The categories that need a program, in `Category` order (empty = not loaded).
fn categories_of(name: &str, o: &Options) -> Vec<Category> {
    let mut c = Vec::new();
    let mut add = |on: bool, cat| {
        if on {
            c.push(cat)
        }
    };
    match name {
        // Without latency the exit program does the whole job alone.
        "tfo_sys_enter" if !o.syscall_latency => {}
        "tfo_sys_enter" | "tfo_sys_exit" => {
            add(o.syscalls, Category::Syscalls);
            add(o.file_io, Category::FileIo);
        }
        "tfo_sock_send" | "tfo_sock_recv" | "tfo_tcp_retx" => add(o.network, Category::Network),
        "tfo_tcp_state" => {
            add(o.network, Category::Network);
            add(o.tcp_events, Category::TcpEvents);
        }
        "tfo_sched_sw" | "tfo_wakeup" | "tfo_wakeup_new" | "tfo_migrate" => {
            add(o.scheduler, Category::Scheduler)
        }
        _ => add(o.memory, Category::Memory),
    }
    c
}

/// What the preflight found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preflight {
    /// `uname -r` as (major, minor).
    pub kernel: Option<(u32, u32)>,
    pub kernel_release: String,
    /// The BTF file used, or why there is none.
    pub btf: Result<PathBuf, String>,
    /// Effective CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN).
    pub capable: bool,
    /// Which of the needed capabilities are missing (names), empty when capable.
    pub missing_caps: Vec<&'static str>,
    /// tracefs at /sys/kernel/tracing (only classic tracepoints need it; the tfo_*
    /// programs are all tp_btf or perf_event, so this is informational).
    pub tracefs: bool,
    /// `pin_path` is on a bpffs (None when no pin_path).
    pub bpffs: Option<bool>,
    /// `kernel.bpf_stats_enabled` is 1.
    pub bpf_stats: bool,
}

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Effective capability set of this thread (capget(2), version 3), or None when the call
/// fails.
pub fn effective_caps() -> Option<u64> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut hdr = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget reads the header and writes two Data structs (version 3 layout).
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut hdr as *mut Header, data.as_mut_ptr()) };
    (rc == 0).then(|| u64::from(data[0].effective) | (u64::from(data[1].effective) << 32))
}

/// Whether `cap` (a `CAP_*` number) is in the set `caps`.
pub fn has_cap(caps: u64, cap: u32) -> bool {
    caps & (1u64 << cap) != 0
}

fn is_mount_of(path: &Path, fstype: &str) -> bool {
    let Ok(mounts) = fs::read_to_string("/proc/self/mounts") else {
        return false;
    };
    mounts.lines().any(|l| {
        let mut f = l.split_whitespace();
        let (_, Some(mp), Some(ty)) = (f.next(), f.next(), f.next()) else {
            return false;
        };
        ty == fstype && Path::new(mp) == path
    })
}

/// Whether `path` (or its nearest existing ancestor) lives on a bpffs mount.
fn on_bpffs(path: &Path) -> bool {
    let Ok(mounts) = fs::read_to_string("/proc/self/mounts") else {
        return false;
    };
    let mut best: Option<(usize, bool)> = None;
    for l in mounts.lines() {
        let mut f = l.split_whitespace();
        let (_, Some(mp), Some(ty)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if path.starts_with(mp) && best.is_none_or(|(len, _)| mp.len() >= len) {
            best = Some((mp.len(), ty == "bpf"));
        }
    }
    best.is_some_and(|(_, b)| b)
}

/// Whether `kernel.bpf_stats_enabled` is on (run_cnt/run_time_ns are then counted).
pub fn bpf_stats_enabled() -> bool {
    fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled").is_ok_and(|s| s.trim() == "1")
}

fn parse_release(r: &str) -> Option<(u32, u32)> {
    let mut it = r.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

/// Checks the kernel version, BTF, capabilities, tracefs and (with `pin_path`) bpffs.
pub fn preflight(opts: &Options) -> Preflight {
    let kernel_release = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let btf = match &opts.btf_path {
        Some(p) if p.is_file() => Ok(p.clone()),
        Some(p) => Err(format!("btf_path {} does not exist", p.display())),
        None if Path::new(SYS_BTF).is_file() => Ok(PathBuf::from(SYS_BTF)),
        None => Err(format!(
            "{SYS_BTF} is missing (kernel without CONFIG_DEBUG_INFO_BTF)"
        )),
    };
    let caps = effective_caps().unwrap_or(0);
    let mut missing_caps = Vec::new();
    if !has_cap(caps, CAP_SYS_ADMIN) {
        if !has_cap(caps, CAP_BPF) {
            missing_caps.push("CAP_BPF");
        }
        if !has_cap(caps, CAP_PERFMON) {
            missing_caps.push("CAP_PERFMON");
        }
    }
    Preflight {
        kernel: parse_release(&kernel_release),
        kernel_release,
        btf,
        capable: missing_caps.is_empty(),
        missing_caps,
        tracefs: is_mount_of(Path::new("/sys/kernel/tracing"), "tracefs")
            || is_mount_of(Path::new("/sys/kernel/debug/tracing"), "tracefs"),
        bpffs: opts.pin_path.as_deref().map(on_bpffs),
        bpf_stats: bpf_stats_enabled(),
    }
}

impl Preflight {
    /// The reason and fix that stop every program, if any.
    fn blocker(&self) -> Option<(String, String)> {
        match self.kernel {
            Some(v) if v < (5, 8) => {
                return Some((
                    format!("kernel {} is older than 5.8", self.kernel_release),
                    "run on a kernel >= 5.8 (CAP_BPF, tp_btf, BTF)".into(),
                ));
            }
            _ => {}
        }
        if let Err(e) = &self.btf {
            return Some((
                format!("no BTF: {e}"),
                "set collectors.ebpf.btf_path to this kernel's BTF file (e.g. from btfhub), \
                 or use a kernel built with CONFIG_DEBUG_INFO_BTF=y"
                    .into(),
            ));
        }
        if !self.capable {
            return Some((
                format!("missing {}", self.missing_caps.join("/")),
                "run as root, or add BPF and PERFMON to the container's \
                 securityContext.capabilities.add (CAP_SYS_ADMIN also works; never privileged)"
                    .into(),
            ));
        }
        None
    }
}

/// Explains a load/attach error: (reason, fix).
fn explain(spec: &Spec, err: &str) -> (String, String) {
    let reason = format!("{}: {err}", spec.hook_name);
    let low = err.to_ascii_lowercase();
    let fix = if low.contains("operation not permitted") || low.contains("permission denied") {
        "grant CAP_BPF and CAP_PERFMON (securityContext.capabilities.add: [BPF, PERFMON]); \
         check kernel.unprivileged_bpf_disabled and lockdown"
            .to_string()
    } else if low.contains("unknown btf type")
        || low.contains("not found")
        || low.contains("no such file")
    {
        format!(
            "the kernel has no {} hook (needs Linux >= {}); the other programs keep running",
            spec.hook_name, spec.since
        )
    } else if low.contains("tracefs") {
        "mount tracefs: mount -t tracefs nodev /sys/kernel/tracing (in Kubernetes: hostPath \
         /sys/kernel/tracing)"
            .to_string()
    } else {
        "see the verifier message; run `tfo-agent` with RUST_LOG=debug and report it".to_string()
    };
    (reason, fix)
}

struct Loaded {
    obj: Obj,
    ebpf: Ebpf,
}

/// The running programs. Dropping it detaches and unloads everything.
pub struct Loader {
    objs: Vec<Loaded>,
    statuses: Vec<ProgramStatus>,
    pins: Vec<PathBuf>,
    preflight: Preflight,
    kfuncs: bool,
    kfunc_refused: Option<String>,
}

/// The helper number that marks a kfunc placeholder call to `bpf_rdonly_cast` in the
/// objects (TFO_KFUNC_RDONLY_CAST in bpf/tfo_syscalls.bpf.c).
const KFUNC_RDONLY_CAST_PLACEHOLDER: i32 = 0x5446_4f01;

/// Set to 1, the loader does not use kfuncs: the fd check in tfo_sys_exit/tfo_sys_enter takes
/// its helper-based path (for A/B measurements, tests, and as a way out should a kernel's
/// verifier refuse the kfunc path in a way the automatic fallback does not catch).
pub const NO_KFUNCS_ENV: &str = "TFO_EBPF_NO_KFUNCS";

/// How the placeholder calls are rewritten.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kfunc {
    /// A kfunc call (src_reg BPF_PSEUDO_KFUNC_CALL, imm = the function's id in vmlinux BTF).
    Call(u32),
    /// `r0 = 0`: the programs take their fallback path.
    Zero,
}

/// The BTF id of the kfunc `bpf_rdonly_cast` in the running kernel's BTF, when the loader
/// may use it: kfunc calls resolve against the kernel's own BTF, so only when `btf` is
/// /sys/kernel/btf/vmlinux.
fn rdonly_cast_id(btf: &Btf, btf_path: &Path) -> Option<u32> {
    if btf_path != Path::new(SYS_BTF) {
        return None;
    }
    btf.id_by_type_name_kind("bpf_rdonly_cast", aya_obj::btf::BtfKind::Func)
        .ok()
}

/// `obj` with every placeholder call (`call TFO_KFUNC_RDONLY_CAST`) rewritten as `how`, or
/// None when it has none. An ELF64 little-endian object: the executable sections are
/// scanned instruction by instruction (8 bytes each; the second half of a 16-byte ld_imm64
/// has opcode 0, so it cannot match). The copy is 8-byte aligned, as the parser wants.
fn patch_kfunc_calls(obj: &[u8], how: Kfunc) -> Option<Patched> {
    const BPF_CALL: u8 = 0x85; // BPF_JMP | BPF_CALL | BPF_K
    const BPF_PSEUDO_KFUNC_CALL: u8 = 2;
    const MOV64_IMM: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
    const SHF_EXECINSTR: u64 = 0x4;
    let u16_at = |o: usize| obj.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u64_at = |o: usize| {
        obj.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    };
    if obj.get(..6) != Some(&[0x7f, b'E', b'L', b'F', 2, 1][..]) {
        return None; // not ELF64 little-endian
    }
    let shoff = usize::try_from(u64_at(0x28)?).ok()?;
    let shentsize = usize::from(u16_at(0x3a)?);
    let shnum = usize::from(u16_at(0x3c)?);
    let mut sites = Vec::new();
    for i in 0..shnum {
        let sh = shoff + i * shentsize;
        let (flags, off, size) = (u64_at(sh + 8)?, u64_at(sh + 0x18)?, u64_at(sh + 0x20)?);
        if flags & SHF_EXECINSTR == 0 {
            continue;
        }
        let (off, size) = (usize::try_from(off).ok()?, usize::try_from(size).ok()?);
        let code = obj.get(off..off.checked_add(size)?)?;
        for (j, insn) in code.chunks_exact(8).enumerate() {
            let imm = i32::from_le_bytes(insn[4..8].try_into().expect("4 bytes"));
            if insn[0] == BPF_CALL && insn[1] == 0 && imm == KFUNC_RDONLY_CAST_PLACEHOLDER {
                sites.push(off + j * 8);
            }
        }
    }
    if sites.is_empty() {
        return None;
    }
    let mut words = vec![0u64; obj.len().div_ceil(8)];
    // SAFETY: u64 has no invalid bit patterns and no padding; the byte view covers exactly
    // the vector's initialized storage.
    let bytes: &mut [u8] =
        unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), words.len() * 8) };
    bytes[..obj.len()].copy_from_slice(obj);
    for at in sites {
        let insn = &mut bytes[at..at + 8];
        match how {
            Kfunc::Call(id) => {
                insn[1] = BPF_PSEUDO_KFUNC_CALL << 4; // dst r0, src = pseudo kfunc call
                insn[2..4].copy_from_slice(&0u16.to_le_bytes()); // BTF fd index 0: vmlinux
                insn[4..8].copy_from_slice(&id.to_le_bytes());
            }
            Kfunc::Zero => {
                insn[0] = MOV64_IMM;
                insn[1] = 0; // r0
                insn[2..8].fill(0);
            }
        }
    }
    Some(Patched {
        words,
        len: obj.len(),
    })
}

/// A patched copy of an object, 8-byte aligned.
struct Patched {
    words: Vec<u64>,
    len: usize,
}

impl Patched {
    fn bytes(&self) -> &[u8] {
        // SAFETY: as in patch_kfunc_calls; len <= words.len() * 8.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len) }
    }
}

/// comm as the kernel stores it: at most 15 bytes, NUL-padded to 16.
fn comm_key(name: &str) -> [u8; 16] {
    let mut k = [0u8; 16];
    let b = name.as_bytes();
    let n = b.len().min(15);
    k[..n].copy_from_slice(&b[..n]);
    k
}

fn load_program(ebpf: &mut Ebpf, spec: &Spec, btf: &Btf) -> Result<(), String> {
    let prog = ebpf
        .program_mut(spec.name)
        .ok_or_else(|| format!("program {} missing from {}", spec.name, spec.obj.file()))?;
    match spec.hook {
        Hook::TpBtf(tp) => {
            let p: &mut BtfTracePoint = prog.try_into().map_err(|e| format!("{e}"))?;
            p.load(tp, btf).map_err(|e| error_chain(&e))?;
            p.attach().map_err(|e| error_chain(&e))?;
        }
        Hook::PerfMajorFaults => {
            let p: &mut PerfEvent = prog.try_into().map_err(|e| format!("{e}"))?;
            p.load().map_err(|e| error_chain(&e))?;
            let cpus = aya::util::online_cpus().map_err(|(what, e)| format!("{what}: {e}"))?;
            for cpu in cpus {
                p.attach(
                    PerfEventConfig::Software(SoftwareEvent::PageFaultsMaj),
                    PerfEventScope::AllProcessesOneCpu { cpu },
                    SamplePolicy::Period(1),
                    false,
                )
                .map_err(|e| error_chain(&e))?;
            }
        }
    }
    Ok(())
}

/// An error with its sources, `outer: inner: ...`.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

fn program_info(ebpf: &Ebpf, spec: &Spec) -> Option<ProgramInfo> {
    let prog = ebpf.program(spec.name)?;
    match spec.hook {
        Hook::TpBtf(_) => <&BtfTracePoint>::try_from(prog).ok()?.info().ok(),
        Hook::PerfMajorFaults => <&PerfEvent>::try_from(prog).ok()?.info().ok(),
    }
}

impl Loader {
    /// Preflight, then loads and attaches every program the options need, each on its
    /// own. Returns the loader and one status per program.
    pub fn start(opts: Options) -> (Loader, Vec<ProgramStatus>) {
        let kfuncs = !std::env::var(NO_KFUNCS_ENV).is_ok_and(|v| v == "1");
        Self::start_inner(opts, kfuncs.then_some(rdonly_cast_id))
    }

    /// [`Loader::start`] without kfuncs, as with TFO_EBPF_NO_KFUNCS=1: the fd check takes
    /// its helper-based path (for tests of that path and A/B measurements).
    #[doc(hidden)]
    pub fn start_without_kfuncs(opts: Options) -> (Loader, Vec<ProgramStatus>) {
        Self::start_inner(opts, None)
    }

    /// `kfunc_id` finds the id the placeholder calls become (None: no kfuncs).
    fn start_inner(
        opts: Options,
        kfunc_id: Option<fn(&Btf, &Path) -> Option<u32>>,
    ) -> (Loader, Vec<ProgramStatus>) {
        let pre = preflight(&opts);
        let mut loader = Loader {
            objs: Vec::new(),
            statuses: Vec::new(),
            pins: Vec::new(),
            preflight: pre.clone(),
            kfuncs: false,
            kfunc_refused: None,
        };
        let wanted: Vec<(&Spec, Category)> = SPECS
            .iter()
            .filter_map(|s| categories_of(s.name, &opts).first().map(|&c| (s, c)))
            .collect();
        let mut status: BTreeMap<&str, ProgramStatus> = wanted
            .iter()
            .map(|&(s, category)| {
                (
                    s.name,
                    ProgramStatus {
                        name: s.name.to_string(),
                        category,
                        hook: s.hook_name,
                        attached: false,
                        error: None,
                        fix: None,
                        run_cnt: None,
                        run_time_ns: None,
                    },
                )
            })
            .collect();
        let fail_all =
            |status: &mut BTreeMap<&str, ProgramStatus>, obj: Option<Obj>, r: &str, f: &str| {
                for (s, _) in &wanted {
                    if obj.is_none_or(|o| o == s.obj) {
                        let st = status.get_mut(s.name).expect("status");
                        st.error = Some(r.to_string());
                        st.fix = Some(f.to_string());
                    }
                }
            };
        let btf = match (&pre.btf, pre.blocker()) {
            (_, Some((r, f))) => {
                fail_all(&mut status, None, &r, &f);
                None
            }
            (Ok(path), None) => {
                let parsed = if path == Path::new(SYS_BTF) {
                    Btf::from_sys_fs()
                } else {
                    Btf::parse_file(path, Endianness::default())
                };
                match parsed {
                    Ok(b) => Some(b),
                    Err(e) => {
                        let r = format!("no usable BTF: {}: {}", path.display(), error_chain(&e));
                        fail_all(
                            &mut status,
                            None,
                            &r,
                            "set collectors.ebpf.btf_path to a valid BTF file for this kernel",
                        );
                        None
                    }
                }
            }
            (Err(_), None) => unreachable!("blocker covers missing BTF"),
        };

        let mut excl: Vec<[u8; 16]> = vec![comm_key(AGENT_COMM)];
        for p in &opts.exclude_processes {
            let k = comm_key(p);
            if !p.is_empty() && !excl.contains(&k) {
                excl.push(k);
            }
        }
        let self_tgid: u32 = if opts.exclude_self {
            std::process::id()
        } else {
            0
        };
        // The comm lookup is only needed for names the tgid check does not cover: any
        // exclude_processes entry, or the agent's own comm when its tgid is not excluded.
        let excl_comms: u8 = (excl.len() > 1 || self_tgid == 0).into();
        let cfg_syscalls: u8 = opts.syscalls.into();
        let cfg_fileio: u8 = opts.file_io.into();
        let cfg_latency: u8 = opts.syscall_latency.into();

        let rdonly_cast = match (&btf, &pre.btf) {
            (Some(btf), Ok(path)) => kfunc_id.and_then(|f| f(btf, path)),
            _ => None,
        };
        let mut kfunc_refused = None;
        if let Some(btf) = &btf {
            for obj in Obj::ALL {
                let specs: Vec<&Spec> = wanted
                    .iter()
                    .filter(|(s, _)| s.obj == obj)
                    .map(|(s, _)| *s)
                    .collect();
                if specs.is_empty() {
                    continue;
                }
                // With the kfunc first; should the kernel refuse any program of the object
                // so, the whole object again with the placeholders as r0 = 0.
                let attempts: &[Kfunc] = match rdonly_cast {
                    Some(id) => &[Kfunc::Call(id), Kfunc::Zero],
                    None => &[Kfunc::Zero],
                };
                for (n, &how) in attempts.iter().enumerate() {
                    let patched = patch_kfunc_calls(obj.bytes(), how);
                    let bytes = patched.as_ref().map_or(obj.bytes(), Patched::bytes);
                    let last = n + 1 == attempts.len() || patched.is_none();
                    let mut el = EbpfLoader::new();
                    el.btf(Some(btf)).allow_unsupported_maps().override_global(
                        "cfg_self_tgid",
                        &self_tgid,
                        true,
                    );
                    el.override_global("cfg_excl_comms", &excl_comms, true);
                    if obj == Obj::Syscalls {
                        el.override_global("cfg_syscalls", &cfg_syscalls, true)
                            .override_global("cfg_fileio", &cfg_fileio, true)
                            .override_global("cfg_latency", &cfg_latency, true);
                    }
                    let mut ebpf = match el.load(bytes) {
                        Ok(e) => e,
                        Err(e) if last => {
                            let err = error_chain(&e);
                            let (r, f) = explain(specs[0], &err);
                            let r = format!("{}: {r}", obj.file());
                            fail_all(&mut status, Some(obj), &r, &f);
                            break;
                        }
                        Err(e) => {
                            kfunc_refused = Some(format!("{}: {}", obj.file(), error_chain(&e)));
                            continue;
                        }
                    };
                    if let Err(e) = fill_exclusions(&mut ebpf, &excl) {
                        fail_all(
                            &mut status,
                            Some(obj),
                            &format!("filling tfo_excl: {e}"),
                            "report this as a bug",
                        );
                        break;
                    }
                    let results: Vec<(&Spec, Result<(), String>)> = specs
                        .iter()
                        .map(|&spec| (spec, load_program(&mut ebpf, spec, btf)))
                        .collect();
                    if !last && let Some((spec, Err(e))) = results.iter().find(|(_, r)| r.is_err())
                    {
                        kfunc_refused = Some(format!("{}: {e}", spec.name));
                        continue; // drops ebpf: detaches and closes what did load
                    }
                    for (spec, res) in results {
                        let st = status.get_mut(spec.name).expect("status");
                        match res {
                            Ok(()) => st.attached = true,
                            Err(err) => {
                                let (r, f) = explain(spec, &err);
                                st.error = Some(r);
                                st.fix = Some(f);
                            }
                        }
                    }
                    if patched.is_some() && matches!(how, Kfunc::Call(_)) {
                        loader.kfuncs = true;
                    }
                    loader.objs.push(Loaded { obj, ebpf });
                    break;
                }
            }
        }
        loader.kfunc_refused = kfunc_refused;

        if let Some(dir) = &opts.pin_path {
            loader.pin_all(dir, &mut status);
        }
        loader.statuses = wanted.iter().map(|(s, _)| status[s.name].clone()).collect();
        let statuses = loader.programs();
        (loader, statuses)
    }

    fn pin_all(&mut self, dir: &Path, status: &mut BTreeMap<&str, ProgramStatus>) {
        let fix = "pin_path must be a directory on bpffs: mount -t bpf bpf /sys/fs/bpf (in \
                   Kubernetes: hostPath /sys/fs/bpf)";
        if self.preflight.bpffs != Some(true) || fs::create_dir_all(dir).is_err() {
            for st in status.values_mut().filter(|s| s.attached) {
                st.error = Some(format!("not pinned: {} is not on bpffs", dir.display()));
                st.fix = Some(fix.into());
            }
            return;
        }
        for l in &mut self.objs {
            for (name, map) in l.ebpf.maps() {
                // .rodata/.bss maps have no useful name to pin under.
                if !name.starts_with("tfo_") {
                    continue;
                }
                let p = dir.join(format!("{}_{name}", obj_prefix(l.obj)));
                let _ = fs::remove_file(&p);
                if map.pin(&p).is_ok() {
                    self.pins.push(p);
                }
            }
            for spec in SPECS.iter().filter(|s| s.obj == l.obj) {
                let Some(st) = status.get_mut(spec.name) else {
                    continue;
                };
                if !st.attached {
                    continue;
                }
                let Some(prog) = l.ebpf.program_mut(spec.name) else {
                    continue;
                };
                let p = dir.join(spec.name);
                let _ = fs::remove_file(&p);
                let res = match spec.hook {
                    Hook::TpBtf(_) => <&mut BtfTracePoint>::try_from(prog).map(|bp| bp.pin(&p)),
                    Hook::PerfMajorFaults => <&mut PerfEvent>::try_from(prog).map(|pe| pe.pin(&p)),
                };
                match res {
                    Ok(Ok(())) => self.pins.push(p),
                    Ok(Err(e)) => {
                        st.error = Some(format!("not pinned: {}", error_chain(&e)));
                        st.fix = Some(fix.into());
                    }
                    Err(e) => {
                        st.error = Some(format!("not pinned: {e}"));
                        st.fix = Some(fix.into());
                    }
                }
            }
        }
    }

    /// Whether the programs use the kfunc bpf_rdonly_cast (the fd check of tfo_sys_exit and
    /// tfo_sys_enter is then plain loads for any fd table; without it, a table expanded past
    /// 64 fds costs three bpf_probe_read_kernel calls per file I/O syscall).
    pub fn kfuncs(&self) -> bool {
        self.kfuncs
    }

    /// Why the kernel refused the programs with the kfunc, when it did (they were loaded
    /// again without it).
    pub fn kfunc_refused(&self) -> Option<&str> {
        self.kfunc_refused.as_deref()
    }

    /// What the preflight found at start.
    pub fn preflight(&self) -> &Preflight {
        &self.preflight
    }

    /// Program statuses with fresh run_cnt/run_time_ns (when `kernel.bpf_stats_enabled`).
    pub fn programs(&self) -> Vec<ProgramStatus> {
        let stats = bpf_stats_enabled();
        let mut out = self.statuses.clone();
        for st in &mut out {
            st.run_cnt = None;
            st.run_time_ns = None;
            if !stats || !st.attached {
                continue;
            }
            let Some(spec) = SPECS.iter().find(|s| s.name == st.name) else {
                continue;
            };
            let Some(l) = self.objs.iter().find(|l| l.obj == spec.obj) else {
                continue;
            };
            if let Some(info) = program_info(&l.ebpf, spec) {
                st.run_cnt = Some(info.run_count());
                st.run_time_ns =
                    Some(u64::try_from(info.run_time().as_nanos()).unwrap_or(u64::MAX));
            }
        }
        out
    }

    /// Reads every map (summing the per-CPU values). About 530 map lookups, most of them
    /// for the per-syscall array; cheap enough for every collection interval.
    pub fn snapshot(&self) -> Snapshot {
        let mut snap = Snapshot {
            programs: self.programs(),
            ..Snapshot::default()
        };
        for l in &self.objs {
            let e = &l.ebpf;
            match l.obj {
                Obj::Syscalls => {
                    read_syscalls(e, &mut snap);
                    read_fileio(e, &mut snap);
                }
                Obj::Sched => read_sched(e, &mut snap),
                Obj::Net => read_net(e, &mut snap),
                Obj::Mem => read_mem(e, &mut snap),
            }
        }
        snap
    }
}

fn obj_prefix(o: Obj) -> &'static str {
    match o {
        Obj::Syscalls => "syscalls",
        Obj::Sched => "sched",
        Obj::Net => "net",
        Obj::Mem => "mem",
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        for p in &self.pins {
            let _ = fs::remove_file(p);
        }
        // aya detaches the links and closes the program and map fds when `objs` drops.
    }
}

fn fill_exclusions(ebpf: &mut Ebpf, excl: &[[u8; 16]]) -> Result<(), String> {
    let map = ebpf.map_mut("tfo_excl").ok_or("map tfo_excl missing")?;
    let mut m: BpfHashMap<&mut MapData, [u8; 16], u8> =
        BpfHashMap::try_from(map).map_err(|e| error_chain(&e))?;
    for k in excl {
        m.insert(k, 1u8, 0).map_err(|e| error_chain(&e))?;
    }
    Ok(())
}

// Value layouts (u64 arrays) matching the C structs in bpf/*.bpf.c.
const SLOTS: usize = 40; // HIST_SLOTS
const SC_MAX: u32 = 512;
const SC_VAL: usize = 2 + SLOTS; // count, errors, hist
const FIO_VAL: usize = 3 + SLOTS; // count, errors, bytes, hist
const SCHED_VAL: usize = 5 + SLOTS; // switches, preemptions, wakeups, wakeups_new, migrations, hist
const NET_HDR: usize = 10;
const TCP_STATES: usize = 16;
const NET_VAL: usize = NET_HDR + SLOTS + TCP_STATES * TCP_STATES;
const MEM_VAL: usize = 4;

/// Sum of the per-CPU values of entry `idx` of a per-CPU array of `[u64; N]`.
fn percpu_sum<const N: usize>(arr: &PerCpuArray<&MapData, [u64; N]>, idx: u32) -> Option<[u64; N]> {
    let vals = arr.get(&idx, 0).ok()?;
    let mut sum = [0u64; N];
    for v in vals.iter() {
        for (s, x) in sum.iter_mut().zip(v.iter()) {
            *s = s.wrapping_add(*x);
        }
    }
    Some(sum)
}

fn percpu<'a, const N: usize>(
    e: &'a Ebpf,
    name: &str,
) -> Option<PerCpuArray<&'a MapData, [u64; N]>> {
    PerCpuArray::try_from(e.map(name)?).ok()
}

fn hist(slots: &[u64]) -> Log2Hist {
    let mut h = Log2Hist::default();
    h.buckets[..slots.len()].copy_from_slice(slots);
    h
}

fn read_syscalls(e: &Ebpf, snap: &mut Snapshot) {
    let Some(arr) = percpu::<SC_VAL>(e, "tfo_sc_stats") else {
        return;
    };
    for nr in 0..SC_MAX {
        let Some(v) = percpu_sum(&arr, nr) else {
            continue;
        };
        if v[0] == 0 {
            continue;
        }
        snap.syscalls.push(SyscallStat {
            nr,
            name: syscall_name(nr),
            count: v[0],
            errors: v[1],
            latency: hist(&v[2..]),
        });
    }
}

fn read_fileio(e: &Ebpf, snap: &mut Snapshot) {
    let Some(arr) = percpu::<FIO_VAL>(e, "tfo_fio_stats") else {
        return;
    };
    for (i, op) in FileOp::ALL.into_iter().enumerate() {
        let v = percpu_sum(&arr, i as u32).unwrap_or([0; FIO_VAL]);
        snap.fileio.ops.push(FileOpStat {
            op,
            count: v[0],
            errors: v[1],
            bytes: v[2],
            latency: hist(&v[3..]),
        });
    }
}

fn read_sched(e: &Ebpf, snap: &mut Snapshot) {
    let Some(arr) = percpu::<SCHED_VAL>(e, "tfo_sched_stats") else {
        return;
    };
    let Some(v) = percpu_sum(&arr, 0) else { return };
    snap.sched = SchedStats {
        context_switches: v[0],
        preemptions: v[1],
        wakeups: v[2],
        wakeups_new: v[3],
        migrations: v[4],
        runq_latency: hist(&v[5..]),
    };
}

fn read_net(e: &Ebpf, snap: &mut Snapshot) {
    let Some(arr) = percpu::<NET_VAL>(e, "tfo_net_stats") else {
        return;
    };
    let Some(v) = percpu_sum(&arr, 0) else { return };
    let trans = &v[NET_HDR + SLOTS..];
    snap.tcp = TcpStats {
        connects_active: v[0],
        connects_passive: v[1],
        connects_failed: v[2],
        bytes_sent: v[3],
        bytes_received: v[4],
        retransmits: v[5],
        transitions: trans
            .iter()
            .enumerate()
            .filter(|(_, c)| **c != 0)
            .map(|(i, &count)| TcpTransition {
                old: (i / TCP_STATES) as u8,
                new: (i % TCP_STATES) as u8,
                count,
            })
            .collect(),
        connect_latency: hist(&v[NET_HDR..NET_HDR + SLOTS]),
    };
    snap.udp = UdpStats {
        packets_sent: v[6],
        packets_received: v[7],
        bytes_sent: v[8],
        bytes_received: v[9],
    };
}

fn read_mem(e: &Ebpf, snap: &mut Snapshot) {
    let Some(arr) = percpu::<MEM_VAL>(e, "tfo_mem_stats") else {
        return;
    };
    let Some(v) = percpu_sum(&arr, 0) else { return };
    snap.memory = MemStats {
        page_faults_user: v[0],
        page_faults_kernel: v[1],
        major_faults: v[2],
        oom_kills: v[3],
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comm_keys_are_truncated_and_padded() {
        assert_eq!(&comm_key("tfo-agent")[..10], b"tfo-agent\0");
        let k = comm_key("a-very-long-process-name");
        assert_eq!(&k[..15], b"a-very-long-pro");
        assert_eq!(k[15], 0);
    }

    #[test]
    fn release_parsing() {
        assert_eq!(parse_release("6.18.44-fc-v669"), Some((6, 18)));
        assert_eq!(parse_release("5.4.0"), Some((5, 4)));
        assert_eq!(parse_release("x"), None);
    }

    #[test]
    fn categories_follow_options() {
        let mut o = Options::default();
        assert_eq!(
            categories_of("tfo_tcp_state", &o),
            vec![Category::Network, Category::TcpEvents]
        );
        o.network = false;
        assert_eq!(
            categories_of("tfo_tcp_state", &o),
            vec![Category::TcpEvents]
        );
        assert!(categories_of("tfo_sock_send", &o).is_empty());
        o.syscalls = false;
        assert_eq!(categories_of("tfo_sys_enter", &o), vec![Category::FileIo]);
        o.syscalls = true;
        o.syscall_latency = false;
        assert!(categories_of("tfo_sys_enter", &o).is_empty());
        assert_eq!(
            categories_of("tfo_sys_exit", &o),
            vec![Category::Syscalls, Category::FileIo]
        );
    }

    /// The placeholder calls are found in tfo_syscalls only, and each is rewritten in place:
    /// as a kfunc call, or as r0 = 0; nothing else in the object changes.
    #[test]
    fn kfunc_placeholders_are_patched() {
        for obj in [Obj::Sched, Obj::Net, Obj::Mem] {
            assert!(
                patch_kfunc_calls(obj.bytes(), Kfunc::Zero).is_none(),
                "{obj:?}"
            );
        }
        let orig = Obj::Syscalls.bytes();
        let call = patch_kfunc_calls(orig, Kfunc::Call(65406)).expect("placeholders");
        let zero = patch_kfunc_calls(orig, Kfunc::Zero).expect("placeholders");
        assert_eq!(call.bytes().len(), orig.len());
        let diff = |p: &Patched| {
            (0..orig.len() / 8)
                .filter(|i| orig[i * 8..i * 8 + 8] != p.bytes()[i * 8..i * 8 + 8])
                .map(|i| p.bytes()[i * 8..i * 8 + 8].to_vec())
                .collect::<Vec<_>>()
        };
        let (c, z) = (diff(&call), diff(&zero));
        // tfo_sys_enter and tfo_sys_exit each inline fd_is_regular (sys_exit twice at most).
        assert!(
            !c.is_empty() && c.len() == z.len(),
            "{} / {}",
            c.len(),
            z.len()
        );
        for insn in &c {
            assert_eq!(insn, &[0x85, 0x20, 0, 0, 0x7e, 0xff, 0, 0]);
        }
        for insn in &z {
            assert_eq!(insn, &[0xb7, 0, 0, 0, 0, 0, 0, 0]);
        }
    }

    /// Should the kernel refuse the programs with the kfunc call, the object is loaded
    /// again without it: here the placeholders become a kfunc call to a BTF id that is a
    /// struct, not a function, which the verifier rejects. Needs root (skips otherwise).
    #[test]
    fn a_refused_kfunc_falls_back_to_the_helper_path() {
        let opts = Options {
            network: false,
            scheduler: false,
            memory: false,
            tcp_events: false,
            ..Options::default()
        };
        let pre = preflight(&opts);
        if pre.blocker().is_some() {
            eprintln!("SKIPPED: needs CAP_BPF + CAP_PERFMON and kernel BTF: {pre:?}");
            return;
        }
        let not_a_function = |btf: &Btf, path: &Path| {
            (path == Path::new(SYS_BTF))
                .then(|| {
                    btf.id_by_type_name_kind("file", aya_obj::btf::BtfKind::Struct)
                        .ok()
                })
                .flatten()
        };
        let (loader, statuses) = Loader::start_inner(opts, Some(not_a_function));
        assert!(statuses.iter().all(|s| s.attached), "{statuses:?}");
        assert!(!loader.kfuncs());
        let why = loader.kfunc_refused().expect("the refusal is kept");
        assert!(why.contains("tfo_sys_"), "{why}");
    }

    #[test]
    fn program_names_fit_the_kernel_limit() {
        for s in SPECS {
            assert!(
                s.name.len() <= 15,
                "{} is longer than BPF_OBJ_NAME_LEN - 1",
                s.name
            );
            assert!(s.name.starts_with("tfo_"));
        }
    }
}
