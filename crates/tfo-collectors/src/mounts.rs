//! The mount table and a statvfs that cannot hang a cycle, shared by the system and node
//! filesystem collectors.
//!
//! * Mount lines are `device mountpoint fstype options dump pass`, with space, tab, newline
//!   and backslash in the first two fields written as octal escapes (`\040`).
//! * When a mount point appears more than once the last line wins: a later mount hides
//!   the earlier one, and statvfs sees the visible one.
//! * Which mounts are kept is the caller's choice (a `keep(mountpoint, fstype)` predicate);
//!   node_exporter's defaults are [`EXCLUDED_FS_TYPES`] and [`is_excluded_mountpoint`].
//! * statvfs on a network or FUSE filesystem can block forever when the server is gone.
//!   Those run on a helper thread and are waited for at most `remote_timeout` (1s); all
//!   helpers of a cycle run in parallel, so several dead servers still cost one timeout.
//!   A mount whose helper did not return is "stuck": it is reported and skipped on every
//!   later cycle until the helper returns, so at most one thread per mount is ever blocked.
//!   Local filesystems are statted inline.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::parse::{LineErrors, excerpt, fields, lines, lossy, unescape_octal};
use crate::{CollectError, CollectReport, HostPaths};

/// Filesystem types left out by default (node_exporter's default `fs-types-exclude`).
pub const EXCLUDED_FS_TYPES: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "erofs",
    "fusectl",
    "hugetlbfs",
    "iso9660",
    "mqueue",
    "nsfs",
    "overlay",
    "proc",
    "procfs",
    "pstore",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "sysfs",
    "tracefs",
];

/// Filesystem types whose statvfs may block on a server: network filesystems and FUSE.
pub fn is_remote_fs_type(fstype: &[u8]) -> bool {
    const REMOTE: &[&[u8]] = &[
        b"nfs",
        b"nfs4",
        b"cifs",
        b"smb3",
        b"smbfs",
        b"ncpfs",
        b"ceph",
        b"glusterfs",
        b"9p",
        b"afs",
        b"lustre",
        b"gpfs",
        b"fuse",
        b"fuseblk",
        b"sshfs",
        b"davfs",
    ];
    REMOTE.contains(&fstype) || fstype.starts_with(b"fuse.")
}

/// Mount points left out by default (node_exporter's default `mount-points-exclude`,
/// `^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)`).
pub fn is_excluded_mountpoint(mp: &[u8]) -> bool {
    // The directory itself and everything below it.
    for dir in [&b"/dev"[..], b"/proc", b"/sys"] {
        if let Some(rest) = mp.strip_prefix(dir)
            && (rest.is_empty() || rest[0] == b'/')
        {
            return true;
        }
    }
    // Only what is below the directory.
    for dir in [
        &b"/run/credentials/"[..],
        b"/var/lib/docker/",
        b"/var/lib/containers/storage/",
    ] {
        if let Some(rest) = mp.strip_prefix(dir)
            && !rest.is_empty()
        {
            return true;
        }
    }
    false
}

/// What statvfs(3) reports, in the units it reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FsStats {
    /// `f_frsize`: the unit of the block counts.
    pub fragment_size: u64,
    pub blocks: u64,
    pub blocks_free: u64,
    pub blocks_available: u64,
    pub files: u64,
    pub files_free: u64,
}

/// statvfs, behind a trait so tests can answer for fixture mount points (and hang).
pub trait StatFs: Send + Sync {
    fn statfs(&self, path: &Path) -> io::Result<FsStats>;
}

/// The real statvfs(3).
#[derive(Debug, Clone, Copy, Default)]
pub struct LibcStatFs;

impl StatFs for LibcStatFs {
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)] // widths differ per target
    fn statfs(&self, path: &Path) -> io::Result<FsStats> {
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
        // SAFETY: statvfs is plain data; all-zero is a valid value.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `c` is a NUL-terminated string and `st` a valid, writable statvfs.
        let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(FsStats {
            fragment_size: st.f_frsize as u64,
            blocks: st.f_blocks as u64,
            blocks_free: st.f_bfree as u64,
            blocks_available: st.f_bavail as u64,
            files: st.f_files as u64,
            files_free: st.f_ffree as u64,
        })
    }
}

/// One kept mount, its fields unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountInfo {
    pub device: String,
    pub mountpoint: String,
    pub fstype: String,
    pub read_only: bool,
}

/// Byte ranges of one mount line's fields within the file buffer.
#[derive(Debug, Clone, Copy)]
struct RawMount {
    device: (usize, usize),
    mountpoint: (usize, usize),
    fstype: (usize, usize),
    options: (usize, usize),
}

