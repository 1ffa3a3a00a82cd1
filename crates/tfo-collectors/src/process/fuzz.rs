//! A dependency-free fuzz loop over the per-process parsers: random bytes and mutated
//! real lines must never panic, and whatever parses must be consistent.

use crate::fuzzing::{XorShift, mutate, random_input};

use super::{identity, io, stat, status, summary};

const INTERESTING: &[u8] = b" \n\t:()\\0123456789-SRZDabcdef_\x00\xff";

const SEEDS: &[&[u8]] = &[
    b"4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 1234 0 7 0 150 25 0 0 20 0 3 0 98765 123456789 321 18446744073709551615 1 1 0 0\n",
    b"rchar: 1\nwchar: 2\nsyscr: 3\nsyscw: 4\nread_bytes: 4096\nwrite_bytes: 8192\ncancelled_write_bytes: 0\n",
    b"Name:\tsleep\nvoluntary_ctxt_switches:\t17\nnonvoluntary_ctxt_switches:\t3\n",
    b"0::/system.slice/docker-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope\n",
    b"btime 1700000000\nprocesses 4242\n",
    b"sleep\x00100\x00--password=x\x00",
];

#[test]
fn parsers_survive_garbage() {
    let mut r = XorShift(0x9e37_79b9_7f4a_7c15);
    let pats: Vec<regex::Regex> = identity::DEFAULT_REDACT_PATTERNS
        .iter()
        .map(|p| regex::Regex::new(p).unwrap())
        .collect();
    for round in 0..5_000 {
        let input = if round % 2 == 0 {
            random_input(&mut r, INTERESTING)
        } else {
            mutate(SEEDS[r.below(SEEDS.len())], &mut r, INTERESTING)
        };
        let mut comm: &[u8] = b"";
        if let Some(s) = stat::parse(&input, &mut comm) {
            assert!(s.state.is_ascii_alphabetic());
            assert!(comm.len() <= 64);
        }
        let _ = io::parse(&input);
        let _ = status::parse(&input);
        let _ = summary::parse_proc_stat(&input);
        if let Some(id) = identity::container_id(&input) {
            assert_eq!(id.len(), 64);
        }
        let line = identity::command_line(&input, 1 + r.below(300));
        let red = identity::redact(&line, &pats);
        assert!(!red.contains("--password=x") || !line.contains("--password=x "));
    }
}
