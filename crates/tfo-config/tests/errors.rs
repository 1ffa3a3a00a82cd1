//! Every kind of mistake gives an error naming file, line, key path and what is allowed.

mod common;

use common::*;
use tfo_config::{ConfigError, ErrorKind, load_from_str};

fn err(text: &str) -> ConfigError {
    load_from_str(text, "agent.yaml", &no_env).expect_err("should fail")
}

#[test]
fn unknown_key_lists_the_sections_keys() {
    let e = err("telemetryflow:\n  endpoint: \"x:4317\"\n  protocl: grpc\n");
    assert_eq!(e.kind(), ErrorKind::UnknownKey);
    assert_eq!(e.path(), Some("telemetryflow.protocl"));
    assert_eq!((e.line(), e.column()), (Some(3), Some(3)));
    assert_eq!(
        e.to_string(),
        "agent.yaml:3:3: telemetryflow.protocl: unknown key `protocl` in `telemetryflow`; \
         allowed: api_key_id, api_key_secret, endpoint, protocol, timeout, tls, retry, api_endpoint"
    );
}

#[test]
fn unknown_nested_and_top_level_keys() {
    let e = err("collectors:\n  system:\n    enabled: true\n    disks: false\n");
    assert_eq!(e.path(), Some("collectors.system.disks"));
    assert_eq!(e.line(), Some(4));
    assert_eq!(
        e.allowed(),
        Some("enabled, interval, cpu, memory, disk, network")
    );

    let e = err("# header\nexporters:\n  otlp: {}\n");
    assert_eq!(e.kind(), ErrorKind::UnknownKey);
    assert_eq!(e.path(), Some("exporters"));
    assert_eq!(e.line(), Some(2));
    assert_eq!(
        e.allowed(),
        Some(
            "telemetryflow, agent, heartbeat, collectors, exporter, buffer, logging, prometheus, health, remote_config"
        )
    );
}

#[test]
fn bad_duration() {
    let e = err("collectors:\n  system:\n    interval: 15 seconds\n");
    assert_eq!(e.kind(), ErrorKind::InvalidValue);
    assert_eq!(e.path(), Some("collectors.system.interval"));
    assert_eq!((e.line(), e.column()), (Some(3), Some(15)));
    let shown = e.to_string();
    assert!(
        shown.starts_with(
            "agent.yaml:3:15: collectors.system.interval: invalid duration `15 seconds`"
        ),
        "{shown}"
    );
    assert!(
        shown.contains("allowed: a duration such as 500ms, 15s, 1m"),
        "{shown}"
    );

    for (text, line) in [
        ("heartbeat:\n  interval: -5\n", 2),
        ("heartbeat:\n  interval: 1.5\n", 2),
        ("exporter:\n  otlp:\n    flush_interval: 10d\n", 3),
    ] {
        let e = err(text);
        assert_eq!(e.kind(), ErrorKind::InvalidValue, "{text}: {e}");
        assert_eq!(e.line(), Some(line), "{text}: {e}");
    }
}

#[test]
fn zero_intervals_are_rejected_with_line() {
    for (text, path, line) in [
        ("heartbeat:\n  interval: 0s\n", "heartbeat.interval", 2),
        ("telemetryflow:\n  timeout: 0\n", "telemetryflow.timeout", 2),
        (
            "exporter:\n  otlp:\n    flush_interval: 0ms\n",
            "exporter.otlp.flush_interval",
            3,
        ),
        (
            "collectors:\n  ebpf:\n    interval: 0s\n",
            "collectors.ebpf.interval",
            3,
        ),
        (
            "collectors:\n  process:\n    interval: 0s\n",
            "collectors.process.interval",
            3,
        ),
    ] {
        let e = err(text);
        assert_eq!(e.kind(), ErrorKind::InvalidValue, "{e}");
        assert_eq!(e.path(), Some(path), "{e}");
        assert_eq!(e.line(), Some(line), "{e}");
        assert!(e.message().contains("greater than zero"), "{e}");
    }
}

