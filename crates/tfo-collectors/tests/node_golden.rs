//! End-to-end: fixture /proc and /sys trees through `NodeCollector`, compared with golden
//! text (OTLP rendering and node_exporter exposition), plus the metric table contract.
//! `UPDATE_GOLDEN=1 cargo test -p tfo-collectors --test node_golden` rewrites the goldens.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::Path;
use std::sync::Arc;

use common::*;
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric};
use tfo_collectors::node::{Adjtimex, TimexState, metric_tables};
use tfo_collectors::render::render_text;
use tfo_collectors::system::{FsStats, StatFs};
use tfo_collectors::{
    HostPaths, MetricKind, NodeCollector, NodeOptions, PatternFilter, PromKind, ValueType,
    render_node_exporter,
};

/// adjtimex(2) answers of a clock synchronised by NTP with a small offset.
pub struct FixedTimex;

impl Adjtimex for FixedTimex {
    fn adjtimex(&self) -> io::Result<TimexState> {
        Ok(TimexState {
            clock_state: 0,
            offset: -1500,
            freq: -655360,
            maxerror: 16000,
            esterror: 500,
            status: 0x2001,
            constant: 7,
            tick: 10000,
            ppsfreq: 65536,
            jitter: 2000,
            shift: 4,
            stabil: 131072,
            jitcnt: 1,
            calcnt: 2,
            errcnt: 3,
            stbcnt: 4,
            tai: 37,
        })
    }
}

/// The common fake statvfs, failing for `/mnt/fail`.
struct FixtureStatFs(FakeStatFs);

impl StatFs for FixtureStatFs {
    fn statfs(&self, path: &Path) -> io::Result<FsStats> {
        if path.ends_with("mnt/fail") {
            return Err(io::Error::from_raw_os_error(5)); // EIO
        }
        self.0.statfs(path)
    }
}

fn all_on() -> NodeOptions {
    NodeOptions {
        cpu_frequency: true,
        cpu_throttles: true,
        ..NodeOptions::default()
    }
}

fn node(root: &Path, opts: NodeOptions) -> NodeCollector {
    NodeCollector::new(HostPaths::from_root(root), opts)
        .expect("valid options")
        .with_statfs(Arc::new(FixtureStatFs(FakeStatFs {
            root: root.to_path_buf(),
        })))
        .with_adjtimex(Arc::new(FixedTimex))
        .with_user_hz(100)
        .with_page_size(4096)
}

struct Cycles {
    _tree: TempTree,
    first: Vec<Metric>,
    e1: String,
    second: Vec<Metric>,
    e2: String,
}

/// Two cycles over a fixture: the second with `stat.next` as /proc/stat, if present.
fn two_cycles(fixture_name: &str, opts: NodeOptions) -> Cycles {
    let tree = TempTree::copy_of(fixture_name, "node");
    let mut c = node(&tree.root, opts);
    let mut first = Vec::new();
    let r1 = c.collect_at(T0, &mut first);
    if tree.root.join("stat.next").exists() {
        tree.copy_in("stat.next", "proc/stat");
    }
    let mut second = Vec::new();
    let r2 = c.collect_at(T0 + STEP, &mut second);
    let e1 = render_errors(&r1, &tree.root);
    let e2 = render_errors(&r2, &tree.root);
    Cycles {
        _tree: tree,
        first,
        e1,
        second,
        e2,
    }
}

fn prom_text(ms: &[Metric]) -> String {
    let mut s = String::new();
    render_node_exporter(ms, &mut s);
    s
}

#[test]
fn node_host_golden() {
    let c = two_cycles("node-host", all_on());
    assert_eq!(c.e1, "", "a real host snapshot parses cleanly");
    assert_eq!(c.e2, "");
    assert!(
        find(&c.first, "node.cpu.usage").is_none(),
        "no usage on the first cycle"
    );
    assert!(find(&c.second, "node.cpu.usage").is_some());
    check_golden("node-host.txt", &render_text(&c.first));
    check_golden("node-host-next.txt", &render_text(&c.second));
    check_golden("node-host.prom", &prom_text(&c.first));
}

