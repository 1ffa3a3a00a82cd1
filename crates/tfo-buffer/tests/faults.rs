//! Disk faults and clock jumps: a full file system frees itself once records are
//! acknowledged, a read-only file system is reported as such (never as the buffer's own
//! `Full`), a crash between unlinking acknowledged segments and writing the ledger loses and
//! repeats nothing it should not, and `max_age` is measured on the monotonic clock.
//!
//! The file-system tests need root (tmpfs and bind mounts); without it they print why they
//! are skipped and pass.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use tfo_buffer::{Clock, DiskFault, Error, FsyncMode, Log, ManualClock, Options, WhenFull};

const HOUR: Duration = Duration::from_secs(3600);

fn opts() -> Options {
    Options {
        segment_bytes: 64 << 10,
        max_total_bytes: 1 << 30,
        memory_limit_bytes: 1 << 20,
        fsync: FsyncMode::Never,
        when_full: WhenFull::DropOldest,
        // The ledger is never written by time in these tests: deletion must not need it.
        ledger_interval: HOUR,
        ..Options::default()
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A mount on `path`, unmounted (lazily, so an open file cannot keep it) when dropped, also
/// when the test panics.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(path: &Path, size: &str) -> Result<Mount, String> {
        let p = path.to_str().ok_or("path")?;
        run(
            "mount",
            &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", p],
        )?;
        Ok(Mount(path.to_path_buf()))
    }

    fn read_only_bind(path: &Path) -> Result<Mount, String> {
        let p = path.to_str().ok_or("path")?;
        run("mount", &["--bind", p, p])?;
        let m = Mount(path.to_path_buf());
        run("mount", &["-o", "remount,bind,ro", p])?;
        Ok(m)
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Err(e) = run("umount", &["-l", &self.0.to_string_lossy()]) {
            eprintln!("cannot unmount {}: {e}", self.0.display());
        }
    }
}

macro_rules! need_root {
    ($what:expr) => {
        if !is_root() {
            eprintln!("skipped: {} needs root", $what);
            return;
        }
    };
}

macro_rules! mount_or_skip {
    ($m:expr) => {
        match $m {
            Ok(m) => m,
            Err(e) => {
                eprintln!("skipped: cannot mount ({e})");
                return;
            }
        }
    };
}

/// Opens `dir`, retrying briefly while it is locked: other tests here fork `mount`, and a
/// child holds a copy of our lock descriptor until it execs.
fn reopen(dir: &Path, o: Options) -> Log {
    for _ in 0..100 {
        match Log::open(dir, o.clone()) {
            Err(Error::Locked { .. }) => std::thread::sleep(Duration::from_millis(20)),
            other => return other.expect("reopen"),
        }
    }
    panic!("{} stays locked", dir.display());
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

fn read_all(log: &Log) -> Vec<tfo_buffer::Entry> {
    let mut out = Vec::new();
    loop {
        let b = log.read_batch(256, usize::MAX).expect("read");
        if b.is_empty() {
            return out;
        }
        out.extend(b);
    }
}

/// Appends 1 KiB records until the file system is full; returns how many went in.
fn fill(log: &Log, first_ts: u64) -> u64 {
    let mut n = 0;
    loop {
        match log.append(first_ts + n, vec![n as u8; 1024]) {
            Ok(_) => n += 1,
            Err(e) => {
                assert_eq!(
                    e.disk_fault(),
                    Some(DiskFault::NoSpace),
                    "a full file system is a disk fault, not the buffer's bound: {e}"
                );
                assert!(!matches!(e, Error::Full { .. }));
                return n;
            }
        }
        assert!(n < 100_000, "a 2 MiB file system never filled up");
    }
}

#[test]
fn full_file_system_frees_acknowledged_segments_and_appends_resume() {
    need_root!("mounting a tmpfs");
    let tmp = tempfile::tempdir().expect("tempdir");
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&mnt).expect("mkdir");
    let _m = mount_or_skip!(Mount::tmpfs(&mnt, "2m"));
    let dir = mnt.join("buf");
    let log = Log::open(&dir, opts()).expect("open");

    let n = fill(&log, 0);
    assert!(n > 100, "only {n} records fit");
    let before = segment_files(&dir).len();
    assert!(before > 2);
    // A failed append leaves no partial record and changes nothing.
    assert_eq!(log.stats().next_seq, n + 1);
    assert!(log.append(0, vec![0u8; 1024]).is_err(), "still full");

    // The exporter delivers everything; the acknowledged segments must go although the
    // ledger cannot be written (no space for ledger.tmp).
    let all = read_all(&log);
    assert_eq!(all.len() as u64, n);
    log.ack(n).expect("ack");
    let s = log.stats();
    assert_eq!(s.records, 0);
    assert!(
        segment_files(&dir).len() <= 1,
        "acknowledged segments were not deleted: {:?}",
        segment_files(&dir)
    );

    // Appends work again, and as many fit as before, less at most one segment: the
    // acknowledged head of the segment that was active stays until that segment is done.
    let m = fill(&log, 1_000_000);
    let per_segment = opts().segment_bytes / 1056 + 1;
    assert!(
        m + per_segment + 2 >= n,
        "after freeing, only {m} of {n} records fit"
    );
    let got = read_all(&log);
    assert_eq!(got.len() as u64, m);
    assert_eq!(got[0].seq, n + 1);
    let first_file = first_file_seq(&dir);
    // The ledger is overwritten in place, which needs no new block: even on the full file
    // system close records the acknowledged position.
    log.close()
        .expect("close on a full file system writes the ledger in place");

    // Reopened: every record not acknowledged is there; of the acknowledged ones only those
    // in the first remaining segment are delivered again (acknowledged since the last
    // ledger write, the documented at-least-once window), none of the deleted segments.
    let log = reopen(&dir, opts());
    let got: Vec<u64> = read_all(&log).iter().map(|e| e.seq).collect();
    let start = got.first().copied().expect("records");
    assert!(start <= n + 1, "lost records");
    assert!(start >= first_file, "replayed deleted records");
    assert_eq!(
        start,
        n + 1,
        "the closing ledger write made it: nothing is sent twice"
    );
    assert_eq!(got, (start..=n + m).collect::<Vec<_>>());
    assert_eq!(log.stats().corrupt_records, 0);
    assert_eq!(log.recovery().truncated_bytes, 0);
}

