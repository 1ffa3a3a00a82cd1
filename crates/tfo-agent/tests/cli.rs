//! Black-box CLI tests: exit codes, config errors that name key and line, redaction, and
//! what an operator sees in the first hour (help, version, buffer and agent status).

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::{Agent, Receiver, http_get, resource_attrs, workspace_root};

fn agent(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tfo-agent"))
        .args(args)
        .env_remove("TELEMETRYFLOW_API_KEY_SECRET")
        .env_remove("TELEMETRYFLOW_ENDPOINT")
        .env_remove("TELEMETRYFLOW_API_ENDPOINT")
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

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
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
            "collectors:\n  process:\n    enabled: true\n    include_command_lines: ['[']\n",
            "collectors.process.include_command_lines",
            ":4:",
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
    // Every collector the config accepts is in this build: none is warned about.
    let o = with_config(
        "collectors:\n  process:\n    enabled: true\n",
        &["config", "validate"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!out.contains("not available in this build"), "{out}");
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
fn collect_needs_no_once_flag() {
    // Collecting once is the only mode, so the flag is optional (still accepted above).
    let o = agent(&["collect"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("NAME"), "{}", stdout(&o));
    assert!(stdout(&o).contains("system.cpu.time"));
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

#[test]
fn help_lists_commands_examples_and_exit_codes() {
    let o = agent(&["--help"], &[]);
    assert!(o.status.success());
    let out = stdout(&o);
    for cmd in ["run", "config", "collect", "buffer", "status", "version"] {
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{cmd} ")))
            .unwrap_or_else(|| panic!("`{cmd}` not listed:\n{out}"));
        assert!(
            line.split_whitespace().count() > 3,
            "`{cmd}` has no description: {line:?}"
        );
    }
    assert!(out.contains("Examples:"), "{out}");
    assert!(
        out.contains("Exit codes: 0 success, 1 runtime failure, 2"),
        "{out}"
    );
    // --log-level names its allowed values in help and in the usage error.
    assert!(
        out.contains("[possible values: trace, debug, info, warn, error]"),
        "{out}"
    );
    let o = agent(&["--log-level", "loud", "config", "validate"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("possible values"), "{}", stderr(&o));
    // A group without its subcommand is a usage error that shows what to type.
    for group in ["config", "buffer"] {
        let o = agent(&[group], &[]);
        assert_eq!(o.status.code(), Some(2), "{group}");
        assert!(stderr(&o).contains("Commands:"), "{group}: {}", stderr(&o));
    }
    // `status --format text` is the same as the default human format.
    let o = agent(&["status", "--format", "text"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn buffer_status_tells_a_missing_buffer_from_an_empty_one() {
    let file = tempfile::NamedTempFile::new().unwrap();
    for path in [
        "/nonexistent/x",
        "/proc/tfo-agent-no-such-buffer",
        "/proc",
        file.path().to_str().unwrap(),
    ] {
        for fmt in ["table", "json"] {
            let o = agent(&["buffer", "status", "--format", fmt, "--path", path], &[]);
            assert_eq!(o.status.code(), Some(1), "{path} {fmt}: {}", stdout(&o));
            let e = stderr(&o);
            assert!(e.contains(&format!("no buffer at {path}")), "{path}: {e}");
            assert!(!stdout(&o).contains("empty"), "{path}: {}", stdout(&o));
        }
    }
    // Without --path the message says where the path came from.
    let o = with_config(
        "buffer:\n  path: /nonexistent/tfo-buffer\n",
        &["buffer", "status"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("buffer.path"), "{}", stderr(&o));

    // An existing buffer with nothing in it: empty, and that is success.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let o = agent(&["buffer", "status", "--path", d], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("empty"), "{}", stdout(&o));
    std::fs::create_dir(dir.path().join("metrics")).unwrap();
    let o = agent(&["buffer", "status", "--path", d], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("empty"), "{}", stdout(&o));
    let o = agent(&["buffer", "status", "--format", "json", "--path", d], &[]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["signals"][0]["records"], 0, "{v}");

    // Pointing at agent.data_dir instead of its buffer/ is a likely mix-up: say so.
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(data.path().join("buffer/metrics")).unwrap();
    std::fs::write(data.path().join("state.json"), "{}").unwrap();
    let o = agent(
        &["buffer", "status", "--path", data.path().to_str().unwrap()],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("did you mean --path"), "{}", stderr(&o));
}

#[test]
fn status_prints_human_times_and_json_keeps_unix_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let heartbeat = now - 30;
    std::fs::write(
        dir.path().join("state.json"),
        serde_json::json!({
            "last_heartbeat_unix": heartbeat,
            "last_heartbeat_error": "HTTP 503 from the platform",
            "last_export_unix": 1_700_000_000u64,
            "config_version": "v7",
        })
        .to_string(),
    )
    .unwrap();
    let yaml = format!(
        "agent:\n  data_dir: {d}\nbuffer:\n  path: {d}/buffer\n",
        d = dir.path().display()
    );
    // Every signal's log is reported, not only the metrics one.
    for signal in ["metrics", "logs"] {
        std::fs::create_dir_all(dir.path().join("buffer").join(signal)).unwrap();
    }
    let o = with_config(&yaml, &["status"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let line = |k: &str| {
        out.lines()
            .find(|l| l.starts_with(k))
            .unwrap_or_else(|| panic!("no `{k}` line:\n{out}"))
            .to_string()
    };
    let export = line("last export");
    assert!(
        export.contains("2023-11-14T22:13:20Z (") && export.ends_with(" d ago)"),
        "{out}"
    );
    let hb = line("last heartbeat");
    assert!(hb.contains("Z (") && hb.contains(" s ago)"), "{out}");
    assert!(
        line("heartbeat error").contains("HTTP 503 from the platform"),
        "{out}"
    );
    assert!(line("config version").ends_with("v7"), "{out}");
    assert!(line("platform").contains("not configured"), "{out}");
    for signal in ["metrics", "logs"] {
        assert!(
            line(&format!("buffer {signal}")).contains("0 records"),
            "{out}"
        );
    }
    // No raw Unix seconds and no JSON quoting in the human format.
    assert!(
        !out.contains(&heartbeat.to_string()) && !out.contains("1700000000"),
        "{out}"
    );
    assert!(!out.contains('"'), "{out}");

    let o = with_config(&yaml, &["status", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["last_heartbeat_unix"], heartbeat);
    assert_eq!(v["last_export_unix"], 1_700_000_000u64);
    assert_eq!(v["config_version"], "v7");
    let signals: Vec<_> = v["buffers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["signal"].as_str().unwrap())
        .collect();
    assert_eq!(signals, ["metrics", "logs"], "{v}");
}

/// `host.arch` as the OpenTelemetry semantic conventions spell this machine's architecture.
fn expected_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm32",
        "powerpc64" => "ppc64",
        other => other,
    }
}

#[test]
fn version_names_semconv_arch_and_the_git_commit() {
    let o = agent(&["version", "--json"], &[]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["arch"], expected_arch());
    let commit = v["git_commit"].as_str().unwrap();
    let text = stdout(&agent(&["version"], &[]));
    assert!(
        text.contains(&format!("linux/{}", expected_arch())) && text.contains(commit),
        "{text}"
    );
    let short = stdout(&agent(&["-V"], &[]));
    assert!(short.contains(&format!("(commit {commit})")), "{short}");
    // Built from this git checkout, the commit is HEAD's (plus -dirty for local edits).
    let git = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(workspace_root())
        .output();
    match git {
        Ok(g) if g.status.success() => {
            let head = String::from_utf8_lossy(&g.stdout).trim().to_string();
            assert_eq!(commit.trim_end_matches("-dirty"), head, "{v}");
        }
        _ => eprintln!("git unavailable here; build commit is {commit}"),
    }
}

#[test]
fn arch_is_the_same_semconv_value_everywhere() {
    let rx = Receiver::start(None);
    let yaml = common::config("http", rx.http_port, "");
    let agent_proc = Agent::start(&yaml);
    let reqs = rx.wait_until(Duration::from_secs(10), "first export", |r| !r.is_empty());
    let arch = expected_arch();
    let ua = reqs[0]["headers"]["user-agent"].as_str().unwrap();
    assert!(ua.ends_with(&format!("(linux; {arch})")), "User-Agent {ua}");
    assert_eq!(resource_attrs(&reqs[0])["host.arch"], arch);
    let addr = agent_proc.bound_address("serving self-metrics");
    let (code, page) = http_get(addr, "/metrics");
    assert_eq!(code, 200);
    let info = page
        .lines()
        .find(|l| l.starts_with("tfo_agent_build_info{"))
        .unwrap_or_else(|| panic!("no build_info:\n{page}"));
    assert!(info.contains(&format!("arch=\"{arch}\"")), "{info}");
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    // `tfo-agent collect | head -1`: the reader goes away before the table is written.
    let mut child = Command::new(env!("CARGO_BIN_EXE_tfo-agent"))
        .arg("collect")
        .current_dir(std::env::temp_dir())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    assert!(
        o.status.success() || o.status.signal() == Some(libc::SIGPIPE),
        "{:?}",
        o.status
    );
}

#[test]
fn validate_warns_about_state_and_buffer_directories_run_cannot_use() {
    // /proc refuses new files even to root: the agent id would not be kept and the buffer
    // would be memory only. `run` says the same at start; validate must not stay silent.
    let o = with_config(
        "agent:\n  data_dir: /proc/tfo-agent-test\nbuffer:\n  path: /proc/tfo-agent-test/buffer\n",
        &["config", "validate"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("warning: agent.data_dir /proc/tfo-agent-test is not writable"),
        "{out}"
    );
    assert!(
        out.contains("warning: buffer.path /proc/tfo-agent-test/buffer is not writable"),
        "{out}"
    );
    // A writable directory draws no such warning.
    let dir = tempfile::tempdir().unwrap();
    let o = with_config(
        &format!("agent:\n  data_dir: {}\n", dir.path().display()),
        &["config", "validate"],
    );
    assert!(!stdout(&o).contains("agent.data_dir"), "{}", stdout(&o));
}

#[test]
fn validate_rejects_what_run_would_refuse_with_key_and_line() {
    // A CA file that does not exist: the loader accepts the path, building the exporter
    // (as `run` does) fails; validate exits 2 naming the key and its line.
    let o = with_config(
        "telemetryflow:\n  endpoint: localhost:4317\n  tls:\n    enabled: true\n    ca_file: /nonexistent/ca.pem\n",
        &["config", "validate"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains(":5: telemetryflow.tls.ca_file"), "{e}");
}

#[test]
fn text_logs_into_a_file_or_pipe_carry_no_colour_codes() {
    // A run that logs at INFO, then fails at start (a taken port: exit 1); stderr is a pipe.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let yaml = format!(
        "telemetryflow:\n  api_key_id: tfk_x\n  api_key_secret: tfs_x\n  endpoint: \"127.0.0.1:1\"\n\
         agent:\n  data_dir: ./data\nheartbeat:\n  enabled: false\nbuffer:\n  path: ./buffer\n\
         prometheus:\n  listen_address: \"{addr}\"\nhealth:\n  listen_address: \"127.0.0.1:0\"\n"
    );
    let o = with_config(
        &yaml,
        &["--log-format", "text", "--log-level", "info", "run"],
    );
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(
        e.contains("INFO") && e.contains("starting tfo-agent"),
        "{e}"
    );
    assert!(
        e.contains("ERROR") || e.contains("prometheus.listen_address"),
        "{e}"
    );
    assert!(!e.contains("\x1b["), "ANSI escapes in a piped log: {e:?}");
}
