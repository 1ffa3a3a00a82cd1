//! Every process's `/proc/<pid>/stat` and `/proc/<pid>/io` numbers in one read: the
//! `iter/task` program of `bpf/tfo_task.bpf.c`, for the process collector.
//!
//! The program writes a fixed binary record per task (thread) and, after a thread group
//! leader's, a leader record (see the C file). [`parse`] sums each process's threads onto
//! its leader, which gives what `do_task_stat` and `do_io_accounting` compute under the
//! thread-list lock; [`TaskProcess::cputime`] applies the kernel's `cputime_adjust()`.
//! The parser builds without the `loader` feature (no aya); [`TaskIter`] is the loader.
//!
//! What differs from `/proc`: the walk is not atomic across a process's threads, so a
//! thread that exits between the reads of its leader and of itself is missing from that
//! one sample (callers keep counters monotonic); a running thread's CPU time lacks the
//! part of its current slice not yet accounted (at most a tick); kernel threads carry
//! their 15-byte `comm` (`/proc` shows a workqueue worker's current work and a long
//! kthread name whole); and pids are the initial pid namespace's.

/// Bytes of a thread record (`struct tfo_thread_rec`).
pub const THREAD_REC: usize = 64;
/// Bytes of a leader record (`struct tfo_leader_rec`).
pub const LEADER_REC: usize = 136;

const PF_KTHREAD: u32 = 0x0020_0000;

/// One process (thread group) as the task iterator saw it, its threads summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskProcess {
    pub pid: u32,
    /// The real parent's tgid (0 for init and kthreadd).
    pub ppid: u32,
    /// `task->flags` of the leader (`PF_*`).
    pub flags: u32,
    /// The leader's `__state` and `exit_state`.
    pub state: u32,
    pub exit_state: u32,
    pub threads: u32,
    /// Start, ns after boot (`start_boottime`; `/proc` shows it in clock ticks).
    pub start_ns: u64,
    pub total_vm_pages: u64,
    pub rss_pages: u64,
    /// Tick-sampled user and system time, ns: live threads plus exited ones.
    pub utime_ns: u64,
    pub stime_ns: u64,
    /// Precise runtime (`sum_exec_runtime`), ns: live threads plus exited ones.
    pub runtime_ns: u64,
    /// The kernel's last adjusted (utime, stime): `signal->prev_cputime`.
    pub prev_ns: (u64, u64),
    pub min_flt: u64,
    pub maj_flt: u64,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub comm: [u8; 16],
}

impl TaskProcess {
    /// The command name (up to its NUL).
    pub fn comm(&self) -> &[u8] {
        let n = self.comm.iter().position(|&b| b == 0).unwrap_or(16);
        &self.comm[..n]
    }

    pub fn kernel_thread(&self) -> bool {
        self.flags & PF_KTHREAD != 0
    }

    /// The state letter `/proc/<pid>/stat` shows (`__task_state_index` of
    /// include/linux/sched.h: R S D T t X Z P I).
    pub fn state_char(&self) -> u8 {
        const TASK_REPORT: u32 = 0x7f;
        const TASK_UNINTERRUPTIBLE: u32 = 0x2;
        const TASK_IDLE: u32 = 0x402;
        const TASK_REPORT_IDLE: u32 = 0x80;
        const TASK_RTLOCK_WAIT: u32 = 0x1000;
        const TASK_FROZEN: u32 = 0x8000;
        let s = self.state;
        let mut st = (s | self.exit_state) & TASK_REPORT;
        if s & TASK_IDLE == TASK_IDLE {
            st = TASK_REPORT_IDLE;
        }
        if s & (TASK_RTLOCK_WAIT | TASK_FROZEN) != 0 {
            st = TASK_UNINTERRUPTIBLE;
        }
        // fls(): the 1-based index of the highest set bit, 0 for none.
        let index = (32 - st.leading_zeros()) as usize;
        b"RSDTtXZPI".get(index).copied().unwrap_or(b'?')
    }

    /// User and system time as `/proc/<pid>/stat` shows them, in ns: the kernel's
    /// `cputime_adjust()` (the tick-sampled split scaled to the precise runtime, never
    /// below the previous result). `prev` is the caller's previous result for this
    /// process, if any; the kernel's own (`prev_ns`, updated whenever /proc or
    /// getrusage reads it) is a floor too.
    pub fn cputime(&self, prev: Option<(u64, u64)>) -> (u64, u64) {
        let (pu, ps) = match prev {
            Some((u, s))
                if u.saturating_add(s) >= self.prev_ns.0.saturating_add(self.prev_ns.1) =>
            {
                (u, s)
            }
            _ => self.prev_ns,
        };
        let rtime = self.runtime_ns;
        if ps.saturating_add(pu) >= rtime {
            return (pu, ps);
        }
        let (utime, stime) = (self.utime_ns, self.stime_ns);
        let stime = if stime == 0 {
            0
        } else if utime == 0 {
            rtime
        } else {
            let total = u128::from(stime) + u128::from(utime);
            ((u128::from(stime) * u128::from(rtime) / total) as u64).min(rtime)
        };
        let mut stime = stime.max(ps);
        let mut utime = rtime - stime.min(rtime);
        if utime < pu {
            utime = pu;
            stime = rtime.saturating_sub(utime);
        }
        (utime, stime)
    }
}

