//! Restarts from checkpoints, start_at, deletion and truncation while reading, copies,
//! errors (not a directory, permission denied as another user, a FIFO), and 10,000 files.

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use tfo_logs::{ErrorKind, StartAt, TailerConfig};

fn numbers(lines: &[tfo_logs::LogLine]) -> Vec<u64> {
    lines.iter().map(|l| number_of(&l.body)).collect()
}

#[test]
fn restart_resumes_after_the_last_commit() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, &numbered_lines(0, 1000));
    let mut a = tailer(dir.path(), config(&[&log]));
    let mut got = Vec::new();
    while got.len() < 1000 {
        got.extend(a.poll(BUDGET).lines);
    }
    // only the first 600 records are durable; then the process dies (no drop, no flush)
    a.commit(&[got[599].position]);
    std::mem::forget(a);
    append(&log, &numbered_lines(1000, 500));
    let mut b = tailer(dir.path(), config(&[&log]));
    let again = drain(&mut b);
    assert_eq!(numbers(&again), (600..1500).collect::<Vec<_>>());
}

/// `numbered_lines(a, n)` helper for two arguments that read better above.
fn numbered_lines(start: u64, count: u64) -> String {
    common::numbered_lines(start..start + count, 60)
}

#[test]
fn restart_finds_a_file_renamed_while_down() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    fs::create_dir_all(&logs).unwrap();
    let log = logs.join("app.log");
    let cfg = || config(&[&logs.join("app.log*")]);
    append(&log, &numbered_lines(0, 1000));
    let mut a = tailer(dir.path(), cfg());
    assert_eq!(drain(&mut a).len(), 1000);
    drop(a);
    // while the agent is down: more lines, rename rotation, a new file
    append(&log, &numbered_lines(1000, 100));
    fs::rename(&log, logs.join("app.log.1")).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    append(&log, &numbered_lines(1100, 100));
    let mut b = tailer(dir.path(), cfg());
    let again = drain(&mut b);
    assert_eq!(numbers(&again), (1000..1200).collect::<Vec<_>>());
}

#[test]
fn restart_after_copytruncate_while_down() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    fs::create_dir_all(&logs).unwrap();
    let log = logs.join("app.log");
    let cfg = || config(&[&logs.join("app.log*")]);
    append(&log, &numbered_lines(0, 1000));
    let mut a = tailer(dir.path(), cfg());
    assert_eq!(drain(&mut a).len(), 1000);
    drop(a);
    append(&log, &numbered_lines(1000, 100));
    fs::copy(&log, logs.join("app.log.1")).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    append(&log, &numbered_lines(1100, 100));
    let mut b = tailer(dir.path(), cfg());
    let again = drain(&mut b);
    assert_eq!(numbers(&again), (1000..1200).collect::<Vec<_>>());
}

#[test]
fn start_at_end_only_for_files_found_at_the_first_start() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.log");
    append(&old, "history 1\nhistory 2\n");
    let cfg = || TailerConfig {
        start_at: StartAt::End,
        ..config(&[&dir.path().join("*.log")])
    };
    let mut a = tailer(dir.path(), cfg());
    assert!(drain(&mut a).is_empty(), "existing content is skipped");
    append(&old, "new 1\n");
    append(&dir.path().join("created.log"), "created 1\n");
    let mut got = bodies(&drain(&mut a));
    got.sort();
    assert_eq!(got, ["created 1", "new 1"]);
    drop(a);
    // after a restart the pattern is known: a file that appeared meanwhile is read whole,
    // a known one resumes
    append(&dir.path().join("while-down.log"), "down 1\n");
    append(&old, "new 2\n");
    let mut b = tailer(dir.path(), cfg());
    let mut got = bodies(&drain(&mut b));
    got.sort();
    assert_eq!(got, ["down 1", "new 2"]);
}

#[test]
fn start_at_end_keeps_a_line_being_written() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("a.log");
    append(&log, "old\nhalf a li");
    let cfg = TailerConfig {
        start_at: StartAt::End,
        ..config(&[&log])
    };
    let mut t = tailer(dir.path(), cfg);
    assert!(drain(&mut t).is_empty());
    append(&log, "ne\n");
    assert_eq!(bodies(&drain(&mut t)), ["half a line"]);
}

