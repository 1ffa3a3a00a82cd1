//! Black-box tests of the agent's own endpoints: Prometheus self-metrics (checked by
//! Debian's `promtool` and scraped by a real Prometheus server) and health/readiness.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// A peer binary from Debian, installed by `scripts/test`. When it is missing the test is
/// skipped with a message, unless `TFO_REQUIRE_PEERS=1` (set by CI) makes that a failure.
fn peer(bin: &str) -> Option<&'static str> {
    let path: &'static str = Box::leak(format!("/usr/bin/{bin}").into_boxed_str());
    if Path::new(path).exists() {
        return Some(path);
    }
    assert!(
        std::env::var("TFO_REQUIRE_PEERS").as_deref() != Ok("1"),
        "{path} is missing; ./scripts/test installs it"
    );
    eprintln!("SKIP: {path} is not installed (run ./scripts/test)");
    None
}

#[test]
fn self_metrics_count_exports_and_pass_promtool() {
    let rx = Receiver::start(None);
    let agent = Agent::start(&config("grpc", rx.grpc_port, ""));
    let addr = agent.bound_address("serving self-metrics");
    rx.wait_until(Duration::from_secs(10), "first export", |r| !r.is_empty());
    let end = Instant::now() + Duration::from_secs(10);
    let page = loop {
        let (status, page) = http_get(addr, "/metrics");
        assert_eq!(status, 200);
        if sample(&page, "tfo_agent_exported_items_total{signal=\"metrics\"}").unwrap_or(0.0) > 0.0
        {
            break page;
        }
        assert!(Instant::now() < end, "exports never counted:\n{page}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        sample(&page, "tfo_agent_collector_up{collector=\"system\"}"),
        Some(1.0)
    );
    assert!(
        sample(
            &page,
            "tfo_agent_collector_runs_total{collector=\"system\"}"
        )
        .unwrap()
            >= 1.0
    );
    assert!(
        sample(
            &page,
            "tfo_agent_export_requests_total{signal=\"metrics\",outcome=\"success\"}"
        )
        .unwrap()
            >= 1.0
    );
    assert!(sample(&page, "tfo_agent_process_resident_memory_bytes").unwrap() > 1e6);
    assert!(
        sample(
            &page,
            "tfo_agent_last_export_timestamp_seconds{signal=\"metrics\"}"
        )
        .unwrap()
            > 1.6e9
    );
    assert!(page.contains("tfo_agent_build_info{version=\""));
    // Unknown paths are 404, the endpoint is read-only.
    assert_eq!(http_get(addr, "/nope").0, 404);

    promtool_accepts(&page);
}

/// `promtool check metrics` accepts the page. Exit 3 (lint findings) is accepted only for
/// the two lints node_exporter's own names carry (`node_memory_MemTotal_bytes` is
/// camelCase, `node_entropy_*_bits` is not in bytes); `tfo_agent_*` must be lint-free.
fn promtool_accepts(page: &str) {
    let Some(promtool) = peer("promtool") else {
        return;
    };
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    match out.status.code() {
        Some(0) => {}
        Some(3) => {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let (name, problem) = line.split_once(' ').unwrap_or((line, ""));
                let problem = problem.trim();
                assert!(
                    name.starts_with("node_")
                        && (problem
                            == "metric names should be written in 'snake_case' not 'camelCase'"
                            || problem == "use base unit \"bytes\" instead of \"bits\""),
                    "promtool lint that is ours, not node_exporter's: {line}"
                );
            }
        }
        _ => panic!("promtool check metrics failed:\n{text}\n{page}"),
    }
}

fn meminfo_total_bytes() -> f64 {
    let m = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kb: f64 = m
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024.0
}

fn with_node_exporter(cfg: &str) -> String {
    cfg.replace(
        "  node_exporter:\n    enabled: false",
        "  node_exporter:\n    enabled: true\n    interval: 1s",
    )
    .replace(
        "prometheus:\n  listen_address: \"127.0.0.1:0\"",
        "prometheus:\n  listen_address: \"127.0.0.1:0\"\n  expose_node_metrics: true",
    )
}