/// A mount whose statvfs helper has not returned.
#[derive(Debug)]
struct Stuck {
    mountpoint: PathBuf,
    done: Arc<AtomicBool>,
}

struct Pending {
    mount: MountInfo,
    path: PathBuf,
    done: Arc<AtomicBool>,
    answered: bool,
}

/// Parses the mount table and statvfs-es the kept mounts, keeping the stuck-mount state
/// and the scratch buffers across cycles.
pub(crate) struct MountScanner {
    statfs: Arc<dyn StatFs>,
    pub(crate) remote_timeout: Duration,
    entries: Vec<RawMount>,
    order: Vec<usize>,
    keep: Vec<bool>,
    scratch: Vec<u8>,
    stuck: Vec<Stuck>,
}

/// Sets the flag when the helper thread ends, even by a panic in a `StatFs` impl.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

fn span(base: &[u8], sub: &[u8]) -> (usize, usize) {
    let start = sub.as_ptr() as usize - base.as_ptr() as usize;
    (start, start + sub.len())
}

fn at(base: &[u8], (a, b): (usize, usize)) -> &[u8] {
    base.get(a..b).unwrap_or_default()
}

impl MountScanner {
    pub(crate) fn new(statfs: Arc<dyn StatFs>) -> Self {
        MountScanner {
            statfs,
            remote_timeout: Duration::from_secs(1),
            entries: Vec::new(),
            order: Vec::new(),
            keep: Vec::new(),
            scratch: Vec::new(),
            stuck: Vec::new(),
        }
    }

    pub(crate) fn set_statfs(&mut self, statfs: Arc<dyn StatFs>) {
        self.statfs = statfs;
    }

    /// Number of mounts whose statvfs helper is still blocked.
    pub(crate) fn stuck_count(&self) -> usize {
        self.stuck
            .iter()
            .filter(|s| !s.done.load(Ordering::Acquire))
            .count()
    }

    /// Parses `input` (a mounts file read from `path`), and for every mount that `keep`
    /// accepts (unescaped mount point, fstype) calls `sink` with its statvfs result, or
    /// `None` when statvfs failed, timed out or is still stuck (the error is in `report`).
    pub(crate) fn scan(
        &mut self,
        input: &[u8],
        path: &Path,
        host: &HostPaths,
        keep: &dyn Fn(&[u8], &[u8]) -> bool,
        report: &mut CollectReport,
        sink: &mut dyn FnMut(&MountInfo, Option<&FsStats>),
    ) {
        let mut errs = LineErrors::new(path);
        self.entries.clear();
        for (no, line) in lines(input).enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let mut f = fields(line);
            let (Some(device), Some(mountpoint), Some(fstype), Some(options)) =
                (f.next(), f.next(), f.next(), f.next())
            else {
                errs.add(no, || {
                    format!(
                        "expected `device mountpoint type options`: {}",
                        excerpt(line)
                    )
                });
                continue;
            };
            if !mountpoint.starts_with(b"/") {
                errs.add(no, || {
                    format!("mount point is not an absolute path: {}", excerpt(line))
                });
                continue;
            }
            self.entries.push(RawMount {
                device: span(input, device),
                mountpoint: span(input, mountpoint),
                fstype: span(input, fstype),
                options: span(input, options),
            });
        }
        errs.finish(report);

        // Keep the last line of each mount point. Escapes are canonical, so comparing the
        // raw bytes is comparing the paths.
        let entries = &self.entries;
        self.order.clear();
        self.order.extend(0..entries.len());
        self.order.sort_unstable_by(|&a, &b| {
            at(input, entries[a].mountpoint)
                .cmp(at(input, entries[b].mountpoint))
                .then(b.cmp(&a))
        });
        self.keep.clear();
        self.keep.resize(entries.len(), false);
        let mut last: Option<&[u8]> = None;
        for &i in &self.order {
            let mp = at(input, entries[i].mountpoint);
            if last != Some(mp) {
                self.keep[i] = true;
                last = Some(mp);
            }
        }

        self.stuck.retain(|s| !s.done.load(Ordering::Acquire));
        let mut pending: Vec<Pending> = Vec::new();
        let (tx, rx) = mpsc::channel::<(usize, io::Result<FsStats>)>();

