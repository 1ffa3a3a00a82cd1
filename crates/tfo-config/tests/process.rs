//! `collectors.process`: defaults, and every check names the key, its line and what is
//! allowed.

mod common;

use std::time::Duration;

use common::*;
use tfo_config::{ProcessTopBy, load_from_str};

fn err(text: &str) -> tfo_config::ConfigError {
    load_from_str(text, "agent.yaml", &no_env).expect_err("should fail")
}

#[test]
fn defaults_and_values() {
    let c = load_from_str("", "t", &no_env).unwrap();
    let p = &c.collectors.process;
    assert!(!p.enabled);
    assert_eq!(p.interval, Duration::from_secs(30));
    assert!(p.processes.is_empty() && p.users.is_empty());
    assert_eq!(
        (p.top_n, p.top_by, p.max_processes),
        (0, ProcessTopBy::Cpu, 1000)
    );
    assert!(p.disk_io && !p.file_descriptors && !p.context_switches && !p.command_line);
    // The OpenTelemetry Collector scraper's default set: the rest of stat is opt-in.
    assert!(!p.cpu_utilization && !p.threads && !p.paging_faults && !p.uptime);
    assert_eq!(p.redact_patterns.len(), 3);

    let c = load_from_str(
        "collectors:\n  process:\n    enabled: true\n    processes: [nginx]\n    top_n: 5\n    top_by: memory\n    redact_patterns: []\n",
        "t",
        &no_env,
    )
    .unwrap();
    let p = &c.collectors.process;
    assert_eq!(p.processes, ["nginx"]);
    assert_eq!((p.top_n, p.top_by), (5, ProcessTopBy::Memory));
    assert!(p.redact_patterns.is_empty());
}

#[test]
fn bad_values_name_key_and_line() {
    for (key, text, line, what) in [
        (
            "collectors.process.include_command_lines",
            "collectors:\n  process:\n    include_command_lines: ['(']\n",
            3,
            "not a valid regular expression",
        ),
        (
            "collectors.process.exclude_command_lines",
            "collectors:\n  process:\n    enabled: true\n    exclude_command_lines: ['[z-a]']\n",
            4,
            "not a valid regular expression",
        ),
        (
            "collectors.process.redact_patterns",
            "collectors:\n  process:\n    redact_patterns: ['(?<']\n",
            3,
            "not a valid regular expression",
        ),
        (
            "collectors.process.max_processes",
            "collectors:\n  process:\n    max_processes: 0\n",
            3,
            "at least 1",
        ),
        (
            "collectors.process.top_by",
            "collectors:\n  process:\n    top_by: disk\n",
            3,
            "",
        ),
    ] {
        let e = err(text);
        assert_eq!(e.path(), Some(key), "{e}");
        assert_eq!(e.line(), Some(line), "{e}");
        assert!(e.to_string().contains(what), "{e}");
    }
}