#[test]
fn node_metrics_are_exported_as_otlp_and_served_under_node_exporter_names() {
    let rx = Receiver::start(None);
    let agent = Agent::start(&with_node_exporter(&config("grpc", rx.grpc_port, "")));
    let addr = agent.bound_address("serving self-metrics");
    let reqs = rx.wait_until(Duration::from_secs(15), "node metrics", |r| {
        points_of(r, "node.memory.total") > 0 && points_of(r, "node.cpu.time") > 0
    });
    let ms = all_metrics(&reqs);
    let total = ms
        .iter()
        .find(|m| m["name"] == "node.memory.total")
        .unwrap();
    assert_eq!(total["unit"], "By");
    let cpu = ms.iter().find(|m| m["name"] == "node.cpu.time").unwrap();
    assert_eq!(cpu["sum"]["is_monotonic"], true, "{cpu}");
    let names: std::collections::BTreeSet<&str> = ms
        .iter()
        .filter_map(|m| m["name"].as_str())
        .filter(|n| n.starts_with("node."))
        .collect();
    assert!(
        names.len() >= 100,
        "only {} node.* names exported",
        names.len()
    );

    let end = Instant::now() + Duration::from_secs(10);
    let page = loop {
        let (_, page) = http_get(addr, "/metrics");
        if page.contains("node_memory_MemTotal_bytes ") {
            break page;
        }
        assert!(
            Instant::now() < end,
            "no node_exporter names on /metrics:\n{page}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        sample(&page, "node_memory_MemTotal_bytes"),
        Some(meminfo_total_bytes())
    );
    assert!(
        page.contains("node_cpu_seconds_total{cpu=\"0\",mode=\"user\"} "),
        "{page}"
    );
    assert!(page.contains("tfo_agent_collector_up{collector=\"node_exporter\"} 1"));
    promtool_accepts(&page);
}

#[test]
fn prometheus_server_scrapes_the_agent() {
    let Some(prometheus) = peer("prometheus") else {
        return;
    };
    let rx = Receiver::start(None);
    let agent = Agent::start(&with_node_exporter(&config("grpc", rx.grpc_port, "")));
    let addr = agent.bound_address("serving self-metrics");
    let dir = tempfile::tempdir().unwrap();
    let prom_cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &prom_cfg,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: tfo-agent\n    static_configs:\n      - targets: ['{addr}']\n"
        ),
    )
    .unwrap();
    let web = free_port();
    let mut server = Command::new(prometheus)
        .arg(format!("--config.file={}", prom_cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{web}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
        .spawn()
        .unwrap();
    let api: std::net::SocketAddr = format!("127.0.0.1:{web}").parse().unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    let result = loop {
        if std::net::TcpStream::connect(api).is_ok() {
            let (status, body) =
                http_get(api, "/api/v1/query?query=tfo_agent_collector_runs_total");
            if status == 200 {
                let v: Value = serde_json::from_str(&body).unwrap_or_default();
                let r = v["data"]["result"].as_array().cloned().unwrap_or_default();
                if !r.is_empty() {
                    break r;
                }
            }
        }
        if Instant::now() > end {
            let _ = server.kill();
            panic!(
                "Prometheus never returned our series:\n{}",
                std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    // Dashboards built on node_exporter query the same names.
    let (status, body) = http_get(api, "/api/v1/query?query=node_memory_MemTotal_bytes");
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        result.iter().any(|r| r["metric"]["collector"] == "system"),
        "{result:?}"
    );
    assert_eq!(result[0]["metric"]["job"], "tfo-agent");
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    let got: f64 = v["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no node_memory_MemTotal_bytes in Prometheus: {v}"));
    assert_eq!(got, meminfo_total_bytes());
}

fn readyz(addr: std::net::SocketAddr) -> (u16, Value) {
    let (status, body) = http_get(addr, "/readyz");
    (status, serde_json::from_str(&body).unwrap_or_default())
}

fn wait_ready(addr: std::net::SocketAddr, what: &str, pred: impl Fn(u16, &Value) -> bool) -> Value {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let (s, v) = readyz(addr);
        if pred(s, &v) {
            return v;
        }
        assert!(Instant::now() < end, "never {what}; last /readyz: {s} {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn readiness_follows_collection_and_exporter_state() {
    // The collector is down at first: ready (data is kept), with the outage in the body.
    let port = free_port();
    let mut agent = Agent::start(&config("http", port, ""));
    let health = agent.bound_address("serving health checks at /, /healthz and /readyz");
    for p in ["/", "/healthz"] {
        let (s, body) = http_get(health, p);
        assert_eq!(s, 200, "{p}");
        assert!(body.contains("\"alive\""), "{p}: {body}");
    }
    let v = wait_ready(health, "ready with an exporter outage", |s, v| {
        s == 200 && v["exporter"]["state"] == "outage"
    });
    assert_eq!(v["ready"], true);
    assert_eq!(v["status"], "ready, exporter degraded");
    assert!(
        v["exporter"]["last_error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{v}"
    );
    // The collector comes up: the exporter recovers.
    let _rx = Receiver::start_on(-1, port as i32, None);
    let v = wait_ready(health, "exporter ok", |s, v| {
        s == 200 && v["exporter"]["state"] == "ok"
    });
    assert_eq!(v["status"], "ready");
    assert!(v["last_export_unix"].as_u64().unwrap() > 0);
    assert_eq!(agent.terminate(Duration::from_secs(10)), 0);
}

#[test]
fn not_ready_until_something_is_collected() {
    let rx = Receiver::start(None);
    let cfg = config("grpc", rx.grpc_port, "").replace(
        "  system:\n    enabled: true",
        "  system:\n    enabled: false",
    );
    let mut agent = Agent::start(&cfg);
    let health = agent.bound_address("serving health checks at /, /healthz and /readyz");
    // Liveness is independent of readiness.
    assert_eq!(http_get(health, "/healthz").0, 200);
    std::thread::sleep(Duration::from_secs(2));
    let (s, v) = readyz(health);
    assert_eq!(s, 503, "{v}");
    assert_eq!(v["status"], "starting");
    assert_eq!(v["collecting"], false);
    assert_eq!(agent.terminate(Duration::from_secs(10)), 0);
}

#[test]
fn a_taken_port_is_a_startup_error_naming_the_key() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let cfg = config("grpc", 1, "").replace(
        "prometheus:\n  listen_address: \"127.0.0.1:0\"",
        &format!("prometheus:\n  listen_address: \"{addr}\""),
    );
    let mut agent = Agent::start(&cfg);
    let end = Instant::now() + Duration::from_secs(10);
    let code = loop {
        if let Some(st) = agent.child.try_wait().unwrap() {
            break st.code();
        }
        assert!(Instant::now() < end, "agent kept running on a taken port");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, Some(1));
    let log = agent.raw_log();
    assert!(
        log.contains("prometheus.listen_address") && log.contains(&addr.to_string()),
        "{log}"
    );
}