        for (i, m) in self.entries.iter().enumerate() {
            if !self.keep[i] {
                continue;
            }
            let fstype = at(input, m.fstype);
            unescape_octal(at(input, m.mountpoint), &mut self.scratch);
            if !keep(&self.scratch, fstype) {
                continue;
            }
            let stat_path = host.rooted_os(OsStr::from_bytes(&self.scratch));
            let mountpoint = lossy(&self.scratch);
            unescape_octal(at(input, m.device), &mut self.scratch);
            let device = lossy(&self.scratch);
            unescape_octal(fstype, &mut self.scratch);
            let mount = MountInfo {
                device,
                mountpoint,
                fstype: lossy(&self.scratch),
                read_only: at(input, m.options)
                    .split(|&b| b == b',')
                    .any(|o| o == b"ro"),
            };

            if !is_remote_fs_type(fstype) {
                match self.statfs.statfs(&stat_path) {
                    Ok(st) => sink(&mount, Some(&st)),
                    Err(e) => {
                        report.errors.push(statfs_error(&stat_path, e));
                        sink(&mount, None);
                    }
                }
                continue;
            }
            if self.stuck.iter().any(|s| s.mountpoint == stat_path) {
                report.errors.push(statfs_error(
                    &stat_path,
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        "statvfs from an earlier cycle has not returned; mount skipped until it does",
                    ),
                ));
                sink(&mount, None);
                continue;
            }
            let done = Arc::new(AtomicBool::new(false));
            let guard = SetOnDrop(Arc::clone(&done));
            let statfs = Arc::clone(&self.statfs);
            let tx = tx.clone();
            let idx = pending.len();
            let p = stat_path.clone();
            let spawned = std::thread::Builder::new()
                .name("tfo-statvfs".to_string())
                .spawn(move || {
                    let _guard = guard;
                    let r = statfs.statfs(&p);
                    let _ = tx.send((idx, r));
                });
            match spawned {
                Ok(_) => pending.push(Pending {
                    mount,
                    path: stat_path,
                    done,
                    answered: false,
                }),
                Err(e) => {
                    report.errors.push(statfs_error(&stat_path, e));
                    sink(&mount, None);
                }
            }
        }
        drop(tx);

        if !pending.is_empty() {
            let deadline = Instant::now() + self.remote_timeout;
            let mut left = pending.len();
            while left > 0 {
                let Ok((idx, r)) =
                    rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
                else {
                    break;
                };
                let Some(p) = pending.get_mut(idx) else {
                    continue;
                };
                p.answered = true;
                left -= 1;
                match r {
                    Ok(st) => sink(&p.mount, Some(&st)),
                    Err(e) => {
                        report.errors.push(statfs_error(&p.path, e));
                        sink(&p.mount, None);
                    }
                }
            }
            for p in pending.into_iter().filter(|p| !p.answered) {
                report.errors.push(statfs_error(
                    &p.path,
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "statvfs did not return within {:?} ({} filesystem); mount skipped until it does",
                            self.remote_timeout, p.mount.fstype
                        ),
                    ),
                ));
                sink(&p.mount, None);
                self.stuck.push(Stuck {
                    mountpoint: p.path,
                    done: p.done,
                });
            }
        }
    }
}

fn statfs_error(path: &Path, source: io::Error) -> CollectError {
    CollectError::Io {
        path: format!("statvfs {}", path.display()),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountpoint_exclusion() {
        for mp in [
            "/dev",
            "/dev/shm",
            "/proc",
            "/proc/sys/fs/binfmt_misc",
            "/sys",
            "/sys/fs/cgroup",
            "/run/credentials/foo.service",
            "/var/lib/docker/overlay2/abc/merged",
            "/var/lib/containers/storage/overlay",
        ] {
            assert!(is_excluded_mountpoint(mp.as_bytes()), "{mp}");
        }
        for mp in [
            "/",
            "/device",
            "/procfs",
            "/system",
            "/run/credentials",
            "/run/credentials/",
            "/var/lib/docker",
            "/var/lib/containers/storage",
            "/home",
            "/run",
        ] {
            assert!(!is_excluded_mountpoint(mp.as_bytes()), "{mp}");
        }
    }

    #[test]
    fn remote_types() {
        for t in [
            "nfs",
            "nfs4",
            "cifs",
            "smb3",
            "fuse.sshfs",
            "ceph",
            "glusterfs",
            "fuse.lxcfs",
        ] {
            assert!(is_remote_fs_type(t.as_bytes()), "{t}");
        }
        for t in ["ext4", "xfs", "btrfs", "tmpfs", "vfat", "zfs", "nfsd"] {
            assert!(!is_remote_fs_type(t.as_bytes()), "{t}");
        }
    }

    #[test]
    fn libc_statfs_root() {
        let st = LibcStatFs.statfs(Path::new("/")).expect("statvfs /");
        assert!(st.fragment_size > 0 && st.blocks > 0);
        assert!(
            LibcStatFs
                .statfs(Path::new("/definitely/not/here"))
                .is_err()
        );
        assert!(LibcStatFs.statfs(Path::new("a\0b")).is_err());
    }
}
