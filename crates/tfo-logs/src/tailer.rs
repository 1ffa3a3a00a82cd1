//! The tailer: discovery, identity, rotation, reading, checkpoints.
//!
//! # Model
//!
//! A **file** is an inode the patterns matched (or that was matched and is still open). A
//! **stream** is a content identity: the fingerprint of the file's first bytes plus how far
//! it was read and committed. Normally one file carries one stream, but the two come apart
//! on rotation:
//!
//! - rename (+ create): same inode, new path. The file keeps its stream; if the new path is
//!   outside the patterns the open handle is read to its end (then closed after
//!   `orphan_idle` without growth, at once if it was deleted).
//! - copytruncate: the copy is a new inode whose first bytes equal the original's, so it is
//!   recognised as a **copy** of the stream (verified byte by byte, not read). When the
//!   original is then found truncated, the largest copy takes the stream over at the offset
//!   reached, so lines written between the last read and the truncation are read from the
//!   copy, once. The truncated original starts a new stream at offset 0.
//! - truncation without a copy: the original starts a new stream at 0; bytes it lost
//!   unread are counted.
//! - restart: streams come from the checkpoint file and are matched to files by
//!   fingerprint (device and inode break ties), so a file rotated to a new name while the
//!   agent was down resumes where it was.
//!
//! A new stream whose file replaced a rotated one (same path, or the truncated original) is
//! read only once its predecessor has no unread data, so lines come out in write order
//! across a rotation.
//!
//! # One poll
//!
//! 1. fstat the open files: growth, truncation (size below the offset, or first bytes
//!    changed), fingerprints that grow with short files;
//! 2. every `poll_interval` (or at once after a truncation) re-evaluate the globs;
//! 3. fingerprint files seen for the first time and decide: resume, copy, or new stream;
//! 4. resolve truncations (copy takeover) and copies that stopped being copies;
//! 5. read, round robin from where the last poll stopped, at most `read_bytes_per_file`
//!    per file and `max_bytes` in all, opening files within `max_open_files` (an idle file
//!    is closed to make room);
//! 6. multiline timeouts, closing rotated-away files, forgetting old checkpoints, writing
//!    the checkpoint file if due.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::checkpoint::{self, Entry};
use crate::decode::{Ctx, Decoder, MultilineRule, Rules};
use crate::fingerprint::{FP_MAX, Fingerprint, prefixes};
use crate::glob;
use crate::types::{
    BuildError, Checkpoint, ErrorKind, FileError, FileInfo, LogLine, Poll, StartAt, Stats,
    TailerConfig,
};

/// Size of the read buffer shared by all files.
const READ_CHUNK: usize = 256 * 1024;
/// How much of a copy's end is compared with the original to confirm it is a copy.
const COPY_CHECK: u64 = 4096;
/// Gone checkpoints younger than this are never forgotten for lack of room (a restart
/// identifies files over a few polls).
const FORGET_GRACE_SECS: u64 = 60;
/// Bound of the set of paths with a reported error.
const MAX_REPORTED: usize = 10_000;

/// A content identity and its positions: one row of the checkpoint table.
struct Stream {
    fp: Fingerprint,
    path: PathBuf,
    dev: u64,
    ino: u64,
    /// Birth time (ns) of the file, where the file system records one: tells a new file
    /// that reuses an inode from the file that had it.
    born: Option<u64>,
    /// Durable downstream (the caller said so).
    committed: u64,
    /// Highest position handed out.
    last_emit: u64,
    /// Position before which nothing is held back by the decoder.
    quiet: u64,
    /// Bytes consumed from the content.
    read_end: u64,
    /// The file reading it.
    live: Option<u64>,
    /// Unix seconds when last seen alive.
    seen: u64,
    /// Offset last written to the checkpoint file.
    saved: Option<u64>,
}

impl Stream {
    /// What may be written to the checkpoint file: the committed offset, or past trailing
    /// filtered lines when every returned record is committed.
    fn checkpoint(&self) -> u64 {
        if self.committed >= self.last_emit {
            self.quiet.max(self.committed)
        } else {
            self.committed
        }
    }
}

/// Streams, indexed by fingerprint.
#[derive(Default)]
struct Table {
    streams: HashMap<u64, Stream>,
    by_fp: HashMap<Fingerprint, Vec<u64>>,
    /// How many streams have a fingerprint of each length.
    lens: BTreeMap<u16, usize>,
    next_id: u64,
    /// Rows were added, removed or re-keyed since the last save.
    dirty: bool,
}

impl Table {
    fn insert(&mut self, s: Stream) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        self.index(id, s.fp);
        self.streams.insert(id, s);
        self.dirty = true;
        id
    }

    fn index(&mut self, id: u64, fp: Fingerprint) {
        self.by_fp.entry(fp).or_default().push(id);
        *self.lens.entry(fp.len).or_default() += 1;
    }

    fn unindex(&mut self, id: u64, fp: Fingerprint) {
        if let Some(v) = self.by_fp.get_mut(&fp) {
            v.retain(|&x| x != id);
            if v.is_empty() {
                self.by_fp.remove(&fp);
            }
        }
        if let Some(n) = self.lens.get_mut(&fp.len) {
            *n -= 1;
            if *n == 0 {
                self.lens.remove(&fp.len);
            }
        }
    }

    fn set_fp(&mut self, id: u64, fp: Fingerprint) {
        let Some(old) = self.streams.get(&id).map(|s| s.fp) else {
            return;
        };
        if old != fp {
            self.unindex(id, old);
            self.index(id, fp);
            self.streams.get_mut(&id).expect("checked").fp = fp;
            self.dirty = true;
        }
    }

    fn remove(&mut self, id: u64) {
        if let Some(s) = self.streams.remove(&id) {
            self.unindex(id, s.fp);
            self.dirty = true;
        }
    }

    /// Streams whose fingerprint is a prefix of `bytes` (the first bytes of a file).
    fn candidates(&self, bytes: &[u8]) -> Vec<u64> {
        let mut out = Vec::new();
        prefixes(
            bytes,
            |n| self.lens.contains_key(&(n as u16)),
            |fp| {
                if let Some(ids) = self.by_fp.get(&fp) {
                    out.extend(ids);
                }
            },
        );
        out
    }
}

