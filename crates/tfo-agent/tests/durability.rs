//! Black-box tests of the paths around the buffer (issue 9): a collector that refuses the
//! agent, shutdown with a backlog, reload while exporting, a taken default port and a task
//! that dies. Each runs the built binary with the shipped default, the disk buffer.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

fn dropped(agent: &Agent) -> u64 {
    agent
        .logs_with("tfo-agent stopped")
        .first()
        .and_then(|l| l["dropped"].as_u64())
        .unwrap_or(u64::MAX)
}

/// Exit code and how long the agent took to exit after SIGTERM.
fn stop_timed(agent: &mut Agent, limit: Duration) -> (i32, Duration) {
    let t = Instant::now();
    let code = agent.terminate(limit);
    (code, t.elapsed())
}

/// Collection cycles the agent reported (one system.uptime point each).
/// The system collector's completed cycles (each carries one `system.uptime` point).
fn cycles(agent: &Agent) -> usize {
    agent
        .logs_with("collected")
        .iter()
        .filter(|l| l["collector"] == "system")
        .count()
}

#[test]
fn a_refusing_collector_keeps_the_backlog_until_the_key_is_accepted() {
    for (transport, refusal) in [
        (
            "http",
            json!({"http_status": 401, "message": "unknown key"}),
        ),
        (
            "grpc",
            json!({"grpc_code": "UNAUTHENTICATED", "message": "unknown key"}),
        ),
    ] {
        // About 6 s of refusals at retry.max_interval (400 ms), then the key is accepted.
        let rx = Receiver::start(Some(json!(vec![refusal.clone(); 15])));
        let port = if transport == "http" {
            rx.http_port
        } else {
            rx.grpc_port
        };
        let mut agent = Agent::start(&config(transport, port, ""));
        rx.wait_until(Duration::from_secs(30), "accepted requests", |r| {
            r.iter()
                .filter(|q| q["response"].get("ok").is_some())
                .count()
                >= 2
        });
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(agent.terminate(Duration::from_secs(15)), 0);
        let ran = cycles(&agent);
        let delivered = cycles_of(
            &rx.requests()
                .into_iter()
                .filter(|q| q["response"].get("ok").is_some())
                .collect::<Vec<_>>(),
            "system.uptime",
        )
        .len();
        assert_eq!(
            delivered, ran,
            "{transport}: every cycle collected while refused arrives ({ran} cycles)"
        );
        assert_eq!(dropped(&agent), 0, "{transport}: nothing dropped");
        let refused: Vec<_> = agent
            .logs()
            .into_iter()
            .filter(|l| l["outcome"] == "refused" && l["level"] == "WARN")
            .collect();
        assert_eq!(
            refused.len(),
            1,
            "{transport}: one WARN line on entering the refused state:\n{}",
            agent.raw_log()
        );
        assert!(
            !agent
                .logs_with("export resumed; the backlog is being replayed")
                .is_empty(),
            "{transport}: recovery is logged"
        );
    }
}

#[test]
fn sigterm_with_a_backlog_and_a_slow_collector_exits_within_shutdown_timeout() {
    // Every request takes 4 s: the backlog grows faster than it drains.
    let rx = Receiver::start(Some(json!(vec![json!({"delay_ms": 4000}); 50])));
    let cfg = config("grpc", rx.grpc_port, "    batch_size: 50\n")
        .replace("timeout: 5s", "timeout: 10s")
        .replace("agent:\n  name:", "agent:\n  shutdown_timeout: 3s\n  name:");
    let mut agent = Agent::start(&cfg);
    rx.wait_until(Duration::from_secs(10), "first request", |r| !r.is_empty());
    std::thread::sleep(Duration::from_secs(4));
    let (code, took) = stop_timed(&mut agent, Duration::from_secs(20));
    assert_eq!(code, 0);
    assert!(
        took < Duration::from_secs(8),
        "SIGTERM took {took:?} with shutdown_timeout 3s"
    );
    assert_eq!(
        dropped(&agent),
        0,
        "nothing is dropped: the backlog stays on disk"
    );
    let ran = cycles(&agent);

    // The next start (same buffer directory) delivers the rest to a healthy collector.
    let rx2 = Receiver::start(None);
    let yaml = std::fs::read_to_string(agent.dir.path().join("tfo-agent.yaml")).unwrap();
    let yaml = yaml.replace(
        &format!("127.0.0.1:{}", rx.grpc_port),
        &format!("127.0.0.1:{}", rx2.grpc_port),
    );
    let mut again = Agent::start_in(agent.dir.path(), &yaml);
    let all = |reqs: &[serde_json::Value]| {
        let mut r: Vec<_> = rx
            .requests()
            .into_iter()
            .filter(|q| q["response"].get("ok").is_some())
            .collect();
        r.extend(reqs.iter().cloned());
        r
    };
    rx2.wait_until(Duration::from_secs(30), "the backlog", |r| {
        cycles_of(&all(r), "system.uptime").len() >= ran
    });
    assert_eq!(again.terminate(Duration::from_secs(15)), 0);
}

