//! Disk capacity from `statvfs(3)` on local block-device filesystems listed in mountinfo,
//! and I/O counters from `/proc/diskstats` for whole physical disks.
//!
//! `statvfs` on a dead NFS server blocks indefinitely, so network and FUSE filesystems
//! are never queried; only filesystems backed by a `/dev/` device (plus ZFS and btrfs,
//! whose sources are pool names) are. Mounts of the same device are counted once.

use std::collections::HashSet;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use serde::Serialize;

use super::{pct, round2};
use crate::read::{LARGE, read_capped, read_small, under};

const NETWORK_FS: &[&str] = &[
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "ncpfs",
    "afs",
    "ceph",
    "glusterfs",
    "lustre",
    "9p",
    "sshfs",
    "davfs",
    "gfs2",
    "ocfs2",
    "beegfs",
    "gpfs",
    "virtiofs",
];

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Partition {
    pub device: String,
    pub mountpoint: String,
    pub fstype: String,
    pub read_only: bool,
    pub total: u64,
    pub used: u64,
    pub free: u64,
    pub usage: Option<f64>,
    pub inodes_total: u64,
    pub inodes_used: u64,
    pub inodes_free: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiskInfo {
    /// Bytes over all local filesystems.
    pub disk_total: Option<u64>,
    pub disk_used: Option<u64>,
    /// Available to unprivileged users (excludes root-reserved blocks, like `df`).
    pub disk_available: Option<u64>,
    /// `used / (used + available)`, percent, as `df` computes it.
    pub disk_usage: Option<f64>,
    pub disk_inodes: Option<u64>,
    pub disk_inodes_used: Option<u64>,
    /// Since boot, whole physical disks.
    pub disk_read_bytes: Option<u64>,
    pub disk_write_bytes: Option<u64>,
    pub disk_read_ops: Option<u64>,
    pub disk_write_ops: Option<u64>,
    /// Milliseconds spent doing I/O since boot, summed over disks.
    #[serde(rename = "diskIOTime")]
    pub disk_io_time: Option<u64>,
    /// Average milliseconds per completed read over the interval since the previous
    /// collection; `null` on the first one or when nothing was read.
    pub disk_latency_read: Option<f64>,
    pub disk_latency_write: Option<f64>,
    pub disk_partitions: Vec<Partition>,
}

/// Cumulative counters summed over whole disks.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct IoCounters {
    pub reads: u64,
    pub read_sectors: u64,
    pub read_ms: u64,
    pub writes: u64,
    pub write_sectors: u64,
    pub write_ms: u64,
    pub io_ms: u64,
}

pub fn io_counters(root: &Path) -> Option<IoCounters> {
    let text = read_small(&under(root, "/proc/diskstats"))?;
    let sys_block = under(root, "/sys/block");
    let have_sys = sys_block.is_dir();
    let mut c = IoCounters::default();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 14 {
            continue;
        }
        let name = f[2];
        let whole = if have_sys {
            // Partitions are not in /sys/block; dm-, md, loop and ram devices have no
            // `device` link and would count their underlying disks' I/O twice.
            !name.starts_with("sr") && sys_block.join(name).join("device").exists()
        } else {
            is_whole_disk_name(name)
        };
        if !whole {
            continue;
        }
        let n = |i: usize| f[i].parse::<u64>().unwrap_or(0);
        c.reads = c.reads.saturating_add(n(3));
        c.read_sectors = c.read_sectors.saturating_add(n(5));
        c.read_ms = c.read_ms.saturating_add(n(6));
        c.writes = c.writes.saturating_add(n(7));
        c.write_sectors = c.write_sectors.saturating_add(n(9));
        c.write_ms = c.write_ms.saturating_add(n(10));
        c.io_ms = c.io_ms.saturating_add(n(12));
    }
    Some(c)
}

/// Without `/sys/block`: physical disk names that are not partitions.
fn is_whole_disk_name(name: &str) -> bool {
    for p in ["loop", "ram", "zram", "dm-", "md", "sr", "fd", "nbd"] {
        if name.starts_with(p) {
            return false;
        }
    }
    let ends_digit = name.ends_with(|c: char| c.is_ascii_digit());
    if name.starts_with("nvme") || name.starts_with("mmcblk") {
        // nvme0n1 is a disk, nvme0n1p1 a partition.
        let stem = name.trim_end_matches(|c: char| c.is_ascii_digit());
        return !stem.ends_with('p');
    }
    !ends_digit
}

fn latency(ms_prev: u64, ms_cur: u64, ops_prev: u64, ops_cur: u64) -> Option<f64> {
    let ops = ops_cur.checked_sub(ops_prev)?;
    let ms = ms_cur.checked_sub(ms_prev)?;
    (ops > 0).then(|| round2(ms as f64 / ops as f64))
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let d = &b[i + 1..i + 4];
            if d.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = u32::from(d[0] - b'0') * 64
                    + u32::from(d[1] - b'0') * 8
                    + u32::from(d[2] - b'0');
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Debug, Clone, PartialEq)]
pub struct Mount {
    pub dev: String,
    pub mountpoint: String,
    pub fstype: String,
    pub source: String,
    pub read_only: bool,
}

pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let pf: Vec<&str> = pre.split(' ').collect();
            let qf: Vec<&str> = post.split(' ').collect();
            if pf.len() < 6 || qf.len() < 2 {
                return None;
            }
            Some(Mount {
                dev: pf[2].to_string(),
                mountpoint: unescape(pf[4]),
                read_only: pf[5].split(',').any(|o| o == "ro"),
                fstype: qf[0].to_string(),
                source: unescape(qf[1]),
            })
        })
        .collect()
}

