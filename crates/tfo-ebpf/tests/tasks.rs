//! The task iterator (bpf/tfo_task.bpf.c) against /proc on this host: every process's
//! numbers read by both, with /proc read before and after the iterator, must agree (equal
//! where /proc did not move between its two reads, between them where it did). Needs
//! CAP_BPF + CAP_PERFMON (root in CI); otherwise prints a loud SKIPPED line and passes.

#![cfg(feature = "loader")]

use std::collections::HashMap;
use std::io::Write;

use tfo_ebpf::tasks::{TaskIter, TaskProcess, parse};
use tfo_ebpf::{Options, preflight};

fn privileged() -> bool {
    let p = preflight(&Options::default());
    if !p.capable || p.btf.is_err() {
        eprintln!(
            "\n*** SKIPPED: the task iterator needs CAP_BPF + CAP_PERFMON (or root) and \
             kernel BTF; missing {:?}, BTF {:?}. scripts/test runs these tests as root. ***\n",
            p.missing_caps, p.btf
        );
        return false;
    }
    true
}

/// What /proc says of one process, in /proc's units.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Proc {
    comm: Vec<u8>,
    state: u8,
    ppid: u32,
    flags: u32,
    minflt: u64,
    majflt: u64,
    utime: u64,
    stime: u64,
    threads: u64,
    start: u64,
    vsize: u64,
    rss: u64,
    io: Option<(u64, u64)>,
}

fn read_proc() -> HashMap<u32, Proc> {
    let mut out = HashMap::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let open = stat.iter().position(|&b| b == b'(').unwrap();
        let close = stat.iter().rposition(|&b| b == b')').unwrap();
        let f: Vec<String> = String::from_utf8_lossy(&stat[close + 2..])
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let n = |i: usize| f[i - 3].parse::<i64>().unwrap();
        let io = std::fs::read_to_string(format!("/proc/{pid}/io"))
            .ok()
            .map(|s| {
                let get = |k: &str| {
                    s.lines()
                        .find_map(|l| l.strip_prefix(k))
                        .map(|v| v.trim().parse::<u64>().unwrap())
                        .unwrap()
                };
                (get("read_bytes:"), get("write_bytes:"))
            });
        out.insert(
            pid,
            Proc {
                comm: stat[open + 1..close].to_vec(),
                state: f[0].as_bytes()[0],
                ppid: n(4) as u32,
                flags: n(9) as u32,
                minflt: n(10) as u64,
                majflt: n(12) as u64,
                utime: n(14) as u64,
                stime: n(15) as u64,
                threads: n(20) as u64,
                start: n(22) as u64,
                vsize: n(23) as u64,
                rss: n(24).max(0) as u64,
                io,
            },
        );
    }
    out
}

/// The iterator's process in /proc's units (USER_HZ 100, 4 KiB pages on x86_64).
fn as_proc(t: &TaskProcess) -> Proc {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    let (u, s) = t.cputime(None);
    Proc {
        comm: t.comm().to_vec(),
        state: t.state_char(),
        ppid: t.ppid,
        flags: t.flags,
        minflt: t.min_flt,
        majflt: t.maj_flt,
        utime: u / 10_000_000,
        stime: s / 10_000_000,
        threads: u64::from(t.threads),
        start: t.start_ns / 10_000_000,
        vsize: t.total_vm_pages * page,
        rss: t.rss_pages,
        io: Some((t.read_bytes, t.write_bytes)),
    }
}

