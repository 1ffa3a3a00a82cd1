//! Process counts by state from `/proc/[pid]/stat`, scheduler counters from `/proc/stat`.
//!
//! The scan is bounded by `max_processes`: past it the state counts cover the first
//! processes only (flagged in the payload), while the total still counts every pid
//! directory, which costs no file read.

use std::fs;
use std::path::Path;

use serde::Serialize;

use super::cpu::{LoadAvg, Stat};
use crate::read::{read_small, under};

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessInfo {
    pub process_count: Option<u64>,
    /// State R.
    pub process_running: Option<u64>,
    /// States S and I (idle kernel threads).
    pub process_sleeping: Option<u64>,
    /// States T and t.
    pub process_stopped: Option<u64>,
    pub process_zombie: Option<u64>,
    /// State D (uninterruptible, usually waiting for I/O).
    pub process_blocked: Option<u64>,
    /// True when there were more processes than the scan bound.
    pub process_scan_truncated: bool,
    /// Threads (kernel scheduling entities) that exist.
    pub thread_count: Option<u64>,
    /// Since boot.
    pub context_switches: Option<u64>,
    pub interrupts: Option<u64>,
    pub soft_interrupts: Option<u64>,
}

pub fn collect(
    root: &Path,
    max_processes: usize,
    stat: &Stat,
    load: Option<&LoadAvg>,
) -> ProcessInfo {
    let mut p = ProcessInfo {
        context_switches: stat.ctxt,
        interrupts: stat.intr,
        soft_interrupts: stat.softirq,
        thread_count: load.and_then(|l| l.threads),
        ..Default::default()
    };
    let Ok(rd) = fs::read_dir(under(root, "/proc")) else {
        return p;
    };
    let (mut count, mut scanned) = (0u64, 0usize);
    let (mut r, mut s, mut t, mut z, mut d) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut threads = 0u64;
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        count += 1;
        if scanned >= max_processes {
            p.process_scan_truncated = true;
            continue;
        }
        scanned += 1;
        // The process may have exited since readdir: skip it.
        let Some(text) = read_small(&e.path().join("stat")) else {
            continue;
        };
        // The command name may contain spaces and parentheses; the state follows the last ')'.
        let Some(after) = text.rfind(')').map(|i| &text[i + 1..]) else {
            continue;
        };
        let mut f = after.split_whitespace();
        match f.next() {
            Some("R") => r += 1,
            Some("S") | Some("I") => s += 1,
            Some("T") | Some("t") => t += 1,
            Some("Z") => z += 1,
            Some("D") => d += 1,
            _ => {}
        }
        // num_threads is field 20; `after` starts at field 3.
        threads += f.nth(16).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    }
    p.process_count = Some(count);
    p.process_running = Some(r);
    p.process_sleeping = Some(s);
    p.process_stopped = Some(t);
    p.process_zombie = Some(z);
    p.process_blocked = Some(d);
    if p.thread_count.is_none() && !p.process_scan_truncated {
        p.thread_count = Some(threads);
    }
    p
}
