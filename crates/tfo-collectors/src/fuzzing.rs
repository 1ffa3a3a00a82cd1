//! Test-only building blocks for the dependency-free fuzz loops of the system and node
//! collectors: a deterministic generator (a failure reproduces), random and mutated inputs
//! biased towards the bytes parsers care about, and a statvfs that always answers.

use std::io;
use std::path::Path;

use crate::mounts::{FsStats, StatFs};

pub(crate) struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Up to 400 bytes, three in four drawn from `interesting`.
pub(crate) fn random_input(r: &mut XorShift, interesting: &[u8]) -> Vec<u8> {
    let len = r.below(400);
    (0..len)
        .map(|_| {
            if r.below(4) == 0 {
                r.next() as u8
            } else {
                interesting[r.below(interesting.len())]
            }
        })
        .collect()
}

/// `seed` with 1–8 edits: byte replacements, deletions and duplicated runs.
pub(crate) fn mutate(seed: &[u8], r: &mut XorShift, interesting: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + r.below(8) {
        if v.is_empty() {
            break;
        }
        let i = r.below(v.len());
        match r.below(4) {
            0 => v[i] = interesting[r.below(interesting.len())],
            1 => v[i] = r.next() as u8,
            2 => {
                let end = (i + r.below(20)).min(v.len());
                v.drain(i..end);
            }
            _ => {
                let end = (i + r.below(20)).min(v.len());
                let chunk = v[i..end].to_vec();
                v.splice(i..i, chunk);
            }
        }
    }
    v
}

pub(crate) struct FixedStatFs;

impl StatFs for FixedStatFs {
    fn statfs(&self, _: &Path) -> io::Result<FsStats> {
        Ok(FsStats {
            fragment_size: 4096,
            blocks: 1000,
            blocks_free: 400,
            blocks_available: 300,
            files: 100,
            files_free: 60,
        })
    }
}