#[test]
fn the_iterator_agrees_with_proc() {
    if !privileged() {
        return;
    }
    // Known processes: a sleeper that wrote and synced a file (write_bytes), and one
    // with a few threads that used some CPU.
    let dir = std::env::temp_dir().join(format!("tfo-task-iter-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("f");
    let mut writer = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "dd if=/dev/zero of={} bs=64k count=16 conv=fsync 2>/dev/null; exec sleep 60",
            file.display()
        ))
        .spawn()
        .unwrap();
    let spin = std::thread::spawn(|| {
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed().as_millis() < 300 {
            x = x.wrapping_mul(31).wrapping_add(1);
        }
        std::hint::black_box(x);
    });
    spin.join().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));

    let mut it = TaskIter::open(None).expect("the task iterator loads as root");
    let mut buf = Vec::with_capacity(1 << 20);
    let mut tasks = Vec::new();
    let before = read_proc();
    it.read(&mut buf).unwrap();
    let after = read_proc();
    parse(&buf, &mut tasks).unwrap();
    let by_pid: HashMap<u32, &TaskProcess> = tasks.iter().map(|t| (t.pid, t)).collect();
    let (mut equal, mut checked) = (0, 0);
    for (pid, a) in &before {
        let Some(b) = after.get(pid).filter(|b| b.start == a.start) else {
            continue;
        };
        let Some(t) = by_pid.get(pid) else {
            // A process the kernel hides from this root task (an LSM: its namespaces
            // cannot be read either) is not walked; anything else must be.
            let hidden = std::fs::read_link(format!("/proc/{pid}/ns/pid"))
                .is_err_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied);
            assert!(hidden, "pid {pid} ({a:?}) missing from the iterator");
            eprintln!("pid {pid} is hidden from this task (its namespaces are unreadable)");
            continue;
        };
        let mut got = as_proc(t);
        checked += 1;
        // The iterator gives a kernel thread's bare comm.
        if a.flags & 0x0020_0000 != 0 {
            assert!(a.comm.starts_with(&got.comm), "{pid}: {a:?} / {got:?}");
            got.comm = a.comm.clone();
        }
        if got.io.is_some() && a.io.is_none() {
            got.io = None;
        }
        if a == b {
            assert_eq!(&got, a, "pid {pid}: iterator / /proc (steady)");
            equal += 1;
            continue;
        }
        // Moved between the two reads: identity equal, counters in between.
        assert_eq!(
            (&got.comm, got.ppid, got.start),
            (&a.comm, a.ppid, a.start),
            "pid {pid}"
        );
        let between = |g: u64, x: u64, y: u64, what: &str| {
            assert!(
                x.min(y) <= g && g <= x.max(y) + 1,
                "pid {pid} {what}: {g} not within {x}..{y}"
            );
        };
        between(
            got.utime + got.stime,
            a.utime + a.stime,
            b.utime + b.stime,
            "cpu",
        );
        between(got.minflt, a.minflt, b.minflt, "minflt");
        if let (Some(g), Some(x), Some(y)) = (got.io, a.io, b.io) {
            between(g.0, x.0, y.0, "read_bytes");
            between(g.1, x.1, y.1, "write_bytes");
        }
    }
    let w = by_pid[&writer.id()];
    let shown = as_proc(w);
    assert_eq!(shown.comm, b"sleep");
    assert!(w.write_bytes >= 1 << 20, "{w:?}");
    assert_eq!(shown.io, before[&writer.id()].io);
    let me = by_pid[&std::process::id()];
    assert!(me.threads >= 2, "{me:?}");
    assert!(as_proc(me).utime >= 20, "300 ms of spinning: {me:?}");
    eprintln!("{checked} processes checked, {equal} steady and equal");
    assert!(checked >= 3 && equal >= 1, "{checked} / {equal}");

    // What a walk costs this thread (the kernel's side included), per process.
    let cpu = || {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid clock id and a valid, writable timespec.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
        t.tv_sec as f64 * 1e9 + t.tv_nsec as f64
    };
    let t0 = cpu();
    for _ in 0..20 {
        it.read(&mut buf).unwrap();
        parse(&buf, &mut tasks).unwrap();
    }
    let per = (cpu() - t0) / 20.0 / tasks.len() as f64;
    let _ = writeln!(
        std::io::stderr(),
        "one walk: {} processes, {} bytes, {per:.0} ns per process (read + parse)",
        tasks.len(),
        buf.len()
    );
    writer.kill().unwrap();
    writer.wait().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