enum Role {
    /// Not fingerprinted yet (empty, or could not be opened). `after`: the stream it
    /// replaces; `fresh`: a new stream at offset 0 without matching (new content of a
    /// truncated file).
    New {
        after: Option<u64>,
        fresh: bool,
    },
    Reading(Box<Reader>),
    /// A copy of stream `of` (verified at `size` bytes); not read.
    Copy {
        of: u64,
        size: u64,
    },
}

struct Reader {
    stream: u64,
    offset: u64,
    dec: Decoder,
    info: Arc<FileInfo>,
    /// Wait until this stream has no unread data.
    after: Option<u64>,
}

struct Tracked {
    dev: u64,
    ino: u64,
    born: Option<u64>,
    path: PathBuf,
    pattern: usize,
    seen_gen: u64,
    in_glob: bool,
    size: u64,
    mtime: (i64, i64),
    nlink: u64,
    size_at_discovery: u64,
    found_at_start: bool,
    handle: Option<File>,
    role: Role,
    last_active: Instant,
    truncated: bool,
    /// Size before the truncation was seen (for the lost-bytes count).
    prev_size: u64,
    /// Do not retry opening before this.
    next_try: Option<Instant>,
    /// When the first bytes were last compared with the fingerprint.
    verified: Instant,
}

impl Tracked {
    fn reader(&self) -> Option<&Reader> {
        match &self.role {
            Role::Reading(r) => Some(r),
            _ => None,
        }
    }

    fn has_unread(&self) -> bool {
        self.reader().is_some_and(|r| self.size > r.offset)
    }
}

/// Errors reported once per path until it works again.
#[derive(Default)]
struct Errors {
    reported: HashMap<PathBuf, ErrorKind>,
    new: Vec<FileError>,
    from_glob: HashSet<PathBuf>,
}

impl Errors {
    fn report(&mut self, stats: &mut Stats, path: &Path, e: &io::Error) {
        self.report_as(stats, path, ErrorKind::of(e), e);
    }

    fn report_as(&mut self, stats: &mut Stats, path: &Path, kind: ErrorKind, e: &io::Error) {
        if self.reported.get(path) == Some(&kind) {
            return;
        }
        if self.reported.len() >= MAX_REPORTED {
            self.reported.clear();
        }
        self.reported.insert(path.to_path_buf(), kind);
        stats.errors.bump(kind);
        self.new.push(FileError {
            path: path.to_path_buf(),
            kind,
            message: e.to_string(),
        });
    }

    fn clear(&mut self, path: &Path) {
        if !self.reported.is_empty() {
            self.reported.remove(path);
        }
    }
}

/// Follows the files matched by glob patterns; see the crate documentation for the loop.
pub struct Tailer {
    rules: Rules,
    patterns: Vec<(String, Vec<glob::Pattern>)>,
    pattern_texts: Vec<String>,
    excludes: Vec<glob::Exclude>,
    start_at: StartAt,
    poll_interval: Duration,
    max_open: usize,
    per_file: usize,
    checkpoint_interval: Duration,
    orphan_idle: Duration,
    forget_after: Duration,
    max_forgotten: usize,
    max_files: usize,