#[test]
fn bad_enum_lists_values() {
    let e = err("telemetryflow:\n  protocol: udp\n");
    assert_eq!(
        e.to_string(),
        "agent.yaml:2:13: telemetryflow.protocol: invalid value `udp`; allowed: grpc, http"
    );
    let e = err("exporter:\n  otlp:\n    compression: zstd\n");
    assert_eq!(e.path(), Some("exporter.otlp.compression"));
    assert_eq!(e.allowed(), Some("gzip, none"));
    let e = err("exporter:\n  otlp:\n    endpoint_version: v3\n");
    assert_eq!(e.allowed(), Some("v1, v2"));
    let e = err("logging:\n  format: xml\n");
    assert_eq!(e.allowed(), Some("text, json"));
    // logging.level is a validated string
    let e = err("logging:\n  level: verbose\n");
    assert_eq!(
        e.to_string(),
        "agent.yaml:2:3: logging.level: invalid value `verbose`; allowed: trace, debug, info, warn, error"
    );
    // but case is forgiven
    let c = load_from_str("logging:\n  level: WARN\n", "t", &no_env).unwrap();
    assert_eq!(c.logging.level, "warn");
}

#[test]
fn wrong_types() {
    let e = err("exporter:\n  otlp:\n    batch_size: many\n");
    assert_eq!(e.kind(), ErrorKind::WrongType);
    assert_eq!(e.path(), Some("exporter.otlp.batch_size"));
    assert_eq!(e.line(), Some(3));
    assert_eq!(e.allowed(), Some("a whole number (0 or more)"));

    let e = err("heartbeat:\n  enabled: maybe\n");
    assert_eq!(
        (e.kind(), e.path(), e.allowed()),
        (
            ErrorKind::WrongType,
            Some("heartbeat.enabled"),
            Some("true, false")
        )
    );

    let e = err("collectors:\n  kubernetes:\n    exclude_namespaces: kube-system\n");
    assert_eq!(e.path(), Some("collectors.kubernetes.exclude_namespaces"));
    assert_eq!(e.allowed(), Some("a list of strings"));

    let e = err("collectors:\n  system: 5\n");
    assert_eq!(e.path(), Some("collectors.system"));
    assert_eq!(e.line(), Some(2));

    let e = err("agent:\n  tags:\n    env: [a, b]\n");
    assert_eq!(e.path(), Some("agent.tags.env"));
    assert_eq!(e.allowed(), Some("a string"));

    let e = err("telemetryflow:\n  retry:\n    max_attempts: 99999999999\n");
    assert_eq!(e.path(), Some("telemetryflow.retry.max_attempts"));

    let e = err("- a\n- b\n");
    assert_eq!(e.kind(), ErrorKind::WrongType);
    assert_eq!(e.line(), Some(1));
}

#[test]
fn wrong_type_secret_is_not_echoed() {
    for text in [
        "telemetryflow:\n  api_key_secret: [tfs_leak_me_please]\n",
        "telemetryflow:\n  api_key_secret:\n    nested: tfs_leak_me_please\n",
    ] {
        let e = err(text);
        assert_eq!(e.path(), Some("telemetryflow.api_key_secret"), "{e}");
        assert!(matches!(e.line(), Some(2 | 3)), "{e}");
        assert!(!format!("{e} {e:?}").contains("leak_me"), "{e}");
    }
}

#[test]
fn secrets_are_scrubbed_from_any_message() {
    // a value error on a line near a secret: the secret value never shows up
    let env = env_of(&[("TELEMETRYFLOW_API_KEY_SECRET", "tfs_from_env_123")]);
    let text = "telemetryflow:\n  api_key_secret: \"tfs_inline_456\"\n  endpoint: tfs_inline_456\n  timeout: 0s\n";
    let e = load_from_str(text, "a.yaml", &env).unwrap_err();
    let all = format!("{e} {e:?}");
    assert!(
        !all.contains("tfs_inline_456") && !all.contains("tfs_from_env_123"),
        "{all}"
    );
    // an error message that would contain the secret is redacted
    let text = "telemetryflow:\n  api_key_secret: \"https\"\n  api_endpoint: \"ftp://https\"\n";
    let e = load_from_str(text, "a.yaml", &no_env).unwrap_err();
    assert!(!e.message().contains("https"), "{e}");
    assert!(e.message().contains("[REDACTED]"), "{e}");
}

