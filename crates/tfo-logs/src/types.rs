//! The public data types: what [`crate::Tailer::poll`] returns and how it is configured.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use crate::k8s::K8sMeta;

/// One log record: a line, or several joined (multiline, CRI/docker partials), decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    /// The file it was read from (shared by every line of that file).
    pub file: Arc<FileInfo>,
    /// The text: the line without its line ending, after format decoding (the message of a
    /// CRI or docker line; a JSON line stays whole) and multiline joining (with `\n`).
    /// Invalid UTF-8 is replaced by U+FFFD.
    pub body: String,
    /// For JSON lines, the `msg`/`message` field when it is a string (`body` keeps the whole
    /// object).
    pub message: Option<String>,
    /// Event time given by the format (CRI, docker) or a JSON time field.
    pub time_unix_nano: Option<u64>,
    /// When the tailer read it.
    pub observed_unix_nano: u64,
    /// OTLP severity number (1 TRACE … 21 FATAL) and the text as found.
    pub severity: Option<(u8, String)>,
    /// `stdout` or `stderr`, for CRI and docker lines.
    pub iostream: Option<&'static str>,
    /// Hand this back to [`crate::Tailer::commit`] once the record is durable.
    pub position: Checkpoint,
}

/// The file a line came from, as first found (a file renamed by rotation keeps its name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// The path the glob matched (a symlink is not resolved).
    pub path: PathBuf,
    /// The last component of `path`.
    pub name: String,
    /// Pod and container for paths under `/var/log/pods/`.
    pub k8s: Option<K8sMeta>,
}

/// A position in a file's content: everything up to `offset` of content `stream`. Opaque
/// to the caller except for ordering within one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Checkpoint {
    /// The content (file identity) this position is in; valid for this process only.
    pub stream: u64,
    /// Byte offset just after the last byte the record used (a line boundary).
    pub offset: u64,
}

/// What one [`crate::Tailer::poll`] produced.
#[derive(Debug, Default)]
pub struct Poll {
    /// Records in read order (per file, in file order).
    pub lines: Vec<LogLine>,
    /// New problems (each reported once until the path works again).
    pub errors: Vec<FileError>,
    /// The byte budget ran out while data was waiting: poll again without sleeping.
    pub more: bool,
}

impl Poll {
    /// The last position of each stream in `lines`: what to pass to
    /// [`crate::Tailer::commit`] once all of `lines` is durable.
    pub fn positions(&self) -> Vec<Checkpoint> {
        positions(&self.lines)
    }
}

/// The last position per stream of `lines` (for committing a batch).
pub fn positions(lines: &[LogLine]) -> Vec<Checkpoint> {
    let mut out: Vec<Checkpoint> = Vec::new();
    for l in lines {
        match out.iter_mut().find(|c| c.stream == l.position.stream) {
            Some(c) => c.offset = c.offset.max(l.position.offset),
            None => out.push(l.position),
        }
    }
    out
}

/// Kinds of errors, each counted in [`Stats::errors`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// A directory or file without read permission.
    PermissionDenied,
    /// A path component that is a file where a directory was expected.
    NotADirectory,
    /// The process or system ran out of file descriptors.
    TooManyOpenFiles,
    /// Any other I/O failure while listing, opening or reading.
    Io,
    /// Loading or saving the checkpoint file.
    Checkpoint,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 5] = [
        ErrorKind::PermissionDenied,
        ErrorKind::NotADirectory,
        ErrorKind::TooManyOpenFiles,
        ErrorKind::Io,
        ErrorKind::Checkpoint,
    ];

    /// Label value for metrics, e.g. `permission_denied`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::NotADirectory => "not_a_directory",
            ErrorKind::TooManyOpenFiles => "too_many_open_files",
            ErrorKind::Io => "io",
            ErrorKind::Checkpoint => "checkpoint",
        }
    }

    pub(crate) fn of(e: &std::io::Error) -> ErrorKind {
        match e.kind() {
            std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
            std::io::ErrorKind::NotADirectory => ErrorKind::NotADirectory,
            _ if e.raw_os_error() == Some(libc::EMFILE)
                || e.raw_os_error() == Some(libc::ENFILE) =>
            {
                ErrorKind::TooManyOpenFiles
            }
            _ => ErrorKind::Io,
        }
    }
}

/// A problem with one path, reported by [`Poll::errors`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub path: PathBuf,
    pub kind: ErrorKind,
    pub message: String,
}

/// Counters (cumulative since the tailer was created) and gauges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Gauge: files being followed (matched by the patterns, or rotated away and still open).
    pub files_watched: u64,
    /// Gauge: file descriptors held (at most `max_open_files`).
    pub files_open: u64,
    /// Gauge: bytes read and returned (or being joined) whose records are not committed yet.
    pub uncommitted_bytes: u64,
    pub bytes_read: u64,
    /// Lines ended by a line feed (or by the end of a file that went away).
    pub lines_read: u64,
    /// Records returned by `poll`.
    pub records: u64,
    /// Records dropped by `include_patterns` / `exclude_patterns`.
    pub records_excluded: u64,
    /// Cuts made because a line or joined record exceeded `max_line_bytes` (each piece is
    /// returned as its own record; nothing is dropped).
    pub lines_split: u64,
    /// Records in which invalid UTF-8 was replaced.
    pub records_invalid_utf8: u64,
    /// Lines that were not in the file's format (returned raw).
    pub parse_errors: u64,
    /// Multiline records sent because `timeout` passed without a new line.
    pub multiline_timeouts: u64,
    /// Files renamed (followed by identity, in or out of the patterns).
    pub rotations: u64,
    /// Files truncated in place (copytruncate, `> file`).
    pub truncations: u64,
    /// Files recognised as copies of one being read (not read twice).
    pub copies: u64,
    /// Bytes a truncation removed before they were read (their copy, if any, was not found).
    pub bytes_lost_truncated: u64,
    /// Gauge: files the last glob round ignored because `max_files` were already followed.
    pub files_ignored: u64,
    /// Error episodes by kind: a path that keeps failing counts once until it works again.
    pub errors: ErrorCounts,
}

