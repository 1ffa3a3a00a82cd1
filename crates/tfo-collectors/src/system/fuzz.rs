//! A dependency-free fuzz loop: random bytes and mutated fixtures through every parser.
//! Deterministic (fixed xorshift seed), so a failure reproduces. Checks: no panic, the wire
//! form decodes, every value finite, utilizations in [0, 1], memory states summing to the
//! limit.

use std::path::Path;
use std::sync::Arc;

use opentelemetry_proto::tonic::metrics::v1::{Metric, metric, number_data_point};

use crate::fuzzing::{FixedStatFs, XorShift, mutate, random_input};

use super::filesystem::FsCollector;
use super::{cpu, disk, load, memory, network, uptime};
use crate::Ctx;
use crate::parse::LineErrors;
use crate::{CollectReport, HostPaths};

/// Bytes that matter to the parsers, picked more often than uniform noise.
const INTERESTING: &[u8] = b" \n\t:|\\0123456789.kBcpu/-#\xff";

fn check(out: &[Metric]) {
    for m in out {
        let (points, is_util) = match &m.data {
            Some(metric::Data::Gauge(g)) => (&g.data_points, m.unit == "1"),
            Some(metric::Data::Sum(s)) => (&s.data_points, false),
            _ => panic!("{}: unexpected data", m.name),
        };
        assert!(!points.is_empty(), "{} emitted without points", m.name);
        for p in points {
            if let Some(number_data_point::Value::AsDouble(v)) = p.value {
                assert!(v.is_finite(), "{}: {v}", m.name);
                assert!(v >= 0.0, "{}: {v}", m.name);
                if is_util {
                    assert!(v <= 1.0, "{}: {v}", m.name);
                }
            }
        }
    }
}

fn run(input: &[u8], fs: &mut FsCollector, cpu_c: &mut cpu::CpuCollector) {
    let path = Path::new("/fuzz");
    let ctx = Ctx {
        now_ns: 2_000_000_000_000_000_000,
        boot_ns: 1_000_000_000_000_000_000,
    };
    let host = HostPaths::from_root("/fuzz-root");
    let mut rows = crate::wire::Rows::default();
    let mut encoded = Vec::new();
    let out = &mut crate::wire::Out::new(&mut rows, &mut encoded, ctx);
    let mut report = CollectReport::default();

    if let Some(up) = uptime::parse(input, path, &mut report) {
        uptime::emit(up, out);
    }
    load::collect(input, path, out, &mut report);
    memory::collect(input, path, out, &mut report);
    disk::collect(input, path, out, &mut report);
    network::collect(input, path, out, &mut report);
    fs.collect(input, path, &host, out, &mut report);
    let mut errs = LineErrors::new(path);
    cpu_c.parse(input, &mut errs);
    errs.finish(&mut report);
    cpu_c.emit(out);
    let out: Vec<Metric> = encoded
        .iter()
        .map(|e| e.decode().expect("the wire form decodes"))
        .collect();
    check(&out);

    let usage: Option<i64> = out
        .iter()
        .find(|m| m.name == "system.memory.usage")
        .map(|m| match &m.data {
            Some(metric::Data::Sum(s)) => s
                .data_points
                .iter()
                .map(|p| match p.value {
                    Some(number_data_point::Value::AsInt(v)) => v,
                    _ => 0,
                })
                .fold(0i64, i64::saturating_add),
            _ => 0,
        });
    let mut errs = LineErrors::new(path);
    let mi = memory::parse(input, &mut errs);
    if let (Some(sum), Some(total)) = (usage, mi.total) {
        let parts = [
            mi.free,
            mi.buffers,
            mi.cached,
            mi.sreclaimable,
            mi.sunreclaim,
        ]
        .iter()
        .flatten()
        .fold(0u64, |a, &b| a.saturating_add(b));
        if parts <= total && total <= i64::MAX as u64 {
            assert_eq!(sum as u64, total, "memory states must sum to MemTotal");
        }
    }
}

#[test]
fn fuzz_parsers() {
    let seeds: &[&[u8]] = &[
        include_bytes!("../../tests/fixtures/host1/proc/stat"),
        include_bytes!("../../tests/fixtures/edge/proc/stat"),
        include_bytes!("../../tests/fixtures/edge/stat.next"),
        include_bytes!("../../tests/fixtures/host1/proc/meminfo"),
        include_bytes!("../../tests/fixtures/edge/proc/meminfo"),
        include_bytes!("../../tests/fixtures/edge/proc/diskstats"),
        include_bytes!("../../tests/fixtures/edge/proc/1/net/dev"),
        include_bytes!("../../tests/fixtures/edge/proc/1/mounts"),
        include_bytes!("../../tests/fixtures/host1/proc/1/mounts"),
        include_bytes!("../../tests/fixtures/edge/proc/loadavg"),
        include_bytes!("../../tests/fixtures/edge/proc/uptime"),
    ];
    let mut r = XorShift(0x2545_f491_4f6c_dd1d);
    let mut fs = FsCollector::new(Arc::new(FixedStatFs));
    let mut cpu_c = cpu::CpuCollector::new(100);
    for i in 0..3000 {
        let input = if i % 3 == 0 {
            random_input(&mut r, INTERESTING)
        } else {
            let seed = seeds[r.below(seeds.len())];
            mutate(seed, &mut r, INTERESTING)
        };
        run(&input, &mut fs, &mut cpu_c);
    }
}