/// A buffer that is not a sequence of whole records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_ne_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

/// Parses one read of the iterator into `out` (cleared first): one entry per process,
/// by pid, with its threads' times, faults and I/O bytes summed.
pub fn parse(buf: &[u8], out: &mut Vec<TaskProcess>) -> Result<(), ParseError> {
    out.clear();
    // Pass 1: the leaders, each with what its exited threads left in signal_struct.
    let mut at = 0;
    while at < buf.len() {
        let th = buf
            .get(at..at + THREAD_REC)
            .ok_or_else(|| ParseError(format!("a thread record cut short at byte {at}")))?;
        at += THREAD_REC;
        let (pid, tgid) = (u32_at(th, 0), u32_at(th, 4));
        if pid != tgid {
            continue;
        }
        let ld = buf
            .get(at..at + LEADER_REC)
            .ok_or_else(|| ParseError(format!("a leader record cut short at byte {at}")))?;
        at += LEADER_REC;
        let mut comm = [0u8; 16];
        comm.copy_from_slice(&ld[120..136]);
        out.push(TaskProcess {
            pid,
            ppid: u32_at(ld, 0),
            flags: u32_at(ld, 4),
            state: u32_at(ld, 8),
            exit_state: u32_at(ld, 12),
            threads: u32_at(ld, 16),
            start_ns: u64_at(ld, 24),
            total_vm_pages: u64_at(ld, 32),
            rss_pages: (u64_at(ld, 40) as i64).max(0) as u64,
            utime_ns: u64_at(ld, 48),
            stime_ns: u64_at(ld, 56),
            runtime_ns: u64_at(ld, 64),
            min_flt: u64_at(ld, 72),
            maj_flt: u64_at(ld, 80),
            read_bytes: u64_at(ld, 88),
            write_bytes: u64_at(ld, 96),
            prev_ns: (u64_at(ld, 104), u64_at(ld, 112)),
            comm,
        });
    }
    // The walk is in pid order; sorting keeps the lookup right if it ever is not.
    if !out.is_sorted_by_key(|p| p.pid) {
        out.sort_unstable_by_key(|p| p.pid);
    }
    // Pass 2: every live thread (the leader's own included) onto its process.
    let mut at = 0;
    while at < buf.len() {
        let th = &buf[at..at + THREAD_REC];
        at += THREAD_REC;
        let (pid, tgid) = (u32_at(th, 0), u32_at(th, 4));
        if pid == tgid {
            at += LEADER_REC;
        }
        // A thread whose leader was not seen (an exec's de_thread in flight): skipped.
        let Ok(i) = out.binary_search_by_key(&tgid, |p| p.pid) else {
            continue;
        };
        let p = &mut out[i];
        p.utime_ns = p.utime_ns.wrapping_add(u64_at(th, 8));
        p.stime_ns = p.stime_ns.wrapping_add(u64_at(th, 16));
        p.runtime_ns = p.runtime_ns.wrapping_add(u64_at(th, 24));
        p.min_flt = p.min_flt.wrapping_add(u64_at(th, 32));
        p.maj_flt = p.maj_flt.wrapping_add(u64_at(th, 40));
        p.read_bytes = p.read_bytes.wrapping_add(u64_at(th, 48));
        p.write_bytes = p.write_bytes.wrapping_add(u64_at(th, 56));
    }
    Ok(())
}

#[cfg(feature = "loader")]
pub use iter::TaskIter;

/// BTF kinds (include/uapi/linux/btf.h).
const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC: u32 = 12;
const KIND_TYPE_TAG: u32 = 18;

/// The kernel types and members `bpf/tfo_task.bpf.c` reads (its `___tfo` types).
const CORE_TYPES: &[(&str, &[&str])] = &[
    (
        "task_struct",
        &[
            "__state",
            "flags",
            "exit_state",
            "pid",
            "tgid",
            "real_parent",
            "utime",
            "stime",
            "se",
            "min_flt",
            "maj_flt",
            "start_boottime",
            "mm",
            "signal",
            "ioac",
            "comm",
        ],
    ),
    ("sched_entity", &["sum_exec_runtime"]),
    ("mm_struct", &["total_vm", "rss_stat"]),
    ("percpu_counter", &["count"]),
    (
        "signal_struct",
        &[
            "nr_threads",
            "prev_cputime",
            "utime",
            "stime",
            "min_flt",
            "maj_flt",
            "sum_sched_runtime",
            "ioac",
        ],
    ),
    ("prev_cputime", &["utime", "stime"]),
    ("task_io_accounting", &["read_bytes", "write_bytes"]),
];

/// The function the iterator attaches to: its id must be the kernel's.
const ITER_FUNC: &str = "bpf_iter_task";

