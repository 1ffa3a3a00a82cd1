//! CRI, docker and JSON fixtures under a kubelet-style path; multiline; filters; long lines;
//! invalid UTF-8 and binary garbage.

mod common;

use std::fs;
use std::path::Path;
use std::time::Duration;

use common::*;
use tfo_logs::{Format, Multiline, TailerConfig};

/// Body, iostream, time, severity number.
type Summary<'a> = (&'a str, Option<&'a str>, Option<u64>, Option<u8>);

const T0: u64 = 1_714_557_600_000_000_000; // 2024-05-01T10:00:00Z
const SEC: u64 = 1_000_000_000;

/// Copies a fixture to `/…/var/log/pods/<ns>_<pod>_<uid>/<container>/0.log` in `root`.
fn pod_file(root: &Path, fixture_name: &str) -> std::path::PathBuf {
    let path = root
        .join("var/log/pods/shop_web-7d4b9c-x2x_5f0c2d3e-aaaa-bbbb-cccc-0123456789ab/nginx/0.log");
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::copy(fixture(fixture_name), &path).unwrap();
    path
}

fn run_format(name: &str, format: Format) -> (Vec<tfo_logs::LogLine>, tfo_logs::Stats) {
    let dir = tempfile::tempdir().unwrap();
    let path = pod_file(dir.path(), name);
    let cfg = TailerConfig {
        format,
        ..config(&[&dir.path().join("var/log/pods/*/*/*.log")])
    };
    let mut t = tailer(dir.path(), cfg);
    let lines = drain(&mut t);
    assert!(
        lines
            .iter()
            .all(|l| l.file.path == path && l.file.name == "0.log")
    );
    (lines, t.stats())
}

#[test]
fn cri_fixture() {
    for format in [Format::Cri, Format::Auto] {
        let (lines, stats) = run_format("cri.log", format);
        let got: Vec<Summary> = lines
            .iter()
            .map(|l| {
                (
                    l.body.as_str(),
                    l.iostream,
                    l.time_unix_nano,
                    l.severity.as_ref().map(|s| s.0),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "Starting server on :8080",
                    Some("stdout"),
                    Some(T0 + 1),
                    None
                ),
                (
                    "level=warn msg=\"config file missing, using defaults\"",
                    Some("stderr"),
                    Some(T0 + SEC / 10),
                    Some(13)
                ),
                (
                    "ERROR panic: boom",
                    Some("stderr"),
                    Some(T0 + SEC + SEC / 10),
                    Some(17)
                ),
                (
                    r#"{"level":"error","msg":"a long line split by the runtime"}"#,
                    Some("stdout"),
                    Some(T0 + SEC),
                    Some(17)
                ),
                (
                    "INFO with an offset time",
                    Some("stdout"),
                    Some(T0 + 2 * SEC),
                    Some(9)
                ),
                ("", Some("stdout"), Some(T0 + 3 * SEC), None),
                ("not a CRI line", None, None, None),
            ],
            "{format:?}"
        );
        assert_eq!(stats.parse_errors, 1);
        // the stderr line came while the stdout partial was held: its position does not pass it
        let partial_start = fs::read_to_string(fixture("cri.log"))
            .unwrap()
            .find("2024-05-01T10:00:01.000000000Z")
            .unwrap();
        assert_eq!(lines[2].position.offset, partial_start as u64);
        let k8s = lines[0].file.k8s.as_ref().expect("pod path");
        assert_eq!(
            (
                k8s.namespace.as_str(),
                k8s.pod_name.as_str(),
                k8s.pod_uid.as_str(),
                k8s.container_name.as_str()
            ),
            (
                "shop",
                "web-7d4b9c-x2x",
                "5f0c2d3e-aaaa-bbbb-cccc-0123456789ab",
                "nginx"
            )
        );
    }
}

