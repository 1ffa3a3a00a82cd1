//! Files re-read every cycle through a descriptor kept open between cycles.
//!
//! Opening a /proc or /sys file costs a path walk (and, through /sys/class symlinks, a
//! few), a `struct file` and a seq_file buffer; closing it frees them again. A kept
//! descriptor is re-read with `pread(fd, .., 0)` instead: procfs seq_files, /proc/sys
//! handlers and sysfs (kernfs) attributes regenerate their content on every read at
//! offset 0 (the `kept_descriptor_sees_fresh_content` test checks it on this kernel).
//!
//! Staleness: a kept descriptor is dropped and the path opened afresh, in the same read,
//! whenever reading it fails with anything but an attribute's own answer (EINVAL, ENODATA:
//! "no value right now", which a fresh open would get too). That covers the ways a kept
//! file goes stale: a removed sysfs device answers ENODEV (also when a new device took
//! its name, whose attribute the fresh open then reads), a removed /proc entry (module
//! unload) EIO, a removed /proc/sys table ENOENT. On any other filesystem (the fixture
//! trees of the tests) a file can be deleted or replaced by rename while the descriptor
//! still reads the old inode, so there the link count is checked (`fstat`) before each
//! read and a descriptor whose file has no name left is reopened; content rewritten in
//! place is seen as is.
//!
//! Directories are listed the same way ([`Kept::list_dir`]: rewind, getdents64), a fresh
//! listing every time; an empty listing from a kept descriptor (what a removed kernfs
//! directory gives) is confirmed by a fresh open. Paths found missing may be looked up
//! again only every [`RECHECK`]th read (see there).
//!
//! Bound: one collector keeps at most [`MAX_KEPT_FDS`] descriptors (or half the soft
//! RLIMIT_NOFILE if that is lower); past it files are read with open/read/close as
//! before. Each kept descriptor of a seq_file also pins its kernel
//! buffer (a page, more for big files): at most a few MiB of kernel memory in all.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::CollectError;
use crate::parse::{MAX_FILE_BYTES, parse_error};

/// Most descriptors one collector keeps open across cycles.
pub const MAX_KEPT_FDS: usize = 512;

/// Largest one-value file read ([`Kept::read_attr`]): sysfs prints an attribute into one
/// page, and the /proc/sys values read are a few bytes.
pub(crate) const MAX_ATTR: usize = 4096;

/// The count of descriptors one collector keeps, shared by all its [`Kept`] files.
#[derive(Debug, Clone)]
pub(crate) struct FdBudget {
    open: Arc<AtomicUsize>,
    max: usize,
}

/// One unit of [`FdBudget`], returned when the descriptor it goes with is closed.
#[derive(Debug)]
pub(crate) struct Permit(Arc<AtomicUsize>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl FdBudget {
    /// [`MAX_KEPT_FDS`], or half the soft RLIMIT_NOFILE when that is lower, so kept files
    /// never starve the rest of the process of descriptors.
    pub(crate) fn for_process() -> FdBudget {
        // SAFETY: rlimit is plain data; getrlimit only writes it.
        let mut rl: libc::rlimit = unsafe { std::mem::zeroed() };
        // SAFETY: a valid resource id and a valid, writable rlimit.
        let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } == 0 {
            usize::try_from(rl.rlim_cur).unwrap_or(usize::MAX)
        } else {
            0
        };
        FdBudget::with_max(MAX_KEPT_FDS.min(soft / 2))
    }

    pub(crate) fn with_max(max: usize) -> FdBudget {
        FdBudget {
            open: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    /// Descriptors kept right now.
    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    pub(crate) fn acquire(&self) -> Option<Permit> {
        let mut n = self.open.load(Ordering::Relaxed);
        loop {
            if n >= self.max {
                return None;
            }
            match self
                .open
                .compare_exchange(n, n + 1, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Some(Permit(Arc::clone(&self.open))),
                Err(now) => n = now,
            }
        }
    }
}

#[derive(Debug)]
struct Held {
    file: File,
    /// Not procfs or sysfs: check that the file still has a name before each read.
    check_links: bool,
    _permit: Permit,
}

/// One file read every cycle, its descriptor kept open when the budget allows. One
/// `Kept` is for one path.
#[derive(Debug, Default)]
pub(crate) struct Kept {
    held: Option<Held>,
    /// Whether a missing path is looked up again only every [`RECHECK`]th read.
    recheck_missing: bool,
    /// Reads left that answer "not found" without looking the path up again.
    missing: u8,
    /// Empty listings of the kept descriptor left to trust without a fresh open.
    empty_trust: u8,
}

/// A path found missing is looked up again on every [`RECHECK`]th read only (for a
/// [`Kept::recheck_missing`]: the fixed /proc files and the /sys class directories),
/// and an empty directory confirmed by a fresh open as often: kernel features (a
/// module's /proc file, /sys/class/hwmon) rarely appear at run time, and a failed lookup
/// costs a path walk every cycle (/proc/schedstat on kernels without schedstats, hwmon
/// on VMs). So such a file or directory that appears later is read at most this many
/// cycles on. Per-device attributes and directories are looked up every time: a device
/// may come back at once.
pub(crate) const RECHECK: u8 = 8;

/// Whether a read was made on a freshly opened descriptor.
struct Fresh(bool);

/// Errors that are the attribute's answer rather than a sign of a stale descriptor.
fn is_answer(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENODATA))
}

