//! Bounds, drop accounting, expiry, fsync modes, file modes, open errors, locking and
//! concurrent use.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tfo_buffer::{DropReason, Error, FsyncMode, Log, Options, WhenFull, inspect};

fn opts() -> Options {
    Options {
        segment_bytes: 4096,
        max_total_bytes: 1 << 30,
        memory_limit_bytes: 1 << 20,
        fsync: FsyncMode::Never,
        when_full: WhenFull::DropOldest,
        ledger_interval: Duration::from_secs(3600),
        ..Options::default()
    }
}

fn disk_use(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry"))
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .map(|e| e.metadata().expect("stat").len())
        .sum()
}

fn read_all(log: &Log) -> Vec<tfo_buffer::Entry> {
    let mut out = Vec::new();
    loop {
        let b = log.read_batch(100, usize::MAX).expect("read");
        if b.is_empty() {
            return out;
        }
        out.extend(b);
    }
}

#[test]
fn drop_oldest_counts_exactly_and_keeps_disk_under_the_limit() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("buf");
    let max = 64 * 1024;
    let o = Options {
        max_total_bytes: max,
        ..opts()
    };
    let log = Log::open(&dir, o.clone()).expect("open");
    let (mut dropped_records, mut dropped_bytes) = (0u64, 0u64);
    let n = 2000u64;
    for i in 0..n {
        let payload = vec![i as u8; 100 + (i % 37) as usize];
        let out = log
            .append(i, payload)
            .expect("append never fails with drop_oldest");
        if let Some(d) = out.dropped {
            assert_eq!(d.reason, DropReason::Full);
            dropped_records += d.records;
            dropped_bytes += d.bytes;
        }
        let used = disk_use(&dir);
        assert!(
            used <= max,
            "disk use {used} exceeds {max} after append {i}"
        );
        assert_eq!(log.stats().disk_bytes, used);
    }
    let s = log.stats();
    assert!(dropped_records > 0);
    assert_eq!(s.dropped_full.records, dropped_records);
    assert_eq!(s.dropped_full.bytes, dropped_bytes);
    // Nothing lost without being counted: kept + dropped = appended.
    let kept = read_all(&log);
    assert_eq!(kept.len() as u64 + dropped_records, n);
    assert_eq!(s.records, kept.len() as u64);
    // What is kept is the newest, in order, with the bytes counted accurately.
    let first = kept[0].timestamp_ms;
    assert_eq!(first, dropped_records);
    for (k, e) in kept.iter().enumerate() {
        assert_eq!(e.timestamp_ms, first + k as u64);
    }
    let all_bytes: u64 = (0..n).map(|i| 32 + 100 + i % 37).sum();
    let kept_bytes: u64 = kept.iter().map(|e| 32 + e.payload.len() as u64).sum();
    assert_eq!(kept_bytes + dropped_bytes, all_bytes);
}

#[test]
fn drop_oldest_bytes_exclude_what_was_acknowledged() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let o = Options {
        max_total_bytes: 8192,
        segment_bytes: 1024,
        ..opts()
    };
    let log = Log::open(tmp.path(), o).expect("open");
    for i in 0..40 {
        log.append(i, vec![1u8; 68]).expect("append"); // 100 bytes framed
    }
    // Acknowledge 3 records of the first segment (10 records of 100 bytes).
    let b = log.read_batch(3, usize::MAX).expect("read");
    log.ack(b[2].seq).expect("ack");
    let mut total = (0, 0);
    for i in 40..200 {
        if let Some(d) = log.append(i, vec![1u8; 68]).expect("append").dropped {
            if total == (0, 0) {
                assert_eq!(
                    (d.records, d.bytes),
                    (7, 700),
                    "first drop is the partly acked segment"
                );
            }
            total.0 += d.records;
            total.1 += d.bytes;
        }
    }
    let left = read_all(&log).len() as u64;
    assert_eq!(3 + total.0 + left, 200);
    assert_eq!(total.1, total.0 * 100);
}

