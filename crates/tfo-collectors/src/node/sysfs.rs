//! Helpers for the sysfs sub-collectors (cpufreq, netclass, thermal, hwmon): numbered
//! directory listings and one-value attribute files, through one reused path and buffer.
//!
//! An attribute that cannot be read is skipped without an error: sysfs answers EINVAL,
//! ENODATA or EIO for attributes a device does not support right now (the speed of a
//! virtual interface, the carrier of one that is down), and node_exporter skips them too.
//! Content that does not parse is an error.
//!
//! Attributes are read through descriptors kept open across cycles ([`super::kept`]),
//! by path. A kept descriptor not read during a cycle (its device is gone, or no longer
//! selected) is closed at the end of that cycle, so the map holds at most what one cycle
//! reads, and never more than the collector's descriptor budget.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::kept::{FdBudget, Kept};
use crate::CollectReport;
use crate::parse::{is_not_found, parse_error, parse_i64, trim};

/// Reused across cycles by every sysfs walk.
#[derive(Debug)]
pub(crate) struct SysScratch {
    path: PathBuf,
    buf: Vec<u8>,
    /// (number, entry name) of the last [`SysScratch::list`].
    pub(crate) entries: Vec<(u64, OsString)>,
    /// Kept attribute descriptors by path, with the cycle that last read each.
    kept: HashMap<PathBuf, (Kept, u64)>,
    cycle: u64,
    fds: FdBudget,
}

impl SysScratch {
    pub(crate) fn new(fds: FdBudget) -> SysScratch {
        SysScratch {
            path: PathBuf::new(),
            buf: Vec::new(),
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

    /// Lists the entries of `dir` named `<prefix><number>`, sorted by number, into
    /// `self.entries`. A missing directory is an empty list; other errors are reported.
    pub(crate) fn list(&mut self, dir: &Path, prefix: &str, report: &mut CollectReport) {
        self.entries.clear();
        let rd = match fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) => {
                if e.kind() != std::io::ErrorKind::NotFound {
                    report.errors.push(crate::CollectError::Io {
                        path: dir.display().to_string(),
                        source: e,
                    });
                }
                return;
            }
        };
        for e in rd.flatten() {
            let name = e.file_name();
            if let Some(n) = name
                .as_bytes()
                .strip_prefix(prefix.as_bytes())
                .and_then(crate::parse::parse_u64)
            {
                self.entries.push((n, name));
            }
        }
        self.entries.sort();
    }

    /// Lists every entry of `dir` into `self.entries` (number 0), sorted by name.
    pub(crate) fn list_names(&mut self, dir: &Path, report: &mut CollectReport) {
        self.entries.clear();
        match fs::read_dir(dir) {
            Ok(rd) => self
                .entries
                .extend(rd.flatten().map(|e| (0, e.file_name()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => report.errors.push(crate::CollectError::Io {
                path: dir.display().to_string(),
                source: e,
            }),
        }
        self.entries.sort();
    }

    /// Sets the scratch path to `dir/a/b` (`b` may be empty) without allocating once warm.
    fn set(&mut self, dir: &Path, a: &OsString, b: &str) {
        self.path.clear();
        self.path.push(dir);
        self.path.push(a);
        if !b.is_empty() {
            self.path.push(b);
        }
    }

    /// Reads the attribute `dir/entry/attr`, trimmed; `None` if it cannot be read.
    pub(crate) fn read(&mut self, dir: &Path, entry: &OsString, attr: &str) -> Option<&[u8]> {
        self.set(dir, entry, attr);
        let ok = match self.kept.get_mut(&self.path) {
            Some((k, c)) => {
                *c = self.cycle;
                k.read_attr(&self.path, &mut self.buf, &self.fds).is_ok()
            }
            None => {
                let mut k = Kept::default();
                let ok = k.read_attr(&self.path, &mut self.buf, &self.fds).is_ok();
                if k.is_kept() {
                    self.kept.insert(self.path.clone(), (k, self.cycle));
                }
                ok
            }
        };
        ok.then(|| trim(&self.buf))
    }

    /// Reads `dir/entry/attr` as an integer. Unreadable: `None` silently; unparsable:
    /// `None` and an error in `report`.
    pub(crate) fn read_i64(
        &mut self,
        dir: &Path,
        entry: &OsString,
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
    pub(crate) fn canonical(
        &mut self,
        dir: &Path,
        entry: &OsString,
        attr: &str,
    ) -> Option<PathBuf> {
        self.set(dir, entry, attr);
        fs::canonicalize(&self.path).ok()
    }

    /// Lists the file names in `dir/entry` into `names` (cleared first).
    pub(crate) fn files(
        &mut self,
        dir: &Path,
        entry: &OsString,
        names: &mut Vec<OsString>,
        report: &mut CollectReport,
    ) {
        names.clear();
        self.set(dir, entry, "");
        match fs::read_dir(&self.path) {
            Ok(rd) => names.extend(rd.flatten().map(|e| e.file_name())),
            Err(e) => {
                let e = crate::CollectError::Io {
                    path: self.path.display().to_string(),
                    source: e,
                };
                if !is_not_found(&e) {
                    report.errors.push(e);
                }
            }
        }
        names.sort();
    }
}
