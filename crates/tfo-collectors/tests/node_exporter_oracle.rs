//! The real node_exporter as a value oracle, and promtool as an exposition checker.
//!
//! Needs Debian's `prometheus-node-exporter` (binary `/usr/bin/prometheus-node-exporter`,
//! or `TFO_NODE_EXPORTER=<path>`) and `prometheus` (`promtool`, or `TFO_PROMTOOL=<path>`).
//! promtool must parse the exposition, and may only lint the names node_exporter itself
//! uses (camelCase `node_memory_*` and `node_netstat_*`, `*_bits`): it exits 3 on
//! node_exporter's own output for those. Without them each test prints a skip message and passes, unless `TFO_REQUIRE_PEERS=1`
//! (CI), where it fails. Run with `--nocapture` to see the list of compared names.
//!
//! The oracle test starts node_exporter on a free loopback port with the collectors we
//! map and our default filters, then collects ours, scrapes theirs, collects ours again,
//! and compares every sample of every node_exporter name in the metric tables:
//!
//! * values that cannot change while the host runs (sizes, limits, boot time, MTU, ...)
//!   exactly;
//! * counters: theirs within [ours before, ours after], widened by float rounding;
//! * other gauges (free memory, load, socket counts, ...): within [before, after] widened
//!   by a band (a factor of 2, or 64 MiB for bytes, 16 otherwise) that absorbs what a busy
//!   shared host changes in between, yet catches a wrong field, unit or scale.
//!
//! A series one side has and the other lacks fails the test.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tfo_collectors::node::{
    DEFAULT_DISK_DEVICES_EXCLUDE, DEFAULT_FS_TYPES_EXCLUDE, DEFAULT_MOUNT_POINTS_EXCLUDE,
    metric_tables,
};
use tfo_collectors::{HostPaths, MetricKind, NodeCollector, NodeOptions, render_node_exporter};

/// Finds a peer binary, or returns `None` after printing why the test is skipped (and
/// panics instead when `TFO_REQUIRE_PEERS=1`).
fn peer(env: &str, candidates: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(PathBuf::from(p));
    }
    for c in candidates {
        let p = PathBuf::from(c);
        if p.is_file() {
            return Some(p);
        }
        if let Some(path) = std::env::var_os("PATH") {
            for dir in std::env::split_paths(&path) {
                let p = dir.join(c);
                if p.is_file() {
                    return Some(p);
                }
            }
        }
    }
    let msg = format!(
        "{} not found (set {env} or install Debian's prometheus-node-exporter / prometheus)",
        candidates.join(" or ")
    );
    if std::env::var_os("TFO_REQUIRE_PEERS").is_some_and(|v| v == "1") {
        panic!("TFO_REQUIRE_PEERS=1: {msg}");
    }
    eprintln!("SKIP: {msg}");
    None
}

/// Kills the child on drop, so a failing assertion does not leave node_exporter running.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral loopback port");
    l.local_addr().expect("local address").port()
}

fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: text/plain\r\n\r\n"
    )?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    let (head, rest) = body
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no HTTP header end"))?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(std::io::Error::other(format!("HTTP status: {head}")));
    }
    Ok(rest.to_string())
}

/// `name{labels}` (labels sorted) to value, from text exposition.
fn parse_exposition(text: &str) -> BTreeMap<(String, Vec<(String, String)>), f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("`series value`");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), Vec::new()),
            Some((name, rest)) => (name.to_string(), parse_labels(rest.trim_end_matches('}'))),
        };
        out.insert((name, labels), value);
    }
    out
}

fn parse_labels(s: &str) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    let mut chars = s.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        assert_eq!(chars.next(), Some('"'), "label value must be quoted in {s}");
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(c) => value.push(c),
                    None => break,
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.push((key.trim_start_matches(',').to_string(), value));
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    labels.sort();
    labels
}

/// Values that do not change while the host runs.
const EXACT: &[&str] = &[
    "node_boot_time_seconds",
    "node_memory_MemTotal_bytes",
    "node_memory_SwapTotal_bytes",
    "node_memory_CommitLimit_bytes",
    "node_memory_VmallocTotal_bytes",
    "node_memory_HugePages_Total",
    "node_memory_Hugepagesize_bytes",
    "node_memory_HardwareCorrupted_bytes",
    "node_filesystem_size_bytes",
    "node_filesystem_files",
    "node_filesystem_readonly",
    "node_filesystem_device_error",
    "node_network_mtu_bytes",
    "node_network_up",
    "node_network_speed_bytes",
    "node_entropy_pool_size_bits",
    "node_filefd_maximum",
    "node_nf_conntrack_entries_limit",
    "node_cpu_scaling_frequency_min_hertz",
    "node_cpu_scaling_frequency_max_hertz",
    "node_hwmon_temp_max_celsius",
    "node_hwmon_temp_crit_celsius",
    "node_cooling_device_max_state",
    "node_timex_tick_seconds",
    "node_timex_loop_time_constant",
    "node_timex_tai_offset_seconds",
    "node_timex_sync_status",
    "node_timex_status",
    "node_netstat_Ip_Forwarding",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Exact,
    Counter,
    Gauge,
}