#[test]
fn reject_when_full_and_accept_again_after_ack() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let o = Options {
        max_total_bytes: 10_000,
        segment_bytes: 1000,
        when_full: WhenFull::Reject,
        ..opts()
    };
    let log = Log::open(tmp.path(), o).expect("open");
    let mut appended = 0;
    let err = loop {
        match log.append(0, vec![0u8; 68]) {
            Ok(out) => {
                assert!(out.dropped.is_none());
                appended += 1;
            }
            Err(e) => break e,
        }
        assert!(appended < 1000, "never rejected");
    };
    assert!(matches!(err, Error::Full { limit: 10_000, .. }), "{err}");
    assert_eq!(appended, 100);
    assert!(disk_use(tmp.path()) <= 10_000);
    // Nothing was dropped; every record is still there.
    let all = read_all(&log);
    assert_eq!(all.len(), 100);
    assert_eq!(log.stats().dropped_full.records, 0);
    // Acknowledging frees whole segments, and appends work again.
    log.ack(all[49].seq).expect("ack");
    log.append(0, vec![0u8; 68]).expect("room again");
}

#[test]
fn a_record_larger_than_the_limit_is_an_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let o = Options {
        max_total_bytes: 1000,
        ..opts()
    };
    let log = Log::open(tmp.path(), o).expect("open");
    let err = log.append(0, vec![0u8; 1000]).expect_err("too large");
    assert!(matches!(err, Error::TooLarge { size: 1032, .. }), "{err}");
    // The largest record that fits is accepted, even if it needs everything else dropped.
    log.append(0, vec![0u8; 500]).expect("fits");
    let out = log.append(1, vec![0u8; 968]).expect("fits alone");
    assert_eq!(out.dropped.map(|d| d.records), Some(1));
    assert_eq!(read_all(&log).len(), 1);
}

#[test]
fn memory_tail_is_bounded_and_disk_serves_the_rest() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let o = Options {
        memory_limit_bytes: 10_000,
        ..opts()
    };
    let log = Log::open(tmp.path(), o).expect("open");
    for i in 0..1000u64 {
        log.append(i, vec![(i % 251) as u8; 100]).expect("append");
        assert!(log.stats().memory_bytes <= 10_000);
    }
    let s = log.stats();
    assert_eq!(s.memory_records, 100);
    let all = read_all(&log);
    assert_eq!(all.len(), 1000);
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e.timestamp_ms, i as u64);
        assert_eq!(&e.payload[..], &[(i % 251) as u8; 100][..]);
    }
}

#[test]
fn expire_discards_old_records_from_the_head_only() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = Log::open(tmp.path(), opts()).expect("open");
    for ts in [100, 200, 300, 150, 400, 500] {
        log.append(ts, vec![0u8; 10]).expect("append");
    }
    assert_eq!(log.stats().oldest_timestamp_ms, Some(100));
    // Cutoff 350: 100, 200, 300 and 150 go; 400 stops it.
    let d = log
        .expire(Duration::from_millis(650), 1000)
        .expect("expire")
        .expect("something expired");
    assert_eq!(
        (d.reason, d.records, d.bytes),
        (DropReason::MaxAge, 4, 4 * 42)
    );
    assert!(
        log.expire(Duration::from_millis(650), 1000)
            .expect("again")
            .is_none()
    );
    let s = log.stats();
    assert_eq!(s.dropped_max_age.records, 4);
    assert_eq!(s.oldest_timestamp_ms, Some(400));
    assert_eq!(s.records, 2);
    let left: Vec<u64> = read_all(&log).iter().map(|e| e.timestamp_ms).collect();
    assert_eq!(left, vec![400, 500]);
}

