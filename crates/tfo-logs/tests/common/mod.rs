//! Helpers shared by the integration tests (included with `mod common;`).
#![allow(dead_code)]

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tfo_logs::{LogLine, StartAt, Tailer, TailerConfig};

pub const BUDGET: usize = 4 << 20;

/// A config for tests: fast polls, files read from the beginning, checkpoints on every commit.
pub fn config(paths: &[&Path]) -> TailerConfig {
    TailerConfig {
        paths: paths
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect(),
        start_at: StartAt::Beginning,
        poll_interval: Duration::from_millis(5),
        checkpoint_interval: Duration::ZERO,
        orphan_idle: Duration::from_millis(200),
        ..TailerConfig::default()
    }
}

pub fn tailer(dir: &Path, cfg: TailerConfig) -> Tailer {
    Tailer::new(cfg, dir.join("checkpoints")).expect("tailer")
}

/// Polls until nothing new arrives for `quiet` (or `limit` passes), committing everything.
pub fn drain_for(t: &mut Tailer, quiet: Duration, limit: Duration) -> Vec<LogLine> {
    let start = Instant::now();
    let mut last_new = Instant::now();
    let mut out = Vec::new();
    while start.elapsed() < limit {
        let p = t.poll(BUDGET);
        if p.lines.is_empty() && !p.more {
            if last_new.elapsed() >= quiet {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        } else if !p.lines.is_empty() {
            last_new = Instant::now();
        }
        t.commit(&p.positions());
        out.extend(p.lines);
    }
    out
}

pub fn drain(t: &mut Tailer) -> Vec<LogLine> {
    drain_for(t, Duration::from_millis(60), Duration::from_secs(30))
}

pub fn bodies(lines: &[LogLine]) -> Vec<String> {
    lines.iter().map(|l| l.body.clone()).collect()
}

pub fn append(path: &Path, text: &str) {
    if let Some(d) = path.parent() {
        fs::create_dir_all(d).unwrap();
    }
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// `line 000042 xxxx…` padded to `width` bytes without the newline.
pub fn numbered(n: u64, width: usize) -> String {
    let mut s = format!("line {n:08} ");
    while s.len() < width {
        s.push('x');
    }
    s
}

pub fn numbered_lines(range: std::ops::Range<u64>, width: usize) -> String {
    let mut s = String::new();
    for n in range {
        s.push_str(&numbered(n, width));
        s.push('\n');
    }
    s
}

/// The number in a `numbered` line.
pub fn number_of(body: &str) -> u64 {
    body[5..13]
        .parse()
        .unwrap_or_else(|_| panic!("not a numbered line: {body:?}"))
}

/// Asserts that `lines` are exactly `0..n`, in order, and says where not.
pub fn assert_exactly_once_in_order(lines: &[LogLine], n: u64) {
    let got: Vec<u64> = lines.iter().map(|l| number_of(&l.body)).collect();
    if got.len() as u64 == n && got.iter().enumerate().all(|(i, &v)| i as u64 == v) {
        return;
    }
    let mut seen = std::collections::BTreeMap::new();
    for &v in &got {
        *seen.entry(v).or_insert(0) += 1;
    }
    let missing: Vec<u64> = (0..n).filter(|v| !seen.contains_key(v)).take(20).collect();
    let dups: Vec<u64> = seen
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(v, _)| *v)
        .take(20)
        .collect();
    let disorder = got.windows(2).position(|w| w[1] <= w[0]);
    panic!(
        "got {} lines for {n}: missing {missing:?}, duplicated {dups:?}, first disorder at index {disorder:?} ({:?})",
        got.len(),
        disorder.map(|i| &got[i.saturating_sub(2)..(i + 3).min(got.len())])
    );
}

pub fn create(path: &Path) -> File {
    if let Some(d) = path.parent() {
        fs::create_dir_all(d).unwrap();
    }
    File::create(path).unwrap()
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}