#[test]
fn node_edge_golden() {
    let c = two_cycles("node-edge", all_on());
    check_golden(
        "node-edge.txt",
        &format!("{}{}", c.e1, render_text(&c.first)),
    );
    check_golden(
        "node-edge-next.txt",
        &format!("{}{}", c.e2, render_text(&c.second)),
    );
    check_golden("node-edge.prom", &prom_text(&c.first));
}

#[test]
fn node_missing_golden() {
    // Only /proc/stat: required files are reported, optional kernel features are not.
    let c = two_cycles("node-missing", all_on());
    check_golden(
        "node-missing.txt",
        &format!("{}{}", c.e1, render_text(&c.first)),
    );
    for optional in [
        "pressure",
        "schedstat",
        "conntrack",
        "snmp6",
        "sockstat6",
        "thermal",
        "hwmon",
        "class/net",
        "devices/system/cpu",
    ] {
        assert!(!c.e1.contains(optional), "{optional} reported:\n{}", c.e1);
    }
    for required in [
        "meminfo",
        "diskstats",
        "loadavg",
        "vmstat",
        "mounts",
        "net/dev",
        "file-nr",
    ] {
        assert!(
            c.e1.contains(required),
            "{required} not reported:\n{}",
            c.e1
        );
    }
}

fn category(name: &str) -> &str {
    name.split('.').nth(1).unwrap_or("")
}

#[test]
fn tables_follow_the_naming_and_mapping_rules() {
    let mut names = BTreeSet::new();
    let mut prom_names = BTreeSet::new();
    let mut per_category: BTreeMap<&str, usize> = BTreeMap::new();
    for (sub, table) in metric_tables() {
        for d in table {
            assert!(d.name.starts_with("node."), "{sub}: {}", d.name);
            assert!(names.insert(d.name), "duplicate {}", d.name);
            assert!(!d.help.is_empty() && !d.source.is_empty(), "{}", d.name);
            assert!(!d.unit.is_empty(), "{}: UCUM unit missing", d.name);
            // Dot-separated names must not also be a namespace of another name.
            *per_category.entry(category(d.name)).or_default() += 1;
            if let Some(p) = &d.prom {
                assert!(
                    prom_names.insert(p.name),
                    "duplicate node_exporter name {}",
                    p.name
                );
                assert!(p.name.starts_with("node_"), "{}", p.name);
                assert!(
                    p.name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "{}",
                    p.name
                );
                assert_eq!(
                    p.labels.len(),
                    d.attributes.len(),
                    "{}: one label per attribute",
                    d.name
                );
                assert_eq!(
                    p.kind == PromKind::Counter,
                    p.name.ends_with("_total"),
                    "{}: counters and only counters end in _total",
                    p.name
                );
                if p.kind == PromKind::Counter {
                    assert_eq!(d.kind, MetricKind::Counter, "{}", d.name);
                }
            }
        }
    }
    for n in &names {
        assert!(
            !names.iter().any(|m| m.starts_with(&format!("{n}."))),
            "{n} is both a metric and a namespace"
        );
    }
    let seed = [
        ("cpu", 15),
        ("memory", 20),
        ("disk", 12),
        ("filesystem", 8),
        ("network", 18),
        ("load", 3),
    ];
    let mut others = 0;
    for (cat, n) in &per_category {
        match seed.iter().find(|(c, _)| c == cat) {
            Some((_, want)) => assert!(n >= want, "{cat}: {n} < {want}"),
            None => others += n,
        }
    }
    assert!(others >= 24, "others: {others}");
    assert!(names.len() >= 100, "{} metrics", names.len());
    println!(
        "metric names per category: {per_category:?}, others {others}, total {}",
        names.len()
    );
}