fn is_local_disk_fs(m: &Mount) -> bool {
    let fs = m.fstype.as_str();
    if NETWORK_FS.contains(&fs) || fs.starts_with("fuse") || fs.starts_with("nfs") {
        return false;
    }
    m.source.starts_with("/dev/") || fs == "zfs" || fs == "btrfs"
}

fn statvfs(path: &Path) -> Option<libc::statvfs> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c` is NUL-terminated and `st` points to writable statvfs storage.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    // SAFETY: a zero return means the kernel filled the struct.
    (rc == 0).then(|| unsafe { st.assume_init() })
}

pub fn partitions(root: &Path, max: usize) -> Vec<Partition> {
    // PID 1's mount table is the host's when the agent runs with hostPID and the host
    // root mounted at `root`; our own is the fallback (and the same thing on a host).
    let text = read_capped(&under(root, "/proc/1/mountinfo"), LARGE)
        .filter(|t| !t.is_empty())
        .or_else(|| read_capped(&under(root, "/proc/self/mountinfo"), LARGE))
        .unwrap_or_default();
    let mut seen: HashSet<String> = HashSet::new();
    let mut out = Vec::new();
    for m in parse_mountinfo(&text) {
        if out.len() >= max {
            break;
        }
        if !is_local_disk_fs(&m) || seen.contains(&m.dev) {
            continue;
        }
        let Some(st) = statvfs(&under(root, &m.mountpoint)) else {
            continue;
        };
        seen.insert(m.dev.clone());
        // The statvfs field types are narrower on 32-bit targets.
        #[allow(clippy::unnecessary_cast)]
        let (frsize, blocks, bfree, bavail, files, ffree) = (
            st.f_frsize as u64,
            st.f_blocks as u64,
            st.f_bfree as u64,
            st.f_bavail as u64,
            st.f_files as u64,
            st.f_ffree as u64,
        );
        let total = blocks.saturating_mul(frsize);
        let free = bfree.saturating_mul(frsize);
        let avail = bavail.saturating_mul(frsize);
        let used = total.saturating_sub(free);
        let (inodes_total, inodes_free) = (files, ffree);
        out.push(Partition {
            device: m.source,
            mountpoint: m.mountpoint,
            fstype: m.fstype,
            read_only: m.read_only,
            total,
            used,
            free: avail,
            usage: pct(used, used.saturating_add(avail)),
            inodes_total,
            inodes_used: inodes_total.saturating_sub(inodes_free),
            inodes_free,
        });
    }
    out
}

pub fn build(
    parts: Vec<Partition>,
    prev: Option<&IoCounters>,
    cur: Option<&IoCounters>,
) -> DiskInfo {
    let have = !parts.is_empty();
    let sum = |f: fn(&Partition) -> u64| {
        have.then(|| parts.iter().map(f).fold(0u64, u64::saturating_add))
    };
    let total = sum(|p| p.total);
    let used = sum(|p| p.used);
    let avail = sum(|p| p.free);
    let inodes = sum(|p| p.inodes_total);
    let inodes_used = sum(|p| p.inodes_used);
    let (lr, lw) = match (prev, cur) {
        (Some(a), Some(b)) => (
            latency(a.read_ms, b.read_ms, a.reads, b.reads),
            latency(a.write_ms, b.write_ms, a.writes, b.writes),
        ),
        _ => (None, None),
    };
    DiskInfo {
        disk_total: total,
        disk_used: used,
        disk_available: avail,
        disk_usage: used
            .zip(avail)
            .and_then(|(u, a)| pct(u, u.saturating_add(a))),
        disk_inodes: inodes,
        disk_inodes_used: inodes_used,
        disk_read_bytes: cur.map(|c| c.read_sectors.saturating_mul(512)),
        disk_write_bytes: cur.map(|c| c.write_sectors.saturating_mul(512)),
        disk_read_ops: cur.map(|c| c.reads),
        disk_write_ops: cur.map(|c| c.writes),
        disk_io_time: cur.map(|c| c.io_ms),
        disk_latency_read: lr,
        disk_latency_write: lw,
        disk_partitions: parts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_escapes() {
        assert!(is_whole_disk_name("sda"));
        assert!(!is_whole_disk_name("sda1"));
        assert!(is_whole_disk_name("nvme0n1"));
        assert!(!is_whole_disk_name("nvme0n1p2"));
        assert!(is_whole_disk_name("mmcblk0"));
        assert!(!is_whole_disk_name("mmcblk0p1"));
        assert!(!is_whole_disk_name("loop3"));
        assert!(!is_whole_disk_name("dm-0"));
        assert_eq!(unescape(r"/mnt/my\040disk"), "/mnt/my disk");
        assert_eq!(unescape(r"/a\"), r"/a\");
    }

    #[test]
    fn mountinfo_filters_network_and_duplicates() {
        let t = "36 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n\
                 37 36 0:50 / /mnt/nfs rw - nfs4 srv:/export rw\n\
                 38 36 8:1 /var/lib/docker /var/lib/docker rw - ext4 /dev/sda1 rw\n\
                 39 36 0:60 / /run rw - tmpfs tmpfs rw\n\
                 40 36 0:70 / /mnt/s3 ro - fuse.s3fs /dev/fuse ro\n";
        let m = parse_mountinfo(t);
        assert_eq!(m.len(), 5);
        let local: Vec<&Mount> = m.iter().filter(|m| is_local_disk_fs(m)).collect();
        assert_eq!(local.len(), 2);
        assert_eq!(local[0].dev, local[1].dev);
        assert!(m[4].read_only);
    }
}
