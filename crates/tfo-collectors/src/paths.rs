//! Where the host's /proc, /sys and root filesystem are. In a container the host's are
//! mounted elsewhere (`/host/proc`, ...), so no collector may hard-code `/proc`.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPaths {
    /// Host root filesystem, prefixed to mount points for statvfs (`/` on the host).
    pub root: PathBuf,
    pub proc: PathBuf,
    pub sys: PathBuf,
}

impl Default for HostPaths {
    fn default() -> Self {
        HostPaths::from_root("/")
    }
}

impl HostPaths {
    pub fn from_root(root: impl AsRef<Path>) -> Self {
        let root = root.as_ref().to_path_buf();
        HostPaths {
            proc: root.join("proc"),
            sys: root.join("sys"),
            root,
        }
    }

    pub fn proc(&self, rel: &str) -> PathBuf {
        self.proc.join(rel)
    }

    pub fn sys(&self, rel: &str) -> PathBuf {
        self.sys.join(rel)
    }

    /// Maps a mount point as the host sees it to a path this process can stat.
    pub fn rooted(&self, host_path: &str) -> PathBuf {
        self.rooted_os(OsStr::new(host_path))
    }

    /// [`HostPaths::rooted`] for a path that need not be UTF-8 (mount points are bytes).
    pub fn rooted_os(&self, host_path: &OsStr) -> PathBuf {
        if self.root == Path::new("/") {
            PathBuf::from(host_path)
        } else {
            let bytes = host_path.as_bytes();
            let start = bytes.iter().take_while(|&&b| b == b'/').count();
            self.root.join(OsStr::from_bytes(&bytes[start..]))
        }
    }
}