/// The kernel's BTF, indexed just enough to look types and members up: its type section
/// and the offsets of the few names looked up ([`wanted_names`]), not its 2–3 MB of
/// strings.
struct RawBtf<'a> {
    types: std::borrow::Cow<'a, [u8]>,
    /// String offset → name, for the wanted names only.
    names: std::collections::HashMap<u32, &'static str>,
    /// Offset in `types` of each type, by id (id 0 is void: no entry).
    at: Vec<u32>,
}

fn le32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

/// Every name [`core_btf`] and [`iter_func_id`] look up.
fn wanted_names() -> Vec<&'static str> {
    let mut v = vec![ITER_FUNC];
    for (name, members) in CORE_TYPES {
        v.push(name);
        v.extend(members.iter().copied());
    }
    v
}

/// The offsets of the wanted names in a string section read from `r`, by chunks.
fn scan_names(
    mut r: impl std::io::Read,
) -> std::io::Result<std::collections::HashMap<u32, &'static str>> {
    let wanted: std::collections::HashMap<&[u8], &'static str> = wanted_names()
        .into_iter()
        .map(|n| (n.as_bytes(), n))
        .collect();
    let mut found = std::collections::HashMap::new();
    let mut chunk = vec![0u8; 64 << 10];
    let mut carry: Vec<u8> = Vec::new();
    let mut base = 0usize;
    loop {
        let n = r.read(&mut chunk)?;
        if n == 0 {
            return Ok(found);
        }
        carry.extend_from_slice(&chunk[..n]);
        let mut start = 0;
        while let Some(len) = carry[start..].iter().position(|&b| b == 0) {
            if let Some(name) = wanted.get(&carry[start..start + len]) {
                found.insert((base + start) as u32, *name);
            }
            start += len + 1;
        }
        carry.drain(..start);
        base += start;
    }
}

/// The section bounds of a BTF header: (header length, types offset and length,
/// strings offset and length), all relative to the end of the header.
fn header(h: &[u8]) -> Result<[usize; 5], String> {
    let bad = |what: &str| format!("kernel BTF: {what}");
    if h.get(0..2) != Some(&[0x9f, 0xeb]) {
        return Err(bad("not little-endian BTF (magic)"));
    }
    let field = |i: usize| le32(h, 4 + 4 * i).map(|v| v as usize);
    match (field(0), field(1), field(2), field(3), field(4)) {
        (Some(a), Some(b), Some(c), Some(d), Some(e)) => Ok([a, b, c, d, e]),
        _ => Err(bad("short header")),
    }
}

/// The byte range of a BTF section (offsets from the header's end), if it does not overflow.
fn section(hdr: usize, off: usize, len: usize) -> Option<std::ops::Range<usize>> {
    let start = hdr.checked_add(off)?;
    Some(start..start.checked_add(len)?)
}

impl<'a> RawBtf<'a> {
    /// A BTF blob in memory.
    fn parse(raw: &'a [u8]) -> Result<RawBtf<'a>, String> {
        let [hdr, type_off, type_len, str_off, str_len] = header(raw)?;
        let types = section(hdr, type_off, type_len)
            .and_then(|r| raw.get(r))
            .ok_or("kernel BTF: type section out of bounds")?;
        let strings = section(hdr, str_off, str_len)
            .and_then(|r| raw.get(r))
            .ok_or("kernel BTF: string section out of bounds")?;
        let names = scan_names(strings).map_err(|e| e.to_string())?;
        Self::index(std::borrow::Cow::Borrowed(types), names)
    }

    /// A BTF file: its type section is read whole (3 MB for a 6.18 kernel), its
    /// strings by chunks.
    fn read(path: &std::path::Path) -> Result<RawBtf<'static>, String> {
        use std::io::{Read, Seek, SeekFrom};
        let err = |e: std::io::Error| format!("{}: {e}", path.display());
        let mut f = std::fs::File::open(path).map_err(err)?;
        let mut h = [0u8; 24];
        f.read_exact(&mut h).map_err(err)?;
        let [hdr, type_off, type_len, str_off, str_len] = header(&h)?;
        // Sizes from the header are checked against the file before anything is allocated.
        let size = f.metadata().map_err(err)?.len();
        let fits = |off, len| {
            section(hdr, off, len).is_some_and(|r| u64::try_from(r.end).is_ok_and(|e| e <= size))
        };
        if !fits(type_off, type_len) || !fits(str_off, str_len) {
            return Err(format!("{}: BTF sections out of bounds", path.display()));
        }
        let mut types = vec![0u8; type_len];
        f.seek(SeekFrom::Start((hdr + type_off) as u64))
            .map_err(err)?;
        f.read_exact(&mut types).map_err(err)?;
        f.seek(SeekFrom::Start((hdr + str_off) as u64))
            .map_err(err)?;
        let mut strings = (&mut f).take(str_len as u64);
        let names = scan_names(&mut strings).map_err(err)?;
        if strings.limit() != 0 {
            return Err(format!("{}: string section cut short", path.display()));
        }
        RawBtf::index(std::borrow::Cow::Owned(types), names)
    }