#[test]
fn expire_deletes_segments_it_empties() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let o = Options {
        segment_bytes: 500,
        ..opts()
    };
    let log = Log::open(tmp.path(), o).expect("open");
    for ts in 0..100 {
        log.append(ts, vec![0u8; 68]).expect("append");
    }
    let before = log.stats().segments;
    let d = log.expire(Duration::from_millis(10), 100).expect("expire");
    assert_eq!(d.map(|d| d.records), Some(90));
    assert!(log.stats().segments < before);
    assert_eq!(disk_use(tmp.path()), log.stats().disk_bytes);
}

#[test]
fn ack_and_rewind_semantics() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = Log::open(tmp.path(), opts()).expect("open");
    for i in 0..10 {
        log.append(i, vec![i as u8]).expect("append");
    }
    let b = log.read_batch(4, usize::MAX).expect("read");
    assert_eq!(
        b.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    log.ack(2).expect("ack");
    log.rewind();
    let b = log.read_batch(100, usize::MAX).expect("read");
    assert_eq!(b.first().map(|e| e.seq), Some(3));
    assert_eq!(b.len(), 8);
    assert!(matches!(
        log.ack(11),
        Err(Error::AckOutOfRange {
            seq: 11,
            newest: 10
        })
    ));
    log.ack(1).expect("acking an older sequence is a no-op");
    log.ack(10).expect("ack all");
    assert_eq!(log.stats().records, 0);
    assert!(log.read_batch(10, 10).expect("read").is_empty());
    // Byte budget: at least one record even if it alone exceeds max_bytes.
    log.append(0, vec![0u8; 100]).expect("append");
    log.append(0, vec![0u8; 100]).expect("append");
    assert_eq!(log.read_batch(10, 1).expect("read").len(), 1);
    assert_eq!(log.read_batch(10, 1000).expect("read").len(), 1);
}

#[test]
fn file_modes_are_private() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("a/b/buf");
    let o = Options {
        segment_bytes: 200,
        ..opts()
    };
    let log = Log::open(&dir, o.clone()).expect("open");
    for i in 0..20 {
        log.append(i, vec![0u8; 50]).expect("append");
    }
    let b = log.read_batch(5, usize::MAX).expect("read");
    log.ack(b[4].seq).expect("ack");
    log.close().expect("close");
    let mode = |p: &Path| fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    let mut files = 0;
    for e in fs::read_dir(&dir).expect("list") {
        let p = e.expect("entry").path();
        assert_eq!(mode(&p), 0o600, "{}", p.display());
        files += 1;
    }
    assert!(files >= 4, "segments, ledger and lock file");
    assert!(dir.join("ledger").exists());

    // A directory and files made too open by someone else are narrowed on open.
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod");
    for e in fs::read_dir(&dir).expect("list") {
        fs::set_permissions(e.expect("entry").path(), fs::Permissions::from_mode(0o644))
            .expect("chmod");
    }
    let log = Log::open(&dir, o).expect("reopen");
    log.close().expect("close");
    assert_eq!(mode(&dir), 0o700);
    for e in fs::read_dir(&dir).expect("list") {
        let p = e.expect("entry").path();
        assert_eq!(mode(&p), 0o600, "{}", p.display());
    }
}

#[test]
fn unusable_path_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("plain-file");
    fs::write(&file, b"x").expect("write");
    let dir = file.join("buf");
    let err = Log::open(&dir, opts()).err().expect("must fail");
    let msg = err.to_string();
    assert!(msg.contains(&dir.display().to_string()), "{msg}");
    let err = inspect(&dir).expect_err("inspect must fail");
    assert!(err.to_string().contains("plain-file"), "{err}");

    let bad = Options {
        max_total_bytes: 0,
        ..opts()
    };
    assert!(matches!(
        Log::open(tmp.path().join("x"), bad),
        Err(Error::InvalidOptions(_))
    ));
    let bad = Options {
        fsync: FsyncMode::Interval(Duration::ZERO),
        ..opts()
    };
    assert!(matches!(
        Log::open(tmp.path().join("y"), bad),
        Err(Error::InvalidOptions(_))
    ));
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = Log::open(tmp.path(), opts()).expect("open");
    let err = Log::open(tmp.path(), opts())
        .err()
        .expect("second open must fail");
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    drop(log);
    Log::open(tmp.path(), opts()).expect("open after the first is dropped");
}