#[test]
fn file_deleted_while_being_read_is_read_to_its_end_then_closed() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, &numbered_lines(0, 50_000)); // ~3 MiB
    let mut t = tailer(dir.path(), config(&[&log]));
    let mut got = t.poll(256 * 1024).lines; // a first slice only
    assert!(!got.is_empty() && got.len() < 50_000);
    // the writer still holds the file and appends after it is deleted
    let mut w = OpenOptions::new().append(true).open(&log).unwrap();
    fs::remove_file(&log).unwrap();
    w.write_all(numbered_lines(50_000, 10).as_bytes()).unwrap();
    drop(w);
    got.extend(drain(&mut t));
    assert_eq!(numbers(&got), (0..50_010).collect::<Vec<_>>());
    let s = t.stats();
    assert_eq!((s.files_watched, s.files_open), (0, 0), "{s:?}");
}

#[test]
fn renamed_out_of_the_patterns_is_followed_through_the_handle() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, &numbered_lines(0, 10));
    let mut t = tailer(dir.path(), config(&[&log]));
    let mut got = drain(&mut t);
    let mut w = OpenOptions::new().append(true).open(&log).unwrap();
    fs::rename(&log, dir.path().join("app.log.old")).unwrap();
    w.write_all(numbered_lines(10, 5).as_bytes()).unwrap();
    append(&log, &numbered_lines(15, 5));
    got.extend(drain(&mut t));
    assert_eq!(numbers(&got), (0..20).collect::<Vec<_>>());
    // the old file is closed once idle for orphan_idle
    std::thread::sleep(Duration::from_millis(250));
    let _ = t.poll(BUDGET);
    assert_eq!(t.stats().files_watched, 1);
}

#[test]
fn truncation_in_place_restarts_at_zero_and_counts_unread_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, &numbered_lines(0, 100));
    let mut t = tailer(dir.path(), config(&[&log]));
    let first = drain(&mut t);
    assert_eq!(first.len(), 100);
    fs::write(&log, numbered_lines(100, 3)).unwrap(); // truncate and rewrite, shorter
    let second = drain(&mut t);
    assert_eq!(numbers(&second), [100, 101, 102]);
    assert_ne!(
        second[0].position.stream, first[0].position.stream,
        "new content, new stream"
    );
    // truncated before everything was read: the loss is counted
    append(&log, &numbered_lines(103, 2000));
    let part = t.poll(4096).lines;
    assert!(!part.is_empty());
    fs::write(&log, numbered_lines(5000, 2)).unwrap();
    let third = drain(&mut t);
    // the part of a line read before the truncation comes out as it was (the rest is gone)
    assert_eq!(numbers(&third[third.len() - 2..]), [5000, 5001]);
    let s = t.stats();
    assert_eq!(s.truncations, 2);
    assert!(s.bytes_lost_truncated > 0, "{s:?}");
}

#[test]
fn a_copy_is_not_read_twice_but_a_file_that_only_starts_alike_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, &numbered_lines(0, 100)); // > 1 KiB
    let mut t = tailer(dir.path(), config(&[&dir.path().join("*")]));
    assert_eq!(drain(&mut t).len(), 100);
    fs::copy(&log, dir.path().join("app.log.bak")).unwrap();
    assert!(drain(&mut t).is_empty());
    assert_eq!(t.stats().copies, 1);
    append(&log, &numbered_lines(100, 2));
    assert_eq!(numbers(&drain(&mut t)), [100, 101]);

    // two replicas whose first line is the same: one looks like a copy of the other until
    // they differ, then both are read whole
    let (a, b) = (
        dir.path().join("replica-a.json"),
        dir.path().join("replica-b.json"),
    );
    append(&a, "{\"msg\":\"starting\"}\n");
    append(&b, "{\"msg\":\"starting\"}\n");
    let mut got = bodies(&drain(&mut t));
    append(&a, "{\"msg\":\"a 1\"}\n");
    append(&b, "{\"msg\":\"b 1\"}\n");
    got.extend(bodies(&drain(&mut t)));
    got.sort();
    assert_eq!(
        got,
        [
            "{\"msg\":\"a 1\"}",
            "{\"msg\":\"b 1\"}",
            "{\"msg\":\"starting\"}",
            "{\"msg\":\"starting\"}"
        ]
    );
}