    fn index(
        types: std::borrow::Cow<'a, [u8]>,
        names: std::collections::HashMap<u32, &'static str>,
    ) -> Result<RawBtf<'a>, String> {
        let bad = |what: &str| format!("kernel BTF: {what}");
        let mut at = Vec::with_capacity(types.len() / 16);
        let mut off = 0usize;
        while off < types.len() {
            let info = le32(&types, off + 4).ok_or_else(|| bad("type cut short"))?;
            let (kind, vlen) = ((info >> 24) & 0x1f, (info & 0xffff) as usize);
            at.push(off as u32);
            off += 12
                + match kind {
                    1 | 14 | 17 => 4,             // INT, VAR, DECL_TAG
                    3 => 12,                      // ARRAY
                    4 | 5 | 15 | 19 => 12 * vlen, // STRUCT, UNION, DATASEC, ENUM64
                    6 | 13 => 8 * vlen,           // ENUM, FUNC_PROTO
                    2 | 7..=12 | 16 | 18 => 0,
                    k => return Err(bad(&format!("unknown kind {k}"))),
                };
        }
        if off != types.len() {
            return Err(bad("type section cut short"));
        }
        Ok(RawBtf { types, names, at })
    }

    /// (kind, name offset, vlen, size-or-type, offset of the trailing data) of `id`.
    fn ty(&self, id: u32) -> Option<(u32, u32, usize, u32, usize)> {
        let off = *self.at.get((id as usize).checked_sub(1)?)? as usize;
        let info = le32(&self.types, off + 4)?;
        Some((
            (info >> 24) & 0x1f,
            le32(&self.types, off)?,
            (info & 0xffff) as usize,
            le32(&self.types, off + 8)?,
            off + 12,
        ))
    }

    fn name(&self, off: u32) -> &[u8] {
        // Only the wanted names are known; any other name is none of them.
        self.names.get(&off).map_or(&b""[..], |n| n.as_bytes())
    }

    fn find(&self, name: &str, kind: u32) -> Option<u32> {
        (1..=self.at.len() as u32).find(|&id| {
            self.ty(id)
                .is_some_and(|(k, n, ..)| k == kind && self.name(n) == name.as_bytes())
        })
    }

    /// Skips typedefs and qualifiers.
    fn resolve(&self, mut id: u32) -> Option<u32> {
        for _ in 0..32 {
            let (kind, _, _, next, _) = self.ty(id)?;
            match kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = next
                }
                _ => return Some(id),
            }
        }
        None
    }

    /// The bit offset and type of member `name` of struct or union `id`, looking into
    /// anonymous members as C does.
    fn member(&self, id: u32, name: &str) -> Option<(u32, u32)> {
        self.member_at(id, name, 0)
    }

    /// [`RawBtf::member`], at most 8 anonymous members deep (a malformed BTF from
    /// `btf_path` could loop).
    fn member_at(&self, id: u32, name: &str, depth: u32) -> Option<(u32, u32)> {
        if depth > 8 {
            return None;
        }
        let (kind, _, vlen, _, data) = self.ty(id)?;
        if kind != KIND_STRUCT && kind != KIND_UNION {
            return None;
        }
        let kflag = le32(&self.types, data.checked_sub(8)?)? >> 31 == 1;
        for i in 0..vlen {
            let m = data + 12 * i;
            let (n, ty, off) = (
                le32(&self.types, m)?,
                le32(&self.types, m + 4)?,
                le32(&self.types, m + 8)?,
            );
            let bits = if kflag { off & 0x00ff_ffff } else { off };
            if n == 0 {
                if let Some((inner, t)) = self
                    .resolve(ty)
                    .and_then(|r| self.member_at(r, name, depth + 1))
                {
                    return Some((bits.checked_add(inner)?, t));
                }
            } else if self.name(n) == name.as_bytes() {
                return Some((bits, ty));
            }
        }
        None
    }
}

/// A BTF blob being written.
#[derive(Default)]
struct BtfWriter {
    types: Vec<u8>,
    strings: Vec<u8>,
    next_id: u32,
}

impl BtfWriter {
    fn new() -> BtfWriter {
        BtfWriter {
            types: Vec::new(),
            strings: vec![0],
            next_id: 1,
        }
    }

    fn string(&mut self, s: &[u8]) -> u32 {
        let off = self.strings.len() as u32;
        self.strings.extend_from_slice(s);
        self.strings.push(0);
        off
    }

    fn ty(&mut self, name: u32, kind: u32, vlen: usize, size_or_type: u32, extra: &[u32]) -> u32 {
        for v in [name, (kind << 24) | vlen as u32, size_or_type]
            .into_iter()
            .chain(extra.iter().copied())
        {
            self.types.extend_from_slice(&v.to_le_bytes());
        }
        self.next_id += 1;
        self.next_id - 1
    }

    fn finish(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24 + self.types.len() + self.strings.len());
        out.extend_from_slice(&[0x9f, 0xeb, 1, 0]);
        for v in [
            24u32,
            0,
            self.types.len() as u32,
            self.types.len() as u32,
            self.strings.len() as u32,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.types);
        out.extend_from_slice(&self.strings);
        out
    }
}