/// What this can check in-process: every fsync mode reopens what was appended after an
/// abandoned (never closed) log, and syncing reports no error. It says nothing about
/// whether data reached stable storage; only a power cut could (`tests/crash.rs` kills a
/// real process, which tests the write-to-kernel guarantee).
#[test]
fn every_fsync_mode_reopens_an_abandoned_log_whole() {
    for mode in [
        FsyncMode::Always,
        FsyncMode::Interval(Duration::from_millis(5)),
        FsyncMode::Never,
    ] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let o = Options {
            fsync: mode,
            segment_bytes: 1000,
            ..opts()
        };
        let log = Log::open(tmp.path(), o.clone()).expect("open");
        for i in 0..100 {
            log.append(i, vec![i as u8; 30]).expect("append");
        }
        log.sync_if_due().expect("sync_if_due");
        log.sync().expect("sync");
        log.crash();
        let log = Log::open(tmp.path(), o.clone()).expect("reopen");
        assert_eq!(read_all(&log).len(), 100, "{mode:?}");
        assert_eq!(log.stats().sync_errors, 0);
        log.close().expect("close");
    }
}

#[test]
fn an_interval_sync_flushes_only_while_something_is_unacknowledged() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let o = Options {
        // Long enough that only the explicit syncs below run.
        fsync: FsyncMode::Interval(Duration::from_secs(3600)),
        ..opts()
    };
    let log = Log::open(tmp.path(), o.clone()).expect("open");
    let base = log.stats();
    for i in 0..10 {
        log.append(i, vec![i as u8; 30]).expect("append");
    }
    // Unread: flushed.
    log.sync().expect("sync");
    let s = log.stats();
    assert_eq!(s.segment_syncs - base.segment_syncs, 1, "{s:?}");
    assert_eq!(s.syncs_skipped - base.syncs_skipped, 0, "{s:?}");

    // Read and acknowledged: nothing will read it again, so no flush.
    for i in 10..20 {
        log.append(i, vec![i as u8; 30]).expect("append");
    }
    let got = read_all(&log);
    log.ack(got.last().expect("records").seq).expect("ack");
    log.sync().expect("sync");
    let s2 = log.stats();
    assert_eq!(s2.segment_syncs, s.segment_syncs, "{s2:?}");
    assert_eq!(s2.syncs_skipped, s.syncs_skipped + 1, "{s2:?}");

    // Half acknowledged: the file is flushed (fdatasync cannot take part of a file).
    for i in 20..30 {
        log.append(i, vec![i as u8; 30]).expect("append");
    }
    let got = log.read_batch(5, usize::MAX).expect("read");
    log.ack(got.last().expect("records").seq).expect("ack");
    log.sync().expect("sync");
    let s3 = log.stats();
    assert!(s3.segment_syncs > s2.segment_syncs, "{s3:?}");
    assert_eq!(s3.syncs_skipped, s2.syncs_skipped, "{s3:?}");

    // A process crash after a skipped sync loses nothing unacknowledged (the ledger was
    // not written yet, so acknowledged records come again: at-least-once).
    log.crash();
    let log = Log::open(tmp.path(), o).expect("reopen");
    let rest: Vec<u64> = read_all(&log).iter().map(|e| e.timestamp_ms).collect();
    assert!(rest.ends_with(&[25, 26, 27, 28, 29]), "{rest:?}");
    log.close().expect("close");
}

