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

/// The agent with exactly `env` as its environment (nothing inherited, so an exported
/// HOSTNAME or credential of the test runner cannot make a config pass).
fn agent_with_only(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tfo-agent"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap()
}

/// `# Required environment variables: A, B` from a shipped config's header.
fn required_variables(text: &str) -> Vec<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("# Required environment variables:"))
        .map(|rest| rest.split(',').map(|v| v.trim().to_string()).collect())
        .unwrap_or_default()
}

/// Every file in configs/ validates with exactly the variables its header documents, and
/// without them fails once, naming them all.
#[test]
fn shipped_configs_validate() {
    let dir = workspace_root().join("configs");
    let mut n = 0;
    let mut with_variables = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let path = p.to_str().unwrap();
        let required = required_variables(&std::fs::read_to_string(&p).unwrap());
        let values: Vec<(&str, String)> = required
            .iter()
            .map(|v| (v.as_str(), format!("{}_ci", v.to_ascii_lowercase())))
            .collect();
        let env: Vec<(&str, &str)> = values.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let o = agent_with_only(&["-c", path, "config", "validate"], &env);
        assert!(
            o.status.success(),
            "{path} with {required:?}: {}",
            stderr(&o)
        );
        assert!(String::from_utf8_lossy(&o.stdout).contains("configuration OK"));
        if !required.is_empty() {
            with_variables += 1;
            let o = agent_with_only(&["-c", path, "config", "validate"], &[]);
            assert_eq!(o.status.code(), Some(2), "{path}");
            let e = stderr(&o);
            for v in &required {
                assert!(e.contains(&format!("`{v}`")), "{path}: {v} not named: {e}");
            }
            assert_eq!(e.lines().count(), 1, "one error: {e}");
        }
        n += 1;
    }
    assert!(
        n >= 6,
        "expected the seed examples under configs/, found {n}"
    );
    assert!(
        with_variables >= 2,
        "production.yaml and kubernetes.yaml document their variables"
    );
}

#[test]
fn duration_ranges_and_fractions() {
    for (yaml, key, line, want) in [
        (
            "agent:\n  name: a\nheartbeat:\n  interval: 99999999999999999h\n",
            "heartbeat.interval",
            ":4:",
            "too large",
        ),
        (
            "heartbeat:\n  interval: 48h\n",
            "heartbeat.interval",
            ":2:",
            "too long (maximum 24h); allowed: a duration from 1s to 24h",
        ),
        (
            "exporter:\n  otlp:\n    flush_interval: 0s\n",
            "exporter.otlp.flush_interval",
            ":3:",
            "too short (minimum 100ms)",
        ),
        (
            "heartbeat:\n  interval: 1.5.0s\n",
            "heartbeat.interval",
            ":2:",
            "more than one decimal point",
        ),
    ] {
        let o = with_config(yaml, &["config", "validate"]);
        assert_eq!(o.status.code(), Some(2), "{yaml}");
        let e = stderr(&o);
        assert!(
            e.contains(key) && e.contains(line) && e.contains(want),
            "{yaml} → {e}"
        );
    }
    let o = with_config(
        "heartbeat:\n  interval: 1.5m\nexporter:\n  otlp:\n    flush_interval: 0.25s\n",
        &["config", "show", "--format", "yaml"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("interval: 1m30s") && out.contains("flush_interval: 250ms"),
        "{out}"
    );
}

#[test]
fn bad_endpoints_exit_2_with_key_and_line() {
    for (yaml, key, line, want) in [
        (
            "telemetryflow:\n  protocol: grpc\n  endpoint: localhost:99999\n",
            "telemetryflow.endpoint",
            ":3:",
            "port 99999 is out of range (must be 1-65535)",
        ),
        (
            "telemetryflow:\n  api_endpoint: \"https://api.example:0\"\n",
            "telemetryflow.api_endpoint",
            ":2:",
            "port 0 is out of range",
        ),
        (
            "health:\n  listen_address: \"127.0.0.1:70000\"\n",
            "health.listen_address",
            ":2:",
            "port 70000 is out of range",
        ),
    ] {
        let o = with_config(yaml, &["config", "validate"]);
        assert_eq!(o.status.code(), Some(2), "{yaml}");
        let e = stderr(&o);
        assert!(
            e.contains(key) && e.contains(line) && e.contains(want),
            "{yaml} → {e}"
        );
    }
}

#[test]
fn all_missing_variables_in_one_run() {
    let yaml = "telemetryflow:\n  api_key_id: \"${TFO_T_UNSET_A}\"\nagent:\n  name: ${TFO_T_UNSET_B}\n  tags:\n    c: ${TFO_T_UNSET_C:-fine}\n";
    let o = with_config(yaml, &["config", "validate"]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("2 environment variables are not set")
            && e.contains("`TFO_T_UNSET_A` (line 2: telemetryflow.api_key_id)")
            && e.contains("`TFO_T_UNSET_B` (line 4: agent.name)")
            && !e.contains("TFO_T_UNSET_C"),
        "{e}"
    );
}

#[test]
fn unclosed_quote_is_reported_where_it_starts() {
    let yaml = "telemetryflow:\n  protocol: grpc\n  endpoint: \"localhost:4317\n  timeout: 5s\nagent:\n  name: a\n";
    let o = with_config(yaml, &["config", "validate"]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("c.yaml:3:13: telemetryflow.endpoint: invalid YAML: this double-quoted string is never closed"),
        "{e}"
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