/// The kernel's type id of `bpf_iter_task`, which the program attaches to.
pub fn iter_func_id(raw: &[u8]) -> Result<u32, String> {
    RawBtf::parse(raw)?
        .find(ITER_FUNC, KIND_FUNC)
        .ok_or_else(|| format!("kernel BTF has no {ITER_FUNC} (no task iterator: Linux < 5.8?)"))
}

/// A member's type in the subset.
#[derive(Clone, Copy)]
enum MemberTy {
    /// An int: size, encoding word (bits, signedness) as the kernel has it.
    Int(u32, u32),
    /// A pointer to one of [`CORE_TYPES`] (its id), or to void (0).
    Ptr(u32),
    /// One of [`CORE_TYPES`], embedded.
    Struct(u32),
    /// An array of ints (size, encoding) or of one of [`CORE_TYPES`].
    IntArray(u32, u32, u32),
    StructArray(u32, u32),
}

/// The part of the kernel's BTF the CO-RE relocations of `bpf/tfo_task.bpf.c` need: the
/// members of [`CORE_TYPES`] at the kernel's offsets, of the kernel's int sizes, in
/// structs of the kernel's sizes (a few hundred bytes instead of 5–6 MB). An error says
/// which type or member this kernel lacks.
pub fn core_btf(raw: &[u8]) -> Result<Vec<u8>, String> {
    subset(&RawBtf::parse(raw)?)
}

/// [`core_btf`] and [`iter_func_id`] of a BTF file (`/sys/kernel/btf/vmlinux`), read
/// without holding its string section: the load's peak memory is the type section.
pub fn core_btf_file(path: &std::path::Path) -> Result<(Vec<u8>, u32), String> {
    let k = RawBtf::read(path)?;
    let func = k
        .find(ITER_FUNC, KIND_FUNC)
        .ok_or_else(|| format!("kernel BTF has no {ITER_FUNC} (no task iterator: Linux < 5.8?)"))?;
    Ok((subset(&k)?, func))
}

fn subset(k: &RawBtf<'_>) -> Result<Vec<u8>, String> {
    // Ids: the structs first, in CORE_TYPES order, then their members' types.
    let id_of = |name: &[u8]| {
        CORE_TYPES
            .iter()
            .position(|(n, _)| n.as_bytes() == name)
            .map(|i| 1 + i as u32)
    };
    let mut structs = Vec::new();
    for (name, members) in CORE_TYPES {
        let sid = k
            .find(name, KIND_STRUCT)
            .ok_or_else(|| format!("kernel BTF has no struct {name}"))?;
        let size = k.ty(sid).map_or(0, |t| t.3);
        let mut ms = Vec::new();
        for m in *members {
            let bad =
                || format!("kernel BTF: {name}.{m} is not of the expected type (Linux < 6.2?)");
            let (bits, ty) = k
                .member(sid, m)
                .ok_or_else(|| format!("kernel BTF: struct {name} has no member {m}"))?;
            let (kind, tname, _, st, data) = k.resolve(ty).and_then(|r| k.ty(r)).ok_or_else(bad)?;
            let mt = match kind {
                KIND_INT => MemberTy::Int(st, le32(&k.types, data).ok_or_else(bad)?),
                KIND_PTR => {
                    let to = k.resolve(st).and_then(|p| k.ty(p));
                    MemberTy::Ptr(to.and_then(|t| id_of(k.name(t.1))).unwrap_or(0))
                }
                KIND_STRUCT => MemberTy::Struct(id_of(k.name(tname)).ok_or_else(bad)?),
                KIND_ARRAY => {
                    let elem = le32(&k.types, data).ok_or_else(bad)?;
                    let nelems = le32(&k.types, data + 8).ok_or_else(bad)?;
                    let e = k.resolve(elem).and_then(|e| k.ty(e)).ok_or_else(bad)?;
                    match e.0 {
                        KIND_INT => {
                            MemberTy::IntArray(e.3, le32(&k.types, e.4).ok_or_else(bad)?, nelems)
                        }
                        KIND_STRUCT => {
                            MemberTy::StructArray(id_of(k.name(e.1)).ok_or_else(bad)?, nelems)
                        }
                        _ => return Err(bad()),
                    }
                }
                _ => return Err(bad()),
            };
            ms.push((*m, bits, mt));
        }
        structs.push((*name, size, ms));
    }

    let mut w = BtfWriter::new();
    // The member types' ids, assigned after the structs: an int array takes two (its
    // element, then itself); the array index type comes last.
    let mut next = 1 + CORE_TYPES.len() as u32;
    let mut member_ids = Vec::new();
    for (_, _, ms) in &structs {
        let mut ids = Vec::new();
        for (_, _, mt) in ms {
            ids.push(match mt {
                MemberTy::Struct(id) => *id,
                MemberTy::IntArray(..) => {
                    next += 2;
                    next - 1
                }
                _ => {
                    next += 1;
                    next - 1
                }
            });
        }
        member_ids.push(ids);
    }
    let index_ty = next;
    for ((name, size, ms), ids) in structs.iter().zip(&member_ids) {
        let n = w.string(name.as_bytes());
        let mut extra = Vec::new();
        for ((m, bits, _), id) in ms.iter().zip(ids) {
            let mn = w.string(m.as_bytes());
            extra.extend([mn, *id, *bits]);
        }
        w.ty(n, KIND_STRUCT, ms.len(), *size, &extra);
    }
    for (_, _, ms) in &structs {
        for (_, _, mt) in ms {
            match *mt {
                MemberTy::Struct(_) => {}
                MemberTy::Int(size, enc) => {
                    w.ty(0, KIND_INT, 0, size, &[enc]);
                }
                MemberTy::Ptr(to) => {
                    w.ty(0, KIND_PTR, 0, to, &[]);
                }
                MemberTy::IntArray(size, enc, nelems) => {
                    let elem = w.ty(0, KIND_INT, 0, size, &[enc]);
                    w.ty(0, KIND_ARRAY, 0, 0, &[elem, index_ty, nelems]);
                }
                MemberTy::StructArray(elem, nelems) => {
                    w.ty(0, KIND_ARRAY, 0, 0, &[elem, index_ty, nelems]);
                }
            }
        }
    }
    // The arrays' index type.
    let id = w.ty(0, KIND_INT, 0, 4, &[32]);
    debug_assert_eq!(id, index_ty);
    Ok(w.finish())
}