    files: BTreeMap<u64, Tracked>,
    by_inode: HashMap<(u64, u64), u64>,
    table: Table,
    next_seq: u64,
    open: Vec<u64>,
    cursor: u64,
    glob_gen: u64,
    last_glob: Option<Instant>,
    force_glob: bool,
    known_patterns: HashSet<String>,
    dir: PathBuf,
    last_save: Instant,
    read_buf: Vec<u8>,
    stats: Stats,
    errors: Errors,
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

fn born(m: &fs::Metadata) -> Option<u64> {
    let t = m.created().ok()?.duration_since(UNIX_EPOCH).ok()?;
    u64::try_from(t.as_nanos()).ok()
}

fn mtime(m: &fs::Metadata) -> (i64, i64) {
    (m.mtime(), m.mtime_nsec())
}

/// Opens a file for reading without blocking on a FIFO swapped in after the glob.
fn open_file(path: &Path) -> io::Result<File> {
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(f)
}

/// Reads up to `len` bytes at `offset` (fewer at the end of the file).
/// `g`'s open handle, or its path opened again into `reopened` if that is still the same
/// inode; `None` when it cannot be read.
fn handle_of<'a>(g: &'a Tracked, reopened: &'a mut Option<File>) -> Option<&'a File> {
    if let Some(h) = &g.handle {
        return Some(h);
    }
    let h = open_file(&g.path).ok()?;
    if !h
        .metadata()
        .is_ok_and(|m| (m.dev(), m.ino()) == (g.dev, g.ino))
    {
        return None;
    }
    Some(reopened.insert(h))
}

fn read_exact_at(f: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        match f.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

/// Where "the end" of a file is for `start_at: end`: after its last line feed, so a line
/// being written is read whole. No line feed in the last 64 KiB: the end.
fn after_last_newline(f: &File, size: u64) -> io::Result<u64> {
    let back = size.min(64 * 1024);
    let tail = read_exact_at(f, size - back, back as usize)?;
    Ok(match tail.iter().rposition(|&b| b == b'\n') {
        Some(p) => size - back + p as u64 + 1,
        None if back == size => 0,
        None => size,
    })
}

fn file_info(path: &Path) -> Arc<FileInfo> {
    let k8s = crate::k8s::from_path(path).or_else(|| {
        let is_link = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
        is_link
            .then(|| fs::canonicalize(path).ok())
            .flatten()
            .and_then(|p| crate::k8s::from_path(&p))
    });
    Arc::new(FileInfo {
        path: path.to_path_buf(),
        name: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        k8s,
    })
}

/// Runs a decoder operation with its context, then updates the stream's positions.
#[allow(clippy::too_many_arguments)]
fn with_ctx<R>(
    rules: &Rules,
    stats: &mut Stats,
    table: &mut Table,
    reader: &mut Reader,
    out: &mut Vec<LogLine>,
    now: Instant,
    observed: u64,
    f: impl FnOnce(&mut Decoder, &mut Ctx) -> R,
) -> R {
    let s = table
        .streams
        .get_mut(&reader.stream)
        .expect("a reader's stream is in the table");
    let mut ctx = Ctx {
        rules,
        out,
        stats,
        info: &reader.info,
        stream: reader.stream,
        observed,
        now,
        last_emit: &mut s.last_emit,
    };
    let r = f(&mut reader.dec, &mut ctx);
    s.quiet = reader.dec.floor().unwrap_or(reader.offset);
    s.read_end = reader.offset;
    r
}

/// What to do with a newly fingerprinted file.
enum Decision {
    Resume(u64),
    /// A copy of the stream; `true`: its original was truncated while we looked.
    Copy(u64, bool),
    New,
}

#[derive(PartialEq)]
enum CopyCheck {
    Same,
    Differs,
    OriginalShrank,
}

impl Tailer {
    /// Compiles `config`, creates `checkpoint_dir` if needed and loads its checkpoints. The
    /// agent passes `agent.data_dir/logs`.
    pub fn new(
        config: TailerConfig,
        checkpoint_dir: impl Into<PathBuf>,
    ) -> Result<Tailer, BuildError> {
        let c = config;
        if c.max_line_bytes < 16 {
            return Err(BuildError::Invalid(
                "max_line_bytes must be at least 16".into(),
            ));
        }
        if c.max_open_files < 1 || c.read_bytes_per_file < 1 || c.max_files < 1 {
            return Err(BuildError::Invalid(
                "max_open_files, read_bytes_per_file and max_files must be at least 1".into(),
            ));
        }
        if c.poll_interval.is_zero() {
            return Err(BuildError::Invalid("poll_interval must be positive".into()));
        }
        let mut patterns = Vec::new();
        for p in &c.paths {
            let parsed = glob::parse(p).map_err(|why| BuildError::Glob {
                key: "paths",
                pattern: p.clone(),
                why,
            })?;
            patterns.push((p.clone(), parsed));
        }
        let mut excludes = Vec::new();
        for p in &c.exclude_paths {
            excludes.push(glob::Exclude::parse(p).map_err(|why| BuildError::Glob {
                key: "exclude_paths",
                pattern: p.clone(),
                why,
            })?);
        }
        let set =
            |key: &'static str, list: &[String]| -> Result<Option<regex::RegexSet>, BuildError> {
                if list.is_empty() {
                    return Ok(None);
                }
                for p in list {
                    if let Err(e) = regex::Regex::new(p) {
                        return Err(BuildError::Regex {
                            key,
                            pattern: p.clone(),
                            error: e.to_string(),
                        });
                    }
                }
                regex::RegexSet::new(list)
                    .map(Some)
                    .map_err(|e| BuildError::Regex {
                        key,
                        pattern: list.join(" | "),
                        error: e.to_string(),
                    })
            };
        let include = set("include_patterns", &c.include_patterns)?;
        let exclude = set("exclude_patterns", &c.exclude_patterns)?;
        let ml = &c.multiline;
        let multiline = match (&ml.start_pattern, &ml.end_pattern) {
            (Some(_), Some(_)) => {
                return Err(BuildError::Invalid(
                    "multiline: set start_pattern or end_pattern, not both".into(),
                ));
            }
            (Some(p), None) | (None, Some(p)) => Some(MultilineRule {
                regex: regex::bytes::Regex::new(p).map_err(|e| BuildError::Regex {
                    key: "multiline",
                    pattern: p.clone(),
                    error: e.to_string(),
                })?,
                is_start: ml.start_pattern.is_some(),
                timeout: ml.timeout,
            }),
            (None, None) => None,
        };
        let dir = checkpoint_dir.into();
        fs::create_dir_all(&dir).map_err(|error| BuildError::CheckpointDir {
            path: dir.clone(),
            error,
        })?;
        // absolute, so files under it can be told apart from the patterns' matches
        let dir = fs::canonicalize(&dir).unwrap_or(dir);
        let mut t = Tailer {
            rules: Rules {
                format: c.format,
                max_line: c.max_line_bytes,
                multiline,
                include,
                exclude,
            },
            pattern_texts: c.paths.clone(),
            patterns,
            excludes,
            start_at: c.start_at,
            poll_interval: c.poll_interval,
            max_open: c.max_open_files,
            per_file: c.read_bytes_per_file,
            checkpoint_interval: c.checkpoint_interval,
            orphan_idle: c.orphan_idle,
            forget_after: c.forget_after,
            max_forgotten: c.max_forgotten_files,
            max_files: c.max_files,
            files: BTreeMap::new(),
            by_inode: HashMap::new(),
            table: Table::default(),
            next_seq: 0,
            open: Vec::new(),
            cursor: 0,
            glob_gen: 0,
            last_glob: None,
            force_glob: false,
            known_patterns: HashSet::new(),
            dir,
            last_save: Instant::now(),
            read_buf: vec![0; READ_CHUNK],
            stats: Stats::default(),
            errors: Errors::default(),
        };
        t.load_checkpoints();
        Ok(t)
    }

    fn load_checkpoints(&mut self) {
        let path = checkpoint::path_in(&self.dir);
        match checkpoint::load(&self.dir) {
            Ok(None) => {}
            Ok(Some(table)) => {
                let now = unix_now().as_secs();
                self.known_patterns = table.patterns.into_iter().collect();
                for e in table.files {
                    let Some(fp) = Fingerprint::from_text(&e.fingerprint) else {
                        continue;
                    };
                    self.table.insert(Stream {
                        fp,
                        path: PathBuf::from(e.path),
                        dev: e.dev,
                        ino: e.ino,
                        born: e.born,
                        committed: e.offset,
                        last_emit: e.offset,
                        quiet: e.offset,
                        read_end: e.offset,
                        live: None,
                        // a fresh window after a restart: the files are being looked for
                        seen: e.seen.max(now),
                        saved: Some(e.offset),
                    });
                }
                self.table.dirty = false;
            }
            Err(e) => {
                // keep the bad file for a human, start as on a first start
                let aside = path.with_extension("json.corrupt");
                let _ = fs::rename(&path, aside);
                self.errors
                    .report_as(&mut self.stats, &path, ErrorKind::Checkpoint, &e);
            }
        }
    }

    /// How often the caller should poll when the last poll did not say `more`.
    pub fn poll_interval(&self) -> Duration {
        self.poll_interval
    }

    /// Counters and gauges.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats.clone();
        s.files_watched = self.files.len() as u64;
        s.files_open = self.open.len() as u64;
        s.uncommitted_bytes = self
            .table
            .streams
            .values()
            .filter(|s| s.live.is_some())
            .map(|s| s.read_end.saturating_sub(s.committed))
            .sum();
        s
    }

