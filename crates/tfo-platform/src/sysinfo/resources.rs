//! System-wide limits: file handles (`/proc/sys/fs/file-nr`) and entropy.

use std::path::Path;

use serde::Serialize;

use super::pct;
use crate::read::{read_trim, read_u64, under};

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceInfo {
    /// Allocated file handles system-wide.
    pub open_file_descriptors: Option<u64>,
    pub max_file_descriptors: Option<u64>,
    pub file_descriptors_usage: Option<f64>,
    /// Bits in the kernel's entropy pool (a constant 256 on kernels ≥ 5.18).
    pub entropy_available: Option<u64>,
}

pub fn collect(root: &Path) -> ResourceInfo {
    // "allocated  unused  max"; unused is always 0 on kernels >= 2.6.
    let nr: Vec<u64> = read_trim(&under(root, "/proc/sys/fs/file-nr"))
        .map(|s| {
            s.split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let open = match (nr.first(), nr.get(1)) {
        (Some(a), Some(u)) => Some(a.saturating_sub(*u)),
        (Some(a), None) => Some(*a),
        _ => None,
    };
    let max = nr
        .get(2)
        .copied()
        .or_else(|| read_u64(&under(root, "/proc/sys/fs/file-max")));
    ResourceInfo {
        open_file_descriptors: open,
        max_file_descriptors: max,
        file_descriptors_usage: open.zip(max).and_then(|(o, m)| pct(o, m)),
        entropy_available: read_u64(&under(root, "/proc/sys/kernel/random/entropy_avail")),
    }
}