/// procfs or sysfs, whose files cannot be renamed over or unlinked while kept.
fn is_kernel_fs(file: &File) -> bool {
    // SAFETY: statfs is plain data; fstatfs only writes it.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid open descriptor and a valid, writable statfs.
    if unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) } != 0 {
        return false;
    }
    st.f_type == libc::PROC_SUPER_MAGIC || st.f_type == libc::SYSFS_MAGIC
}

/// Whether the file still has a name (false only when fstat says 0 links).
fn has_name(file: &File) -> bool {
    // SAFETY: stat is plain data; fstat only writes it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid open descriptor and a valid, writable stat.
    unsafe { libc::fstat(file.as_raw_fd(), &mut st) != 0 || st.st_nlink > 0 }
}

/// `pread(2)` into the spare capacity of `buf`, retried on EINTR; returns the bytes read.
pub(crate) fn pread_spare(
    file: &File,
    buf: &mut Vec<u8>,
    want: usize,
    offset: u64,
) -> io::Result<usize> {
    buf.reserve(want);
    let len = buf.len();
    let want = want.min(buf.capacity() - len);
    let offset = libc::off_t::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
    loop {
        // SAFETY: the destination is the vector's spare capacity, `want` bytes of it (at
        // most capacity - len), which pread only writes; the descriptor is open.
        let n = unsafe {
            libc::pread(
                file.as_raw_fd(),
                buf.as_mut_ptr().add(len).cast(),
                want,
                offset,
            )
        };
        if n >= 0 {
            let n = n as usize; // n <= want: non-negative and bounded
            // SAFETY: pread initialised the first n bytes after len, n <= want.
            unsafe { buf.set_len(len + n) };
            return Ok(n);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Reads the whole file from offset 0 into `buf` (appending), up to `limit` + 1 bytes.
fn pread_all(file: &File, buf: &mut Vec<u8>, limit: usize) -> io::Result<()> {
    let mut off = 0u64;
    loop {
        // A seq_file read returns at most its buffer (a page, or one record if bigger),
        // so ask for the spare capacity, at least a page; grow geometrically.
        let spare = buf.capacity() - buf.len();
        let want = if spare >= 4096 {
            spare
        } else {
            buf.capacity().max(4096)
        };
        let want = want.min((limit + 1).saturating_sub(buf.len()));
        if want == 0 {
            return Ok(());
        }
        let n = pread_spare(file, buf, want, off)?;
        if n == 0 {
            return Ok(());
        }
        off += n as u64;
    }
}

/// Rewinds a directory descriptor and appends all its `linux_dirent64` records to `buf`.
fn getdents_all(dir: &File, buf: &mut Vec<u8>) -> io::Result<()> {
    // SAFETY: lseek on an open descriptor has no memory effects.
    if unsafe { libc::lseek(dir.as_raw_fd(), 0, libc::SEEK_SET) } < 0 {
        return Err(io::Error::last_os_error());
    }
    loop {
        buf.reserve(8192);
        let len = buf.len();
        let spare = buf.capacity() - len;
        // SAFETY: getdents64 writes at most `spare` bytes into the vector's spare
        // capacity; the descriptor is open.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                dir.as_raw_fd(),
                buf.as_mut_ptr().add(len),
                spare,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Ok(());
        }
        // SAFETY: the kernel initialised the first n <= spare bytes after len.
        unsafe { buf.set_len(len + n as usize) };
        if buf.len() > MAX_FILE_BYTES as usize {
            return Err(io::Error::other("directory listing too large"));
        }
    }
}

/// The (inode, name) of each record of a [`Kept::list_dir`] listing, without `.` and
/// `..`. A truncated or malformed record ends the iteration.
pub(crate) fn dirents(buf: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    let mut rest = buf;
    std::iter::from_fn(move || {
        loop {
            // struct linux_dirent64 { u64 d_ino; i64 d_off; u16 d_reclen; u8 d_type;
            // char d_name[]; } with d_name NUL-terminated within d_reclen.
            let ino = u64::from_ne_bytes(rest.get(0..8)?.try_into().ok()?);
            let reclen = usize::from(u16::from_ne_bytes(rest.get(16..18)?.try_into().ok()?));
            let rec = rest.get(..reclen).filter(|_| reclen > 19)?;
            rest = &rest[reclen..];
            let name = &rec[19..];
            let name = &name[..name.iter().position(|&b| b == 0)?];
            if name != b"." && name != b".." {
                return Some((ino, name));
            }
        }
    })
}

impl Kept {
    /// A `Kept` that, once its path is found missing, looks it up again only every
    /// [`RECHECK`]th read.
    pub(crate) fn recheck_missing() -> Kept {
        Kept {
            recheck_missing: true,
            ..Kept::default()
        }
    }

    /// Runs `read` on the kept descriptor, or on a fresh one (then kept if `budget`
    /// allows) when there is none or the kept one turned out stale. `read` returns
    /// whether its result is conclusive; an inconclusive one from a kept descriptor (an
    /// empty listing: a removed sysfs directory lists nothing) is retried on a fresh one.
    fn with(
        &mut self,
        path: &Path,
        budget: &FdBudget,
        dir: bool,
        mut read: impl FnMut(&File) -> io::Result<bool>,
    ) -> io::Result<Fresh> {
        if let Some(h) = &self.held {
            if !h.check_links || has_name(&h.file) {
                match read(&h.file) {
                    Ok(true) => return Ok(Fresh(false)),
                    Err(e) if is_answer(&e) => return Err(e),
                    Ok(false) | Err(_) => {}
                }
            }
            self.held = None;
        }
        if self.missing > 0 {
            self.missing -= 1;
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        let recheck = self.recheck_missing;
        let opened = if dir {
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY)
                .open(path)
        } else {
            File::open(path)
        };
        let file = opened.inspect_err(|e| {
            if recheck && e.kind() == io::ErrorKind::NotFound {
                self.missing = RECHECK - 1;
            }
        })?;
        let r = read(&file).map(|_| Fresh(true));
        if (r.is_ok() || r.as_ref().is_err_and(is_answer))
            && let Some(permit) = budget.acquire()
        {
            self.held = Some(Held {
                check_links: !is_kernel_fs(&file),
                file,
                _permit: permit,
            });
        }
        r
    }

    /// Lists the directory `path` into `buf` (cleared first) as raw `linux_dirent64`
    /// records, read with getdents64(2) from offset 0 of a kept directory descriptor
    /// (sysfs and procfs list their current children after a rewind). Iterate them with
    /// [`dirents`]. Unlike `std::fs::read_dir` this allocates nothing once `buf` is warm
    /// (glibc's opendir allocates a 32 KiB buffer per listing).
    ///
    /// An empty listing from a kept descriptor is what a removed sysfs directory gives,
    /// so it is confirmed by a fresh open: at once if the last listing was not empty,
    /// else every [`RECHECK`]th time (an empty class directory on a VM).
    pub(crate) fn list_dir(
        &mut self,
        path: &Path,
        buf: &mut Vec<u8>,
        budget: &FdBudget,
    ) -> io::Result<()> {
        let trust_empty = self.empty_trust > 0;
        let mut empty = false;
        let r = self.with(path, budget, true, |f| {
            buf.clear();
            getdents_all(f, buf)?;
            empty = dirents(buf).next().is_none();
            Ok(!empty || trust_empty)
        });
        match r {
            Ok(Fresh(fresh)) => {
                self.empty_trust = match (empty, fresh) {
                    (false, _) => 0,
                    (true, true) => RECHECK - 1,
                    (true, false) => self.empty_trust.saturating_sub(1),
                };
                Ok(())
            }
            Err(e) => {
                buf.clear();
                Err(e)
            }
        }
    }

    /// Reads the whole file into `buf` (cleared first), refusing files over
    /// [`MAX_FILE_BYTES`]: [`crate::parse::read_file`] through a kept descriptor.
    pub(crate) fn read_all(
        &mut self,
        path: &Path,
        buf: &mut Vec<u8>,
        budget: &FdBudget,
    ) -> Result<(), CollectError> {
        let limit = MAX_FILE_BYTES as usize;
        let r = self
            .with(path, budget, false, |f| {
                buf.clear();
                pread_all(f, buf, limit).map(|()| true)
            })
            .map(drop);
        if let Err(source) = r {
            buf.clear();
            return Err(CollectError::Io {
                path: path.display().to_string(),
                source,
            });
        }
        if buf.len() > limit {
            buf.clear();
            return Err(parse_error(
                path,
                format!("larger than {MAX_FILE_BYTES} bytes; not parsed"),
            ));
        }
        Ok(())
    }

    /// Reads a one-value file (a sysfs attribute, a /proc/sys value) into `buf` (cleared
    /// first) with a single read of at most [`MAX_ATTR`] bytes: sysfs returns an attribute
    /// whole in one read, and /proc/sys handlers only answer a read at offset 0.
    pub(crate) fn read_attr(
        &mut self,
        path: &Path,
        buf: &mut Vec<u8>,
        budget: &FdBudget,
    ) -> io::Result<()> {
        self.with(path, budget, false, |f| {
            buf.clear();
            pread_spare(f, buf, MAX_ATTR, 0).map(|_| true)
        })
        .map(drop)
        .inspect_err(|_| buf.clear())
    }

    /// True when this is a kept descriptor of a procfs mount table (`/proc/<pid>/mounts`)
    /// and the mount namespace has not changed since the last check: poll(2) on a mounts
    /// file reports POLLPRI (and POLLERR) once per change. False when unsure (no kept
    /// descriptor, a plain file, a poll error), so the caller reads the file.
    pub(crate) fn mounts_unchanged(&self) -> bool {
        let Some(h) = &self.held else { return false };
        if h.check_links {
            return false;
        }
        let mut p = libc::pollfd {
            fd: h.file.as_raw_fd(),
            events: libc::POLLPRI,
            revents: 0,
        };
        // SAFETY: one valid pollfd; a zero timeout never blocks.
        let n = unsafe { libc::poll(&mut p, 1, 0) };
        n >= 0 && p.revents & (libc::POLLPRI | libc::POLLERR | libc::POLLNVAL) == 0
    }

    /// Whether a descriptor is kept.
    pub(crate) fn is_kept(&self) -> bool {
        self.held.is_some()
    }

    /// Whether this has state worth keeping: a descriptor, or a missing path's recheck
    /// countdown.
    pub(crate) fn is_worth_keeping(&self) -> bool {
        self.held.is_some() || self.missing > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("tfo-kept-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn kept_descriptor_sees_fresh_content() {
        // procfs: /proc/uptime changes every 10 ms; a kept descriptor must see it move.
        let budget = FdBudget::with_max(8);
        let (mut k, mut buf) = (Kept::default(), Vec::new());
        let p = Path::new("/proc/uptime");
        k.read_all(p, &mut buf, &budget).unwrap();
        assert!(k.is_kept());
        let first = buf.clone();
        std::thread::sleep(std::time::Duration::from_millis(50));
        k.read_all(p, &mut buf, &budget).unwrap();
        assert!(k.is_kept(), "the same descriptor was re-read");
        assert_ne!(first, buf, "pread at 0 regenerates /proc/uptime");
        assert!(buf.ends_with(b"\n"));

        // A multi-page, multi-record seq_file (a read returns at most a page of records)
        // is read whole, the same as a fresh read.
        let crypto = Path::new("/proc/crypto");
        if crypto.exists() {
            let mut k2 = Kept::default();
            for _ in 0..2 {
                k2.read_all(crypto, &mut buf, &budget).unwrap();
                assert_eq!(buf, std::fs::read(crypto).unwrap());
            }
            assert!(k2.is_kept() && buf.len() > 4096, "{}", buf.len());
        }

        // sysfs (kernfs): an attribute read through a kept descriptor twice.
        let sys = Path::new("/sys/kernel/mm/transparent_hugepage/enabled");
        let alt = Path::new("/sys/devices/system/cpu/online");
        let attr = if sys.exists() { sys } else { alt };
        if attr.exists() {
            let mut k3 = Kept::default();
            k3.read_attr(attr, &mut buf, &budget).unwrap();
            let a = buf.clone();
            k3.read_attr(attr, &mut buf, &budget).unwrap();
            assert!(k3.is_kept());
            assert_eq!(a, buf);
            assert_eq!(a, std::fs::read(attr).unwrap());
        }
        // /proc/sys: a handler that answers only at offset 0.
        let mut k4 = Kept::default();
        for _ in 0..3 {
            k4.read_attr(Path::new("/proc/sys/kernel/pid_max"), &mut buf, &budget)
                .unwrap();
            assert_eq!(buf, std::fs::read("/proc/sys/kernel/pid_max").unwrap());
        }
        assert!(k4.is_kept());
        let n = budget.open();
        assert!(n >= 2, "{n}");
        drop((k, k4));
        assert_eq!(budget.open(), n - 2, "closing returns the budget");
    }

    /// In a new mount namespace of this thread: (unchanged before a mount, unchanged
    /// after it, unchanged after reading again); `None` if it cannot be set up.
    fn mount_in_private_namespace() -> Option<(bool, bool, bool)> {
        // SAFETY: unshare and mount take valid flags and NUL-terminated strings; they
        // only affect this thread's (new, private) mount namespace.
        unsafe {
            if libc::unshare(libc::CLONE_FS | libc::CLONE_NEWNS) != 0 {
                return None;
            }
            let root = c"/";
            let flags = libc::MS_REC | libc::MS_PRIVATE;
            if libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                flags,
                std::ptr::null(),
            ) != 0
            {
                return None; // never mount anything that could propagate out
            }
        }
        let d = tmp("mountpoint");
        let target = std::ffi::CString::new(d.as_os_str().as_encoded_bytes()).ok()?;
        let budget = FdBudget::with_max(2);
        let (mut k, mut buf) = (Kept::default(), Vec::new());
        k.read_all(Path::new("/proc/thread-self/mounts"), &mut buf, &budget)
            .ok()?;
        let before = k.mounts_unchanged();
        // SAFETY: as above.
        let mounted = unsafe {
            libc::mount(
                c"none".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if mounted != 0 {
            return None;
        }
        let after = k.mounts_unchanged();
        k.read_all(Path::new("/proc/thread-self/mounts"), &mut buf, &budget)
            .ok()?;
        let reread = k.mounts_unchanged();
        // SAFETY: as above.
        unsafe { libc::umount(target.as_ptr()) };
        let _ = std::fs::remove_dir_all(&d);
        Some((before, after, reread))
    }

    #[test]
    fn a_kept_mount_table_reports_changes_only() {
        let budget = FdBudget::with_max(4);
        let (mut k, mut buf) = (Kept::default(), Vec::new());
        assert!(!k.mounts_unchanged(), "nothing read yet");
        k.read_all(Path::new("/proc/self/mounts"), &mut buf, &budget)
            .unwrap();
        assert!(k.mounts_unchanged() && k.mounts_unchanged());
        // A mount in a private namespace of a helper thread is seen by a descriptor of
        // that thread's table (skipped where unshare or mount is not permitted).
        let seen = std::thread::spawn(mount_in_private_namespace)
            .join()
            .unwrap();
        eprintln!("mount check: {seen:?}");
        if let Some((before, after, reread)) = seen {
            assert!(before, "no change before the mount");
            assert!(!after, "the mount is reported");
            assert!(reread, "reported once");
        }
        let d = tmp("mounts");
        let mut plain = Kept::default();
        std::fs::write(d.join("mounts"), b"none / tmpfs rw 0 0\n").unwrap();
        plain
            .read_all(&d.join("mounts"), &mut buf, &budget)
            .unwrap();
        assert!(
            !plain.mounts_unchanged(),
            "plain files are always read again"
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn plain_files_rewritten_replaced_or_removed() {
        let d = tmp("plain");
        let p = d.join("f");
        let budget = FdBudget::with_max(8);
        let (mut k, mut buf) = (Kept::default(), Vec::new());
        std::fs::write(&p, b"one\n").unwrap();
        k.read_all(&p, &mut buf, &budget).unwrap();
        assert_eq!(buf, b"one\n");
        std::fs::write(&p, b"two, longer\n").unwrap();
        k.read_all(&p, &mut buf, &budget).unwrap();
        assert_eq!(buf, b"two, longer\n", "rewritten in place");
        std::fs::write(d.join("g"), b"three\n").unwrap();
        std::fs::rename(d.join("g"), &p).unwrap();
        k.read_all(&p, &mut buf, &budget).unwrap();
        assert_eq!(buf, b"three\n", "replaced by rename: reopened");
        std::fs::remove_file(&p).unwrap();
        let e = k.read_all(&p, &mut buf, &budget).unwrap_err();
        assert!(crate::parse::is_not_found(&e), "{e}");
        assert!(!k.is_kept() && buf.is_empty());
        assert_eq!(budget.open(), 0);
        std::fs::write(&p, b"four\n").unwrap();
        k.read_attr(&p, &mut buf, &budget).unwrap();
        assert_eq!(buf, b"four\n", "reappeared, seen at once");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn directories_are_listed_fresh_through_a_kept_descriptor() {
        let d = tmp("dir");
        let budget = FdBudget::with_max(8);
        let (mut k, mut buf) = (Kept::default(), Vec::new());
        let names = |buf: &[u8]| {
            let mut v: Vec<String> = dirents(buf)
                .map(|(_, n)| String::from_utf8_lossy(n).into_owned())
                .collect();
            v.sort();
            v
        };
        k.list_dir(&d, &mut buf, &budget).unwrap();
        assert!(names(&buf).is_empty());
        for i in 0..300 {
            std::fs::write(d.join(format!("entry-with-a-longish-name-{i:03}")), b"").unwrap();
        }
        k.list_dir(&d, &mut buf, &budget).unwrap();
        assert!(k.is_kept());
        let listed = names(&buf);
        assert_eq!(listed.len(), 300, "several getdents calls");
        assert_eq!(listed[7], "entry-with-a-longish-name-007");
        std::fs::remove_file(d.join("entry-with-a-longish-name-007")).unwrap();
        std::fs::create_dir(d.join("sub")).unwrap();
        k.list_dir(&d, &mut buf, &budget).unwrap();
        let listed = names(&buf);
        assert_eq!(listed.len(), 300);
        assert!(!listed.contains(&"entry-with-a-longish-name-007".to_string()));
        assert!(listed.contains(&"sub".to_string()));
        let file = d.join("entry-with-a-longish-name-001");
        let e = Kept::default().list_dir(&file, &mut buf, &budget);
        assert_eq!(e.unwrap_err().raw_os_error(), Some(libc::ENOTDIR));
        // sysfs: the same names as read_dir.
        let mut k2 = Kept::default();
        let net = Path::new("/sys/class/net");
        if net.exists() {
            for _ in 0..2 {
                k2.list_dir(net, &mut buf, &budget).unwrap();
                let mut want: Vec<String> = std::fs::read_dir(net)
                    .unwrap()
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect();
                want.sort();
                assert_eq!(names(&buf), want);
            }
            assert!(k2.is_kept());
        }
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn missing_paths_and_empty_directories_are_rechecked_every_few_reads() {
        let d = tmp("recheck");
        let budget = FdBudget::with_max(8);
        let (mut k, mut buf) = (Kept::recheck_missing(), Vec::new());
        let p = d.join("appears");
        let mut found_after = None;
        for i in 0..3 * u32::from(RECHECK) {
            if i == 1 {
                std::fs::write(&p, b"1\n").unwrap();
            }
            match k.read_all(&p, &mut buf, &budget) {
                Ok(()) => {
                    found_after = Some(i);
                    break;
                }
                Err(e) => assert!(crate::parse::is_not_found(&e), "{e}"),
            }
        }
        assert_eq!(
            found_after,
            Some(u32::from(RECHECK)),
            "looked up again after RECHECK reads"
        );

        // An empty directory: listed through the kept descriptor, reopened every
        // RECHECK-th time; a directory that had entries and lists none is reopened at once.
        let dir = d.join("dir");
        std::fs::create_dir(&dir).unwrap();
        let mut kd = Kept::default();
        for _ in 0..2 * RECHECK {
            kd.list_dir(&dir, &mut buf, &budget).unwrap();
            assert!(dirents(&buf).next().is_none() && kd.is_kept());
        }
        std::fs::write(dir.join("x"), b"").unwrap();
        kd.list_dir(&dir, &mut buf, &budget).unwrap();
        assert_eq!(dirents(&buf).count(), 1);
        // Replace the directory by an empty one, then put an entry in the new one: the
        // kept descriptor (of the removed directory) lists nothing, so it is reopened.
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("y"), b"").unwrap();
        kd.list_dir(&dir, &mut buf, &budget).unwrap();
        let names: Vec<&[u8]> = dirents(&buf).map(|(_, n)| n).collect();
        assert_eq!(names, [&b"y"[..]]);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn budget_bounds_the_kept_descriptors() {
        let d = tmp("budget");
        let budget = FdBudget::with_max(2);
        let mut ks: Vec<Kept> = (0..4).map(|_| Kept::default()).collect();
        let mut buf = Vec::new();
        for (i, k) in ks.iter_mut().enumerate() {
            let p = d.join(i.to_string());
            std::fs::write(&p, format!("{i}\n")).unwrap();
            k.read_attr(&p, &mut buf, &budget).unwrap();
            assert_eq!(
                buf,
                format!("{i}\n").as_bytes(),
                "read with or without keeping"
            );
        }
        assert_eq!(ks.iter().filter(|k| k.is_kept()).count(), 2);
        assert_eq!(budget.open(), 2);
        ks.truncate(1);
        assert_eq!(budget.open(), 1);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn big_files_are_read_whole_and_oversized_ones_refused() {
        let d = tmp("big");
        let p = d.join("big");
        let content: Vec<u8> = (0..200_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        std::fs::write(&p, &content).unwrap();
        let budget = FdBudget::with_max(2);
        let (mut k, mut buf) = (Kept::default(), Vec::with_capacity(100));
        k.read_all(&p, &mut buf, &budget).unwrap();
        assert_eq!(buf, content);
        k.read_attr(&p, &mut buf, &budget).unwrap();
        assert_eq!(buf.len(), MAX_ATTR, "an attribute read is one page at most");
        let _ = std::fs::remove_dir_all(&d);
    }
}