#[test]
fn docker_fixture() {
    for format in [Format::Docker, Format::Auto] {
        let (lines, stats) = run_format("docker.log", format);
        let got: Vec<Summary> = lines
            .iter()
            .map(|l| {
                (
                    l.body.as_str(),
                    l.iostream,
                    l.time_unix_nano,
                    l.severity.as_ref().map(|s| s.0),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "Listening on 0.0.0.0:80",
                    Some("stdout"),
                    Some(T0 + 123_456_789),
                    None
                ),
                (
                    "DEBUG interleaved",
                    Some("stderr"),
                    Some(T0 + SEC + SEC / 5),
                    Some(5)
                ),
                (
                    "partial one, partial two",
                    Some("stdout"),
                    Some(T0 + SEC),
                    None
                ),
                (
                    "WARN disk é \"80%\"",
                    Some("stderr"),
                    Some(T0 + 2 * SEC),
                    Some(13)
                ),
                (
                    r#"{"level":"info","msg":"json inside"}"#,
                    Some("stdout"),
                    Some(T0 + 3 * SEC),
                    Some(9)
                ),
            ],
            "{format:?}"
        );
        assert_eq!(stats.parse_errors, 0);
    }
}

#[test]
fn json_fixture() {
    let (lines, stats) = run_format("json.log", Format::Auto);
    let got: Vec<(Option<u64>, Option<u8>, Option<&str>)> = lines
        .iter()
        .map(|l| {
            (
                l.time_unix_nano,
                l.severity.as_ref().map(|s| s.0),
                l.message.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (Some(T0), Some(9), Some("started")),
            (Some(T0 + SEC + SEC / 2), Some(17), Some("failed")),
            (Some(T0 + 2 * SEC), Some(9), Some("pino info")),
            (None, None, None),
        ]
    );
    assert!(
        lines[0].body.starts_with("{\"time\""),
        "the body keeps the whole object"
    );
    assert_eq!(lines[3].body, "not json at all");
    assert_eq!(stats.parse_errors, 0);
    assert!(lines[0].file.k8s.is_some());
}

fn multiline_tailer(dir: &Path, start: Option<&str>, end: Option<&str>) -> tfo_logs::Tailer {
    let cfg = TailerConfig {
        multiline: Multiline {
            start_pattern: start.map(str::to_string),
            end_pattern: end.map(str::to_string),
            timeout: Duration::from_millis(150),
        },
        ..config(&[&dir.join("*.log")])
    };
    tailer(dir, cfg)
}

#[test]
fn multiline_start_pattern_with_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(
        &log,
        "2024-05-01 10:00:00 ERROR boom\n  at a.rs:1\n  at b.rs:2\n2024-05-01 10:00:01 INFO next\n",
    );
    let mut t = multiline_tailer(dir.path(), Some(r"^\d{4}-\d{2}-\d{2} "), None);
    let first = drain_for(&mut t, Duration::from_millis(60), Duration::from_secs(5));
    assert_eq!(
        bodies(&first),
        ["2024-05-01 10:00:00 ERROR boom\n  at a.rs:1\n  at b.rs:2"]
    );
    assert_eq!(first[0].severity.as_ref().map(|s| s.0), Some(17));
    // the last record waits for its timeout; a continuation arriving in time joins it
    append(&log, "  continued\n");
    let more = drain_for(&mut t, Duration::from_millis(400), Duration::from_secs(5));
    assert_eq!(
        bodies(&more),
        ["2024-05-01 10:00:01 INFO next\n  continued"]
    );
    assert_eq!(t.stats().multiline_timeouts, 1);
}

#[test]
fn multiline_end_pattern() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("q.log");
    append(&log, "SELECT *\nFROM t\nWHERE x;\nSELECT 1;\nunfinished\n");
    let mut t = multiline_tailer(dir.path(), None, Some(r";\s*$"));
    let lines = drain_for(&mut t, Duration::from_millis(400), Duration::from_secs(5));
    assert_eq!(
        bodies(&lines),
        ["SELECT *\nFROM t\nWHERE x;", "SELECT 1;", "unfinished"]
    );
    assert_eq!(t.stats().multiline_timeouts, 1);
}

