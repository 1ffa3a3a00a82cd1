//! Error type of the buffer.
//!
//! Every I/O error carries the operation and the path it concerned, so a message such as
//! "create segment /var/lib/tfo-agent/buffer/metrics/…: No space left on device" tells the
//! operator what to fix without a debugger.

use std::io;
use std::path::{Path, PathBuf};

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong when using a [`crate::Log`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file-system operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done ("open", "write", "fsync", …).
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Another process (or another `Log` in this process) holds the directory.
    #[error("buffer directory {} is in use by another process (lock file held)", path.display())]
    Locked {
        /// The buffer directory.
        path: PathBuf,
    },
    /// `WhenFull::Reject` and the record does not fit; the caller should apply backpressure.
    #[error(
        "buffer is full: a record of {needed} bytes does not fit ({used} of {limit} bytes in use)"
    )]
    Full {
        /// Framed size of the rejected record.
        needed: u64,
        /// Disk bytes in use.
        used: u64,
        /// `max_total_bytes`.
        limit: u64,
    },
    /// A single record can never fit, whatever is dropped.
    #[error("record of {size} bytes is larger than the buffer limit of {limit} bytes")]
    TooLarge {
        /// Framed size of the record.
        size: u64,
        /// The limit it exceeds.
        limit: u64,
    },
    /// `ack` of a sequence number that was never assigned.
    #[error("cannot acknowledge sequence {seq}: the newest record has sequence {newest}")]
    AckOutOfRange {
        /// The sequence passed to `ack`.
        seq: u64,
        /// The newest sequence assigned so far (0 if none).
        newest: u64,
    },
    /// The options make no sense.
    #[error("invalid buffer options: {0}")]
    InvalidOptions(String),
    /// 2^64 - 1 records were appended; cannot happen in practice but is not a panic either.
    #[error("sequence numbers exhausted in {}", path.display())]
    SequenceExhausted {
        /// The buffer directory.
        path: PathBuf,
    },
}

/// A fault of the file system under the buffer, as opposed to the buffer's own bound
/// ([`Error::Full`]): the caller cannot wait for it to go away by exporting, it has to keep
/// the data elsewhere (the agent falls back to memory) and try the disk again later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DiskFault {
    /// `ENOSPC` or `EDQUOT`: the file system (or the user's quota) is full.
    NoSpace,
    /// `EROFS`: the file system is mounted read-only.
    ReadOnly,
    /// `EIO`: the device failed.
    Io,
    /// `EACCES` or `EPERM`: the directory or a file in it is not writable for this process.
    Permission,
    /// The directory or a file in it vanished (`ENOENT`, `ENOTDIR`), e.g. removed by hand.
    Missing,
    /// Any other I/O error.
    Other,
}

impl DiskFault {
    /// Short name for logs and metrics: `no_space`, `read_only`, `io`, `permission`,
    /// `missing`, `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            DiskFault::NoSpace => "no_space",
            DiskFault::ReadOnly => "read_only",
            DiskFault::Io => "io",
            DiskFault::Permission => "permission",
            DiskFault::Missing => "missing",
            DiskFault::Other => "other",
        }
    }

    /// Classifies an I/O error.
    pub fn of(e: &io::Error) -> DiskFault {
        match e.raw_os_error() {
            Some(libc::ENOSPC | libc::EDQUOT) => DiskFault::NoSpace,
            Some(libc::EROFS) => DiskFault::ReadOnly,
            Some(libc::EIO) => DiskFault::Io,
            Some(libc::EACCES | libc::EPERM) => DiskFault::Permission,
            Some(libc::ENOENT | libc::ENOTDIR) => DiskFault::Missing,
            _ => DiskFault::Other,
        }
    }
}

impl Error {
    /// The disk fault behind this error, if it is one: every [`Error::Io`] is (classified by
    /// its errno), and so is [`Error::Locked`] (the directory cannot be used now, which is
    /// reported as [`DiskFault::Other`]). `Full`, `TooLarge` and the rest are not: they are
    /// about the buffer's own bounds or the caller's use of it.
    pub fn disk_fault(&self) -> Option<DiskFault> {
        match self {
            Error::Io { source, .. } => Some(DiskFault::of(source)),
            Error::Locked { .. } => Some(DiskFault::Other),
            _ => None,
        }
    }

    pub(crate) fn io(op: &'static str, path: &Path, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Adds the operation and path to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn ctx(self, op: &'static str, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: &Path) -> Result<T> {
        self.map_err(|e| Error::io(op, path, e))
    }
}
