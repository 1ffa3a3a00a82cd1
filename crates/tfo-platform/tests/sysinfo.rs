//! The `systemInfo` payload: exact values from a fixture host tree (two snapshots, so the
//! interval percentages are known), schema validation, bounds, and a real-host run
//! cross-checked against the kernel's own numbers.

// The expected-values literal is one large `json!` invocation.
#![recursion_limit = "512"]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{assert_valid, fixture, schema_validator};
use serde_json::{Value, json};
use tfo_platform::{AgentHealth, CollectorOptions, HeartbeatBody, SystemInfoCollector};

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

fn options(root: &Path) -> CollectorOptions {
    let mut o = CollectorOptions::new("fixture-agent", "9.9.9");
    o.self_root = root.to_path_buf();
    o.env = Some(BTreeMap::new());
    o
}

fn body(c: &mut SystemInfoCollector) -> Value {
    serde_json::to_value(HeartbeatBody {
        system_info: c.collect(AgentHealth::default()),
    })
    .unwrap()
}

#[test]
fn fixture_host_values_over_an_interval() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("host");
    copy_tree(&fixture("host"), &root);
    let mut c = SystemInfoCollector::new(&root, options(&root));
    // The kernel's counters move on between the collector's start and the heartbeat.
    copy_tree(&fixture("host-next"), &root);
    let v = body(&mut c);
    assert_valid(&v);
    let si = &v["systemInfo"];
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    let expect = json!({
        "hostname": "fixture-host", "os": "linux", "osVersion": "22.04", "platform": "ubuntu",
        "platformFamily": "debian", "kernelVersion": "5.15.0-91-generic", "uptime": 864000,
        "bootTime": 1700000000u64, "hostId": "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        "timezone": "Europe/Berlin", "agentName": "fixture-agent", "agentVersion": "9.9.9",
        "cpuCores": 4, "cpuLogicalCores": 4, "cpuPhysicalCores": 2,
        "cpuModel": "Intel(R) Xeon(R) CPU E5-2686 v4 @ 2.30GHz", "cpuVendor": "GenuineIntel",
        "cpuMhz": 2301.5, "cpuCacheSize": 47185920,
        "cpuUsage": 65.0, "cpuUserPercent": 50.0, "cpuSystemPercent": 10.0,
        "cpuIdlePercent": 30.0, "cpuIowaitPercent": 5.0, "cpuStealPercent": 5.0,
        "loadAvg1": 2.1, "loadAvg5": 1.8, "loadAvg15": 1.5,
        "memoryTotal": 17179869184u64, "memoryUsed": 8589934592u64,
        "memoryAvailable": 8589934592u64, "memoryFree": 2147483648u64, "memoryUsage": 50.0,
        "memoryCached": 4294967296u64, "memoryBuffers": 536870912, "memoryActive": 6442450944u64,
        "memoryInactive": 3221225472u64, "memoryWired": 1048576, "memorySlab": 805306368,
        "swapTotal": 4294967296u64, "swapUsed": 1073741824, "swapFree": 3221225472u64,
        "swapUsage": 25.0, "swapIn": 100 * page, "swapOut": 250 * page,
        "diskReadBytes": 82000 * 512, "diskWriteBytes": 39000 * 512, "diskReadOps": 4100,
        "diskWriteOps": 2100, "diskIOTime": 8400, "diskLatencyRead": 5.0, "diskLatencyWrite": 3.0,
        "networkBytesSent": 1073753824u64, "networkBytesRecv": 2147584648u64,
        "networkPacketsSent": 800120, "networkPacketsRecv": 1000110,
        "networkErrorsIn": 3, "networkErrorsOut": 1, "networkDropsIn": 5, "networkDropsOut": 2,
        "tcpConnectionsEstablished": 4, "tcpConnectionsTimeWait": 3,
        "tcpConnectionsCloseWait": 1, "tcpConnectionsListen": 3,
        "tcpStates": {"ESTABLISHED": 4, "TIME_WAIT": 3, "CLOSE_WAIT": 1, "LISTEN": 3},
        "processCount": 7, "processRunning": 1, "processSleeping": 3, "processStopped": 1,
        "processZombie": 1, "processBlocked": 1, "processScanTruncated": false,
        "threadCount": 1200, "contextSwitches": 990000, "interrupts": 130000,
        "softInterrupts": 56000,
        "openFileDescriptors": 2048, "maxFileDescriptors": 100000,
        "fileDescriptorsUsage": 2.05, "entropyAvailable": 256,
        "isContainer": false, "containerRuntime": null, "cgroupVersion": "v2",
        "isVirtualized": true, "virtualizationType": "unknown", "cloudProvider": null,
    });
    for (k, want) in expect.as_object().unwrap() {
        assert_eq!(&si[k], want, "systemInfo.{k}");
    }
    let cores = si["cpuPerCore"].as_array().unwrap();
    assert_eq!(cores.len(), 4);
    for (i, core) in cores.iter().enumerate().take(3) {
        assert_eq!(
            core,
            &json!({"core": i, "usage": 60.0, "user": 50.0, "system": 10.0, "idle": 40.0,
                    "iowait": 0.0, "steal": 0.0, "mhz": 2300.0 + i as f64})
        );
    }
    assert_eq!(
        cores[3],
        json!({"core": 3, "usage": 80.0, "user": 50.0, "system": 10.0, "idle": 0.0,
               "iowait": 20.0, "steal": 20.0, "mhz": 2303.0})
    );
    // Local filesystems only, each device once; NFS and FUSE never queried.
    let parts: Vec<(&str, &str, bool)> = si["diskPartitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["device"].as_str().unwrap(),
                p["mountpoint"].as_str().unwrap(),
                p["readOnly"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        parts,
        vec![("/dev/sda1", "/", false), ("/dev/sda2", "/boot", true)]
    );
    for p in si["diskPartitions"].as_array().unwrap() {
        assert!(p["total"].as_u64().unwrap() > 0);
        assert!(p["used"].as_u64().unwrap() <= p["total"].as_u64().unwrap());
    }
    let total: u64 = si["diskPartitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["total"].as_u64().unwrap())
        .sum();
    assert_eq!(si["diskTotal"].as_u64(), Some(total));
    // Interface details from the fixture's /sys/class/net and /proc/net/dev.
    let eth1 = si["networkInterfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "fxeth1")
        .expect("fixture interface");
    assert_eq!(eth1["macAddress"], "02:42:ac:11:00:02");
    assert_eq!(eth1["mtu"], 9000);
    assert_eq!(eth1["isUp"], true);
    assert_eq!(eth1["speedMbps"], 10000);
    assert_eq!(eth1["bytesSent"], 2000);
    assert_eq!(eth1["dropsIn"], 1);
    // Rates exist once there is an interval; their value depends on elapsed time.
    assert!(si["networkBytesSentPerSec"].as_f64().unwrap() > 0.0);
}

#[test]
fn first_collection_without_a_start_snapshot_reports_no_percentages() {
    let root = fixture("host");
    let mut o = options(&root);
    o.include_system_info = false;
    let mut c = SystemInfoCollector::new(&root, o);
    c.set_include_system_info(true);
    let v = body(&mut c);
    assert_valid(&v);
    let si = &v["systemInfo"];
    for k in [
        "cpuUsage",
        "cpuIdlePercent",
        "diskLatencyRead",
        "networkBytesSentPerSec",
    ] {
        assert_eq!(si[k], Value::Null, "{k} must not be a since-boot value");
    }
    assert_eq!(si["cpuPerCore"][0]["usage"], Value::Null);
    // Same counters again: no time passed, still no percentage (not 0 % or NaN).
    let v = body(&mut c);
    assert_eq!(v["systemInfo"]["cpuUsage"], Value::Null);
}

#[test]
fn bounds_cut_scans_and_say_so() {
    let root = fixture("host");
    let mut o = options(&root);
    o.max_processes = 2;
    o.max_tcp_sockets = 3;
    o.max_partitions = 1;
    let mut c = SystemInfoCollector::new(&root, o);
    let v = body(&mut c);
    assert_valid(&v);
    let si = &v["systemInfo"];
    assert_eq!(
        si["processCount"], 7,
        "every pid is counted even past the bound"
    );
    assert_eq!(si["processScanTruncated"], true);
    assert_eq!(si["tcpStatesTruncated"], true);
    let states: u64 = si["tcpStates"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(states, 3);
    assert_eq!(si["diskPartitions"].as_array().unwrap().len(), 1);
}

#[test]
fn the_schema_rejects_broken_payloads() {
    let root = fixture("host");
    let mut c = SystemInfoCollector::new(&root, options(&root));
    let good = body(&mut c);
    let val = schema_validator();
    assert!(val.is_valid(&good));
    type Mutation = Box<dyn Fn(&mut Value)>;
    let mutations: Vec<(&str, Mutation)> = vec![
        (
            "missing group field",
            Box::new(|v| {
                v["systemInfo"]
                    .as_object_mut()
                    .unwrap()
                    .remove("cpuPerCore");
            }),
        ),
        (
            "percent over 100",
            Box::new(|v| v["systemInfo"]["memoryUsage"] = json!(140.0)),
        ),
        (
            "negative count",
            Box::new(|v| v["systemInfo"]["processCount"] = json!(-1)),
        ),
        (
            "unknown field",
            Box::new(|v| v["systemInfo"]["cpuTemp"] = json!(50)),
        ),
        (
            "string for number",
            Box::new(|v| v["systemInfo"]["memoryTotal"] = json!("16G")),
        ),
        (
            "bad runtime",
            Box::new(|v| v["systemInfo"]["containerRuntime"] = json!("rkt")),
        ),
        (
            "bad timestamp",
            Box::new(|v| v["systemInfo"]["collectionTime"] = json!("yesterday")),
        ),
        (
            "no hostname",
            Box::new(|v| {
                v["systemInfo"].as_object_mut().unwrap().remove("hostname");
            }),
        ),
        ("not wrapped", Box::new(|v| *v = v["systemInfo"].clone())),
    ];
    for (what, m) in mutations {
        let mut bad = good.clone();
        m(&mut bad);
        assert!(!val.is_valid(&bad), "schema accepted: {what}");
    }
}

#[test]
fn real_host_payload_is_valid_and_matches_the_kernel() {
    let mut c = SystemInfoCollector::new("/", CollectorOptions::new("host-agent", "1.0.0"));
    let v = body(&mut c);
    assert_valid(&v);
    let si = &v["systemInfo"];
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap();
    let processors = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    assert_eq!(si["cpuCores"].as_u64(), Some(processors as u64));
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kb = |key: &str| -> u64 {
        meminfo
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    assert_eq!(si["memoryTotal"].as_u64(), Some(kb("MemTotal:") * 1024));
    assert_eq!(si["swapTotal"].as_u64(), Some(kb("SwapTotal:") * 1024));
    let osrelease = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(si["kernelVersion"], osrelease.trim());
    let mut buf = [0u8; 256];
    // SAFETY: writable buffer of the given length.
    assert_eq!(
        unsafe { libc::gethostname(buf.as_mut_ptr().cast(), 255) },
        0
    );
    let end = buf.iter().position(|b| *b == 0).unwrap();
    assert_eq!(
        si["hostname"],
        String::from_utf8_lossy(&buf[..end]).as_ref()
    );
    let btime: u64 = std::fs::read_to_string("/proc/stat")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    assert_eq!(si["bootTime"].as_u64(), Some(btime));
    assert_eq!(
        si["cpuPerCore"].as_array().unwrap().len(),
        std::fs::read_to_string("/proc/stat")
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
            .count()
    );
    // Our own process is among those counted.
    assert!(si["processCount"].as_u64().unwrap() >= 1);
    assert!(si["memoryUsed"].as_u64() <= si["memoryTotal"].as_u64());
}

#[test]
fn tcp_states_from_netlink_and_from_proc_files_agree_on_our_sockets() {
    use std::net::{TcpListener, TcpStream};
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (server, _) = l.accept().unwrap();
    let root = Path::new("/");
    // Other tests run concurrently, so only lower bounds are certain.
    let (live, _) = tfo_platform::sysinfo::network::tcp_states(root, 1_000_000);
    let (files, _) = tfo_platform::sysinfo::network::tcp_states_files(root, 1_000_000);
    for (what, m) in [("netlink", &live), ("files", &files)] {
        assert!(m.get("LISTEN").copied().unwrap_or(0) >= 1, "{what}: {m:?}");
        assert!(
            m.get("ESTABLISHED").copied().unwrap_or(0) >= 2,
            "{what}: {m:?}"
        );
        assert!(m.keys().all(|k| !k.is_empty()));
    }
    drop((client, server, l));
}
