//! Helper for scripts/bench-ebpf.
//!
//! - `ebpf-bench hold`: loads and attaches every tfo_* program (as the agent would, itself
//!   excluded), prints `ready`, then per-program run_cnt, run_time_ns and ns/run (needs
//!   `kernel.bpf_stats_enabled=1`): for each stdin line `mark NAME`, the runs since the
//!   previous mark as phase NAME; at EOF, the whole hold as phase `total`.
//!   `TFO_BENCH_CATS=syscalls,file_io` limits the categories.
//! - `ebpf-bench getpid N`: N getpid() calls; prints ns per call.
//! - `ebpf-bench rr N`: N 64-byte request/response round trips over one loopback TCP
//!   connection; prints µs per round trip.
//! - Rarer events in bulk, for the per-run cost of the programs that a normal workload runs
//!   a few times only (cold caches make those few runs look dear): `ebpf-bench migrate N`
//!   (N migrations: the thread's affinity alternates between CPUs 0 and 1), `connect N`
//!   (N loopback TCP connections opened and closed: ~8 state changes each), `fork N`
//!   (N fork + exit + wait), `majfault N` (N major faults: pages of a file mapping read
//!   after their page cache was dropped, readahead off). Each prints µs per item.

use std::io::{BufRead, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n = || {
        args.get(2)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(1_000_000)
    };
    match args.get(1).map(String::as_str) {
        Some("hold") => hold(),
        Some("getpid") => {
            let n = n();
            let t = Instant::now();
            for _ in 0..n {
                // SAFETY: no preconditions.
                unsafe { libc::syscall(libc::SYS_getpid) };
            }
            println!("{:.1}", t.elapsed().as_nanos() as f64 / n as f64);
        }
        Some("rr") => {
            let n = n();
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            let srv = std::thread::spawn(move || {
                let (mut s, _) = l.accept().unwrap();
                s.set_nodelay(true).unwrap();
                let mut b = [0u8; 64];
                while s.read_exact(&mut b).is_ok() {
                    s.write_all(&b).unwrap();
                }
            });
            let mut c = TcpStream::connect(addr).unwrap();
            c.set_nodelay(true).unwrap();
            let mut b = [0u8; 64];
            let t = Instant::now();
            for _ in 0..n {
                c.write_all(&b).unwrap();
                c.read_exact(&mut b).unwrap();
            }
            let us = t.elapsed().as_nanos() as f64 / n as f64 / 1000.0;
            drop(c);
            srv.join().unwrap();
            println!("{us:.2}");
        }
        Some("migrate") => per_item(n(), migrate),
        Some("connect") => per_item(n(), connect),
        Some("fork") => per_item(n(), fork),
        Some("majfault") => per_item(n(), majfault),
        _ => {
            eprintln!(
                "usage: ebpf-bench hold | getpid N | rr N | migrate N | connect N | fork N | majfault N"
            );
            std::process::exit(2);
        }
    }
}

fn per_item(n: u64, f: fn(u64)) {
    let t = Instant::now();
    f(n);
    println!("{:.2}", t.elapsed().as_nanos() as f64 / n as f64 / 1000.0);
}

fn migrate(n: u64) {
    for i in 0..n {
        // SAFETY: a zeroed cpu_set_t with one CPU set, for this thread (pid 0).
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET((i % 2) as usize, &mut set);
            assert_eq!(
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set),
                0
            );
        }
    }
}

fn connect(n: u64) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    for _ in 0..n {
        let c = TcpStream::connect(addr).unwrap();
        let (s, _) = l.accept().unwrap();
        // The server closes first, so the client's side ends without TIME_WAIT (no port
        // exhaustion) and the server's TIME_WAIT sockets are the kernel's to reap.
        drop(s);
        drop(c);
    }
}

fn fork(n: u64) {
    for _ in 0..n {
        // SAFETY: the child only calls _exit.
        unsafe {
            let pid = libc::fork();
            assert!(pid >= 0);
            if pid == 0 {
                libc::_exit(0);
            }
            let mut st = 0;
            libc::waitpid(pid, &mut st, 0);
        }
    }
}

