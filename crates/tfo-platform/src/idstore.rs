//! Persistence of the platform-assigned agent id across restarts.
//!
//! Rule: a configured `agent.id` wins and is never overwritten; otherwise the persisted id
//! is sent at registration; otherwise the id in the platform's reply is persisted. The file
//! is written atomically (temporary file, fsync, rename, directory fsync), mode 0600, so a
//! crash leaves the old id or the new one, never a torn file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The file name inside the data directory.
pub const FILE_NAME: &str = "agent-id";

const MAX_ID_LEN: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum IdStoreError {
    #[error("agent id file {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("agent id file {}: {problem}; delete it to register as a new agent", path.display())]
    Corrupt { path: PathBuf, problem: String },
    #[error("agent id {0}")]
    InvalidId(String),
}

/// Where the agent id came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdSource {
    /// `agent.id` in the configuration.
    Configured,
    /// The id file in the data directory.
    Persisted,
    /// The platform's registration reply.
    Platform,
}

/// An id is sent in a URL path segment and an HTTP header: printable ASCII without spaces,
/// at most 256 characters.
pub fn validate_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("is empty".into());
    }
    if id.len() > MAX_ID_LEN {
        return Err(format!("is longer than {MAX_ID_LEN} characters"));
    }
    if !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be printable ASCII without spaces".into());
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub struct IdStore {
    dir: PathBuf,
}

impl IdStore {
    /// `data_dir` is the agent's data directory (e.g. `/var/lib/tfo-agent`).
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        IdStore {
            dir: data_dir.into(),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// The persisted id, `None` when there is none yet.
    pub fn load(&self) -> Result<Option<String>, IdStoreError> {
        let path = self.path();
        let text = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(IdStoreError::Io { path, source }),
        };
        let text = String::from_utf8(text).map_err(|_| IdStoreError::Corrupt {
            path: path.clone(),
            problem: "not UTF-8 text".into(),
        })?;
        let id = text.trim();
        validate_id(id).map_err(|p| IdStoreError::Corrupt {
            path: path.clone(),
            problem: format!("the id {p}"),
        })?;
        Ok(Some(id.to_string()))
    }

    /// Persists `id` atomically. Creates the data directory (mode 0700) when missing; an
    /// existing directory keeps its mode, since other components share it.
    pub fn save(&self, id: &str) -> Result<(), IdStoreError> {
        validate_id(id).map_err(IdStoreError::InvalidId)?;
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| IdStoreError::Io { path, source }
        };
        if !self.dir.is_dir() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.dir)
                .map_err(io_err(&self.dir))?;
        }
        let tmp = self
            .dir
            .join(format!(".{FILE_NAME}.tmp.{}", std::process::id()));
        // A leftover from a crash with our pid would make create_new fail.
        let _ = fs::remove_file(&tmp);
        let write = || -> io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(id.as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(io_err(&tmp)(e));
        }
        let path = self.path();
        if let Err(e) = fs::rename(&tmp, &path) {
            let _ = fs::remove_file(&tmp);
            return Err(io_err(&path)(e));
        }
        // The rename is durable only once the directory entry is.
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&self.dir))?;
        Ok(())
    }

    /// The id to send at registration, applying the rule in the module docs.
    pub fn initial_id(
        &self,
        configured: Option<&str>,
    ) -> Result<Option<(String, IdSource)>, IdStoreError> {
        if let Some(c) = configured.map(str::trim).filter(|c| !c.is_empty()) {
            validate_id(c).map_err(IdStoreError::InvalidId)?;
            return Ok(Some((c.to_string(), IdSource::Configured)));
        }
        Ok(self.load()?.map(|id| (id, IdSource::Persisted)))
    }

    /// The id to use after registration. A configured id is kept even if the platform
    /// answered another one; otherwise the platform's id is persisted when it differs
    /// from the stored one.
    pub fn adopt(
        &self,
        configured: Option<&str>,
        platform_id: &str,
    ) -> Result<(String, IdSource), IdStoreError> {
        if let Some(c) = configured.map(str::trim).filter(|c| !c.is_empty()) {
            if c != platform_id {
                tracing::warn!(
                    configured = c,
                    platform = platform_id,
                    "the platform answered a different agent id; keeping the configured agent.id"
                );
            }
            return Ok((c.to_string(), IdSource::Configured));
        }
        if self.load().ok().flatten().as_deref() != Some(platform_id) {
            self.save(platform_id)?;
        }
        Ok((platform_id.to_string(), IdSource::Platform))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn save_load_modes_and_rule() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("data");
        let s = IdStore::new(&dir);
        assert_eq!(s.load().unwrap(), None);
        assert_eq!(s.initial_id(None).unwrap(), None);
        s.save("agent-123").unwrap();
        assert_eq!(s.load().unwrap().as_deref(), Some("agent-123"));
        let fmode = fs::metadata(s.path()).unwrap().permissions().mode() & 0o777;
        let dmode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!((fmode, dmode), (0o600, 0o700));
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);

        assert_eq!(
            s.initial_id(None).unwrap(),
            Some(("agent-123".into(), IdSource::Persisted))
        );
        assert_eq!(
            s.initial_id(Some("cfg-1")).unwrap(),
            Some(("cfg-1".into(), IdSource::Configured))
        );
        // Configured wins and the file is untouched.
        assert_eq!(
            s.adopt(Some("cfg-1"), "platform-9").unwrap(),
            ("cfg-1".into(), IdSource::Configured)
        );
        assert_eq!(s.load().unwrap().as_deref(), Some("agent-123"));
        // Without a configured id the platform's id replaces the stored one.
        assert_eq!(
            s.adopt(None, "platform-9").unwrap(),
            ("platform-9".into(), IdSource::Platform)
        );
        assert_eq!(s.load().unwrap().as_deref(), Some("platform-9"));
    }

    #[test]
    fn corrupt_and_invalid_ids_are_explained() {
        let t = tempfile::tempdir().unwrap();
        let s = IdStore::new(t.path());
        fs::write(s.path(), "has space\n").unwrap();
        let e = s.load().unwrap_err().to_string();
        assert!(e.contains("agent-id") && e.contains("delete it"), "{e}");
        assert!(s.save("").is_err());
        assert!(s.save("a/b c").is_err());
        assert!(s.initial_id(Some("bad id")).is_err());
    }
}