#[test]
fn sigterm_with_the_collector_down_does_not_wait_for_it() {
    let port = free_port();
    let cfg = config("grpc", port, "").replace(
        "agent:\n  name:",
        "agent:\n  shutdown_timeout: 60s\n  name:",
    );
    let mut agent = Agent::start(&cfg);
    let end = Instant::now() + Duration::from_secs(20);
    while agent
        .logs_with("collector unreachable; data is kept in the buffer and sent when it returns")
        .is_empty()
    {
        assert!(
            Instant::now() < end,
            "no outage logged:\n{}",
            agent.raw_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, took) = stop_timed(&mut agent, Duration::from_secs(70));
    assert_eq!(code, 0);
    assert!(
        took < Duration::from_secs(10),
        "SIGTERM with the collector down took {took:?} (shutdown_timeout 60s)"
    );
    assert_eq!(dropped(&agent), 0);
}

#[test]
fn sighup_while_exporting_to_a_slow_collector_keeps_signals_responsive() {
    let rx = Receiver::start(Some(json!(vec![json!({"delay_ms": 5000}); 50])));
    let cfg = config("grpc", rx.grpc_port, "    batch_size: 50\n")
        .replace("timeout: 5s", "timeout: 20s")
        .replace("agent:\n  name:", "agent:\n  shutdown_timeout: 2s\n  name:");
    let mut agent = Agent::start(&cfg);
    rx.wait_until(Duration::from_secs(10), "first request", |r| !r.is_empty());
    std::thread::sleep(Duration::from_secs(2));
    agent.signal(libc::SIGHUP);
    let end = Instant::now() + Duration::from_secs(5);
    while agent.logs_with("configuration reloaded").is_empty() {
        assert!(
            Instant::now() < end,
            "SIGHUP was not applied within 5 s while a request was in flight:\n{}",
            agent.raw_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, took) = stop_timed(&mut agent, Duration::from_secs(30));
    assert_eq!(code, 0);
    assert!(
        took < Duration::from_secs(7),
        "SIGTERM after SIGHUP took {took:?}"
    );
    assert_eq!(dropped(&agent), 0);
}

#[test]
fn a_taken_default_port_warns_and_the_agent_runs_without_that_endpoint() {
    // The health endpoint's default address; if something else holds it, it is taken too.
    let _held = std::net::TcpListener::bind("127.0.0.1:13133");
    let rx = Receiver::start(None);
    let cfg = config("grpc", rx.grpc_port, "")
        .replace("health:\n  listen_address: \"127.0.0.1:0\"\n", "");
    let mut agent = Agent::start(&cfg);
    rx.wait_until(Duration::from_secs(15), "export", |r| !r.is_empty());
    let log = agent.raw_log();
    assert!(
        log.contains("health.listen_address") && log.contains("running without this endpoint"),
        "{log}"
    );
    assert_eq!(agent.terminate(Duration::from_secs(10)), 0);
}

/// A collector that panics is replaced on its thread (`collector_panic`, the first
/// collector of the group: system); a panic of the thread itself (`collect_thread_panic`)
/// restarts the whole group (system and node_exporter, which share the 1 s interval); the
/// export task is restarted by the supervisor.
#[test]
fn a_task_that_dies_is_restarted_and_counted() {
    let rx = Receiver::start(None);
    let cfg = config("grpc", rx.grpc_port, "").replace(
        "  node_exporter:\n    enabled: false",
        "  node_exporter:\n    enabled: true\n    interval: 1s",
    );
    let mut agent = Agent::start_with_env(
        &cfg,
        &[(
            "TFO_AGENT_FAILPOINTS",
            "collector_panic,collect_thread_panic,export_panic",
        )],
    );
    let addr = agent.bound_address("serving self-metrics");
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, page) = http_get(addr, "/metrics");
        let restarts = |task: &str| {
            sample(
                &page,
                &format!("tfo_agent_task_restarts_total{{task=\"{task}\"}}"),
            )
        };
        let (s, n) = (
            restarts("collector/system"),
            restarts("collector/node_exporter"),
        );
        let e = restarts("export");
        if s == Some(2.0) && n == Some(1.0) && e == Some(1.0) {
            break;
        }
        assert!(Instant::now() < end, "restarts not counted:\n{page}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let before = rx.requests().len();
    rx.wait_until(Duration::from_secs(10), "exports after the restarts", |r| {
        r.len() >= before + 2
    });
    let health = agent.bound_address("serving health checks at /, /healthz and /readyz");
    assert_eq!(http_get(health, "/healthz").0, 200);
    assert_eq!(agent.terminate(Duration::from_secs(10)), 0);
    let ran = cycles(&agent);
    // The panicked cycle never reported; every cycle that did arrives (the batch the dead
    // export task held is read again from the disk log).
    assert_eq!(cycles_of(&rx.requests(), "system.uptime").len(), ran);
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn when_full_block_holds_producers_until_sigterm_releases_them() {
    // The collector is down and the 1 MiB buffer fills in a few seconds (a cycle every
    // 20 ms): collection blocks on the full buffer; SIGTERM must still stop the agent.
    let cfg = config("grpc", free_port(), "")
        .replace("    interval: 1s", "    interval: 20ms")
        .replace(
            "buffer:\n  path: ./buffer\n",
            "buffer:\n  path: ./buffer\n  max_size_mb: 1\n  when_full: block\n",
        )
        .replace("agent:\n  name:", "agent:\n  shutdown_timeout: 2s\n  name:");
    let mut agent = Agent::start(&cfg);
    let end = Instant::now() + Duration::from_secs(60);
    while agent
        .logs_with(
            "buffer full (buffer.max_size_mb); when_full: block holds the producer until there is room",
        )
        .is_empty()
    {
        assert!(Instant::now() < end, "the buffer never filled:\n{}", agent.raw_log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, took) = stop_timed(&mut agent, Duration::from_secs(30));
    assert_eq!(code, 0);
    assert!(took < Duration::from_secs(8), "SIGTERM took {took:?}");
}

#[test]
fn a_read_only_buffer_directory_at_start_runs_on_memory_and_exports() {
    if !is_root() {
        eprintln!("skipped: a read-only bind mount needs root");
        return;
    }
    let rx = Receiver::start(None);
    let dir = tempfile::tempdir().unwrap();
    let buffer = dir.path().join("buffer");
    std::fs::create_dir(&buffer).unwrap();
    let mount = |args: &[&str]| {
        std::process::Command::new("mount")
            .args(args)
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    let b = buffer.to_str().unwrap();
    assert!(mount(&["--bind", b, b]), "bind mount");
    struct Unmount(String);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .args(["-l", &self.0])
                .status();
        }
    }
    let _u = Unmount(b.to_string());
    assert!(mount(&["-o", "remount,bind,ro", b]), "read-only remount");
    let cfg = config("grpc", rx.grpc_port, "").replace(
        "buffer:\n  path: ./buffer\n",
        &format!("buffer:\n  path: {b}\n"),
    );
    let mut agent = Agent::start(&cfg);
    rx.wait_until(Duration::from_secs(15), "exports", |r| r.len() >= 2);
    assert!(
        agent.logs().iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("disk buffer unusable"))),
        "{}",
        agent.raw_log()
    );
    assert_eq!(agent.terminate(Duration::from_secs(10)), 0);
}
