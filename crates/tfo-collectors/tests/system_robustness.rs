//! Bad and missing input, toggles, hanging network filesystems, and a live run on this host.

mod common;

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use common::*;
use tfo_collectors::system::{FsStats, StatFs};
use tfo_collectors::{CollectReport, Collector, HostPaths, SystemCollector, SystemOptions};

const ALL: &[&str] = &[
    "system.uptime",
    "system.cpu.time",
    "system.cpu.load_average.1m",
    "system.cpu.load_average.5m",
    "system.cpu.load_average.15m",
    "system.memory.usage",
    "system.memory.utilization",
    "system.memory.limit",
    "system.paging.usage",
    "system.disk.io",
    "system.disk.operations",
    "system.disk.io_time",
    "system.disk.operation_time",
    "system.disk.merged",
    "system.filesystem.usage",
    "system.filesystem.utilization",
    "system.filesystem.inodes.usage",
    "system.network.io",
    "system.network.packets",
    "system.network.errors",
    "system.network.dropped",
];

/// Each file of the host1 fixture (root != "/", so pid 1's mounts and net/dev) and the
/// metrics that only it feeds.
const FILES: &[(&str, &[&str])] = &[
    ("proc/uptime", &["system.uptime"]),
    ("proc/stat", &["system.cpu.time"]),
    (
        "proc/loadavg",
        &[
            "system.cpu.load_average.1m",
            "system.cpu.load_average.5m",
            "system.cpu.load_average.15m",
        ],
    ),
    (
        "proc/meminfo",
        &[
            "system.memory.usage",
            "system.memory.utilization",
            "system.memory.limit",
            "system.paging.usage",
        ],
    ),
    (
        "proc/diskstats",
        &[
            "system.disk.io",
            "system.disk.operations",
            "system.disk.io_time",
            "system.disk.operation_time",
            "system.disk.merged",
        ],
    ),
    (
        "proc/1/mounts",
        &[
            "system.filesystem.usage",
            "system.filesystem.utilization",
            "system.filesystem.inodes.usage",
        ],
    ),
    (
        "proc/1/net/dev",
        &[
            "system.network.io",
            "system.network.packets",
            "system.network.errors",
            "system.network.dropped",
        ],
    ),
];

fn garbage_variants() -> Vec<Vec<u8>> {
    let mut random = Vec::new();
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for _ in 0..4096 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        random.push((x >> 24) as u8);
    }
    vec![
        b"garbage\n".to_vec(),
        Vec::new(),
        b"\0\0\0\xff\xfe not utf8 \xc3\x28 \n::::\n|||\n".to_vec(),
        b"cpu0 x y z\nbtime -1\nMemTotal: lots kB\n 8 0 sda a b c\neth0: 1 2\n/a\n".to_vec(),
        b"-5 99999999999999999999999999 1e400 nan inf\n".to_vec(),
        random,
    ]
}

fn errors_mention(report: &CollectReport, rel: &str) -> bool {
    report.errors.iter().any(|e| e.to_string().contains(rel))
}

#[test]
fn garbage_in_one_file_drops_only_its_metrics() {
    for (rel, owned) in FILES {
        for (v, garbage) in garbage_variants().into_iter().enumerate() {
            let tree = TempTree::copy_of("host1", "garbage");
            tree.write(rel, &garbage);
            let mut c = collector(&tree.root, SystemOptions::default());
            let mut out = Vec::new();
            let report = c.collect_at(T0, &mut out);
            // An empty diskstats, mounts or net/dev is a host without disks, mounts or
            // interfaces (gVisor, minimal containers), not an error.
            let empty_ok = garbage.is_empty()
                && ["proc/diskstats", "proc/1/mounts", "proc/1/net/dev"].contains(rel);
            assert!(
                empty_ok || errors_mention(&report, rel),
                "{rel} variant {v}: no error naming the file: {report:?}"
            );
            if empty_ok {
                assert!(report.errors.is_empty(), "{report:?}");
            }
            let got = names(&out);
            for name in ALL.iter().filter(|n| !owned.contains(n)) {
                assert!(got.contains(*name), "{rel} variant {v}: lost {name}");
            }
            // A second cycle over the same garbage is just as safe.
            let mut again = Vec::new();
            c.collect_at(T0 + STEP, &mut again);
            for m in &again {
                assert!(points(m).iter().all(|p| value(p).is_finite()), "{}", m.name);
            }
        }
    }
}

