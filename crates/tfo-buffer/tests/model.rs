//! Model-based property tests: random sequences of append, read, ack, rewind, expire, crash
//! and reopen against an in-memory model of what the log must deliver.
//!
//! The model keeps every record ever appended and the index of the first unacknowledged one.
//! After a crash the log may deliver records acknowledged since its last ledger write again
//! (duplicates at the head), but never lose, reorder or alter one.

use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use tfo_buffer::{DropReason, Entry, FsyncMode, Log, Options, WhenFull};

#[derive(Debug, Clone)]
enum Op {
    Append {
        len: usize,
        ts: u64,
    },
    Read {
        max_records: usize,
        max_bytes: usize,
    },
    /// Acknowledge a fraction of what has been read but not acknowledged.
    Ack {
        frac: f64,
    },
    Rewind,
    Expire {
        cutoff: u64,
    },
    Crash,
    Reopen,
    Stats,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0usize..300, 0u64..1000).prop_map(|(len, ts)| Op::Append { len, ts }),
        4 => (0usize..8, 0usize..600).prop_map(|(max_records, max_bytes)| Op::Read { max_records, max_bytes }),
        3 => (0.0f64..=1.0).prop_map(|frac| Op::Ack { frac }),
        1 => Just(Op::Rewind),
        1 => (0u64..400).prop_map(|cutoff| Op::Expire { cutoff }),
        1 => Just(Op::Crash),
        1 => Just(Op::Reopen),
        1 => Just(Op::Stats),
    ]
}

#[derive(Debug, Clone)]
struct Rec {
    seq: u64,
    ts: u64,
    payload: Vec<u8>,
}

struct Model {
    all: Vec<Rec>,
    /// Records before this index are acknowledged (or dropped).
    acked: usize,
    /// The log's read cursor, as an index into `all`.
    cursor: usize,
    /// Lower bound of what a crash can take `acked` back to: the ledger is known to be at
    /// least here (written on close, open and when dropping segments).
    durable: usize,
}

fn payload_for(n: usize, len: usize) -> Vec<u8> {
    (0..len).map(|i| (n * 31 + i * 7) as u8).collect()
}

fn check_entry(e: &Entry, r: &Rec) {
    assert_eq!(e.seq, r.seq, "sequence");
    assert_eq!(e.timestamp_ms, r.ts, "timestamp of {}", r.seq);
    assert_eq!(&e.payload[..], &r.payload[..], "payload of {}", r.seq);
}

/// Reads everything left after a reopen and checks it is a suffix of `all` that contains
/// every unacknowledged record; the model adopts the log's (possibly older) ack position.
fn verify_reopened(log: &Log, m: &mut Model) {
    let mut got = Vec::new();
    loop {
        let b = log.read_batch(7, 1000).expect("read after reopen");
        if b.is_empty() {
            break;
        }
        got.extend(b);
    }
    let start = m.all.len() - got.len();
    assert!(
        start <= m.acked,
        "lost records: log delivers from index {start}, first unacknowledged is {}",
        m.acked
    );
    assert!(
        start >= m.durable,
        "delivered records acknowledged before the last ledger write: from {start}, durable {}",
        m.durable
    );
    for (e, r) in got.iter().zip(&m.all[start..]) {
        check_entry(e, r);
    }
    let stats = log.stats();
    assert_eq!(stats.records, got.len() as u64, "records after reopen");
    assert_eq!(stats.corrupt_records, 0);
    m.acked = start;
    m.durable = start;
    log.rewind();
    m.cursor = start;
}

