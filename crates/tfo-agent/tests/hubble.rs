//! Black-box test of the Hubble flow metrics: the built agent follows a fake Hubble
//! observer (crate tfo-hubble-fake, the real gRPC wire format) on a Unix socket, and the
//! Python OTLP receiver must get exactly the counts of the scripted flows. The socket is
//! missing at first (reported once, with the fix, then retried quietly), and the fake is
//! killed and restarted mid-run: counting resumes without loss or double counting.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;
use tfo_hubble_fake::flows::{self as f, Flags};
use tfo_hubble_fake::{FakeHubble, Session};

fn config(port: u16, socket: &std::path::Path) -> String {
    format!(
        r#"
telemetryflow:
  endpoint: "127.0.0.1:{port}"
  protocol: grpc
  retry:
    initial_interval: 100ms
    max_interval: 400ms
agent:
  name: "hubble-agent"
  data_dir: ./data
  shutdown_timeout: 3s
heartbeat:
  enabled: false
collectors:
  system:
    enabled: false
  node_exporter:
    enabled: false
  ebpf:
    enabled: false
    interval: 300ms
    hubble:
      enabled: true
      address: "unix://{}"
buffer:
  path: ./buffer
prometheus:
  listen_address: "127.0.0.1:0"
health:
  listen_address: "127.0.0.1:0"
exporter:
  otlp:
    flush_interval: 200ms
"#,
        socket.display()
    )
}

/// 9 messages: 8 flows and a lost-events notice.
fn script() -> Vec<tfo_hubble_fake::proto::observer::GetFlowsResponse> {
    let syn = Flags {
        syn: true,
        ..Flags::default()
    };
    let egress = || f::base(f::FORWARDED, f::EGRESS, "shop", "db");
    let ingress = || f::base(f::FORWARDED, f::INGRESS, "shop", "db");
    vec![
        f::msg(f::with_tcp(egress(), syn)),
        f::msg(f::with_tcp(egress(), syn)),
        f::msg(f::with_tcp(egress(), syn)),
        f::msg(f::dropped(f::with_tcp(ingress(), syn), f::POLICY_DENIED)),
        f::msg(f::http(ingress(), f::RESPONSE, "GET", 200)),
        f::msg(f::http(ingress(), f::RESPONSE, "GET", 204)),
        f::msg(f::dns(egress(), f::RESPONSE, 3, &["A"])),
        f::lost(1, 5),
        f::msg(f::http(ingress(), f::REQUEST, "GET", 0)),
    ]
}

/// `(metric, attributes, value after one script)`.
type Expected = (&'static str, &'static [(&'static str, &'static str)], u64);
/// `(metric name, sorted attributes) -> value`.
type Series = std::collections::BTreeMap<(String, Vec<(String, String)>), u64>;

const EXPECTED: &[Expected] = &[
    (
        "hubble.flows",
        &[
            ("verdict", "FORWARDED"),
            ("type", "L3_L4"),
            ("direction", "EGRESS"),
        ],
        3,
    ),
    (
        "hubble.flows",
        &[
            ("verdict", "DROPPED"),
            ("type", "L3_L4"),
            ("direction", "INGRESS"),
        ],
        1,
    ),
    (
        "hubble.flows",
        &[
            ("verdict", "FORWARDED"),
            ("type", "L7"),
            ("direction", "INGRESS"),
        ],
        3,
    ),
    (
        "hubble.flows",
        &[
            ("verdict", "FORWARDED"),
            ("type", "L7"),
            ("direction", "EGRESS"),
        ],
        1,
    ),
    (
        "hubble.drops",
        &[("reason", "POLICY_DENIED"), ("protocol", "TCP")],
        1,
    ),
    (
        "hubble.tcp.flags",
        &[("flag", "SYN"), ("family", "IPv4")],
        4,
    ),
    (
        "hubble.http_requests",
        &[("method", "GET"), ("status_class", "2xx")],
        2,
    ),
    (
        "hubble.dns.responses",
        &[("rcode", "NXDOMAIN"), ("qtypes", "A")],
        1,
    ),
    (
        "hubble.lost_events",
        &[("source", "PERF_EVENT_RING_BUFFER")],
        5,
    ),
];