#[test]
fn garbage_stat_falls_back_to_uptime_for_boot_time() {
    let tree = TempTree::copy_of("host1", "nobtime");
    tree.write("proc/stat", b"cpu0 1 2 3 4 5 6 7 8\n");
    tree.write("proc/uptime", b"100.5 3.0\n");
    let mut c = collector(&tree.root, SystemOptions::default());
    let mut out = Vec::new();
    let report = c.collect_at(T0, &mut out);
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.to_string().contains("no btime"))
    );
    let m = find(&out, "system.network.io").unwrap();
    assert_eq!(points(m)[0].start_time_unix_nano, T0 - 100_500_000_000);
    // The boot time is kept: no drift, and no repeated error.
    tree.write("proc/uptime", b"115.7 3.0\n");
    let mut out = Vec::new();
    let report = c.collect_at(T0 + STEP, &mut out);
    assert!(
        !report
            .errors
            .iter()
            .any(|e| e.to_string().contains("no btime"))
    );
    assert_eq!(
        points(find(&out, "system.network.io").unwrap())[0].start_time_unix_nano,
        T0 - 100_500_000_000
    );
}

#[test]
fn missing_files_are_reported_and_the_rest_is_emitted() {
    let root = fixture("missing");
    let mut c = collector(&root, SystemOptions::default());
    let mut out = Vec::new();
    let report = c.collect_at(T0, &mut out);
    assert_eq!(
        names(&out),
        BTreeSet::from(["system.cpu.time".to_string(), "system.uptime".to_string()])
    );
    for rel in [
        "proc/loadavg",
        "proc/meminfo",
        "proc/diskstats",
        "proc/1/mounts",
        "proc/1/net/dev",
    ] {
        assert!(
            errors_mention(&report, rel),
            "no error for missing {rel}: {report:?}"
        );
    }
    assert_eq!(report.errors.len(), 5, "{report:?}");
    let cpu = find(&out, "system.cpu.time").unwrap();
    assert_eq!(
        points(cpu)[0].start_time_unix_nano,
        1_700_000_000_000_000_000
    );
}

#[test]
fn toggles_skip_whole_sub_collectors_and_their_files() {
    let root = fixture("missing");
    let opts = SystemOptions {
        cpu: false,
        memory: false,
        disk: false,
        network: false,
    };
    let mut c = collector(&root, opts);
    let mut out = Vec::new();
    let report = c.collect_at(T0, &mut out);
    assert!(
        report.errors.is_empty(),
        "disabled parts read nothing: {report:?}"
    );
    assert_eq!(names(&out), BTreeSet::from(["system.uptime".to_string()]));

    let tree = TempTree::copy_of("host1", "toggles");
    for (flag, prefix) in [
        (0, "system.cpu."),
        (1, "system.memory."),
        (2, "system.disk."),
        (3, "system.network."),
    ] {
        let mut opts = SystemOptions::default();
        match flag {
            0 => opts.cpu = false,
            1 => opts.memory = false,
            2 => opts.disk = false,
            _ => opts.network = false,
        }
        let mut c = collector(&tree.root, opts);
        let mut out = Vec::new();
        assert!(c.collect_at(T0, &mut out).errors.is_empty());
        let got = names(&out);
        assert!(
            !got.iter().any(|n| n.starts_with(prefix)),
            "{prefix} still emitted"
        );
        assert_eq!(got.contains("system.filesystem.usage"), flag != 2);
        assert_eq!(got.contains("system.paging.usage"), flag != 1);
        assert!(got.contains("system.uptime"));
    }
}

#[test]
fn mounts_and_net_dev_fall_back_to_the_other_namespace_file() {
    let tree = TempTree::copy_of("host1", "fallback");
    std::fs::remove_file(tree.root.join("proc/1/mounts")).unwrap();
    std::fs::remove_dir_all(tree.root.join("proc/1/net")).unwrap();
    let mut c = collector(&tree.root, SystemOptions::default());
    let mut out = Vec::new();
    let report = c.collect_at(T0, &mut out);
    assert!(report.errors.is_empty(), "{report:?}");
    assert!(find(&out, "system.filesystem.usage").is_some());
    assert!(find(&out, "system.network.io").is_some());
}

