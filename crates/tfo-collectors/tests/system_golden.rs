//! End-to-end: fixture /proc trees through `SystemCollector`, compared with golden text.
//! `UPDATE_GOLDEN=1 cargo test -p tfo-collectors --test system_golden` rewrites the goldens.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric, number_data_point};
use tfo_collectors::render::render_text;
use tfo_collectors::system::metric_tables;
use tfo_collectors::{MetricKind, SystemOptions, ValueType};

const EDGE_BTIME_NS: u64 = 1_700_000_000 * 1_000_000_000;

/// Two cycles over a fixture: the second with `stat.next` as /proc/stat.
fn two_cycles(fixture_name: &str) -> (TempTree, Vec<Metric>, String, Vec<Metric>, String) {
    let tree = TempTree::copy_of(fixture_name, "golden");
    let mut c = collector(&tree.root, SystemOptions::default());
    let mut first = Vec::new();
    let r1 = c.collect_at(T0, &mut first);
    tree.copy_in("stat.next", "proc/stat");
    let mut second = Vec::new();
    let r2 = c.collect_at(T0 + STEP, &mut second);
    let e1 = render_errors(&r1, &tree.root);
    let e2 = render_errors(&r2, &tree.root);
    (tree, first, e1, second, e2)
}

#[test]
fn host1_golden() {
    let (_tree, first, e1, second, e2) = two_cycles("host1");
    assert_eq!(e1, "", "a real host snapshot parses cleanly");
    assert_eq!(e2, "");
    assert!(
        find(&first, "system.cpu.utilization").is_none(),
        "no utilization on the first cycle"
    );
    assert!(find(&second, "system.cpu.utilization").is_some());
    check_golden("host1.txt", &render_text(&first));
    check_golden("host1-next.txt", &render_text(&second));
}

#[test]
fn edge_golden() {
    let (_tree, first, e1, second, e2) = two_cycles("edge");
    check_golden("edge.txt", &format!("{e1}{}", render_text(&first)));
    check_golden("edge-next.txt", &format!("{e2}{}", render_text(&second)));
}

fn cpu_util(ms: &[Metric]) -> BTreeMap<String, BTreeMap<String, f64>> {
    let mut by_cpu: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    if let Some(m) = find(ms, "system.cpu.utilization") {
        for p in points(m) {
            by_cpu
                .entry(attr(p, "cpu").unwrap().to_string())
                .or_default()
                .insert(attr(p, "state").unwrap().to_string(), value(p));
        }
    }
    by_cpu
}

fn check_util_sums(by_cpu: &BTreeMap<String, BTreeMap<String, f64>>) {
    for (cpu, states) in by_cpu {
        let total: f64 = states.values().sum();
        assert!(
            (total - 1.0).abs() < 1e-9,
            "{cpu}: utilization sums to {total}"
        );
        for (s, v) in states {
            assert!((0.0..=1.0).contains(v), "{cpu} {s} = {v}");
        }
    }
}

#[test]
fn cpu_utilization_is_a_per_cpu_distribution() {
    let (_t, _, _, second, _) = two_cycles("host1");
    let util = cpu_util(&second);
    assert_eq!(util.keys().cloned().collect::<Vec<_>>(), ["cpu0", "cpu1"]);
    check_util_sums(&util);
    assert_eq!(util["cpu0"].len(), 8);

    let (_t, _, _, second, _) = two_cycles("edge");
    let util = cpu_util(&second);
    check_util_sums(&util);
    // cpu5 was malformed in the first cycle, cpu9 went backwards, cpu10 did not tick,
    // cpu127 went offline and cpu128 came online: none has a utilization.
    for absent in ["cpu5", "cpu9", "cpu10", "cpu127", "cpu128"] {
        assert!(!util.contains_key(absent), "{absent} must be skipped");
    }
    assert_eq!(util.len(), 128 - 4);
    // An old-kernel line with 4 columns gets exactly those states.
    let states: BTreeSet<&str> = util["cpu7"].keys().map(String::as_str).collect();
    assert_eq!(states, BTreeSet::from(["user", "nice", "system", "idle"]));
    // cpu3: user +303 nice +3 system +103 idle +1485 wait +10 softirq +5 steal +0 (guest ignored).
    let total = (303 + 3 + 103 + 1485 + 10 + 5) as f64;
    assert!((util["cpu3"]["user"] - 303.0 / total).abs() < 1e-12);
    assert!((util["cpu3"]["idle"] - 1485.0 / total).abs() < 1e-12);
}