fn majfault(n: u64) {
    use std::os::fd::AsRawFd;
    const PAGE: usize = 4096;
    const PAGES: usize = 4096; // 16 MiB
    let path = std::env::temp_dir().join(format!("ebpf-bench-majfault-{}", std::process::id()));
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(&vec![1u8; PAGE * PAGES]).unwrap();
    f.sync_all().unwrap();
    let f = std::fs::File::open(&path).unwrap();
    let mut left = n as usize;
    while left > 0 {
        // SAFETY: a read-only shared mapping of a file of PAGES pages, read once per page
        // and unmapped; fadvise only drops clean page cache.
        unsafe {
            libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
            let p = libc::mmap(
                std::ptr::null_mut(),
                PAGE * PAGES,
                libc::PROT_READ,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            );
            assert_ne!(p, libc::MAP_FAILED);
            libc::madvise(p, PAGE * PAGES, libc::MADV_RANDOM);
            let k = left.min(PAGES);
            for i in 0..k {
                std::ptr::read_volatile(p.cast::<u8>().add(i * PAGE));
            }
            libc::munmap(p, PAGE * PAGES);
            left -= k;
        }
    }
    std::fs::remove_file(&path).unwrap();
}

fn hold() {
    // TFO_BENCH_CATS=syscalls,file_io,... limits the categories (default: all).
    // As the agent ships (collectors.ebpf.syscall_latency: false) unless
    // TFO_BENCH_LATENCY=1 adds the entry hook and the latency histograms.
    let mut opts = tfo_ebpf::Options {
        syscall_latency: std::env::var("TFO_BENCH_LATENCY").is_ok_and(|v| v == "1"),
        ..tfo_ebpf::Options::default()
    };
    if let Ok(cats) = std::env::var("TFO_BENCH_CATS") {
        let on = |c: &str| cats.split(',').any(|x| x == c);
        opts.syscalls = on("syscalls");
        opts.file_io = on("file_io");
        opts.network = on("network");
        opts.scheduler = on("scheduler");
        opts.memory = on("memory");
        opts.tcp_events = on("tcp_events");
    }
    let (loader, statuses) = tfo_ebpf::Loader::start(opts);
    for s in &statuses {
        if !s.attached {
            eprintln!("{}: {:?} fix: {:?}", s.name, s.error, s.fix);
        }
    }
    // Not `ready` first: the script reads that line before anything else.
    let kfuncs = match loader.kfunc_refused() {
        Some(why) => format!("# kfuncs: {} (refused: {why})", loader.kfuncs()),
        None => format!("# kfuncs: {}", loader.kfuncs()),
    };
    let mut start: Vec<_> = loader.programs();
    let total_base = start.clone();
    println!("ready");
    println!("{kfuncs}");
    std::io::stdout().flush().unwrap();
    // Each stdin line `mark NAME` prints the runs since the previous mark (or since ready)
    // as phase NAME; EOF prints the whole hold as phase `total`.
    let mut line = String::new();
    while std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map(|n| n > 0)
        .unwrap_or(false)
    {
        if let Some(name) = line.trim().strip_prefix("mark ") {
            let now = loader.programs();
            report(name, &start, &now);
            std::io::stdout().flush().unwrap();
            start = now;
        }
        line.clear();
    }
    report("total", &total_base, &loader.programs());
}

/// Per-program runs, run time and ns/run between two readings, then the phase's weighted
/// average over all programs (`all`, total run time / total runs).
fn report(phase: &str, base: &[tfo_ebpf::ProgramStatus], now: &[tfo_ebpf::ProgramStatus]) {
    println!("== phase {phase}");
    println!(
        "{:<16} {:>12} {:>14} {:>8}",
        "program", "runs", "run_time_ns", "ns/run"
    );
    let (mut runs, mut time) = (0u64, 0u64);
    for (p, b) in now.iter().zip(base) {
        let r = p.run_cnt.unwrap_or(0) - b.run_cnt.unwrap_or(0);
        let t = p.run_time_ns.unwrap_or(0) - b.run_time_ns.unwrap_or(0);
        runs += r;
        time += t;
        let avg = if r > 0 {
            format!("{:.1}", t as f64 / r as f64)
        } else {
            "-".into()
        };
        println!("{:<16} {:>12} {:>14} {:>8}", p.name, r, t, avg);
    }
    println!(
        "{:<16} {:>12} {:>14} {:>8.1}",
        "all",
        runs,
        time,
        time as f64 / runs.max(1) as f64
    );
}