#[test]
fn emitted_metrics_match_their_table_rows() {
    let c = two_cycles("node-edge", all_on());
    let rows: BTreeMap<&str, _> = metric_tables()
        .into_iter()
        .flat_map(|(_, t)| t.iter())
        .map(|d| (d.name, d))
        .collect();
    for m in c.first.iter().chain(&c.second) {
        let d = rows
            .get(m.name.as_str())
            .unwrap_or_else(|| panic!("{} not in a table", m.name));
        assert_eq!(m.description, d.help, "{}", m.name);
        assert_eq!(m.unit, d.unit, "{}", m.name);
        let (pts, kind) = match &m.data {
            Some(metric::Data::Gauge(g)) => (&g.data_points, MetricKind::Gauge),
            Some(metric::Data::Sum(s)) if s.is_monotonic => (&s.data_points, MetricKind::Counter),
            Some(metric::Data::Sum(s)) => (&s.data_points, MetricKind::UpDownCounter),
            _ => panic!("{}: not a number metric", m.name),
        };
        assert_eq!(kind, d.kind, "{}", m.name);
        for p in pts {
            let keys: Vec<&str> = p.attributes.iter().map(|kv| kv.key.as_str()).collect();
            assert_eq!(keys, d.attributes, "{}", m.name);
            let is_int = matches!(
                p.value,
                Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(_))
            );
            assert_eq!(is_int, d.value == ValueType::Int, "{}", m.name);
            assert_eq!(p.time_unix_nano % STEP, T0 % STEP);
            let want_start = if d.kind == MetricKind::Gauge {
                0
            } else {
                1_700_000_000 * 1_000_000_000
            };
            assert_eq!(
                p.start_time_unix_nano, want_start,
                "{}: counters start at boot",
                m.name
            );
        }
    }
}

#[test]
fn every_category_of_the_catalog_is_emitted_from_the_edge_tree() {
    let c = two_cycles("node-edge", all_on());
    let got = names(&c.second);
    let mut missing = Vec::new();
    for (_, table) in metric_tables() {
        for d in table {
            if !got.contains(d.name) {
                missing.push(d.name);
            }
        }
    }
    // What the edge tree deliberately lacks: no IPv6 (snmp6, sockstat6), no memory pressure
    // file, no cpu `full` line, and fields its meminfo does not print.
    let allowed = |n: &str| {
        n.contains("6.")
            // Deliberately malformed in the edge tree: the 15m load, io `full`, oom_kill
            // and poolsize.
            || n == "node.load.15m"
            || n.starts_with("node.pressure.io.stalled")
            || n == "node.vmstat.oom_kill"
            || n == "node.entropy.pool_size"
            || n.starts_with("node.pressure.memory")
            || n.starts_with("node.pressure.cpu.stalled")
            || n.starts_with("node.memory.")
            || n.starts_with("node.sockstat.")
            || n.starts_with("node.netstat.")
    };
    let unexpected: Vec<_> = missing.iter().filter(|n| !allowed(n)).collect();
    assert!(unexpected.is_empty(), "not emitted: {unexpected:?}");
}