#[cfg(feature = "loader")]
mod iter {
    use std::io::Read;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::path::Path;

    use aya_obj::Object;
    use aya_obj::btf::Btf;

    use crate::loader::error_chain as chain;

    static OBJ_TASK: &[u8] = aya::include_bytes_aligned!("../../../bpf/tfo_task.bpf.o");
    const PROGRAM: &str = "tfo_tasks";

    // The bpf(2) commands and constants used (include/uapi/linux/bpf.h).
    const BPF_PROG_LOAD: libc::c_long = 5;
    const BPF_LINK_CREATE: libc::c_long = 28;
    const BPF_ITER_CREATE: libc::c_long = 33;
    const BPF_PROG_TYPE_TRACING: u32 = 26;
    const BPF_TRACE_ITER: u32 = 28;

    /// The `iter/task` program, loaded and attached (a link). Each [`TaskIter::read`]
    /// creates an iterator from the link and reads it to the end: one walk of every task.
    ///
    /// Loaded without `aya::EbpfLoader`, whose constructor parses the kernel's whole BTF
    /// (~23 MiB of memory, then ~15 MiB more at load; measured): the object is parsed and
    /// its CO-RE relocations applied by `aya-obj` against [`super::core_btf`]'s subset,
    /// and the program loaded with bpf(2). It has no maps, globals or subprograms.
    #[derive(Debug)]
    pub struct TaskIter {
        link: OwnedFd,
        _prog: OwnedFd,
    }

    /// bpf(2) with an attribute block of `attr.len()` bytes; the new descriptor.
    fn bpf_fd(cmd: libc::c_long, attr: &mut [u8]) -> std::io::Result<OwnedFd> {
        // SAFETY: `attr` is a valid, writable bpf_attr prefix of the size passed; every
        // pointer in it (set by the callers) points to memory alive for the call.
        let fd = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: on success these commands return a new descriptor that we own.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
    }

    fn put32(attr: &mut [u8], off: usize, v: u32) {
        attr[off..off + 4].copy_from_slice(&v.to_ne_bytes());
    }

    fn put64(attr: &mut [u8], off: usize, v: u64) {
        attr[off..off + 8].copy_from_slice(&v.to_ne_bytes());
    }