#[test]
fn background_thread_persists_the_ledger_when_acks_stop() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let o = Options {
        fsync: FsyncMode::Interval(Duration::from_millis(10)),
        ledger_interval: Duration::from_millis(20),
        ..opts()
    };
    let log = Log::open(tmp.path(), o.clone()).expect("open");
    for i in 0..10 {
        log.append(i, vec![0u8; 10]).expect("append");
    }
    log.read_batch(3, usize::MAX).expect("read");
    log.ack(1).expect("ack"); // may write the ledger (first ack after open)
    log.ack(3).expect("ack"); // within the interval: left to the background thread
    let ledger = tmp.path().join("ledger");
    let want = {
        let mut b = b"TFOLEDG1".to_vec();
        b.extend_from_slice(&3u64.to_le_bytes());
        let crc = crc32c::crc32c(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    };
    // Eventual, not timed: poll generously for the background write.
    let deadline = Instant::now() + Duration::from_secs(30);
    while fs::read(&ledger).ok().as_deref() != Some(&want[..]) {
        assert!(
            Instant::now() < deadline,
            "ledger never persisted by the background thread"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    log.crash();
    let log = Log::open(tmp.path(), o).expect("reopen");
    let first = log.read_batch(1, usize::MAX).expect("read");
    assert_eq!(first[0].seq, 4, "no duplicates once the ledger is written");
}

#[test]
fn shared_between_threads() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let o = Options {
        segment_bytes: 8192,
        memory_limit_bytes: 4096,
        fsync: FsyncMode::Interval(Duration::from_millis(2)),
        ..opts()
    };
    let log = Arc::new(Log::open(tmp.path(), o).expect("open"));
    let producers: Vec<_> = (0..3u64)
        .map(|p| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for i in 0..500u64 {
                    let mut v = p.to_le_bytes().to_vec();
                    v.extend_from_slice(&i.to_le_bytes());
                    log.append(p, v).expect("append");
                }
            })
        })
        .collect();
    let mut got: Vec<Vec<u64>> = vec![Vec::new(); 3];
    let mut total = 0;
    while total < 1500 {
        let b = log.read_batch(50, usize::MAX).expect("read");
        for e in &b {
            let p = u64::from_le_bytes(e.payload[..8].try_into().expect("p"));
            let i = u64::from_le_bytes(e.payload[8..16].try_into().expect("i"));
            got[p as usize].push(i);
        }
        total += b.len();
        if let Some(last) = b.last() {
            log.ack(last.seq).expect("ack");
        } else {
            std::thread::yield_now();
        }
    }
    for t in producers {
        t.join().expect("producer");
    }
    for g in &got {
        assert_eq!(
            g,
            &(0..500).collect::<Vec<_>>(),
            "per-producer order preserved"
        );
    }
    assert_eq!(log.stats().records, 0);
}

/// The disk reader reuses its read chunks once no payload refers to them: payloads held
/// while many later chunks are read (a batch in flight) must keep their bytes, and every
/// payload read must be what was appended.
#[test]
fn payloads_held_across_chunk_reuse_keep_their_bytes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let o = Options {
        segment_bytes: 16 << 20,
        memory_limit_bytes: 0,
        ..opts()
    };
    let log = Log::open(tmp.path(), o).expect("open");
    let n = 400u64; // 400 x 24 KiB: about 9 chunks of 1 MiB
    let body = |i: u64| -> Vec<u8> { (0..24 * 1024).map(|j| (i * 31 + j) as u8).collect() };
    for i in 0..n {
        log.append(i, body(i)).expect("append");
    }
    let held = log.read_batch(10, usize::MAX).expect("read");
    let mut seen = held.len() as u64;
    loop {
        let b = log.read_batch(7, usize::MAX).expect("read");
        if b.is_empty() {
            break;
        }
        for e in &b {
            assert_eq!(
                &e.payload[..],
                &body(e.timestamp_ms)[..],
                "record {}",
                e.timestamp_ms
            );
        }
        seen += b.len() as u64;
    }
    assert_eq!(seen, n);
    for e in &held {
        assert_eq!(
            &e.payload[..],
            &body(e.timestamp_ms)[..],
            "held record {}",
            e.timestamp_ms
        );
    }
}