#[test]
fn cpu_time_counts_ticks_without_guest() {
    let tree = TempTree::copy_of("edge", "cputime");
    let mut c = collector(&tree.root, SystemOptions::default());
    let mut out = Vec::new();
    c.collect_at(T0, &mut out);
    let m = find(&out, "system.cpu.time").unwrap();
    let get = |cpu: &str, state: &str| {
        points(m)
            .iter()
            .find(|p| attr(p, "cpu") == Some(cpu) && attr(p, "state") == Some(state))
            .map(value)
    };
    // cpu3 user = 1000*3+100 ticks at USER_HZ 100; its guest 777 is not added anywhere.
    assert_eq!(get("cpu3", "user"), Some(31.0));
    assert_eq!(get("cpu3", "steal"), Some(0.03));
    assert_eq!(get("cpu5", "user"), None, "malformed line dropped");
    assert_eq!(
        get("cpu6", "user"),
        Some(61.0),
        "the lines after a malformed one survive"
    );
    assert_eq!(get("cpu7", "wait"), None);
    assert_eq!(get("cpu127", "idle"), Some((90000.0 + 127.0 * 7.0) / 100.0));
    let cpus: BTreeSet<&str> = points(m).iter().filter_map(|p| attr(p, "cpu")).collect();
    assert_eq!(
        cpus.len(),
        127,
        "128 cpus minus the malformed one; no aggregate line"
    );
}

#[test]
fn timestamps_and_start_times() {
    let (_t, first, _, second, _) = two_cycles("edge");
    for (ms, now) in [(&first, T0), (&second, T0 + STEP)] {
        for m in ms.iter() {
            let is_sum = matches!(m.data, Some(metric::Data::Sum(_)));
            for p in points(m) {
                assert_eq!(p.time_unix_nano, now, "{}", m.name);
                let start = if is_sum { EDGE_BTIME_NS } else { 0 };
                assert_eq!(p.start_time_unix_nano, start, "{}", m.name);
            }
        }
    }
}

#[test]
fn emitted_metrics_match_their_table_rows() {
    let tables = metric_tables();
    let defs: BTreeMap<&str, _> = tables
        .iter()
        .flat_map(|(_, t)| t.iter())
        .map(|d| (d.name, d))
        .collect();
    assert_eq!(
        defs.len(),
        tables.iter().map(|(_, t)| t.len()).sum::<usize>(),
        "names are unique"
    );
    let mut seen = BTreeSet::new();
    for fx in ["host1", "edge"] {
        let (_t, first, _, second, _) = two_cycles(fx);
        for m in first.iter().chain(&second) {
            let d = defs
                .get(m.name.as_str())
                .unwrap_or_else(|| panic!("{} not in a table", m.name));
            seen.insert(d.name);
            assert_eq!(m.unit, d.unit, "{}", m.name);
            assert_eq!(m.description, d.help, "{}", m.name);
            match (&m.data, d.kind) {
                (Some(metric::Data::Gauge(_)), MetricKind::Gauge) => {}
                (Some(metric::Data::Sum(s)), MetricKind::Counter) => assert!(s.is_monotonic),
                (Some(metric::Data::Sum(s)), MetricKind::UpDownCounter) => assert!(!s.is_monotonic),
                _ => panic!("{}: kind differs from the table", m.name),
            }
            assert!(!points(m).is_empty(), "{} has no points", m.name);
            let want: BTreeSet<&str> = d.attributes.iter().copied().collect();
            for p in points(m) {
                let ok = matches!(
                    (&p.value, d.value),
                    (Some(number_data_point::Value::AsInt(_)), ValueType::Int)
                        | (
                            Some(number_data_point::Value::AsDouble(_)),
                            ValueType::Double
                        )
                );
                assert!(ok, "{}: value type differs from the table", m.name);
                let got: BTreeSet<&str> = p.attributes.iter().map(|kv| kv.key.as_str()).collect();
                assert_eq!(got, want, "{}", m.name);
                assert!(value(p).is_finite());
            }
        }
    }
    let all: BTreeSet<&str> = defs.keys().copied().collect();
    assert_eq!(seen, all, "every table row is exercised by a fixture");
}

