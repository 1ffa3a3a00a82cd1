//! Buffer benchmark: append throughput per record size and fsync mode, replay from disk
//! (page cache warm and dropped), and recovery time of a large buffer. Prints a table.
//!
//! Environment:
//! * `TFO_BUFFER_BENCH_DIR`: where to write (default `/var/tmp`; keep it off tmpfs).
//! * `TFO_BUFFER_BENCH_MB`: data per append run in `interval`/`never` mode (default 512).
//! * `TFO_BUFFER_BENCH_ALWAYS_MB`: data per append run in `always` mode (default 16).
//! * `TFO_BUFFER_BENCH_RECOVERY_MB`: size of the buffer for the recovery run (default 1024).
//!
//! Goals (issue 3): append >= 200 MB/s with interval fsync, replay >= 500 MB/s, recovery of
//! 1 GiB <= 2 s.

use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tfo_buffer::{FsyncMode, Log, Options, WhenFull};

const MB: f64 = 1024.0 * 1024.0;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn options(fsync: FsyncMode) -> Options {
    Options {
        max_total_bytes: 64 << 30,
        fsync,
        when_full: WhenFull::DropOldest,
        ..Options::default()
    }
}

/// Evicts the directory's files from the page cache so the next read comes from the disk.
fn drop_cache(dir: &Path) {
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        if let Ok(f) = File::open(e.path()) {
            let _ = f.sync_all();
            // SAFETY: plain syscall on a descriptor `f` keeps open.
            unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        }
    }
}

fn fill(dir: &Path, fsync: FsyncMode, record: usize, total: u64) -> (Duration, Duration) {
    let _ = fs::remove_dir_all(dir);
    let log = Log::open(dir, options(fsync)).expect("open");
    let payload = bytes::Bytes::from(vec![0x5au8; record]);
    let n = (total / record as u64).max(1);
    let t = Instant::now();
    for i in 0..n {
        log.append(i, payload.clone()).expect("append");
    }
    let appended = t.elapsed();
    let t = Instant::now();
    log.close().expect("close");
    (appended, t.elapsed())
}

fn replay(dir: &Path, cold: bool) -> (f64, Duration, u64) {
    if cold {
        drop_cache(dir);
    }
    let t = Instant::now();
    let log = Log::open(dir, options(FsyncMode::Never)).expect("open");
    let (mut bytes, mut records) = (0u64, 0u64);
    loop {
        let b = log.read_batch(1000, 8 << 20).expect("read");
        if b.is_empty() {
            break;
        }
        records += b.len() as u64;
        bytes += b.iter().map(|e| e.payload.len() as u64).sum::<u64>();
    }
    let el = t.elapsed();
    assert_eq!(log.stats().corrupt_records, 0);
    log.crash();
    (bytes as f64 / MB / el.as_secs_f64(), el, records)
}

fn row(name: &str, value: String, note: String) {
    println!("{name:<44} {value:>14}   {note}");
}

fn main() {
    let base = PathBuf::from(std::env::var("TFO_BUFFER_BENCH_DIR").unwrap_or("/var/tmp".into()))
        .join(format!("tfo-buffer-bench-{}", std::process::id()));
    let mb = env_u64("TFO_BUFFER_BENCH_MB", 512);
    let always_mb = env_u64("TFO_BUFFER_BENCH_ALWAYS_MB", 16);
    let recovery_mb = env_u64("TFO_BUFFER_BENCH_RECOVERY_MB", 1024);
    println!("tfo-buffer benchmark in {}", base.display());
    println!("{:<44} {:>14}   note", "measurement", "result");
    println!("{}", "-".repeat(90));

    let modes = [
        (
            "interval 1s",
            FsyncMode::Interval(Duration::from_secs(1)),
            mb,
        ),
        ("never", FsyncMode::Never, mb),
        ("always", FsyncMode::Always, always_mb),
    ];
    for record in [1024usize, 64 * 1024] {
        for (name, mode, total_mb) in modes {
            let dir = base.join("append");
            let total = total_mb << 20;
            let (el, close) = fill(&dir, mode, record, total);
            let n = (total / record as u64).max(1);
            let mbs = (n * record as u64) as f64 / MB / el.as_secs_f64();
            row(
                &format!("append {} KiB, fsync {name}", record / 1024),
                format!("{mbs:.1} MB/s"),
                format!(
                    "{n} records, {:.0} rec/s, close+sync {:.0} ms",
                    n as f64 / el.as_secs_f64(),
                    close.as_secs_f64() * 1e3
                ),
            );
            if name == "never" {
                let (warm, el, records) = replay(&dir, false);
                row(
                    &format!("replay {} KiB, page cache warm", record / 1024),
                    format!("{warm:.0} MB/s"),
                    format!(
                        "{records} records in {:.0} ms, incl. open",
                        el.as_secs_f64() * 1e3
                    ),
                );
                let (cold, el, records) = replay(&dir, true);
                row(
                    &format!("replay {} KiB, page cache dropped", record / 1024),
                    format!("{cold:.0} MB/s"),
                    format!(
                        "{records} records in {:.0} ms, incl. open",
                        el.as_secs_f64() * 1e3
                    ),
                );
            }
        }
    }

    // Recovery: a full buffer of 1 KiB records (the most frames per byte), torn at the end
    // as after a kill, with part of its first segment acknowledged.
    let dir = base.join("recovery");
    let _ = fs::remove_dir_all(&dir);
    let log = Log::open(&dir, options(FsyncMode::Never)).expect("open");
    let payload = bytes::Bytes::from(vec![0x33u8; 1024]);
    // A few thousand records more, so the newest segment is a real tail, not a near-empty one.
    let n = (recovery_mb << 20) / 1024 + 10_000;
    for i in 0..n {
        log.append(i, payload.clone()).expect("append");
    }
    log.read_batch(1, 1).expect("read");
    log.ack(1000.min(n - 1)).expect("ack");
    log.close().expect("close");
    let last = fs::read_dir(&dir)
        .expect("list")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .max()
        .expect("segments");
    let disk: u64 = fs::read_dir(&dir)
        .expect("list")
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    let len = fs::metadata(&last).expect("stat").len();
    for cold in [false, true] {
        fs::OpenOptions::new()
            .write(true)
            .open(&last)
            .expect("open")
            .set_len(len - 100)
            .expect("tear");
        if cold {
            drop_cache(&dir);
        }
        let t = Instant::now();
        let log = Log::open(&dir, options(FsyncMode::Never)).expect("open");
        let el = t.elapsed();
        let rep = log.recovery().clone();
        let stats = log.stats();
        log.crash();
        row(
            &format!(
                "recovery {:.0} MiB, page cache {}",
                disk as f64 / MB,
                if cold { "dropped" } else { "warm" }
            ),
            format!("{:.0} ms", el.as_secs_f64() * 1e3),
            format!(
                "{} segments, {} unacked records, truncated {} B, skipped {}",
                rep.segments, stats.records, rep.truncated_bytes, rep.skipped_segments
            ),
        );
    }
    drop_cache(&dir);
    let t = Instant::now();
    let ins = tfo_buffer::inspect(&dir).expect("inspect");
    row(
        "inspect (buffer status), page cache dropped",
        format!("{:.0} ms", t.elapsed().as_secs_f64() * 1e3),
        format!("{} records", ins.stats.records),
    );
    let _ = fs::remove_dir_all(&base);
}