fn attrs(p: &Value) -> Vec<(String, String)> {
    let mut v: Vec<_> = p["attributes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            (
                a["key"].as_str().unwrap_or("").to_string(),
                a["value"]["string_value"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// The series of every `hubble.*` metric in the latest exported cycle:
/// `(name, sorted attributes) -> value`, with the cycle's time.
fn latest_cycle(reqs: &[Value]) -> (u64, Series) {
    let mut by_time: std::collections::BTreeMap<u64, Series> = Default::default();
    for m in all_metrics(reqs) {
        let name = m["name"].as_str().unwrap_or("").to_string();
        if !name.starts_with("hubble.") {
            continue;
        }
        assert_eq!(m["sum"]["is_monotonic"], true, "{name} is a monotonic sum");
        for p in m["sum"]["data_points"].as_array().into_iter().flatten() {
            let t = as_u64(&p["time_unix_nano"]).unwrap_or(0);
            let v = as_u64(&p["as_int"]).unwrap_or(0);
            by_time
                .entry(t)
                .or_default()
                .insert((name.clone(), attrs(p)), v);
        }
    }
    by_time.into_iter().next_back().unwrap_or_default()
}

fn expected(times: u64) -> Series {
    EXPECTED
        .iter()
        .map(|(name, a, v)| {
            let mut a: Vec<_> = a
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            a.sort();
            ((name.to_string(), a), v * times)
        })
        .collect()
}

fn wait_for_counts(rx: &Receiver, times: u64) {
    let want = expected(times);
    let reqs = rx.wait_until(
        Duration::from_secs(30),
        &format!("the counts of {times} script(s)"),
        |r| latest_cycle(r).1 == want,
    );
    assert_eq!(latest_cycle(&reqs).1, want);
}

#[test]
fn exported_hubble_counts_are_exact_across_a_missing_socket_and_a_restart() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("hubble.sock");
    let rx = Receiver::start(None);
    let mut agent = Agent::start_with_env(
        &config(rx.grpc_port, &socket),
        &[("TFO_HUBBLE_RETRY_MS", "100")],
    );

    // No socket yet: one warning with the fix, however many retries.
    let missing = |agent: &Agent| {
        agent
            .logs()
            .into_iter()
            .filter(|l| l.to_string().contains("is Cilium with Hubble installed"))
            .count()
    };
    let start = std::time::Instant::now();
    while missing(&agent) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no missing-socket warning:\n{}",
            tail(&agent.log, 50)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(missing(&agent), 1, "reported once, retried quietly");
    assert!(
        latest_cycle(&rx.requests()).1.is_empty(),
        "nothing is exported before Hubble is reachable"
    );
    // Quiet in the log, but not invisible: the collector is down in /metrics and /readyz,
    // and every failed attempt is counted.
    let metrics = agent.bound_address("serving self-metrics");
    let health = agent.bound_address("serving health checks at /, /healthz and /readyz");
    let up = "tfo_agent_collector_up{collector=\"ebpf.hubble\"}";
    let errors = "tfo_agent_collector_errors_total{collector=\"ebpf.hubble\"}";
    let page = http_get(metrics, "/metrics").1;
    assert_eq!(sample(&page, up), Some(0.0), "{page}");
    assert!(sample(&page, errors).unwrap_or(0.0) >= 2.0, "{page}");
    let down = |health| {
        let body = http_get(health, "/readyz").1;
        let v: Value = serde_json::from_str(&body).expect("readyz is JSON");
        v["collectors_down"]
            .as_array()
            .is_some_and(|a| a.iter().any(|c| c == "ebpf.hubble"))
    };
    assert!(down(health), "ebpf.hubble not among the collectors down");

    let fake = rt.block_on(FakeHubble::unix(&socket, vec![Session::hold(script())]));
    wait_for_counts(&rx, 1);
    let page = http_get(metrics, "/metrics").1;
    assert_eq!(
        sample(&page, up),
        Some(1.0),
        "up once the stream is open:\n{page}"
    );
    assert!(!down(health));
    let reqs = rx.requests();
    assert!(
        all_metrics(&reqs)
            .iter()
            .flat_map(|m| m["sum"]["data_points"]
                .as_array()
                .cloned()
                .unwrap_or_default())
            .all(|p| !p.to_string().contains("namespace")),
        "no namespace attributes unless collectors.ebpf.hubble.namespaces"
    );

    // Killed mid-stream and back: the counts continue from where they were.
    rt.block_on(fake.kill());
    std::thread::sleep(Duration::from_millis(500));
    let (_, now) = latest_cycle(&rx.requests());
    assert_eq!(now, expected(1), "nothing counted while Hubble is down");
    let fake = rt.block_on(FakeHubble::unix(&socket, vec![Session::hold(script())]));
    wait_for_counts(&rx, 2);
    // Held open with nothing new: the counts stay.
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(latest_cycle(&rx.requests()).1, expected(2));
    assert!(fake.requests().iter().all(|r| r.follow && r.number == 0));

    assert_eq!(agent.terminate(Duration::from_secs(10)), 0);
    rt.block_on(fake.kill());
}

#[test]
fn a_collector_turned_off_by_a_reload_leaves_metrics_and_readyz() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("never.sock");
    let rx = Receiver::start(None);
    let cfg = config(rx.grpc_port, &socket).replace(
        "  system:\n    enabled: false",
        "  system:\n    enabled: true\n    interval: 300ms",
    );
    assert!(cfg.contains("interval: 300ms\n  node_exporter"));
    let mut agent = Agent::start_with_env(&cfg, &[("TFO_HUBBLE_RETRY_MS", "100")]);
    let metrics = agent.bound_address("serving self-metrics");
    let health = agent.bound_address("serving health checks at /, /healthz and /readyz");
    let up = "tfo_agent_collector_up{collector=\"ebpf.hubble\"}";
    let hubble_down = || {
        let body = http_get(health, "/readyz").1;
        let v: Value = serde_json::from_str(&body).expect("readyz is JSON");
        v["collectors_down"]
            .as_array()
            .is_some_and(|a| a.iter().any(|c| c == "ebpf.hubble"))
    };
    let wait = |what: &str, done: &dyn Fn() -> bool| {
        let end = std::time::Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(
                std::time::Instant::now() < end,
                "{what}:\n{}",
                tail(&agent.log, 40)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait("ebpf.hubble never down", &|| hubble_down());

    // Hubble off, system on: the stale 0 must go, the system collector's series stay.
    let path = agent.dir.path().join("tfo-agent.yaml");
    std::fs::write(
        &path,
        cfg.replace(
            "    hubble:\n      enabled: true",
            "    hubble:\n      enabled: false",
        ),
    )
    .unwrap();
    agent.signal(libc::SIGHUP);
    wait("ebpf.hubble still listed after the reload", &|| {
        !hubble_down()
    });
    let page = http_get(metrics, "/metrics").1;
    assert_eq!(sample(&page, up), None, "{page}");
    assert_eq!(
        sample(&page, "tfo_agent_collector_up{collector=\"system\"}"),
        Some(1.0),
        "{page}"
    );
    assert!(
        sample(
            &page,
            "tfo_agent_collector_errors_total{collector=\"ebpf.hubble\"}"
        )
        .is_some_and(|v| v >= 1.0),
        "counters are kept:\n{page}"
    );
    assert_eq!(agent.terminate(Duration::from_secs(10)), 0);
}

#[test]
fn a_client_that_ends_is_reported_down_and_started_again() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("hubble.sock");
    let fake = rt.block_on(FakeHubble::unix(&socket, vec![Session::hold(script())]));
    let rx = Receiver::start(None);
    // The first client's thread ends at once (as a panic or a runtime that cannot start
    // would end it): the next cycle notices, counts it and starts another.
    let mut agent = Agent::start_with_env(
        &config(rx.grpc_port, &socket),
        &[("TFO_AGENT_FAILPOINTS", "hubble_client_exit")],
    );
    wait_for_counts(&rx, 1);
    assert_eq!(
        agent
            .logs_with("the Hubble client stopped; starting it again")
            .len(),
        1,
        "{}",
        tail(&agent.log, 40)
    );
    let page = http_get(agent.bound_address("serving self-metrics"), "/metrics").1;
    assert!(
        sample(
            &page,
            "tfo_agent_collector_errors_total{collector=\"ebpf.hubble\"}"
        )
        .is_some_and(|v| v >= 1.0),
        "{page}"
    );
    assert_eq!(
        sample(&page, "tfo_agent_collector_up{collector=\"ebpf.hubble\"}"),
        Some(1.0),
        "{page}"
    );
    assert_eq!(agent.terminate(Duration::from_secs(10)), 0);
    rt.block_on(fake.kill());
}
