//! CPU time and allocations per process collection cycle on this host, per process.
//!
//! `cargo bench -p tfo-collectors --bench process` (plain `main`, no harness). Spawns
//! `PROCESS_BENCH_SLEEPERS` extra `sleep` processes (default 1000), then measures the
//! collecting thread's CPU (CLOCK_THREAD_CPUTIME_ID) per cycle for the default metric set
//! and each opt-in part, divided by the processes reported, and the descriptors the
//! collector keeps open. Collection only, through `collect_encoded` as the agent calls
//! it (the per-process points written in the wire format): wrapping them into requests
//! and export are in `scripts/bench-process`. `PROCESS_BENCH_CYCLES` (default 50);
//! `PROCESS_BENCH_ONLY` runs one case (for perf). As root with kernel BTF the cases read
//! `stat` and `io`'s numbers through the eBPF task iterator (`source: auto`), except
//! `default, files`.

use std::sync::atomic::Ordering;

use tfo_collectors::{HostPaths, ProcessCollector, ProcessOptions, ProcessSource};

mod common;

use common::{ALLOCS, Counting, thread_cpu_ns};

#[global_allocator]
static GLOBAL: Counting = Counting;

fn measure(name: &str, opts: ProcessOptions, cycles: usize) {
    if let Ok(only) = std::env::var("PROCESS_BENCH_ONLY")
        && name != only
    {
        return;
    }
    let mut c = ProcessCollector::new(HostPaths::default(), opts).expect("valid options");
    // What the agent calls: the per-process metrics come written in the wire format.
    let (mut out, mut enc) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        out.clear();
        enc.clear();
        tfo_collectors::Collector::collect_encoded(&mut c, &mut out, &mut enc);
    }
    let (mut cpu, mut allocs, mut points) = (Vec::with_capacity(cycles), 0u64, 0usize);
    for _ in 0..cycles {
        out.clear();
        enc.clear();
        let a0 = ALLOCS.load(Ordering::Relaxed);
        let t0 = thread_cpu_ns();
        tfo_collectors::Collector::collect_encoded(&mut c, &mut out, &mut enc);
        let t1 = thread_cpu_ns();
        allocs += ALLOCS.load(Ordering::Relaxed) - a0;
        cpu.push((t1 - t0) as f64 / 1000.0);
        points = out
            .iter()
            .map(|m| match &m.data {
                Some(opentelemetry_proto::tonic::metrics::v1::metric::Data::Gauge(g)) => {
                    g.data_points.len()
                }
                Some(opentelemetry_proto::tonic::metrics::v1::metric::Data::Sum(s)) => {
                    s.data_points.len()
                }
                _ => 0,
            })
            .sum::<usize>()
            + enc.iter().map(|e| e.points).sum::<usize>();
    }
    let procs = c.tracked().max(1);
    cpu.sort_by(f64::total_cmp);
    let mean = cpu.iter().sum::<f64>() / cycles as f64;
    let p50 = cpu[cycles / 2];
    println!(
        "{name:<22} cpu/cycle mean {mean:9.1} us  p50 {p50:9.1} us  per process {:6.2} us  \
         allocs/process {:5.1}  processes {procs}  points {points}  kept fds {}  source {}",
        mean / procs as f64,
        allocs as f64 / cycles as f64 / procs as f64,
        c.kept_descriptors(),
        if c.task_iterator().is_ok() {
            "ebpf"
        } else {
            "files"
        },
    );
}

fn main() {
    let cycles: usize = std::env::var("PROCESS_BENCH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
        .max(1);
    let n: usize = std::env::var("PROCESS_BENCH_SLEEPERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let mut kids: Vec<std::process::Child> = (0..n)
        .filter_map(|_| {
            std::process::Command::new("sleep")
                .arg("86400")
                .spawn()
                .ok()
        })
        .collect();
    println!(
        "process collector on this host, {} extra sleepers, {cycles} cycles each",
        kids.len()
    );
    let max = ProcessOptions {
        max_processes: 1_000_000,
        ..ProcessOptions::default()
    };
    measure("default", max.clone(), cycles);
    // The same read from the files instead of the eBPF task iterator (which `default`
    // uses when this runs as root with kernel BTF; see the `source` column).
    measure(
        "default, files",
        ProcessOptions {
            source: ProcessSource::Procfs,
            ..max.clone()
        },
        cycles,
    );
    measure(
        "stat only",
        ProcessOptions {
            disk_io: false,
            ..max.clone()
        },
        cycles,
    );
    for (name, on) in [
        ("+ cpu_utilization", 0),
        ("+ threads", 1),
        ("+ paging_faults", 2),
        ("+ uptime", 3),
    ] {
        measure(
            name,
            ProcessOptions {
                cpu_utilization: on == 0,
                threads: on == 1,
                paging_faults: on == 2,
                uptime: on == 3,
                ..max.clone()
            },
            cycles,
        );
    }
    measure(
        "+ command_line",
        ProcessOptions {
            command_line: true,
            ..max.clone()
        },
        cycles,
    );
    measure(
        "+ file_descriptors",
        ProcessOptions {
            file_descriptors: true,
            ..max.clone()
        },
        cycles,
    );
    measure(
        "+ context_switches",
        ProcessOptions {
            context_switches: true,
            ..max.clone()
        },
        cycles,
    );
    measure(
        "all",
        ProcessOptions {
            command_line: true,
            file_descriptors: true,
            context_switches: true,
            cpu_utilization: true,
            threads: true,
            paging_faults: true,
            uptime: true,
            ..max
        },
        cycles,
    );
    for k in &mut kids {
        let _ = k.kill();
        let _ = k.wait();
    }
}