#[test]
fn include_and_exclude_patterns_count_what_they_drop() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(
        &log,
        "INFO a\nERROR b\nWARN GET /healthz\nERROR c\nINFO d\n",
    );
    let cfg = TailerConfig {
        include_patterns: vec!["ERROR".into(), "WARN".into()],
        exclude_patterns: vec!["healthz".into()],
        ..config(&[&dir.path().join("*.log")])
    };
    let mut t = tailer(dir.path(), cfg);
    let lines = drain(&mut t);
    assert_eq!(bodies(&lines), ["ERROR b", "ERROR c"]);
    assert_eq!(t.stats().records_excluded, 3);
    // everything returned is committed, so the checkpoint moves past the trailing
    // filtered line too: a restart reads nothing again
    t.flush().unwrap();
    let table = fs::read_to_string(dir.path().join("checkpoints/checkpoints.json")).unwrap();
    let size = fs::metadata(&log).unwrap().len();
    assert!(table.contains(&format!("\"offset\":{size}")), "{table}");
}

#[test]
fn ten_mib_line_is_split_not_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("big.log");
    let mut big = String::with_capacity(10 << 20);
    let mut i = 0u64;
    while big.len() < 10 << 20 {
        big.push_str(&format!("{i:07}é"));
        i += 1;
    }
    append(&log, &format!("before\n{big}\nafter\n"));
    let cfg = TailerConfig {
        max_line_bytes: 1 << 20,
        ..config(&[&dir.path().join("*.log")])
    };
    let mut t = tailer(dir.path(), cfg);
    let lines = drain(&mut t);
    let b = bodies(&lines);
    assert_eq!(b.first().map(String::as_str), Some("before"));
    assert_eq!(b.last().map(String::as_str), Some("after"));
    let pieces = &b[1..b.len() - 1];
    assert!(pieces.iter().all(|p| p.len() <= 1 << 20));
    assert_eq!(
        pieces.concat(),
        big,
        "every byte once, no U+FFFD at the cuts"
    );
    let s = t.stats();
    assert_eq!(s.lines_split as usize, pieces.len() - 1);
    assert_eq!(s.lines_read, 3);
    assert_eq!(s.records_invalid_utf8, 0);
    // positions never decrease and end at the file size
    let offsets: Vec<u64> = lines.iter().map(|l| l.position.offset).collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
    assert_eq!(*offsets.last().unwrap(), fs::metadata(&log).unwrap().len());
}

#[test]
fn invalid_utf8_is_replaced_and_binary_garbage_survives() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("mixed.log");
    fs::write(&log, b"ok \xff\xfe end\r\nnul \x00 byte\n\xc3\n").unwrap();
    let mut t = tailer(dir.path(), config(&[&dir.path().join("*.log")]));
    let lines = drain(&mut t);
    assert_eq!(
        bodies(&lines),
        ["ok \u{fffd}\u{fffd} end", "nul \u{0} byte", "\u{fffd}"]
    );
    assert_eq!(t.stats().records_invalid_utf8, 2);

    // 4 MiB of pseudo-random bytes (long runs without a newline included)
    let garbage = dir.path().join("garbage.log");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let bytes: Vec<u8> = (0..4 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    fs::write(&garbage, &bytes).unwrap();
    let cfg = TailerConfig {
        max_line_bytes: 4096,
        ..config(&[&garbage])
    };
    let mut t = tailer(dir.path(), cfg);
    let lines = drain(&mut t);
    let s = t.stats();
    assert_eq!(s.bytes_read, bytes.len() as u64);
    let newlines = bytes.iter().filter(|&&b| b == b'\n').count() as u64;
    // the file does not end with a newline: its last line waits for one
    assert_eq!(s.lines_read, newlines);
    assert!(s.records_invalid_utf8 > 0 && lines.len() as u64 >= newlines);
}
