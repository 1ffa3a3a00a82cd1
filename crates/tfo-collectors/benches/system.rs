//! CPU time and allocations per system collection cycle on this host.
//!
//! `cargo bench -p tfo-collectors --bench system` (plain `main`, no harness), as the node
//! bench: `[encoded]` through `collect_encoded` (the agent's export path), `[structs]`
//! through `collect`. `SYSTEM_BENCH_CYCLES` sets the number of measured cycles (default 300).

use std::sync::atomic::Ordering;

use tfo_collectors::{Collector, EncodedMetric, HostPaths, SystemCollector, SystemOptions};

mod common;

use common::{ALLOCS, BYTES, Counting, thread_cpu_ns};

#[global_allocator]
static GLOBAL: Counting = Counting;

fn measure(encoded: bool, cycles: usize) {
    let mut c = SystemCollector::new(HostPaths::default(), SystemOptions::default());
    let (mut cpu_us, mut allocs, mut bytes, mut metrics) = (Vec::new(), 0, 0, 0);
    for i in 0..cycles + 5 {
        let (mut out, mut enc) = (Vec::new(), Vec::<EncodedMetric>::new());
        let (a0, b0) = (
            ALLOCS.load(Ordering::Relaxed),
            BYTES.load(Ordering::Relaxed),
        );
        let t0 = thread_cpu_ns();
        if encoded {
            c.collect_encoded(&mut out, &mut enc);
        } else {
            c.collect(&mut out);
        }
        let t1 = thread_cpu_ns();
        // The first cycles warm up (buffers, the previous CPU sample for utilization).
        if i >= 5 {
            allocs += ALLOCS.load(Ordering::Relaxed) - a0;
            bytes += BYTES.load(Ordering::Relaxed) - b0;
            cpu_us.push((t1 - t0) as f64 / 1000.0);
        }
        metrics = out.len() + enc.len();
    }
    cpu_us.sort_by(f64::total_cmp);
    let mean = cpu_us.iter().sum::<f64>() / cycles as f64;
    println!(
        "{:<20} cpu/cycle mean {mean:8.1} us  p50 {:8.1} us  allocs/cycle {:6}  KiB allocated/cycle {:7.1}  metrics {metrics:3}",
        if encoded {
            "system [encoded]"
        } else {
            "system [structs]"
        },
        cpu_us[cycles / 2],
        allocs / cycles as u64,
        bytes as f64 / cycles as f64 / 1024.0,
    );
}

fn main() {
    let cycles: usize = std::env::var("SYSTEM_BENCH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
        .max(1);
    println!("system collector on this host, {cycles} cycles each");
    measure(true, cycles);
    measure(false, cycles);
}