/// MemTotal in bytes, read independently of the collector.
fn mem_total(fixture_name: &str) -> f64 {
    let text = std::fs::read_to_string(fixture(fixture_name).join("proc/meminfo")).unwrap();
    let line = text.lines().find(|l| l.starts_with("MemTotal:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<f64>()
        .unwrap()
        * 1024.0
}

#[test]
fn memory_states_sum_to_memtotal() {
    for fx in ["host1", "edge"] {
        let tree = TempTree::copy_of(fx, "mem");
        let mut c = collector(&tree.root, SystemOptions::default());
        let mut out = Vec::new();
        c.collect_at(T0, &mut out);
        let usage = find(&out, "system.memory.usage").unwrap();
        let states: BTreeSet<&str> = points(usage)
            .iter()
            .filter_map(|p| attr(p, "state"))
            .collect();
        assert_eq!(
            states,
            BTreeSet::from([
                "used",
                "free",
                "buffered",
                "cached",
                "slab_reclaimable",
                "slab_unreclaimable"
            ])
        );
        let sum: f64 = points(usage).iter().map(value).sum();
        assert_eq!(sum, mem_total(fx), "{fx}");
        let limit = value(&points(find(&out, "system.memory.limit").unwrap())[0]);
        assert_eq!(limit, mem_total(fx));
        let util: f64 = points(find(&out, "system.memory.utilization").unwrap())
            .iter()
            .map(value)
            .sum();
        assert!(
            (util - 1.0).abs() < 1e-9,
            "{fx}: utilization sums to {util}"
        );
    }
}

#[test]
fn filesystem_selection() {
    let tree = TempTree::copy_of("edge", "fs");
    let mut c = collector(&tree.root, SystemOptions::default());
    let mut out = Vec::new();
    c.collect_at(T0, &mut out);
    let usage = find(&out, "system.filesystem.usage").unwrap();
    let mut mounts: BTreeMap<&str, (&str, &str, &str)> = BTreeMap::new();
    for p in points(usage) {
        mounts.insert(
            attr(p, "mountpoint").unwrap(),
            (
                attr(p, "device").unwrap(),
                attr(p, "type").unwrap(),
                attr(p, "mode").unwrap(),
            ),
        );
    }
    let expected = BTreeMap::from([
        ("/", ("/dev/sda1", "ext4", "rw")),
        ("/run", ("tmpfs", "tmpfs", "rw")),
        ("/mnt/my disk", ("/dev/sda2", "ext4", "rw")),
        ("/media/ro\ttab", ("/dev/sdb1", "vfat", "ro")),
        ("/data", ("/dev/sdd1", "btrfs", "rw")), // the later mount hides the earlier
        ("/srv/back\\slash", ("/dev/sdf1", "ext4", "rw")),
        ("/var/lib/docker", ("/dev/sde2", "ext4", "rw")),
        ("/mnt/nfs", ("nfs.example:/export", "nfs4", "rw")),
        ("/mnt/ssh", ("u@h:/home", "fuse.sshfs", "ro")),
    ]);
    assert_eq!(mounts, expected);
    // Used + free + reserved is the size; the vfat mount has no inode counts.
    let inodes = find(&out, "system.filesystem.inodes.usage").unwrap();
    assert!(
        points(inodes)
            .iter()
            .all(|p| attr(p, "mountpoint") != Some("/media/ro\ttab"))
    );
    assert_eq!(points(inodes).len(), 2 * (expected.len() - 1));
}

/// The export path's wire form: every metric decodes, its point count is the one the
/// encoder is told, and through the trait (as the agent calls it) everything is in the wire
/// form. That the content is unchanged is what the golden files above check (`collect` is
/// the wire form decoded).
#[test]
fn encoded_metrics_decode_with_their_point_counts() {
    for fx in ["host1", "edge", "missing"] {
        let tree = TempTree::copy_of(fx, "wire");
        let mut c = collector(&tree.root, SystemOptions::default());
        for cycle in 0..2 {
            if cycle == 1 && tree.root.join("stat.next").exists() {
                tree.copy_in("stat.next", "proc/stat");
            }
            let mut encoded = Vec::new();
            c.collect_encoded_at(T0 + cycle * STEP, &mut encoded);
            assert!(!encoded.is_empty(), "{fx}");
            for e in &encoded {
                let m = e.decode().unwrap_or_else(|err| panic!("{fx}: {err}"));
                assert_eq!(e.points, points(&m).len(), "{fx} {}", m.name);
            }
        }
        let (mut out, mut encoded) = (Vec::new(), Vec::new());
        tfo_collectors::Collector::collect_encoded(&mut c, &mut out, &mut encoded);
        assert!(out.is_empty() && !encoded.is_empty(), "{fx}");
    }
}

/// Within one cycle of shared reads (the agent runs `system` and `node_exporter` one after
/// the other on one thread), /proc/stat is read once: a change after the node collector
/// read it is not seen by the system collector until the next cycle.
#[test]
fn collectors_of_one_cycle_share_a_read() {
    use tfo_collectors::{NodeCollector, NodeOptions, SharedReads};
    let total = |ms: &[Metric]| -> f64 {
        points(find(ms, "system.cpu.time").expect("cpu time"))
            .iter()
            .map(value)
            .sum()
    };
    let tree = TempTree::copy_of("host1", "shared");
    let paths = tfo_collectors::HostPaths::from_root(&tree.root);
    let node_opts = NodeOptions {
        cpu: true,
        ..NodeOptions::none()
    };
    let mut node = NodeCollector::new(paths, node_opts).expect("valid options");
    let mut system = collector(&tree.root, SystemOptions::default());
    let (mut first, mut shared, mut after) = (Vec::new(), Vec::new(), Vec::new());
    system.collect_at(T0, &mut first);
    {
        let _cycle = SharedReads::begin();
        node.collect_at(T0 + STEP, &mut Vec::new());
        tree.copy_in("stat.next", "proc/stat");
        system.collect_at(T0 + STEP, &mut shared);
    }
    system.collect_at(T0 + 2 * STEP, &mut after);
    assert_eq!(total(&shared), total(&first), "read once in the cycle");
    assert!(
        total(&after) > total(&first),
        "read again in the next cycle"
    );
}

/// In a container (a host root other than /) the host's mount table (/proc/1/mounts) is
/// preferred; after cycles that had to fall back to our own, the host's is used again once
/// it can be read (a missing /proc file is looked up again every 8th read: `node::kept`).
/// The fallback is the real /proc/self/mounts, whose table is otherwise reused while poll(2)
/// reports no change.
#[test]
fn the_preferred_mount_table_is_tried_again_after_a_fallback() {
    let tree = TempTree::copy_of("host1", "mounts");
    std::fs::remove_file(tree.root.join("proc/1/mounts")).unwrap();
    std::fs::remove_dir_all(tree.root.join("proc/self")).unwrap();
    std::os::unix::fs::symlink("/proc/self", tree.root.join("proc/self")).unwrap();
    let mut c = collector(&tree.root, SystemOptions::default());
    let mountpoints = |ms: &[Metric]| -> BTreeSet<String> {
        points(find(ms, "system.filesystem.usage").expect("filesystem usage"))
            .iter()
            .map(|p| attr(p, "mountpoint").unwrap().to_string())
            .collect()
    };
    let mut out = Vec::new();
    c.collect_at(T0, &mut out);
    assert!(
        !mountpoints(&out).contains("/data"),
        "{:?}",
        mountpoints(&out)
    );
    std::fs::write(
        tree.root.join("proc/1/mounts"),
        "/dev/sdz1 /data ext4 rw 0 0\n",
    )
    .unwrap();
    let data = BTreeSet::from(["/data".to_string()]);
    let switched = (1..=9).find(|&i| {
        out.clear();
        c.collect_at(T0 + i * STEP, &mut out);
        mountpoints(&out) == data
    });
    assert!(switched.is_some(), "still {:?}", mountpoints(&out));
}