#[test]
fn node_exporter_names_and_labels() {
    let c = two_cycles("node-edge", all_on());
    let text = prom_text(&c.second);
    for line in [
        "node_cpu_seconds_total{cpu=\"0\",mode=\"user\"} 100.7",
        "node_network_receive_bytes_total{device=\"eth0\"} 123456789",
        "node_network_speed_bytes{device=\"eth0\"} 125000000",
        "node_filesystem_avail_bytes{device=\"/dev/sdb1\",mountpoint=\"/mnt/my disk\",fstype=\"xfs\"} ",
        "node_filesystem_readonly{device=\"/dev/sdb1\",mountpoint=\"/mnt/my disk\",fstype=\"xfs\"} 1",
        "node_filesystem_device_error{device=\"/dev/sdc1\",mountpoint=\"/mnt/fail\",fstype=\"vfat\"} 1",
        "node_memory_MemTotal_bytes 16777216000",
        "node_memory_Active_anon_bytes 524288000",
        "node_memory_HugePages_Total 16",
        "node_thermal_zone_temp{zone=\"1\",type=\"acpitz\"} -2.5",
        "node_cooling_device_max_state{name=\"0\",type=\"Processor\"} 10",
        "node_hwmon_temp_celsius{chip=\"coretemp\",sensor=\"temp1\"} 42",
        "node_hwmon_in_volts{chip=\"nct6775_super_io\",sensor=\"in0\"} 1.104",
        "node_hwmon_temp_celsius{chip=\"hwmon2\",sensor=\"temp3\"} 30.5",
        "node_nf_conntrack_stat_found 21",
        "node_netstat_Tcp_CurrEstab 7",
        "node_netstat_IpExt_InOctets 1000000",
        "node_sockstat_TCP_mem_bytes 49152",
        "node_pressure_cpu_waiting_seconds_total 123.456789",
        "node_timex_sync_status 1",
        "node_timex_offset_seconds -0.0000015",
        "node_timex_frequency_adjustment_ratio 0.99999",
        "node_cpu_scaling_frequency_hertz{cpu=\"0\"} 1800000000",
        "node_cpu_core_throttles_total{core=\"1\",package=\"0\"} 3",
        "node_cpu_package_throttles_total{package=\"0\"} 7",
        "node_schedstat_running_seconds_total{cpu=\"1\"} 2.5",
        "node_boot_time_seconds 1700000000",
        "node_context_switches_total 987654321",
        "node_disk_flush_requests_total{device=\"dm-0\"} 8",
        "node_load1 0.5",
    ] {
        assert!(text.contains(line), "missing `{line}` in\n{text}");
    }
    for absent in [
        "device=\"sda1\"",
        "device=\"loop0\"",
        "device=\"zram0\"",
        "mountpoint=\"/proc\"",
        "mountpoint=\"/var/lib/docker/overlay2/abc/merged\"",
        "fstype=\"cgroup2\"",
        "node_load15",
        "node_network_speed_bytes{device=\"veth1a2b\"}",
    ] {
        assert!(!text.contains(absent), "unexpected `{absent}`");
    }
    // HELP and TYPE once per family.
    let mut seen = BTreeSet::new();
    for l in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        assert!(seen.insert(l.to_string()), "{l} twice");
    }
}

#[test]
fn cpu_usage_is_a_per_cpu_distribution() {
    let c = two_cycles("node-edge", NodeOptions::default());
    let m = find(&c.second, "node.cpu.usage").expect("usage on the second cycle");
    let mut by_cpu: BTreeMap<String, f64> = BTreeMap::new();
    for p in points(m) {
        *by_cpu
            .entry(attr(p, "cpu").unwrap().to_string())
            .or_default() += value(p);
    }
    for (cpu, total) in &by_cpu {
        assert!((total - 1.0).abs() < 1e-9, "cpu {cpu}: {total}");
    }
    // cpu3 went backwards and cpu9 came online: skipped. 63 CPUs in the first cycle.
    assert!(!by_cpu.contains_key("3") && !by_cpu.contains_key("9"));
    assert_eq!(by_cpu.len(), 62);
    let count = find(&c.first, "node.cpu.count").map(|m| value(&points(m)[0]));
    assert_eq!(count, Some(63.0));
    let util = find(&c.second, "node.cpu.utilization").map(|m| value(&points(m)[0]));
    assert!(util.is_some_and(|u| (0.0..=1.0).contains(&u)));
}

