//! Reads shared by the collectors of one cycle. The default `system` and `node_exporter`
//! collectors run one after the other on one thread (same interval) and both read
//! /proc/stat, /proc/meminfo, /proc/diskstats, /proc/loadavg and /proc/net/dev. The kernel
//! generates a /proc file afresh on every read, which is most of what reading it costs;
//! within a cycle the second reader gets the first one's bytes instead.
//!
//! The caller that runs the cycle opens it ([`SharedReads::begin`]); reads outside a cycle,
//! or of files not marked shared, go to the kernel as before. Only successful reads are
//! kept, so an error is met (and reported) by each collector on its own, and only for
//! [`MAX_AGE`]: a collector that waited on a stuck network mount does not hand the next
//! one values older than its own timestamp. Everything is thread-local: a cycle is one
//! thread's.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::CollectError;

/// Most files kept in one cycle (the shared files of the collectors of one thread).
const MAX_FILES: usize = 16;
/// Larger files are not kept (a host with thousands of CPUs or disks).
const MAX_BYTES: usize = 256 << 10;
/// A kept read older than this is read again (a cycle's collectors take about a
/// millisecond together; a statvfs on a hung mount waits up to a second).
pub const MAX_AGE: Duration = Duration::from_millis(50);

#[derive(Default)]
struct Cycle {
    active: bool,
    /// Slots kept across cycles (their capacity reused); the first `used` hold this cycle's,
    /// with when they were read.
    files: Vec<(PathBuf, Vec<u8>, Instant)>,
    used: usize,
}

thread_local! {
    static CYCLE: RefCell<Cycle> = RefCell::default();
}

/// An open cycle of shared reads on this thread; dropping it ends the cycle.
pub struct SharedReads {
    // Ends the cycle of the thread that began it: not Send.
    _thread: std::marker::PhantomData<*const ()>,
}

impl SharedReads {
    /// Begins a cycle on this thread: until the guard is dropped, each file marked shared
    /// is read from the kernel once.
    pub fn begin() -> SharedReads {
        CYCLE.with_borrow_mut(|c| {
            c.active = true;
            c.used = 0;
        });
        SharedReads {
            _thread: std::marker::PhantomData,
        }
    }
}

impl Drop for SharedReads {
    fn drop(&mut self) {
        CYCLE.with_borrow_mut(|c| {
            c.active = false;
            c.used = 0;
        });
    }
}

/// `path`'s content in `buf`: this cycle's copy when a collector has read it already,
/// otherwise `read` (which fills `buf`), kept for the cycle's other readers.
pub(crate) fn read(
    path: &Path,
    buf: &mut Vec<u8>,
    read: impl FnOnce(&mut Vec<u8>) -> Result<(), CollectError>,
) -> Result<(), CollectError> {
    let hit = CYCLE.with_borrow(|c| {
        let found = c.active.then(|| {
            c.files[..c.used]
                .iter()
                .find(|(p, _, at)| p == path && at.elapsed() <= MAX_AGE)
        });
        if let Some(Some((_, bytes, _))) = found {
            buf.clear();
            buf.extend_from_slice(bytes);
            true
        } else {
            false
        }
    });
    if hit {
        return Ok(());
    }
    read(buf)?;
    let now = Instant::now();
    CYCLE.with_borrow_mut(|c| {
        if !c.active || buf.len() > MAX_BYTES {
            return;
        }
        // A stale copy of the same file is replaced in place.
        let slot = match c.files[..c.used].iter().position(|(p, _, _)| p == path) {
            Some(i) => i,
            None if c.used < MAX_FILES => {
                if c.used == c.files.len() {
                    c.files.push((PathBuf::new(), Vec::new(), now));
                }
                c.used += 1;
                c.used - 1
            }
            None => return,
        };
        let (p, bytes, at) = &mut c.files[slot];
        p.as_mut_os_string().clear();
        p.push(path);
        bytes.clear();
        bytes.extend_from_slice(buf);
        *at = now;
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader<'a>(
        calls: &'a mut u32,
        content: &'a [u8],
    ) -> impl FnOnce(&mut Vec<u8>) -> Result<(), CollectError> + 'a {
        move |b| {
            *calls += 1;
            b.clear();
            b.extend_from_slice(content);
            Ok(())
        }
    }

    #[test]
    fn a_file_is_read_once_per_cycle_and_only_within_one() {
        let (p, q) = (Path::new("/proc/stat"), Path::new("/proc/meminfo"));
        let mut buf = Vec::new();
        let mut calls = 0;
        // Outside a cycle: every read goes to the file.
        read(p, &mut buf, reader(&mut calls, b"a")).unwrap();
        read(p, &mut buf, reader(&mut calls, b"a")).unwrap();
        assert_eq!(calls, 2);
        {
            let _cycle = SharedReads::begin();
            read(p, &mut buf, reader(&mut calls, b"one")).unwrap();
            buf.clear();
            read(p, &mut buf, reader(&mut calls, b"two")).unwrap();
            assert_eq!(
                (calls, buf.as_slice()),
                (3, &b"one"[..]),
                "second read shared"
            );
            read(q, &mut buf, reader(&mut calls, b"mem")).unwrap();
            assert_eq!(
                (calls, buf.as_slice()),
                (4, &b"mem"[..]),
                "another file is read"
            );
        }
        {
            let _cycle = SharedReads::begin();
            read(p, &mut buf, reader(&mut calls, b"next")).unwrap();
            assert_eq!(
                (calls, buf.as_slice()),
                (5, &b"next"[..]),
                "a new cycle reads again"
            );
        }
    }

    #[test]
    fn a_read_older_than_max_age_is_read_again() {
        let p = Path::new("/proc/loadavg");
        let _cycle = SharedReads::begin();
        let (mut buf, mut calls) = (Vec::new(), 0);
        read(p, &mut buf, reader(&mut calls, b"old")).unwrap();
        std::thread::sleep(MAX_AGE + Duration::from_millis(10));
        read(p, &mut buf, reader(&mut calls, b"new")).unwrap();
        assert_eq!((calls, buf.as_slice()), (2, &b"new"[..]));
        read(p, &mut buf, reader(&mut calls, b"newer")).unwrap();
        assert_eq!(
            (calls, buf.as_slice()),
            (2, &b"new"[..]),
            "the fresh copy is kept"
        );
    }

    #[test]
    fn a_failed_read_is_not_kept() {
        let p = Path::new("/proc/diskstats");
        let _cycle = SharedReads::begin();
        let mut buf = Vec::new();
        let failed = read(p, &mut buf, |_| {
            Err(CollectError::Parse {
                path: "x".into(),
                reason: "no".into(),
            })
        });
        assert!(failed.is_err());
        let mut calls = 0;
        read(p, &mut buf, reader(&mut calls, b"ok")).unwrap();
        assert_eq!((calls, buf.as_slice()), (1, &b"ok"[..]));
    }
}