fn first_file_seq(dir: &Path) -> u64 {
    segment_files(dir)
        .first()
        .and_then(|p| p.file_stem()?.to_str()?.parse::<u64>().ok())
        .expect("a segment")
}

#[test]
fn crash_after_deleting_acknowledged_segments_before_the_ledger_loses_nothing() {
    // The ledger is never written during the run (interval of an hour) while segments are
    // deleted as they are acknowledged; a crash then finds the ledger before the first
    // segment. Nothing unacknowledged may be lost, and only records of the first remaining
    // segment (acknowledged after the last ledger write) may be delivered again.
    for ack_upto in [1u64, 57, 63, 64, 200, 511, 512] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("buf");
        let o = Options {
            segment_bytes: 2048,
            ..opts()
        };
        let log = Log::open(&dir, o.clone()).expect("open");
        for i in 1..=512u64 {
            log.append(i, vec![i as u8; 100]).expect("append");
        }
        assert_eq!(read_all(&log).len(), 512);
        log.ack(ack_upto).expect("ack");
        let first_kept = log.stats().first_unacked_seq;
        assert_eq!(first_kept, ack_upto + 1);
        let first_file = first_file_seq(&dir);
        assert!(first_file <= ack_upto + 1);
        log.crash();

        let log = reopen(&dir, o);
        assert_eq!(log.recovery().corrupt_records, 0, "ack {ack_upto}");
        let got: Vec<u64> = read_all(&log).iter().map(|e| e.seq).collect();
        let start = got.first().copied().unwrap_or(513);
        assert!(start <= ack_upto + 1, "lost records after ack {ack_upto}");
        assert!(
            start >= first_file,
            "replayed records of deleted segments after ack {ack_upto}"
        );
        assert_eq!(got, (start..=512).collect::<Vec<_>>());
    }
}

#[test]
fn read_only_file_system_at_append_is_a_disk_fault_and_passes() {
    need_root!("a read-only bind mount");
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("buf");
    let o = Options {
        segment_bytes: 4096,
        ..opts()
    };
    let log = Log::open(&dir, o.clone()).expect("open");
    for i in 0..10u64 {
        log.append(i, vec![1u8; 1000]).expect("append");
    }
    let read = read_all(&log);
    {
        let _ro = mount_or_skip!(Mount::read_only_bind(&dir));
        // The open segment still takes writes (it was opened before); the next segment
        // cannot be created.
        let mut fault = None;
        for i in 0..10u64 {
            if let Err(e) = log.append(100 + i, vec![2u8; 1000]) {
                fault = Some(e);
                break;
            }
        }
        let e = fault.expect("appends on a read-only file system must fail");
        assert_eq!(e.disk_fault(), Some(DiskFault::ReadOnly), "{e}");
        // Acknowledging works in memory; deleting fails quietly and is retried later.
        log.ack(read.last().expect("read").seq).expect("ack");
        let s = log.stats();
        assert!(
            s.segments >= 2,
            "segments cannot be deleted while read-only"
        );
        assert!(s.delete_errors >= 1, "failed deletions are counted: {s:?}");
    }
    // Writable again: the pending deletions happen and appends continue.
    let out = log
        .append(200, vec![3u8; 1000])
        .expect("append after remount");
    let s = log.stats();
    assert_eq!(s.first_unacked_seq, read.len() as u64 + 1);
    assert!(out.seq > read.len() as u64);
    log.close().expect("close");
    let log = reopen(&dir, o);
    assert_eq!(log.recovery().corrupt_records, 0);
}