#[test]
fn semantic_checks_name_key_and_line() {
    let e = err("exporter:\n  otlp:\n    batch_size: 0\n");
    assert_eq!(
        e.to_string(),
        "agent.yaml:3:5: exporter.otlp.batch_size: must be at least 1; allowed: a whole number >= 1"
    );

    let e = err("telemetryflow:\n  retry:\n    max_attempts: 0\n");
    assert_eq!(
        (e.path(), e.line()),
        (Some("telemetryflow.retry.max_attempts"), Some(3))
    );

    let e = err("telemetryflow:\n  retry:\n    max_interval: 10s\n    initial_interval: 1m\n");
    assert_eq!(
        (e.path(), e.line()),
        (Some("telemetryflow.retry.initial_interval"), Some(4))
    );
    // only max_interval in the file: its line is used
    let e = err("telemetryflow:\n  retry:\n    max_interval: 500ms\n");
    assert_eq!(
        (e.path(), e.line()),
        (Some("telemetryflow.retry.max_interval"), Some(3))
    );

    let e = err("telemetryflow:\n  tls:\n    enabled: true\n    key_file: /k.pem\n");
    assert_eq!(
        (e.path(), e.line()),
        (Some("telemetryflow.tls.key_file"), Some(4))
    );
    assert!(e.message().contains("telemetryflow.tls.cert_file"), "{e}");
    load_from_str(
        "telemetryflow:\n  tls:\n    cert_file: /c.pem\n    key_file: /k.pem\n",
        "t",
        &no_env,
    )
    .expect("both is fine");

    let e = err("buffer:\n  max_size_mb: 0\n");
    assert_eq!((e.path(), e.line()), (Some("buffer.max_size_mb"), Some(2)));
    load_from_str(
        "buffer:\n  enabled: false\n  max_size_mb: 0\n",
        "t",
        &no_env,
    )
    .expect("disabled buffer");

    let e = err("exporter:\n  otlp:\n    headers:\n      \"bad header\": x\n");
    assert_eq!(e.path(), Some("exporter.otlp.headers"));
    assert_eq!(e.line(), Some(3));
}

#[test]
fn semantic_errors_from_env_overrides_have_no_line() {
    let env = env_of(&[("TELEMETRYFLOW_API_ENDPOINT", "not-a-url")]);
    let e = load_from_str("agent:\n  name: a\n", "a.yaml", &env).unwrap_err();
    assert_eq!(e.path(), Some("telemetryflow.api_endpoint"));
    assert_eq!(e.line(), None);
    assert!(
        e.to_string()
            .starts_with("a.yaml: telemetryflow.api_endpoint: "),
        "{e}"
    );
}

#[test]
fn missing_variable_names_it_and_the_line() {
    let e = err("telemetryflow:\n  endpoint: localhost:4317\nagent:\n  name: \"${HOSTNAME}\"\n");
    assert_eq!(e.kind(), ErrorKind::MissingVariable);
    assert_eq!((e.line(), e.column()), (Some(4), Some(10)));
    assert_eq!(e.path(), Some("agent.name"));
    assert_eq!(
        e.to_string(),
        "agent.yaml:4:10: agent.name: environment variable `HOSTNAME` is not set; \
         allowed: set HOSTNAME, or give a default with ${HOSTNAME:-default}"
    );
    let e = err("agent:\n  name: ${HOST NAME}\n");
    assert_eq!(e.kind(), ErrorKind::BadVariable);
    assert_eq!(e.line(), Some(2));
    let e = err("agent:\n  name: ${HOSTNAME\n");
    assert_eq!(e.kind(), ErrorKind::BadVariable);
}

#[test]
fn syntax_and_duplicates() {
    let e = err("telemetryflow:\n  endpoint: \"unterminated\n");
    assert_eq!(e.kind(), ErrorKind::Syntax);
    assert!(e.line().is_some());
    assert!(e.message().starts_with("invalid YAML"), "{e}");

    let e = err("agent:\n  name: a\n  name: b\n");
    assert_eq!(e.kind(), ErrorKind::Syntax);
    assert_eq!((e.path(), e.line()), (Some("agent.name"), Some(3)));
    assert_eq!(e.message(), "duplicate key `name`");
}

#[test]
fn endpoint_addresses_are_checked() {
    let e = err("prometheus:\n  listen_address: localhost:8888\n");
    assert_eq!(e.path(), Some("prometheus.listen_address"));
    assert_eq!(e.line(), Some(2));
    let e =
        err("prometheus:\n  listen_address: 127.0.0.1:9\nhealth:\n  listen_address: 127.0.0.1:9\n");
    assert_eq!(e.path(), Some("health.listen_address"));
    assert_eq!(e.line(), Some(4));
    let e = err("buffer:\n  when_full: wait\n");
    assert_eq!(e.path(), Some("buffer.when_full"));
    assert_eq!(e.allowed(), Some("auto, drop_oldest, block"));
}