fn ours(c: &mut NodeCollector) -> String {
    let mut ms = Vec::new();
    let report = tfo_collectors::Collector::collect(c, &mut ms);
    for e in &report.errors {
        eprintln!("our collector: {e}");
    }
    let mut text = String::new();
    render_node_exporter(&ms, &mut text);
    text
}

fn start_node_exporter(bin: &PathBuf, port: u16) -> Running {
    let args = [
        format!("--web.listen-address=127.0.0.1:{port}"),
        "--path.procfs=/proc".to_string(),
        "--path.sysfs=/sys".to_string(),
        "--path.rootfs=/".to_string(),
        // Only the collectors the tables map, with our default selections.
        "--collector.disable-defaults".to_string(),
        "--collector.cpu".to_string(),
        "--collector.cpufreq".to_string(),
        "--collector.stat".to_string(),
        "--collector.schedstat".to_string(),
        "--collector.meminfo".to_string(),
        "--collector.diskstats".to_string(),
        "--collector.filesystem".to_string(),
        "--collector.netdev".to_string(),
        "--collector.netclass".to_string(),
        "--collector.netclass.ignore-invalid-speed".to_string(),
        "--collector.loadavg".to_string(),
        "--collector.thermal_zone".to_string(),
        "--collector.pressure".to_string(),
        "--collector.vmstat".to_string(),
        "--collector.sockstat".to_string(),
        "--collector.netstat".to_string(),
        "--collector.entropy".to_string(),
        "--collector.filefd".to_string(),
        "--collector.conntrack".to_string(),
        "--collector.hwmon".to_string(),
        "--collector.timex".to_string(),
        format!("--collector.diskstats.device-exclude={DEFAULT_DISK_DEVICES_EXCLUDE}"),
        format!("--collector.filesystem.mount-points-exclude={DEFAULT_MOUNT_POINTS_EXCLUDE}"),
        format!("--collector.filesystem.fs-types-exclude={DEFAULT_FS_TYPES_EXCLUDE}"),
        // Upstream's default: every interface (Debian's build excludes lo).
        "--collector.netdev.device-exclude=".to_string(),
    ];
    let child = Command::new(bin)
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
    let running = Running(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while http_get(port, "/metrics").is_err() {
        assert!(
            Instant::now() < deadline,
            "node_exporter did not answer on 127.0.0.1:{port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    running
}

#[test]
fn values_match_node_exporter_on_this_host() {
    let Some(bin) = peer(
        "TFO_NODE_EXPORTER",
        &["prometheus-node-exporter", "node_exporter"],
    ) else {
        return;
    };
    let port = free_port();
    let _ne = start_node_exporter(&bin, port);

    // The mapping: node_exporter name -> comparison class.
    let mut classes: BTreeMap<&str, Class> = BTreeMap::new();
    for (_, table) in metric_tables() {
        for d in table {
            if let Some(p) = &d.prom {
                let class = if EXACT.contains(&p.name) {
                    Class::Exact
                } else if d.kind == MetricKind::Counter {
                    Class::Counter
                } else {
                    Class::Gauge
                };
                classes.insert(p.name, class);
            }
        }
    }

    let opts = NodeOptions {
        cpu_frequency: true,
        cpu_throttles: true,
        ..NodeOptions::default()
    };
    let mut c = NodeCollector::new(HostPaths::default(), opts).expect("default options");
    let before = parse_exposition(&ours(&mut c));
    let theirs = parse_exposition(&http_get(port, "/metrics").expect("scrape node_exporter"));
    let after = parse_exposition(&ours(&mut c));

    let mut failures = Vec::new();
    let mut compared: BTreeMap<&str, usize> = BTreeMap::new();
    let their_names: BTreeSet<&str> = theirs.keys().map(|(n, _)| n.as_str()).collect();
    let our_names: BTreeSet<&str> = before.keys().map(|(n, _)| n.as_str()).collect();
    for (&name, &class) in &classes {
        if !their_names.contains(name) {
            continue;
        }
        if !our_names.contains(name) {
            failures.push(format!("{name}: node_exporter has it, we do not"));
            continue;
        }
        for (key, &t) in theirs.iter().filter(|((n, _), _)| n == name) {
            let (Some(&b), Some(&a)) = (before.get(key), after.get(key)) else {
                failures.push(format!("{name}{:?}: missing on our side", key.1));
                continue;
            };
            let (lo, hi) = (a.min(b), a.max(b));
            let ok = match class {
                Class::Exact => t == b && t == a,
                Class::Counter => {
                    let eps = 1e-9 * hi.abs() + 1e-6;
                    t >= lo - eps && t <= hi + eps
                }
                Class::Gauge => {
                    let floor = if name.ends_with("_bytes") {
                        64.0 * 1024.0 * 1024.0
                    } else {
                        16.0
                    };
                    let within = |x: f64| {
                        (x - t).abs() <= floor
                            || (x.signum() == t.signum() && x / t <= 2.0 && t / x <= 2.0)
                    };
                    (t >= lo && t <= hi) || within(lo) || within(hi)
                }
            };
            if !ok {
                failures.push(format!(
                    "{name}{:?} ({class:?}): node_exporter {t}, ours {b} before and {a} after",
                    key.1
                ));
            }
            *compared.entry(name).or_default() += 1;
        }
        for key in before.keys().filter(|(n, _)| n == name) {
            if !theirs.contains_key(key) {
                failures.push(format!("{name}{:?}: node_exporter does not have it", key.1));
            }
        }
    }
    let not_exposed: Vec<&str> = classes
        .keys()
        .filter(|n| !their_names.contains(*n))
        .copied()
        .collect();
    println!(
        "compared {} node_exporter names ({} series):",
        compared.len(),
        compared.values().sum::<usize>()
    );
    for (name, n) in &compared {
        println!("  {name} ({:?}, {n} series)", classes[name]);
    }
    println!(
        "not exposed by node_exporter on this host ({}): {}",
        not_exposed.len(),
        not_exposed.join(" ")
    );
    assert!(
        compared.len() >= 60,
        "only {} names compared: is node_exporter running the mapped collectors?",
        compared.len()
    );
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn promtool_accepts_the_exposition() {
    let Some(promtool) = peer("TFO_PROMTOOL", &["promtool"]) else {
        return;
    };
    let mut c = NodeCollector::new(
        HostPaths::default(),
        NodeOptions {
            cpu_frequency: true,
            cpu_throttles: true,
            ..NodeOptions::default()
        },
    )
    .expect("default options");
    // Two cycles, so usage-style metrics exist too (they have no Prometheus name and must
    // simply be left out).
    let _ = ours(&mut c);
    let text = ours(&mut c);
    // And the edge fixture, whose label values need escaping.
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/node-edge.prom");
    let edge = std::fs::read_to_string(&fixture).expect("node-edge.prom golden");
    let mapped: BTreeSet<&str> = metric_tables()
        .into_iter()
        .flat_map(|(_, t)| t.iter())
        .filter_map(|d| d.prom.map(|p| p.name))
        .collect();
    for (what, body) in [("this host", text), ("node-edge golden", edge)] {
        let mut child = Command::new(&promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", promtool.display()));
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(body.as_bytes())
            .expect("write exposition to promtool");
        let out = child.wait_with_output().expect("promtool output");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Exit 1 is a parse error. Exit 3 is lint only: acceptable when every complaint is
        // about a name node_exporter itself uses (its own output gets the same ones).
        match out.status.code() {
            Some(0) => {}
            Some(3) => {
                for line in stdout.lines().chain(stderr.lines()) {
                    let (name, problem) = line.split_once(' ').unwrap_or((line, ""));
                    assert!(
                        inherited_lint(problem) && mapped.contains(name),
                        "promtool lint for {what} is ours, not node_exporter's: {line}"
                    );
                }
            }
            _ => panic!("promtool check metrics rejected {what}:\n{stdout}{stderr}"),
        }
    }
}

/// Lint problems node_exporter's own names have: `node_memory_MemTotal_bytes` is
/// camelCase, `node_entropy_available_bits` is not in bytes.
fn inherited_lint(problem: &str) -> bool {
    problem == "metric names should be written in 'snake_case' not 'camelCase'"
        || problem == "use base unit \"bytes\" instead of \"bits\""
}