/// statvfs that blocks on NFS mounts until released, counting calls.
struct HangingNfs {
    inner: FakeStatFs,
    gate: Arc<(Mutex<bool>, Condvar)>,
    nfs_calls: Arc<AtomicUsize>,
}

impl StatFs for HangingNfs {
    fn statfs(&self, path: &Path) -> io::Result<FsStats> {
        if path.ends_with("mnt/nfs") {
            self.nfs_calls.fetch_add(1, Ordering::SeqCst);
            let (lock, cv) = &*self.gate;
            let mut open = lock.lock().unwrap();
            while !*open {
                open = cv.wait(open).unwrap();
            }
        }
        self.inner.statfs(path)
    }
}

fn fs_mounts(out: &[tfo_collectors::Metric]) -> BTreeSet<String> {
    find(out, "system.filesystem.usage")
        .map(|m| {
            points(m)
                .iter()
                .filter_map(|p| attr(p, "mountpoint"))
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn hanging_network_filesystem_is_timed_out_and_skipped_until_it_returns() {
    let root: PathBuf = fixture("edge");
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let nfs_calls = Arc::new(AtomicUsize::new(0));
    let statfs = HangingNfs {
        inner: FakeStatFs { root: root.clone() },
        gate: Arc::clone(&gate),
        nfs_calls: Arc::clone(&nfs_calls),
    };
    let mut c = SystemCollector::new(HostPaths::from_root(&root), SystemOptions::default())
        .with_statfs(Arc::new(statfs))
        .with_remote_statfs_timeout(Duration::from_millis(300));

    let started = Instant::now();
    let mut out = Vec::new();
    let report = c.collect_at(T0, &mut out);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the cycle did not wait on the hung mount"
    );
    let mounts = fs_mounts(&out);
    assert!(!mounts.contains("/mnt/nfs"));
    assert!(
        mounts.contains("/mnt/ssh"),
        "other network mounts still answer"
    );
    assert!(
        mounts.contains("/data") && mounts.contains("/"),
        "local mounts still reported"
    );
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.to_string().contains("mnt/nfs") && e.to_string().contains("did not return"))
    );
    assert_eq!(c.stuck_mounts(), 1);

    // Still stuck: skipped without a second blocked thread.
    let mut out = Vec::new();
    let report = c.collect_at(T0 + STEP, &mut out);
    assert!(
        report.errors.iter().any(
            |e| e.to_string().contains("mnt/nfs") && e.to_string().contains("has not returned")
        )
    );
    assert!(!fs_mounts(&out).contains("/mnt/nfs"));
    assert_eq!(nfs_calls.load(Ordering::SeqCst), 1);

    // The server comes back: the helper returns and the mount is reported again.
    {
        let (lock, cv) = &*gate;
        *lock.lock().unwrap() = true;
        cv.notify_all();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.stuck_mounts() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(c.stuck_mounts(), 0);
    let mut out = Vec::new();
    let report = c.collect_at(T0 + 2 * STEP, &mut out);
    assert!(
        !report
            .errors
            .iter()
            .any(|e| e.to_string().contains("mnt/nfs")),
        "{report:?}"
    );
    assert!(fs_mounts(&out).contains("/mnt/nfs"));
    assert_eq!(nfs_calls.load(Ordering::SeqCst), 2);
}

#[test]
fn live_host() {
    if !Path::new("/proc/stat").exists() {
        return; // not Linux with procfs
    }
    let mut c = SystemCollector::new(HostPaths::default(), SystemOptions::default());
    assert_eq!(c.name(), "system");
    let mut out = Vec::new();
    let report = c.collect(&mut out);
    for e in &report.errors {
        eprintln!("live collect: {e}");
    }
    let got = names(&out);
    for name in [
        "system.uptime",
        "system.cpu.time",
        "system.memory.usage",
        "system.cpu.load_average.1m",
    ] {
        assert!(got.contains(name), "{name} missing on this host");
    }
    let fs = fs_mounts(&out);
    assert!(fs.contains("/"), "the root filesystem is reported: {fs:?}");
    std::thread::sleep(Duration::from_millis(300));
    let mut out = Vec::new();
    c.collect(&mut out);
    let util = find(&out, "system.cpu.utilization").expect("utilization on the second cycle");
    assert!(points(util).iter().all(|p| (0.0..=1.0).contains(&value(p))));
}