#[test]
fn read_only_file_system_at_open_is_a_disk_fault() {
    need_root!("a read-only bind mount");
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = tmp.path().join("base");
    let existing = base.join("existing");
    let log = Log::open(&existing, opts()).expect("open");
    log.append(1, b"x".to_vec()).expect("append");
    log.close().expect("close");
    let _ro = mount_or_skip!(Mount::read_only_bind(&base));
    for dir in [base.join("new"), existing] {
        let e = Log::open(&dir, opts()).err().expect("open must fail");
        assert_eq!(e.disk_fault(), Some(DiskFault::ReadOnly), "{e}");
        assert!(e.to_string().contains(&*base.to_string_lossy()), "{e}");
    }
}

fn clocked(clock: &Arc<ManualClock>) -> Options {
    Options {
        clock: clock.clone(),
        ..opts()
    }
}

#[test]
fn max_age_survives_wall_clock_jumps_within_a_run() {
    let t0 = 1_700_000_000_000u64;
    let clock = ManualClock::new(t0);
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = Log::open(tmp.path().join("buf"), clocked(&clock)).expect("open");
    // Ten records, one a minute, stamped with the wall clock as the agent does.
    for i in 0..10u64 {
        log.append(clock.wall_ms(), vec![i as u8; 10])
            .expect("append");
        clock.advance(Duration::from_secs(60));
    }
    // Someone sets the clock two days forward: nothing is 24 h old.
    clock.jump(48 * 3600 * 1000);
    assert_eq!(log.expire_older_than(24 * HOUR).expect("expire"), None);
    assert_eq!(log.oldest_age(), Some(Duration::from_secs(600)));
    // The wall-clock variant, for contrast, would drop everything.
    // Records written after the jump carry the new wall time and are aged correctly too.
    for i in 10..15u64 {
        log.append(clock.wall_ms(), vec![i as u8; 10])
            .expect("append");
        clock.advance(Duration::from_secs(60));
    }
    // 24 h after the first record, the first one expires, then one a minute.
    clock.advance(24 * HOUR - Duration::from_secs(15 * 60));
    let d = log.expire_older_than(24 * HOUR).expect("expire");
    assert_eq!(d.map(|d| d.records), Some(1));
    // Back by three days: age still counts real time.
    clock.jump(-72 * 3600 * 1000);
    clock.advance(Duration::from_secs(4 * 60));
    let d = log.expire_older_than(24 * HOUR).expect("expire");
    assert_eq!(d.map(|d| d.records), Some(4));
    assert_eq!(log.stats().records, 10);
    assert_eq!(
        log.oldest_age(),
        Some(24 * HOUR - Duration::from_secs(60)),
        "the record appended at minute 5"
    );
    clock.advance(Duration::from_secs(10 * 60));
    let d = log.expire_older_than(24 * HOUR).expect("expire");
    assert_eq!(d.map(|d| d.records), Some(10), "the post-jump records too");
}

#[test]
fn max_age_across_a_restart_ignores_downtime_and_jumps() {
    let t0 = 1_700_000_000_000u64;
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("buf");
    let clock = ManualClock::new(t0);
    let log = Log::open(&dir, clocked(&clock)).expect("open");
    for i in 0..6u64 {
        log.append(clock.wall_ms(), vec![i as u8; 10])
            .expect("append");
        clock.advance(HOUR);
    }
    log.close().expect("close");

    // The next process starts with its own monotonic clock, and the wall clock is five
    // days ahead (a long downtime or a clock set forward: they look the same).
    let clock = ManualClock::new(t0 + 5 * 24 * 3_600_000);
    let log = reopen(&dir, clocked(&clock));
    assert_eq!(log.expire_older_than(24 * HOUR).expect("expire"), None);
    // Aged relative to the newest record found (written 5 h after the oldest).
    assert_eq!(log.oldest_age(), Some(5 * HOUR));
    clock.advance(19 * HOUR);
    let d = log.expire_older_than(24 * HOUR).expect("expire");
    assert_eq!(d.map(|d| d.records), Some(1));
    // New records of this run follow this run's monotonic clock.
    log.append(clock.wall_ms(), b"new".to_vec())
        .expect("append");
    clock.advance(5 * HOUR);
    let d = log.expire_older_than(24 * HOUR).expect("expire");
    assert_eq!(d.map(|d| d.records), Some(5));
    assert_eq!(log.stats().records, 1);
    assert_eq!(log.oldest_age(), Some(5 * HOUR));
}
