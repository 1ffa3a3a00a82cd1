//! Helpers shared by the integration tests: temporary fixture copies, a deterministic fake
//! statvfs, and metric lookups.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::metrics::v1::{Metric, NumberDataPoint, metric, number_data_point};
use tfo_collectors::system::{FsStats, StatFs};
use tfo_collectors::{CollectReport, HostPaths, SystemCollector, SystemOptions};

pub const T0: u64 = 1_800_000_000_000_000_000;
pub const STEP: u64 = 15_000_000_000;

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A private copy of a fixture tree, removed on drop, so a test can rewrite files in it.
pub struct TempTree {
    pub root: PathBuf,
}

impl TempTree {
    pub fn copy_of(fixture_name: &str, tag: &str) -> TempTree {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let root = std::env::temp_dir().join(format!(
            "tfo-collectors-{}-{}-{}-{}",
            std::process::id(),
            fixture_name,
            tag,
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&root);
        copy_dir(&fixture(fixture_name), &root).expect("copy fixture");
        TempTree { root }
    }

    pub fn write(&self, rel: &str, content: &[u8]) {
        std::fs::write(self.root.join(rel), content).expect("write fixture file");
    }

    pub fn copy_in(&self, from_rel: &str, to_rel: &str) {
        std::fs::copy(self.root.join(from_rel), self.root.join(to_rel)).expect("copy fixture file");
    }
}

impl Drop for TempTree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn copy_dir(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let dest = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &dest)?;
        } else {
            std::fs::copy(e.path(), &dest)?;
        }
    }
    Ok(())
}

/// statvfs for fixture trees: numbers derived from the host mount point (the path minus
/// the fixture root), so they are the same wherever the tree lives.
pub struct FakeStatFs {
    pub root: PathBuf,
}

fn fnv1a(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf29ce484222325u64, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x100000001b3)
    })
}

impl StatFs for FakeStatFs {
    fn statfs(&self, path: &Path) -> io::Result<FsStats> {
        let rel = path.strip_prefix(&self.root).map_err(|_| {
            io::Error::other(format!("{} is outside the fixture root", path.display()))
        })?;
        let b = rel.as_os_str().as_bytes();
        let h = fnv1a(b);
        let blocks = 1_000_000 + h % 1_000_000;
        let blocks_free = blocks / 3 + h % 1000;
        // A filesystem without inode counts (like vfat) for the read-only "tab" mount.
        let files = if b.windows(3).any(|w| w == b"tab") {
            0
        } else {
            65536 + h % 4096
        };
        Ok(FsStats {
            fragment_size: 4096,
            blocks,
            blocks_free,
            blocks_available: blocks_free.saturating_sub(5000),
            files,
            files_free: files / 2,
        })
    }
}

pub fn collector(root: &Path, opts: SystemOptions) -> SystemCollector {
    SystemCollector::new(HostPaths::from_root(root), opts)
        .with_statfs(std::sync::Arc::new(FakeStatFs {
            root: root.to_path_buf(),
        }))
        .with_user_hz(100)
}

pub fn points(m: &Metric) -> &[NumberDataPoint] {
    match &m.data {
        Some(metric::Data::Gauge(g)) => &g.data_points,
        Some(metric::Data::Sum(s)) => &s.data_points,
        _ => &[],
    }
}

pub fn find<'a>(ms: &'a [Metric], name: &str) -> Option<&'a Metric> {
    ms.iter().find(|m| m.name == name)
}

pub fn names(ms: &[Metric]) -> BTreeSet<String> {
    ms.iter().map(|m| m.name.clone()).collect()
}

pub fn value(p: &NumberDataPoint) -> f64 {
    match p.value {
        Some(number_data_point::Value::AsInt(i)) => i as f64,
        Some(number_data_point::Value::AsDouble(d)) => d,
        None => f64::NAN,
    }
}

pub fn attr<'a>(p: &'a NumberDataPoint, key: &str) -> Option<&'a str> {
    p.attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        }
    })
}

/// The report's errors, one per line, with the temporary root replaced by `<root>`.
pub fn render_errors(report: &CollectReport, root: &Path) -> String {
    let root = root.display().to_string();
    let mut lines: Vec<String> = report
        .errors
        .iter()
        .map(|e| format!("# error: {}", e.to_string().replace(&root, "<root>")))
        .collect();
    lines.sort();
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// Compares with `tests/golden/<name>`, or rewrites it when UPDATE_GOLDEN=1.
pub fn check_golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    if expected != actual {
        let diff: Vec<String> = expected
            .lines()
            .filter(|l| !actual.lines().any(|a| a == *l))
            .map(|l| format!("- {l}"))
            .chain(
                actual
                    .lines()
                    .filter(|l| !expected.lines().any(|e| e == *l))
                    .map(|l| format!("+ {l}")),
            )
            .take(40)
            .collect();
        panic!(
            "{} differs from the collected output (UPDATE_GOLDEN=1 to accept):\n{}",
            path.display(),
            diff.join("\n")
        );
    }
}
