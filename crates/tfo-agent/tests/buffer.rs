//! Black-box tests of the disk buffer: outages, SIGKILL during an outage, restart, and a
//! full disk. The agent logs `cycle buffered` (debug) with the cycle's timestamp once a
//! collection cycle has been appended to the log; everything so reported must arrive.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

fn buffered_config(protocol: &str, port: u16, buffer: &Path, extra_buffer: &str) -> String {
    config(protocol, port, "").replace(
        "buffer:\n  path: ./buffer\n",
        &format!(
            "buffer:\n  enabled: true\n  path: \"{}\"\n{extra_buffer}",
            buffer.display()
        ),
    )
}

/// Timestamps of the system collector's cycles that the agent reported durable.
fn buffered_cycles(agent: &Agent) -> BTreeSet<u64> {
    agent
        .logs_with("cycle buffered")
        .iter()
        .filter(|l| l["collector"] == "system")
        .filter_map(|l| l["time_unix_nano"].as_u64())
        .collect()
}

fn wait_cycles(agent: &Agent, n: usize) -> BTreeSet<u64> {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let c = buffered_cycles(agent);
        if c.len() >= n {
            return c;
        }
        assert!(
            Instant::now() < end,
            "only {} cycles buffered:\n{}",
            c.len(),
            agent.raw_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `system.uptime` timestamps in arrival order (one point per cycle).
fn uptime_arrivals(reqs: &[Value]) -> Vec<u64> {
    let mut out = Vec::new();
    let accepted = |r: &&Value| {
        let resp = &r["response"];
        resp["grpc_code"].is_null() && (resp["http_status"].is_null() || resp["http_status"] == 200)
    };
    for r in reqs.iter().filter(accepted) {
        for m in metrics(r) {
            if m["name"] != "system.uptime" {
                continue;
            }
            for p in m["gauge"]["data_points"].as_array().into_iter().flatten() {
                if let Some(t) = p["time_unix_nano"].as_str().and_then(|s| s.parse().ok()) {
                    out.push(t);
                }
            }
        }
    }
    out
}

/// Every buffered cycle arrived; after dropping repeats, arrival order is time order.
fn assert_complete_and_ordered(buffered: &BTreeSet<u64>, arrivals: &[u64]) {
    let got: BTreeSet<u64> = arrivals.iter().copied().collect();
    let missing: Vec<_> = buffered.difference(&got).collect();
    assert!(
        missing.is_empty(),
        "cycles lost: {missing:?} (arrived: {arrivals:?})"
    );
    let mut seen = BTreeSet::new();
    let firsts: Vec<u64> = arrivals
        .iter()
        .copied()
        .filter(|t| seen.insert(*t))
        .collect();
    assert!(
        firsts.windows(2).all(|w| w[0] < w[1]),
        "reordered within the series: {firsts:?}"
    );
}

#[test]
fn sigkill_during_an_outage_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let buffer = dir.path().join("buffer");
    let port = free_port();
    let cfg = buffered_config("http", port, &buffer, "");

    // Collector refuses connections; the first agent buffers, then is killed.
    let mut first = Agent::start(&cfg);
    let before = wait_cycles(&first, 3);
    first.signal(libc::SIGKILL);
    let _ = first.child.wait();
    let before_kill = buffered_cycles(&first);
    assert!(before_kill.is_superset(&before));

    // `buffer status` reads the state of a stopped agent's buffer without changing it.
    let status = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tfo-agent"))
            .args(["buffer", "status", "--format", "json", "--path"])
            .arg(&buffer)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let st = status();
    let m = &st["signals"][0];
    assert_eq!(m["signal"], "metrics");
    assert!(
        m["records"].as_u64().unwrap() >= before_kill.len() as u64,
        "{st}"
    );
    assert!(m["disk_bytes"].as_u64().unwrap() > 0);
    assert!(m["oldest_record_age_seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(
        status()["signals"][0]["records"],
        m["records"],
        "status changed the buffer"
    );

    // Restarted during the outage: it recovers the log and keeps collecting. The downtime
    // (longer than the buffer's clock-jump tolerance of 1 s) is not a clock jump.
    std::thread::sleep(Duration::from_millis(1500));
    let mut second = Agent::start(&cfg);
    wait_cycles(&second, 2);
    assert!(
        !second.raw_log().contains("wall clock moved"),
        "downtime reported as a clock jump:\n{}",
        second.raw_log()
    );
    let rx = Receiver::start_on(-1, port as i32, None);
    let mut all = before_kill.clone();
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let now: BTreeSet<u64> = buffered_cycles(&second);
        let want: BTreeSet<u64> = all.union(&now).copied().collect();
        let got: BTreeSet<u64> = uptime_arrivals(&rx.requests()).into_iter().collect();
        if want.is_subset(&got) {
            all = want;
            break;
        }
        assert!(
            Instant::now() < end,
            "backlog never delivered; missing {:?}",
            want.difference(&got).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(second.terminate(Duration::from_secs(15)), 0);
    all.extend(buffered_cycles(&second));
    assert_complete_and_ordered(&all, &uptime_arrivals(&rx.requests()));
    assert!(
        !second.logs_with("buffer recovered").is_empty(),
        "no recovery log line:\n{}",
        second.raw_log()
    );
}

#[test]
fn unavailable_collector_then_restart_delivers_every_cycle() {
    // gRPC UNAVAILABLE for the first requests: an outage, never a reason to drop.
    let script: Vec<Value> = (0..12)
        .map(|_| json!({"grpc_code": "UNAVAILABLE"}))
        .collect();
    let rx = Receiver::start(Some(json!(script)));
    let dir = tempfile::tempdir().unwrap();
    let buffer = dir.path().join("buffer");
    let cfg = buffered_config("grpc", rx.grpc_port, &buffer, "");
    let mut first = Agent::start(&cfg);
    wait_cycles(&first, 3);
    first.signal(libc::SIGKILL);
    let _ = first.child.wait();
    let mut all = buffered_cycles(&first);
    let mut second = Agent::start(&cfg);
    let end = Instant::now() + Duration::from_secs(40);
    loop {
        let got: BTreeSet<u64> = uptime_arrivals(&rx.requests()).into_iter().collect();
        let now = buffered_cycles(&second);
        if all.is_subset(&got) && now.len() >= 2 && now.is_subset(&got) {
            break;
        }
        assert!(
            Instant::now() < end,
            "not delivered: {:?}",
            all.difference(&got).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(second.terminate(Duration::from_secs(15)), 0);
    all.extend(buffered_cycles(&second));
    let reqs = rx.requests();
    assert!(
        reqs.iter()
            .filter(|r| r["response"]["grpc_code"] == "UNAVAILABLE")
            .count()
            >= 12,
        "the outage was not exercised"
    );
    assert_complete_and_ordered(&all, &uptime_arrivals(&reqs));
    let page = second.raw_log();
    assert!(
        !page.contains("\"reason\":\"max_retries\""),
        "an outage used up retries"
    );
}

#[test]
fn a_full_buffer_drops_oldest_counts_and_keeps_collecting() {
    let dir = tempfile::tempdir().unwrap();
    let buffer = dir.path().join("buffer");
    let port = free_port();
    let cfg = buffered_config("grpc", port, &buffer, "  max_size_mb: 1\n")
        .replace("    interval: 1s", "    interval: 20ms");
    let agent = Agent::start(&cfg);
    let addr = agent.bound_address("serving self-metrics");
    let sample = |page: &str, series: &str| sample(page, series).unwrap_or(0.0);
    let end = Instant::now() + Duration::from_secs(60);
    let page = loop {
        let (_, page) = http_get(addr, "/metrics");
        if sample(
            &page,
            "tfo_agent_dropped_items_total{signal=\"metrics\",reason=\"full\"}",
        ) > 0.0
        {
            break page;
        }
        assert!(Instant::now() < end, "never full:\n{page}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let runs = sample(
        &page,
        "tfo_agent_collector_runs_total{collector=\"system\"}",
    );
    let rss = sample(&page, "tfo_agent_process_resident_memory_bytes");
    std::thread::sleep(Duration::from_secs(3));
    let (_, later) = http_get(addr, "/metrics");
    assert!(
        sample(
            &later,
            "tfo_agent_collector_runs_total{collector=\"system\"}"
        ) > runs,
        "collection stopped when the buffer was full"
    );
    assert!(
        sample(
            &later,
            "tfo_agent_dropped_items_total{signal=\"metrics\",reason=\"full\"}"
        ) > sample(
            &page,
            "tfo_agent_dropped_items_total{signal=\"metrics\",reason=\"full\"}"
        ),
        "drops are not counted"
    );
    // Disk stays within max_size_mb; memory does not grow with the backlog.
    let disk: u64 = walk(&buffer);
    assert!(
        disk <= 1 << 20,
        "buffer uses {disk} bytes on disk, more than max_size_mb: 1"
    );
    let rss_later = sample(&later, "tfo_agent_process_resident_memory_bytes");
    assert!(
        rss_later < rss + 32e6,
        "resident memory grew from {rss} to {rss_later}"
    );
    assert!(sample(&later, "tfo_agent_buffer_bytes{signal=\"metrics\"}") > 0.0);
    assert!(
        agent.raw_log().contains("\"reason\":\"full\""),
        "drops are not logged"
    );
}

/// The interval sync flushes what is not yet delivered and skips what is: both show on
/// `/metrics`, and so do the housekeeping failures (none here).
#[test]
fn interval_syncs_flush_during_an_outage_and_are_skipped_once_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let buffer = dir.path().join("buffer");
    let port = free_port();
    // Each 1 s cycle is sent as soon as it is buffered (batch_size: 1), so the interval
    // sync mostly finds it acknowledged. (A cycle waiting for `flush_interval` stays
    // unacknowledged, and then every sync flushes it, as it should.)
    let cfg = buffered_config("http", port, &buffer, "").replace(
        "    flush_interval: 1s\n",
        "    flush_interval: 1s\n    batch_size: 1\n",
    );
    assert!(cfg.contains("batch_size: 1"));
    let mut agent = Agent::start(&cfg);
    let addr = agent.bound_address("serving self-metrics");
    let value = |page: &str, series: &str| {
        sample(page, series).unwrap_or_else(|| panic!("no {series} in:\n{page}"))
    };
    let synced = "tfo_agent_buffer_segment_syncs_total{signal=\"metrics\"}";
    let skipped = "tfo_agent_buffer_syncs_skipped_total{signal=\"metrics\"}";
    let wait_for = |what: &str, done: &dyn Fn(&str) -> bool| {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, page) = http_get(addr, "/metrics");
            if done(&page) {
                return page;
            }
            assert!(Instant::now() < end, "{what}:\n{page}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };

    // Nothing listens: every record stays unacknowledged, so each sync flushes.
    let outage = wait_for("no segment synced during the outage", &|p| {
        sample(p, synced).unwrap_or(0.0) >= 2.0
    });
    assert_eq!(
        value(&outage, skipped),
        0.0,
        "a sync was skipped while records were undelivered"
    );
    for op in ["sync", "ledger", "delete"] {
        let series = format!("tfo_agent_buffer_io_errors_total{{signal=\"metrics\",op=\"{op}\"}}");
        assert_eq!(value(&outage, &series), 0.0, "{series}");
    }

    // The collector comes up: the backlog is delivered, and syncs then find nothing to do.
    let rx = Receiver::start_on(-1, port as i32, None);
    wait_for("no sync skipped once records were delivered", &|p| {
        sample(p, skipped).unwrap_or(0.0) >= 3.0
    });
    assert!(!rx.requests().is_empty());
    assert_eq!(agent.terminate(Duration::from_secs(15)), 0);
}

/// Two agents on one buffer directory would each take the other's records for their own:
/// the second waits for the first to stop (a restart or rolling update), then refuses to
/// start, naming the directory; once the first is gone a new one starts and sends the
/// first one's backlog.
#[test]
fn a_second_agent_on_the_same_buffer_refuses_to_start_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let buffer = dir.path().join("buffer");
    let port = free_port();
    let cfg = buffered_config("http", port, &buffer, "");
    let mut first = Agent::start(&cfg);
    let before = wait_cycles(&first, 2);

    let mut second = Agent::start_with_env(&cfg, &[("TFO_BUFFER_LOCK_WAIT_MS", "1500")]);
    let end = Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Some(st) = second.child.try_wait().unwrap() {
            break st.code();
        }
        assert!(Instant::now() < end, "the second agent kept running");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(code, Some(1), "{}", second.raw_log());
    let log = second.raw_log();
    assert!(log.contains("waiting for it to stop"), "{log}");
    assert!(
        log.contains("is in use by another process") && log.contains("buffer.path"),
        "{log}"
    );
    assert!(
        log.contains(&*buffer.join("metrics").to_string_lossy()),
        "the directory is named:\n{log}"
    );

    // The first one never noticed, and what it buffered is delivered after its restart.
    first.signal(libc::SIGKILL);
    let _ = first.child.wait();
    let mut all = buffered_cycles(&first);
    assert!(all.is_superset(&before));
    let rx = Receiver::start_on(-1, port as i32, None);
    let mut third = Agent::start(&cfg);
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let got: BTreeSet<u64> = uptime_arrivals(&rx.requests()).into_iter().collect();
        if all.is_subset(&got) {
            break;
        }
        assert!(Instant::now() < end, "backlog not delivered");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(third.terminate(Duration::from_secs(15)), 0);
    all.extend(buffered_cycles(&third));
    assert_complete_and_ordered(&all, &uptime_arrivals(&rx.requests()));
}

fn walk(p: &Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
        let m = e.metadata().unwrap();
        n += if m.is_dir() { walk(&e.path()) } else { m.len() };
    }
    n
}

/// A tmpfs mounted on a directory, unmounted (lazily) when dropped, also on panic.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_full_file_system_degrades_to_memory_keeps_exporting_and_returns_to_disk() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let buffer = dir.path().join("buffer");
    std::fs::create_dir(&buffer).unwrap();
    let _fs = match Tmpfs::mount(&buffer, "2m") {
        Ok(m) => m,
        Err(e) => {
            eprintln!("skipped: cannot mount a tmpfs ({e})");
            return;
        }
    };
    let port = free_port();
    // The file system (2 MiB) fills up long before buffer.max_size_mb.
    let cfg = buffered_config(
        "http",
        port,
        &buffer,
        "  max_size_mb: 64\n  memory_limit_mb: 1\n",
    )
    .replace("    interval: 1s", "    interval: 20ms");
    let mut agent = Agent::start(&cfg);
    let addr = agent.bound_address("serving self-metrics");
    let value = |page: &str, series: &str| sample(page, series).unwrap_or(0.0);
    let disk_error = "tfo_agent_dropped_items_total{signal=\"metrics\",reason=\"disk_error\"}";
    let full = "tfo_agent_dropped_items_total{signal=\"metrics\",reason=\"full\"}";
    let degraded = "tfo_agent_buffer_degraded{signal=\"metrics\"}";
    let exported = "tfo_agent_exported_items_total{signal=\"metrics\"}";
    let wait_for = |what: &str, cond: &dyn Fn(&str) -> bool| -> String {
        let end = Instant::now() + Duration::from_secs(90);
        loop {
            let (_, page) = http_get(addr, "/metrics");
            if cond(&page) {
                return page;
            }
            assert!(Instant::now() < end, "{what} never happened:\n{page}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };

    // Collector down: the disk fills, the agent keeps collecting in memory, and what the
    // memory bound pushes out is counted as disk_error, never as full.
    let page = wait_for("disk_error drops", &|p| value(p, disk_error) > 0.0);
    assert_eq!(value(&page, degraded), 1.0, "{page}");
    assert_eq!(value(&page, full), 0.0, "{page}");
    let entered: Vec<Value> = agent
        .logs()
        .into_iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("disk buffer unusable"))
        })
        .collect();
    assert_eq!(entered.len(), 1, "{}", agent.raw_log());
    assert_eq!(entered[0]["fault"], "no_space", "{}", entered[0]);

    // Collector back: the backlog is exported, acknowledged segments free the disk, and
    // the buffer returns to it.
    let rx = Receiver::start_on(-1, port as i32, None);
    let page = wait_for("the return to disk", &|p| {
        value(p, degraded) == 0.0 && value(p, exported) > 0.0
    });
    // With a 2 MiB disk, writing the memory records back can fill it once more before the
    // backlog drains: the buffer may go back and forth, but it ends on the disk.
    assert!(
        !agent.logs_with("disk buffer works again").is_empty(),
        "{}",
        agent.raw_log()
    );
    let before = value(&page, exported);
    let later = wait_for("more exports", &|p| value(p, exported) > before);
    assert_eq!(value(&later, full), 0.0, "{later}");
    assert_eq!(value(&later, degraded), 0.0, "{later}");
    assert_eq!(agent.terminate(Duration::from_secs(15)), 0);
    assert!(!rx.requests().is_empty());
}
