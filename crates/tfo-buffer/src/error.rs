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

impl Error {
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