/// [`Stats::errors`]: one counter per [`ErrorKind`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorCounts {
    pub permission_denied: u64,
    pub not_a_directory: u64,
    pub too_many_open_files: u64,
    pub io: u64,
    pub checkpoint: u64,
}

impl ErrorCounts {
    pub fn get(&self, kind: ErrorKind) -> u64 {
        match kind {
            ErrorKind::PermissionDenied => self.permission_denied,
            ErrorKind::NotADirectory => self.not_a_directory,
            ErrorKind::TooManyOpenFiles => self.too_many_open_files,
            ErrorKind::Io => self.io,
            ErrorKind::Checkpoint => self.checkpoint,
        }
    }

    pub(crate) fn bump(&mut self, kind: ErrorKind) {
        let c = match kind {
            ErrorKind::PermissionDenied => &mut self.permission_denied,
            ErrorKind::NotADirectory => &mut self.not_a_directory,
            ErrorKind::TooManyOpenFiles => &mut self.too_many_open_files,
            ErrorKind::Io => &mut self.io,
            ErrorKind::Checkpoint => &mut self.checkpoint,
        };
        *c += 1;
    }
}

/// Where a file without a checkpoint starts when found at the first start of its pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartAt {
    #[default]
    End,
    Beginning,
}

/// How lines are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Decided per file from its first non-empty line (CRI, docker, JSON, else raw).
    #[default]
    Auto,
    Raw,
    Json,
    Cri,
    Docker,
}

/// Multiline joining: at most one of the patterns (neither: off).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Multiline {
    /// A line matching this starts a record; other lines continue it.
    pub start_pattern: Option<String>,
    /// A line matching this ends the record.
    pub end_pattern: Option<String>,
    /// A pending record is returned after this long without a new line (only once the file
    /// has no unread data).
    pub timeout: Duration,
}

impl Default for Multiline {
    fn default() -> Self {
        Multiline {
            start_pattern: None,
            end_pattern: None,
            timeout: Duration::from_millis(500),
        }
    }
}

/// Everything [`crate::Tailer::new`] needs. The first block mirrors `collectors.logs`; the
/// second holds internal bounds with defaults.
#[derive(Debug, Clone)]
pub struct TailerConfig {
    /// Glob patterns of files to follow.
    pub paths: Vec<String>,
    /// Glob patterns of files to skip (without `/`: matched against the file name).
    pub exclude_paths: Vec<String>,
    pub include_patterns: Vec<String>,
    pub exclude_patterns: Vec<String>,
    pub start_at: StartAt,
    pub poll_interval: Duration,
    pub max_line_bytes: usize,
    pub max_open_files: usize,
    pub multiline: Multiline,
    pub format: Format,

    /// Most bytes read from one file per poll, so one busy file cannot starve the others.
    pub read_bytes_per_file: usize,
    /// How often committed positions are written to the checkpoint file (at most).
    pub checkpoint_interval: Duration,
    /// A file renamed out of the patterns is closed this long after its last growth.
    pub orphan_idle: Duration,
    /// Checkpoints of files not seen for this long are forgotten.
    pub forget_after: Duration,
    /// At most this many checkpoints of files no longer seen are kept (oldest forgotten).
    pub max_forgotten_files: usize,
    /// Most files followed at once (matched by the patterns); more are ignored and counted.
    pub max_files: usize,
}

impl Default for TailerConfig {
    fn default() -> Self {
        TailerConfig {
            paths: Vec::new(),
            exclude_paths: Vec::new(),
            include_patterns: Vec::new(),
            exclude_patterns: Vec::new(),
            start_at: StartAt::End,
            poll_interval: Duration::from_millis(250),
            max_line_bytes: 1 << 20,
            max_open_files: 512,
            multiline: Multiline::default(),
            format: Format::Auto,
            read_bytes_per_file: 1 << 20,
            checkpoint_interval: Duration::from_secs(1),
            orphan_idle: Duration::from_secs(5),
            forget_after: Duration::from_secs(3600),
            max_forgotten_files: 4096,
            max_files: 100_000,
        }
    }
}

/// Why a [`TailerConfig`] was refused.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{key}: `{pattern}` {why}")]
    Glob {
        key: &'static str,
        pattern: String,
        why: String,
    },
    #[error("{key}: `{pattern}` is not a valid regular expression: {error}")]
    Regex {
        key: &'static str,
        pattern: String,
        error: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("checkpoint directory {}: {error}", path.display())]
    CheckpointDir {
        path: PathBuf,
        error: std::io::Error,
    },
}
