//! `collectors.logs`: defaults, and every check names the key, its line and what is allowed.

mod common;

use std::time::Duration;

use common::*;
use tfo_config::{ErrorKind, LogEncoding, LogFileFormat, LogStartAt, load_from_str};

fn err(text: &str) -> tfo_config::ConfigError {
    load_from_str(text, "agent.yaml", &no_env).expect_err("should fail")
}

#[test]
fn defaults() {
    let c = load_from_str("", "t", &no_env).unwrap();
    let l = &c.collectors.logs;
    assert!(!l.enabled && l.paths.is_empty() && l.exclude_paths.is_empty());
    assert!(l.include_patterns.is_empty() && l.exclude_patterns.is_empty());
    assert_eq!(l.start_at, LogStartAt::End);
    assert_eq!(l.poll_interval, Duration::from_millis(250));
    assert_eq!(l.max_line_bytes, 1 << 20);
    assert_eq!(l.max_open_files, 512);
    assert_eq!(l.encoding, LogEncoding::Utf8);
    assert_eq!(l.format, LogFileFormat::Auto);
    assert_eq!(l.multiline.start_pattern, None);
    assert_eq!(l.multiline.end_pattern, None);
    assert_eq!(l.multiline.timeout, Duration::from_millis(500));
    assert!(l.attributes.is_empty() && !l.include_file_path);
}

#[test]
fn a_full_section_loads() {
    let text = r#"
collectors:
  logs:
    enabled: true
    paths: [/var/log/pods/*/*/*.log, "/var/log/{syslog,messages}"]
    exclude_paths: ["*.gz"]
    include_patterns: [ERROR]
    exclude_patterns: ['^DEBUG']
    start_at: beginning
    poll_interval: 100ms
    max_line_bytes: 65536
    max_open_files: 64
    encoding: utf8
    multiline:
      start_pattern: '^\d{4}-'
      timeout: 2s
    format: cri
    attributes:
      team: core
    include_file_path: true
"#;
    let c = load_from_str(text, "t", &no_env).unwrap();
    let l = &c.collectors.logs;
    assert!(l.enabled && l.include_file_path);
    assert_eq!(l.paths.len(), 2);
    assert_eq!(l.start_at, LogStartAt::Beginning);
    assert_eq!(l.poll_interval, Duration::from_millis(100));
    assert_eq!(l.multiline.start_pattern.as_deref(), Some(r"^\d{4}-"));
    assert_eq!(l.multiline.timeout, Duration::from_secs(2));
    assert_eq!(l.format, LogFileFormat::Cri);
    assert_eq!(l.attributes["team"], "core");
    // printed form loads back to the same config
    let shown = c.to_yaml_redacted();
    assert_eq!(
        load_from_str(&shown, "shown", &no_env).unwrap(),
        c,
        "{shown}"
    );
}

#[test]
fn enabled_without_paths() {
    let e = err("collectors:\n  logs:\n    enabled: true\n");
    assert_eq!(e.path(), Some("collectors.logs.paths"));
    assert!(e.message().contains("no paths"), "{e}");
}

#[test]
fn relative_and_malformed_globs() {
    let e = err("collectors:\n  logs:\n    paths:\n      - var/log/*.log\n");
    assert_eq!(e.kind(), ErrorKind::InvalidValue);
    assert_eq!(
        (e.path(), e.line()),
        (Some("collectors.logs.paths"), Some(3))
    );
    assert!(e.message().contains("not an absolute path"), "{e}");
    let e = err("collectors:\n  logs:\n    paths: ['/var/log/[ab.log']\n");
    assert!(e.message().contains("unclosed `[`"), "{e}");
    assert!(e.allowed().unwrap().contains("`**`"), "{e}");
    let e = err("collectors:\n  logs:\n    exclude_paths: ['{a,b']\n");
    assert_eq!(e.path(), Some("collectors.logs.exclude_paths"));
}

#[test]
fn bad_regexes_name_their_key() {
    for (key, text) in [
        (
            "collectors.logs.include_patterns",
            "collectors:\n  logs:\n    include_patterns: ['(']\n",
        ),
        (
            "collectors.logs.exclude_patterns",
            "collectors:\n  logs:\n    exclude_patterns: ['[z-a]']\n",
        ),
        (
            "collectors.logs.multiline.start_pattern",
            "collectors:\n  logs:\n    multiline:\n      start_pattern: '(?<'\n",
        ),
    ] {
        let e = err(text);
        assert_eq!(e.path(), Some(key), "{e}");
        assert!(
            e.message().contains("not a valid regular expression"),
            "{e}"
        );
    }
}

#[test]
fn multiline_takes_one_pattern() {
    let e =
        err("collectors:\n  logs:\n    multiline:\n      start_pattern: a\n      end_pattern: b\n");
    assert_eq!(
        (e.path(), e.line()),
        (Some("collectors.logs.multiline.end_pattern"), Some(5))
    );
    assert!(e.allowed().unwrap().contains("exactly one"), "{e}");
    // an empty pattern counts as unset
    let c = load_from_str(
        "collectors:\n  logs:\n    multiline:\n      start_pattern: a\n      end_pattern: ''\n",
        "t",
        &no_env,
    )
    .unwrap();
    assert_eq!(c.collectors.logs.multiline.end_pattern, None);
}

#[test]
fn enums_and_bounds() {
    let e = err("collectors:\n  logs:\n    encoding: latin1\n");
    assert_eq!(e.path(), Some("collectors.logs.encoding"));
    assert_eq!(e.line(), Some(3));
    assert!(e.to_string().contains("utf-8"), "{e}");
    let e = err("collectors:\n  logs:\n    format: syslog\n");
    assert_eq!(e.path(), Some("collectors.logs.format"));
    assert!(e.to_string().contains("cri"), "{e}");
    let e = err("collectors:\n  logs:\n    start_at: middle\n");
    assert_eq!(e.path(), Some("collectors.logs.start_at"));
    let e = err("collectors:\n  logs:\n    max_line_bytes: 10\n");
    assert_eq!(
        (e.path(), e.line()),
        (Some("collectors.logs.max_line_bytes"), Some(3))
    );
    let e = err("collectors:\n  logs:\n    max_open_files: 0\n");
    assert_eq!(e.path(), Some("collectors.logs.max_open_files"));
    let e = err("collectors:\n  logs:\n    poll_interval: 5ms\n");
    assert_eq!(e.path(), Some("collectors.logs.poll_interval"));
    assert!(e.to_string().contains("from 10ms to 1m"), "{e}");
    let e = err("collectors:\n  logs:\n    multiline:\n      timeout: 2m\n");
    assert_eq!(e.path(), Some("collectors.logs.multiline.timeout"));
    assert_eq!(e.line(), Some(4));
    let e = err("collectors:\n  logs:\n    attributes:\n      '': x\n");
    assert_eq!(e.path(), Some("collectors.logs.attributes"));
}

#[test]
fn unknown_key_lists_the_logs_keys() {
    let e = err("collectors:\n  logs:\n    path: [/x]\n");
    assert_eq!(e.kind(), ErrorKind::UnknownKey);
    assert!(e.allowed().unwrap().contains("exclude_paths"), "{e}");
    let e = err("collectors:\n  logs:\n    multiline:\n      pattern: x\n");
    assert_eq!(e.allowed(), Some("start_pattern, end_pattern, timeout"));
}

#[test]
fn remote_config_needs_allow_sensitive_for_paths() {
    assert!(tfo_config::remote::is_sensitive("collectors.logs.paths"));
    assert!(!tfo_config::remote::is_sensitive(
        "collectors.logs.exclude_patterns"
    ));
}
