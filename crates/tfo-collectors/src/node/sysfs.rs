//! Helpers for the sysfs sub-collectors (cpufreq, netclass, thermal, hwmon): numbered
//! directory listings and one-value attribute files, through one reused path and buffer.
//!
//! An attribute that cannot be read is skipped without an error: sysfs answers EINVAL,
//! ENODATA or EIO for attributes a device does not support right now (the speed of a
//! virtual interface, the carrier of one that is down), and node_exporter skips them too.
//! Content that does not parse is an error.
//!
//! Attributes and directories are read through descriptors kept open across cycles
//! ([`super::kept`]), by path. A kept descriptor not read during a cycle (its device is
//! gone, or no longer selected) is closed at the end of that cycle, so the map holds at
//! most what one cycle reads: never more descriptors than the collector's budget, and
//! at most 2 x [`MAX_KEPT_FDS`] entries in all (missing class directories included).

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::kept::{FdBudget, Kept, MAX_KEPT_FDS, dirents};
use crate::CollectReport;
use crate::parse::{parse_error, parse_i64, parse_u64, trim};

/// One directory entry of a listing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Entry {
    /// The number after the prefix (`hwmon3`: 3); 0 for [`SysScratch::list_names`].
    pub(crate) n: u64,
    pub(crate) name: OsString,
    /// The entry's inode number: a device removed and added again under the same name
    /// gets a new one (kernfs numbers its nodes afresh).
    pub(crate) ino: u64,
}

/// Runs `f` on the kept descriptor of `path` (marked as read this cycle), or on a new
/// one, stored if it got a descriptor or (`recheck_missing`: a class directory) found the
/// path missing (see [`super::kept::RECHECK`]).
fn with_kept<R>(
    kept: &mut HashMap<PathBuf, (Kept, u64)>,
    cycle: u64,
    path: &Path,
    recheck_missing: bool,
    f: impl FnOnce(&mut Kept) -> R,
) -> R {
    if let Some((k, c)) = kept.get_mut(path) {
        *c = cycle;
        return f(k);
    }
    let mut k = if recheck_missing {
        Kept::recheck_missing()
    } else {
        Kept::default()
    };
    let r = f(&mut k);
    // Bounded: descriptors by their budget, missing paths by as many again.
    if k.is_kept() || (k.is_worth_keeping() && kept.len() < 2 * MAX_KEPT_FDS) {
        kept.insert(path.to_path_buf(), (k, cycle));
    }
    r
}

/// Reused across cycles by every sysfs walk.
#[derive(Debug)]
pub(crate) struct SysScratch {
    path: PathBuf,
    buf: Vec<u8>,
    /// Raw getdents records of the last listing, and which (path, cycle) they are of.
    dirbuf: Vec<u8>,
    listed: Option<(PathBuf, u64)>,
    /// The entries of the last [`SysScratch::list`] or [`SysScratch::list_names`].
    pub(crate) entries: Vec<Entry>,
    /// Kept attribute and directory descriptors by path, with the cycle that last read
    /// each.
    kept: HashMap<PathBuf, (Kept, u64)>,
    cycle: u64,
    fds: FdBudget,
}

impl SysScratch {
    pub(crate) fn new(fds: FdBudget) -> SysScratch {
        SysScratch {
            path: PathBuf::new(),
            buf: Vec::new(),
            dirbuf: Vec::new(),
            listed: None,
            entries: Vec::new(),
            kept: HashMap::new(),
            cycle: 0,
            fds,
        }
    }

    /// Closes the descriptors this cycle did not read; call once at the end of a cycle.
    pub(crate) fn end_cycle(&mut self) {
        let cycle = self.cycle;
        self.kept.retain(|_, (_, c)| *c == cycle);
        self.cycle += 1;
    }

    /// Lists `dir` into `self.dirbuf`, once per cycle per directory. A missing `class`
    /// directory is looked up again only every few cycles.
    fn list_raw(&mut self, dir: &Path, class: bool) -> io::Result<()> {
        if let Some((p, c)) = &self.listed
            && *c == self.cycle
            && p == dir
        {
            return Ok(());
        }
        self.listed = None;
        with_kept(&mut self.kept, self.cycle, dir, class, |k| {
            k.list_dir(dir, &mut self.dirbuf, &self.fds)
        })?;
        self.listed = Some((dir.to_path_buf(), self.cycle));
        Ok(())
    }