    impl TaskIter {
        /// Loads and attaches the program with the kernel's BTF (`btf_path`, default
        /// `/sys/kernel/btf/vmlinux`). The error says why it cannot be used: no BTF, no
        /// privilege (CAP_BPF + CAP_PERFMON, or root), a kernel whose types do not match
        /// (before 6.2), or the agent outside the initial pid namespace (the program sees
        /// the host's pids, `/proc` shows the agent's).
        pub fn open(btf_path: Option<&Path>) -> Result<TaskIter, String> {
            // PROC_PID_INIT_INO: the initial pid namespace's inode.
            const PROC_PID_INIT_INO: u64 = 0xEFFF_FFFC;
            match std::fs::metadata("/proc/self/ns/pid") {
                Ok(m) if std::os::unix::fs::MetadataExt::ino(&m) == PROC_PID_INIT_INO => {}
                Ok(_) => {
                    return Err("the agent is not in the initial pid namespace (the task \
                                iterator sees the host's pids)"
                        .into());
                }
                Err(e) => return Err(format!("/proc/self/ns/pid: {e}")),
            }
            let path = btf_path.unwrap_or(Path::new(crate::loader::SYS_BTF));
            let (small, func) =
                super::core_btf_file(path).map_err(|e| format!("no usable BTF: {e}"))?;
            let btf = Btf::parse(&small, aya::Endianness::default())
                .map_err(|e| format!("the BTF subset does not parse: {}", chain(&e)))?;
            let mut obj =
                Object::parse(OBJ_TASK).map_err(|e| format!("tfo_task.bpf.o: {}", chain(&e)))?;
            obj.relocate_btf(&btf)
                .map_err(|e| format!("tfo_task.bpf.o relocations: {}", chain(&e)))?;
            let key = obj
                .programs
                .get(PROGRAM)
                .ok_or("tfo_task.bpf.o has no tfo_tasks program")?
                .function_key();
            let insns = &obj
                .functions
                .get(&key)
                .ok_or("tfo_task.bpf.o: no code for tfo_tasks")?
                .instructions;
            let license = obj.license.clone();

            let mut log = vec![0u8; 64 << 10];
            let mut attr = [0u8; 128];
            put32(&mut attr, 0, BPF_PROG_TYPE_TRACING);
            put32(&mut attr, 4, insns.len() as u32);
            put64(&mut attr, 8, insns.as_ptr() as u64);
            put64(&mut attr, 16, license.as_ptr() as u64);
            attr[48..48 + PROGRAM.len()].copy_from_slice(PROGRAM.as_bytes());
            put32(&mut attr, 68, BPF_TRACE_ITER);
            put32(&mut attr, 108, func);
            let prog = match bpf_fd(BPF_PROG_LOAD, &mut attr) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                    return Err(format!(
                        "loading the task iterator: {e} (needs CAP_BPF + CAP_PERFMON, or root)"
                    ));
                }
                Err(e) => {
                    // Again with the verifier's log, for the reason.
                    put32(&mut attr, 24, 1);
                    put32(&mut attr, 28, log.len() as u32);
                    put64(&mut attr, 32, log.as_mut_ptr() as u64);
                    let _ = bpf_fd(BPF_PROG_LOAD, &mut attr);
                    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                    let text = String::from_utf8_lossy(&log[..end]);
                    let last = text.lines().rev().take(3).collect::<Vec<_>>();
                    return Err(format!(
                        "loading the task iterator: {e}; verifier: {}",
                        last.into_iter().rev().collect::<Vec<_>>().join(" / ")
                    ));
                }
            };
            let mut attr = [0u8; 32];
            put32(&mut attr, 0, prog.as_raw_fd() as u32);
            put32(&mut attr, 8, BPF_TRACE_ITER);
            let link = bpf_fd(BPF_LINK_CREATE, &mut attr)
                .map_err(|e| format!("attaching the task iterator: {e}"))?;
            let mut it = TaskIter { link, _prog: prog };
            // One walk now, so a kernel that refuses to iterate is found at start.
            it.read(&mut Vec::new())
                .map_err(|e| format!("reading the task iterator: {e}"))?;
            Ok(it)
        }

        /// One walk of every task, its records into `buf` (cleared first).
        pub fn read(&mut self, buf: &mut Vec<u8>) -> std::io::Result<()> {
            buf.clear();
            let mut attr = [0u8; 8];
            put32(&mut attr, 0, self.link.as_raw_fd() as u32);
            let fd = bpf_fd(BPF_ITER_CREATE, &mut attr)?;
            std::fs::File::from(fd).read_to_end(buf)?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread(pid: u32, tgid: u32, v: u64) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&pid.to_ne_bytes());
        b.extend_from_slice(&tgid.to_ne_bytes());
        for i in 0..7 {
            b.extend_from_slice(&(v * 10 + i).to_ne_bytes());
        }
        assert_eq!(b.len(), THREAD_REC);
        b
    }

    fn leader(ppid: u32, rss: i64, comm: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        for v in [ppid, 0x0040_0000, 1, 0, 2, 0] {
            b.extend_from_slice(&v.to_ne_bytes());
        }
        b.extend_from_slice(&5_000_000_000u64.to_ne_bytes()); // start
        b.extend_from_slice(&100u64.to_ne_bytes()); // total_vm
        b.extend_from_slice(&rss.to_ne_bytes());
        for v in [1000u64, 2000, 3000, 4, 5, 6, 7, 8, 9] {
            b.extend_from_slice(&v.to_ne_bytes());
        }
        let mut c = [0u8; 16];
        c[..comm.len()].copy_from_slice(comm);
        b.extend_from_slice(&c);
        assert_eq!(b.len(), LEADER_REC);
        b
    }

    #[test]
    fn threads_are_summed_onto_their_leader() {
        let mut buf = Vec::new();
        buf.extend(thread(10, 10, 1));
        buf.extend(leader(1, 7, b"app"));
        buf.extend(thread(11, 10, 2));
        buf.extend(thread(12, 12, 3));
        buf.extend(leader(10, -3, b"fifteen-bytes-x"));
        // A thread whose leader was not seen: ignored.
        buf.extend(thread(13, 99, 4));
        let mut out = Vec::new();
        parse(&buf, &mut out).unwrap();
        assert_eq!(out.len(), 2);
        let a = &out[0];
        assert_eq!((a.pid, a.ppid, a.threads, a.rss_pages), (10, 1, 2, 7));
        assert_eq!(a.comm(), b"app");
        assert_eq!(a.state_char(), b'S');
        assert!(!a.kernel_thread());
        // signal_struct's plus threads 10 and 11's.
        assert_eq!(a.utime_ns, 1000 + 10 + 20);
        assert_eq!(a.stime_ns, 2000 + 11 + 21);
        assert_eq!(a.runtime_ns, 3000 + 12 + 22);
        assert_eq!((a.min_flt, a.maj_flt), (4 + 13 + 23, 5 + 14 + 24));
        assert_eq!((a.read_bytes, a.write_bytes), (6 + 15 + 25, 7 + 16 + 26));
        assert_eq!(a.prev_ns, (8, 9));
        let b = &out[1];
        assert_eq!((b.pid, b.ppid, b.rss_pages), (12, 10, 0));
        assert_eq!(b.comm(), b"fifteen-bytes-x");
        assert_eq!(b.utime_ns, 1000 + 30);
        // Cut short: an error, not a panic.
        for n in [1, THREAD_REC + 3, buf.len() - 1] {
            assert!(parse(&buf[..n], &mut out).is_err(), "{n}");
        }
        parse(&[], &mut out).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn state_letters_follow_the_kernel() {
        let st = |state: u32, exit: u32| {
            TaskProcess {
                state,
                exit_state: exit,
                ..TaskProcess::default()
            }
            .state_char()
        };
        assert_eq!(st(0, 0), b'R');
        assert_eq!(st(1, 0), b'S');
        assert_eq!(st(2, 0), b'D');
        assert_eq!(st(4, 0), b'T');
        assert_eq!(st(8, 0), b't');
        assert_eq!(st(0, 16), b'X');
        assert_eq!(st(0, 32), b'Z');
        assert_eq!(st(0x40, 0), b'P');
        assert_eq!(st(0x402, 0), b'I');
        assert_eq!(st(0x1000, 0), b'D');
        assert_eq!(st(0x8000 | 1, 0), b'D');
    }

    #[test]
    fn cputime_is_the_kernels_adjustment() {
        let p = |u: u64, s: u64, r: u64, prev: (u64, u64)| TaskProcess {
            utime_ns: u,
            stime_ns: s,
            runtime_ns: r,
            prev_ns: prev,
            ..TaskProcess::default()
        };
        // The tick split (1:3) scaled to the precise runtime.
        assert_eq!(p(10, 30, 100, (0, 0)).cputime(None), (25, 75));
        // No system ticks: all user; no user ticks: all system.
        assert_eq!(p(10, 0, 100, (0, 0)).cputime(None), (100, 0));
        assert_eq!(p(0, 10, 100, (0, 0)).cputime(None), (0, 100));
        // Never below the previous result (the kernel's or the caller's).
        assert_eq!(p(10, 30, 100, (50, 20)).cputime(None), (50, 50));
        assert_eq!(p(10, 30, 100, (0, 0)).cputime(Some((60, 10))), (60, 40));
        assert_eq!(p(10, 30, 100, (0, 0)).cputime(Some((70, 40))), (70, 40));
        // Runtime not past the previous sum: the previous result.
        assert_eq!(p(10, 30, 100, (60, 40)).cputime(None), (60, 40));
    }

    /// The BTF subset from this host's kernel: what the program's relocations need, and
    /// nothing the relocator refuses; garbage or a cut-short file is an error.
    #[test]
    fn the_btf_subset_of_this_kernel() {
        let Ok(raw) = std::fs::read("/sys/kernel/btf/vmlinux") else {
            eprintln!("\n*** SKIPPED: no /sys/kernel/btf/vmlinux ***\n");
            return;
        };
        let small = core_btf(&raw).unwrap();
        assert!(small.len() < 4096, "{} bytes", small.len());
        let k = RawBtf::parse(&small).unwrap();
        let full = RawBtf::parse(&raw).unwrap();
        for (name, members) in CORE_TYPES {
            let (a, b) = (
                k.find(name, KIND_STRUCT).unwrap(),
                full.find(name, KIND_STRUCT).unwrap(),
            );
            assert_eq!(k.ty(a).unwrap().3, full.ty(b).unwrap().3, "size of {name}");
            for m in *members {
                assert_eq!(
                    k.member(a, m).unwrap().0,
                    full.member(b, m).unwrap().0,
                    "{name}.{m}"
                );
            }
        }
        let func = iter_func_id(&raw).unwrap();
        assert!(func > 0);
        let path = std::path::Path::new("/sys/kernel/btf/vmlinux");
        assert_eq!(core_btf_file(path).unwrap(), (small.clone(), func));
        #[cfg(feature = "loader")]
        {
            static OBJ: &[u8] = aya::include_bytes_aligned!("../../../bpf/tfo_task.bpf.o");
            let btf = aya_obj::btf::Btf::parse(&small, aya::Endianness::default()).unwrap();
            let mut obj = aya_obj::Object::parse(OBJ).unwrap();
            obj.relocate_btf(&btf).unwrap();
        }
        for n in [0, 3, 24, 100, raw.len() / 2, raw.len() - 1] {
            assert!(core_btf(&raw[..n]).is_err(), "cut at {n}");
        }
        assert!(core_btf(b"garbage, not BTF at all").is_err());
    }
}
