//! The checkpoint file: which content (fingerprint) was read durably up to which offset.
//!
//! `<dir>/checkpoints.json`, replaced atomically: written to `checkpoints.json.tmp`,
//! fsynced, renamed over the old file, and the directory fsynced, so a crash at any moment
//! leaves either the old or the new table. Paths are for humans; matching is by fingerprint,
//! with device and inode as a tie-breaker.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub(crate) const FILE_NAME: &str = "checkpoints.json";
const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// `<prefix length>:<FNV-1a 64 of the prefix, hex>`.
    pub fingerprint: String,
    /// Everything before this offset is durable downstream.
    pub offset: u64,
    /// Where the file was last seen (informative).
    pub path: String,
    pub dev: u64,
    pub ino: u64,
    /// Birth time of the file in ns, where the file system records one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub born: Option<u64>,
    /// Unix seconds when the file was last seen.
    pub seen: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Table {
    pub version: u32,
    /// The `paths` patterns in use when the table was written: a file without a checkpoint
    /// that matches one of them appeared after the agent started watching, so it is read
    /// from its beginning.
    pub patterns: Vec<String>,
    pub files: Vec<Entry>,
}

pub(crate) fn path_in(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// The table in `dir`, `Ok(None)` when there is none yet.
pub(crate) fn load(dir: &Path) -> io::Result<Option<Table>> {
    let bytes = match fs::read(path_in(dir)) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let table: Table = serde_json::from_slice(&bytes)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    if table.version != VERSION {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unknown checkpoint file version {}", table.version),
        ));
    }
    Ok(Some(table))
}

/// Replaces the table in `dir` atomically and durably.
pub(crate) fn save(dir: &Path, patterns: &[String], files: Vec<Entry>) -> io::Result<()> {
    let table = Table {
        version: VERSION,
        patterns: patterns.to_vec(),
        files,
    };
    let bytes = serde_json::to_vec(&table).map_err(io::Error::other)?;
    let tmp = dir.join(format!("{FILE_NAME}.tmp"));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path_in(dir))?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_none());
        let e = Entry {
            fingerprint: "12:00000000000000ff".into(),
            offset: 7,
            path: "/var/log/a.log".into(),
            dev: 1,
            ino: 2,
            born: None,
            seen: 3,
        };
        save(dir.path(), &["/var/log/*.log".into()], vec![e.clone()]).unwrap();
        let t = load(dir.path()).unwrap().unwrap();
        assert_eq!(t.files, [e]);
        assert_eq!(t.patterns, ["/var/log/*.log"]);
        assert!(!dir.path().join("checkpoints.json.tmp").exists());
        fs::write(path_in(dir.path()), b"{not json").unwrap();
        assert_eq!(
            load(dir.path()).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }
}