#[test]
fn a_file_where_a_directory_is_expected_is_counted_once_and_the_rest_works() {
    let dir = tempfile::tempdir().unwrap();
    let not_dir = dir.path().join("plain.txt");
    fs::write(&not_dir, "x").unwrap();
    let ok = dir.path().join("ok");
    append(&ok.join("a.log"), "fine\n");
    let mut t = tailer(
        dir.path(),
        config(&[&not_dir.join("*.log"), &ok.join("*.log")]),
    );
    let mut errors = Vec::new();
    let mut lines = Vec::new();
    for _ in 0..5 {
        let p = t.poll(BUDGET);
        errors.extend(p.errors);
        lines.extend(p.lines);
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(bodies(&lines), ["fine"]);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        (errors[0].kind, errors[0].path.as_path()),
        (ErrorKind::NotADirectory, not_dir.as_path())
    );
    assert_eq!(t.stats().errors.not_a_directory, 1);
}

#[test]
fn a_fifo_in_the_glob_is_skipped_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.log");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    append(&dir.path().join("real.log"), "real\n");
    let mut t = tailer(dir.path(), config(&[&dir.path().join("*.log")]));
    let lines = drain_for(&mut t, Duration::from_millis(60), Duration::from_secs(5));
    assert_eq!(bodies(&lines), ["real"]);
    assert_eq!(t.stats().files_watched, 1);
}

/// As root every file is readable, so this runs the check in a child process (this test
/// binary again) as `nobody`: a directory and a file it may not read are counted as
/// permission errors, reported once, and the readable file is still read.
#[test]
fn permission_denied_as_another_user() {
    // SAFETY: getuid has no preconditions and cannot fail.
    if unsafe { libc::getuid() } != 0 {
        eprintln!("not root: cannot switch to another user, skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mode = |p: &Path, m: u32| fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
    mode(root, 0o755);
    append(&root.join("secret/a.log"), "hidden\n");
    mode(&root.join("secret"), 0o700);
    append(&root.join("locked.log"), "hidden\n");
    mode(&root.join("locked.log"), 0o600);
    append(&root.join("open.log"), "visible\n");
    mode(&root.join("open.log"), 0o644);
    fs::create_dir(root.join("checkpoints")).unwrap();
    mode(&root.join("checkpoints"), 0o777);
    use std::os::unix::process::CommandExt;
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "permission_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TFO_LOGS_PERMISSION_DIR", root)
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("CHILD OK"), "{text}");
}

