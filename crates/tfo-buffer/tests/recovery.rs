//! Corruption and recovery: damaged records, truncated segments, missing or wrong ledgers
//! and garbage files are skipped and counted, everything intact is still delivered, and the
//! log never refuses to open.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tfo_buffer::{FsyncMode, LedgerStatus, Log, Options, WhenFull, inspect};

fn opts() -> Options {
    Options {
        segment_bytes: 2000,
        max_total_bytes: 1 << 30,
        memory_limit_bytes: 1 << 20,
        fsync: FsyncMode::Never,
        when_full: WhenFull::DropOldest,
        ledger_interval: Duration::from_secs(3600),
        ..Options::default()
    }
}

fn payload(i: u64) -> Vec<u8> {
    format!("record-{i:05}-{}", "x".repeat((i % 50) as usize)).into_bytes()
}

/// A closed log holding records 1..=n (timestamp = sequence), returned with its directory.
fn filled(n: u64) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("buf");
    let log = Log::open(&dir, opts()).expect("open");
    for i in 1..=n {
        assert_eq!(log.append(i, payload(i)).expect("append").seq, i);
    }
    log.close().expect("close");
    (tmp, dir)
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

fn first_seq(seg: &Path) -> u64 {
    seg.file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .expect("segment name")
}

/// Everything the log delivers, checked against `payload`, as sequence numbers.
fn delivered(log: &Log) -> Vec<u64> {
    let mut out = Vec::new();
    loop {
        let b = log.read_batch(64, 1 << 20).expect("read");
        if b.is_empty() {
            return out;
        }
        for e in b {
            assert_eq!(e.timestamp_ms, e.seq);
            assert_eq!(&e.payload[..], &payload(e.seq)[..], "payload of {}", e.seq);
            out.push(e.seq);
        }
    }
}

/// Byte offset of record `seq` inside its segment, found by walking the frames.
fn offset_of(seg: &Path, seq: u64) -> u64 {
    let data = fs::read(seg).expect("read segment");
    let mut off = 0usize;
    let mut s = first_seq(seg);
    while s < seq {
        let len = u32::from_le_bytes(data[off + 8..off + 12].try_into().expect("len")) as usize;
        off += 32 + len;
        s += 1;
    }
    off as u64
}

fn flip(path: &Path, off: u64) {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open");
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, off).expect("read byte");
    b[0] ^= 0x5a;
    f.write_all_at(&b, off).expect("write byte");
}

fn without(range: std::ops::RangeInclusive<u64>, lost: &[u64]) -> Vec<u64> {
    range.filter(|s| !lost.contains(s)).collect()
}

#[test]
fn flipped_payload_byte_in_a_sealed_segment_skips_one_record() {
    let (_t, dir) = filled(200);
    let segs = segments(&dir);
    assert!(segs.len() > 4, "want several segments, got {}", segs.len());
    let seg = &segs[2];
    let victim = first_seq(seg) + 3;
    flip(seg, offset_of(seg, victim) + 40);

    let log = Log::open(&dir, opts()).expect("open");
    // Old segments are validated when read, not on open.
    assert_eq!(log.recovery().corrupt_records, 0);
    assert_eq!(delivered(&log), without(1..=200, &[victim]));
    assert_eq!(log.stats().corrupt_records, 1);
    // Reading again after a rewind must not count the same record twice.
    log.rewind();
    assert_eq!(delivered(&log), without(1..=200, &[victim]));
    assert_eq!(log.stats().corrupt_records, 1);
}

#[test]
fn flipped_length_field_resyncs_at_the_next_frame() {
    let (_t, dir) = filled(200);
    let segs = segments(&dir);
    let seg = &segs[1];
    let victim = first_seq(seg) + 2;
    // Byte 10 is in the length field: the reader cannot know where the record ends.
    flip(seg, offset_of(seg, victim) + 10);
    let log = Log::open(&dir, opts()).expect("open");
    assert_eq!(delivered(&log), without(1..=200, &[victim]));
    assert_eq!(log.stats().corrupt_records, 1);
}

