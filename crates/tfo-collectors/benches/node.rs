//! CPU time and allocations per node collection cycle on this host.
//!
//! `cargo bench -p tfo-collectors --bench node` (plain `main`, no harness). Cases tagged
//! `[encoded]` collect through `collect_encoded`, as the agent's export path does; `[structs]`
//! and `[render]` through `collect`, which decodes that into structs (the CLI, the
//! Prometheus view). CPU time is
//! the collecting thread's (CLOCK_THREAD_CPUTIME_ID); statvfs helper threads only exist for
//! network filesystems and are not counted. Allocations are counted by a wrapping global
//! allocator. `NODE_BENCH_CYCLES` sets the number of measured cycles (default 300);
//! `NODE_BENCH_ONLY` runs only the case of that name (e.g. `default options`, for
//! callgrind or perf on one case). `NODE_BENCH_GAP_MS` sleeps that long before each
//! measured cycle: back-to-back cycles run with warm caches, while the agent collects
//! once per interval, after other work has evicted them.

use std::sync::atomic::Ordering;
use std::time::Instant;

use tfo_collectors::{HostPaths, NodeCollector, NodeOptions, render_node_exporter};

mod common;

use common::{ALLOCS, BYTES, Counting, thread_cpu_ns};

#[global_allocator]
static GLOBAL: Counting = Counting;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// `collect`: structs.
    Structs,
    /// `collect`, then the node_exporter text.
    Render,
    /// `collect_encoded`: the wire form, as the agent exports it.
    Encoded,
}

impl Mode {
    fn tag(self) -> &'static str {
        match self {
            Mode::Structs => "structs",
            Mode::Render => "render",
            Mode::Encoded => "encoded",
        }
    }
}

struct Stats {
    cpu_us: Vec<f64>,
    allocs: u64,
    bytes: u64,
    series: usize,
}

fn measure(name: &str, opts: NodeOptions, cycles: usize, mode: Mode) {
    if let Ok(only) = std::env::var("NODE_BENCH_ONLY")
        && name != only
    {
        return;
    }
    let mut c = NodeCollector::new(HostPaths::default(), opts).expect("valid options");
    let mut out = Vec::new();
    let mut enc: Vec<tfo_collectors::EncodedMetric> = Vec::new();
    let mut text = String::new();
    let cycle = |c: &mut NodeCollector, out: &mut Vec<_>, enc: &mut Vec<_>| {
        // Both vectors are emptied by the caller; the agent starts from empty ones too.
        if mode == Mode::Encoded {
            tfo_collectors::Collector::collect_encoded(c, out, enc);
        } else {
            tfo_collectors::Collector::collect(c, out);
        }
    };
    for _ in 0..5 {
        out.clear();
        enc = Vec::new();
        cycle(&mut c, &mut out, &mut enc);
    }
    let mut st = Stats {
        cpu_us: Vec::with_capacity(cycles),
        allocs: 0,
        bytes: 0,
        series: 0,
    };
    let gap = std::env::var("NODE_BENCH_GAP_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(std::time::Duration::from_millis);
    let wall = Instant::now();
    for _ in 0..cycles {
        if let Some(gap) = gap {
            std::thread::sleep(gap);
        }
        out.clear();
        text.clear();
        enc = Vec::new();
        let (a0, b0) = (
            ALLOCS.load(Ordering::Relaxed),
            BYTES.load(Ordering::Relaxed),
        );
        let t0 = thread_cpu_ns();
        cycle(&mut c, &mut out, &mut enc);
        if mode == Mode::Render {
            render_node_exporter(&out, &mut text);
        }
        let t1 = thread_cpu_ns();
        st.allocs += ALLOCS.load(Ordering::Relaxed) - a0;
        st.bytes += BYTES.load(Ordering::Relaxed) - b0;
        st.cpu_us.push((t1 - t0) as f64 / 1000.0);
        st.series = enc.iter().map(|e| e.points).sum::<usize>()
            + out
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
                .sum::<usize>();
    }
    // Wall time per cycle, the sleeps left out.
    let slept = gap.unwrap_or_default().as_secs_f64() * cycles as f64;
    let wall_us = (wall.elapsed().as_secs_f64() - slept).max(0.0) * 1e6 / cycles as f64;
    st.cpu_us.sort_by(f64::total_cmp);
    let mean = st.cpu_us.iter().sum::<f64>() / cycles as f64;
    let p50 = st.cpu_us[cycles / 2];
    let p99 = st.cpu_us[(cycles * 99 / 100).min(cycles - 1)];
    println!(
        "{:<40} cpu/cycle mean {mean:8.1} us  p50 {p50:8.1} us  p99 {p99:8.1} us  wall {wall_us:8.1} us  \
         allocs/cycle {:6}  KiB allocated/cycle {:7.1}  metrics {:3}  points {}",
        format!("{name} [{}]", mode.tag()),
        st.allocs / cycles as u64,
        st.bytes as f64 / cycles as f64 / 1024.0,
        out.len() + enc.len(),
        st.series
    );
}

fn main() {
    let cycles: usize = std::env::var("NODE_BENCH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
        .max(1);
    println!("node collector on this host, {cycles} cycles each");
    measure(
        "default options",
        NodeOptions::default(),
        cycles,
        Mode::Encoded,
    );
    measure(
        "default options",
        NodeOptions::default(),
        cycles,
        Mode::Structs,
    );
    measure(
        "default options + render",
        NodeOptions::default(),
        cycles,
        Mode::Render,
    );
    measure(
        "all on (cpufreq, throttles)",
        NodeOptions {
            cpu_frequency: true,
            cpu_throttles: true,
            ..NodeOptions::default()
        },
        cycles,
        Mode::Encoded,
    );
    let only = |f: fn(&mut NodeOptions)| {
        let mut o = NodeOptions::none();
        f(&mut o);
        o
    };
    measure(
        "stat only (all toggles off)",
        NodeOptions::none(),
        cycles,
        Mode::Encoded,
    );
    measure("cpu", only(|o| o.cpu = true), cycles, Mode::Encoded);
    measure("memory", only(|o| o.memory = true), cycles, Mode::Encoded);
    measure(
        "filesystem",
        only(|o| o.filesystem = true),
        cycles,
        Mode::Encoded,
    );
    measure("network", only(|o| o.network = true), cycles, Mode::Encoded);
    measure("netstat", only(|o| o.netstat = true), cycles, Mode::Encoded);
    measure("timex", only(|o| o.timex = true), cycles, Mode::Encoded);
}