    /// Records everything up to `positions` as durable (each position covers all records
    /// of its stream returned before it). The checkpoint file is rewritten at most every
    /// `checkpoint_interval`, from here or from [`Tailer::poll`]; [`Tailer::flush`] forces it.
    pub fn commit<'a>(&mut self, positions: impl IntoIterator<Item = &'a Checkpoint>) {
        for p in positions {
            if let Some(s) = self.table.streams.get_mut(&p.stream)
                && p.offset > s.committed
            {
                s.committed = p.offset;
            }
        }
        if self.last_save.elapsed() >= self.checkpoint_interval {
            self.save_if_changed();
        }
    }

    /// Writes the checkpoint file now if anything changed (call on shutdown).
    pub fn flush(&mut self) -> io::Result<()> {
        self.save()
    }

    fn save_if_changed(&mut self) {
        if let Err(e) = self.save() {
            let path = checkpoint::path_in(&self.dir);
            self.errors
                .report_as(&mut self.stats, &path, ErrorKind::Checkpoint, &e);
        }
    }

    fn save(&mut self) -> io::Result<()> {
        let changed = self.table.dirty
            || self
                .table
                .streams
                .values()
                .any(|s| s.saved != Some(s.checkpoint()));
        self.last_save = Instant::now();
        if !changed {
            return Ok(());
        }
        let now = unix_now().as_secs();
        let mut entries: Vec<Entry> = self
            .table
            .streams
            .values()
            .map(|s| Entry {
                fingerprint: s.fp.to_text(),
                offset: s.checkpoint(),
                path: s.path.to_string_lossy().into_owned(),
                dev: s.dev,
                ino: s.ino,
                born: s.born,
                seen: if s.live.is_some() { now } else { s.seen },
            })
            .collect();
        entries.sort_by(|a, b| (&a.path, a.offset).cmp(&(&b.path, b.offset)));
        checkpoint::save(&self.dir, &self.pattern_texts, entries)?;
        for s in self.table.streams.values_mut() {
            s.saved = Some(s.checkpoint());
        }
        self.table.dirty = false;
        self.errors.clear(&checkpoint::path_in(&self.dir));
        Ok(())
    }

    /// Discovers, reads and decodes; returns what was read, at most about `max_bytes` of
    /// file data (a line in progress may add up to `max_line_bytes`). Never blocks on
    /// anything but local file system calls.
    pub fn poll(&mut self, max_bytes: usize) -> Poll {
        let max_bytes = max_bytes.max(1);
        let now = Instant::now();
        let observed = unix_now().as_nanos() as u64;
        let mut out = Vec::new();
        self.check_open(now);
        let glob_due = self.force_glob
            || self
                .last_glob
                .is_none_or(|t| now.saturating_duration_since(t) >= self.poll_interval);
        let mut vacated = HashMap::new();
        if glob_due {
            self.glob(&mut vacated, &mut out, now, observed);
        }
        self.identify_new(&vacated, now);
        self.resolve(&mut out, now, observed);
        let more = self.read(max_bytes, &mut out, now, observed);
        self.housekeeping(&mut out, now, observed);
        Poll {
            lines: out,
            errors: std::mem::take(&mut self.errors.new),
            more,
        }
    }

    fn close_handle(&mut self, seq: u64) {
        if let Some(f) = self.files.get_mut(&seq)
            && f.handle.take().is_some()
            && let Some(i) = self.open.iter().position(|&s| s == seq)
        {
            self.open.swap_remove(i);
        }
    }

    /// Phase 1: growth and truncation of open files.
    fn check_open(&mut self, now: Instant) {
        let open = self.open.clone();
        for seq in open {
            let Some(f) = self.files.get_mut(&seq) else {
                continue;
            };
            let Some(h) = &f.handle else { continue };
            let meta = match h.metadata() {
                Ok(m) => m,
                Err(e) => {
                    self.errors.report(&mut self.stats, &f.path, &e);
                    continue;
                }
            };
            // a truncation followed by a rewrite to the same size within one timestamp
            // tick changes neither size nor mtime: look at the first bytes anyway, at most
            // once per poll interval
            let due = now.saturating_duration_since(f.verified) >= self.poll_interval;
            let changed = meta.len() != f.size || mtime(&meta) != f.mtime || due;
            if meta.len() > f.size {
                f.last_active = now;
            }
            f.nlink = meta.nlink();
            let size = meta.len();
            if let Role::Reading(r) = &f.role
                && !f.truncated
            {
                if size < r.offset {
                    f.truncated = true;
                    f.prev_size = f.size;
                    self.force_glob = true;
                } else if changed {
                    f.verified = now;
                    let stream = r.stream;
                    let fp = self.table.streams[&stream].fp;
                    match read_exact_at(h, 0, size.min(FP_MAX as u64) as usize) {
                        Ok(prefix) => {
                            if prefix.len() < usize::from(fp.len)
                                || Fingerprint::of(&prefix[..usize::from(fp.len)]) != fp
                            {
                                f.truncated = true;
                                f.prev_size = f.size;
                                self.force_glob = true;
                            } else if !fp.is_full() && prefix.len() > usize::from(fp.len) {
                                self.table.set_fp(stream, Fingerprint::of(&prefix));
                            }
                        }
                        Err(e) => self.errors.report(&mut self.stats, &f.path, &e),
                    }
                }
            }
            f.size = size;
            f.mtime = mtime(&meta);
        }
    }

    /// Phase 2: the globs.
    fn glob(
        &mut self,
        vacated: &mut HashMap<PathBuf, u64>,
        out: &mut Vec<LogLine>,
        now: Instant,
        observed: u64,
    ) {
        self.force_glob = false;
        self.glob_gen += 1;
        let generation = self.glob_gen;
        let first = self.last_glob.is_none();
        self.last_glob = Some(now);
        let mut found = Vec::new();
        let mut errors = Vec::new();
        for (pi, (_, pats)) in self.patterns.iter().enumerate() {
            for p in pats {
                p.walk(&mut |path, meta| found.push((path, meta, pi)), &mut errors);
            }
        }
        let mut failing = HashSet::new();
        for (path, e) in &errors {
            self.errors.report(&mut self.stats, path, e);
            failing.insert(path.clone());
        }
        for path in std::mem::replace(&mut self.errors.from_glob, failing.clone()) {
            if !failing.contains(&path) {
                self.errors.clear(&path);
            }
        }
        // files met for the first time get their sequence numbers oldest first, so at a
        // first start rotated files are read before the current one
        let (mut found, mut fresh): (Vec<_>, Vec<_>) = found
            .into_iter()
            .partition(|(_, meta, _)| self.by_inode.contains_key(&(meta.dev(), meta.ino())));
        fresh.sort_by(|a, b| (mtime(&a.1), &a.0).cmp(&(mtime(&b.1), &b.0)));
        found.append(&mut fresh);
        let mut ignored = 0;
        for (path, meta, pi) in found {
            // never our own checkpoint file, whatever the patterns say
            if path.starts_with(&self.dir) || self.excludes.iter().any(|e| e.matches(&path)) {
                continue;
            }
            let key = (meta.dev(), meta.ino());
            if let Some(&seq) = self.by_inode.get(&key) {
                let f = self.files.get_mut(&seq).expect("indexed");
                if f.seen_gen == generation {
                    continue; // the same file through another path
                }
                f.seen_gen = generation;
                f.in_glob = true;
                if f.path.as_os_str() != path.as_os_str() {
                    if let Role::Reading(r) = &f.role {
                        vacated.insert(f.path.clone(), r.stream);
                        self.stats.rotations += 1;
                    }
                    f.path = path;
                    f.pattern = pi;
                }
                if f.handle.is_none() {
                    if let Role::Reading(r) = &f.role
                        && meta.len() < r.offset
                        && !f.truncated
                    {
                        f.truncated = true;
                        f.prev_size = f.size;
                    }
                    f.size = meta.len();
                    f.mtime = mtime(&meta);
                    f.nlink = meta.nlink();
                }
            } else {
                if self.files.len() >= self.max_files {
                    ignored += 1;
                    continue;
                }
                self.next_seq += 1;
                let seq = self.next_seq;
                self.by_inode.insert(key, seq);
                self.files.insert(
                    seq,
                    Tracked {
                        dev: key.0,
                        ino: key.1,
                        born: born(&meta),
                        path,
                        pattern: pi,
                        seen_gen: generation,
                        in_glob: true,
                        size: meta.len(),
                        mtime: mtime(&meta),
                        nlink: meta.nlink(),
                        size_at_discovery: meta.len(),
                        found_at_start: first,
                        handle: None,
                        role: Role::New {
                            after: None,
                            fresh: false,
                        },
                        last_active: now,
                        truncated: false,
                        prev_size: 0,
                        next_try: None,
                        verified: now,
                    },
                );
            }
        }
        self.stats.files_ignored = ignored;
        // files the globs no longer match: renamed away or deleted
        let mut gone = Vec::new();
        for (&seq, f) in self.files.iter_mut() {
            if f.seen_gen == generation {
                continue;
            }
            if f.in_glob {
                f.in_glob = false;
                if let Role::Reading(r) = &f.role {
                    vacated.insert(f.path.clone(), r.stream);
                    self.stats.rotations += 1;
                }
            }
            if f.handle.is_none() {
                gone.push(seq);
            }
        }
        for seq in gone {
            self.drop_file(seq, out, now, observed);
        }
    }

    /// Forgets a file; its stream (if any) stays in the table as gone, anything its decoder
    /// held is returned.
    fn drop_file(&mut self, seq: u64, out: &mut Vec<LogLine>, now: Instant, observed: u64) {
        self.close_handle(seq);
        let Some(f) = self.files.remove(&seq) else {
            return;
        };
        self.by_inode.remove(&(f.dev, f.ino));
        if let Role::Reading(mut r) = f.role {
            with_ctx(
                &self.rules,
                &mut self.stats,
                &mut self.table,
                &mut r,
                out,
                now,
                observed,
                |d, c| d.finish(c),
            );
            if let Some(s) = self.table.streams.get_mut(&r.stream) {
                s.live = None;
                s.seen = unix_now().as_secs();
            }
        }
    }

    /// Makes room for one more open file: closes the least recently active file that is
    /// read to its end and can be reopened by path. False if there is none.
    fn make_room(&mut self) -> bool {
        if self.open.len() < self.max_open {
            return true;
        }
        let victim = self
            .open
            .iter()
            .filter_map(|&seq| {
                let f = &self.files[&seq];
                let idle = match &f.role {
                    Role::Reading(r) => f.size <= r.offset && !f.truncated && f.in_glob,
                    _ => true,
                };
                idle.then_some((f.last_active, seq))
            })
            .min();
        match victim {
            Some((_, seq)) => {
                self.close_handle(seq);
                true
            }
            None => false,
        }
    }

    /// Opens the file at its path and checks it is still the same inode.
    fn reopen(&mut self, seq: u64, now: Instant) -> bool {
        let f = &self.files[&seq];
        if f.handle.is_some() {
            return true;
        }
        if f.next_try.is_some_and(|t| now < t) || !f.in_glob || !self.make_room() {
            return false;
        }
        let f = self.files.get_mut(&seq).expect("present");
        let h = match open_file(&f.path) {
            Ok(h) => h,
            Err(e) => {
                if e.kind() != io::ErrorKind::NotFound {
                    self.errors.report(&mut self.stats, &f.path, &e);
                }
                f.next_try = Some(now + self.poll_interval);
                self.force_glob = true;
                return false;
            }
        };
        let meta = match h.metadata() {
            Ok(m) => m,
            Err(e) => {
                self.errors.report(&mut self.stats, &f.path, &e);
                return false;
            }
        };
        if (meta.dev(), meta.ino()) != (f.dev, f.ino) {
            // the path names another file now: the next glob sorts it out
            self.force_glob = true;
            f.next_try = Some(now + self.poll_interval);
            return false;
        }
        self.errors.clear(&f.path);
        f.next_try = None;
        f.size = meta.len();
        f.mtime = mtime(&meta);
        f.nlink = meta.nlink();
        f.handle = Some(h);
        self.open.push(seq);
        true
    }

    /// Phase 3: fingerprint new files and decide what they are.
    fn identify_new(&mut self, vacated: &HashMap<PathBuf, u64>, now: Instant) {
        let new: Vec<u64> = self
            .files
            .iter()
            .filter(|(_, f)| matches!(f.role, Role::New { .. }) && f.size > 0)
            .map(|(&s, _)| s)
            .collect();
        for seq in new {
            if self.files[&seq].handle.is_none() && !self.make_room() {
                break; // no descriptor free this poll: the rest waits (reading frees some)
            }
            self.identify(seq, vacated, now);
        }
    }

    fn identify(&mut self, seq: u64, vacated: &HashMap<PathBuf, u64>, now: Instant) {
        let Some(f) = self.files.get(&seq) else {
            return;
        };
        let Role::New { after, fresh } = f.role else {
            return;
        };
        if !self.reopen(seq, now) {
            return;
        }
        let f = self.files.get_mut(&seq).expect("present");
        let h = f.handle.as_ref().expect("reopened");
        let prefix = match read_exact_at(h, 0, f.size.min(FP_MAX as u64) as usize) {
            Ok(p) => p,
            Err(e) => {
                self.errors.report(&mut self.stats, &f.path, &e);
                self.close_handle(seq);
                return;
            }
        };
        if prefix.is_empty() {
            self.close_handle(seq);
            return;
        }
        let after = after.or_else(|| vacated.get(&f.path).copied());
        let decision = if fresh {
            Decision::New
        } else {
            self.decide(seq, &prefix)
        };
        let f = self.files.get_mut(&seq).expect("present");
        let (dev, ino, file_born, path) = (f.dev, f.ino, f.born, f.path.clone());
        match decision {
            Decision::Copy(of, shrank) => {
                self.stats.copies += 1;
                f.role = Role::Copy { of, size: f.size };
                self.close_handle(seq);
                if shrank {
                    self.mark_truncated(of);
                }
            }
            Decision::Resume(id) => {
                let s = self.table.streams.get_mut(&id).expect("candidate");
                let offset = s.read_end;
                s.live = Some(seq);
                s.path = path.clone();
                s.dev = dev;
                s.ino = ino;
                s.born = file_born;
                if !s.fp.is_full() && prefix.len() > usize::from(s.fp.len) {
                    self.table.set_fp(id, Fingerprint::of(&prefix));
                }
                self.table.dirty = true;
                f.role = Role::Reading(Box::new(Reader {
                    stream: id,
                    offset,
                    dec: Decoder::new(self.rules.format, offset),
                    info: file_info(&path),
                    after,
                }));
            }
            Decision::New => {
                let text = &self.pattern_texts[f.pattern];
                let from_end = !fresh
                    && f.found_at_start
                    && self.start_at == StartAt::End
                    && !self.known_patterns.contains(text);
                let offset = if from_end {
                    let h = f.handle.as_ref().expect("open");
                    after_last_newline(h, f.size_at_discovery.min(f.size)).unwrap_or(0)
                } else {
                    0
                };
                let id = self.table.insert(Stream {
                    fp: Fingerprint::of(&prefix),
                    path: path.clone(),
                    dev,
                    ino,
                    born: file_born,
                    committed: offset,
                    last_emit: offset,
                    quiet: offset,
                    read_end: offset,
                    live: Some(seq),
                    seen: unix_now().as_secs(),
                    saved: None,
                });
                f.role = Role::Reading(Box::new(Reader {
                    stream: id,
                    offset,
                    dec: Decoder::new(self.rules.format, offset),
                    info: file_info(&path),
                    after,
                }));
            }
        }
    }

    /// Resume a known stream, follow as a copy, or start a new stream.
    fn decide(&self, seq: u64, prefix: &[u8]) -> Decision {
        let f = &self.files[&seq];
        let candidates = self.table.candidates(prefix);
        let stream = |id: &u64| &self.table.streams[id];
        // the same inode, not being read: a file we knew (a restart, or found again by
        // glob), unless its birth time says the inode was reused by a new file
        let same_birth = |s: &Stream| s.born.is_none() || f.born.is_none() || s.born == f.born;
        if let Some(&id) = candidates.iter().find(|id| {
            let s = stream(id);
            s.live.is_none()
                && (s.dev, s.ino) == (f.dev, f.ino)
                && same_birth(s)
                && s.read_end <= f.size
        }) {
            return Decision::Resume(id);
        }
        // a stream being read from another file: is this a copy of it?
        for &id in &candidates {
            let Some(g) = stream(&id).live.filter(|&g| g != seq) else {
                continue;
            };
            let g = &self.files[&g];
            if g.truncated {
                return Decision::Copy(id, false);
            }
            match self.is_copy(f, g) {
                CopyCheck::Same => return Decision::Copy(id, false),
                CopyCheck::OriginalShrank => return Decision::Copy(id, true),
                CopyCheck::Differs => {}
            }
            // copytruncate, and the writer refilled the original past the copy's size
            // before this poll saw it shrink: the original no longer starts with the
            // stream's fingerprint, the new file does. It is the copy of what was read.
            if self.rewritten(stream(&id).fp, g) {
                return Decision::Copy(id, true);
            }
        }
        // a stream whose file went away, found in another inode: a copytruncate copy made
        // while the agent was down. Only on a full fingerprint: a new file that merely
        // starts with the same short line(s) must not skip them.
        let gone = candidates
            .iter()
            .filter(|id| {
                let s = stream(id);
                s.live.is_none() && s.fp.is_full() && s.read_end <= f.size
            })
            .max_by_key(|id| (stream(id).fp.len, stream(id).seen));
        match gone {
            Some(&id) => Decision::Resume(id),
            None => Decision::New,
        }
    }

    /// Whether `f` holds exactly the first `f.size` bytes of `g` (checked on the first KiB
    /// and the last [`COPY_CHECK`] bytes). A `g` that turns out shorter than `f` while being
    /// compared was truncated just now (copytruncate racing the poll): `f` is its copy.
    fn is_copy(&self, f: &Tracked, g: &Tracked) -> CopyCheck {
        if f.size > g.size {
            return CopyCheck::Differs;
        }
        let Some(fh) = &f.handle else {
            return CopyCheck::Differs;
        };
        let mut reopened = None;
        let Some(gh) = handle_of(g, &mut reopened) else {
            return CopyCheck::Differs;
        };
        let head = f.size.min(FP_MAX as u64) as usize;
        let tail_from = f.size.saturating_sub(COPY_CHECK);
        let tail = (f.size - tail_from) as usize;
        let mut shrank = false;
        let mut same = |off: u64, len: usize| -> bool {
            match (read_exact_at(fh, off, len), read_exact_at(gh, off, len)) {
                (Ok(a), Ok(b)) => {
                    shrank |= b.len() < len;
                    a.len() == len && a == b
                }
                _ => false,
            }
        };
        let equal = same(0, head) && same(tail_from, tail);
        if equal {
            CopyCheck::Same
        } else if shrank || gh.metadata().is_ok_and(|m| m.len() < f.size) {
            CopyCheck::OriginalShrank
        } else {
            CopyCheck::Differs
        }
    }

    /// Whether `g` no longer starts with the bytes fingerprinted as `fp` (its content was
    /// replaced since: truncated and written again). False when it cannot be read.
    fn rewritten(&self, fp: Fingerprint, g: &Tracked) -> bool {
        let mut reopened = None;
        let Some(gh) = handle_of(g, &mut reopened) else {
            return false;
        };
        match read_exact_at(gh, 0, usize::from(fp.len)) {
            Ok(head) => head.len() < usize::from(fp.len) || Fingerprint::of(&head) != fp,
            Err(_) => false,
        }
    }

    /// Marks the file reading stream `id` as truncated (resolved in phase 4).
    fn mark_truncated(&mut self, id: u64) {
        if let Some(g) = self.table.streams.get(&id).and_then(|s| s.live)
            && let Some(g) = self.files.get_mut(&g)
            && !g.truncated
        {
            g.truncated = true;
            g.prev_size = g.size;
            self.force_glob = true;
        }
    }

    /// Phase 4: truncations and copies.
    fn resolve(&mut self, out: &mut Vec<LogLine>, now: Instant, observed: u64) {
        let truncated: Vec<u64> = self
            .files
            .iter()
            .filter(|(_, f)| f.truncated && matches!(f.role, Role::Reading(_)))
            .map(|(&s, _)| s)
            .collect();
        let none = HashMap::new();
        for seq in truncated {
            self.stats.truncations += 1;
            let f = self.files.get_mut(&seq).expect("listed");
            f.truncated = false;
            let prev_size = f.prev_size;
            let Role::Reading(mut r) = std::mem::replace(
                &mut f.role,
                Role::New {
                    after: None,
                    fresh: true,
                },
            ) else {
                unreachable!("filtered on Reading")
            };
            let sid = r.stream;
            let best = self
                .files
                .iter()
                .filter_map(|(&c, cf)| match cf.role {
                    Role::Copy { of, .. } if of == sid && cf.size >= r.offset => Some((cf.size, c)),
                    _ => None,
                })
                .max();
            if let Some((_, c)) = best {
                // the copy carries on: same stream, same offset, same decoder state
                let cf = self.files.get_mut(&c).expect("listed");
                let s = self.table.streams.get_mut(&sid).expect("live");
                s.live = Some(c);
                s.path = cf.path.clone();
                s.dev = cf.dev;
                s.ino = cf.ino;
                s.born = cf.born;
                self.table.dirty = true;
                cf.role = Role::Reading(r);
            } else {
                with_ctx(
                    &self.rules,
                    &mut self.stats,
                    &mut self.table,
                    &mut r,
                    out,
                    now,
                    observed,
                    |d, c| d.finish(c),
                );
                self.stats.bytes_lost_truncated += prev_size.saturating_sub(r.offset);
                if let Some(s) = self.table.streams.get_mut(&sid) {
                    s.live = None;
                    s.seen = unix_now().as_secs();
                }
            }
            let f = self.files.get_mut(&seq).expect("listed");
            f.role = Role::New {
                after: Some(sid),
                fresh: true,
            };
            if f.size > 0 {
                self.identify(seq, &none, now);
            }
        }
        // copies whose original went away, or that stopped being copies
        let copies: Vec<(u64, u64, u64)> = self
            .files
            .iter()
            .filter_map(|(&c, f)| match f.role {
                Role::Copy { of, size } => Some((c, of, size)),
                _ => None,
            })
            .collect();
        for (c, of, checked_size) in copies {
            let size = self.files[&c].size;
            let live = match self.table.streams.get(&of) {
                None => {
                    // its stream was forgotten: look at it afresh
                    self.files.get_mut(&c).expect("listed").role = Role::New {
                        after: None,
                        fresh: false,
                    };
                    continue;
                }
                Some(s) => s.live,
            };
            match live {
                None => {
                    let s = &self.table.streams[&of];
                    if size > s.read_end {
                        let offset = s.read_end;
                        let cf = self.files.get_mut(&c).expect("listed");
                        let s = self.table.streams.get_mut(&of).expect("present");
                        s.live = Some(c);
                        s.path = cf.path.clone();
                        s.dev = cf.dev;
                        s.ino = cf.ino;
                        s.born = cf.born;
                        self.table.dirty = true;
                        cf.role = Role::Reading(Box::new(Reader {
                            stream: of,
                            offset,
                            dec: Decoder::new(self.rules.format, offset),
                            info: file_info(&cf.path),
                            after: None,
                        }));
                    }
                }
                Some(g) if size != checked_size => {
                    if !self.reopen(c, now) {
                        continue; // no descriptor to check it with now; next poll
                    }
                    let check = self.is_copy(&self.files[&c], &self.files[&g]);
                    let still = check != CopyCheck::Differs;
                    self.close_handle(c);
                    if check == CopyCheck::OriginalShrank {
                        // taken over at the next poll
                        self.mark_truncated(of);
                    }
                    let cf = self.files.get_mut(&c).expect("listed");
                    cf.role = if still {
                        Role::Copy { of, size }
                    } else {
                        // it was written to: its own file after all, read it all
                        Role::New {
                            after: None,
                            fresh: true,
                        }
                    };
                }
                Some(_) => {}
            }
        }
    }

    /// Phase 5: read.
    fn read(
        &mut self,
        max_bytes: usize,
        out: &mut Vec<LogLine>,
        now: Instant,
        observed: u64,
    ) -> bool {
        let order: Vec<u64> = self
            .files
            .range(self.cursor + 1..)
            .chain(self.files.range(..=self.cursor))
            .filter(|(_, f)| f.has_unread() && !f.truncated)
            .map(|(&s, _)| s)
            .collect();
        let mut budget = max_bytes;
        let mut more = false;
        let mut buf = std::mem::take(&mut self.read_buf);
        for seq in order {
            if budget == 0 {
                more = true;
                break;
            }
            // wait for the predecessor of a rotated file
            let f = &self.files[&seq];
            let r = f.reader().expect("filtered");
            if let Some(p) = r.after {
                if self.predecessor_busy(p) {
                    continue;
                }
                if let Some(Role::Reading(r)) = self.files.get_mut(&seq).map(|f| &mut f.role) {
                    r.after = None;
                }
            }
            let was_closed = self.files[&seq].handle.is_none();
            if !self.reopen(seq, now) {
                // no descriptor free: come back as soon as one is
                more |= self.open.len() >= self.max_open;
                continue;
            }
            if was_closed && !self.verify_reopened(seq) {
                continue;
            }
            self.cursor = seq;
            let f = self.files.get_mut(&seq).expect("present");
            let Role::Reading(r) = &mut f.role else {
                unreachable!("filtered")
            };
            let h = f.handle.as_ref().expect("reopened");
            let mut left = self.per_file.min(budget);
            let mut eof = false;
            let start = r.offset;
            while left > 0 {
                let want = left.min(buf.len());
                let n = match h.read_at(&mut buf[..want], r.offset) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        self.errors.report(&mut self.stats, &f.path, &e);
                        break;
                    }
                };
                r.offset += n as u64;
                left -= n;
                budget -= n;
                self.stats.bytes_read += n as u64;
                with_ctx(
                    &self.rules,
                    &mut self.stats,
                    &mut self.table,
                    r,
                    out,
                    now,
                    observed,
                    |d, c| d.feed(&buf[..n], c),
                );
            }
            if r.offset > start {
                f.last_active = now;
            }
            if eof {
                // at the end now; a truncation shows at the next fstat
                f.size = r.offset;
            } else {
                f.size = f.size.max(r.offset);
                more |= left == 0;
            }
        }
        self.read_buf = buf;
        more
    }

    fn predecessor_busy(&self, pred: u64) -> bool {
        let Some(g) = self.table.streams.get(&pred).and_then(|s| s.live) else {
            return false;
        };
        self.files.get(&g).is_some_and(|g| {
            g.truncated
                || g.reader()
                    .is_some_and(|r| r.stream == pred && g.size > r.offset)
        })
    }

    /// After reopening a closed file by path: its first bytes must still be its stream's.
    fn verify_reopened(&mut self, seq: u64) -> bool {
        let f = self.files.get_mut(&seq).expect("present");
        let Role::Reading(r) = &f.role else {
            return true;
        };
        let fp = self.table.streams[&r.stream].fp;
        let h = f.handle.as_ref().expect("open");
        match read_exact_at(h, 0, usize::from(fp.len)) {
            Ok(p) if Fingerprint::of(&p) == fp && f.size >= r.offset => true,
            Ok(_) => {
                f.truncated = true;
                f.prev_size = f.size;
                self.force_glob = true;
                false
            }
            Err(e) => {
                self.errors.report(&mut self.stats, &f.path, &e);
                false
            }
        }
    }

    /// Phase 6.
    fn housekeeping(&mut self, out: &mut Vec<LogLine>, now: Instant, observed: u64) {
        // multiline timeouts, only for files with nothing left to read
        if self.rules.multiline.is_some() {
            for f in self.files.values_mut() {
                let size = f.size;
                if let Role::Reading(r) = &mut f.role
                    && r.dec.has_pending_multiline()
                    && size <= r.offset
                {
                    with_ctx(
                        &self.rules,
                        &mut self.stats,
                        &mut self.table,
                        r,
                        out,
                        now,
                        observed,
                        |d, c| d.flush_timeouts(c),
                    );
                }
            }
        }
        // rotated-away files read to their end
        let done: Vec<u64> = self
            .files
            .iter()
            .filter(|(_, f)| {
                !f.in_glob
                    && !f.has_unread()
                    && (f.nlink == 0
                        || now.saturating_duration_since(f.last_active) >= self.orphan_idle)
            })
            .map(|(&s, _)| s)
            .collect();
        for seq in done {
            self.drop_file(seq, out, now, observed);
        }
        self.forget(unix_now().as_secs());
        if self.last_save.elapsed() >= self.checkpoint_interval {
            self.save_if_changed();
        }
    }

    /// Bounds the table: gone streams older than `forget_after`, then the oldest beyond
    /// `max_forgotten_files` (only those gone for at least a minute).
    fn forget(&mut self, now: u64) {
        let mut gone: Vec<(u64, u64)> = self
            .table
            .streams
            .iter()
            .filter(|(_, s)| s.live.is_none())
            .map(|(&id, s)| (s.seen, id))
            .collect();
        if gone.is_empty() {
            return;
        }
        let limit = self.forget_after.as_secs();
        let excess = gone.len().saturating_sub(self.max_forgotten);
        gone.sort_unstable();
        for (i, &(seen, id)) in gone.iter().enumerate() {
            let age = now.saturating_sub(seen);
            if age > limit || (i < excess && age >= FORGET_GRACE_SECS) {
                self.table.remove(id);
            }
        }
    }
}

impl Drop for Tailer {
    /// Best effort: committed positions are written (a crash instead loses at most
    /// `checkpoint_interval` of commits, which means duplicates, never loss).
    fn drop(&mut self) {
        let _ = self.save();
    }
}

impl std::fmt::Debug for Tailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tailer")
            .field("patterns", &self.pattern_texts)
            .field("files", &self.files.len())
            .field("open", &self.open.len())
            .field("streams", &self.table.streams.len())
            .finish()
    }
}
