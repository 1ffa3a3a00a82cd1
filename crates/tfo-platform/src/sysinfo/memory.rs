//! Memory and swap from `/proc/meminfo`, swap traffic from `/proc/vmstat`.

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;

use super::pct;
use crate::read::{read_small, under};

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryInfo {
    /// Bytes, like every size here.
    pub memory_total: Option<u64>,
    /// Total minus available: what applications hold and the kernel cannot reclaim.
    pub memory_used: Option<u64>,
    pub memory_available: Option<u64>,
    pub memory_free: Option<u64>,
    /// Used share of total, percent.
    pub memory_usage: Option<f64>,
    pub memory_cached: Option<u64>,
    pub memory_buffers: Option<u64>,
    pub memory_active: Option<u64>,
    pub memory_inactive: Option<u64>,
    /// Linux has no "wired" memory; the closest is `Unevictable` (mlocked and ramfs
    /// pages the kernel cannot page out).
    pub memory_wired: Option<u64>,
    pub memory_slab: Option<u64>,
    pub swap_total: Option<u64>,
    pub swap_used: Option<u64>,
    pub swap_free: Option<u64>,
    pub swap_usage: Option<f64>,
    /// Bytes swapped in since boot.
    pub swap_in: Option<u64>,
    /// Bytes swapped out since boot.
    pub swap_out: Option<u64>,
}

pub fn parse_meminfo(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, rest) = l.split_once(':')?;
            let mut it = rest.split_whitespace();
            let n: u64 = it.next()?.parse().ok()?;
            let bytes = match it.next() {
                Some("kB") => n.saturating_mul(1024),
                _ => n,
            };
            Some((k.trim().to_string(), bytes))
        })
        .collect()
}

pub fn collect(root: &Path) -> MemoryInfo {
    let m = parse_meminfo(&read_small(&under(root, "/proc/meminfo")).unwrap_or_default());
    let g = |k: &str| m.get(k).copied();
    let total = g("MemTotal");
    let free = g("MemFree");
    // Kernels before 3.14 lack MemAvailable; free + buffers + page cache approximates it.
    let available = g("MemAvailable").or_else(|| {
        Some(
            free?
                .saturating_add(g("Buffers").unwrap_or(0))
                .saturating_add(g("Cached").unwrap_or(0)),
        )
    });
    let used = match (total, available) {
        (Some(t), Some(a)) => Some(t.saturating_sub(a)),
        _ => None,
    };
    let swap_total = g("SwapTotal");
    let swap_free = g("SwapFree");
    let swap_used = match (swap_total, swap_free) {
        (Some(t), Some(f)) => Some(t.saturating_sub(f)),
        _ => None,
    };
    let vm = read_small(&under(root, "/proc/vmstat")).unwrap_or_default();
    let vmv = |k: &str| {
        vm.lines().find_map(|l| {
            let (key, v) = l.split_once(' ')?;
            (key == k).then(|| v.trim().parse::<u64>().ok()).flatten()
        })
    };
    let page = page_size();
    MemoryInfo {
        memory_total: total,
        memory_used: used,
        memory_available: available,
        memory_free: free,
        memory_usage: used.zip(total).and_then(|(u, t)| pct(u, t)),
        memory_cached: g("Cached"),
        memory_buffers: g("Buffers"),
        memory_active: g("Active"),
        memory_inactive: g("Inactive"),
        memory_wired: g("Unevictable"),
        memory_slab: g("Slab"),
        swap_total,
        swap_used,
        swap_free,
        // No swap configured: 0 % used, not unknown.
        swap_usage: match swap_total {
            Some(0) => Some(0.0),
            Some(t) => swap_used.and_then(|u| pct(u, t)),
            None => None,
        },
        swap_in: vmv("pswpin").map(|p| p.saturating_mul(page)),
        swap_out: vmv("pswpout").map(|p| p.saturating_mul(page)),
    }
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as u64 } else { 4096 }
}