#[test]
fn damage_in_the_last_segment_is_found_on_open() {
    let (_t, dir) = filled(200);
    let segs = segments(&dir);
    let seg = segs.last().expect("segments");
    let victim = first_seq(seg) + 1;
    let next = victim + 1;
    flip(seg, offset_of(seg, victim) + 20); // sequence number field
    let log = Log::open(&dir, opts()).expect("open");
    let rep = log.recovery();
    assert!(next <= 200, "the victim must not be the last record");
    assert_eq!(rep.corrupt_records, 1, "{rep:?}");
    assert_eq!(
        rep.truncated_bytes, 0,
        "damage in the middle is not a torn tail"
    );
    assert_eq!(log.stats().records, 199);
    assert_eq!(delivered(&log), without(1..=200, &[victim]));
    // The log keeps working: new records follow, and survive another reopen.
    assert_eq!(log.append(201, payload(201)).expect("append").seq, 201);
    log.close().expect("close");
    let log = Log::open(&dir, opts()).expect("reopen");
    assert_eq!(delivered(&log), without(1..=201, &[victim]));
}

#[test]
fn torn_tail_is_truncated_and_appending_continues() {
    let (_t, dir) = filled(100);
    let segs = segments(&dir);
    let seg = segs.last().expect("segments");
    let len = fs::metadata(seg).expect("stat").len();
    let last_off = offset_of(seg, 100);
    // Cut the last record in half, as a kill during write(2) could.
    let cut = last_off + (len - last_off) / 2;
    OpenOptions::new()
        .write(true)
        .open(seg)
        .expect("open")
        .set_len(cut)
        .expect("truncate");
    let log = Log::open(&dir, opts()).expect("open");
    let rep = log.recovery().clone();
    assert_eq!(rep.truncated_bytes, cut - last_off);
    assert_eq!(rep.corrupt_records, 0);
    assert_eq!(rep.next_seq, 100);
    assert_eq!(fs::metadata(seg).expect("stat").len(), last_off);
    assert_eq!(delivered(&log), (1..=99).collect::<Vec<_>>());
    assert_eq!(log.append(100, payload(100)).expect("append").seq, 100);
    log.close().expect("close");
    let log = Log::open(&dir, opts()).expect("reopen");
    assert_eq!(log.recovery().truncated_bytes, 0);
    assert_eq!(delivered(&log), (1..=100).collect::<Vec<_>>());
}

#[test]
fn truncated_sealed_segment_loses_only_what_was_cut() {
    let (_t, dir) = filled(200);
    let segs = segments(&dir);
    let seg = &segs[1];
    let first = first_seq(seg);
    let next_first = first_seq(&segs[2]);
    let keep_upto = first + 2; // records first..=first+2 stay
    let cut = offset_of(seg, keep_upto + 1) + 7;
    OpenOptions::new()
        .write(true)
        .open(seg)
        .expect("open")
        .set_len(cut)
        .expect("truncate");
    let log = Log::open(&dir, opts()).expect("open");
    let lost: Vec<u64> = (keep_upto + 1..next_first).collect();
    assert_eq!(delivered(&log), without(1..=200, &lost));
    assert_eq!(log.stats().corrupt_records, lost.len() as u64);
}

#[test]
fn missing_ledger_delivers_from_the_first_record_present() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("buf");
    let log = Log::open(&dir, opts()).expect("open");
    for i in 1..=200 {
        log.append(i, payload(i)).expect("append");
    }
    let b = log.read_batch(120, usize::MAX).expect("read");
    log.ack(b.last().expect("read").seq).expect("ack");
    log.close().expect("close");
    let first_present = first_seq(&segments(&dir)[0]);
    assert!(
        first_present > 1 && first_present <= 121,
        "acked segments deleted"
    );
    fs::remove_file(dir.join("ledger")).expect("remove ledger");

    let log = Log::open(&dir, opts()).expect("open");
    assert_eq!(log.recovery().ledger, LedgerStatus::Missing);
    // Duplicates of acknowledged records, never a loss.
    assert_eq!(delivered(&log), (first_present..=200).collect::<Vec<_>>());
    assert_eq!(log.stats().corrupt_records, 0);
}

#[test]
fn damaged_ledger_is_treated_as_missing() {
    let (_t, dir) = filled(50);
    fs::write(dir.join("ledger"), b"not a ledger at all").expect("write");
    let log = Log::open(&dir, opts()).expect("open");
    assert_eq!(log.recovery().ledger, LedgerStatus::Corrupt);
    assert_eq!(delivered(&log), (1..=50).collect::<Vec<_>>());
}

