//! Black-box tests of the platform integration: the built binary against a loopback
//! platform stand-in (and the Python OTLP receiver for the effect of remote config).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::platform::{PlatformStandIn, Req};
use common::*;
use serde_json::{Value, json};

fn platform_config(otlp_port: u16, platform: &str, data_dir: &std::path::Path) -> String {
    config("grpc", otlp_port, "")
        .replace(
            "  endpoint: \"127.0.0.1:",
            &format!("  api_endpoint: \"{platform}\"\n  endpoint: \"127.0.0.1:"),
        )
        .replace(
            "heartbeat:\n  enabled: false",
            "heartbeat:\n  enabled: true\n  interval: 1s\n  cloud_metadata: false",
        )
        .replace(
            "agent:\n  name: \"blackbox-agent\"\n  data_dir: ./data",
            &format!(
                "agent:\n  name: \"blackbox-agent\"\n  data_dir: \"{}\"",
                data_dir.display()
            ),
        )
}

fn heartbeats(reqs: &[Req]) -> Vec<&Req> {
    reqs.iter()
        .filter(|r| r.path.ends_with("/heartbeat"))
        .collect()
}

fn schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(
        workspace_root().join("crates/tfo-platform/schema/heartbeat.schema.json"),
    )
    .unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

fn default_handler(r: &Req) -> (u16, String) {
    if r.path == "/api/v2/agents/register" {
        (200, json!({"agent_id": "agt_from_platform"}).to_string())
    } else if r.path.ends_with("/config") {
        (
            200,
            json!({"config_version": null, "config": null}).to_string(),
        )
    } else {
        (200, "{}".into())
    }
}

