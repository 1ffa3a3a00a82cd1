//! Tailer throughput: a large file of 256-byte lines (page cache warm) read from the
//! beginning to the end by one thread, per format. Reports MiB/s of file data per second of
//! the thread's CPU time (user + system), i.e. per core, and per wall-clock second. The
//! records are built (body, severity, times, positions) and dropped, as a consumer would.
//!
//! Environment:
//! * `TFO_LOGS_BENCH_DIR`: where to write (default `/var/tmp`).
//! * `TFO_LOGS_BENCH_MB`: file size per run (default 512).
//!
//! Goal (issue 11): the whole pipeline file → buffer → OTLP at >= 100 MiB/s per core, so
//! the tailer alone must be well above that.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use tfo_logs::{Format, StartAt, Tailer, TailerConfig};

const MIB: f64 = 1024.0 * 1024.0;
const LINE: usize = 256;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU time (user + system) of the calling thread.
fn thread_cpu() -> Duration {
    // SAFETY: getrusage writes into the zeroed struct we pass and has no other effects.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// One 256-byte line (with its newline) in the given shape.
fn line(kind: &str, n: u64) -> Vec<u8> {
    let levels = ["INFO", "WARN", "ERROR", "DEBUG"];
    let level = levels[(n % 4) as usize];
    let ms = n % 1000;
    let mut s = match kind {
        "raw" => format!(
            "2024-05-01T10:00:00.{ms:03}Z {level} request id={n:012} method=GET path=/api/v1/items/{} status=200 took={}ms msg=\"",
            n % 9973,
            n % 250
        ),
        "cri" => format!(
            "2024-05-01T10:00:00.{ms:03}000000Z stdout F {level} request id={n:012} path=/api/v1/items/{} status=200 msg=\"",
            n % 9973
        ),
        "json" => format!(
            "{{\"time\":\"2024-05-01T10:00:00.{ms:03}Z\",\"level\":\"{}\",\"id\":{n},\"path\":\"/api/v1/items/{}\",\"msg\":\"",
            level.to_lowercase(),
            n % 9973
        ),
        _ => unreachable!(),
    };
    let close = if kind == "json" { "\"}" } else { "\"" };
    while s.len() < LINE - 1 - close.len() {
        s.push((b'a' + (s.len() % 26) as u8) as char);
    }
    s.push_str(close);
    s.push('\n');
    assert_eq!(s.len(), LINE);
    s.into_bytes()
}

fn write_file(path: &Path, kind: &str, bytes: u64) {
    let mut w = BufWriter::with_capacity(1 << 20, File::create(path).expect("create"));
    for n in 0..bytes / LINE as u64 {
        w.write_all(&line(kind, n)).expect("write");
    }
    w.flush().expect("flush");
}

fn run(dir: &Path, kind: &str, format: Format, bytes: u64) {
    let path = dir.join(format!("bench-{kind}.log"));
    write_file(&path, kind, bytes);
    let size = std::fs::metadata(&path).expect("stat").len();
    let ckpt = dir.join(format!("bench-{kind}-checkpoints"));
    let _ = std::fs::remove_dir_all(&ckpt);
    let cfg = TailerConfig {
        paths: vec![path.to_string_lossy().into_owned()],
        start_at: StartAt::Beginning,
        format,
        ..TailerConfig::default()
    };
    let mut t = Tailer::new(cfg, &ckpt).expect("tailer");
    let (cpu0, wall0) = (thread_cpu(), Instant::now());
    let mut records = 0u64;
    let mut with_severity = 0u64;
    while t.stats().bytes_read < size {
        let p = t.poll(8 << 20);
        records += p.lines.len() as u64;
        with_severity += p.lines.iter().filter(|l| l.severity.is_some()).count() as u64;
        t.commit(&p.positions());
    }
    let (cpu, wall) = (thread_cpu() - cpu0, wall0.elapsed());
    let mib = size as f64 / MIB;
    assert_eq!(records, size / LINE as u64, "every line is one record");
    assert_eq!(with_severity, records, "every line has a level");
    println!(
        "{kind:>5} {format:<7} {mib:>6.0} MiB  {:>7.1} MiB/s per core  {:>7.1} MiB/s wall  {:>5.2} M lines/s per core",
        mib / cpu.as_secs_f64(),
        mib / wall.as_secs_f64(),
        records as f64 / cpu.as_secs_f64() / 1e6,
        format = format!("{format:?}").to_lowercase(),
    );
    drop(t);
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_dir_all(&ckpt);
}

fn main() {
    // `cargo test` runs benches with --bench only when asked; do nothing under plain test
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let dir = std::env::var("TFO_LOGS_BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into());
    let dir = Path::new(&dir).join(format!("tfo-logs-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("bench dir");
    let bytes = env_u64("TFO_LOGS_BENCH_MB", 512) << 20;
    println!("tfo-logs tailer, {LINE}-byte lines, page cache warm, one thread");
    run(&dir, "raw", Format::Raw, bytes);
    run(&dir, "raw", Format::Auto, bytes);
    run(&dir, "cri", Format::Auto, bytes);
    run(&dir, "json", Format::Auto, bytes);
    let _ = std::fs::remove_dir_all(&dir);
}