#[test]
#[ignore = "run by permission_denied_as_another_user as another user"]
fn permission_child() {
    let Ok(root) = std::env::var("TFO_LOGS_PERMISSION_DIR") else {
        return;
    };
    let root = Path::new(&root);
    let mut t = tailer(root, config(&[&root.join("*/*.log"), &root.join("*.log")]));
    let mut errors = Vec::new();
    let mut lines = Vec::new();
    for _ in 0..5 {
        let p = t.poll(BUDGET);
        errors.extend(p.errors);
        lines.extend(p.lines);
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(bodies(&lines), ["visible"]);
    let mut failed: Vec<_> = errors
        .iter()
        .map(|e| (e.kind, e.path.file_name().unwrap().to_owned()))
        .collect();
    failed.sort();
    assert_eq!(
        failed,
        [
            (ErrorKind::PermissionDenied, "locked.log".into()),
            (ErrorKind::PermissionDenied, "secret".into())
        ],
        "{errors:?}"
    );
    assert_eq!(t.stats().errors.permission_denied, 2);
    println!("CHILD OK");
}

#[test]
fn ten_thousand_files_with_a_bound_on_open_files() {
    const FILES: u64 = 10_000;
    const MAX_OPEN: u64 = 64;
    let dir = tempfile::tempdir().unwrap();
    let many = dir.path().join("many");
    fs::create_dir_all(&many).unwrap();
    for i in 0..FILES {
        let mut f = fs::File::create(many.join(format!("f{i:05}.log"))).unwrap();
        write!(f, "{}\n{}\n", numbered(i * 2, 40), numbered(i * 2 + 1, 40)).unwrap();
    }
    let cfg = TailerConfig {
        max_open_files: MAX_OPEN as usize,
        poll_interval: Duration::from_millis(50),
        checkpoint_interval: Duration::from_secs(1),
        ..config(&[&many.join("*.log")])
    };
    let mut t = tailer(dir.path(), cfg);
    let mut got = Vec::new();
    let start = Instant::now();
    let mut max_open = 0;
    while (got.len() as u64) < FILES * 2 && start.elapsed() < Duration::from_secs(120) {
        let p = t.poll(BUDGET);
        max_open = max_open.max(t.stats().files_open);
        t.commit(&p.positions());
        got.extend(p.lines);
        if !p.more {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    assert!(max_open <= MAX_OPEN, "{max_open} open");
    let mut n = numbers(&got);
    n.sort();
    assert_eq!(n, (0..FILES * 2).collect::<Vec<_>>());
    assert_eq!(t.stats().files_watched, FILES);
    // and appending to an early file later is still seen
    append(&many.join("f00000.log"), "late\n");
    let late = drain_for(&mut t, Duration::from_millis(200), Duration::from_secs(20));
    assert_eq!(bodies(&late), ["late"]);
}

#[test]
fn a_corrupt_checkpoint_file_is_set_aside_counted_and_survived() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("checkpoints");
    fs::create_dir_all(&ckpt).unwrap();
    fs::write(
        ckpt.join("checkpoints.json"),
        b"{\"version\":1,\"files\":[{\"fing",
    )
    .unwrap();
    append(&dir.path().join("a.log"), "one\n");
    let mut t = tailer(dir.path(), config(&[&dir.path().join("*.log")]));
    let p = t.poll(BUDGET);
    assert_eq!(bodies(&p.lines), ["one"]);
    assert_eq!(p.errors.len(), 1, "{:?}", p.errors);
    assert_eq!(p.errors[0].kind, ErrorKind::Checkpoint);
    assert_eq!(t.stats().errors.checkpoint, 1);
    assert!(ckpt.join("checkpoints.json.corrupt").exists());
    t.commit(&p.positions());
    t.flush().unwrap();
    assert!(
        fs::read_to_string(ckpt.join("checkpoints.json"))
            .unwrap()
            .contains("a.log")
    );
}

#[test]
fn the_tailer_can_move_to_its_own_thread_and_skips_its_checkpoints() {
    fn send<T: Send>(_: &T) {}
    let dir = tempfile::tempdir().unwrap();
    append(&dir.path().join("a.log"), "one\n");
    // a pattern that also matches the checkpoint directory's files
    let mut t = tailer(dir.path(), config(&[&dir.path().join("**/*")]));
    send(&t);
    let lines = std::thread::spawn(move || {
        let mut all = drain(&mut t);
        t.flush().unwrap();
        all.extend(drain(&mut t));
        all
    })
    .join()
    .unwrap();
    assert_eq!(bodies(&lines), ["one"]);
}

#[test]
fn a_new_file_starting_like_a_deleted_one_is_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, "Starting app\n");
    let mut t = tailer(dir.path(), config(&[&log]));
    assert_eq!(bodies(&drain(&mut t)), ["Starting app"]);
    // deleted and created again (often in the same inode) with the same short first line
    fs::remove_file(&log).unwrap();
    let _ = t.poll(BUDGET);
    append(&log, "Starting app\nsecond run\n");
    assert_eq!(bodies(&drain(&mut t)), ["Starting app", "second run"]);
    drop(t);
    // the same across a restart
    fs::remove_file(&log).unwrap();
    append(&log, "Starting app\nthird run\n");
    let mut t = tailer(dir.path(), config(&[&log]));
    assert_eq!(bodies(&drain(&mut t)), ["Starting app", "third run"]);
}