    /// Fills `self.entries` with the entries of `dir` that `select` gives a number,
    /// sorted by (number, name). A missing directory is an empty list; other errors are
    /// reported.
    fn list_with(
        &mut self,
        dir: &Path,
        report: &mut CollectReport,
        select: impl Fn(&[u8]) -> Option<u64>,
    ) {
        let mut kept = 0;
        if let Err(e) = self.list_raw(dir, true) {
            if e.kind() != io::ErrorKind::NotFound {
                report.errors.push(crate::CollectError::Io {
                    path: dir.display().to_string(),
                    source: e,
                });
            }
        } else {
            // Reuse the names' allocations of the last listing.
            for (ino, name) in dirents(&self.dirbuf) {
                let Some(n) = select(name) else { continue };
                match self.entries.get_mut(kept) {
                    Some(e) => {
                        e.n = n;
                        e.ino = ino;
                        e.name.clear();
                        e.name.push(OsStr::from_bytes(name));
                    }
                    None => self.entries.push(Entry {
                        n,
                        name: OsStr::from_bytes(name).to_os_string(),
                        ino,
                    }),
                }
                kept += 1;
            }
        }
        self.entries.truncate(kept);
        self.entries.sort_unstable();
    }

    /// Lists the entries of `dir` named `<prefix><number>`, sorted by number, into
    /// `self.entries`. A missing directory is an empty list; other errors are reported.
    pub(crate) fn list(&mut self, dir: &Path, prefix: &str, report: &mut CollectReport) {
        self.list_with(dir, report, |name| {
            name.strip_prefix(prefix.as_bytes()).and_then(parse_u64)
        });
    }

    /// Lists every entry of `dir` into `self.entries` (number 0), sorted by name.
    pub(crate) fn list_names(&mut self, dir: &Path, report: &mut CollectReport) {
        self.list_with(dir, report, |_| Some(0));
    }

    /// Sets the scratch path to `dir/a/b` (`b` may be empty) without allocating once warm.
    fn set(&mut self, dir: &Path, a: &OsStr, b: &str) {
        self.path.clear();
        self.path.push(dir);
        self.path.push(a);
        if !b.is_empty() {
            self.path.push(b);
        }
    }

    /// Reads the attribute `dir/entry/attr`, trimmed; `None` if it cannot be read.
    pub(crate) fn read(&mut self, dir: &Path, entry: &OsStr, attr: &str) -> Option<&[u8]> {
        self.set(dir, entry, attr);
        let path = &self.path;
        let r = with_kept(&mut self.kept, self.cycle, path, false, |k| {
            k.read_attr(path, &mut self.buf, &self.fds)
        });
        r.is_ok().then(|| trim(&self.buf))
    }

    /// Reads `dir/entry/attr` as an integer. Unreadable: `None` silently; unparsable:
    /// `None` and an error in `report`.
    pub(crate) fn read_i64(
        &mut self,
        dir: &Path,
        entry: &OsStr,
        attr: &str,
        report: &mut CollectReport,
    ) -> Option<i64> {
        let v = self.read(dir, entry, attr)?;
        match parse_i64(v) {
            Some(n) => Some(n),
            None => {
                let what = crate::parse::excerpt(v);
                report.errors.push(parse_error(
                    &self.path,
                    format!("expected an integer, found {what}"),
                ));
                None
            }
        }
    }

    /// The resolved path of `dir/entry/attr` (symlinks followed), if it exists.
    pub(crate) fn canonical(&mut self, dir: &Path, entry: &OsStr, attr: &str) -> Option<PathBuf> {
        self.set(dir, entry, attr);
        fs::canonicalize(&self.path).ok()
    }

    /// Lists `dir/entry` as raw records (iterate them with [`dirents`]); `None` if it
    /// cannot be listed (reported unless it is missing).
    pub(crate) fn listing(
        &mut self,
        dir: &Path,
        entry: &OsStr,
        report: &mut CollectReport,
    ) -> Option<&[u8]> {
        self.set(dir, entry, "");
        let path = std::mem::take(&mut self.path);
        let r = self.list_raw(&path, false);
        if let Err(e) = r {
            if e.kind() != io::ErrorKind::NotFound {
                report.errors.push(crate::CollectError::Io {
                    path: path.display().to_string(),
                    source: e,
                });
            }
            self.path = path;
            return None;
        }
        self.path = path;
        Some(&self.dirbuf)
    }
}
