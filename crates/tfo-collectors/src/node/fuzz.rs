//! A dependency-free fuzz loop: random bytes and mutated fixtures through every node
//! parser. Deterministic (fixed xorshift seed), so a failure reproduces. Checks: no panic,
//! no metric without points, the wire form decodes, every value finite, fractions in [0, 1].

use std::sync::Arc;

use opentelemetry_proto::tonic::metrics::v1::{Metric, metric, number_data_point};

use crate::fuzzing::{FixedStatFs, XorShift, mutate, random_input};

use super::*;
use crate::mounts::MountScanner;

/// Bytes that matter to the parsers, picked more often than uniform noise.
const INTERESTING: &[u8] = b" \n\t:|\\0123456789.kBcpu/-#=avgtotalsomefull6Tcp\xff";

fn check(out: &[Metric]) {
    for m in out {
        let points = match &m.data {
            Some(metric::Data::Gauge(g)) => &g.data_points,
            Some(metric::Data::Sum(s)) => &s.data_points,
            _ => panic!("{}: unexpected data", m.name),
        };
        assert!(!points.is_empty(), "{} emitted without points", m.name);
        for p in points {
            if let Some(number_data_point::Value::AsDouble(v)) = p.value {
                assert!(v.is_finite(), "{}: {v}", m.name);
                if m.unit == "1" {
                    assert!((0.0..=1.0).contains(&v), "{}: {v}", m.name);
                }
            }
        }
    }
}

fn run(input: &[u8], scanner: &mut MountScanner, cpu_c: &mut cpu::CpuCollector, filters: &Filters) {
    let path = Path::new("/fuzz");
    let ctx = Ctx {
        now_ns: 2_000_000_000_000_000_000,
        boot_ns: 1_000_000_000_000_000_000,
    };
    let host = HostPaths::from_root("/fuzz-root");
    let mut rows = crate::wire::Rows::default();
    let mut encoded = Vec::new();
    let out = &mut Out::new(&mut rows, &mut encoded, ctx);
    let mut report = CollectReport::default();

    let s = cpu_c.parse(input, path, &mut report);
    cpu_c.emit(&s, out);
    stat::emit(&s, out);
    schedstat::collect(input, path, out, &mut report);
    meminfo::collect(input, path, out, &mut report);
    vmstat::collect(input, path, out, &mut report);
    loadavg::collect(input, path, out, &mut report);
    filefd::collect(input, path, out, &mut report);
    diskstats::collect(input, path, &filters.disks, out, &mut report);
    netdev::collect(input, path, &filters.interfaces, out, &mut report);
    for i in 0..3 {
        pressure::collect(i, input, path, out, &mut report);
    }
    let mut ns = netstat::Values::default();
    ns.parse_pairs(input, path, &mut report);
    ns.parse_snmp6(input, path, &mut report);
    ns.emit(out);
    let mut ss = sockstat::Values::default();
    ss.parse(input, path, &mut report);
    ss.emit(4096, out);
    conntrack::parse_stat(input, path, out, &mut report);
    entropy::one_number(&entropy::METRICS[0], input, path, out, &mut report);
    filesystem::collect(scanner, input, path, &host, filters, out, &mut report);
    let out: Vec<Metric> = encoded
        .iter()
        .map(|e| e.decode().expect("the wire form decodes"))
        .collect();
    check(&out);
    // The renderer must cope with whatever the parsers produced.
    let mut text = String::new();
    crate::prom::render_node_exporter(&out, &mut text);
}

#[test]
fn fuzz_parsers() {
    let seeds: &[&[u8]] = &[
        include_bytes!("../../tests/fixtures/node-host/proc/stat"),
        include_bytes!("../../tests/fixtures/node-edge/proc/stat"),
        include_bytes!("../../tests/fixtures/node-host/proc/meminfo"),
        include_bytes!("../../tests/fixtures/node-host/proc/vmstat"),
        include_bytes!("../../tests/fixtures/node-host/proc/diskstats"),
        include_bytes!("../../tests/fixtures/node-edge/proc/diskstats"),
        include_bytes!("../../tests/fixtures/node-host/proc/net/dev"),
        include_bytes!("../../tests/fixtures/node-host/proc/net/netstat"),
        include_bytes!("../../tests/fixtures/node-host/proc/net/snmp"),
        include_bytes!("../../tests/fixtures/node-host/proc/net/snmp6"),
        include_bytes!("../../tests/fixtures/node-host/proc/net/sockstat"),
        include_bytes!("../../tests/fixtures/node-host/proc/net/stat/nf_conntrack"),
        include_bytes!("../../tests/fixtures/node-host/proc/pressure/io"),
        include_bytes!("../../tests/fixtures/node-edge/proc/schedstat"),
        include_bytes!("../../tests/fixtures/node-edge/proc/1/mounts"),
        include_bytes!("../../tests/fixtures/node-host/proc/loadavg"),
        include_bytes!("../../tests/fixtures/node-host/proc/sys/fs/file-nr"),
    ];
    let mut r = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut scanner = MountScanner::new(Arc::new(FixedStatFs));
    let mut cpu_c = cpu::CpuCollector::new(100);
    let filters = Filters::compile(&NodeOptions::default()).expect("defaults compile");
    for i in 0..3000 {
        let input = if i % 3 == 0 {
            random_input(&mut r, INTERESTING)
        } else {
            let seed = seeds[r.below(seeds.len())];
            mutate(seed, &mut r, INTERESTING)
        };
        run(&input, &mut scanner, &mut cpu_c, &filters);
    }
}
