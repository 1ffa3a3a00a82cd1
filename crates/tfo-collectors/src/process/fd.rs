//! `/proc/<pid>/fd` (opt-in, `file_descriptors`): open file descriptors. Since Linux 6.2
//! `stat()` on the directory gives the count as its size, one syscall; older kernels
//! report 0 there, and the directory is listed instead (without allocating per entry).

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::table::{MetricDef, updown_i};

pub const METRICS: &[MetricDef] = &[updown_i(
    "process.unix.file_descriptor.count",
    "{file_descriptor}",
    &[
        "process.pid",
        "process.parent_pid",
        "process.executable.name",
        "process.owner",
    ],
    "File descriptors the process has open.",
    "/proc/<pid>/fd: its size (Linux 6.2+), else the number of entries",
)];

/// Open descriptors of the process whose fd directory is `dir`. `procfs`: `dir` is on a
/// real procfs (not a fixture tree), where the directory's size is the count.
pub(crate) fn count(dir: &Path, procfs: bool) -> io::Result<u64> {
    if procfs {
        let size = std::os::unix::fs::MetadataExt::size(&std::fs::metadata(dir)?);
        if size > 0 {
            return Ok(size);
        }
    }
    list(dir)
}

/// Whether `dir` is on a procfs mount (PROC_SUPER_MAGIC).
pub(crate) fn is_procfs(dir: &Path) -> bool {
    let Ok(c) = CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: an all-zero statfs is a valid value for the kernel to overwrite.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `s` is a valid out pointer.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut s) };
    rc == 0 && s.f_type as u64 == libc::PROC_SUPER_MAGIC as u64
}

/// Counts the entries of `dir` other than `.` and `..`.
fn list(dir: &Path) -> io::Result<u64> {
    let c = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
    // SAFETY: `c` is a valid NUL-terminated path; the handle is closed below on every path.
    let d = unsafe { libc::opendir(c.as_ptr()) };
    if d.is_null() {
        return Err(io::Error::last_os_error());
    }
    let mut n = 0u64;
    loop {
        // SAFETY: `d` is an open directory stream; the entry is read before the next call.
        let e = unsafe { libc::readdir64(d) };
        if e.is_null() {
            break;
        }
        // SAFETY: d_name is NUL-terminated within the entry the kernel returned.
        let name = unsafe { std::ffi::CStr::from_ptr((*e).d_name.as_ptr()) }.to_bytes();
        if name != b"." && name != b".." {
            n += 1;
        }
    }
    // SAFETY: `d` came from opendir and is closed once.
    unsafe { libc::closedir(d) };
    Ok(n)
}

#[cfg(test)]
mod tests {
    #[test]
    fn listing_counts_entries() {
        let tmp = std::env::temp_dir().join(format!("tfo-fd-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).unwrap();
        for i in 0..5 {
            std::fs::write(tmp.join(i.to_string()), b"").unwrap();
        }
        assert_eq!(super::list(&tmp).unwrap(), 5);
        assert_eq!(super::count(&tmp, false).unwrap(), 5);
        assert!(super::count(&tmp.join("missing"), false).is_err());
        assert!(!super::is_procfs(&tmp));
        std::fs::remove_dir_all(&tmp).unwrap();
        // Our own: at least stdin/stdout/stderr, the same either way.
        let own = std::path::Path::new("/proc/self/fd");
        assert!(super::is_procfs(own));
        assert!(super::count(own, true).unwrap() >= 3);
        assert!(super::list(own).unwrap() >= 3);
    }
}