#[test]
fn toggles_select_sub_collectors() {
    /// Turns one toggle on, and the metric name prefixes it must produce.
    type Case = (fn(&mut NodeOptions), &'static [&'static str]);
    let cases: &[Case] = &[
        (|o| o.cpu = true, &["node.cpu."]),
        (|o| o.memory = true, &["node.memory."]),
        (|o| o.disk_io = true, &["node.disk."]),
        (|o| o.filesystem = true, &["node.filesystem."]),
        (|o| o.network = true, &["node.network."]),
        (|o| o.load_avg = true, &["node.load."]),
        (|o| o.thermal = true, &["node.thermal."]),
        (|o| o.pressure = true, &["node.pressure."]),
        (|o| o.vmstat = true, &["node.vmstat."]),
        (|o| o.sockstat = true, &["node.sockstat."]),
        (|o| o.netstat = true, &["node.netstat."]),
        (|o| o.entropy = true, &["node.entropy."]),
        (|o| o.filefd = true, &["node.filefd."]),
        (|o| o.conntrack = true, &["node.conntrack."]),
        (|o| o.hwmon = true, &["node.hwmon."]),
        (|o| o.timex = true, &["node.timex."]),
        (|o| o.cpu_frequency = true, &["node.cpu.frequency"]),
        (|o| o.cpu_throttles = true, &["node.cpu.thermal."]),
    ];
    let always = ["node.system.", "node.processes."];
    let tree = TempTree::copy_of("node-edge", "toggles");
    for (enable, prefixes) in cases {
        let mut o = NodeOptions::none();
        enable(&mut o);
        let mut out = Vec::new();
        node(&tree.root, o.clone()).collect_at(T0, &mut out);
        let got = names(&out);
        for n in &got {
            assert!(
                prefixes.iter().chain(&always).any(|p| n.starts_with(p)),
                "{o:?}: unexpected {n}"
            );
        }
        assert!(
            got.iter()
                .any(|n| prefixes.iter().any(|p| n.starts_with(p))),
            "{prefixes:?}: nothing emitted"
        );
    }
    // Per-CPU sysfs is not touched by default.
    let mut out = Vec::new();
    node(&tree.root, NodeOptions::default()).collect_at(T0, &mut out);
    assert!(find(&out, "node.cpu.frequency").is_none());
    assert!(find(&out, "node.cpu.thermal.core_throttles").is_none());
}