#[test]
fn registers_once_then_heartbeats_with_schema_valid_system_info() {
    let rx = Receiver::start(None);
    let pf = PlatformStandIn::start(default_handler);
    let data = tempfile::tempdir().unwrap();
    let mut agent = Agent::start(&platform_config(rx.grpc_port, &pf.url(), data.path()));
    let reqs = pf.wait_until("three heartbeats", |r| heartbeats(r).len() >= 3);
    let registers: Vec<&Req> = reqs
        .iter()
        .filter(|r| r.path.ends_with("/register"))
        .collect();
    assert_eq!(registers.len(), 1, "registration happens once");
    let reg = registers[0];
    assert_eq!(reg.method, "POST");
    for r in reqs.iter() {
        assert_eq!(r.headers["x-api-key-id"], "tfk_test_key");
        assert_eq!(r.headers["x-api-key-secret"], "tfs_super_secret_value");
        assert_eq!(r.headers["x-telemetryflow-key-id"], "tfk_test_key");
        assert_eq!(
            r.headers["x-telemetryflow-key-secret"],
            "tfs_super_secret_value"
        );
        assert!(
            r.headers["user-agent"].starts_with("tfo-agent/"),
            "{:?}",
            r.headers
        );
    }
    let v = schema();
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let mem_kb: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|x| x.parse().ok())
        .unwrap();
    let cores = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count() as u64;
    for hb in heartbeats(&reqs) {
        assert_eq!(hb.path, "/api/v2/agents/agt_from_platform/heartbeat");
        assert_eq!(hb.headers["x-telemetryflow-agent-id"], "agt_from_platform");
        let errors: Vec<String> = v.iter_errors(&hb.body).map(|e| e.to_string()).collect();
        assert!(
            errors.is_empty(),
            "heartbeat body fails the schema: {errors:?}"
        );
        let si = &hb.body["systemInfo"];
        assert_eq!(si["hostname"], hostname.trim());
        assert_eq!(si["cpuCores"].as_u64(), Some(cores));
        assert_eq!(si["memoryTotal"].as_u64(), Some(mem_kb * 1024), "{si}");
        assert!(si["agentHealth"].is_object(), "{si}");
    }
    // Heartbeats keep the interval (1 s, a few percent of jitter).
    let hbs = heartbeats(&reqs);
    let gap = hbs[2].at.duration_since(hbs[1].at);
    assert!(
        gap >= Duration::from_millis(800),
        "heartbeats {gap:?} apart"
    );
    assert_eq!(agent.terminate(Duration::from_secs(10)), 0);

    // The assigned id is persisted and reused: the next run registers with it and its
    // OTLP identity is the platform's id.
    assert_eq!(
        std::fs::read_to_string(data.path().join("agent-id"))
            .unwrap()
            .trim(),
        "agt_from_platform"
    );
    let mut again = Agent::start(&platform_config(rx.grpc_port, &pf.url(), data.path()));
    let reqs = pf.wait_until("second registration", |r| {
        r.iter().filter(|r| r.path.ends_with("/register")).count() >= 2
    });
    let second = reqs
        .iter()
        .filter(|r| r.path.ends_with("/register"))
        .nth(1)
        .unwrap();
    assert_eq!(
        second.headers["x-telemetryflow-agent-id"],
        "agt_from_platform"
    );
    let exports = rx.wait_until(Duration::from_secs(10), "export", |r| {
        r.iter()
            .any(|q| q["headers"]["x-telemetryflow-agent-id"] == "agt_from_platform")
    });
    assert!(!exports.is_empty());
    assert_eq!(again.terminate(Duration::from_secs(10)), 0);

    // `tfo-agent status` shows the local state and the platform's view.
    let cfg_path = data.path().join("c.yaml");
    std::fs::write(
        &cfg_path,
        platform_config(rx.grpc_port, &pf.url(), data.path()),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tfo-agent"))
        .args(["-c"])
        .arg(&cfg_path)
        .args(["status", "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let st: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["agent_id"], "agt_from_platform");
    assert!(st["last_heartbeat_unix"].as_u64().unwrap() > 0, "{st}");
    assert!(st["platform"]["status"].is_object(), "{st}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("tfs_super_secret_value"));
}

#[test]
fn a_refused_registration_keeps_collecting_and_exporting() {
    let rx = Receiver::start(None);
    let pf = PlatformStandIn::start(|_| (401, json!({"message": "bad key"}).to_string()));
    let data = tempfile::tempdir().unwrap();
    let mut agent = Agent::start(&platform_config(rx.grpc_port, &pf.url(), data.path()));
    rx.wait_until(Duration::from_secs(10), "exports", |r| r.len() >= 2);
    std::thread::sleep(Duration::from_secs(2));
    let reqs = pf.requests();
    assert_eq!(reqs.len(), 1, "401 is not retried: {reqs:#?}");
    assert_eq!(agent.terminate(Duration::from_secs(10)), 0);
    let log = agent.raw_log();
    assert!(log.contains("platform registration refused"), "{log}");
    assert!(!log.contains("tfs_super_secret_value"), "secret in the log");
}

#[test]
fn remote_config_applies_tags_and_intervals_and_refuses_sensitive_or_invalid_changes() {
    let rx = Receiver::start(None);
    // Version 1: a tag and a faster system interval. Version 2: an endpoint change
    // (sensitive, refused). Version 3: an invalid interval (refused).
    let version = Arc::new(Mutex::new(1));
    let v2 = version.clone();
    let pf = PlatformStandIn::start(move |r| {
        let v = *v2.lock().unwrap();
        if r.path.ends_with("/register") {
            (200, json!({"agent_id": "agt_remote"}).to_string())
        } else if r.path.ends_with("/heartbeat") {
            (200, json!({"config_version": v.to_string()}).to_string())
        } else if r.path.ends_with("/config") {
            let config = match v {
                1 => json!({"agent": {"tags": {"team": "remote-team"}},
                            "collectors": {"system": {"interval": "1s"}}}),
                2 => json!({"telemetryflow": {"endpoint": "127.0.0.1:1"}}),
                _ => json!({"collectors": {"system": {"interval": "soon"}}}),
            };
            (
                200,
                json!({"config_version": v.to_string(), "config": config}).to_string(),
            )
        } else {
            (200, "{}".into())
        }
    });
    let data = tempfile::tempdir().unwrap();
    // Collect every 3 s until the remote config (at the 1 s floor for remote intervals)
    // makes it faster.
    let cfg = platform_config(rx.grpc_port, &pf.url(), data.path()).replace(
        "  system:\n    enabled: true\n    interval: 1s",
        "  system:\n    enabled: true\n    interval: 3s",
    );
    assert!(cfg.contains("interval: 3s"));
    let mut agent = Agent::start(&cfg);
    // The tag shows up in the resource of later exports.
    let reqs = rx.wait_until(Duration::from_secs(20), "remote tag", |r| {
        r.iter()
            .any(|q| resource_attrs(q).get("team").map(String::as_str) == Some("remote-team"))
    });
    let first = reqs
        .iter()
        .position(|q| resource_attrs(q).get("team").map(String::as_str) == Some("remote-team"))
        .unwrap();
    // The interval took effect: collection cycles (one system.uptime point each) are now
    // about 1 s apart instead of 3 s.
    let later = rx.wait_until(Duration::from_secs(20), "faster cycles", |r| {
        let mut ts: Vec<u64> = Vec::new();
        for m in all_metrics(&r[first..])
            .iter()
            .filter(|m| m["name"] == "system.uptime")
        {
            for p in m["gauge"]["data_points"].as_array().into_iter().flatten() {
                if let Some(t) = p["time_unix_nano"].as_str().and_then(|s| s.parse().ok()) {
                    ts.push(t);
                }
            }
        }
        ts.sort_unstable();
        ts.windows(2)
            .filter(|w| w[1] - w[0] < 1_600_000_000)
            .count()
            >= 3
    });
    assert!(later.len() > first);

    *version.lock().unwrap() = 2;
    pf.wait_until("sensitive change reported", |r| {
        heartbeats(r).iter().any(|h| {
            h.body["systemInfo"]["agentHealth"]["remoteConfigError"]
                .as_str()
                .is_some_and(|e| e.contains("telemetryflow.endpoint"))
        })
    });
    *version.lock().unwrap() = 3;
    pf.wait_until("invalid change reported", |r| {
        heartbeats(r).iter().any(|h| {
            h.body["systemInfo"]["agentHealth"]["remoteConfigError"]
                .as_str()
                .is_some_and(|e| e.contains("collectors.system.interval"))
        })
    });
    // Still exporting to the original endpoint, with the remote tag.
    let n = rx.requests().len();
    let after = rx.wait_until(Duration::from_secs(10), "exports continue", |r| {
        r.len() > n + 1
    });
    assert_eq!(
        resource_attrs(after.last().unwrap())
            .get("team")
            .map(String::as_str),
        Some("remote-team")
    );
    assert_eq!(agent.terminate(Duration::from_secs(10)), 0);
    let log = agent.raw_log();
    assert!(log.contains("remote configuration refused"), "{log}");
}

#[test]
fn a_forgotten_agent_registers_again() {
    let rx = Receiver::start(None);
    let registrations = Arc::new(Mutex::new(0));
    let r2 = registrations.clone();
    let pf = PlatformStandIn::start(move |r| {
        if r.path.ends_with("/register") {
            let mut n = r2.lock().unwrap();
            *n += 1;
            let id = if *n == 1 { "agt_old" } else { "agt_new" };
            (200, json!({"agent_id": id}).to_string())
        } else if r.path == "/api/v2/agents/agt_old/heartbeat" {
            (404, json!({"message": "unknown agent"}).to_string())
        } else {
            default_handler(r)
        }
    });
    let data = tempfile::tempdir().unwrap();
    let mut agent = Agent::start(&platform_config(rx.grpc_port, &pf.url(), data.path()));
    pf.wait_until("heartbeat with the new id", |r| {
        r.iter()
            .any(|q| q.path == "/api/v2/agents/agt_new/heartbeat")
    });
    assert_eq!(agent.terminate(Duration::from_secs(10)), 0);
    assert_eq!(
        std::fs::read_to_string(data.path().join("agent-id"))
            .unwrap()
            .trim(),
        "agt_new"
    );
}
