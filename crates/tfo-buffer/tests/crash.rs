//! Crash test with real processes: a child appends records and prints each one's id after
//! `append` returned; the parent SIGKILLs it at random moments, reopens the log and checks
//! that every reported record is present exactly once, in order, with its exact payload.
//!
//! The child is this test binary re-executed with `TFO_BUFFER_CRASH_CHILD` set, running only
//! the `child_process` test. `TFO_BUFFER_CRASH_ITERATIONS` (default 100) sets how many kills.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use tfo_buffer::{FsyncMode, Log, Options, WhenFull};

const CHILD_ENV: &str = "TFO_BUFFER_CRASH_CHILD";

fn options(mode: u64) -> Options {
    Options {
        segment_bytes: 256 << 10,
        max_total_bytes: 1 << 30,
        memory_limit_bytes: 1 << 20,
        fsync: match mode % 4 {
            0 => FsyncMode::Always,
            1 => FsyncMode::Interval(Duration::from_millis(3)),
            _ => FsyncMode::Never,
        },
        when_full: WhenFull::DropOldest,
        ledger_interval: Duration::from_millis(5),
        ..Options::default()
    }
}

/// Deterministic payload of record `id`: the id followed by a pattern, 16 B to 40 KiB.
fn payload(id: u64) -> Vec<u8> {
    let len = 16 + (id.wrapping_mul(2_654_435_761) % 40_000) as usize;
    let mut v = id.to_le_bytes().to_vec();
    v.extend((8..len).map(|i| (id as usize).wrapping_mul(131).wrapping_add(i) as u8));
    v
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// The child side; a no-op in a normal test run.
#[test]
fn child_process() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let start = env_u64("TFO_BUFFER_CRASH_START").expect("start id");
    let mode = env_u64("TFO_BUFFER_CRASH_MODE").expect("mode");
    let log = Log::open(&dir, options(mode)).expect("child open");
    let mut id = start;
    loop {
        log.append(id, payload(id)).expect("child append");
        // Printed only after append returned: every printed id must survive the kill.
        println!("WRITTEN {id}");
        id += 1;
    }
}

/// Small deterministic generator so that a failing run can be replayed from its seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn read_all(log: &Log) -> Vec<tfo_buffer::Entry> {
    let mut out = Vec::new();
    loop {
        let b = log.read_batch(1000, 8 << 20).expect("read");
        if b.is_empty() {
            return out;
        }
        out.extend(b);
    }
}

fn verify(dir: &Path, first: u64, reported: Option<u64>, mode: u64) -> (Log, u64) {
    let log = Log::open(dir, options(mode)).expect("parent open");
    let rep = log.recovery().clone();
    assert_eq!(rep.corrupt_records, 0, "{rep:?}");
    assert_eq!(rep.skipped_segments, 0, "{rep:?}");
    let entries = read_all(&log);
    let mut expect = first;
    for e in &entries {
        let id = e.timestamp_ms;
        assert_eq!(id, expect, "records out of order, duplicated or missing");
        assert_eq!(&e.payload[..], &payload(id)[..], "payload of {id}");
        expect += 1;
    }
    if let Some(r) = reported {
        assert!(
            expect > r,
            "record {r} was reported written but the log ends before it (next id {expect})"
        );
    }
    assert_eq!(log.stats().corrupt_records, 0);
    (log, expect)
}

#[test]
fn sigkill_never_loses_a_reported_record() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let iterations = env_u64("TFO_BUFFER_CRASH_ITERATIONS").unwrap_or(100);
    let seed = env_u64("TFO_BUFFER_CRASH_SEED").unwrap_or(0x5eed_1234_abcd);
    eprintln!("crash test: {iterations} kills, seed {seed} (TFO_BUFFER_CRASH_SEED)");
    let mut rng = Rng(seed | 1);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("buf");
    let exe = std::env::current_exe().expect("test binary path");
    // `first` is the id of the oldest unacknowledged record, `next` the id the child starts at.
    let (mut first, mut next) = (0u64, 0u64);
    let mut truncations = 0;
    for i in 0..iterations {
        let mode = rng.next();
        let mut child = Command::new(&exe)
            .args([
                "child_process",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &dir)
            .env("TFO_BUFFER_CRASH_START", next.to_string())
            .env("TFO_BUFFER_CRASH_MODE", mode.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("child stdout");
        // Kill after a random number of reported records (0 kills during open or the first
        // append), at a random point of the child's append loop.
        let kill_after = match rng.next() % 4 {
            0 => 0,
            1 => rng.next() % 5,
            _ => rng.next() % 300,
        };
        let mut reported = None;
        let mut lines = BufReader::new(stdout).lines();
        if kill_after > 0 {
            for line in lines.by_ref() {
                let line = line.expect("child output");
                if let Some(id) = line.strip_prefix("WRITTEN ") {
                    reported = Some(id.trim().parse::<u64>().expect("id"));
                    if reported.is_some_and(|r| r + 1 - next >= kill_after) {
                        break;
                    }
                }
            }
        } else {
            std::thread::sleep(Duration::from_micros(rng.next() % 20_000));
        }
        child.kill().expect("SIGKILL child");
        // Lines printed between our last read and the kill are reported records too.
        for line in lines.map_while(Result::ok) {
            if let Some(id) = line.strip_prefix("WRITTEN ") {
                reported = Some(id.trim().parse::<u64>().expect("id"));
            }
        }
        let status = child.wait().expect("wait child");
        assert!(!status.success(), "child exited on its own: {status:?}");

        let (log, end) = verify(&dir, first, reported, mode);
        if log.recovery().truncated_bytes > 0 {
            truncations += 1;
        }
        next = end;
        // Acknowledge a random part of what is there, as the exporter would, so segments are
        // deleted and the ledger moves; sometimes leave without closing (a crash of ours).
        let unacked = end - first;
        if unacked > 0 && !rng.next().is_multiple_of(3) {
            let k = rng.next() % (unacked + 1);
            if k > 0 {
                // `verify` read everything; the exporter would rewind after its last send.
                log.rewind();
                let batch = log.read_batch(k as usize, usize::MAX).expect("read");
                let last = batch.last().expect("nonempty").seq;
                log.ack(last).expect("ack");
                first += batch.len() as u64;
            }
        }
        if rng.next().is_multiple_of(4) {
            // Acks since the last ledger write may come back: re-verify from the ledger.
            log.crash();
            let (log, end2) = {
                let log = Log::open(&dir, options(mode)).expect("reopen");
                let entries = read_all(&log);
                let head = entries.first().map_or(end, |e| e.timestamp_ms);
                assert!(
                    head <= first,
                    "acknowledged position went forward on its own"
                );
                let ids: Vec<u64> = entries.iter().map(|e| e.timestamp_ms).collect();
                let want: Vec<u64> = (head..end).collect();
                assert_eq!(ids, want, "after a crash of the reader");
                (log, end)
            };
            first = end2 - log.stats().records;
            log.close().expect("close");
        } else {
            log.close().expect("close");
        }
        if i % 25 == 24 {
            eprintln!("crash test: {} kills done, next id {next}", i + 1);
        }
    }
    eprintln!("crash test: {iterations} kills, {truncations} torn tails truncated");
    assert!(next > 0, "the child never wrote anything");
}