fn run(ops: Vec<Op>, opts: Options, dir: &Path) {
    let mut log = Some(Log::open(dir, opts.clone()).expect("open"));
    let mut m = Model {
        all: Vec::new(),
        acked: 0,
        cursor: 0,
        durable: 0,
    };
    let mut n = 0usize;
    for op in ops {
        let l = log.as_ref().expect("log is open");
        match op {
            Op::Append { len, ts } => {
                n += 1;
                let payload = payload_for(n, len);
                let out = l.append(ts, payload.clone()).expect("append");
                if let Some(last) = m.all.last() {
                    assert!(out.seq > last.seq, "sequence must increase");
                }
                if let Some(d) = out.dropped {
                    assert_eq!(d.reason, DropReason::Full);
                    assert!(opts.when_full == WhenFull::DropOldest);
                    let k = d.records as usize;
                    assert!(
                        m.acked + k <= m.all.len(),
                        "dropped more than was unacknowledged"
                    );
                    let bytes: u64 = m.all[m.acked..m.acked + k]
                        .iter()
                        .map(|r| 32 + r.payload.len() as u64)
                        .sum();
                    assert_eq!(d.bytes, bytes, "dropped bytes");
                    m.acked += k;
                    m.durable = m.acked;
                    m.cursor = m.cursor.max(m.acked);
                }
                m.all.push(Rec {
                    seq: out.seq,
                    ts,
                    payload,
                });
                let s = l.stats();
                assert!(s.disk_bytes <= opts.max_total_bytes, "disk bound");
                assert!(s.memory_bytes <= opts.memory_limit_bytes, "memory bound");
            }
            Op::Read {
                max_records,
                max_bytes,
            } => {
                let b = l.read_batch(max_records, max_bytes).expect("read");
                let mut expect = 0;
                let mut bytes = 0;
                for r in &m.all[m.cursor..] {
                    if expect == max_records || (expect > 0 && bytes + r.payload.len() > max_bytes)
                    {
                        break;
                    }
                    bytes += r.payload.len();
                    expect += 1;
                }
                assert_eq!(b.len(), expect, "batch size");
                for (e, r) in b.iter().zip(&m.all[m.cursor..]) {
                    check_entry(e, r);
                }
                m.cursor += b.len();
            }
            Op::Ack { frac } => {
                if m.cursor > m.acked {
                    let j = m.acked + ((m.cursor - m.acked - 1) as f64 * frac) as usize;
                    l.ack(m.all[j].seq).expect("ack");
                    m.acked = j + 1;
                }
            }
            Op::Rewind => {
                l.rewind();
                m.cursor = m.acked;
            }
            Op::Expire { cutoff } => {
                let d = l
                    .expire(Duration::from_millis(1000), cutoff + 1000)
                    .expect("expire");
                let k = m.all[m.acked..]
                    .iter()
                    .take_while(|r| r.ts < cutoff)
                    .count();
                match d {
                    Some(d) => {
                        assert_eq!(d.reason, DropReason::MaxAge);
                        assert_eq!(d.records as usize, k, "expired records");
                        let bytes: u64 = m.all[m.acked..m.acked + k]
                            .iter()
                            .map(|r| 32 + r.payload.len() as u64)
                            .sum();
                        assert_eq!(d.bytes, bytes, "expired bytes");
                    }
                    None => assert_eq!(k, 0, "expire reported nothing"),
                }
                m.acked += k;
                m.cursor = m.cursor.max(m.acked);
            }
            Op::Crash => {
                log.take().expect("open").crash();
                let l = Log::open(dir, opts.clone()).expect("reopen after crash");
                verify_reopened(&l, &mut m);
                log = Some(l);
            }
            Op::Reopen => {
                log.take().expect("open").close().expect("close");
                m.durable = m.acked;
                let l = Log::open(dir, opts.clone()).expect("reopen");
                assert_eq!(l.recovery().truncated_bytes, 0);
                verify_reopened(&l, &mut m);
                assert_eq!(m.acked, m.durable, "a clean close must persist every ack");
                log = Some(l);
            }
            Op::Stats => {
                let s = l.stats();
                assert_eq!(s.records, (m.all.len() - m.acked) as u64, "unacked records");
                assert_eq!(
                    s.oldest_timestamp_ms,
                    m.all.get(m.acked).map(|r| r.ts),
                    "oldest timestamp"
                );
                if let Some(r) = m.all.get(m.acked) {
                    assert_eq!(s.first_unacked_seq, r.seq);
                }
                let on_disk: u64 = std::fs::read_dir(dir)
                    .expect("list")
                    .filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
                    .map(|e| e.metadata().expect("stat").len())
                    .sum();
                assert_eq!(s.disk_bytes, on_disk, "disk bytes");
                assert!(on_disk <= opts.max_total_bytes);
            }
        }
    }
    // Whatever happened, a final crash + reopen still delivers every unacknowledged record.
    log.take().expect("open").crash();
    let l = Log::open(dir, opts).expect("final reopen");
    verify_reopened(&l, &mut m);
    l.close().expect("close");
}

fn options() -> impl Strategy<Value = Options> {
    (
        64u64..1200,
        0u64..3000,
        prop_oneof![Just(None), (1500u64..6000).prop_map(Some)],
    )
        .prop_map(|(segment_bytes, memory_limit_bytes, small)| Options {
            segment_bytes,
            max_total_bytes: small.unwrap_or(1 << 30),
            memory_limit_bytes,
            // No background writes: the test decides when the ledger is persisted.
            fsync: FsyncMode::Never,
            when_full: WhenFull::DropOldest,
            ledger_interval: Duration::from_secs(3600),
            ..Options::default()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(96)
    ))]

    #[test]
    fn log_matches_model(ops in prop::collection::vec(op(), 1..120), opts in options()) {
        let dir = tempfile::tempdir().expect("tempdir");
        run(ops, opts, &dir.path().join("buf"));
    }

    #[test]
    fn ledger_every_ack_means_no_duplicates(ops in prop::collection::vec(op(), 1..80)) {
        // With a zero ledger interval every ack is persisted, so a crash repeats nothing.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("buf");
        let opts = Options {
            segment_bytes: 500,
            ledger_interval: Duration::ZERO,
            fsync: FsyncMode::Never,
            ..Options::default()
        };
        let mut log = Some(Log::open(&path, opts.clone()).expect("open"));
        let mut unacked: std::collections::VecDeque<u64> = Default::default();
        let mut read = 0usize;
        for op in ops {
            let l = log.as_ref().expect("open");
            match op {
                Op::Append { len, ts } => {
                    unacked.push_back(l.append(ts, vec![7u8; len]).expect("append").seq);
                }
                Op::Read { max_records, .. } => {
                    read += l.read_batch(max_records, usize::MAX).expect("read").len();
                }
                Op::Ack { frac } if read > 0 => {
                    let k = ((read - 1) as f64 * frac) as usize;
                    l.ack(unacked[k]).expect("ack");
                    unacked.drain(..=k);
                    read -= k + 1;
                }
                Op::Crash | Op::Reopen => {
                    log.take().expect("open").crash();
                    let l = Log::open(&path, opts.clone()).expect("reopen");
                    let mut got = Vec::new();
                    loop {
                        let b = l.read_batch(100, usize::MAX).expect("read");
                        if b.is_empty() { break; }
                        got.extend(b.into_iter().map(|e| e.seq));
                    }
                    prop_assert_eq!(&got, &unacked.iter().copied().collect::<Vec<_>>());
                    l.rewind();
                    read = 0;
                    log = Some(l);
                }
                _ => {}
            }
        }
    }
}