fn label_values(ms: &[Metric], metric: &str, key: &str) -> BTreeSet<String> {
    find(ms, metric)
        .map(|m| {
            points(m)
                .iter()
                .filter_map(|p| attr(p, key))
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn filters_select_devices_mounts_and_interfaces() {
    let tree = TempTree::copy_of("node-edge", "filters");
    let mut out = Vec::new();
    node(&tree.root, NodeOptions::default()).collect_at(T0, &mut out);
    assert_eq!(
        label_values(&out, "node.disk.io.reads", "device"),
        ["dm-0", "md127", "mmcblk0", "nvme0n1", "sda", "sr0"]
            .map(String::from)
            .into(),
    );
    assert_eq!(
        label_values(&out, "node.filesystem.device_error", "mountpoint"),
        [
            "/",
            "/mnt/fail",
            "/mnt/my disk",
            "/run",
            "/srv/nfs",
            "/var/lib/docker"
        ]
        .map(String::from)
        .into(),
    );
    assert_eq!(
        label_values(&out, "node.network.bytes_recv", "interface"),
        ["eth0", "lo", "veth1a2b"].map(String::from).into(),
    );

    let opts = NodeOptions {
        disk_devices: PatternFilter {
            include: Some("^(sd|nvme)".into()),
            exclude: Some("p[0-9]+$".into()),
        },
        mount_points: PatternFilter::exclude("^/(run|srv)"),
        fs_types: PatternFilter {
            include: None,
            exclude: Some("^(xfs|proc|cgroup2|overlay)$".into()),
        },
        network_interfaces: PatternFilter::exclude("^(lo|veth.*)$"),
        ..NodeOptions::default()
    };
    let mut out = Vec::new();
    node(&tree.root, opts).collect_at(T0, &mut out);
    assert_eq!(
        label_values(&out, "node.disk.io.reads", "device"),
        ["nvme0n1", "sda", "sda1"].map(String::from).into(),
    );
    assert_eq!(
        label_values(&out, "node.filesystem.size", "mountpoint"),
        ["/", "/var/lib/docker"].map(String::from).into(),
    );
    assert_eq!(
        label_values(&out, "node.network.bytes_recv", "interface"),
        ["eth0"].map(String::from).into(),
    );
    assert_eq!(
        label_values(&out, "node.network.mtu", "interface"),
        ["eth0", "wlan0"].map(String::from).into(),
        "netclass uses the same filter"
    );
}

#[test]
fn garbage_in_one_file_drops_only_its_metrics() {
    // Each file of the host snapshot and the metric prefix only it feeds.
    let files: &[(&str, &str)] = &[
        ("proc/meminfo", "node.memory."),
        ("proc/diskstats", "node.disk."),
        ("proc/loadavg", "node.load."),
        ("proc/vmstat", "node.vmstat."),
        ("proc/net/dev", "node.network.bytes"),
        ("proc/net/sockstat", "node.sockstat.tcp."),
        ("proc/net/netstat", "node.netstat.tcp_ext."),
        ("proc/net/snmp", "node.netstat.tcp."),
        ("proc/pressure/io", "node.pressure.io."),
        ("proc/sys/fs/file-nr", "node.filefd."),
        ("proc/net/stat/nf_conntrack", "node.conntrack.found"),
    ];
    let baseline = {
        let mut out = Vec::new();
        let tree = TempTree::copy_of("node-host", "garbage-base");
        node(&tree.root, NodeOptions::default()).collect_at(T0, &mut out);
        names(&out)
    };
    for (rel, prefix) in files {
        let tree = TempTree::copy_of("node-host", "garbage");
        tree.write(
            rel,
            b"Tcp: a b\nTcpExt: garbage \xff\x00 here\n12 x y\nsome avg10=x\n",
        );
        let mut out = Vec::new();
        let report = node(&tree.root, NodeOptions::default()).collect_at(T0, &mut out);
        let got = names(&out);
        let name = Path::new(rel).file_name().unwrap().to_str().unwrap();
        assert!(
            report.errors.iter().any(|e| e.to_string().contains(name)),
            "{rel}: no error reported: {report:?}"
        );
        assert!(
            !got.iter().any(|n| n.starts_with(prefix)),
            "{rel}: {prefix} still emitted"
        );
        let lost: Vec<_> = baseline
            .difference(&got)
            .filter(|n| !n.starts_with(prefix))
            .collect();
        // Only the file's own metrics may go (snmp also feeds udp/icmp/ip rows).
        let own = |n: &str| match *rel {
            "proc/net/snmp" => n.starts_with("node.netstat."),
            "proc/net/netstat" => n.starts_with("node.netstat."),
            "proc/net/sockstat" => n.starts_with("node.sockstat."),
            "proc/net/dev" => n.starts_with("node.network."),
            "proc/net/stat/nf_conntrack" => n.starts_with("node.conntrack."),
            _ => false,
        };
        let foreign: Vec<_> = lost.into_iter().filter(|n| !own(n)).collect();
        assert!(foreign.is_empty(), "{rel}: also lost {foreign:?}");
    }
}

#[test]
fn counters_and_usage_across_cycles_on_the_host_snapshot() {
    let c = two_cycles("node-host", NodeOptions::default());
    let get = |ms: &[Metric], cpu: &str, mode: &str| {
        find(ms, "node.cpu.time").and_then(|m| {
            points(m)
                .iter()
                .find(|p| attr(p, "cpu") == Some(cpu) && attr(p, "mode") == Some(mode))
                .map(value)
        })
    };
    let (a, b) = (
        get(&c.first, "0", "user").unwrap(),
        get(&c.second, "0", "user").unwrap(),
    );
    assert!(
        (b - a - 12.0).abs() < 1e-6,
        "stat.next adds 1200 user ticks to cpu0"
    );
    let usage = find(&c.second, "node.cpu.usage").unwrap();
    let user0 = points(usage)
        .iter()
        .find(|p| attr(p, "cpu") == Some("0") && attr(p, "mode") == Some("user"))
        .map(value)
        .unwrap();
    assert!((user0 - 1200.0 / 1450.0).abs() < 1e-12, "{user0}");
}

#[test]
fn live_host_parses_cleanly() {
    let mut c = NodeCollector::new(HostPaths::default(), all_on()).expect("defaults");
    let mut out = Vec::new();
    let report = c.collect_at(T0, &mut out);
    let parse_errors: Vec<_> = report
        .errors
        .iter()
        .filter(|e| matches!(e, tfo_collectors::CollectError::Parse { .. }))
        .collect();
    assert!(parse_errors.is_empty(), "{parse_errors:?}");
    for must in [
        "node.cpu.time",
        "node.memory.total",
        "node.load.1m",
        "node.system.boot_time",
    ] {
        assert!(find(&out, must).is_some(), "{must} missing on this host");
    }
}

/// statvfs that blocks on the NFS mount until released, counting calls.
struct HangingNfs {
    inner: FixtureStatFs,
    gate: Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
    calls: Arc<std::sync::atomic::AtomicUsize>,
}

impl StatFs for HangingNfs {
    fn statfs(&self, path: &Path) -> io::Result<FsStats> {
        if path.ends_with("srv/nfs") {
            self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let (lock, cv) = &*self.gate;
            let mut open = lock.lock().unwrap();
            while !*open {
                open = cv.wait(open).unwrap();
            }
        }
        self.inner.statfs(path)
    }
}

fn device_error(ms: &[Metric], mountpoint: &str) -> Option<f64> {
    find(ms, "node.filesystem.device_error").and_then(|m| {
        points(m)
            .iter()
            .find(|p| attr(p, "mountpoint") == Some(mountpoint))
            .map(value)
    })
}

#[test]
fn hung_nfs_mount_is_marked_and_skipped_until_it_returns() {
    let root = fixture("node-edge");
    let gate = Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let statfs = HangingNfs {
        inner: FixtureStatFs(FakeStatFs { root: root.clone() }),
        gate: Arc::clone(&gate),
        calls: Arc::clone(&calls),
    };
    let mut c = node(&root, NodeOptions::default())
        .with_statfs(Arc::new(statfs))
        .with_remote_statfs_timeout(std::time::Duration::from_millis(200));
    for cycle in 0..2 {
        let mut out = Vec::new();
        let report = c.collect_at(T0 + cycle * STEP, &mut out);
        assert_eq!(device_error(&out, "/srv/nfs"), Some(1.0), "cycle {cycle}");
        assert_eq!(
            device_error(&out, "/"),
            Some(0.0),
            "other mounts unaffected"
        );
        assert!(
            report
                .errors
                .iter()
                .any(|e| e.to_string().contains("srv/nfs"))
        );
        assert_eq!(c.stuck_mounts(), 1);
    }
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "a stuck mount is not statted again"
    );
    {
        let (lock, cv) = &*gate;
        *lock.lock().unwrap() = true;
        cv.notify_all();
    }
    // The helper returns; a later cycle stats the mount again and reports it.
    let mut recovered = false;
    for cycle in 2..200 {
        let mut out = Vec::new();
        c.collect_at(T0 + cycle * STEP, &mut out);
        if device_error(&out, "/srv/nfs") == Some(0.0) {
            recovered = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(recovered, "the mount came back once its statvfs returned");
    assert_eq!(c.stuck_mounts(), 0);
}

/// Files and directories are kept open between cycles; what changes between two cycles
/// must still be what the second cycle reports, as if every file were opened afresh.
#[test]
fn devices_and_files_that_change_between_cycles() {
    let tree = TempTree::copy_of("node-edge", "changes");
    let mut c = node(&tree.root, NodeOptions::default());
    let cycle = |c: &mut NodeCollector, i: u64| {
        let mut out = Vec::new();
        c.collect_at(T0 + i * STEP, &mut out);
        out
    };
    let first = cycle(&mut c, 0);
    let kept = c.kept_descriptors();
    assert!(
        kept > 10 && kept <= tfo_collectors::node::MAX_KEPT_FDS,
        "{kept}"
    );
    let ifaces = label_values(&first, "node.network.mtu", "interface");
    assert!(
        ifaces.contains("eth0") && !ifaces.contains("eth9"),
        "{ifaces:?}"
    );
    assert!(find(&first, "node.pressure.memory.waiting.time").is_none());

    // An interface goes, another comes; a value is rewritten in place, another file is
    // replaced by rename; a hwmon chip is replaced by one with other sensors.
    let net = tree.root.join("sys/class/net");
    std::fs::remove_dir_all(net.join("eth0")).unwrap();
    std::fs::create_dir(net.join("eth9")).unwrap();
    tree.write("sys/class/net/eth9/operstate", b"up\n");
    tree.write("sys/class/net/eth9/mtu", b"9000\n");
    tree.write("sys/class/net/wlan0/mtu", b"1280\n");
    tree.write("sys/class/net/lo/mtu.new", b"1234\n");
    std::fs::rename(net.join("lo/mtu.new"), net.join("lo/mtu")).unwrap();
    let chip = tree.root.join("sys/class/hwmon/hwmon2");
    std::fs::remove_dir_all(&chip).unwrap();
    std::fs::create_dir(&chip).unwrap();
    tree.write("sys/class/hwmon/hwmon2/name", b"newchip\n");
    tree.write("sys/class/hwmon/hwmon2/temp7_input", b"41000\n");
    tree.write("proc/pressure/memory", b"some avg10=0.00 avg60=0.00 avg300=0.00 total=7000000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=3000000\n");

    let second = cycle(&mut c, 1);
    let mtu = |ms: &[Metric], dev: &str| {
        find(ms, "node.network.mtu").and_then(|m| {
            points(m)
                .iter()
                .find(|p| attr(p, "interface") == Some(dev))
                .map(value)
        })
    };
    assert_eq!(mtu(&second, "eth0"), None, "removed interface");
    assert_eq!(
        mtu(&second, "eth9"),
        Some(9000.0),
        "new interface, same cycle"
    );
    assert_eq!(mtu(&second, "wlan0"), Some(1280.0), "rewritten in place");
    assert_eq!(mtu(&second, "lo"), Some(1234.0), "replaced by rename");
    let sensors: BTreeSet<(String, String)> = find(&second, "node.hwmon.temperature")
        .map(|m| {
            points(m)
                .iter()
                .map(|p| {
                    let a = |k| attr(p, k).unwrap_or_default().to_string();
                    (a("chip"), a("sensor"))
                })
                .collect()
        })
        .unwrap_or_default();
    assert!(
        sensors.contains(&("newchip".into(), "temp7".into())),
        "{sensors:?}"
    );
    assert!(!sensors.iter().any(|(_, s)| s == "temp3"), "{sensors:?}");

    // A missing optional file (a kernel feature) is looked up again every few cycles.
    let appeared = (2..12).find(|&i| {
        let out = cycle(&mut c, i);
        find(&out, "node.pressure.memory.waiting.time").is_some()
    });
    assert!(matches!(appeared, Some(2..=8)), "{appeared:?}");

    // Steady state: the same output from the same files, the same descriptors.
    let a = cycle(&mut c, 20);
    let kept = c.kept_descriptors();
    let b = cycle(&mut c, 20);
    assert_eq!(a, b);
    assert_eq!(c.kept_descriptors(), kept);
}

/// The export path's wire form: every metric decodes, its point count is the one the
/// encoder is told, and through the trait (as the agent calls it) everything is in the wire
/// form. That the content is unchanged is what the golden files above check (`collect` is
/// the wire form decoded).
#[test]
fn encoded_metrics_decode_with_their_point_counts() {
    for fx in ["node-host", "node-edge", "node-missing"] {
        let tree = TempTree::copy_of(fx, "wire");
        let mut c = node(&tree.root, all_on());
        for cycle in 0..2 {
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