fn ledger_bytes(acked: u64) -> Vec<u8> {
    let mut b = b"TFOLEDG1".to_vec();
    b.extend_from_slice(&acked.to_le_bytes());
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

#[test]
fn ledger_past_the_end_is_clamped_and_sequence_stays_consistent() {
    let (_t, dir) = filled(50);
    fs::write(dir.join("ledger"), ledger_bytes(10_000)).expect("write");
    let log = Log::open(&dir, opts()).expect("open");
    assert_eq!(
        log.recovery().ledger,
        LedgerStatus::PastEnd {
            found: 10_000,
            clamped_to: 50
        }
    );
    // Everything present was acknowledged (the ledger only ever names appended records)…
    assert!(delivered(&log).is_empty());
    assert_eq!(log.stats().records, 0);
    // …and new records are neither hidden by the stale ledger nor lost on reopen.
    assert_eq!(log.append(51, payload(51)).expect("append").seq, 51);
    log.close().expect("close");
    let log = Log::open(&dir, opts()).expect("reopen");
    assert_eq!(log.recovery().ledger, LedgerStatus::Found(50));
    assert_eq!(delivered(&log), vec![51]);
}

#[test]
fn ledger_pointing_into_the_middle_is_honoured() {
    let (_t, dir) = filled(50);
    fs::write(dir.join("ledger"), ledger_bytes(20)).expect("write");
    let log = Log::open(&dir, opts()).expect("open");
    assert_eq!(log.recovery().ledger, LedgerStatus::Found(20));
    assert_eq!(delivered(&log), (21..=50).collect::<Vec<_>>());
}

#[test]
fn garbage_segment_file_is_skipped_and_counted() {
    let (_t, dir) = filled(200);
    let segs = segments(&dir);
    let victim = &segs[2];
    let lost: Vec<u64> = (first_seq(victim)..first_seq(&segs[3])).collect();
    let len = fs::metadata(victim).expect("stat").len() as usize;
    let garbage: Vec<u8> = (0..len).map(|i| (i * 7919 % 251) as u8).collect();
    fs::write(victim, garbage).expect("overwrite");
    // A stray file with a segment name, between two real ones, holding junk.
    let stray = dir.join(format!("{:020}.seg", first_seq(&segs[0]) + 1));
    fs::write(&stray, b"junk junk junk junk junk junk junk junk").expect("stray");
    // A file that only looks like ours is reported and left alone.
    fs::write(dir.join("foreign.seg"), b"x").expect("foreign");

    let before = inspect(&dir).expect("inspect");
    assert_eq!(before.recovery.skipped_segments, 3);
    assert!(
        stray.exists() && victim.exists(),
        "inspect must not modify anything"
    );

    let log = Log::open(&dir, opts()).expect("open");
    let rep = log.recovery().clone();
    assert_eq!(rep.skipped_segments, 3, "{rep:?}");
    assert!(!stray.exists() && !victim.exists());
    assert!(dir.join("foreign.seg").exists());
    assert_eq!(delivered(&log), without(1..=200, &lost));
    assert_eq!(log.stats().corrupt_records, lost.len() as u64);
}

#[test]
fn garbage_as_the_newest_file_is_skipped_and_the_one_before_continues() {
    let (_t, dir) = filled(30);
    let newest = dir.join(format!("{:020}.seg", 1000));
    fs::write(&newest, vec![0xAB; 5000]).expect("write");
    let log = Log::open(&dir, opts()).expect("open");
    let rep = log.recovery().clone();
    assert_eq!(rep.skipped_segments, 1, "{rep:?}");
    assert_eq!(rep.truncated_bytes, 0);
    assert_eq!(rep.next_seq, 31);
    assert!(!newest.exists());
    assert_eq!(delivered(&log), (1..=30).collect::<Vec<_>>());
    assert_eq!(log.append(31, payload(31)).expect("append").seq, 31);
    log.close().expect("close");
    let log = Log::open(&dir, opts()).expect("reopen");
    assert_eq!(delivered(&log), (1..=31).collect::<Vec<_>>());
    assert_eq!(log.stats().corrupt_records, 0);
}

#[test]
fn torn_first_write_into_a_new_segment_is_a_truncation_not_garbage() {
    let (_t, dir) = filled(30);
    // A kill during the first write after a roll leaves a new file with part of a header.
    let mut partial = vec![0xF0, 0x7B, 0x0F, 0xB1, 1, 2, 3, 4, 200, 0, 0, 0, 0, 0, 0, 0];
    partial.extend_from_slice(&31u64.to_le_bytes());
    let newest = dir.join(format!("{:020}.seg", 31));
    fs::write(&newest, &partial).expect("write");
    let log = Log::open(&dir, opts()).expect("open");
    let rep = log.recovery().clone();
    assert_eq!(rep.skipped_segments, 0, "{rep:?}");
    assert_eq!(rep.truncated_bytes, partial.len() as u64);
    assert_eq!(rep.next_seq, 31);
    assert_eq!(delivered(&log), (1..=30).collect::<Vec<_>>());
    assert_eq!(log.append(31, payload(31)).expect("append").seq, 31);
    log.close().expect("close");
    let log = Log::open(&dir, opts()).expect("reopen");
    assert_eq!(delivered(&log), (1..=31).collect::<Vec<_>>());
}

#[test]
fn ledger_before_the_first_segment_means_those_records_were_acknowledged() {
    // The log unlinks fully acknowledged segments before the ledger says so (a full disk
    // must be able to free itself, and only the ledger write needs space). A crash in
    // between leaves a ledger pointing before the first segment: the missing numbers were
    // acknowledged, not lost, and every record present is delivered.
    let (_t, dir) = filled(200);
    let segs = segments(&dir);
    fs::remove_file(&segs[0]).expect("remove");
    fs::write(dir.join("ledger"), ledger_bytes(0)).expect("ledger");
    let log = Log::open(&dir, opts()).expect("open");
    assert_eq!(log.recovery().corrupt_records, 0);
    assert_eq!(log.recovery().first_unacked_seq, first_seq(&segs[1]));
    assert_eq!(
        delivered(&log),
        (first_seq(&segs[1])..=200).collect::<Vec<_>>()
    );
}

#[test]
fn garbage_first_segment_below_a_stale_ledger_is_still_counted() {
    let (_t, dir) = filled(200);
    let segs = segments(&dir);
    // segs[0] was deleted by the log after acknowledgement; segs[1] is garbage.
    let lost: Vec<u64> = (first_seq(&segs[1])..first_seq(&segs[2])).collect();
    fs::remove_file(&segs[0]).expect("remove");
    let len = fs::metadata(&segs[1]).expect("stat").len() as usize;
    fs::write(&segs[1], vec![0x5A; len]).expect("garbage");
    fs::write(dir.join("ledger"), ledger_bytes(0)).expect("ledger");
    let log = Log::open(&dir, opts()).expect("open");
    assert_eq!(log.recovery().corrupt_records, lost.len() as u64);
    assert_eq!(
        delivered(&log),
        (first_seq(&segs[2])..=200).collect::<Vec<_>>()
    );
}

#[test]
fn recovery_of_an_acknowledged_log_deletes_leftover_segments() {
    let (_t, dir) = filled(200);
    // As if the process died after the ledger write but before deleting the segments.
    fs::write(dir.join("ledger"), ledger_bytes(150)).expect("ledger");
    let n = segments(&dir).len();
    let log = Log::open(&dir, opts()).expect("open");
    assert!(segments(&dir).len() < n);
    assert_eq!(delivered(&log), (151..=200).collect::<Vec<_>>());
    assert_eq!(log.stats().records, 50);
}

#[test]
fn inspect_reports_without_changing_anything() {
    let (_t, dir) = filled(120);
    let log = Log::open(&dir, opts()).expect("open");
    let b = log.read_batch(20, usize::MAX).expect("read");
    log.ack(b.last().expect("read").seq).expect("ack");
    log.close().expect("close");
    let seg = segments(&dir).last().cloned().expect("segment");
    let len = fs::metadata(&seg).expect("stat").len();
    fs::OpenOptions::new()
        .append(true)
        .open(&seg)
        .expect("open")
        .write_all_at(b"torn", len)
        .expect("append junk");
    let listing = |d: &Path| {
        let mut v: Vec<(String, u64)> = fs::read_dir(d)
            .expect("list")
            .map(|e| {
                let e = e.expect("entry");
                (
                    e.file_name().to_string_lossy().into_owned(),
                    e.metadata().expect("stat").len(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let before = listing(&dir);
    let ins = inspect(&dir).expect("inspect");
    assert_eq!(listing(&dir), before);
    assert_eq!(ins.stats.records, 100);
    assert_eq!(ins.stats.first_unacked_seq, 21);
    assert_eq!(ins.stats.next_seq, 121);
    assert_eq!(ins.stats.oldest_timestamp_ms, Some(21));
    assert_eq!(ins.recovery.truncated_bytes, 4);
    assert_eq!(ins.recovery.ledger, LedgerStatus::Found(20));
    assert!(inspect(dir.join("nope")).is_err());
}
