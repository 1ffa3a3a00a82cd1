//! Black-box export tests: the built binary against the independent Python OTLP receiver.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const GRPC_METRICS: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

fn find<'a>(ms: &'a [Value], name: &str) -> &'a Value {
    ms.iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("metric {name} not exported"))
}

#[test]
fn grpc_export_is_spec_shaped_and_carries_identity() {
    let rx = Receiver::start(None);
    let mut agent = Agent::start(&config("grpc", rx.grpc_port, ""));
    // First collection happens at start and the first flush a second later.
    let reqs = rx.wait_until(Duration::from_secs(8), "first export", |r| !r.is_empty());
    let first = &reqs[0];
    assert_eq!(first["transport"], "grpc");
    assert_eq!(first["path"], GRPC_METRICS);
    assert_eq!(
        first["grpc_message_encoding"], "gzip",
        "gRPC requests are gzip-compressed by default"
    );
    let h = &first["headers"];
    assert_eq!(h["x-telemetryflow-key-id"], "tfk_test_key");
    assert_eq!(h["x-telemetryflow-key-secret"], "tfs_super_secret_value");
    let agent_id = h["x-telemetryflow-agent-id"].as_str().unwrap().to_string();
    assert!(h["user-agent"].as_str().unwrap().contains("tfo-agent/"));

    let res = resource_attrs(first);
    for k in [
        "host.name",
        "host.arch",
        "os.type",
        "os.description",
        "service.version",
        "service.instance.id",
    ] {
        assert!(res.contains_key(k), "resource lacks {k}: {res:?}");
    }
    assert_eq!(res["service.name"], "tfo-agent");
    assert_eq!(res["os.type"], "linux");
    assert_eq!(res["telemetryflow.agent.id"], agent_id);
    assert_eq!(res["telemetryflow.agent.name"], "blackbox-agent");
    assert_eq!(res["deployment.environment"], "staging");
    assert_eq!(res["team"], "sre");
    if let Ok(mid) = std::fs::read_to_string("/etc/machine-id") {
        assert_eq!(res["host.id"], mid.trim());
    }

    let ms = all_metrics(&reqs);
    let cpu = find(&ms, "system.cpu.time");
    assert_eq!(cpu["unit"], "s");
    assert_eq!(cpu["sum"]["is_monotonic"], true);
    assert_eq!(
        cpu["sum"]["aggregation_temporality"],
        "AGGREGATION_TEMPORALITY_CUMULATIVE"
    );
    let p = &cpu["sum"]["data_points"][0];
    let start: u64 = p["start_time_unix_nano"].as_str().unwrap().parse().unwrap();
    let time: u64 = p["time_unix_nano"].as_str().unwrap().parse().unwrap();
    assert!(
        start > 0 && start < time,
        "counter start time is boot time, before the sample"
    );
    let attrs: Vec<&str> = p["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["key"].as_str().unwrap())
        .collect();
    assert!(
        attrs.contains(&"cpu") && attrs.contains(&"state"),
        "{attrs:?}"
    );

    let mem = find(&ms, "system.memory.usage");
    assert_eq!(mem["unit"], "By");
    assert!(mem["sum"]["is_monotonic"].is_null() || mem["sum"]["is_monotonic"] == false);
    let load = find(&ms, "system.cpu.load_average.1m");
    assert!(load["gauge"].is_object(), "load average is a Gauge");
    assert!(find(&ms, "system.network.io")["sum"]["is_monotonic"] == true);
    assert!(find(&ms, "system.uptime")["gauge"].is_object());
    // Utilization needs two samples: it shows up from the second collection on.
    let reqs = rx.wait_until(Duration::from_secs(8), "cpu utilization", |r| {
        points_of(r, "system.cpu.utilization") > 0
    });
    let util = find(&all_metrics(&reqs), "system.cpu.utilization").clone();
    for p in util["gauge"]["data_points"].as_array().unwrap() {
        let v = p["as_double"].as_f64().unwrap_or(0.0);
        assert!((0.0..=1.0).contains(&v), "utilization {v} out of [0,1]");
    }
    assert_eq!(agent.terminate(Duration::from_secs(10)), 0);
    assert!(
        !agent.raw_log().contains("tfs_super_secret_value"),
        "secret leaked into the log"
    );
}

#[test]
fn http_paths_compression_and_headers() {
    let rx = Receiver::start(None);
    let extra =
        "    endpoint_version: v1\n    compression: none\n    headers:\n      X-Custom: hello\n";
    let mut agent = Agent::start(&config("http", rx.http_port, extra));
    let reqs = rx.wait_until(Duration::from_secs(8), "v1 export", |r| !r.is_empty());
    assert_eq!(agent.terminate(Duration::from_secs(10)), 0);
    assert_eq!(reqs[0]["transport"], "http");
    assert_eq!(reqs[0]["path"], "/v1/metrics");
    assert!(
        reqs[0]["content_encoding"].is_null(),
        "compression: none sends plain protobuf"
    );
    assert_eq!(reqs[0]["headers"]["content-type"], "application/x-protobuf");
    assert_eq!(reqs[0]["headers"]["x-custom"], "hello");
    assert_eq!(reqs[0]["headers"]["x-telemetryflow-key-id"], "tfk_test_key");

    let rx2 = Receiver::start(None);
    let mut agent = Agent::start(&config("http", rx2.http_port, ""));
    let reqs = rx2.wait_until(Duration::from_secs(8), "v2 export", |r| !r.is_empty());
    assert_eq!(agent.terminate(Duration::from_secs(10)), 0);
    assert_eq!(
        reqs[0]["path"], "/v2/metrics",
        "v2 is the default endpoint version"
    );
    assert_eq!(reqs[0]["content_encoding"], "gzip", "gzip is the default");
    assert!(reqs[0]["decoded_bytes"].as_u64().unwrap() > reqs[0]["body_bytes"].as_u64().unwrap());
    assert!(reqs[0]["request"]["resource_metrics"].is_array());
}

#[test]
fn sigterm_flushes_everything_queued() {
    let rx = Receiver::start(None);
    // No timer flush after the first one and batches far larger than a cycle: only the
    // shutdown flush can deliver the later cycles.
    let cfg = config("grpc", rx.grpc_port, "    batch_size: 1000000\n")
        .replace("flush_interval: 1s", "flush_interval: 1h");
    let mut agent = Agent::start(&cfg);
    rx.wait_until(Duration::from_secs(8), "first flush", |r| !r.is_empty());
    std::thread::sleep(Duration::from_millis(2500));
    let before = points_of(&rx.requests(), "system.uptime");
    assert_eq!(agent.terminate(Duration::from_secs(10)), 0);
    let reqs = rx.requests();
    let after = points_of(&reqs, "system.uptime");
    let ran = agent.logs_with("collected").len();
    assert!(
        after > before,
        "shutdown flush delivered nothing ({before} → {after})"
    );
    assert_eq!(
        after, ran,
        "every collection cycle arrives: {ran} cycles, {after} uptime points"
    );
    let stopped = agent.logs_with("tfo-agent stopped");
    assert_eq!(stopped[0]["dropped"], 0);
}

#[test]
fn http_503_with_retry_after_retries_the_same_batch() {
    let script = json!([{"http_status": 503, "retry_after": "2"}, {"http_status": 502}]);
    let rx = Receiver::start(Some(script));
    let mut agent = Agent::start(&config("http", rx.http_port, ""));
    let reqs = rx.wait_until(Duration::from_secs(15), "three tries", |r| r.len() >= 3);
    assert_eq!(agent.terminate(Duration::from_secs(10)), 0);
    assert_eq!(
        reqs[0]["request"], reqs[1]["request"],
        "the batch that got 503 is sent again"
    );
    assert_eq!(
        reqs[1]["request"], reqs[2]["request"],
        "the batch that got 502 is sent again"
    );
    let gap = reqs[1]["time"].as_f64().unwrap() - reqs[0]["time"].as_f64().unwrap();
    assert!(
        gap >= 1.9,
        "Retry-After: 2 was not honoured (retried after {gap:.2}s)"
    );
    // Outages never use the retry budget nor drop data.
    assert!(
        agent.logs_with("dropped telemetry").is_empty(),
        "{}",
        agent.raw_log()
    );
}

#[test]
fn grpc_unavailable_honours_retry_info() {
    let script = json!([{"grpc_code": "UNAVAILABLE", "retry_delay_ms": 1500}]);
    let rx = Receiver::start(Some(script));
    let mut agent = Agent::start(&config("grpc", rx.grpc_port, ""));
    let reqs = rx.wait_until(Duration::from_secs(15), "retry", |r| r.len() >= 2);
    assert_eq!(agent.terminate(Duration::from_secs(10)), 0);
    assert_eq!(reqs[0]["request"], reqs[1]["request"]);
    let gap = reqs[1]["time"].as_f64().unwrap() - reqs[0]["time"].as_f64().unwrap();
    assert!(
        gap >= 1.4,
        "RetryInfo 1.5s not honoured (retried after {gap:.2}s)"
    );
}

#[test]
fn outage_longer_than_retry_budget_loses_nothing() {
    // Six UNAVAILABLE answers in a row: twice max_attempts; the batch must still arrive.
    let script = json!(vec![json!({"grpc_code": "UNAVAILABLE"}); 6]);
    let rx = Receiver::start(Some(script));
    let mut agent = Agent::start(&config("grpc", rx.grpc_port, ""));
    let reqs = rx.wait_until(Duration::from_secs(20), "delivery after outage", |r| {
        r.len() >= 7
    });
    assert_eq!(agent.terminate(Duration::from_secs(10)), 0);
    assert_eq!(
        reqs[0]["request"], reqs[6]["request"],
        "the first batch is delivered after the outage"
    );
    assert!(agent.logs_with("dropped telemetry").is_empty());
}

fn dropped(agent: &Agent, reason: &str) -> u64 {
    agent
        .logs_with("dropped telemetry")
        .iter()
        .filter(|l| l["reason"] == reason)
        .map(|l| l["items"].as_u64().unwrap())
        .sum()
}

#[test]
fn permanent_errors_are_dropped_counted_and_never_retried() {
    for (script, transport) in [
        (json!([{"http_status": 400}]), "http"),
        (json!([{"grpc_code": "INVALID_ARGUMENT"}]), "grpc"),
        (json!([{"grpc_code": "RESOURCE_EXHAUSTED"}]), "grpc"),
    ] {
        let rx = Receiver::start(Some(script.clone()));
        let port = if transport == "http" {
            rx.http_port
        } else {
            rx.grpc_port
        };
        let mut agent = Agent::start(&config(transport, port, ""));
        let reqs = rx.wait_until(Duration::from_secs(10), "second batch", |r| r.len() >= 2);
        assert_eq!(agent.terminate(Duration::from_secs(10)), 0);
        assert_ne!(
            reqs[0]["request"], reqs[1]["request"],
            "{script}: a permanent error was retried"
        );
        assert!(
            dropped(&agent, "rejected") > 0,
            "{script}: drop not counted: {}",
            agent.raw_log()
        );
        assert_eq!(dropped(&agent, "max_retries"), 0);
    }
}

/// A config with one collection cycle every 500 ms and uncompressed requests, so a batch
/// holds several cycles and the request size is the size of the records.
fn split_config(transport: &str, port: u16, flush: &str) -> String {
    config(transport, port, "    compression: none\n")
        .replace(
            "    enabled: true\n    interval: 1s",
            "    enabled: true\n    interval: 500ms",
        )
        .replace("flush_interval: 1s", &format!("flush_interval: {flush}"))
}

#[test]
fn too_large_requests_are_split_and_a_single_record_too_large_is_dropped() {
    // The size of one cycle's request, from a collector without a limit.
    let rx = Receiver::start(None);
    let mut agent = Agent::start(&split_config("http", rx.http_port, "1s"));
    let reqs = rx.wait_until(Duration::from_secs(10), "requests", |r| r.len() >= 3);
    assert_eq!(agent.terminate(Duration::from_secs(10)), 0);
    let one = reqs
        .iter()
        .map(|r| r["body_bytes"].as_u64().unwrap())
        .min()
        .unwrap() as usize;
    drop(rx);

    // A limit of two and a half cycles: batches of about eight cycles are split (8, 4, 2).
    let limit = one * 5 / 2;
    let rx = Receiver::start_with_max_body(limit);
    let mut agent = Agent::start(&split_config("http", rx.http_port, "4s"));
    let ok = |r: &Value| r["response"].get("http_status").is_none();
    let reqs = rx.wait_until(Duration::from_secs(20), "split requests", |r| {
        r.iter().any(|q| !ok(q)) && r.iter().filter(|q| ok(q)).count() >= 6
    });
    assert_eq!(agent.terminate(Duration::from_secs(10)), 0);
    let delivered: Vec<Value> = reqs.iter().filter(|q| ok(q)).cloned().collect();
    for q in &delivered {
        assert!(q["body_bytes"].as_u64().unwrap() as usize <= limit);
    }
    assert!(
        delivered
            .iter()
            .any(|q| q["body_bytes"].as_u64().unwrap() as usize > one * 3 / 2),
        "requests are not all single cycles: the size goes back up"
    );
    // Each cycle arrives once (nothing is sent twice while splitting).
    let cycles = cycles_of(&delivered, "system.cpu.time");
    let points = points_of(&delivered, "system.cpu.time");
    let per_cycle = points_of(&delivered[..1], "system.cpu.time")
        / cycles_of(&delivered[..1], "system.cpu.time").len();
    assert_eq!(points, cycles.len() * per_cycle, "a cycle was sent twice");
    assert!(cycles.len() >= 6, "{} cycles", cycles.len());
    assert_eq!(dropped(&agent, "too_large"), 0);
    assert_eq!(dropped(&agent, "rejected"), 0);
    assert_eq!(
        agent
            .logs_with(
                "the collector refuses the request as too large; sending its records in smaller requests"
            )
            .len(),
        1,
        "one WARN for the first split, DEBUG after"
    );

    // A limit below one cycle: every record is dropped as too_large, and counted.
    let rx = Receiver::start_with_max_body(one / 2);
    let mut agent = Agent::start(&split_config("http", rx.http_port, "1s"));
    rx.wait_until(Duration::from_secs(10), "refused requests", |r| {
        r.len() >= 3
    });
    assert_eq!(agent.terminate(Duration::from_secs(10)), 0);
    assert!(dropped(&agent, "too_large") > 0, "{}", agent.raw_log());
    assert_eq!(dropped(&agent, "rejected"), 0);

    // gRPC: grpcio's own receive limit (RESOURCE_EXHAUSTED "Received message larger than
    // max", no RetryInfo) is a size limit too, not a permanent rejection.
    let rx = Receiver::start_with_max_body(one / 2);
    let mut agent = Agent::start(&split_config("grpc", rx.grpc_port, "1s"));
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while dropped(&agent, "too_large") == 0 && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(agent.terminate(Duration::from_secs(10)), 0);
    assert!(dropped(&agent, "too_large") > 0, "{}", agent.raw_log());
    assert_eq!(dropped(&agent, "rejected"), 0);
}

#[test]
fn partial_success_is_counted_and_not_retried() {
    let script =
        json!([{"partial_success": {"rejected_data_points": 3, "error_message": "bad points"}}]);
    let rx = Receiver::start(Some(script));
    let mut agent = Agent::start(&config("grpc", rx.grpc_port, ""));
    let reqs = rx.wait_until(Duration::from_secs(10), "second batch", |r| r.len() >= 2);
    assert_eq!(agent.terminate(Duration::from_secs(10)), 0);
    assert_ne!(reqs[0]["request"], reqs[1]["request"]);
    assert_eq!(dropped(&agent, "rejected"), 3);
    assert!(agent.raw_log().contains("bad points"));
}

#[test]
fn transient_errors_use_the_retry_budget() {
    let script =
        json!([{"grpc_code": "ABORTED"}, {"grpc_code": "ABORTED"}, {"grpc_code": "ABORTED"}]);
    let rx = Receiver::start(Some(script));
    let mut agent = Agent::start(&config("grpc", rx.grpc_port, ""));
    let reqs = rx.wait_until(Duration::from_secs(10), "next batch", |r| r.len() >= 4);
    assert_eq!(agent.terminate(Duration::from_secs(10)), 0);
    assert_eq!(reqs[0]["request"], reqs[1]["request"]);
    assert_eq!(reqs[1]["request"], reqs[2]["request"]);
    assert_ne!(
        reqs[2]["request"], reqs[3]["request"],
        "max_attempts: 3 means three tries"
    );
    assert!(dropped(&agent, "max_retries") > 0);
}

#[test]
fn collector_down_at_start_then_up_delivers_the_backlog() {
    // Reserve a port, release it, start the agent against it, start the receiver later.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut agent = Agent::start(&config("http", port, ""));
    std::thread::sleep(Duration::from_secs(3));
    let rx = Receiver::start_on(-1, port as i32, None);
    let reqs = rx.wait_until(Duration::from_secs(15), "backlog", |r| {
        points_of(r, "system.uptime") >= 4
    });
    assert_eq!(agent.terminate(Duration::from_secs(10)), 0);
    // Uptime points arrive in collection order: nothing was reordered.
    let mut ups = Vec::new();
    for m in all_metrics(&reqs)
        .iter()
        .filter(|m| m["name"] == "system.uptime")
    {
        for p in m["gauge"]["data_points"].as_array().unwrap() {
            ups.push(
                p["time_unix_nano"]
                    .as_str()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap(),
            );
        }
    }
    assert!(ups.windows(2).all(|w| w[0] < w[1]), "out of order: {ups:?}");
    assert_eq!(ups.len(), points_of(&rx.requests(), "system.uptime"));
    assert!(agent.logs_with("dropped telemetry").is_empty());
}

#[test]
fn sighup_reloads_and_an_invalid_file_keeps_the_running_config() {
    let rx = Receiver::start(None);
    let cfg = config("grpc", rx.grpc_port, "");
    let mut agent = Agent::start(&cfg);
    rx.wait_until(Duration::from_secs(8), "first export", |r| !r.is_empty());
    let metrics = agent.bound_address("serving self-metrics");
    let page = || http_get(metrics, "/metrics").1;
    let last_ok = "tfo_agent_config_last_reload_successful";
    let failures = "tfo_agent_config_reloads_total{source=\"file\",result=\"failure\"}";
    let successes = "tfo_agent_config_reloads_total{source=\"file\",result=\"success\"}";
    assert_eq!(sample(&page(), last_ok), Some(1.0), "good at start");
    let path = agent.dir.path().join("tfo-agent.yaml");
    std::fs::write(&path, cfg.replace("team: sre", "team: platform")).unwrap();
    agent.signal(libc::SIGHUP);
    rx.wait_until(Duration::from_secs(10), "export with the new tag", |r| {
        r.iter().any(|q| {
            resource_attrs(q)
                .get("team")
                .is_some_and(|t| t == "platform")
        })
    });
    std::fs::write(&path, "telemetryflow:\n  protocol: carrier-pigeon\n").unwrap();
    agent.signal(libc::SIGHUP);
    let n = rx.requests().len();
    let reqs = rx.wait_until(
        Duration::from_secs(10),
        "exports after a rejected reload",
        |r| r.len() >= n + 2,
    );
    assert_eq!(resource_attrs(reqs.last().unwrap())["team"], "platform");
    // The refusal is on /metrics too, not only in the log.
    let p = page();
    assert_eq!(sample(&p, last_ok), Some(0.0), "{p}");
    assert_eq!(sample(&p, failures), Some(1.0), "{p}");
    assert_eq!(sample(&p, successes), Some(1.0), "{p}");
    assert_eq!(agent.terminate(Duration::from_secs(10)), 0);
    assert_eq!(
        agent
            .logs_with("config reload rejected; the running configuration stays")
            .len(),
        1
    );
}

#[test]
fn a_slow_collector_hits_the_request_timeout_and_the_batch_is_retried() {
    for transport in ["grpc", "http"] {
        let rx = Receiver::start(Some(json!([{"delay_ms": 3000}])));
        let port = if transport == "http" {
            rx.http_port
        } else {
            rx.grpc_port
        };
        let cfg = config(transport, port, "").replace("timeout: 5s", "timeout: 1s");
        let mut agent = Agent::start(&cfg);
        let reqs = rx.wait_until(Duration::from_secs(10), "retry after timeout", |r| {
            r.len() >= 2
        });
        assert_eq!(agent.terminate(Duration::from_secs(10)), 0);
        assert_eq!(
            reqs[0]["request"], reqs[1]["request"],
            "{transport}: the timed-out batch is sent again"
        );
        let gap = reqs[1]["time"].as_f64().unwrap() - reqs[0]["time"].as_f64().unwrap();
        assert!(
            (0.9..2.9).contains(&gap),
            "{transport}: retried {gap:.2}s later; timeout is 1s"
        );
        let failed = agent.logs_with(
            "collector unreachable; data is kept in the buffer and sent when it returns",
        );
        assert!(
            failed.iter().any(|l| l["outcome"] == "outage"),
            "{}",
            agent.raw_log()
        );
    }
}

#[test]
fn max_batch_size_caps_whole_metrics_per_request() {
    let rx = Receiver::start(None);
    let mut agent = Agent::start(&config("grpc", rx.grpc_port, "    max_batch_size: 5\n"));
    let reqs = rx.wait_until(Duration::from_secs(15), "several requests", |r| {
        r.len() >= 8
    });
    assert_eq!(agent.terminate(Duration::from_secs(10)), 0);
    for q in &reqs {
        let ms = metrics(q);
        assert!(
            !ms.is_empty() && ms.len() <= 5,
            "{} metrics in one request",
            ms.len()
        );
    }
    // A metric is never split: per cycle (timestamp), each metric name arrives once with
    // all its points (system.cpu.time has one point per CPU and state).
    let mut seen = std::collections::BTreeMap::new();
    for m in all_metrics(&reqs) {
        let d = if m["sum"].is_object() {
            &m["sum"]
        } else {
            &m["gauge"]
        };
        let pts = d["data_points"].as_array().cloned().unwrap_or_default();
        let t = pts[0]["time_unix_nano"].to_string();
        *seen
            .entry((m["name"].as_str().unwrap().to_string(), t))
            .or_insert(0) += 1;
    }
    assert!(seen.values().all(|n| *n == 1), "{seen:?}");
    assert!(seen.keys().any(|(n, _)| n == "system.cpu.time"));
}

#[test]
fn batch_size_starts_a_request_that_takes_everything_waiting() {
    let rx = Receiver::start(None);
    // A system cycle has dozens of metrics: 5 waiting start a request before the (long)
    // flush interval, and that request carries the whole cycle, not 5 of them.
    let cfg = config("grpc", rx.grpc_port, "    batch_size: 5\n")
        .replace("flush_interval: 1s", "flush_interval: 1h");
    let mut agent = Agent::start(&cfg);
    let reqs = rx.wait_until(Duration::from_secs(15), "three requests", |r| r.len() >= 3);
    assert_eq!(agent.terminate(Duration::from_secs(10)), 0);
    for q in &reqs[1..] {
        let ms = metrics(q);
        assert!(ms.len() > 5, "{} metrics in one request", ms.len());
    }
}
