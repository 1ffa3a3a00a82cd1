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
        "agent.yaml:3:3: telemetryflow.protocl: unknown key `protocl` in `telemetryflow` \
         (did you mean `protocol`?); allowed: api_key_id, api_key_secret, endpoint, protocol, timeout, tls, retry, api_endpoint"
    );
}

#[test]
fn a_near_miss_is_suggested_and_a_far_one_is_not() {
    let said = |text: &str| err(text).to_string();
    // One transposition, one letter missing, one letter extra.
    assert!(said("collectors:\n  sytsem: {}\n").contains("(did you mean `system`?)"));
    assert!(said("buffer:\n  max_sze_mb: 5\n").contains("(did you mean `max_size_mb`?)"));
    assert!(said("exporterr:\n  otlp: {}\n").contains("(did you mean `exporter`?)"));
    // Nothing close: no guess.
    assert!(!said("collectors:\n  gpu: {}\n").contains("did you mean"));
    assert!(!said("zzzzzzzz: 1\n").contains("did you mean"));
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
            "telemetryflow, agent, heartbeat, collectors, exporter, buffer, receivers, logging, prometheus, health, remote_config"
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
        shown.ends_with("(spaces are not allowed inside a duration); allowed: a duration from 10ms to 24h, e.g. 15s, 1.5m, 1h30m (units h, m, s, ms, us, ns; a bare number is seconds)"),
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
fn fractional_durations_load() {
    let text = "heartbeat:\n  interval: 1.5m\nexporter:\n  otlp:\n    flush_interval: 0.5s\ntelemetryflow:\n  timeout: 1h0.5m\n";
    let err = load_from_str(text, "t", &no_env).unwrap_err();
    // 1h0.5m is beyond the 10m timeout maximum: the range check sees the exact value
    assert_eq!(
        err.to_string(),
        "t:7:3: telemetryflow.timeout: `1h30s` is too long (maximum 10m); allowed: a duration from 1s to 10m, e.g. 15s, 1.5m, 1h30m (units h, m, s, ms, us, ns; a bare number is seconds)"
    );
    let c = load_from_str(&text.replace("1h0.5m", "1.25m"), "t", &no_env).unwrap();
    assert_eq!(c.heartbeat.interval, std::time::Duration::from_secs(90));
    assert_eq!(
        c.exporter.otlp.flush_interval,
        std::time::Duration::from_millis(500)
    );
    assert_eq!(c.telemetryflow.timeout, std::time::Duration::from_secs(75));
    // printed compactly, and the printed form loads back to the same config
    let shown = c.to_yaml_redacted();
    assert!(shown.contains("interval: 1m30s"), "{shown}");
    assert_eq!(load_from_str(&shown, "shown", &no_env).unwrap(), c);
}

#[test]
fn malformed_fraction_is_not_called_a_unit_problem() {
    let e = err("heartbeat:\n  interval: 1.5.0s\n");
    assert_eq!(e.kind(), ErrorKind::InvalidValue);
    assert_eq!((e.path(), e.line()), (Some("heartbeat.interval"), Some(2)));
    assert!(e.message().contains("more than one decimal point"), "{e}");
    assert!(!e.message().contains("unit"), "{e}");
    let e = err("heartbeat:\n  interval: 1.5\n");
    assert!(e.message().contains("needs a unit, e.g. 1.5s"), "{e}");
}

#[test]
fn huge_durations_are_errors_with_key_and_line() {
    for value in [
        "99999999999999999h",
        "99999999999999999999999s",
        "5124095576030432h",
    ] {
        let e = err(&format!(
            "agent:\n  name: x\nheartbeat:\n  interval: {value}\n"
        ));
        assert_eq!(e.kind(), ErrorKind::InvalidValue, "{e}");
        assert_eq!(
            (e.path(), e.line()),
            (Some("heartbeat.interval"), Some(4)),
            "{e}"
        );
        assert!(e.message().contains("too large"), "{e}");
        assert!(e.to_string().contains("from 1s to 24h"), "{e}");
    }
}

/// Every duration key has a range, checked at load with the key and its line, and the
/// message gives the bound that was crossed.
#[test]
fn every_duration_key_is_range_checked() {
    use tfo_config::duration::format_duration;
    use tfo_config::schema::DURATION_RANGES;
    for r in DURATION_RANGES {
        let (section, key) = r.path.rsplit_once('.').unwrap();
        let mut yaml = String::new();
        let mut indent = 0;
        for part in section.split('.') {
            yaml.push_str(&format!("{:indent$}{part}:\n", ""));
            indent += 2;
        }
        let line = section.split('.').count() + 1;
        let at =
            |d: std::time::Duration| format!("{yaml}{:indent$}{key}: {}\n", "", format_duration(d));
        let too_long = r.max + std::time::Duration::from_millis(1);
        let e = err(&at(too_long));
        assert_eq!((e.path(), e.line()), (Some(r.path), Some(line)), "{e}");
        assert!(
            e.message()
                .contains(&format!("too long (maximum {})", format_duration(r.max))),
            "{e}"
        );
        assert!(
            e.to_string()
                .contains(&format!("allowed: a duration {}", r.describe())),
            "{e}"
        );
        if !r.min.is_zero() {
            let e = err(&at(r.min - std::time::Duration::from_nanos(1)));
            assert_eq!((e.path(), e.line()), (Some(r.path), Some(line)), "{e}");
            assert!(
                e.message()
                    .contains(&format!("too short (minimum {})", format_duration(r.min))),
                "{e}"
            );
        }
        // both bounds are inclusive (the retry and leader election sets must stay ordered)
        for d in [r.min, r.max] {
            if r.path.starts_with("telemetryflow.retry.")
                || r.path.starts_with("collectors.kubernetes.leader_election.")
            {
                continue;
            }
            load_from_str(&at(d), "t", &no_env).unwrap_or_else(|e| panic!("{}: {e}", r.path));
        }
    }
}

#[test]
fn leader_election_timings_must_be_ordered() {
    let e = err(
        "collectors:\n  kubernetes:\n    leader_election:\n      lease_duration: 10s\n      renew_deadline: 10s\n",
    );
    assert_eq!(
        e.path(),
        Some("collectors.kubernetes.leader_election.renew_deadline"),
        "{e}"
    );
    assert_eq!(e.line(), Some(5), "{e}");
    assert!(e.message().contains("less than lease_duration"), "{e}");
    let e = err("collectors:\n  kubernetes:\n    leader_election:\n      retry_period: 10s\n");
    assert_eq!(
        e.path(),
        Some("collectors.kubernetes.leader_election.retry_period"),
        "{e}"
    );
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
        assert!(
            e.message().starts_with("`0s` is too short (minimum "),
            "{e}"
        );
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

/// All unset variables are reported in one error, each with its line and key, located at
/// the first.
#[test]
fn every_missing_variable_is_listed_in_one_error() {
    let text = "\
telemetryflow:
  api_key_id: \"${KEY_ID}\"
  api_key_secret: \"${KEY_SECRET}\"
agent:
  name: \"${HOSTNAME:-}\"
  tags:
    cluster: ${CLUSTER}
    owner: ${KEY_ID}
";
    let e = err(text);
    assert_eq!(e.kind(), ErrorKind::MissingVariable);
    assert_eq!((e.line(), e.column()), (Some(2), Some(16)));
    assert_eq!(e.path(), Some("telemetryflow.api_key_id"));
    assert_eq!(
        e.to_string(),
        "agent.yaml:2:16: telemetryflow.api_key_id: 3 environment variables are not set: \
         `KEY_ID` (line 2: telemetryflow.api_key_id, line 8: agent.tags.owner); \
         `KEY_SECRET` (line 3: telemetryflow.api_key_secret); \
         `CLUSTER` (line 7: agent.tags.cluster); \
         allowed: set KEY_ID, KEY_SECRET, CLUSTER, or give defaults with ${NAME:-default}"
    );
    // one variable used twice: both places
    let e = err("agent:\n  name: ${X}\n  id: ${X}\n");
    assert_eq!(
        e.message(),
        "environment variable `X` is not set (line 2: agent.name, line 3: agent.id)"
    );
}

/// An unclosed quote or bracket is reported where it opens, not where the parser gave up.
#[test]
fn syntax_errors_point_at_the_line_where_the_problem_starts() {
    let text = "telemetryflow:\n  api_key_id: tfk_1\n  endpoint: \"localhost:4317\n  protocol: grpc\nagent:\n  name: a\n";
    let e = err(text);
    assert_eq!(e.kind(), ErrorKind::Syntax);
    assert_eq!((e.line(), e.column()), (Some(3), Some(13)), "{e}");
    assert_eq!(e.path(), Some("telemetryflow.endpoint"));
    assert_eq!(
        e.to_string(),
        "agent.yaml:3:13: telemetryflow.endpoint: invalid YAML: this double-quoted string is never \
         closed (the parser stopped at line 4: invalid indentation in multiline quoted scalar); \
         allowed: close it with \" on line 3"
    );
    // swallowing the rest of the file: the parser stops at the end
    let e = err("agent:\n  name: 'node\n    tags: x\n    more: y\n");
    assert_eq!((e.line(), e.column()), (Some(2), Some(9)), "{e}");
    assert!(
        e.message().contains(
            "single-quoted string is never closed (the parser stopped at the end of the file"
        ),
        "{e}"
    );
    // an unclosed flow list
    let e = err(
        "collectors:\n  kubernetes:\n    exclude_namespaces: [kube-system, default\n    interval: 30s\n",
    );
    assert_eq!((e.line(), e.column()), (Some(3), Some(25)), "{e}");
    assert_eq!(e.path(), Some("collectors.kubernetes.exclude_namespaces"));
    assert!(e.message().contains("flow list `[` is never closed"), "{e}");
    assert_eq!(e.allowed(), Some("close it with ] on line 3"));
    // other syntax errors keep the parser's position
    let e = err("agent:\n  name: a\n   tags: b\n");
    assert_eq!((e.kind(), e.line()), (ErrorKind::Syntax, Some(3)), "{e}");
}

#[test]
fn syntax_and_duplicates() {
    let e = err("telemetryflow:\n  endpoint: \"unterminated\n");
    assert_eq!(e.kind(), ErrorKind::Syntax);
    assert_eq!(e.line(), Some(2), "{e}");
    assert!(e.message().starts_with("invalid YAML"), "{e}");

    let e = err("agent:\n  name: a\n  name: b\n");
    assert_eq!(e.kind(), ErrorKind::Syntax);
    assert_eq!((e.path(), e.line()), (Some("agent.name"), Some(3)));
    assert_eq!(e.message(), "duplicate key `name`");
}

#[test]
fn collector_endpoint_is_parsed_like_the_exporter() {
    let e = err("agent:\n  name: a\ntelemetryflow:\n  endpoint: localhost:99999\n");
    assert_eq!(e.kind(), ErrorKind::InvalidValue);
    assert_eq!(
        e.to_string(),
        format!(
            "agent.yaml:4:3: telemetryflow.endpoint: `localhost:99999`: port 99999 is out of range (must be 1-65535); allowed: {}",
            tfo_config::endpoint::ENDPOINT_ALLOWED
        )
    );
    for (endpoint, why) in [
        ("\"::1:4317\"", "needs brackets"),
        ("grpc://c:4317", "unsupported scheme"),
        ("\"c:4317/v1\"", "only allowed in a URL"),
        ("\"\"", "must not be empty"),
    ] {
        let e = err(&format!("telemetryflow:\n  endpoint: {endpoint}\n"));
        assert_eq!(
            (e.path(), e.line()),
            (Some("telemetryflow.endpoint"), Some(2)),
            "{e}"
        );
        assert!(e.message().contains(why), "{e}");
    }
    for ok in [
        "[::1]:4317",
        "https://c.example/otlp",
        "collector",
        "http://c:4318",
    ] {
        load_from_str(
            &format!("telemetryflow:\n  endpoint: \"{ok}\"\n"),
            "t",
            &no_env,
        )
        .unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    // an override is checked too (no line: it is not in the file)
    let env = env_of(&[("TELEMETRYFLOW_ENDPOINT", "collector:0")]);
    let e = load_from_str("", "a.yaml", &env).unwrap_err();
    assert_eq!((e.path(), e.line()), (Some("telemetryflow.endpoint"), None));
}

#[test]
fn platform_url_is_checked() {
    for (url, why) in [
        ("https://api.example:99999", "port 99999 is out of range"),
        ("http://user:pw@api.example", "user name or password"),
        ("https://api.example/?x=1", "query or fragment"),
        ("api.example", "needs http:// or https://"),
    ] {
        let e = err(&format!("telemetryflow:\n  api_endpoint: \"{url}\"\n"));
        assert_eq!(
            (e.path(), e.line()),
            (Some("telemetryflow.api_endpoint"), Some(2)),
            "{e}"
        );
        assert!(e.message().contains(why), "{e}");
    }
    // The credentials in a refused address are not echoed back.
    let e = err("telemetryflow:\n  endpoint: \"http://user:pw123@127.0.0.1:4318\"\n");
    assert!(!e.to_string().contains("pw123"), "{e}");
    assert!(
        e.to_string().contains("http://[REDACTED]@127.0.0.1:4318"),
        "{e}"
    );
}

#[test]
fn endpoint_addresses_are_checked() {
    let e = err("health:\n  listen_address: 127.0.0.1:99999\n");
    assert_eq!(
        (e.path(), e.line()),
        (Some("health.listen_address"), Some(2))
    );
    assert!(
        e.message()
            .contains("port 99999 is out of range (must be 0-65535)"),
        "{e}"
    );
    let e = err("prometheus:\n  listen_address: localhost:8888\n");
    assert!(
        e.message().contains("`localhost` is not an IP address"),
        "{e}"
    );
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

#[test]
fn hubble_settings_are_checked() {
    let cfg = |yaml: &str| load_from_str(yaml, "agent.yaml", &no_env);
    for (yaml, key) in [
        (
            "collectors:\n  ebpf:\n    hubble:\n      address: \"unix://relative.sock\"\n",
            "collectors.ebpf.hubble.address",
        ),
        (
            "collectors:\n  ebpf:\n    hubble:\n      address: \"relay:http\"\n",
            "collectors.ebpf.hubble.address",
        ),
        (
            "collectors:\n  ebpf:\n    hubble:\n      tls:\n        enabled: true\n",
            "collectors.ebpf.hubble.address",
        ),
        (
            "collectors:\n  ebpf:\n    hubble:\n      address: relay:4245\n      tls:\n        cert_file: /c.pem\n",
            "collectors.ebpf.hubble.tls.cert_file",
        ),
        (
            "collectors:\n  ebpf:\n    hubble:\n      max_series: 0\n",
            "collectors.ebpf.hubble.max_series",
        ),
    ] {
        let e = cfg(yaml).expect_err(yaml);
        assert_eq!(e.path(), Some(key), "{yaml}: {e}");
    }
    let ok = cfg(
        "collectors:\n  ebpf:\n    hubble:\n      enabled: true\n      address: hubble-relay:443\n      tls:\n        enabled: true\n        server_name: \"\"\n",
    )
    .unwrap();
    let h = &ok.collectors.ebpf.hubble;
    assert!(h.enabled && h.tls.enabled && h.tls.server_name.is_none());
    assert!(!ok.collectors.ebpf.enabled, "independent of the programs");
}

#[test]
fn receiver_addresses_sizes_and_auth_are_checked() {
    let e = err(
        "receivers:\n  otlp:\n    enabled: true\n    grpc:\n      listen_address: localhost:4317\n",
    );
    assert_eq!(
        (e.path(), e.line()),
        (Some("receivers.otlp.grpc.listen_address"), Some(5))
    );
    let e = err(
        "receivers:\n  otlp:\n    enabled: true\n    http:\n      listen_address: 127.0.0.1:4317\n",
    );
    assert_eq!(e.path(), Some("receivers.otlp.http.listen_address"));
    assert!(e.to_string().contains("both listen on"), "{e}");
    let e = err("receivers:\n  otlp:\n    enabled: true\n    max_recv_msg_size_mb: 0\n");
    assert_eq!(e.path(), Some("receivers.otlp.max_recv_msg_size_mb"));
    let e = err("receivers:\n  otlp:\n    enabled: true\n    auth:\n      api_key_id: tfk_x\n");
    assert_eq!(
        (e.path(), e.line()),
        (Some("receivers.otlp.auth.api_key_id"), Some(5))
    );
    assert!(e.to_string().contains("api_key_secret"), "{e}");
    // Disabled: nothing is checked.
    load_from_str(
        "receivers:\n  otlp:\n    grpc:\n      listen_address: nope\n",
        "agent.yaml",
        &no_env,
    )
    .unwrap();
    // A listener open to the network without auth is a warning, not an error.
    let open = load_from_str(
        "receivers:\n  otlp:\n    enabled: true\n    grpc:\n      listen_address: 0.0.0.0:4317\n",
        "agent.yaml",
        &no_env,
    )
    .unwrap();
    assert!(
        open.warnings()
            .iter()
            .any(|w| w.starts_with("receivers.otlp.grpc.listen_address")),
        "{:?}",
        open.warnings()
    );
    let closed = load_from_str(
        "receivers:\n  otlp:\n    enabled: true\n    grpc:\n      listen_address: 0.0.0.0:4317\n    auth:\n      bearer_token: s3cret\n",
        "agent.yaml",
        &no_env,
    )
    .unwrap();
    assert!(closed.warnings().is_empty(), "{:?}", closed.warnings());
    assert!(!closed.to_json_redacted().contains("s3cret"));
}
