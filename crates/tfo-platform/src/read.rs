//! Bounded reads of small kernel files. `/proc` and `/sys` files are read whole, but never
//! more than a cap, so a pathological file (or a fixture gone wrong) cannot stall or bloat a
//! heartbeat. Missing or unreadable files yield `None`: every field they feed is optional.

use std::fs::File;
use std::io::Read;
use std::path::Path;

/// Cap for ordinary single-value or small table files.
pub const SMALL: u64 = 256 * 1024;
/// Cap for tables that grow with the host (mountinfo on a busy Kubernetes node).
pub const LARGE: u64 = 4 * 1024 * 1024;

pub fn read_capped(path: &Path, cap: u64) -> Option<String> {
    let f = File::open(path).ok()?;
    let mut buf = Vec::new();
    f.take(cap).read_to_end(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf).into_owned())
}

pub fn read_small(path: &Path) -> Option<String> {
    read_capped(path, SMALL)
}

/// The file's content without surrounding whitespace; `None` when empty.
pub fn read_trim(path: &Path) -> Option<String> {
    let s = read_small(path)?;
    let t = s.trim();
    if t.is_empty() {
        None
    } else {
        Some(t.to_string())
    }
}

pub fn read_u64(path: &Path) -> Option<u64> {
    read_trim(path)?.parse().ok()
}

/// Joins an absolute path under `root` (`/host` + `/proc/stat` = `/host/proc/stat`).
pub fn under(root: &Path, abs: &str) -> std::path::PathBuf {
    root.join(abs.trim_start_matches('/'))
}
