//! Black-box CLI tests: exit codes, config errors that name key and line, redaction.

mod common;

use std::process::{Command, Output};

use common::workspace_root;

fn agent(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tfo-agent"))
        .args(args)
        .env_remove("TELEMETRYFLOW_API_KEY_SECRET")
        .env_remove("TELEMETRYFLOW_ENDPOINT")
        .envs(env.iter().copied())
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap()
}

fn with_config(yaml: &str, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.yaml");
    std::fs::write(&p, yaml).unwrap();
    let mut a = vec!["-c", p.to_str().unwrap()];
    a.extend_from_slice(args);
    agent(&a, &[])
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn shipped_configs_validate() {
    let env = [
        ("HOSTNAME", "node-1"),
        ("TELEMETRYFLOW_API_KEY_ID", "tfk_ci"),
        ("TELEMETRYFLOW_API_KEY_SECRET", "tfs_ci"),
        ("CLUSTER_NAME", "main"),
    ];
    let dir = workspace_root().join("configs");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        // The ConfigMap manifest wraps an agent config; it is not one itself.
        if p.file_name().unwrap() == "kubernetes-configmap.yaml" {
            continue;
        }
        let o = agent(&["-c", p.to_str().unwrap(), "config", "validate"], &env);
        assert!(o.status.success(), "{}: {}", p.display(), stderr(&o));
        assert!(String::from_utf8_lossy(&o.stdout).contains("configuration OK"));
        n += 1;
    }
    assert!(
        n >= 6,
        "expected the seed examples under configs/, found {n}"
    );
}

#[test]
fn unknown_key_names_path_line_and_allowed_keys() {
    let o = with_config(
        "collectors:\n  system:\n    enabled: true\n    intervall: 15s\n",
        &["config", "validate"],
    );
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("collectors.system.intervall"), "{e}");
    assert!(e.contains(":4:"), "line number missing: {e}");
    assert!(e.contains("interval"), "allowed keys missing: {e}");
}

#[test]
fn bad_values_exit_2_with_key_and_line() {
    for (yaml, key, line) in [
        (
            "exporter:\n  otlp:\n    flush_interval: 10 seconds\n",
            "exporter.otlp.flush_interval",
            ":3:",
        ),
        (
            "telemetryflow:\n  protocol: udp\n",
            "telemetryflow.protocol",
            ":2:",
        ),
        (
            "exporter:\n  otlp:\n    batch_size: lots\n",
            "exporter.otlp.batch_size",
            ":3:",
        ),
        (
            "agent:\n  name: \"${TFO_SURELY_UNSET_VAR}\"\n",
            "TFO_SURELY_UNSET_VAR",
            ":2:",
        ),
    ] {
        let o = with_config(yaml, &["config", "validate"]);
        assert_eq!(o.status.code(), Some(2), "{yaml}");
        let e = stderr(&o);
        assert!(e.contains(key) && e.contains(line), "{yaml} → {e}");
    }
    let o = with_config("telemetryflow:\n  protocol: udp\n", &["run"]);
    assert_eq!(o.status.code(), Some(2), "run refuses a bad config too");
}

#[test]
fn config_show_redacts_secrets() {
    let yaml = "telemetryflow:\n  api_key_id: tfk_visible\n  api_key_secret: tfs_do_not_print\nexporter:\n  otlp:\n    headers:\n      Authorization: Bearer do_not_print_either\n";
    for fmt in ["yaml", "json"] {
        let o = with_config(yaml, &["config", "show", "--format", fmt]);
        assert!(o.status.success(), "{}", stderr(&o));
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            !out.contains("tfs_do_not_print") && !out.contains("do_not_print_either"),
            "{out}"
        );
        assert!(out.contains("REDACTED"));
        assert!(out.contains("flush_interval"));
    }
    let bad = "telemetryflow:\n  api_key_secret: tfs_do_not_print\n  protocol: nope\n";
    assert!(!stderr(&with_config(bad, &["config", "validate"])).contains("tfs_do_not_print"));
}

#[test]
fn defaults_without_a_config_file() {
    let o = agent(&["config", "validate"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("built-in defaults"));
    // Heartbeat is on by default but needs a platform address: said once, clearly.
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("telemetryflow.api_endpoint"), "{out}");
    assert!(!out.contains("not available in this build"), "{out}");
    // A collector that is configured on but not in this build says so; none pretends to run.
    let o = with_config(
        "collectors:\n  process:\n    enabled: true\n",
        &["config", "validate"],
    );
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains("collectors.process is enabled but not available in this build"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

#[test]
fn collect_once_prints_system_metrics() {
    let o = agent(&["collect", "--once", "--format", "json"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for n in [
        "system.cpu.time",
        "system.memory.usage",
        "system.network.io",
        "system.uptime",
    ] {
        assert!(names.contains(&n), "{n} missing");
    }
    let o = agent(&["collect", "--once"], &[]);
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("NAME"));
}

#[test]
fn version_and_usage_errors() {
    let o = agent(&["version", "--json"], &[]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(agent(&["no-such-command"], &[]).status.code(), Some(2));
    assert_eq!(
        agent(&["-c", "/nonexistent/tfo.yaml", "config", "validate"], &[])
            .status
            .code(),
        Some(2)
    );
}
