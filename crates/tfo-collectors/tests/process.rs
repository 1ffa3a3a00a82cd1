//! The process collector on a fixture /proc tree (values, garbage in every file, a pid
//! directory without files, filters, top_n, the cap, exec and pid reuse) and on this
//! host's /proc while short-lived processes come and go.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::*;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::metrics::v1::{Metric, NumberDataPoint};
use tfo_collectors::{CollectReport, HostPaths, ProcessCollector, ProcessOptions, TopBy};

const BOOT_S: u64 = 1_700_000_000;

fn collector(root: &Path, opts: ProcessOptions) -> ProcessCollector {
    ProcessCollector::new(HostPaths::from_root(root), opts)
        .expect("options")
        .with_host(100, 4096, 2)
}

fn run(c: &mut ProcessCollector, now: u64) -> (Vec<Metric>, CollectReport) {
    let mut out = Vec::new();
    let r = c.collect_at(now, &mut out);
    (out, r)
}

fn int_attr(p: &NumberDataPoint, key: &str) -> Option<i64> {
    p.attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::IntValue(i) => Some(*i),
            _ => None,
        }
    })
}

/// `(pid, extra attribute value or "") -> value` of one metric.
fn by_pid(ms: &[Metric], name: &str, extra: &str) -> BTreeMap<(i64, String), f64> {
    find(ms, name)
        .map(|m| {
            points(m)
                .iter()
                .map(|p| {
                    let pid = int_attr(p, "process.pid").expect("pid");
                    let e = if extra.is_empty() {
                        String::new()
                    } else {
                        attr(p, extra).expect("attribute").to_string()
                    };
                    ((pid, e), value(p))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn pids(ms: &[Metric]) -> Vec<i64> {
    let mut v: Vec<i64> = by_pid(ms, "process.memory.usage", "")
        .keys()
        .map(|k| k.0)
        .collect();
    v.sort();
    v
}

/// Every metric of `stat`: the default set plus the opt-in `cpu_utilization`, `threads`,
/// `paging_faults` and `uptime`.
fn all_of_stat() -> ProcessOptions {
    ProcessOptions {
        cpu_utilization: true,
        threads: true,
        paging_faults: true,
        uptime: true,
        ..ProcessOptions::default()
    }
}

fn skipped(r: &CollectReport, reason: &str) -> u64 {
    r.skipped
        .iter()
        .filter(|(k, _)| *k == reason)
        .map(|(_, n)| n)
        .sum()
}

fn owner_of(root: &Path) -> String {
    let uid = std::fs::metadata(root.join("proc/1")).unwrap().uid();
    if uid == 0 {
        "root".into()
    } else {
        uid.to_string()
    }
}

#[test]
fn fixture_values_summary_and_garbage() {
    let root = fixture("process");
    // The default set: the OpenTelemetry Collector scraper's four metrics.
    let (ms, _) = run(&mut collector(&root, ProcessOptions::default()), T0);
    let mut names: Vec<&str> = ms
        .iter()
        .map(|m| m.name.as_str())
        .filter(|n| n.starts_with("process."))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "process.cpu.time",
            "process.disk.io",
            "process.memory.usage",
            "process.memory.virtual"
        ]
    );

    let mut c = collector(&root, all_of_stat());
    let (ms, r) = run(&mut c, T0);

    // Kernel thread 2 is left out, 400 (garbage stat) and 600 (no files) are skipped.
    assert_eq!(pids(&ms), [1, 100, 200, 300, 500]);
    assert_eq!(skipped(&r, "vanished"), 1, "{:?}", r.skipped);
    let errs: Vec<String> = r.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs.iter()
            .any(|e| e.contains("/stat") && e.contains("400/stat")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("<pid>/io") && e.contains("500/io")),
        "{errs:?}"
    );

    let cpu = by_pid(&ms, "process.cpu.time", "cpu.mode");
    assert_eq!(cpu[&(100, "user".into())], 12.34);
    assert_eq!(cpu[&(100, "system".into())], 5.67);
    assert_eq!(
        by_pid(&ms, "process.memory.usage", "")[&(100, String::new())],
        2560.0 * 4096.0
    );
    assert_eq!(
        by_pid(&ms, "process.memory.virtual", "")[&(100, String::new())],
        52428800.0
    );
    assert_eq!(
        by_pid(&ms, "process.thread.count", "")[&(200, String::new())],
        8.0
    );
    let faults = by_pid(&ms, "process.paging.faults", "system.paging.fault.type");
    assert_eq!(faults[&(100, "major".into())], 2.0);
    assert_eq!(faults[&(100, "minor".into())], 900.0);
    let io = by_pid(&ms, "process.disk.io", "disk.io.direction");
    assert_eq!(io[&(100, "read".into())], 4096.0);
    assert_eq!(io[&(1, "write".into())], 2097152.0);
    assert!(
        !io.contains_key(&(500, "read".into())),
        "garbage io is not reported"
    );
    let start_100 = (BOOT_S * 1_000_000_000) + 10_000_000_000;
    let up = by_pid(&ms, "process.uptime", "")[&(100, String::new())];
    assert!((up - (T0 - start_100) as f64 / 1e9).abs() < 1e-6, "{up}");
    // Opt-in metrics are absent unless asked for; utilization needs a second cycle.
    for absent in [
        "process.cpu.utilization",
        "process.unix.file_descriptor.count",
        "process.context_switches",
        "system.process.fork.rate",
    ] {
        assert!(find(&ms, absent).is_none(), "{absent}");
    }

    // Identity on every point; counters start when the process did.
    let owner = owner_of(&root);
    for m in ms.iter().filter(|m| m.name.starts_with("process.")) {
        for p in points(m) {
            let pid = int_attr(p, "process.pid").unwrap();
            assert!(int_attr(p, "process.parent_pid").is_some(), "{}", m.name);
            assert_eq!(attr(p, "process.owner"), Some(owner.as_str()));
            assert!(attr(p, "process.command_line").is_none());
            let name = attr(p, "process.executable.name").unwrap();
            let want = match pid {
                1 => "systemd",
                100 => "nginx",
                200 => "app server",
                300 => "defunct",
                _ => "junk",
            };
            assert_eq!(name, want);
            assert_eq!(
                attr(p, "container.id").is_some(),
                pid == 100,
                "{}: {pid}",
                m.name
            );
            if pid == 100 && m.name == "process.cpu.time" {
                assert_eq!(p.start_time_unix_nano, start_100);
                assert_eq!(
                    attr(p, "container.id"),
                    Some("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
                );
            }
            assert_eq!(p.time_unix_nano, T0);
        }
    }

    // The summary counts every process that has a stat, kernel threads included.
    let states = find(&ms, "system.process.count").unwrap();
    let counts: BTreeMap<&str, f64> = points(states)
        .iter()
        .map(|p| (attr(p, "process.state").unwrap(), value(p)))
        .collect();
    assert_eq!(
        counts,
        BTreeMap::from([
            ("blocked", 1.0),
            ("running", 1.0),
            ("sleeping", 2.0),
            ("stopped", 1.0),
            ("zombie", 1.0)
        ])
    );
    assert_eq!(
        value(&points(find(&ms, "system.thread.count").unwrap())[0]),
        17.0
    );
    assert_eq!(
        value(&points(find(&ms, "system.process.created").unwrap())[0]),
        5000.0
    );
}

#[test]
fn second_cycle_utilization_fork_rate_exec_and_pid_reuse() {
    let t = TempTree::copy_of("process", "cycles");
    let mut c = collector(&t.root, all_of_stat());
    run(&mut c, T0);
    // 15 s later: nginx used 1.5 s user and 0.3 s system; 150 forks; pid 200 exec'd
    // another program; pid 300 exited and its pid went to a new process.
    let stat = |pid, comm: &str, ppid, ut, st, start| {
        format!(
            "{pid} ({comm}) S {ppid} 1 1 0 -1 4194560 1 0 0 0 {ut} {st} 0 0 20 0 1 0 {start} 4096 1 0 0\n"
        )
    };
    t.write(
        "proc/100/stat",
        stat(100, "nginx", 1, 1384, 597, 1000).as_bytes(),
    );
    t.write(
        "proc/200/stat",
        stat(200, "worker", 1, 60, 60, 1500).as_bytes(),
    );
    t.write(
        "proc/300/stat",
        stat(300, "newcomer", 1, 0, 0, 9000).as_bytes(),
    );
    t.write(
        "proc/stat",
        b"btime 1700000000\nprocesses 5150\nprocs_running 1\n",
    );
    let (ms, r) = run(&mut c, T0 + STEP);
    assert_eq!(r.errors.len(), 2, "{:?}", r.errors);
    let util = by_pid(&ms, "process.cpu.utilization", "cpu.mode");
    // 150 ticks over 15 s × 100 Hz × 2 CPUs.
    assert!(
        (util[&(100, "user".into())] - 0.05).abs() < 1e-9,
        "{util:?}"
    );
    assert!(
        (util[&(100, "system".into())] - 0.01).abs() < 1e-9,
        "{util:?}"
    );
    assert!(
        !util.contains_key(&(300, "user".into())),
        "a new process has no previous sample"
    );
    let rate = value(&points(find(&ms, "system.process.fork.rate").unwrap())[0]);
    assert!((rate - 10.0).abs() < 1e-9, "{rate}");
    let names: BTreeMap<i64, String> = points(find(&ms, "process.thread.count").unwrap())
        .iter()
        .map(|p| {
            (
                int_attr(p, "process.pid").unwrap(),
                attr(p, "process.executable.name").unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(names[&200], "worker");
    assert_eq!(names[&300], "newcomer");

    // A process that disappears is forgotten.
    std::fs::remove_dir_all(t.root.join("proc/300")).unwrap();
    let before = c.tracked();
    let (ms, _) = run(&mut c, T0 + 2 * STEP);
    assert!(!pids(&ms).contains(&300));
    assert_eq!(c.tracked(), before - 1);
}

#[test]
fn opt_in_parts_and_redaction() {
    let root = fixture("process");
    let opts = ProcessOptions {
        file_descriptors: true,
        context_switches: true,
        command_line: true,
        ..ProcessOptions::default()
    };
    let mut c = collector(&root, opts);
    let (ms, r) = run(&mut c, T0);
    let fds = by_pid(&ms, "process.unix.file_descriptor.count", "");
    assert_eq!(fds[&(1, String::new())], 4.0);
    assert_eq!(fds[&(100, String::new())], 2.0);
    // 300 has no fd directory: as if it exited between its stat and fd/, it is skipped
    // whole (no half-reported process), like 600 whose stat is missing.
    assert_eq!(pids(&ms), [1, 100, 200, 500]);
    assert_eq!(skipped(&r, "vanished"), 2);
    let sw = by_pid(
        &ms,
        "process.context_switches",
        "process.context_switch.type",
    );
    assert_eq!(sw[&(100, "voluntary".into())], 77.0);
    assert_eq!(sw[&(100, "involuntary".into())], 11.0);
    assert!(!sw.contains_key(&(500, "voluntary".into())));
    assert!(
        r.errors
            .iter()
            .any(|e| e.to_string().contains("500/status")),
        "{:?}",
        r.errors
    );
    let lines: BTreeMap<i64, String> = points(find(&ms, "process.memory.usage").unwrap())
        .iter()
        .map(|p| {
            (
                int_attr(p, "process.pid").unwrap(),
                attr(p, "process.command_line").unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(lines[&1], "/sbin/init splash");
    assert_eq!(lines[&200], "/opt/app --password=*** --port 8080");
    assert_eq!(lines[&500], "\u{fffd}\u{fffd} \u{1}");

    // A custom list replaces the defaults.
    let opts = ProcessOptions {
        command_line: true,
        redact_patterns: vec!["--port\\s+(\\d+)".into()],
        ..ProcessOptions::default()
    };
    let (ms, _) = run(&mut collector(&root, opts), T0);
    let p = points(find(&ms, "process.memory.usage").unwrap())
        .iter()
        .find(|p| int_attr(p, "process.pid") == Some(200))
        .unwrap();
    assert_eq!(
        attr(p, "process.command_line"),
        Some("/opt/app --password=hunter2 --port ***")
    );
}

#[test]
fn filters_top_n_and_the_cap() {
    let root = fixture("process");
    let owner = owner_of(&root);
    let case = |opts: ProcessOptions| {
        let mut c = collector(&root, opts);
        let (ms, r) = run(&mut c, T0);
        (pids(&ms), skipped(&r, "overflow"))
    };
    let o = ProcessOptions::default;
    assert_eq!(
        case(ProcessOptions {
            processes: vec!["nginx".into()],
            ..o()
        })
        .0,
        [100]
    );
    // The kernel keeps 15 bytes of a name: a longer configured name still matches.
    assert_eq!(
        case(ProcessOptions {
            processes: vec!["app server and more".into()],
            ..o()
        })
        .0,
        Vec::<i64>::new()
    );
    assert_eq!(
        case(ProcessOptions {
            exclude_processes: vec!["nginx".into(), "junk".into()],
            ..o()
        })
        .0,
        [1, 200, 300]
    );
    assert_eq!(
        case(ProcessOptions {
            include_command_lines: vec!["^/opt/".into(), "nginx".into()],
            ..o()
        })
        .0,
        [100, 200]
    );
    assert_eq!(
        case(ProcessOptions {
            exclude_command_lines: vec!["^$".into()],
            ..o()
        })
        .0,
        [1, 100, 200, 500]
    );
    assert_eq!(
        case(ProcessOptions {
            users: vec![owner.clone()],
            ..o()
        })
        .0,
        [1, 100, 200, 300, 500]
    );
    assert!(
        case(ProcessOptions {
            users: vec!["nobody-here".into()],
            ..o()
        })
        .0
        .is_empty()
    );
    assert!(
        case(ProcessOptions {
            exclude_users: vec![owner],
            ..o()
        })
        .0
        .is_empty()
    );
    assert_eq!(
        case(ProcessOptions {
            kernel_threads: true,
            ..o()
        })
        .0,
        [1, 2, 100, 200, 300, 500]
    );
    // top_n by memory: rss 25600 (200) then 3000 (1); by CPU (first cycle: since start):
    // 1801 ticks (100) then 500 (1).
    assert_eq!(
        case(ProcessOptions {
            top_n: 2,
            top_by: TopBy::Memory,
            ..o()
        }),
        (vec![1, 200], 0)
    );
    assert_eq!(
        case(ProcessOptions {
            top_n: 2,
            top_by: TopBy::Cpu,
            ..o()
        }),
        (vec![1, 100], 0)
    );
    // The cap keeps the heaviest and counts the rest.
    assert_eq!(
        case(ProcessOptions {
            max_processes: 1,
            ..o()
        }),
        (vec![100], 4)
    );
    assert_eq!(
        case(ProcessOptions {
            top_n: 3,
            max_processes: 2,
            top_by: TopBy::Memory,
            ..o()
        }),
        (vec![1, 200], 1)
    );
    // A bad regex is refused with the option's name.
    let e = ProcessCollector::new(
        HostPaths::from_root(&root),
        ProcessOptions {
            include_command_lines: vec!["(".into()],
            ..o()
        },
    )
    .unwrap_err();
    assert_eq!(e.option, "include_command_lines");
}

#[test]
fn missing_and_garbage_host_files() {
    let t = TempTree::copy_of("process", "garbage");
    t.write("proc/stat", b"\xff\x00 garbage\nbtime -5\n");
    t.write("etc/passwd", b"\x00\xff\n::\n");
    let mut c = collector(&t.root, ProcessOptions::default());
    let (ms, r) = run(&mut c, T0);
    assert_eq!(
        pids(&ms),
        [1, 100, 200, 300, 500],
        "processes are still reported"
    );
    assert!(
        r.errors.iter().any(|e| e.to_string().contains("btime")),
        "{:?}",
        r.errors
    );
    assert!(find(&ms, "system.process.created").is_none());
    std::fs::remove_file(t.root.join("proc/stat")).unwrap();
    std::fs::remove_file(t.root.join("etc/passwd")).unwrap();
    let (ms, _) = run(&mut c, T0 + STEP);
    assert_eq!(pids(&ms).len(), 5);

    // No /proc at all: one error, nothing else.
    let mut c = collector(Path::new("/nonexistent-root"), ProcessOptions::default());
    let (ms, r) = run(&mut c, T0);
    assert!(ms.is_empty());
    assert_eq!(r.errors.len(), 2, "{:?}", r.errors);
}

/// This host's /proc while a thread keeps starting short-lived processes: processes
/// vanish between the listing and every read (or the walk of the eBPF task iterator);
/// nothing is an error, and this test's own process is reported with the values its
/// stat file gives.
#[test]
fn live_proc_with_processes_coming_and_going() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = std::process::Command::new("true").status();
            }
        })
    };
    let opts = ProcessOptions {
        file_descriptors: true,
        context_switches: true,
        command_line: true,
        max_processes: 100_000,
        ..all_of_stat()
    };
    let mut c = ProcessCollector::new(HostPaths::default(), opts).unwrap();
    // Without the privilege for the eBPF task iterator, the first cycle says why (one
    // error) and the files are read; as root (CI) it loads and stat and io come from it.
    let fallback = c.task_iterator().err().flatten().is_some();
    let me = i64::from(std::process::id());
    for i in 0..30 {
        let mut out = Vec::new();
        let mut r = c.collect(&mut out);
        if i == 0 && fallback {
            assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
            r.errors.clear();
        }
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert!(pids(&out).contains(&me));
        let threads = by_pid(&out, "process.thread.count", "")[&(me, String::new())];
        assert!(threads >= 2.0, "{threads}");
        let name = points(find(&out, "process.thread.count").unwrap())
            .iter()
            .find(|p| int_attr(p, "process.pid") == Some(me))
            .and_then(|p| attr(p, "process.executable.name").map(str::to_string))
            .unwrap();
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert_eq!(
            own[own.find('(').unwrap() + 1..own.rfind(')').unwrap()],
            name
        );
    }
    stop.store(true, Ordering::Relaxed);
    churn.join().unwrap();
}

use tfo_collectors::Collector;
